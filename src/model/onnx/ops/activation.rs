//! Relu: the activation that closes a layer.

use onnx_protobuf::NodeProto;

use super::{Op, Reads};
use crate::model::onnx::state::{is_identity, Form, Output, Tracer};

pub(super) const OPS: &[Op] = &[Op {
    name: "Relu",
    attributes: &[],
    reads: Reads::First,
    on_constants: false,
    translate: relu,
}];

/// `relu`: cuts the affine map before it into a layer with a ReLU, whose outputs are the next
/// layer's input. A Relu of a ReLU layer's outputs changes nothing (consecutive Relus collapse
/// into one); after a max-pool layer, or of rearranged elements, it is a layer of its own
/// copying each element. A Relu of the graph input itself is refused: it must follow an
/// affine layer.
fn relu<'a>(t: &mut Tracer<'a>, node: &'a NodeProto) -> Result<Output<'a>, String> {
    let x = t.take_data(node, 0)?;
    if t.layers.is_empty() && matches!(x.form, Form::Select(_)) {
        return Err("Relu on the raw input; a Relu must follow an affine layer".into());
    }
    if let (Form::Select(elems), Some(last)) = (&x.form, t.layers.last()) {
        if last.relu && last.linear_tail == 0 && is_identity(elems, t.width) {
            return Ok(Output::Data(x.as_ref().clone()));
        }
    }
    Ok(Output::Data(t.cut_taken(x, true)?))
}
