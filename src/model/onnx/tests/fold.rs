//! Constant folding: shape arithmetic evaluated as ONNX defines it.

use super::*;
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::AttributeProto;

fn ints(values: &[i64], dims: &[i64]) -> TensorProto {
    encode(Value {
        dims: dims.iter().map(|&d| d as usize).collect(),
        data: values.iter().map(|&v| v as f64).collect(),
        kind: Kind::Int,
    })
}

fn floats32(values: &[f64], dims: &[i64]) -> TensorProto {
    encode(Value {
        dims: dims.iter().map(|&d| d as usize).collect(),
        data: values.to_vec(),
        kind: Kind::Float,
    })
}

fn int_attr(name: &str, v: i64) -> AttributeProto {
    let mut a = AttributeProto::new();
    a.name = name.into();
    a.type_ = AttributeType::INT.into();
    a.i = v;
    a
}

/// Folds `op` over the named constants `a`, `b`, `c`, ... (in that order).
fn run(op: &str, inputs: Vec<TensorProto>, attrs: Vec<AttributeProto>) -> Result<Value, String> {
    let names = ["a", "b", "c", "d", "e"];
    let mut node = NodeProto::new();
    node.op_type = op.into();
    node.input = names[..inputs.len()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    node.output = vec!["y".into()];
    node.attribute = attrs;
    let consts: HashMap<&str, Cow<'_, TensorProto>> = names
        .iter()
        .copied()
        .zip(inputs.into_iter().map(Cow::Owned))
        .collect();
    let sizes = |name: &str| (name == "x").then(|| vec![1, 3, 5]);
    let t = fold(&node, &consts, &sizes, 17)?;
    decode("y", Some(&t))
}

#[test]
fn shape_arithmetic_folds_as_onnx_defines_it() {
    // Gather with a negative index, on a shape.
    let v = run(
        "Gather",
        vec![ints(&[1, 3, 5], &[3]), ints(&[-1], &[])],
        vec![],
    )
    .unwrap();
    assert_eq!((v.dims, v.data, v.kind), (vec![], vec![5.0], Kind::Int));
    // Where broadcasts its condition; Equal compares.
    let e = run(
        "Equal",
        vec![ints(&[1, -1, 3], &[3]), ints(&[-1], &[1])],
        vec![],
    )
    .unwrap();
    assert_eq!(e.data, vec![0.0, 1.0, 0.0]);
    let w = run(
        "Where",
        vec![encode(e), ints(&[7], &[1]), ints(&[1, 2, 3], &[3])],
        vec![],
    )
    .unwrap();
    assert_eq!(w.data, vec![1.0, 7.0, 3.0]);
    // Float arithmetic rounds to f32 at every step; integer Div truncates.
    let d = run(
        "Div",
        vec![floats32(&[8.0], &[]), floats32(&[3.0], &[])],
        vec![],
    )
    .unwrap();
    assert_eq!(d.data, vec![f64::from(8.0f32 / 3.0)]);
    let q = run("Div", vec![ints(&[-7], &[]), ints(&[2], &[])], vec![]).unwrap();
    assert_eq!(q.data, vec![-3.0]);
    // Cast to int64 truncates; Range counts up to, not including, its limit.
    let c = run(
        "Cast",
        vec![floats32(&[2.75, -2.75], &[2])],
        vec![int_attr("to", 7)],
    )
    .unwrap();
    assert_eq!((c.data, c.kind), (vec![2.0, -2.0], Kind::Int));
    let r = run(
        "Range",
        vec![ints(&[0], &[]), ints(&[5], &[]), ints(&[2], &[])],
        vec![],
    )
    .unwrap();
    assert_eq!(r.data, vec![0.0, 2.0, 4.0]);
    // Slice with negative bounds and a step.
    let s = run(
        "Slice",
        vec![
            ints(&[0, 1, 2, 3, 4, 5], &[6]),
            ints(&[-5], &[1]),
            ints(&[100], &[1]),
            ints(&[0], &[1]),
            ints(&[2], &[1]),
        ],
        vec![],
    )
    .unwrap();
    assert_eq!(s.data, vec![1.0, 3.0, 5.0]);
    // Concat keeps the order of its parts; Shape reads a computed tensor's sizes.
    let k = run(
        "Concat",
        vec![ints(&[1], &[1]), ints(&[2, 3], &[2])],
        vec![int_attr("axis", 0)],
    )
    .unwrap();
    assert_eq!(k.data, vec![1.0, 2.0, 3.0]);
    let mut node = NodeProto::new();
    node.op_type = "Shape".into();
    node.input = vec!["x".into()];
    let sizes = |name: &str| (name == "x").then(|| vec![1, 3, 5]);
    let t = fold(&node, &HashMap::new(), &sizes, 17).unwrap();
    assert_eq!(decode("s", Some(&t)).unwrap().data, vec![1.0, 3.0, 5.0]);
    // Mixed types and bad indices are errors, not panics.
    assert!(run(
        "Add",
        vec![ints(&[1], &[1]), floats32(&[1.0], &[1])],
        vec![]
    )
    .is_err());
    assert!(run("Gather", vec![ints(&[1, 2], &[2]), ints(&[2], &[])], vec![]).is_err());
}
