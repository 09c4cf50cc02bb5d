//! Dropout: in inference it passes its input through; a graph exported in training mode is
//! refused because the function would be random.

use std::borrow::Cow;
use std::collections::HashMap;

use onnx_protobuf::{NodeProto, TensorProto};

use super::{Op, Reads};
use crate::model::onnx::proto::{bool_values, required_input};
use crate::model::onnx::state::{Output, Tracer};

pub(super) const OPS: &[Op] = &[Op {
    name: "Dropout",
    attributes: &["ratio", "seed"],
    reads: Reads::First,
    on_constants: true,
    translate: dropout,
}];

/// The input as it is: computed data, the graph input while its sizes are unknown, or a
/// constant.
fn dropout<'a>(t: &mut Tracer<'a>, node: &'a NodeProto) -> Result<Output<'a>, String> {
    inference_dropout(node, &t.consts)?;
    let name = required_input(node, 0, "input")?;
    if let Some(u) = t.unknown.get(name) {
        return Ok(Output::Unsized(*u));
    }
    if let Some(c) = t.consts.get(name) {
        return Ok(Output::Const(c.clone()));
    }
    Ok(Output::Data(t.data(node, 0)?.as_ref().clone()))
}

/// Refuses a Dropout whose training_mode input is true.
fn inference_dropout(
    node: &NodeProto,
    consts: &HashMap<&str, Cow<'_, TensorProto>>,
) -> Result<(), String> {
    if let Some(name) = node.input.get(2).filter(|n| !n.is_empty()) {
        let training = consts
            .get(name.as_str())
            .map(|t| bool_values(name, t))
            .transpose()?
            .unwrap_or_default();
        if training.iter().any(|&b| b) {
            return Err(format!(
                "training_mode '{name}' is true, so the output is random; export the model after model.eval()"
            ));
        }
    }
    Ok(())
}
