//! Relu, Clip, LeakyRelu and PRelu: the piecewise-linear activations that close a layer.

use std::rc::Rc;

use onnx_protobuf::NodeProto;

use super::{Op, Reads};
use crate::model::ir::Activation;
use crate::model::onnx::proto::{attr_float, required_input};
use crate::model::onnx::state::{is_identity, Data, Form, Output, Tracer};

pub(super) const OPS: &[Op] = &[
    Op {
        name: "Relu",
        attributes: &[],
        reads: Reads::First,
        on_constants: false,
        translate: relu,
    },
    Op {
        name: "Clip",
        attributes: &["min", "max"],
        reads: Reads::First,
        on_constants: false,
        translate: clip,
    },
    Op {
        name: "LeakyRelu",
        attributes: &["alpha"],
        reads: Reads::First,
        on_constants: false,
        translate: leaky_relu,
    },
    Op {
        name: "PRelu",
        attributes: &[],
        reads: Reads::First,
        on_constants: false,
        translate: prelu,
    },
];

/// `relu`: cuts the affine map before it into a layer with a ReLU, whose outputs are the next
/// layer's input. A Relu of a ReLU layer's outputs changes nothing (consecutive Relus collapse
/// into one); after a max-pool layer, or of rearranged elements, it is a layer of its own
/// copying each element. A Relu of the graph input itself is refused: it must follow an
/// affine layer.
fn relu<'a>(t: &mut Tracer<'a>, node: &'a NodeProto) -> Result<Output<'a>, String> {
    let x = t.take_data(node, 0)?;
    if let (Form::Select(elems), Some(last)) = (&x.form, t.layers.last()) {
        if last.relu
            && last.activation.is_relu()
            && last.linear_tail == 0
            && is_identity(elems, t.width)
        {
            return Ok(Output::Data(x.as_ref().clone()));
        }
    }
    activate(t, x, "Relu", Activation::Relu)
}

/// Cuts `x` into a layer with `activation`, as [`relu`] does (taking `x`'s weights when no
/// other node reads it); refused on the raw input.
fn activate<'a>(
    t: &mut Tracer<'a>,
    x: Rc<Data>,
    op: &str,
    activation: Activation,
) -> Result<Output<'a>, String> {
    if t.layers.is_empty() && matches!(x.form, Form::Select(_)) {
        return Err(format!(
            "{op} on the raw input; a {op} must follow an affine layer"
        ));
    }
    activation.check(x.len())?;
    Ok(Output::Data(t.cut_taken(x, Some(activation))?))
}

/// `min(max(x, min), max)` with constant bounds: inputs 1 and 2 (either may be left out) from
/// opset 11 on, attributes before it (where ±3.4028235e38, the largest f32, is the default
/// and means no bound). Clip(0, ∞) is a ReLU; a Clip with neither bound passes its input
/// through.
fn clip<'a>(t: &mut Tracer<'a>, node: &'a NodeProto) -> Result<Output<'a>, String> {
    let x = t.take_data(node, 0)?;
    let bound = |pos: usize, attribute: &str| -> Result<Option<f64>, String> {
        if t.opset < 11 {
            let v = attr_float(node, attribute)?;
            return Ok(v.filter(|v| v.abs() != f64::from(f32::MAX)));
        }
        if node.attribute.iter().any(|a| a.name == attribute) {
            return Err(format!(
                "attribute '{attribute}' belongs to Clip before opset 11; opset {} gives the bounds as inputs",
                t.opset
            ));
        }
        let Some(name) = node.input.get(pos).filter(|n| !n.is_empty()) else {
            return Ok(None);
        };
        let v = t.floats(name)?;
        match v.data[..] {
            [v] if v.is_finite() => Ok(Some(v)),
            [v] => Err(format!(
                "Clip {attribute} '{name}' is {v}, it must be finite"
            )),
            _ => Err(format!(
                "Clip {attribute} '{name}' holds {} values; a Clip bound is one value",
                v.data.len()
            )),
        }
    };
    let (lo, hi) = (bound(1, "min")?, bound(2, "max")?);
    match (lo, hi) {
        (None, None) => Ok(Output::Data(x.as_ref().clone())),
        (Some(0.0), None) => activate(t, x, "Clip", Activation::Relu),
        (lo, hi) => activate(t, x, "Clip", Activation::Clip { lo, hi }),
    }
}

/// `x` above 0, `alpha · x` below (alpha 0.01 unless given): LeakyRelu(0) is a ReLU and
/// LeakyRelu(1) passes its input through.
fn leaky_relu<'a>(t: &mut Tracer<'a>, node: &'a NodeProto) -> Result<Output<'a>, String> {
    let x = t.take_data(node, 0)?;
    // The attribute is an f32: its default is the f32 nearest 0.01, as onnxruntime uses it.
    let alpha = attr_float(node, "alpha")?.unwrap_or(f64::from(0.01f32));
    match alpha {
        1.0 => Ok(Output::Data(x.as_ref().clone())),
        0.0 => activate(t, x, "LeakyRelu", Activation::Relu),
        alpha => activate(t, x, "LeakyRelu", Activation::LeakyRelu { alpha }),
    }
}

/// `x` above 0, `slope · x` below, the constant slope (input 1) broadcast to `x`'s shape
/// from the right as ONNX broadcasts: `[C]` for `[N, C]` data and `[C, 1, 1]` for images
/// give one slope per channel, `[1]` one for all.
fn prelu<'a>(t: &mut Tracer<'a>, node: &'a NodeProto) -> Result<Output<'a>, String> {
    let x = t.take_data(node, 0)?;
    let name = required_input(node, 1, "slope")?;
    let slope = t.floats(name)?;
    let slopes = broadcast(&slope.data, &slope.dims, &x.dims).ok_or_else(|| {
        format!(
            "slope '{name}' of shape {:?} does not broadcast to the data's shape {:?}",
            slope.dims, x.dims
        )
    })?;
    if slopes.iter().all(|&s| s == 0.0) {
        return activate(t, x, "PRelu", Activation::Relu);
    }
    activate(t, x, "PRelu", Activation::PRelu { slopes })
}

/// `values` of shape `from` repeated to shape `to` (numpy broadcasting, `from` aligned to the
/// right and never larger than `to`), in row-major order; `None` when they do not broadcast.
fn broadcast(values: &[f64], from: &[usize], to: &[usize]) -> Option<Vec<f64>> {
    if from.len() > to.len() {
        return None;
    }
    let pad = to.len() - from.len();
    let mut strides = vec![0usize; to.len()];
    let mut stride = 1;
    for (k, &d) in from.iter().enumerate().rev() {
        let axis = pad + k;
        if d == to[axis] {
            strides[axis] = stride;
        } else if d != 1 {
            return None;
        }
        stride *= d;
    }
    let total: usize = to.iter().product();
    let mut out = Vec::with_capacity(total);
    for p in 0..total {
        let (mut rest, mut at) = (p, 0);
        for axis in (0..to.len()).rev() {
            at += (rest % to[axis]) * strides[axis];
            rest /= to[axis];
        }
        out.push(values[at]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::broadcast;

    #[test]
    fn slopes_broadcast_from_the_right() {
        let s = [1.0, 2.0];
        assert_eq!(
            broadcast(&s, &[2, 1, 1], &[1, 2, 2, 1]),
            Some(vec![1.0, 1.0, 2.0, 2.0])
        );
        assert_eq!(broadcast(&s, &[2], &[1, 2]), Some(vec![1.0, 2.0]));
        assert_eq!(broadcast(&[3.0], &[1], &[1, 3]), Some(vec![3.0; 3]));
        assert_eq!(broadcast(&s, &[2], &[1, 3]), None);
        assert_eq!(broadcast(&s, &[1, 1, 2], &[2]), None);
    }
}
