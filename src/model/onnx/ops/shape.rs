//! Operators that only move and copy elements: Flatten, Reshape, Transpose, Unsqueeze,
//! Squeeze, Expand, Concat, and Identity. An affine operator after them composes exactly.
//! Flatten and a Reshape of `[batch, features]` to `[batch, features]` keep the batch
//! dimension, so that no value moves between samples; other reshapes read the graph for a
//! batch of one (as relation networks are exported).

use onnx_protobuf::NodeProto;

use super::{Op, Reads};
use crate::model::onnx::fold::{self, axis, broadcast_positions, count, reshaped};
use crate::model::onnx::proto::{attr_int, attr_ints, required_input};
use crate::model::onnx::state::{
    rows_of, Batch, Elem, Form, Map, Operand, Output, Rows, Tracer, Unsized,
};

pub(super) const OPS: &[Op] = &[
    Op {
        name: "Flatten",
        attributes: &["axis"],
        reads: Reads::First,
        on_constants: false,
        translate: flatten,
    },
    Op {
        name: "Reshape",
        attributes: &["allowzero"],
        reads: Reads::First,
        on_constants: false,
        translate: reshape,
    },
    Op {
        name: "Transpose",
        attributes: &["perm"],
        reads: Reads::First,
        on_constants: false,
        translate: transpose,
    },
    Op {
        name: "Unsqueeze",
        attributes: &["axes"],
        reads: Reads::First,
        on_constants: false,
        translate: squeeze,
    },
    Op {
        name: "Squeeze",
        attributes: &["axes"],
        reads: Reads::First,
        on_constants: false,
        translate: squeeze,
    },
    Op {
        name: "Expand",
        attributes: &[],
        reads: Reads::First,
        on_constants: false,
        translate: expand,
    },
    Op {
        name: "Concat",
        attributes: &["axis"],
        reads: Reads::Any,
        on_constants: false,
        translate: concat,
    },
    Op {
        name: "Identity",
        attributes: &[],
        reads: Reads::First,
        on_constants: false,
        translate: identity,
    },
];

/// The elements in their order, under another name.
fn identity<'a>(t: &mut Tracer<'a>, node: &'a NodeProto) -> Result<Output<'a>, String> {
    let name = required_input(node, 0, "input")?;
    if let Some(u) = t.unknown.get(name) {
        return Ok(Output::Unsized(*u));
    }
    Ok(Output::Data(t.data(node, 0)?.as_ref().clone()))
}

/// Flatten keeps the batch and joins every later dimension: only axis 1 is read.
fn flatten<'a>(t: &mut Tracer<'a>, node: &'a NodeProto) -> Result<Output<'a>, String> {
    let axis = attr_int(node, "axis")?.unwrap_or(1);
    let name = required_input(node, 0, "input")?;
    if let Some(u) = t.unknown.get(name).copied() {
        keeps_batch(axis, u.rank.unwrap_or(2))?;
        return Ok(Output::Unsized(Unsized { rank: Some(2), ..u }));
    }
    let x = t.data(node, 0)?;
    let rank = if t.batch == Batch::Unbatched {
        1
    } else {
        x.dims.len()
    };
    keeps_batch(axis, rank)?;
    let dims = vec![x.dims[0], x.dims[1..].iter().product()];
    let n = x.len();
    Ok(Output::Data(t.gather(
        &x,
        &(0..n).collect::<Vec<_>>(),
        dims,
    )?))
}

/// Refuses a Flatten whose split is not right after the batch dimension.
fn keeps_batch(axis: i64, rank: usize) -> Result<(), String> {
    if rank < 2 {
        return Err(
            "Flatten of an unbatched vector would change which values form a sample".into(),
        );
    }
    let resolved = if axis < 0 { axis + rank as i64 } else { axis };
    if resolved != 1 {
        return Err(format!(
            "Flatten with axis {axis} on a rank-{rank} tensor mixes samples; only axis 1 (keep the batch) is supported"
        ));
    }
    Ok(())
}

/// Reshape, its target written with `0` (copy) or `-1` (infer) entries. A `[batch, features]`
/// tensor reshaped to two dimensions keeps its batch (first entry 0, -1 or the static batch)
/// and its samples; the graph input without static sizes is reshaped only that way.
fn reshape<'a>(t: &mut Tracer<'a>, node: &'a NodeProto) -> Result<Output<'a>, String> {
    let shape_name = required_input(node, 1, "shape")?;
    let mut target = t.ints(shape_name)?;
    let allow_zero = attr_int(node, "allowzero")?.unwrap_or(0) != 0;
    let name = required_input(node, 0, "data")?;
    if let Some(u) = t.unknown.get(name).copied() {
        return reshape_unsized(t, u, &target, shape_name, allow_zero);
    }
    let x = t.data(node, 0)?;
    if t.batch == Batch::Unbatched {
        return Err("Reshape of an unbatched vector is not supported".into());
    }
    // A batch entry computed from the data's sizes (read with a batch of one) is the batch.
    let keeps = match target.first() {
        Some(0 | -1) => true,
        Some(1) if t.from_sizes.contains(shape_name) => true,
        Some(&k) => k > 0 && t.batch == Batch::Static(k as u64),
        None => false,
    };
    // A static batch written out is the batch, read as one sample.
    if keeps && target[0] > 1 {
        target[0] = 1;
    }
    let dims = reshaped(&x.dims, &target, allow_zero)?;
    if x.dims.len() == 2 && dims.len() == 2 {
        if !keeps {
            return Err(format!(
                "Reshape to {:?} (from '{shape_name}') does not keep the batch dimension; \
                 use 0 or -1 as its first entry",
                t.ints(shape_name)?
            ));
        }
        if dims != x.dims {
            return Err(format!(
                "Reshape to {:?} (from '{shape_name}') would split or join samples of {} values",
                t.ints(shape_name)?,
                x.dims[1]
            ));
        }
    }
    let n = count(&dims)?;
    Ok(Output::Data(t.gather(
        &x,
        &(0..n).collect::<Vec<_>>(),
        dims,
    )?))
}

/// Reshape of the graph input while its sizes are unknown: to `[batch, k]`, which sizes it, or
/// to `[batch, -1]`, which keeps it as it is.
fn reshape_unsized<'a>(
    t: &mut Tracer<'a>,
    u: Unsized,
    target: &[i64],
    shape_name: &str,
    allow_zero: bool,
) -> Result<Output<'a>, String> {
    let rank = u.rank.unwrap_or(2);
    if rank < 2 {
        return Err("Reshape of an unbatched vector is not supported".into());
    }
    let &[first, second] = target else {
        return Err(format!(
            "Reshape to {target:?} (from '{shape_name}') of the graph input, whose sizes are not \
             static: only a reshape to [batch, features] is read"
        ));
    };
    if allow_zero && (first == 0 || second == 0) {
        return Err(format!(
            "Reshape to {target:?} with allowzero = 1 makes an empty tensor"
        ));
    }
    let keeps_batch = match first {
        0 | -1 => true,
        k => k > 0 && t.batch == Batch::Static(k as u64),
    };
    if !keeps_batch {
        return Err(format!(
            "Reshape to {target:?} (from '{shape_name}') does not keep the batch dimension; \
             use 0 or -1 as its first entry"
        ));
    }
    match second {
        -1 if first != -1 => Ok(Output::Unsized(Unsized { rank: Some(2), ..u })),
        0 if rank == 2 => Ok(Output::Unsized(u)),
        k if k > 0 => {
            if let Some(w) = u.width.filter(|&w| w != k as u64) {
                return Err(format!(
                    "Reshape to {target:?} (from '{shape_name}') would split or join samples of {w} values"
                ));
            }
            let k = usize::try_from(k).map_err(|_| format!("Reshape to {target:?}"))?;
            Ok(Output::Data(t.size_input(&u, k)?))
        }
        _ => Err(format!(
            "Reshape to {target:?} (from '{shape_name}') is not [batch, features]"
        )),
    }
}

/// Transpose by `perm` (reversed by default).
fn transpose<'a>(t: &mut Tracer<'a>, node: &'a NodeProto) -> Result<Output<'a>, String> {
    let x = t.data(node, 0)?;
    let (dims, from) = fold::transposed(node, &x.dims)?;
    Ok(Output::Data(t.gather(&x, &from, dims)?))
}

/// Unsqueeze and Squeeze: the elements keep their order.
fn squeeze<'a>(t: &mut Tracer<'a>, node: &'a NodeProto) -> Result<Output<'a>, String> {
    let x = t.data(node, 0)?;
    let axes = match node.input.get(1).filter(|n| !n.is_empty()) {
        Some(name) if t.opset >= 13 => Some(t.ints(name)?),
        Some(name) => return Err(format!("axes as an input ('{name}') before opset 13")),
        None => attr_ints(node, "axes")?,
    };
    let dims = fold::squeezed(&node.op_type, &x.dims, axes, 1)?;
    let n = x.len();
    Ok(Output::Data(t.gather(
        &x,
        &(0..n).collect::<Vec<_>>(),
        dims,
    )?))
}

/// Expand: NumPy's broadcast to a shape, copying elements; the batch stays 1.
fn expand<'a>(t: &mut Tracer<'a>, node: &'a NodeProto) -> Result<Output<'a>, String> {
    let x = t.data(node, 0)?;
    let shape_name = required_input(node, 1, "shape")?;
    let shape = t.ints(shape_name)?;
    let rank = shape.len().max(x.dims.len());
    let mut dims = vec![1usize; rank];
    for (k, d) in dims.iter_mut().enumerate() {
        let from = (k + x.dims.len()).checked_sub(rank).map(|i| x.dims[i]);
        let to = (k + shape.len()).checked_sub(rank).map(|i| shape[i]);
        *d = match (from, to) {
            (Some(a), None) => a,
            (Some(a), Some(b)) if b == 1 || b as usize == a => a,
            (Some(1) | None, Some(b)) if b >= 1 => b as usize,
            _ => {
                return Err(format!(
                    "Expand of shape {:?} to {shape:?} does not broadcast",
                    x.dims
                ))
            }
        };
    }
    if dims[0] != 1 {
        return Err(format!("Expand to {shape:?} makes a batch of {}", dims[0]));
    }
    let from = broadcast_positions(&x.dims, &dims)?;
    Ok(Output::Data(t.gather(&x, &from, dims)?))
}

/// Concat of computed tensors and constants along one axis.
fn concat<'a>(t: &mut Tracer<'a>, node: &'a NodeProto) -> Result<Output<'a>, String> {
    if node.input.is_empty() {
        return Err("Concat without inputs".into());
    }
    let parts: Vec<Operand> = (0..node.input.len())
        .map(|pos| t.operand(node, pos))
        .collect::<Result<_, _>>()?;
    let shapes: Vec<&[usize]> = parts
        .iter()
        .map(|p| match p {
            Operand::Data(d) => &d.dims[..],
            Operand::Const(c) => &c.dims[..],
        })
        .collect();
    let rank = shapes[0].len();
    let a = axis(
        attr_int(node, "axis")?.ok_or("Concat without an axis")?,
        rank,
        "axis",
    )?;
    for s in &shapes {
        let same = s.len() == rank && (0..rank).all(|k| k == a || s[k] == shapes[0][k]);
        if !same {
            return Err(format!(
                "Concat along axis {a} of shapes {shapes:?}: the other dimensions differ"
            ));
        }
    }
    let mut dims = shapes[0].to_vec();
    dims[a] = shapes.iter().map(|s| s[a]).sum();
    let n = count(&dims)?;
    let selected = parts.iter().all(|p| match p {
        Operand::Data(d) => matches!(d.form, Form::Select(_)),
        Operand::Const(_) => true,
    });
    // Each part's elements, and where each output element comes from.
    let outer: usize = dims[..a].iter().product();
    let inner: usize = dims[a + 1..].iter().product();
    let mut source = Vec::with_capacity(n);
    for o in 0..outer {
        for (part, s) in shapes.iter().enumerate() {
            for i in 0..s[a] * inner {
                source.push((part, o * s[a] * inner + i));
            }
        }
    }
    if selected {
        let elems: Vec<Vec<Elem>> = parts
            .iter()
            .map(|p| match p {
                Operand::Data(d) => match &d.form {
                    Form::Select(e) => e.clone(),
                    Form::Map(_) => unreachable!("checked above"),
                },
                Operand::Const(c) => c.data.iter().map(|&v| Elem::Const(v)).collect(),
            })
            .collect();
        let form = Form::Select(source.iter().map(|&(part, i)| elems[part][i]).collect());
        return Ok(Output::Data(t.with(dims, form)));
    }
    // Parts that are maps: their rows, concatenated into one map.
    let mut rows = Vec::with_capacity(n);
    let mut bias = Vec::with_capacity(n);
    let materialised: Vec<Rows> = parts.iter().map(rows_of).collect::<Result<_, _>>()?;
    for (part, i) in source {
        rows.push(materialised[part].0[i].clone());
        bias.push(materialised[part].1[i]);
    }
    Ok(Output::Data(
        t.with(dims, Form::Map(Map::Sparse(rows, bias))),
    ))
}
