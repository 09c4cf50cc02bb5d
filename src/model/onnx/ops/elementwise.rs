//! Add: a bias, a shift by a constant (a scalar, or a tensor that broadcasts to the data), or
//! the sum of two computed tensors (a residual connection).
//!
//! Add of a constant changes only biases, exactly: on selected elements it is an affine step
//! with weights 1 and the constant as bias; on an affine map not yet cut it adds the constant
//! to its bias when every sum is exact in f64 (the bias a MatMul or a Gemm without C left open
//! is replaced), and cuts the map into a layer first otherwise.

use std::rc::Rc;

use ndarray::Array1;
use onnx_protobuf::NodeProto;

use super::{Op, Reads};
use crate::model::onnx::fold::{broadcast_dims, broadcast_positions, count};
use crate::model::onnx::proto::Tensor;
use crate::model::onnx::state::{
    exact_sum, form_rows, merge_row, Data, Form, Map, Operand, Output, Tracer,
};

pub(super) const OPS: &[Op] = &[Op {
    name: "Add",
    attributes: &[],
    reads: Reads::Any,
    on_constants: false,
    translate: add,
}];

/// Data plus a constant, or data plus data of one shape.
fn add<'a>(t: &mut Tracer<'a>, node: &'a NodeProto) -> Result<Output<'a>, String> {
    let name = node.op_type.as_str();
    if node.input.len() != 2 {
        return Err(format!(
            "{name} needs exactly two inputs, this one has {}",
            node.input.len()
        ));
    }
    let out = match (t.operand(node, 0)?, t.operand(node, 1)?) {
        (Operand::Data(x), Operand::Data(y)) => add_tensors(t, &x, &y)?,
        (Operand::Data(x), Operand::Const(c)) => with_constant(t, node, &x, &c, false)?,
        (Operand::Const(c), Operand::Data(x)) => with_constant(t, node, &x, &c, true)?,
        (Operand::Const(_), Operand::Const(_)) => {
            unreachable!("arithmetic on constants is folded before it is translated")
        }
    };
    Ok(Output::Data(out))
}

/// `x + c` for a constant `c` (input 0 when `constant_first`) that broadcasts to `x`.
fn with_constant(
    t: &mut Tracer<'_>,
    node: &NodeProto,
    x: &Rc<Data>,
    c: &Tensor,
    constant_first: bool,
) -> Result<Data, String> {
    let name = &node.input[usize::from(!constant_first)];
    if let Some((k, v)) = c.data.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(format!(
            "'{name}' holds {v} at element {k}; a constant operand must be finite"
        ));
    }
    // NumPy's broadcast, which must not repeat the data's elements.
    let dims = broadcast_dims(&x.dims, &c.dims)?;
    if count(&dims)? != x.len() {
        return Err(format!(
            "the constant '{name}' of shape {:?} broadcasts the data of shape {:?} to {dims:?}; \
             only a constant that broadcasts to the data's shape is read",
            c.dims, x.dims
        ));
    }
    let at = broadcast_positions(&c.dims, &dims)?;
    let value: Vec<f64> = at.iter().map(|&p| c.data[p]).collect();
    shift(t, x, value, dims)
}

/// `x + shift`, element by element: added to the bias of an affine map when every sum is exact
/// (the bias a MatMul or a Gemm without C left open is replaced), an affine step with weights
/// 1 otherwise.
fn shift(t: &mut Tracer<'_>, x: &Data, shift: Vec<f64>, dims: Vec<usize>) -> Result<Data, String> {
    if let Form::Map(map) = &x.form {
        let moved = if x.bias_open {
            with_bias(map, &shift)
        } else {
            shifted(map, &shift)
        };
        if let Some(map) = moved {
            return Ok(t.with(dims, Form::Map(map)));
        }
    }
    let rows = (0..shift.len() as u32).map(|p| vec![(p, 1.0)]).collect();
    t.linear(x, rows, shift, dims)
}

/// Data plus data of one shape: the rows of the two added entry by entry, exactly.
fn add_tensors(t: &mut Tracer<'_>, x: &Data, y: &Data) -> Result<Data, String> {
    if x.dims != y.dims {
        return Err(format!(
            "Add of computed tensors of shapes {:?} and {:?}; only equal shapes are read",
            x.dims, y.dims
        ));
    }
    if let (Form::Select(ex), Form::Select(ey)) = (&x.form, &y.form) {
        let n = ex.len();
        let both = t.with(
            vec![2 * n],
            Form::Select(ex.iter().chain(ey).copied().collect()),
        );
        let rows = (0..n as u32)
            .map(|p| vec![(p, 1.0), (n as u32 + p, 1.0)])
            .collect();
        return t.linear(&both, rows, vec![0.0; n], x.dims.clone());
    }
    // An affine map plus another tensor of the same layer input (the two branches of a
    // residual connection): the rows added entry by entry, exactly; the two biases summed and
    // rounded once (as the constants of `linear`).
    let ((rx, bx), (ry, by)) = (form_rows(&x.form)?, form_rows(&y.form)?);
    let mut rows = Vec::with_capacity(rx.len());
    let mut bias = Vec::with_capacity(rx.len());
    for ((a, b), (ba, bb)) in rx.into_iter().zip(ry).zip(bx.into_iter().zip(by)) {
        rows.push(merge_row(a.into_iter().chain(b).collect())?);
        let sum = ba + bb;
        if !sum.is_finite() {
            return Err(format!("the biases {ba} and {bb} sum beyond f64"));
        }
        bias.push(sum);
    }
    Ok(t.with(x.dims.clone(), Form::Map(Map::Sparse(rows, bias))))
}

/// `b + shift` entry by entry (`shift` may be longer: a shared block's copies), or `None`
/// when a sum rounds.
fn shifted_bias<'a>(b: impl IntoIterator<Item = &'a f64>, shift: &[f64]) -> Option<Vec<f64>> {
    b.into_iter()
        .zip(shift)
        .map(|(&x, &s)| exact_sum(x, s))
        .collect()
}

/// `map + shift` with each bias entry summed exactly, or `None` when a sum rounds.
fn shifted(map: &Map, shift: &[f64]) -> Option<Map> {
    match map {
        Map::Dense(w, b) => Some(Map::Dense(w.clone(), Array1::from(shifted_bias(b, shift)?))),
        Map::Sparse(rows, b) => Some(Map::Sparse(rows.clone(), shifted_bias(b, shift)?)),
        Map::Shared(w, b, copies) => {
            // One block: the shift must be the same for every copy.
            let rows = w.nrows();
            let same = (0..shift.len()).all(|j| shift[j] == shift[j % rows]);
            if !same {
                return None;
            }
            let b = shifted_bias(b, shift)?;
            Some(Map::Shared(w.clone(), Array1::from(b), *copies))
        }
    }
}

/// `map` with `bias` as its bias (a map whose bias is open, all zeros), or `None` for a shared
/// block whose copies would need different biases.
fn with_bias(map: &Map, bias: &[f64]) -> Option<Map> {
    match map {
        Map::Dense(w, _) => Some(Map::Dense(w.clone(), Array1::from(bias.to_vec()))),
        Map::Sparse(rows, _) => Some(Map::Sparse(rows.clone(), bias.to_vec())),
        Map::Shared(w, _, copies) => {
            let rows = w.nrows();
            let same = (0..bias.len()).all(|j| bias[j] == bias[j % rows]);
            same.then(|| Map::Shared(w.clone(), Array1::from(bias[..rows].to_vec()), *copies))
        }
    }
}
