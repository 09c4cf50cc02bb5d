//! Add, Sub, Mul and Div with a constant operand (a scalar, or a tensor that broadcasts to the
//! data, per channel or per element), as exporters write a layer's bias or an input
//! normalisation `(x − mean) / std`; and Add of two computed tensors (a residual connection).
//!
//! Add and Sub change only biases, exactly: on selected elements they are an affine step with
//! weights ±1 and the constant as bias; on an affine map not yet cut they add the constant to
//! its bias when every sum is exact in f64 (the bias a MatMul or a Gemm without C left open
//! is replaced), and cut the map into a layer first otherwise. Mul and Div scale: on selected
//! elements each input gets the weight `c` (Mul) or `1/c` rounded to the nearest f64 (Div,
//! exact when `c` is a power of two); on an affine map every weight and bias is multiplied or
//! divided by `c` and rounded once to the nearest f64 (exact when the result is an f64), as
//! batch norm folds. Div by a computed tensor, and Sub, Mul or Div of two computed tensors,
//! are not affine in the input and are refused. With `--split-residual`, Add of two computed
//! tensors of which one is an affine map keeps its summands apart (see [`add_apart`]).

use std::rc::Rc;

use ndarray::{Array1, Array2};
use onnx_protobuf::NodeProto;

use super::{Op, Reads};
use crate::model::blocks::{Blocks, Part, PartMap};
use crate::model::conv::Conv;
use crate::model::onnx::fold::{broadcast_dims, broadcast_positions, count};
use crate::model::onnx::proto::Tensor;
use crate::model::onnx::state::{
    exact_sum, form_parts, form_rows, input_range, is_operator, merge_row, Data, Elem, Form, Map,
    Operand, Output, Tracer,
};

pub(super) const OPS: &[Op] = &[
    Op {
        name: "Add",
        attributes: &[],
        reads: Reads::Any,
        on_constants: false,
        translate: add,
    },
    Op {
        name: "Sub",
        attributes: &[],
        reads: Reads::Any,
        on_constants: false,
        translate: sub,
    },
    Op {
        name: "Mul",
        attributes: &[],
        reads: Reads::Any,
        on_constants: false,
        translate: mul,
    },
    Op {
        name: "Div",
        attributes: &[],
        reads: Reads::Any,
        on_constants: false,
        translate: div,
    },
];

/// The four operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arith {
    Add,
    Sub,
    Mul,
    Div,
}

fn add<'a>(t: &mut Tracer<'a>, node: &'a NodeProto) -> Result<Output<'a>, String> {
    arith(t, node, Arith::Add)
}

fn sub<'a>(t: &mut Tracer<'a>, node: &'a NodeProto) -> Result<Output<'a>, String> {
    arith(t, node, Arith::Sub)
}

fn mul<'a>(t: &mut Tracer<'a>, node: &'a NodeProto) -> Result<Output<'a>, String> {
    arith(t, node, Arith::Mul)
}

fn div<'a>(t: &mut Tracer<'a>, node: &'a NodeProto) -> Result<Output<'a>, String> {
    arith(t, node, Arith::Div)
}

fn arith<'a>(t: &mut Tracer<'a>, node: &'a NodeProto, op: Arith) -> Result<Output<'a>, String> {
    let name = node.op_type.as_str();
    if node.input.len() != 2 {
        return Err(format!(
            "{name} needs exactly two inputs, this one has {}",
            node.input.len()
        ));
    }
    let out = match (t.operand(node, 0)?, t.operand(node, 1)?) {
        (Operand::Data(x), Operand::Data(y)) if op == Arith::Add => add_tensors(t, &x, &y)?,
        (Operand::Data(_), Operand::Data(_)) => {
            return Err(format!(
                "{name} of two computed tensors ('{}' and '{}') is not affine; one operand must \
                 be a constant (an initializer or a Constant node)",
                node.input[0], node.input[1]
            ))
        }
        (Operand::Data(x), Operand::Const(c)) => with_constant(t, node, &x, &c, op, false)?,
        (Operand::Const(c), Operand::Data(x)) => with_constant(t, node, &x, &c, op, true)?,
        (Operand::Const(_), Operand::Const(_)) => {
            unreachable!("arithmetic on constants is folded before it is translated")
        }
    };
    Ok(Output::Data(out))
}

/// `x op c` (or `c op x` when `constant_first`) for a constant `c` that broadcasts to `x`.
fn with_constant(
    t: &mut Tracer<'_>,
    node: &NodeProto,
    x: &Rc<Data>,
    c: &Tensor,
    op: Arith,
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
    match (op, constant_first) {
        (Arith::Add, _) => shift(t, x, value, dims),
        (Arith::Sub, false) => shift(t, x, value.iter().map(|v| -v).collect(), dims),
        (Arith::Sub, true) => {
            // c − x: the negation is exact, so −x is folded as it comes.
            let n = x.len();
            match &x.form {
                Form::Select(_) => {
                    let rows = (0..n as u32).map(|p| vec![(p, -1.0)]).collect();
                    t.linear(x, rows, value, dims)
                }
                Form::Map(map) => {
                    let negated = t.with(
                        x.dims.clone(),
                        Form::Map(scaled(map, &vec![-1.0; n], false)?),
                    );
                    shift(t, &Rc::new(negated), value, dims)
                }
            }
        }
        (Arith::Mul, _) => scale(t, x, &value, false, dims),
        (Arith::Div, false) => {
            if let Some(k) = value.iter().position(|&v| v == 0.0) {
                return Err(format!(
                    "Div by '{name}', which is 0 at element {k} of the result"
                ));
            }
            scale(t, x, &value, true, dims)
        }
        (Arith::Div, true) => Err(format!(
            "Div of the constant '{name}' by a computed tensor is not affine; only Div by a \
             constant is read"
        )),
    }
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

/// `x · factor` (or `x / factor` when `divide`), element by element.
fn scale(
    t: &mut Tracer<'_>,
    x: &Data,
    factor: &[f64],
    divide: bool,
    dims: Vec<usize>,
) -> Result<Data, String> {
    let q = |v: f64, p: usize| if divide { v / factor[p] } else { v * factor[p] };
    let map = match &x.form {
        Form::Select(elems) => {
            let (rows, bias): (Vec<_>, Vec<_>) = elems
                .iter()
                .enumerate()
                .map(|(p, e)| match *e {
                    Elem::Input(i) => (vec![(i, q(1.0, p))], 0.0),
                    Elem::Const(c) => (Vec::new(), q(c, p)),
                })
                .unzip();
            Map::Sparse(rows, bias)
        }
        Form::Map(map) => scaled(map, factor, divide)?,
    };
    if let Some(v) = non_finite(&map) {
        return Err(format!("scaling by the constant gives {v}, beyond f64"));
    }
    Ok(t.with(dims, Form::Map(map)))
}

/// Every weight and bias of output `p` multiplied (divided, when `divide`) by `factor[p]`,
/// each rounded once. A shared block whose copies would need different factors is written
/// out as sparse rows.
fn scaled(map: &Map, factor: &[f64], divide: bool) -> Result<Map, String> {
    let q = |v: f64, p: usize| if divide { v / factor[p] } else { v * factor[p] };
    let matrix = |w: &Array2<f64>, b: &Array1<f64>| {
        let (mut w, mut b) = (w.clone(), b.clone());
        for (j, mut row) in w.rows_mut().into_iter().enumerate() {
            row.mapv_inplace(|v| q(v, j));
            b[j] = q(b[j], j);
        }
        (w, b)
    };
    Ok(match map {
        Map::Dense(w, b) => {
            let (w, b) = matrix(w, b);
            Map::Dense(w, b)
        }
        Map::Shared(w, b, copies)
            if (0..factor.len()).all(|j| factor[j] == factor[j % w.nrows()]) =>
        {
            let (w, b) = matrix(w, b);
            Map::Shared(w, b, *copies)
        }
        Map::Shared(..) | Map::Sparse(..) | Map::Conv(..) | Map::Blocks(..) => {
            let (mut rows, mut b) = form_rows(&Form::Map(map.clone()))?;
            for (j, row) in rows.iter_mut().enumerate() {
                row.iter_mut().for_each(|(_, v)| *v = q(*v, j));
                b[j] = q(b[j], j);
            }
            Map::Sparse(rows, b)
        }
    })
}

/// The first weight or bias of `map` that is not finite.
fn non_finite(map: &Map) -> Option<f64> {
    let bad = |v: &&f64| !v.is_finite();
    match map {
        Map::Dense(w, b) | Map::Shared(w, b, _) => w.iter().chain(b.iter()).find(bad).copied(),
        Map::Conv(c) => c.kernel().iter().chain(c.channel_bias()).find(bad).copied(),
        Map::Blocks(b) => b.first_non_finite().map(|(_, _, v)| v),
        Map::Sparse(rows, b) => rows
            .iter()
            .flatten()
            .map(|(_, w)| w)
            .chain(b.iter())
            .find(bad)
            .copied(),
    }
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
    if t.split_residual {
        return add_apart(t, x, y);
    }
    // A convolution kept as its kernel plus a convolution or values of the layer input that
    // read other inputs: the two as parts of one map, the biases summed as below.
    if is_operator(&x.form) || is_operator(&y.form) {
        if let Some(blocks) = summed_parts(t.width, &x.form, &y.form)? {
            return Ok(t.with(x.dims.clone(), Form::Map(Map::Blocks(blocks))));
        }
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

/// Data plus data with the sum read apart (`--split-residual`): `x` and then `y`, each with
/// its own bias, are cut into a layer without activation, and the sum is an affine step with
/// weights 1 over its outputs, which the next cut makes a layer of its own. When either is a
/// convolution kept as its kernel (or a map of parts), the two stand side by side as one map
/// of parts ([`stacked_parts`]), so no row is built; otherwise as their rows.
fn add_apart(t: &mut Tracer<'_>, x: &Data, y: &Data) -> Result<Data, String> {
    let n = x.len();
    let stacked = if is_operator(&x.form) || is_operator(&y.form) {
        stacked_parts(t.width, &x.form, &y.form, n)
    } else {
        None
    };
    let form = match stacked {
        Some(blocks) => Form::Map(Map::Blocks(blocks)),
        None => {
            let ((mut rows, mut bias), (ry, by)) = (form_rows(&x.form)?, form_rows(&y.form)?);
            rows.extend(ry);
            bias.extend(by);
            Form::Map(Map::Sparse(rows, bias))
        }
    };
    let parts = Rc::new(t.with(vec![2 * n], form));
    let parts = t.cut_taken(parts, None)?;
    // The two halves of the cut, as consecutive inputs, added by two copies.
    let halves = match &parts.form {
        Form::Select(elems) => (input_range(&elems[..n]), input_range(&elems[n..])),
        Form::Map(_) => unreachable!("a cut gives selected elements"),
    };
    if let (Some(a), Some(b)) = halves {
        let copy = |input| Part {
            input,
            output: 0,
            map: PartMap::Copy(n),
        };
        if let Ok(blocks) = Blocks::new(t.width, vec![copy(a), copy(b)], vec![0.0; n]) {
            return Ok(t.with(x.dims.clone(), Form::Map(Map::Blocks(blocks))));
        }
    }
    let sum = (0..n as u32)
        .map(|p| vec![(p, 1.0), (n as u32 + p, 1.0)])
        .collect();
    t.linear(&parts, sum, vec![0.0; n], x.dims.clone())
}

/// `x + y` as one map of parts ([`Blocks`]), when both are such maps (or consecutive inputs)
/// and the parts adding into a common output read disjoint inputs; `None` otherwise.
fn summed_parts(width: usize, x: &Form, y: &Form) -> Result<Option<Blocks>, String> {
    let (Some((mut parts, bx)), Some((py, by))) = (form_parts(x, 0), form_parts(y, 0)) else {
        return Ok(None);
    };
    parts.extend(py);
    let mut bias = Vec::with_capacity(bx.len());
    for (ba, bb) in bx.into_iter().zip(by) {
        let sum = ba + bb;
        if !sum.is_finite() {
            return Err(format!("the biases {ba} and {bb} sum beyond f64"));
        }
        bias.push(sum);
    }
    Ok(Blocks::new(width, parts, bias).ok())
}

/// `x` and `y` (each `n` values) side by side as one map of parts ([`Blocks`]): `x`'s parts
/// adding into outputs `0..n` and `y`'s into `n..2n`, each with its own biases; `None` when
/// either is not such a map (or consecutive inputs).
fn stacked_parts(width: usize, x: &Form, y: &Form, n: usize) -> Option<Blocks> {
    let ((mut parts, mut bias), (py, by)) = (form_parts(x, 0)?, form_parts(y, n)?);
    parts.extend(py);
    bias.extend(by);
    Blocks::new(width, parts, bias).ok()
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
        Map::Conv(c) => {
            let shift = per_channel(c, shift)?;
            let mut c = c.clone();
            let b = shifted_bias(c.channel_bias(), &shift)?;
            c.channel_bias_mut().copy_from_slice(&b);
            Some(Map::Conv(c))
        }
        Map::Blocks(b) => {
            let (parts, bias) = b.clone().into_parts();
            let bias = shifted_bias(&bias, shift)?;
            Blocks::new(b.in_dim(), parts, bias).ok().map(Map::Blocks)
        }
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
        Map::Conv(c) => {
            let bias = per_channel(c, bias)?;
            let mut c = c.clone();
            c.channel_bias_mut().copy_from_slice(&bias);
            Some(Map::Conv(c))
        }
        Map::Blocks(b) => {
            let (parts, _) = b.clone().into_parts();
            Blocks::new(b.in_dim(), parts, bias.to_vec())
                .ok()
                .map(Map::Blocks)
        }
        Map::Shared(w, _, copies) => {
            let rows = w.nrows();
            let same = (0..bias.len()).all(|j| bias[j] == bias[j % rows]);
            same.then(|| Map::Shared(w.clone(), Array1::from(bias[..rows].to_vec()), *copies))
        }
    }
}

/// One value per output channel of `conv`, when `values` (one per output) is the same across
/// each channel.
fn per_channel(conv: &Conv, values: &[f64]) -> Option<Vec<f64>> {
    let [channels, h, w] = conv.output();
    let area = h * w;
    let same = values.len() == channels * area
        && values.chunks(area).all(|c| c.iter().all(|&v| v == c[0]));
    same.then(|| values.iter().step_by(area).copied().collect())
}
