//! ReduceSum and ReduceMean over dimensions after the batch: an affine step whose rows sum (or
//! average, with weights `1/count` each the f64 nearest it, as average pooling) the reduced
//! elements.

use onnx_protobuf::NodeProto;

use super::{Op, Reads};
use crate::model::onnx::fold::{axis, strides};
use crate::model::onnx::proto::{attr_int, attr_ints};
use crate::model::onnx::state::{Output, SparseRows, Tracer};

pub(super) const OPS: &[Op] = &[
    Op {
        name: "ReduceSum",
        attributes: &["axes", "keepdims", "noop_with_empty_axes"],
        reads: Reads::First,
        on_constants: false,
        translate: reduce,
    },
    Op {
        name: "ReduceMean",
        attributes: &["axes", "keepdims", "noop_with_empty_axes"],
        reads: Reads::First,
        on_constants: false,
        translate: reduce,
    },
];

/// ReduceSum, or ReduceMean (the sum with weights `1/count`, each the f64 nearest it, as in
/// average pooling).
fn reduce<'a>(t: &mut Tracer<'a>, node: &'a NodeProto) -> Result<Output<'a>, String> {
    let op = node.op_type.as_str();
    let x = t.data(node, 0)?;
    let rank = x.dims.len();
    // The axes became an input at opset 13 for ReduceSum, at 18 for ReduceMean.
    let axes_input = if op == "ReduceSum" { 13 } else { 18 };
    let axes = match node.input.get(1).filter(|n| !n.is_empty()) {
        Some(name) if t.opset >= axes_input => Some(t.ints(name)?),
        Some(name) => {
            return Err(format!(
                "axes as an input ('{name}') before opset {axes_input}"
            ))
        }
        None => attr_ints(node, "axes")?,
    };
    let noop = attr_int(node, "noop_with_empty_axes")?.unwrap_or(0) != 0;
    let mut reduced: Vec<usize> = match axes {
        Some(a) if !a.is_empty() => a
            .iter()
            .map(|&v| axis(v, rank, "axis"))
            .collect::<Result<_, _>>()?,
        _ if noop => return Ok(Output::Data(x.as_ref().clone())),
        _ => (0..rank).collect(),
    };
    reduced.sort_unstable();
    reduced.dedup();
    if reduced.contains(&0) {
        return Err(format!("{op} over the batch dimension mixes samples"));
    }
    let count: usize = reduced.iter().map(|&k| x.dims[k]).product();
    let weight = if op == "ReduceSum" {
        1.0
    } else {
        1.0 / count as f64
    };
    let keep = attr_int(node, "keepdims")?.unwrap_or(1) != 0;
    let kept_dims: Vec<usize> = (0..rank)
        .map(|k| if reduced.contains(&k) { 1 } else { x.dims[k] })
        .collect();
    let outputs: usize = kept_dims.iter().product();
    let (si, so) = (strides(&x.dims), strides(&kept_dims));
    let n: usize = x.dims.iter().product();
    let mut rows: SparseRows = vec![Vec::new(); outputs];
    for p in 0..n {
        let o: usize = (0..rank)
            .map(|k| {
                let i = (p / si[k]) % x.dims[k];
                if reduced.contains(&k) {
                    0
                } else {
                    i * so[k]
                }
            })
            .sum();
        rows[o].push((p as u32, weight));
    }
    let dims = if keep {
        kept_dims
    } else {
        (0..rank)
            .filter(|k| !reduced.contains(k))
            .map(|k| x.dims[k])
            .collect()
    };
    Ok(Output::Data(t.linear(
        &x,
        rows,
        vec![0.0; outputs],
        dims,
    )?))
}
