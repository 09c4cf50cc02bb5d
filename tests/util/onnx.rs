//! ONNX graphs built in memory, as torch writes them, for loader tests.

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::{dimension, Dimension};
use onnx_protobuf::{
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};

/// A float initializer, its values stored as raw little-endian bytes (as torch writes them).
pub fn floats(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.dims = dims.to_vec();
    t.data_type = DataType::FLOAT as i32;
    t.raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    t
}

/// A double initializer.
pub fn doubles(name: &str, dims: &[i64], values: &[f64]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.dims = dims.to_vec();
    t.data_type = DataType::DOUBLE as i32;
    t.double_data = values.to_vec();
    t
}

pub fn attr_int(name: &str, v: i64) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::INT.into();
    a.i = v;
    a
}

pub fn attr_ints(name: &str, v: &[i64]) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::INTS.into();
    a.ints = v.to_vec();
    a
}

pub fn node(
    op: &str,
    name: &str,
    inputs: &[&str],
    outputs: &[&str],
    attrs: Vec<AttributeProto>,
) -> NodeProto {
    let mut n = NodeProto::new();
    n.op_type = op.into();
    n.name = name.into();
    n.input = inputs.iter().map(|s| s.to_string()).collect();
    n.output = outputs.iter().map(|s| s.to_string()).collect();
    n.attribute = attrs;
    n
}

/// A tensor value of element type `elem`; `None` dimensions are dynamic (`batch`).
pub fn value(name: &str, dims: &[Option<i64>], elem: DataType) -> ValueInfoProto {
    let mut shape = TensorShapeProto::new();
    for d in dims {
        let mut dim = Dimension::new();
        dim.value = Some(match d {
            Some(n) => dimension::Value::DimValue(*n),
            None => dimension::Value::DimParam("batch".into()),
        });
        shape.dim.push(dim);
    }
    let mut tensor = type_proto::Tensor::new();
    tensor.elem_type = elem as i32;
    tensor.shape = Some(shape).into();
    let mut ty = TypeProto::new();
    ty.value = Some(type_proto::Value::TensorType(tensor));
    let mut v = ValueInfoProto::new();
    v.name = name.into();
    v.type_ = Some(ty).into();
    v
}

/// A model of one graph (operator set 17) from its nodes, initializers, input and output.
pub fn model(
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    input: ValueInfoProto,
    output: ValueInfoProto,
) -> ModelProto {
    let mut g = GraphProto::new();
    g.name = "main_graph".into();
    g.node = nodes;
    g.initializer = inits;
    g.input = vec![input];
    g.output = vec![output];
    let mut set = OperatorSetIdProto::new();
    set.version = 17;
    let mut m = ModelProto::new();
    m.ir_version = 8;
    m.producer_name = "pytorch".into();
    m.graph = Some(g).into();
    m.opset_import = vec![set];
    m
}
