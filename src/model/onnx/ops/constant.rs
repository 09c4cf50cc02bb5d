//! Constant: a tensor held in the node, which acts like an initializer named after its output.

use std::borrow::Cow;

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::{NodeProto, TensorProto};

use super::{Op, Reads};
use crate::model::onnx::proto::attribute_type_name;
use crate::model::onnx::state::{Output, Tracer};

pub(super) const OPS: &[Op] = &[Op {
    name: "Constant",
    attributes: &[
        "value",
        "value_float",
        "value_floats",
        "value_int",
        "value_ints",
    ],
    reads: Reads::Nothing,
    on_constants: true,
    translate: constant,
}];

fn constant<'a>(_: &mut Tracer<'a>, node: &'a NodeProto) -> Result<Output<'a>, String> {
    if !node.input.is_empty() {
        return Err("a Constant node takes no inputs".into());
    }
    Ok(Output::Const(constant_tensor(node)?))
}

/// The tensor a Constant node holds.
fn constant_tensor(node: &NodeProto) -> Result<Cow<'_, TensorProto>, String> {
    let [attr] = node.attribute.as_slice() else {
        return Err(format!(
            "a Constant node needs exactly one value attribute, found {}",
            node.attribute.len()
        ));
    };
    let kind = attr.type_.enum_value();
    let mut t = TensorProto::new();
    Ok(match (attr.name.as_str(), kind) {
        ("value", Ok(AttributeType::TENSOR)) => match attr.t.as_ref() {
            Some(v) => Cow::Borrowed(v),
            None => return Err("the Constant's 'value' attribute holds no tensor".into()),
        },
        ("value_float", Ok(AttributeType::FLOAT)) => {
            t.data_type = DataType::FLOAT as i32;
            t.float_data = vec![attr.f];
            Cow::Owned(t)
        }
        ("value_floats", Ok(AttributeType::FLOATS)) => {
            t.data_type = DataType::FLOAT as i32;
            t.dims = vec![attr.floats.len() as i64];
            t.float_data = attr.floats.clone();
            Cow::Owned(t)
        }
        ("value_int", Ok(AttributeType::INT)) => {
            t.data_type = DataType::INT64 as i32;
            t.int64_data = vec![attr.i];
            Cow::Owned(t)
        }
        ("value_ints", Ok(AttributeType::INTS)) => {
            t.data_type = DataType::INT64 as i32;
            t.dims = vec![attr.ints.len() as i64];
            t.int64_data = attr.ints.clone();
            Cow::Owned(t)
        }
        (name, kind) => {
            return Err(format!(
                "the Constant's attribute '{name}' has type {}, which does not match its name",
                attribute_type_name(kind)
            ))
        }
    })
}
