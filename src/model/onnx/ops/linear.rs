//! Gemm and MatMul: a dense layer, or one shared block applied to every row of a
//! `[rows, features]` tensor. Their weights are the exact values stored in the file, and the
//! scaling Gemm asks for (`alpha`, `beta`) must itself be exact in f64.

use std::rc::Rc;

use ndarray::{Array1, Array2};
use onnx_protobuf::NodeProto;

use super::{Op, Reads};
use crate::exact::{Rational, Scalar};
use crate::model::onnx::proto::{
    attr_float, attr_int, bias_vector, matrix, required_input, Tensor,
};
use crate::model::onnx::state::{
    is_identity, Batch, Data, Form, Map, Output, Tracer, MAX_LOWERED_ENTRIES,
};

pub(super) const OPS: &[Op] = &[
    Op {
        name: "Gemm",
        attributes: &["alpha", "beta", "transA", "transB"],
        reads: Reads::First,
        on_constants: false,
        translate: gemm,
    },
    Op {
        name: "MatMul",
        attributes: &[],
        reads: Reads::First,
        on_constants: false,
        translate: matmul,
    },
];

/// `Y = alpha · A · op(B) + beta · C` on data `A` of shape [rows, features]: a dense layer
/// with `W = alpha · op(B)ᵀ` and `b = beta · C`; without C, an Add right after it supplies the
/// bias.
fn gemm<'a>(t: &mut Tracer<'a>, node: &'a NodeProto) -> Result<Output<'a>, String> {
    let (weight, bias) = gemm_weights(node, |name| t.floats(name))?;
    let has_c = node.input.get(2).is_some_and(|n| !n.is_empty());
    let x = affine_input(t, node, weight.ncols(), false)?;
    if t.batch == Batch::Unbatched {
        return Err(
            "Gemm needs a [batch, features] input but the data is an unbatched vector here".into(),
        );
    }
    let [m, k] = x.dims[..] else {
        return Err(format!(
            "Gemm needs [batch, features] data but the data has shape {:?}; flatten it first",
            x.dims
        ));
    };
    let mut y = affine_rows(t, node, &x, m, k, weight, bias)?;
    y.bias_open = !has_c;
    Ok(Output::Data(y))
}

/// A Gemm node's `W = alpha · op(B)ᵀ` ([out, in]) and `b = beta · C` (zeros without C), read
/// with `floats`; products that round are refused.
fn gemm_weights(
    node: &NodeProto,
    floats: impl Fn(&str) -> Result<Tensor, String>,
) -> Result<(Array2<f64>, Array1<f64>), String> {
    let alpha = attr_float(node, "alpha")?.unwrap_or(1.0);
    let beta = attr_float(node, "beta")?.unwrap_or(1.0);
    if attr_int(node, "transA")?.unwrap_or(0) != 0 {
        return Err(
            "transA = 1 is not supported: the data input must be [batch, features], not transposed"
                .into(),
        );
    }
    let trans_b = match attr_int(node, "transB")?.unwrap_or(0) {
        0 => false,
        1 => true,
        other => return Err(format!("transB = {other}; expected 0 or 1")),
    };
    let b_name = required_input(node, 1, "B")?;
    let b = matrix(b_name, floats(b_name)?)?;
    // `op(B)` is [in, out]; the IR stores W as [out, in].
    let weight = if trans_b { b } else { b.reversed_axes() };
    let weight = scale_matrix(alpha, "alpha", weight)?;
    let out = weight.nrows();
    let bias = match node.input.get(2).filter(|n| !n.is_empty()) {
        Some(c) => scale_vector(beta, "beta", bias_vector(c, floats(c)?, out)?)?,
        None => Array1::zeros(out),
    };
    Ok((weight, bias))
}

/// `A · B` on data `A` of shape [..., K] with a constant [K, N] matrix `B`: `W = Bᵀ` applied
/// to every row, with a zero bias until an Add right after it supplies one.
fn matmul<'a>(t: &mut Tracer<'a>, node: &'a NodeProto) -> Result<Output<'a>, String> {
    let weight = matmul_weight(node, |name| t.floats(name))?;
    let x = affine_input(t, node, weight.ncols(), true)?;
    let Some((&k, lead)) = x.dims.split_last() else {
        return Err("MatMul of a scalar".into());
    };
    let m = lead.iter().product();
    let mut dims = lead.to_vec();
    let out = weight.nrows();
    let mut y = affine_rows(t, node, &x, m, k, weight, Array1::zeros(out))?;
    dims.push(out);
    y.dims = dims;
    y.bias_open = true;
    Ok(Output::Data(y))
}

/// A MatMul node's `W = Bᵀ` ([out, in]) for a constant [in, out] matrix `B`.
fn matmul_weight(
    node: &NodeProto,
    floats: impl Fn(&str) -> Result<Tensor, String>,
) -> Result<Array2<f64>, String> {
    let b_name = required_input(node, 1, "B")?;
    let b = floats(b_name)?;
    if b.dims.len() != 2 {
        return Err(format!(
            "the weight '{b_name}' has shape {:?}; MatMul is read only with an [in, out] matrix",
            b.dims
        ));
    }
    Ok(matrix(b_name, b)?.reversed_axes())
}

/// The data input of an affine node whose rows take `k` values. The graph input, while its
/// sizes are unknown, takes them from the node: `[batch, k]`, or `[k]` for an unbatched
/// vector when `unbatched_ok`.
fn affine_input(
    t: &mut Tracer<'_>,
    node: &NodeProto,
    k: usize,
    unbatched_ok: bool,
) -> Result<Rc<Data>, String> {
    let name = required_input(node, 0, "data")?;
    let Some(u) = t.unknown.get(name).copied() else {
        return t.data(node, 0);
    };
    let op = &node.op_type;
    match u.rank {
        None | Some(2) => {}
        Some(1) if unbatched_ok => {}
        Some(1) => {
            return Err(format!(
                "{op} needs a [batch, features] input but the data is an unbatched vector here"
            ))
        }
        Some(r) => {
            return Err(format!(
            "{op} needs a [batch, features] input but the data has rank {r} here; flatten it first"
        ))
        }
    }
    Ok(Rc::new(t.size_input(&u, k)?))
}

/// The same affine map on each of the `m` rows of `k` values of `x`: one dense layer for a
/// single row, one shared block for several, composed sparse rows when the elements are not
/// the layer input itself.
fn affine_rows(
    t: &mut Tracer<'_>,
    node: &NodeProto,
    x: &Data,
    m: usize,
    k: usize,
    weight: Array2<f64>,
    bias: Array1<f64>,
) -> Result<Data, String> {
    let elems = t.select(x)?;
    let whole = is_identity(&elems, t.width);
    if weight.ncols() != k {
        return Err(if whole && m == 1 && t.layers.is_empty() {
            format!(
                "the graph input declares {k} values per sample but the first layer expects {}",
                weight.ncols()
            )
        } else {
            format!(
                "{} expects {} values per row but receives {k}",
                node.op_type,
                weight.ncols()
            )
        });
    }
    let n = weight.nrows();
    let dims = vec![m, n];
    if whole {
        let form = if m == 1 {
            Form::Map(Map::Dense(weight, bias))
        } else {
            Form::Map(Map::Shared(weight, bias, m))
        };
        return Ok(t.with(dims, form));
    }
    m.checked_mul(n)
        .and_then(|r| r.checked_mul(k))
        .filter(|&e| e <= MAX_LOWERED_ENTRIES)
        .ok_or_else(|| format!("{m}·{n} rows of {k} weights are more than 2^26"))?;
    let mut rows = Vec::with_capacity(m * n);
    let mut b = Vec::with_capacity(m * n);
    for r in 0..m {
        for j in 0..n {
            rows.push(
                (0..k)
                    .map(|c| ((r * k + c) as u32, weight[[j, c]]))
                    .collect(),
            );
            b.push(bias[j]);
        }
    }
    let selected = t.with(x.dims.clone(), Form::Select(elems.into_owned()));
    t.linear(&selected, rows, b, dims)
}

/// `factor · v` for every entry, refusing any product that rounds: the IR must hold the exact
/// weights the graph computes with.
fn scale(factor: f64, what: &str, v: f64, entry: &dyn Fn() -> String) -> Result<f64, String> {
    // Non-finite weights pass unchanged so that the network's own check reports them.
    if !v.is_finite() {
        return Ok(v);
    }
    let p = factor * v;
    let exact = if p.abs() >= f64::MIN_POSITIVE || p.is_infinite() {
        // Above the subnormal range the rounding error of a product is itself an f64, so the
        // fused multiply-add returns it exactly: zero if and only if nothing was rounded.
        factor.mul_add(v, -p) == 0.0
    } else {
        // A product that underflows can have an error too small for any f64, so the fused
        // test could miss it; settle these rare cases in exact arithmetic.
        Rational::from_f64(factor) * Rational::from_f64(v) == Rational::from_f64(p)
    };
    if exact {
        Ok(p)
    } else {
        Err(format!(
            "{what} = {factor} times {} = {v} is not exactly representable in f64; \
             fold {what} into the weights before export",
            entry()
        ))
    }
}

fn scale_matrix(factor: f64, what: &str, m: Array2<f64>) -> Result<Array2<f64>, String> {
    if factor == 1.0 {
        return Ok(m);
    }
    let mut m = m;
    for ((r, c), v) in m.indexed_iter_mut() {
        *v = scale(factor, what, *v, &|| format!("weight [{r}, {c}]"))?;
    }
    Ok(m)
}

fn scale_vector(factor: f64, what: &str, b: Array1<f64>) -> Result<Array1<f64>, String> {
    if factor == 1.0 {
        return Ok(b);
    }
    let mut b = b;
    for (j, v) in b.indexed_iter_mut() {
        *v = scale(factor, what, *v, &|| format!("bias [{j}]"))?;
    }
    Ok(b)
}
