//! The driver: checks the graph's inputs, outputs and wiring, then walks its nodes in file
//! order, folding constant shape arithmetic ([`super::fold`]) and handing every other node to
//! its operator's row of the table in [`super::ops`], and finally cuts the graph output into
//! the last layer.
//!
//! The first graph input is the explained input; a second one (a relation network's question)
//! is a constant given with `--question`. A node whose output reaches no graph output is a
//! branch the network cannot hold, and is refused; so is a node that reads a later node's
//! output (the graph is unordered or cyclic). A tensor computed before a layer is cut and read
//! after it (a residual connection) is carried through the cut; values are not carried past a
//! max-pool layer.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::{dimension, Dimension};
use onnx_protobuf::{type_proto, GraphProto, NodeProto, TensorProto, ValueInfoProto};

use super::fold::{self, count};
use super::ops::{self, Reads};
use super::proto::{data_type_name, first_output, node_label};
use super::state::{
    is_identity, unsized_problem, Batch, Data, Elem, Form, Output, Tracer, Unsized,
    CONV_ROWS_UP_TO, MAX_IMAGE_SIDE, MAX_LOWERED_ENTRIES,
};
use super::{is_default_domain, OnnxOptions};
use crate::model::ir::Layer;
use crate::model::kind::LayerKind;

/// What a graph becomes: the layers, the kind of each, and the declared shape of one input
/// sample (when every size is static).
pub(super) struct Translated {
    /// The layers, first to last.
    pub(super) layers: Vec<Layer>,
    /// The operator that named each layer ([`LayerKind`]).
    pub(super) kinds: Vec<LayerKind>,
    /// The graph input's sizes without the batch.
    pub(super) input_shape: Option<Vec<usize>>,
}

/// Who reads each tensor, and which nodes lead to the graph output.
struct Wiring<'a> {
    consumers: HashMap<&'a str, Vec<usize>>,
    live: Vec<bool>,
}

/// Translates a graph into the layers of the network.
pub(super) fn translate(
    graph: &GraphProto,
    options: &OnnxOptions,
    opset: i64,
) -> Result<Translated, String> {
    if !graph.sparse_initializer.is_empty() {
        return Err("sparse initializers are not supported; export dense weights".into());
    }
    let mut consts: HashMap<&str, Cow<'_, TensorProto>> = HashMap::new();
    for (k, t) in graph.initializer.iter().enumerate() {
        if t.name.is_empty() {
            return Err(format!("initializer #{k} has no name"));
        }
        if consts.insert(t.name.as_str(), Cow::Borrowed(t)).is_some() {
            return Err(format!("two initializers are named '{}'", t.name));
        }
    }
    // Older exporters also list every initializer as a graph input; only the rest are data.
    let real: Vec<&ValueInfoProto> = graph
        .input
        .iter()
        .filter(|v| !consts.contains_key(v.name.as_str()))
        .collect();
    let output = match graph.output.as_slice() {
        [one] => one,
        [] => return Err("the graph has no output".into()),
        many => {
            let names: Vec<String> = many.iter().map(|v| format!("'{}'", v.name)).collect();
            return Err(format!(
                "the graph has {} outputs ({}); only a single-output network is supported",
                many.len(),
                names.join(", ")
            ));
        }
    };
    let (input, question) = match real.as_slice() {
        [] => return Err("the graph has no data input (every input is an initializer)".into()),
        [one] => (*one, None),
        [one, two] => (*one, Some(*two)),
        many => {
            let names: Vec<String> = many.iter().map(|v| format!("'{}'", v.name)).collect();
            return Err(format!(
                "the graph has {} data inputs ({}); at most two are read (the input and a \
                 question given with --question)",
                many.len(),
                names.join(", ")
            ));
        }
    };
    match (question, &options.question) {
        (Some(q), Some(values)) => {
            let dims = sample_dims(q)?;
            let n = count(&dims)?;
            if values.len() != n {
                return Err(format!(
                    "the graph's second input '{}' takes {n} values per sample, but --question \
                     gives {}",
                    q.name,
                    values.len()
                ));
            }
            let mut t = TensorProto::new();
            t.data_type = DataType::DOUBLE as i32;
            t.dims = dims.iter().map(|&d| d as i64).collect();
            t.double_data.clone_from(values);
            consts.insert(q.name.as_str(), Cow::Owned(t));
        }
        (Some(q), None) => {
            let n = sample_dims(q).and_then(|d| count(&d)).unwrap_or(0);
            return Err(format!(
                "the graph has a second input '{}' ({n} values per sample), the question of a \
                 relation network: give its values with --question",
                q.name
            ));
        }
        (None, Some(_)) => return Err(
            "--question gives the values of a graph's second input, and this graph has one input"
                .into(),
        ),
        (None, None) => {}
    }
    let wiring = wiring(graph, &consts, input, output)?;

    // A Shape reads only sizes, which are static: it keeps nothing alive.
    let mut last_use = HashMap::new();
    let mut last_read = HashMap::new();
    for (i, node) in graph.node.iter().enumerate() {
        for name in &node.input {
            last_read.insert(name.as_str(), i);
        }
        if node.op_type == "Shape" {
            continue;
        }
        for name in &node.input {
            last_use.insert(name.as_str(), i);
        }
    }
    let (declared, batch) = declared_input(input)?;
    let mut tracer = Tracer {
        consts,
        values: HashMap::new(),
        unknown: HashMap::new(),
        from_sizes: HashSet::new(),
        last_use,
        last_read,
        at: 0,
        output: output.name.as_str(),
        layers: Vec::new(),
        kinds: Vec::new(),
        pending: LayerKind::Other,
        width: 0,
        keep_batch_norm: options.keep_batch_norm,
        split_residual: options.split_residual,
        conv_rows_up_to: options.conv_rows_up_to.unwrap_or(CONV_ROWS_UP_TO),
        max_memory: options.max_memory,
        opset,
        batch,
    };
    let input_shape = declared.as_ref().ok().map(|dims| match batch {
        Batch::Unbatched => dims.clone(),
        _ => dims[1..].to_vec(),
    });
    match declared {
        Ok(dims) => {
            let width = dims.iter().product::<usize>();
            tracer.width = width;
            let identity = (0..width as u32).map(Elem::Input).collect();
            tracer.values.insert(
                input.name.as_str(),
                Rc::new(Data {
                    dims,
                    layer: 0,
                    form: Form::Select(identity),
                    bias_open: false,
                }),
            );
        }
        Err(u) => {
            tracer.unknown.insert(input.name.as_str(), u);
        }
    }

    for (i, node) in graph.node.iter().enumerate() {
        tracer.at = i;
        tracer
            .node(node, &wiring)
            .map_err(|problem| format!("{}: {problem}", node_label(node, i)))?;
        tracer.drop_spent();
    }
    let (layers, kinds) = finish(tracer, input, output)?;
    Ok(Translated {
        layers,
        kinds,
        input_shape,
    })
}

/// The last layers: the graph output, cut into a layer unless it is the current layer input.
fn finish(
    mut tracer: Tracer<'_>,
    input: &ValueInfoProto,
    output: &ValueInfoProto,
) -> Result<(Vec<Layer>, Vec<LayerKind>), String> {
    let name = output.name.as_str();
    let Some(last) = tracer.values.get(name).cloned() else {
        return Err(if tracer.unknown.contains_key(name) {
            format!("the graph output '{name}' is the graph input itself, so the graph defines no layer")
        } else {
            format!(
                "the graph output '{name}' is not computed from the input '{}'",
                input.name
            )
        });
    };
    if !last.reads_layer(tracer.layers.len()) {
        return Err(format!(
            "the graph output '{name}' was computed before layer {} was cut and a later node \
             reads it; a network output must end the graph",
            last.layer + 1
        ));
    }
    let width = last.len();
    if let Some(d) = declared_width(output).filter(|&d| d != width as u64) {
        return Err(format!(
            "the graph output '{name}' declares {d} values per sample but the network computes {width}"
        ));
    }
    let identity = matches!(&last.form, Form::Select(e) if is_identity(e, tracer.width));
    if identity && tracer.layers.is_empty() {
        return Err(format!(
            "the graph output '{name}' is the graph input itself, so the graph defines no layer"
        ));
    }
    if !identity {
        let before = tracer.layers.len();
        tracer
            .cut(&last, None)
            .map_err(|problem| format!("the graph output '{name}': {problem}"))?;
        tracer.tag_layers(before);
    }
    Ok((tracer.layers, tracer.kinds))
}

/// The readers of every tensor and the nodes the graph output depends on; refuses a tensor
/// with two producers, a node that reads a later node's output, and a graph output no node
/// computes.
fn wiring<'a>(
    graph: &'a GraphProto,
    consts: &HashMap<&str, Cow<'_, TensorProto>>,
    input: &ValueInfoProto,
    output: &ValueInfoProto,
) -> Result<Wiring<'a>, String> {
    let mut producer: HashMap<&str, usize> = HashMap::new();
    let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, node) in graph.node.iter().enumerate() {
        for name in node.output.iter().filter(|n| !n.is_empty()) {
            let taken = consts.contains_key(name.as_str())
                || *name == input.name
                || graph.input.iter().any(|v| v.name == *name);
            if taken || producer.insert(name.as_str(), i).is_some() {
                return Err(format!(
                    "{}: output '{name}' is already defined elsewhere in the graph; every tensor must have one producer",
                    node_label(node, i)
                ));
            }
        }
        for name in node.input.iter().filter(|n| !n.is_empty()) {
            consumers.entry(name.as_str()).or_default().push(i);
        }
    }
    // Nodes read only what earlier nodes produce.
    for (i, node) in graph.node.iter().enumerate() {
        for name in &node.input {
            if let Some(&j) = producer.get(name.as_str()).filter(|&&j| j >= i) {
                return Err(format!(
                    "{}: it reads '{name}', which node index {j} produces later; nodes must be in \
                     topological order (the graph is unordered or cyclic)",
                    node_label(node, i)
                ));
            }
        }
    }
    let out = output.name.as_str();
    let given = consts.contains_key(out) || graph.input.iter().any(|v| v.name == out);
    if !producer.contains_key(out) && !given {
        return Err(format!("the graph output '{out}' is computed by no node"));
    }
    // Backwards from the graph output: the nodes it depends on.
    let mut live = vec![false; graph.node.len()];
    let mut todo: Vec<usize> = producer
        .get(output.name.as_str())
        .copied()
        .into_iter()
        .collect();
    while let Some(i) = todo.pop() {
        if std::mem::replace(&mut live[i], true) {
            continue;
        }
        for name in &graph.node[i].input {
            if let Some(&j) = producer.get(name.as_str()) {
                if !live[j] {
                    todo.push(j);
                }
            }
        }
    }
    Ok(Wiring { consumers, live })
}

/// The graph input's per-sample shape (with a batch of 1 first, unless the input is a single
/// unbatched vector) when every size is static and within what is read, else what is known of
/// it; and its batch. Element types other than float and double are refused because the IR's
/// inputs are f32/f64 values.
#[allow(clippy::type_complexity)]
fn declared_input(input: &ValueInfoProto) -> Result<(Result<Vec<usize>, Unsized>, Batch), String> {
    let unknown = Unsized {
        rank: None,
        width: None,
        oversized: false,
    };
    let Some(value) = input.type_.as_ref().and_then(|t| t.value.as_ref()) else {
        return Ok((Err(unknown), Batch::Dynamic));
    };
    let type_proto::Value::TensorType(tensor) = value else {
        return Err(format!("the graph input '{}' is not a tensor", input.name));
    };
    let elem = tensor.elem_type;
    if elem != DataType::UNDEFINED as i32
        && elem != DataType::FLOAT as i32
        && elem != DataType::DOUBLE as i32
    {
        return Err(format!(
            "the graph input '{}' has element type {}; only float and double inputs are supported",
            input.name,
            data_type_name(elem)
        ));
    }
    let Some(shape) = tensor.shape.as_ref() else {
        return Ok((Err(unknown), Batch::Dynamic));
    };
    let dims: Vec<Option<u64>> = shape.dim.iter().map(static_dim).collect();
    let (batch, rest) = match dims.as_slice() {
        [] => {
            return Err(format!(
                "the graph input '{}' is a scalar; a vector per sample is needed",
                input.name
            ))
        }
        // An unbatched vector: the whole tensor is one sample.
        [_] => (Batch::Unbatched, &dims[..]),
        [b, rest @ ..] => (b.map_or(Batch::Dynamic, Batch::Static), rest),
    };
    let width = rest
        .iter()
        .try_fold(1u64, |acc, d| d.and_then(|d| acc.checked_mul(d)));
    let sized = width.filter(|&w| w <= MAX_LOWERED_ENTRIES as u64 && w > 0);
    let sides = rest
        .iter()
        .all(|d| d.is_some_and(|d| d <= MAX_IMAGE_SIDE as u64));
    let declared = match sized {
        Some(_) if sides => {
            let per_sample = rest.iter().map(|d| d.unwrap_or(1) as usize);
            Ok(match batch {
                Batch::Unbatched => per_sample.collect(),
                _ => std::iter::once(1).chain(per_sample).collect(),
            })
        }
        _ => Err(Unsized {
            rank: Some(dims.len()),
            width,
            oversized: width.is_some() && sides,
        }),
    };
    Ok((declared, batch))
}

fn static_dim(d: &Dimension) -> Option<u64> {
    match d.value {
        Some(dimension::Value::DimValue(n)) if n > 0 => Some(n as u64),
        _ => None,
    }
}

/// The values per sample a graph output of rank 2 or more declares, when every dimension
/// after the batch is static.
fn declared_width(value: &ValueInfoProto) -> Option<u64> {
    let Some(type_proto::Value::TensorType(tensor)) =
        value.type_.as_ref().and_then(|t| t.value.as_ref())
    else {
        return None;
    };
    match tensor.shape.as_ref()?.dim.as_slice() {
        [_, rest @ ..] if !rest.is_empty() => rest.iter().try_fold(1u64, |acc, d| {
            static_dim(d).and_then(|d| acc.checked_mul(d))
        }),
        _ => None,
    }
}

/// The static dimensions of the question input, with a batch of 1 first: the leading
/// dimension may be dynamic or 1.
fn sample_dims(value: &ValueInfoProto) -> Result<Vec<usize>, String> {
    let name = &value.name;
    let Some(type_proto::Value::TensorType(tensor)) =
        value.type_.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err(format!("'{name}' declares no tensor type"));
    };
    let Some(shape) = tensor.shape.as_ref() else {
        return Err(format!(
            "'{name}' declares no shape; the question input needs static sizes"
        ));
    };
    let mut dims = Vec::with_capacity(shape.dim.len());
    for (k, d) in shape.dim.iter().enumerate() {
        match (k, static_dim(d)) {
            (0, None | Some(1)) => dims.push(1),
            (0, Some(b)) => {
                return Err(format!(
                "'{name}' has a static batch of {b}; export with a batch of 1 or a dynamic batch"
            ))
            }
            (_, Some(v)) if v as usize <= MAX_IMAGE_SIDE => dims.push(v as usize),
            _ => {
                return Err(format!(
                "'{name}' has a dynamic or oversized dimension {k}; only the batch may be dynamic"
            ))
            }
        }
    }
    if dims.len() < 2 {
        return Err(format!(
            "'{name}' has rank {}; [batch, ...] with at least one dimension per sample is needed",
            dims.len()
        ));
    }
    Ok(dims)
}

impl<'a> Tracer<'a> {
    /// Translates one node.
    fn node(&mut self, node: &'a NodeProto, wiring: &Wiring<'a>) -> Result<(), String> {
        let op = node.op_type.as_str();
        let inputs: Vec<&'a str> = node
            .input
            .iter()
            .filter(|n| !n.is_empty())
            .map(String::as_str)
            .collect();
        for &name in &inputs {
            let defined = self.values.contains_key(name)
                || self.unknown.contains_key(name)
                || self.consts.contains_key(name);
            if !defined {
                return Err(format!(
                    "it reads '{name}', which no node, initializer or graph input defines"
                ));
            }
        }
        let computed: Vec<&'a str> = inputs
            .iter()
            .copied()
            .filter(|n| !self.consts.contains_key(n))
            .collect();
        // Shape arithmetic on constants (and the static sizes of computed tensors) is folded.
        let folded = is_default_domain(&node.domain) && fold::FOLDED.contains(&op);
        if folded && ((computed.is_empty() && !inputs.is_empty()) || op == "Shape") {
            if let Some(u) = inputs.first().and_then(|n| self.unknown.get(n)) {
                return Err(unsized_problem(op, u));
            }
            let sizes = |name: &str| self.values.get(name).map(|d| d.dims.clone());
            let t = fold::fold(node, &self.consts, &sizes, self.opset)?;
            let name = first_output(node)?;
            if !computed.is_empty() || inputs.iter().any(|n| self.from_sizes.contains(n)) {
                self.from_sizes.insert(name);
            }
            self.consts.insert(name, Cow::Owned(t));
            return Ok(());
        }
        let row = ops::lookup(node, folded).map_err(|problem| {
            let ends = node.output.iter().any(|o| o == self.output);
            match (op, ends) {
                ("Softmax", true) => format!(
                    "{problem} (a Softmax computing the graph output is left out with \
                     --strip-softmax: the network then ends with the logits)"
                ),
                _ => problem,
            }
        })?;
        ops::check_attributes(node, row)?;
        if !wiring.live[self.at] && !computed.is_empty() {
            return Err(branch(computed[0], self.output, wiring));
        }
        if computed.is_empty() && !row.on_constants {
            return Err(format!(
                "every input is a constant; {op} is read only on tensors computed from the input \
                 (export with constant folding)"
            ));
        }
        if row.reads == Reads::First && !computed.is_empty() {
            let first = node.input.first().map(String::as_str).unwrap_or_default();
            if !computed.contains(&first) {
                let p = node
                    .input
                    .iter()
                    .position(|n| n == computed[0])
                    .unwrap_or(0);
                return Err(format!(
                    "its first input '{first}' is an initializer and the data arrives as input {p}; \
                     an initializer cannot be the data input"
                ));
            }
        }
        for (k, extra) in node.output.iter().enumerate().skip(1) {
            if !extra.is_empty()
                && (wiring.consumers.contains_key(extra.as_str()) || *extra == self.output)
            {
                return Err(format!(
                    "its output {k} ('{extra}') is used; only the first output of {op} is supported"
                ));
            }
        }
        let name = first_output(node)?;
        let kind = op_kind(op, computed.len());
        let before = self.layers.len();
        let translated = (row.translate)(self, node)?;
        self.tag_layers(before);
        if kind.rank() > self.pending.rank() {
            self.pending = kind;
        }
        match translated {
            Output::Data(mut data) => {
                // Only the affine node itself leaves its bias open.
                data.bias_open &= matches!(op, "Gemm" | "MatMul");
                self.values.insert(name, Rc::new(data));
            }
            Output::Unsized(u) => {
                self.unknown.insert(name, u);
            }
            Output::Const(t) => {
                if inputs.iter().any(|n| self.from_sizes.contains(n)) {
                    self.from_sizes.insert(name);
                }
                self.consts.insert(name, t);
            }
        }
        Ok(())
    }
}

/// The kind of layer an operator makes of the layer it falls into (`computed`: how many of its
/// inputs are computed tensors rather than constants).
fn op_kind(op: &str, computed: usize) -> LayerKind {
    match op {
        "Conv" => LayerKind::Conv,
        "Gemm" | "MatMul" => LayerKind::Dense,
        "AveragePool" | "GlobalAveragePool" | "ReduceSum" | "ReduceMean" => LayerKind::Pool,
        "BatchNormalization" => LayerKind::BatchNorm,
        "Add" if computed >= 2 => LayerKind::Add,
        _ => LayerKind::Other,
    }
}

/// Why a node whose output reaches no graph output is refused: it reads `read`.
fn branch(read: &str, output: &str, wiring: &Wiring<'_>) -> String {
    if read == output {
        return format!(
            "the graph output '{output}' ends the network, and a later node reads it; a network \
             output must end the graph"
        );
    }
    match wiring.consumers.get(read).filter(|r| r.len() > 1) {
        Some(readers) => {
            let list: Vec<String> = readers.iter().map(ToString::to_string).collect();
            format!(
                "'{read}' feeds {} nodes (indices {}) and this one's output reaches no graph \
                 output; only a network computing the graph output is read (the graph branches)",
                readers.len(),
                list.join(", ")
            )
        }
        None => "its output reaches no graph output; only a network computing the graph output \
                 is read (the graph branches)"
            .into(),
    }
}

/// Leaves out the Softmax node that computes the graph output: its input becomes the graph
/// output, so the network ends with the logits the Softmax normalises. Refuses a graph whose
/// output comes from another operator, or whose Softmax output is also read by another node.
pub(super) fn strip_softmax(graph: &mut GraphProto) -> Result<(), String> {
    let [output] = graph.output.as_slice() else {
        return Err(format!(
            "--strip-softmax: the graph has {} outputs; a single output computed by a Softmax \
             is left out",
            graph.output.len()
        ));
    };
    let name = output.name.clone();
    let Some(k) = graph.node.iter().position(|n| n.output.contains(&name)) else {
        return Err(format!(
            "--strip-softmax: the graph output '{name}' is computed by no node"
        ));
    };
    let node = &graph.node[k];
    if node.op_type != "Softmax" || !is_default_domain(&node.domain) {
        return Err(format!(
            "--strip-softmax: the graph output '{name}' is computed by {}, a {} node, not by a \
             Softmax",
            node_label(node, k),
            node.op_type
        ));
    }
    let logits = match node.input.as_slice() {
        [x] if !x.is_empty() => x.clone(),
        _ => {
            return Err(format!(
                "--strip-softmax: {} has {} inputs; a Softmax has one",
                node_label(node, k),
                node.input.len()
            ))
        }
    };
    if let Some((j, reader)) = graph
        .node
        .iter()
        .enumerate()
        .find(|(_, n)| n.input.contains(&name))
    {
        return Err(format!(
            "--strip-softmax: the Softmax's output '{name}' is also read by {}",
            node_label(reader, j)
        ));
    }
    graph.node.remove(k);
    graph.output[0].name = logits;
    Ok(())
}
