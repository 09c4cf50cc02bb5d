//! Tests of the ONNX loader, by concern; graphs built in memory as torch writes them.

mod activations;
mod dense;
mod elementwise;
mod files;
mod graphs;
mod images;
mod softmax;

use std::path::{Path, PathBuf};

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::{dimension, Dimension};
use onnx_protobuf::{
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto, TensorProto,
    TensorShapeProto, TypeProto, ValueInfoProto,
};
use protobuf::Message;

use super::{load, load_bytes, load_bytes_with, OnnxOptions};
use crate::error::Result;
use crate::model::forward::output;
use crate::model::ir::Network;

pub(super) fn floats(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.dims = dims.to_vec();
    t.data_type = DataType::FLOAT as i32;
    // torch writes raw little-endian bytes; float_data is covered by `floats_listed`.
    t.raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    t
}

pub(super) fn floats_listed(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
    let mut t = floats(name, dims, &[]);
    t.float_data = values.to_vec();
    t
}

pub(super) fn doubles(name: &str, dims: &[i64], values: &[f64]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.dims = dims.to_vec();
    t.data_type = DataType::DOUBLE as i32;
    t.double_data = values.to_vec();
    t
}

pub(super) fn int64s(name: &str, values: &[i64]) -> TensorProto {
    let mut t = TensorProto::new();
    t.name = name.into();
    t.dims = vec![values.len() as i64];
    t.data_type = DataType::INT64 as i32;
    t.raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    t
}

pub(super) fn attr_f(name: &str, v: f32) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::FLOAT.into();
    a.f = v;
    a
}

pub(super) fn attr_i(name: &str, v: i64) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::INT.into();
    a.i = v;
    a
}

pub(super) fn attr_t(name: &str, t: TensorProto) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::TENSOR.into();
    a.t = Some(t).into();
    a
}

pub(super) fn node(
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

/// A float tensor value; `None` dimensions are dynamic (`dim_param`).
pub(super) fn value(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
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
    tensor.elem_type = DataType::FLOAT as i32;
    tensor.shape = Some(shape).into();
    let mut ty = TypeProto::new();
    ty.value = Some(type_proto::Value::TensorType(tensor));
    let mut v = ValueInfoProto::new();
    v.name = name.into();
    v.type_ = Some(ty).into();
    v
}

pub(super) fn model(
    nodes: Vec<NodeProto>,
    inits: Vec<TensorProto>,
    input: ValueInfoProto,
    out: ValueInfoProto,
) -> ModelProto {
    let mut g = GraphProto::new();
    g.name = "main_graph".into();
    g.node = nodes;
    g.initializer = inits;
    g.input = vec![input];
    g.output = vec![out];
    let mut set = OperatorSetIdProto::new();
    set.version = 17;
    let mut m = ModelProto::new();
    m.ir_version = 8;
    m.producer_name = "pytorch".into();
    m.graph = Some(g).into();
    m.opset_import = vec![set];
    m
}

pub(super) fn write_bytes(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("model.onnx");
    std::fs::write(&path, bytes).expect("write model");
    (dir, path)
}

pub(super) fn load_model(m: &ModelProto) -> Result<Network> {
    let (_dir, path) = write_bytes(&m.write_to_bytes().expect("serialise"));
    load(&path)
}

pub(super) fn load_err(m: &ModelProto) -> String {
    match load_model(m) {
        Ok(net) => panic!("expected an error, loaded {}", net.describe()),
        Err(e) => e.to_string(),
    }
}

pub(super) fn assert_has(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "'{part}' missing from: {message}");
    }
}

pub(super) fn batch(width: i64) -> ValueInfoProto {
    value("input", &[None, Some(width)])
}

pub(super) fn out(width: i64) -> ValueInfoProto {
    value("output", &[None, Some(width)])
}

/// W1 = [[1, 2], [-1, 0.5], [0, -3]], b1 = [0.5, 1, -1], W2 = [[1, -2, 0.25]], b2 = [2].
pub(super) const W1: [f32; 6] = [1.0, 2.0, -1.0, 0.5, 0.0, -3.0];
pub(super) const B1: [f32; 3] = [0.5, 1.0, -1.0];
pub(super) const W2: [f32; 3] = [1.0, -2.0, 0.25];
pub(super) const B2: [f32; 1] = [2.0];

/// The 2-3-1 network by hand at x = [1, -2]: z1 = [-2.5, -1, 5], h1 = [0, 0, 5],
/// y = 0 - 0 + 1.25 + 2 = 3.25.
pub(super) fn reference_output(net: &Network) {
    assert_eq!(net.widths(), vec![2, 3, 1]);
    assert!(net.layers()[0].relu);
    assert!(!net.layers()[1].relu);
    assert_eq!(output(net, &[1.0, -2.0]), vec![3.25]);
    // At x = 0: h1 = relu(b1) = [0.5, 1, 0], y = 0.5 - 2 + 2 = 0.5.
    assert_eq!(output(net, &[0.0, 0.0]), vec![0.5]);
}

pub(super) fn transposed(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols)
        .flat_map(|c| (0..rows).map(move |r| w[r * cols + c]))
        .collect()
}

pub(super) fn attr_is(name: &str, v: &[i64]) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::INTS.into();
    a.ints = v.to_vec();
    a
}

pub(super) fn attr_s(name: &str, v: &str) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::STRING.into();
    a.s = v.as_bytes().to_vec();
    a
}

/// The reference network as MatMul + Add, the bias first or second.
pub(super) fn matmul_add_model(bias_first: bool) -> ModelProto {
    let add1 = if bias_first {
        ["b1", "m1"]
    } else {
        ["m1", "b1"]
    };
    let add2 = if bias_first {
        ["b2", "m2"]
    } else {
        ["m2", "b2"]
    };
    model(
        vec![
            node("MatMul", "/fc1/MatMul", &["input", "w1"], &["m1"], vec![]),
            node("Add", "/fc1/Add", &add1, &["h"], vec![]),
            node("Relu", "/relu/Relu", &["h"], &["r"], vec![]),
            node("MatMul", "/fc2/MatMul", &["r", "w2"], &["m2"], vec![]),
            node("Add", "/fc2/Add", &add2, &["output"], vec![]),
        ],
        vec![
            floats("w1", &[2, 3], &transposed(&W1, 3, 2)),
            floats("b1", &[3], &B1),
            floats("w2", &[3, 1], &W2),
            floats("b2", &[1], &B2),
        ],
        batch(2),
        out(1),
    )
}
