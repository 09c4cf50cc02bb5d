//! Constant folding for the shape arithmetic exporters leave in a graph: a node whose inputs
//! are all constants (or `Shape` of a computed tensor, whose sizes are static) is evaluated
//! once, in the arithmetic of its element type (float in f32, double in f64, int64 exactly),
//! and its output becomes one more constant.

use std::borrow::Cow;
use std::collections::HashMap;

use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::{NodeProto, TensorProto};
use protobuf::Enum;

use super::proto::{
    attr_int, attr_ints, bool_values, count_matches, data_type_name, float_tensor, from_raw,
    int64_values, required_input, tensor_shape,
};
use super::state::MAX_LOWERED_ENTRIES;

/// The operators folded when every input is constant.
pub(super) const FOLDED: &[&str] = &[
    "Shape",
    "Gather",
    "Unsqueeze",
    "Squeeze",
    "Reshape",
    "Flatten",
    "Expand",
    "Concat",
    "Transpose",
    "Slice",
    "ConstantOfShape",
    "Range",
    "Cast",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Equal",
    "Where",
    "Identity",
];

/// Element types of folded values; integers and booleans are held as f64 (exact below 2^53).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Float,
    Double,
    Int,
    Bool,
}

struct Value {
    dims: Vec<usize>,
    data: Vec<f64>,
    kind: Kind,
}

/// The largest integer folded: every integer up to it is an f64.
const MAX_INT: f64 = 9_007_199_254_740_992.0;

/// The static sizes of computed tensors, for `Shape`.
pub(super) type SizesOf<'s> = &'s dyn Fn(&str) -> Option<Vec<usize>>;

/// Evaluates `node` on constant inputs; `sizes` gives the shape of a computed tensor.
pub(super) fn fold(
    node: &NodeProto,
    consts: &HashMap<&str, Cow<'_, TensorProto>>,
    sizes: SizesOf<'_>,
    opset: i64,
) -> Result<TensorProto, String> {
    let input = |pos: usize| -> Result<Value, String> {
        let name = required_input(node, pos, "input")?;
        decode(name, consts.get(name).map(AsRef::as_ref))
    };
    let op = node.op_type.as_str();
    let out = match op {
        "Shape" => {
            let name = required_input(node, 0, "data")?;
            let dims = match sizes(name) {
                Some(d) => d,
                None => decode(name, consts.get(name).map(AsRef::as_ref))?.dims,
            };
            let rank = dims.len() as i64;
            let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
            let start = clamp(attr_int(node, "start")?.unwrap_or(0));
            let end = clamp(attr_int(node, "end")?.unwrap_or(rank));
            let picked: Vec<f64> = dims[start..end.max(start)]
                .iter()
                .map(|&d| d as f64)
                .collect();
            Value {
                dims: vec![picked.len()],
                data: picked,
                kind: Kind::Int,
            }
        }
        "Identity" => input(0)?,
        "Cast" => {
            let x = input(0)?;
            let to = attr_int(node, "to")?.ok_or("Cast without 'to'")?;
            cast(x, to)?
        }
        "ConstantOfShape" => {
            let shape = int_list(&input(0)?)?;
            let fill = match node.attribute.iter().find(|a| a.name == "value") {
                Some(a) => decode(
                    "value",
                    a.t.as_ref()
                        .ok_or("ConstantOfShape's value holds no tensor")?
                        .into(),
                )?,
                None => Value {
                    dims: vec![1],
                    data: vec![0.0],
                    kind: Kind::Float,
                },
            };
            let dims = sizes_from(&shape)?;
            let n = count(&dims)?;
            let v = *fill
                .data
                .first()
                .ok_or("ConstantOfShape's value is empty")?;
            Value {
                dims,
                data: vec![v; n],
                kind: fill.kind,
            }
        }
        "Range" => {
            let (start, limit, delta) = (input(0)?, input(1)?, input(2)?);
            let scalar = |v: &Value| v.data.first().copied().ok_or("Range of an empty input");
            let (s, l, d) = (scalar(&start)?, scalar(&limit)?, scalar(&delta)?);
            if d == 0.0 || !(s.is_finite() && l.is_finite() && d.is_finite()) {
                return Err("Range with a zero or non-finite step".into());
            }
            let n = ((l - s) / d).ceil().max(0.0);
            if n > MAX_LOWERED_ENTRIES as f64 {
                return Err(format!("Range of {n} values"));
            }
            let data: Vec<f64> = (0..n as usize)
                .map(|i| round(s + i as f64 * d, start.kind))
                .collect();
            Value {
                dims: vec![data.len()],
                data,
                kind: start.kind,
            }
        }
        "Add" | "Sub" | "Mul" | "Div" | "Equal" => {
            let (a, b) = (input(0)?, input(1)?);
            if a.kind != b.kind {
                return Err(format!(
                    "{op} of {:?} and {:?} values; both inputs need one type",
                    a.kind, b.kind
                ));
            }
            let dims = broadcast_dims(&a.dims, &b.dims)?;
            let (pa, pb) = (
                broadcast_positions(&a.dims, &dims)?,
                broadcast_positions(&b.dims, &dims)?,
            );
            let kind = if op == "Equal" { Kind::Bool } else { a.kind };
            let data = pa
                .iter()
                .zip(&pb)
                .map(|(&i, &j)| arithmetic(op, a.data[i], b.data[j], a.kind))
                .collect::<Result<_, _>>()?;
            Value { dims, data, kind }
        }
        "Where" => {
            let (c, a, b) = (input(0)?, input(1)?, input(2)?);
            if a.kind != b.kind {
                return Err("Where of two value types".into());
            }
            let dims = broadcast_dims(&broadcast_dims(&c.dims, &a.dims)?, &b.dims)?;
            let (pc, pa, pb) = (
                broadcast_positions(&c.dims, &dims)?,
                broadcast_positions(&a.dims, &dims)?,
                broadcast_positions(&b.dims, &dims)?,
            );
            let data = (0..pc.len())
                .map(|k| {
                    if c.data[pc[k]] != 0.0 {
                        a.data[pa[k]]
                    } else {
                        b.data[pb[k]]
                    }
                })
                .collect();
            Value {
                dims,
                data,
                kind: a.kind,
            }
        }
        "Gather" => {
            let (x, idx) = (input(0)?, input(1)?);
            let rank = x.dims.len();
            let a = axis(attr_int(node, "axis")?.unwrap_or(0), rank, "axis")?;
            let indices = int_list(&idx)?;
            let n = x.dims[a] as i64;
            let picked: Vec<usize> = indices
                .iter()
                .map(|&i| {
                    let j = if i < 0 { i + n } else { i };
                    if (0..n).contains(&j) {
                        Ok(j as usize)
                    } else {
                        Err(format!("Gather index {i} is out of range for {n}"))
                    }
                })
                .collect::<Result<_, _>>()?;
            let outer: usize = x.dims[..a].iter().product();
            let inner: usize = x.dims[a + 1..].iter().product();
            let mut data = Vec::new();
            for o in 0..outer {
                for &j in &picked {
                    let base = (o * x.dims[a] + j) * inner;
                    data.extend_from_slice(&x.data[base..base + inner]);
                }
            }
            let mut dims = x.dims[..a].to_vec();
            dims.extend_from_slice(&idx.dims);
            dims.extend_from_slice(&x.dims[a + 1..]);
            Value {
                dims,
                data,
                kind: x.kind,
            }
        }
        "Unsqueeze" | "Squeeze" => {
            let x = input(0)?;
            let axes = match node.input.get(1).filter(|n| !n.is_empty()) {
                Some(_) if opset >= 13 => Some(int_list(&input(1)?)?),
                Some(_) => return Err("axes as an input before opset 13".into()),
                None => attr_ints(node, "axes")?,
            };
            let dims = squeezed(op, &x.dims, axes, 0)?;
            Value { dims, ..x }
        }
        "Reshape" => {
            let (x, shape) = (input(0)?, int_list(&input(1)?)?);
            let allow_zero = attr_int(node, "allowzero")?.unwrap_or(0) != 0;
            let dims = reshaped(&x.dims, &shape, allow_zero)?;
            Value { dims, ..x }
        }
        "Flatten" => {
            let x = input(0)?;
            let rank = x.dims.len();
            let a = match attr_int(node, "axis")?.unwrap_or(1) {
                v if v == rank as i64 => rank,
                v => axis(v, rank, "axis")?,
            };
            let dims = vec![x.dims[..a].iter().product(), x.dims[a..].iter().product()];
            Value { dims, ..x }
        }
        "Expand" => {
            let (x, shape) = (input(0)?, int_list(&input(1)?)?);
            let target = sizes_from(&shape)?;
            let dims = broadcast_dims(&x.dims, &target)?;
            let at = broadcast_positions(&x.dims, &dims)?;
            Value {
                data: at.iter().map(|&p| x.data[p]).collect(),
                dims,
                kind: x.kind,
            }
        }
        "Concat" => {
            let parts: Vec<Value> = (0..node.input.len()).map(input).collect::<Result<_, _>>()?;
            let first = parts.first().ok_or("Concat without inputs")?;
            let rank = first.dims.len();
            let a = axis(
                attr_int(node, "axis")?.ok_or("Concat without an axis")?,
                rank,
                "axis",
            )?;
            for p in &parts {
                let same =
                    p.dims.len() == rank && (0..rank).all(|k| k == a || p.dims[k] == first.dims[k]);
                if !same || p.kind != first.kind {
                    return Err("Concat of constants whose shapes or types differ".into());
                }
            }
            let mut dims = first.dims.clone();
            dims[a] = parts.iter().map(|p| p.dims[a]).sum();
            count(&dims)?;
            let outer: usize = dims[..a].iter().product();
            let inner: usize = dims[a + 1..].iter().product();
            let mut data = Vec::new();
            for o in 0..outer {
                for p in &parts {
                    let n = p.dims[a] * inner;
                    data.extend_from_slice(&p.data[o * n..(o + 1) * n]);
                }
            }
            Value {
                dims,
                data,
                kind: first.kind,
            }
        }
        "Transpose" => {
            let x = input(0)?;
            let (dims, from) = transposed(node, &x.dims)?;
            Value {
                data: from.iter().map(|&p| x.data[p]).collect(),
                dims,
                kind: x.kind,
            }
        }
        "Slice" => slice(node, &input, opset)?,
        _ => return Err(format!("{op} of constants is not folded")),
    };
    Ok(encode(out))
}

/// The shape after Unsqueeze (`axes` required) or Squeeze (`axes`, or every dimension of size
/// 1 from `first` on) of a tensor of shape `dims`; dimensions before `first` cannot be removed.
pub(super) fn squeezed(
    op: &str,
    dims: &[usize],
    axes: Option<Vec<i64>>,
    first: usize,
) -> Result<Vec<usize>, String> {
    let mut out = dims.to_vec();
    if op == "Unsqueeze" {
        let axes = axes.ok_or("Unsqueeze without axes")?;
        let rank = dims.len() + axes.len();
        let mut at: Vec<usize> = axes
            .iter()
            .map(|&a| axis(a, rank, "axis"))
            .collect::<Result<_, _>>()?;
        at.sort_unstable();
        if at.windows(2).any(|p| p[0] == p[1]) {
            return Err(format!("axes {axes:?} repeat an axis"));
        }
        for a in at {
            out.insert(a, 1);
        }
    } else {
        let rank = dims.len();
        let mut at: Vec<usize> = match axes {
            Some(a) => a
                .iter()
                .map(|&v| axis(v, rank, "axis"))
                .collect::<Result<_, _>>()?,
            None => (first..rank).filter(|&k| dims[k] == 1).collect(),
        };
        at.sort_unstable();
        at.dedup();
        for a in at.into_iter().rev() {
            if a < first || dims[a] != 1 {
                return Err(format!(
                    "Squeeze of dimension {a} of shape {dims:?}; only dimensions of size 1{} can \
                     be removed",
                    if first > 0 { " after the batch" } else { "" }
                ));
            }
            out.remove(a);
        }
    }
    Ok(out)
}

/// The shape after a Transpose node (its `perm`, reversed by default) of a tensor of shape
/// `dims`, and for each output position the input position it takes.
pub(super) fn transposed(
    node: &NodeProto,
    dims: &[usize],
) -> Result<(Vec<usize>, Vec<usize>), String> {
    let rank = dims.len();
    let perm: Vec<usize> = match attr_ints(node, "perm")? {
        None => (0..rank).rev().collect(),
        Some(p) => p
            .iter()
            .map(|&v| axis(v, rank, "perm entry"))
            .collect::<Result<_, _>>()?,
    };
    let mut seen = perm.clone();
    seen.sort_unstable();
    if seen != (0..rank).collect::<Vec<_>>() {
        return Err(format!("perm {perm:?} is not a permutation of 0..{rank}"));
    }
    let out: Vec<usize> = perm.iter().map(|&k| dims[k]).collect();
    let (si, so) = (strides(dims), strides(&out));
    let from = (0..count(&out)?)
        .map(|p| (0..rank).map(|k| (p / so[k]) % out[k] * si[perm[k]]).sum())
        .collect();
    Ok((out, from))
}

/// Slice (opset 10 and later: starts, ends, axes and steps as inputs).
fn slice(
    node: &NodeProto,
    input: &dyn Fn(usize) -> Result<Value, String>,
    opset: i64,
) -> Result<Value, String> {
    if opset < 10 {
        return Err("Slice before opset 10 is not folded".into());
    }
    let x = input(0)?;
    let rank = x.dims.len();
    let optional = |pos: usize| -> Result<Option<Vec<i64>>, String> {
        match node.input.get(pos).filter(|n| !n.is_empty()) {
            Some(_) => Ok(Some(int_list(&input(pos)?)?)),
            None => Ok(None),
        }
    };
    let starts = int_list(&input(1)?)?;
    let ends = int_list(&input(2)?)?;
    let axes = optional(3)?.unwrap_or_else(|| (0..starts.len() as i64).collect());
    let steps = optional(4)?.unwrap_or_else(|| vec![1; starts.len()]);
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err("Slice's starts, ends, axes and steps differ in length".into());
    }
    let mut ranges: Vec<Vec<usize>> = x.dims.iter().map(|&d| (0..d).collect()).collect();
    for k in 0..starts.len() {
        let a = axis(axes[k], rank, "axis")?;
        let n = x.dims[a] as i64;
        if steps[k] <= 0 {
            return Err("Slice with a step that is not positive is not folded".into());
        }
        let clamp = |v: i64| (if v < 0 { v + n } else { v }).clamp(0, n);
        let (s, e) = (clamp(starts[k]), clamp(ends[k]));
        ranges[a] = (s..e)
            .step_by(steps[k] as usize)
            .map(|v| v as usize)
            .collect();
    }
    let dims: Vec<usize> = ranges.iter().map(Vec::len).collect();
    let n = count(&dims)?;
    let (si, so) = (strides(&x.dims), strides(&dims));
    let data = (0..n)
        .map(|p| {
            let from: usize = (0..rank)
                .map(|k| ranges[k][(p / so[k]) % dims[k]] * si[k])
                .sum();
            x.data[from]
        })
        .collect();
    Ok(Value {
        dims,
        data,
        kind: x.kind,
    })
}

fn round(v: f64, kind: Kind) -> f64 {
    match kind {
        Kind::Float => f64::from(v as f32),
        _ => v,
    }
}

fn arithmetic(op: &str, a: f64, b: f64, kind: Kind) -> Result<f64, String> {
    let v = match (op, kind) {
        ("Equal", _) => f64::from(u8::from(a == b)),
        ("Div", Kind::Int) if b == 0.0 => return Err("integer Div by zero".into()),
        ("Div", Kind::Int) => (a / b).trunc(),
        ("Add", _) => a + b,
        ("Sub", _) => a - b,
        ("Mul", _) => a * b,
        ("Div", _) => a / b,
        _ => return Err(format!("{op} is not folded")),
    };
    if kind == Kind::Int && v.abs() > MAX_INT {
        return Err(format!("{op} of integers leaves the exactly folded range"));
    }
    Ok(round(v, kind))
}

fn cast(x: Value, to: i64) -> Result<Value, String> {
    let kind = match DataType::from_i32(to as i32) {
        Some(DataType::FLOAT) => Kind::Float,
        Some(DataType::DOUBLE) => Kind::Double,
        Some(DataType::INT64 | DataType::INT32) => Kind::Int,
        Some(DataType::BOOL) => Kind::Bool,
        _ => {
            return Err(format!(
                "Cast to {} is not folded",
                data_type_name(to as i32)
            ))
        }
    };
    let data = x
        .data
        .iter()
        .map(|&v| match kind {
            Kind::Int if !v.is_finite() || v.abs() > MAX_INT => {
                Err(format!("Cast of {v} to an integer"))
            }
            Kind::Int => Ok(v.trunc()),
            Kind::Bool => Ok(f64::from(u8::from(v != 0.0))),
            k => Ok(round(v, k)),
        })
        .collect::<Result<_, _>>()?;
    Ok(Value {
        dims: x.dims,
        data,
        kind,
    })
}

/// NumPy's broadcast of two shapes.
pub(super) fn broadcast_dims(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let rank = a.len().max(b.len());
    let at = |s: &[usize], k: usize| (k + s.len()).checked_sub(rank).map_or(1, |i| s[i]);
    (0..rank)
        .map(|k| match (at(a, k), at(b, k)) {
            (x, y) if x == y || y == 1 => Ok(x),
            (1, y) => Ok(y),
            _ => Err(format!("shapes {a:?} and {b:?} do not broadcast")),
        })
        .collect()
}

fn int_list(v: &Value) -> Result<Vec<i64>, String> {
    if v.kind != Kind::Int {
        return Err(format!("expected integers, found {:?} values", v.kind));
    }
    Ok(v.data.iter().map(|&x| x as i64).collect())
}

fn sizes_from(shape: &[i64]) -> Result<Vec<usize>, String> {
    shape
        .iter()
        .map(|&d| {
            usize::try_from(d)
                .ok()
                .filter(|&d| d <= MAX_LOWERED_ENTRIES)
                .ok_or_else(|| format!("size {d} in {shape:?}"))
        })
        .collect()
}

/// Reshape's target shape with `0` (copy, unless `allowzero`) and one `-1` (infer) resolved.
pub(super) fn reshaped(
    from: &[usize],
    target: &[i64],
    allow_zero: bool,
) -> Result<Vec<usize>, String> {
    let n = count(from)?;
    let mut dims = Vec::with_capacity(target.len());
    let mut infer = None;
    for (k, &d) in target.iter().enumerate() {
        match d {
            0 if !allow_zero => dims.push(*from.get(k).ok_or_else(|| {
                format!("Reshape to {target:?}: entry {k} copies a dimension the data lacks")
            })?),
            -1 if infer.is_none() => {
                infer = Some(k);
                dims.push(1);
            }
            d if d > 0 && d as usize <= MAX_LOWERED_ENTRIES => dims.push(d as usize),
            _ => return Err(format!("Reshape to {target:?} is not read")),
        }
    }
    let known = count(&dims)?;
    if let Some(k) = infer {
        if known == 0 || !n.is_multiple_of(known) {
            return Err(format!("Reshape to {target:?} does not fit {n} values"));
        }
        dims[k] = n / known;
    }
    if count(&dims)? != n {
        return Err(format!(
            "Reshape of shape {from:?} to {target:?} changes the number of values"
        ));
    }
    Ok(dims)
}

fn decode(name: &str, t: Option<&TensorProto>) -> Result<Value, String> {
    let t = t.ok_or_else(|| format!("'{name}' is not a constant"))?;
    match DataType::from_i32(t.data_type) {
        Some(DataType::FLOAT | DataType::DOUBLE) => {
            let kind = if t.data_type == DataType::FLOAT as i32 {
                Kind::Float
            } else {
                Kind::Double
            };
            let v = float_tensor(name, Some(t))?;
            Ok(Value {
                dims: v.dims,
                data: v.data,
                kind,
            })
        }
        Some(DataType::INT64) => {
            let (dims, _) = tensor_shape(name, t)?;
            let ints = int64_values(name, Some(t))?;
            if ints.iter().any(|&v| (v as f64).abs() > MAX_INT) {
                return Err(format!("tensor '{name}' holds integers beyond 2^53"));
            }
            Ok(Value {
                dims,
                data: ints.iter().map(|&v| v as f64).collect(),
                kind: Kind::Int,
            })
        }
        Some(DataType::INT32) if t.raw_data.is_empty() => {
            let (dims, count) = tensor_shape(name, t)?;
            count_matches(name, t.int32_data.len(), count, &dims)?;
            Ok(Value {
                dims,
                data: t.int32_data.iter().map(|&v| f64::from(v)).collect(),
                kind: Kind::Int,
            })
        }
        Some(DataType::INT32) => {
            let (dims, count) = tensor_shape(name, t)?;
            let data = from_raw(name, &t.raw_data, count, &dims, |b| {
                f64::from(i32::from_le_bytes(b))
            })?;
            Ok(Value {
                dims,
                data,
                kind: Kind::Int,
            })
        }
        Some(DataType::BOOL) => {
            let (dims, _) = tensor_shape(name, t)?;
            let b = bool_values(name, t)?;
            Ok(Value {
                dims,
                data: b.iter().map(|&v| f64::from(u8::from(v))).collect(),
                kind: Kind::Bool,
            })
        }
        _ => Err(format!(
            "tensor '{name}' has data type {}, which is not folded",
            data_type_name(t.data_type)
        )),
    }
}

fn encode(v: Value) -> TensorProto {
    let mut t = TensorProto::new();
    t.dims = v.dims.iter().map(|&d| d as i64).collect();
    match v.kind {
        Kind::Float => {
            t.data_type = DataType::FLOAT as i32;
            t.float_data = v.data.iter().map(|&x| x as f32).collect();
        }
        Kind::Double => {
            t.data_type = DataType::DOUBLE as i32;
            t.double_data = v.data;
        }
        Kind::Int => {
            t.data_type = DataType::INT64 as i32;
            t.int64_data = v.data.iter().map(|&x| x as i64).collect();
        }
        Kind::Bool => {
            t.data_type = DataType::BOOL as i32;
            t.int32_data = v.data.iter().map(|&x| i32::from(x != 0.0)).collect();
        }
    }
    t
}

pub(super) fn count(dims: &[usize]) -> Result<usize, String> {
    dims.iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_LOWERED_ENTRIES)
        .ok_or_else(|| format!("a tensor of shape {dims:?} has more than 2^26 values"))
}

pub(super) fn strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for k in (0..dims.len().saturating_sub(1)).rev() {
        s[k] = s[k + 1] * dims[k + 1];
    }
    s
}

pub(super) fn axis(value: i64, rank: usize, what: &str) -> Result<usize, String> {
    let r = rank as i64;
    let resolved = if value < 0 { value + r } else { value };
    if (0..r).contains(&resolved) {
        Ok(resolved as usize)
    } else {
        Err(format!("{what} {value} is out of range for rank {rank}"))
    }
}

/// For every position of a tensor of shape `to`, the position in a tensor of shape `from` that
/// broadcasts to it.
pub(super) fn broadcast_positions(from: &[usize], to: &[usize]) -> Result<Vec<usize>, String> {
    if from.len() > to.len() {
        return Err(format!("shape {from:?} does not broadcast to {to:?}"));
    }
    let lead = to.len() - from.len();
    for (k, &d) in from.iter().enumerate() {
        if d != 1 && d != to[lead + k] {
            return Err(format!("shape {from:?} does not broadcast to {to:?}"));
        }
    }
    let (sf, st) = (strides(from), strides(to));
    let n = count(to)?;
    Ok((0..n)
        .map(|p| {
            from.iter()
                .enumerate()
                .map(|(k, &d)| {
                    if d == 1 {
                        0
                    } else {
                        (p / st[lead + k]) % to[lead + k] * sf[k]
                    }
                })
                .sum()
        })
        .collect())
}

#[cfg(test)]
#[path = "tests/fold.rs"]
mod tests;
