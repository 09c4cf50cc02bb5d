//! Readers of a node's attributes and of the tensors that initializers and Constant nodes hold:
//! every size checked before anything is allocated for it, every value the exact f32/f64 (or
//! int64, bool) stored in the file.

use ndarray::{Array1, Array2};
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::{DataLocation, DataType};
use onnx_protobuf::{AttributeProto, NodeProto, TensorProto};
use protobuf::Enum;

use crate::model::ir::MAX_PARAMETERS;

/// A decoded float tensor.
pub(super) struct Tensor {
    pub(super) dims: Vec<usize>,
    pub(super) data: Vec<f64>,
}

/// `node`'s name and place in the graph, for messages.
pub(super) fn node_label(node: &NodeProto, index: usize) -> String {
    if node.name.is_empty() {
        format!("unnamed {} node (index {index})", node.op_type)
    } else {
        format!("node '{}' (index {index})", node.name)
    }
}

/// Input `pos` of `node`, which must be present (`what` names it in the error).
pub(super) fn required_input<'n>(
    node: &'n NodeProto,
    pos: usize,
    what: &str,
) -> Result<&'n str, String> {
    node.input
        .get(pos)
        .filter(|n| !n.is_empty())
        .map(String::as_str)
        .ok_or_else(|| format!("{} has no input {pos} ({what})", node.op_type))
}

/// The name of `node`'s first output.
pub(super) fn first_output(node: &NodeProto) -> Result<&str, String> {
    node.output
        .first()
        .filter(|n| !n.is_empty())
        .map(String::as_str)
        .ok_or_else(|| "it has no output".to_string())
}

/// A data type code with its name, for messages.
pub(super) fn data_type_name(code: i32) -> String {
    match DataType::from_i32(code) {
        Some(t) => format!("{t:?} ({code})"),
        None => format!("unknown ({code})"),
    }
}

/// An attribute type with its name, for messages.
pub(super) fn attribute_type_name(kind: std::result::Result<AttributeType, i32>) -> String {
    match kind {
        Ok(t) => format!("{t:?}"),
        Err(code) => format!("unknown ({code})"),
    }
}

/// Node attribute `name`, read by `read` when it has type `kind`; `None` when absent.
pub(super) fn attr<T>(
    node: &NodeProto,
    name: &str,
    kind: AttributeType,
    read: impl FnOnce(&AttributeProto) -> Result<T, String>,
) -> Result<Option<T>, String> {
    let Some(a) = node.attribute.iter().find(|a| a.name == name) else {
        return Ok(None);
    };
    match a.type_.enum_value() {
        Ok(k) if k == kind => read(a).map(Some),
        k => Err(format!(
            "attribute '{name}' has type {}, expected {kind:?}",
            attribute_type_name(k)
        )),
    }
}

/// A FLOAT attribute, which must be finite.
pub(super) fn attr_float(node: &NodeProto, name: &str) -> Result<Option<f64>, String> {
    attr(node, name, AttributeType::FLOAT, |a| {
        if a.f.is_finite() {
            Ok(f64::from(a.f))
        } else {
            Err(format!("attribute '{name}' is {}", a.f))
        }
    })
}

/// An INTS attribute.
pub(super) fn attr_ints(node: &NodeProto, name: &str) -> Result<Option<Vec<i64>>, String> {
    attr(node, name, AttributeType::INTS, |a| Ok(a.ints.clone()))
}

/// A STRING attribute.
pub(super) fn attr_string(node: &NodeProto, name: &str) -> Result<Option<String>, String> {
    attr(node, name, AttributeType::STRING, |a| {
        Ok(String::from_utf8_lossy(&a.s).into_owned())
    })
}

/// An INT attribute.
pub(super) fn attr_int(node: &NodeProto, name: &str) -> Result<Option<i64>, String> {
    attr(node, name, AttributeType::INT, |a| Ok(a.i))
}

/// The shape of a tensor and its element count, refusing absurd shapes before anything is
/// allocated for them.
pub(super) fn tensor_shape(name: &str, t: &TensorProto) -> Result<(Vec<usize>, usize), String> {
    if t.data_location.value() == DataLocation::EXTERNAL as i32 || !t.external_data.is_empty() {
        return Err(format!(
            "tensor '{name}' keeps its data in an external file, which is not supported; \
             export with the weights inside the model"
        ));
    }
    if t.segment.is_some() {
        return Err(format!(
            "tensor '{name}' is segmented, which is not supported"
        ));
    }
    let mut dims = Vec::with_capacity(t.dims.len());
    let mut count = 1usize;
    for &d in &t.dims {
        let d = usize::try_from(d)
            .map_err(|_| format!("tensor '{name}' has a negative dimension in {:?}", t.dims))?;
        count = count
            .checked_mul(d)
            .filter(|&c| c <= MAX_PARAMETERS)
            .ok_or_else(|| {
                format!(
                    "tensor '{name}' has shape {:?}, more than {MAX_PARAMETERS} values",
                    t.dims
                )
            })?;
        dims.push(d);
    }
    Ok((dims, count))
}

/// Decodes fixed-width little-endian values after checking the byte count against the shape.
pub(super) fn from_raw<const N: usize, V>(
    name: &str,
    raw: &[u8],
    count: usize,
    dims: &[usize],
    decode: impl Fn([u8; N]) -> V,
) -> Result<Vec<V>, String> {
    // `count` is at most MAX_PARAMETERS, so the product cannot overflow on 64-bit targets; the
    // check keeps 32-bit ones honest.
    let expected = count.checked_mul(N);
    if expected != Some(raw.len()) {
        return Err(format!(
            "tensor '{name}' has {} bytes of data but its shape {dims:?} needs {}",
            raw.len(),
            expected.map_or_else(|| "more".to_string(), |e| e.to_string())
        ));
    }
    Ok(raw
        .chunks_exact(N)
        .map(|c| {
            let mut b = [0u8; N];
            b.copy_from_slice(c);
            decode(b)
        })
        .collect())
}

/// Checks that a tensor listing its values holds as many as its shape needs.
pub(super) fn count_matches(
    name: &str,
    found: usize,
    count: usize,
    dims: &[usize],
) -> Result<(), String> {
    if found == count {
        Ok(())
    } else {
        Err(format!(
            "tensor '{name}' holds {found} values but its shape {dims:?} needs {count}"
        ))
    }
}

/// A float or double tensor as exact f64 values (every f32 is an f64).
pub(super) fn float_tensor(name: &str, t: Option<&TensorProto>) -> Result<Tensor, String> {
    let t = t.ok_or_else(|| format!("'{name}' is not an initializer or constant"))?;
    let (dims, count) = tensor_shape(name, t)?;
    let data = match DataType::from_i32(t.data_type) {
        Some(DataType::FLOAT) if !t.raw_data.is_empty() => {
            from_raw(name, &t.raw_data, count, &dims, |b| f64::from(f32::from_le_bytes(b)))?
        }
        Some(DataType::FLOAT) => {
            count_matches(name, t.float_data.len(), count, &dims)?;
            t.float_data.iter().map(|&v| f64::from(v)).collect()
        }
        Some(DataType::DOUBLE) if !t.raw_data.is_empty() => {
            from_raw(name, &t.raw_data, count, &dims, f64::from_le_bytes)?
        }
        Some(DataType::DOUBLE) => {
            count_matches(name, t.double_data.len(), count, &dims)?;
            t.double_data.clone()
        }
        _ => {
            return Err(format!(
                "tensor '{name}' has data type {}; only float (1) and double (11) weights are supported",
                data_type_name(t.data_type)
            ))
        }
    };
    Ok(Tensor { dims, data })
}

/// An int64 tensor, as Reshape's shape input is.
pub(super) fn int64_values(name: &str, t: Option<&TensorProto>) -> Result<Vec<i64>, String> {
    let t = t.ok_or_else(|| format!("'{name}' is not an initializer or constant"))?;
    let (dims, count) = tensor_shape(name, t)?;
    if t.data_type != DataType::INT64 as i32 {
        return Err(format!(
            "tensor '{name}' has data type {}; a shape must be INT64 (7)",
            data_type_name(t.data_type)
        ));
    }
    if !t.raw_data.is_empty() {
        return from_raw(name, &t.raw_data, count, &dims, i64::from_le_bytes);
    }
    count_matches(name, t.int64_data.len(), count, &dims)?;
    Ok(t.int64_data.clone())
}

/// A bool tensor (Dropout's training_mode); ONNX stores bools as bytes or in `int32_data`.
pub(super) fn bool_values(name: &str, t: &TensorProto) -> Result<Vec<bool>, String> {
    let (dims, count) = tensor_shape(name, t)?;
    if t.data_type != DataType::BOOL as i32 {
        return Err(format!(
            "tensor '{name}' has data type {}; expected BOOL (9)",
            data_type_name(t.data_type)
        ));
    }
    if !t.raw_data.is_empty() {
        return from_raw(name, &t.raw_data, count, &dims, |[b]: [u8; 1]| b != 0);
    }
    count_matches(name, t.int32_data.len(), count, &dims)?;
    Ok(t.int32_data.iter().map(|&v| v != 0).collect())
}

/// A rank-2 tensor as a matrix.
pub(super) fn matrix(name: &str, t: Tensor) -> Result<Array2<f64>, String> {
    let [rows, cols] = t.dims.as_slice() else {
        return Err(format!(
            "the weight '{name}' has shape {:?}; a matrix is needed",
            t.dims
        ));
    };
    Array2::from_shape_vec((*rows, *cols), t.data).map_err(|e| format!("the weight '{name}': {e}"))
}

/// A bias of `out` values from a tensor of shape [out] or [1, out], or a scalar broadcast.
pub(super) fn bias_vector(name: &str, t: Tensor, out: usize) -> Result<Array1<f64>, String> {
    match t.dims.as_slice() {
        [n] | [1, n] if *n == out => Ok(Array1::from(t.data)),
        [] | [1] | [1, 1] => match t.data.first() {
            Some(&v) => Ok(Array1::from_elem(out, v)),
            None => Err(format!("the bias '{name}' is empty")),
        },
        dims => Err(format!(
            "the bias '{name}' has shape {dims:?}; expected [{out}] or [1, {out}]"
        )),
    }
}
