//! ONNX loader: translates the ReLU MLPs and small convolutional networks that
//! `torch.onnx.export` writes (operator set 7 and later; torch uses 11 to 18) into the network
//! IR.
//!
//! The loader reads one shape of graph only: a single chain of nodes from the one data input to
//! the one graph output, with weights held in initializers or `Constant` nodes. Each operator it
//! understands is a row of the table `OPS` that either turns the node into an IR layer or changes
//! nothing about the per-sample vector; every other operator, and every graph that is not such
//! a chain, is an error naming the node. Weights are the exact f32/f64 values stored in the
//! file, and any scaling the graph asks for (Gemm's `alpha` and `beta`) must itself be exact in
//! f64, so the IR computes exactly the function the file describes.
//!
//! Image operators (Conv, AveragePool, GlobalAveragePool) become sparse layers over the
//! flattened `[channels, height, width]` sample: one row per output position and channel,
//! listing the inputs of its window, so no dense matrix is built; their stored weights are
//! bounded (`MAX_LOWERED_ENTRIES`). Average pooling's `1/count` and BatchNormalization's
//! per-channel scale `γ/√(var + ε)` and shift are f64 roundings of the file's arithmetic (the
//! one exception to the exactness above); batch norm is folded into the layer before it when
//! no ReLU lies in between, else it is a diagonal layer of its own.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use ndarray::{Array1, Array2};
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::{DataLocation, DataType};
use onnx_protobuf::tensor_shape_proto::dimension;
use onnx_protobuf::{
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, ValueInfoProto,
};
use protobuf::{CodedInputStream, Enum, Message};

use crate::error::{Error, Result};
use crate::exact::{Rational, Scalar};
use crate::model::image::{conv_rows, Window};
use crate::model::ir::{Affine, Dense, Layer, Network, Sparse, MAX_PARAMETERS};

/// The oldest default-domain operator set read. From 7 on, Gemm, Add and Dropout lost the
/// `broadcast`/`is_test` attributes whose meaning differs, and Reshape takes its shape as an
/// input; the operators in [`OPS`] keep the same meaning in every later set.
const MIN_OPSET: i64 = 7;

mod fold;
mod graph;

/// Choices in how a graph becomes the IR.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OnnxOptions {
    /// BatchNormalization as a (diagonal) layer of its own, never folded into the layer
    /// before it: no rounding, at the price of one more layer.
    pub keep_batch_norm: bool,
    /// The values of the graph's second input (a relation network's question), which the
    /// network then treats as constants.
    pub question: Option<Vec<f64>>,
}

/// Loads an ONNX file and translates it into a validated [`Network`].
pub fn load(path: &Path) -> Result<Network> {
    load_with(path, OnnxOptions::default())
}

/// [`load`] with options.
pub fn load_with(path: &Path, options: OnnxOptions) -> Result<Network> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::file(path, format!("cannot read the ONNX model: {e}")))?;
    load_bytes_with(&bytes, path, options)
}

/// [`load`] for a model already in memory; `path_for_messages` names it in errors.
pub fn load_bytes(bytes: &[u8], path_for_messages: &Path) -> Result<Network> {
    load_bytes_with(bytes, path_for_messages, OnnxOptions::default())
}

/// [`load_bytes`] with options.
pub fn load_bytes_with(
    bytes: &[u8],
    path_for_messages: &Path,
    options: OnnxOptions,
) -> Result<Network> {
    let path = path_for_messages;
    let model = parse(bytes).map_err(|problem| Error::file(path, problem))?;
    let graph = model.graph.as_ref().ok_or_else(|| {
        Error::file(
            path,
            "not an ONNX model, or truncated: the file holds no graph",
        )
    })?;
    // The default domain's operator set; without one, the oldest read.
    let opset = model
        .opset_import
        .iter()
        .filter(|s| is_default_domain(&s.domain))
        .map(|s| s.version)
        .max()
        .unwrap_or(MIN_OPSET);
    let layers = translate(graph, &options, opset).map_err(|problem| Error::file(path, problem))?;
    Network::new(layers).map_err(|e| e.in_file(path))
}

/// Decodes the protobuf and checks the few model-level fields that tell an ONNX model from
/// other protobuf data or from a file cut short.
fn parse(bytes: &[u8]) -> Result<ModelProto, String> {
    if bytes.is_empty() {
        return Err("empty file (expected an ONNX model)".into());
    }
    let model = ModelProto::parse_from_bytes(bytes).map_err(|e| {
        let reason = e.to_string();
        // Exporters write `ir_version` (field 1, a varint: tag byte 0x08) first, so a file that
        // starts that way and then runs out of bytes is a model cut short, not foreign data.
        let ran_out = reason.contains("EOF") || reason.contains("Truncated");
        if ran_out && bytes.first() == Some(&0x08) {
            format!("truncated ONNX model ({reason})")
        } else {
            format!("not an ONNX model: {reason}")
        }
    })?;
    if let Some(problem) = cut_short(bytes) {
        return Err(format!("truncated ONNX model ({problem})"));
    }
    if model.ir_version <= 0 {
        return Err("not an ONNX model: it declares no IR version".into());
    }
    // `opset_import` follows the graph in exporters' field order, so its absence after a parse
    // that succeeded most often means the file ends early.
    if model.opset_import.is_empty() {
        return Err("truncated, or not an ONNX model: it declares no operator set".into());
    }
    if let Some(set) = model
        .opset_import
        .iter()
        .find(|s| is_default_domain(&s.domain) && s.version < MIN_OPSET)
    {
        return Err(format!(
            "operator set {} is older than {MIN_OPSET}, the oldest this loader reads; re-export with a newer opset_version",
            set.version
        ));
    }
    Ok(model)
}

/// rust-protobuf stops a nested message at the end of the buffer instead of at its declared
/// length, so a file cut inside its graph parses as a smaller graph. A cut always lands inside
/// the last top-level field, whose declared length then runs past the end of the file.
fn cut_short(bytes: &[u8]) -> Option<String> {
    let mut stream = CodedInputStream::from_bytes(bytes);
    loop {
        let tag = match stream.read_raw_tag_or_eof() {
            Ok(Some(tag)) => tag,
            Ok(None) => return None,
            Err(e) => return Some(e.to_string()),
        };
        let field = tag >> 3;
        let read = match tag & 7 {
            0 => stream.read_raw_varint64().map(drop),
            1 => stream.skip_raw_bytes(8),
            5 => stream.skip_raw_bytes(4),
            2 => {
                let len = match stream.read_raw_varint64() {
                    Ok(len) => len,
                    Err(e) => return Some(e.to_string()),
                };
                let left = (bytes.len() as u64).saturating_sub(stream.pos());
                if len > left {
                    return Some(format!(
                        "field {field} declares {len} bytes but only {left} remain"
                    ));
                }
                // Protobuf messages are below 2 GiB; a longer field is left to the parser.
                match u32::try_from(len) {
                    Ok(len) => stream.skip_raw_bytes(len),
                    Err(_) => return None,
                }
            }
            // Groups and invalid wire types are the parser's business.
            _ => return None,
        };
        if let Err(e) = read {
            return Some(e.to_string());
        }
    }
}

fn is_default_domain(domain: &str) -> bool {
    domain.is_empty() || domain == "ai.onnx"
}

/// One row of the operator table: the attributes the translation understands (any other is an
/// error, since ignoring an attribute could change the function) and the translation step.
struct Op {
    name: &'static str,
    attributes: &'static [&'static str],
    step: Step,
}

/// Translates one node. `Err` carries the problem; the driver prefixes the node's name.
type Step = for<'a> fn(&mut Chain<'a>, &Ctx<'a>) -> Result<(), String>;

/// Every operator the loader reads. The order is the order the error message lists them in.
const OPS: &[Op] = &[
    Op {
        name: "Gemm",
        attributes: &["alpha", "beta", "transA", "transB"],
        step: gemm,
    },
    Op {
        name: "MatMul",
        attributes: &[],
        step: matmul,
    },
    Op {
        name: "Add",
        attributes: &[],
        step: add_bias,
    },
    Op {
        name: "Relu",
        attributes: &[],
        step: relu,
    },
    Op {
        name: "Conv",
        attributes: &[
            "auto_pad",
            "dilations",
            "group",
            "kernel_shape",
            "pads",
            "strides",
        ],
        step: conv,
    },
    Op {
        name: "BatchNormalization",
        attributes: &["epsilon", "momentum", "training_mode"],
        step: batch_norm,
    },
    Op {
        name: "AveragePool",
        attributes: &[
            "auto_pad",
            "ceil_mode",
            "count_include_pad",
            "dilations",
            "kernel_shape",
            "pads",
            "strides",
        ],
        step: average_pool,
    },
    Op {
        name: "GlobalAveragePool",
        attributes: &[],
        step: global_average_pool,
    },
    Op {
        name: "MaxPool",
        attributes: MAX_POOL_ATTRIBUTES,
        step: max_pool,
    },
    Op {
        name: "Flatten",
        attributes: &["axis"],
        step: flatten,
    },
    Op {
        name: "Reshape",
        attributes: &["allowzero"],
        step: reshape,
    },
    Op {
        name: "Identity",
        attributes: &[],
        step: pass_through,
    },
    Op {
        name: "Dropout",
        attributes: &["ratio", "seed"],
        step: dropout,
    },
    Op {
        name: "Constant",
        attributes: &[
            "value",
            "value_float",
            "value_floats",
            "value_int",
            "value_ints",
        ],
        step: constant,
    },
];

/// What one node sees of the driver.
struct Ctx<'a> {
    node: &'a NodeProto,
    /// The position of the data input among the node's inputs; `None` for `Constant`.
    data: Option<usize>,
    /// The node right before this one (constants aside) was an affine node without a bias.
    bias_open: bool,
}

/// A layer under construction; `label` names its node in errors raised when it is finished.
struct Pending {
    weight: Weights,
    bias: Array1<f64>,
    relu: bool,
    /// A max-pool layer's window.
    max_pool: Option<usize>,
    label: String,
}

/// The weights of a pending layer: a dense matrix (Gemm, MatMul), or for image layers one
/// list of `(input, weight)` per output over `inputs` inputs.
enum Weights {
    Dense(Array2<f64>),
    Sparse {
        inputs: usize,
        rows: Vec<Vec<(u32, f64)>>,
    },
}

impl Weights {
    fn rows(&self) -> usize {
        match self {
            Weights::Dense(w) => w.nrows(),
            Weights::Sparse { rows, .. } => rows.len(),
        }
    }

    /// Multiplies row `j` by `scale(j)`, rounding each product once.
    fn scale_rows(&mut self, scale: impl Fn(usize) -> f64) {
        match self {
            Weights::Dense(w) => {
                for (j, mut row) in w.rows_mut().into_iter().enumerate() {
                    let s = scale(j);
                    row.mapv_inplace(|v| v * s);
                }
            }
            Weights::Sparse { rows, .. } => {
                for (j, row) in rows.iter_mut().enumerate() {
                    let s = scale(j);
                    row.iter_mut().for_each(|(_, v)| *v *= s);
                }
            }
        }
    }
}

/// The per-sample view of the data tensor flowing along the chain.
#[derive(Clone, Copy, Debug)]
struct DataShape {
    /// Rank of the tensor; `None` until known (a graph input without a declared shape).
    rank: Option<usize>,
    /// The static batch size, when the graph input declares one.
    batch: Option<u64>,
    /// Values per sample (the product of every dimension after the batch), when static.
    width: Option<u64>,
    /// `[channels, height, width]` of an image-shaped sample (rank 4), when static.
    spatial: Option<[usize; 3]>,
}

/// The translation state: constants seen so far, layers built so far, the data's shape.
struct Chain<'a> {
    consts: HashMap<&'a str, Cow<'a, TensorProto>>,
    layers: Vec<Pending>,
    shape: DataShape,
    /// Set by an affine node without a bias, so that an `Add` right after it can supply one.
    open_bias: bool,
    options: OnnxOptions,
}

/// A decoded float tensor.
struct Tensor {
    dims: Vec<usize>,
    data: Vec<f64>,
}

fn node_label(node: &NodeProto, index: usize) -> String {
    if node.name.is_empty() {
        format!("unnamed {} node (index {index})", node.op_type)
    } else {
        format!("node '{}' (index {index})", node.name)
    }
}

fn supported_list() -> String {
    OPS.iter().map(|op| op.name).collect::<Vec<_>>().join(", ")
}

/// Walks the graph's nodes in file order, following the single chain from the data input.
fn translate(graph: &GraphProto, options: &OnnxOptions, opset: i64) -> Result<Vec<Layer>, String> {
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
    // Two inputs, operators that move elements between positions, or a sum of two computed
    // tensors (a residual connection): read tensor by tensor.
    let moves = graph
        .node
        .iter()
        .any(|n| is_default_domain(&n.domain) && graph::GRAPH_OPS.contains(&n.op_type.as_str()));
    let constant_nodes: Vec<&str> = graph
        .node
        .iter()
        .filter(|n| n.op_type == "Constant")
        .flat_map(|n| n.output.iter().map(String::as_str))
        .collect();
    let joins = graph.node.iter().any(|n| {
        is_default_domain(&n.domain)
            && n.op_type == "Add"
            && n.input.len() == 2
            && n.input
                .iter()
                .all(|i| !consts.contains_key(i.as_str()) && !constant_nodes.contains(&i.as_str()))
    });
    if real.len() == 2 || moves || joins {
        return graph::translate(graph, consts, &real, output, options, opset);
    }
    if options.question.is_some() {
        return Err(
            "--question gives the values of a graph's second input, and this graph has one input"
                .into(),
        );
    }
    let input = match real.as_slice() {
        [one] => *one,
        [] => return Err("the graph has no data input (every input is an initializer)".into()),
        many => {
            let names: Vec<String> = many.iter().map(|v| format!("'{}'", v.name)).collect();
            return Err(format!(
                "the graph has {} data inputs ({}); only a single-input chain is supported",
                many.len(),
                names.join(", ")
            ));
        }
    };

    // Who produces and who consumes each tensor: the chain checks below need both directions.
    let mut producer: HashMap<&str, usize> = HashMap::new();
    let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, node) in graph.node.iter().enumerate() {
        for name in node.output.iter().filter(|n| !n.is_empty()) {
            let taken = consts.contains_key(name.as_str()) || *name == input.name;
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

    let mut chain = Chain {
        consts,
        layers: Vec::new(),
        shape: input_shape(input)?,
        open_bias: false,
        options: options.clone(),
    };
    let mut current: &str = input.name.as_str();
    let mut last_label = format!("the graph input '{current}'");

    for (i, node) in graph.node.iter().enumerate() {
        let label = node_label(node, i);
        let at = |problem: String| format!("{label}: {problem}");
        let op = lookup(node).map_err(at)?;
        check_attributes(node, op).map_err(at)?;

        let data: Vec<(usize, &str)> = node
            .input
            .iter()
            .enumerate()
            .filter(|(_, n)| !n.is_empty() && !chain.consts.contains_key(n.as_str()))
            .map(|(pos, n)| (pos, n.as_str()))
            .collect();

        if op.name == "Constant" {
            if !node.input.is_empty() {
                return Err(at("a Constant node takes no inputs".into()));
            }
            let ctx = Ctx {
                node,
                data: None,
                bias_open: chain.open_bias,
            };
            (op.step)(&mut chain, &ctx).map_err(at)?;
            continue;
        }

        let pos = match data.as_slice() {
            [(pos, name)] => {
                if *name != current {
                    return Err(at(misplaced_input(name, current, i, &producer, input)));
                }
                *pos
            }
            [] if op.name == "Identity" => {
                // An Identity of a constant (torch emits these for shared parameters) is one
                // more name for the same constant, not a step of the chain.
                alias_constant(&mut chain, node).map_err(at)?;
                continue;
            }
            [] => {
                return Err(at(format!(
                    "all its inputs are initializers or constants, so an initializer is used as the data input; \
                     the chain must run from the graph input '{}'",
                    input.name
                )))
            }
            many => {
                let names: Vec<String> = many.iter().map(|(_, n)| format!("'{n}'")).collect();
                return Err(at(format!(
                    "it combines {} computed tensors ({}); only a single chain is supported (the graph branches)",
                    many.len(),
                    names.join(", ")
                )));
            }
        };

        // A data tensor read by a second node, or also returned as a graph output, is a branch.
        if let Some(readers) = consumers.get(current) {
            if readers.len() > 1 {
                let list: Vec<String> = readers.iter().map(|r| r.to_string()).collect();
                return Err(at(format!(
                    "'{current}' feeds {} nodes (indices {}); only a single chain is supported (the graph branches)",
                    readers.len(),
                    list.join(", ")
                )));
            }
        }
        if current == output.name {
            return Err(at(format!(
                "it reads the graph output '{current}'; the graph output must end the chain"
            )));
        }

        let ctx = Ctx {
            node,
            data: Some(pos),
            bias_open: std::mem::replace(&mut chain.open_bias, false),
        };
        (op.step)(&mut chain, &ctx).map_err(at)?;

        let Some(out) = node.output.first().filter(|n| !n.is_empty()) else {
            return Err(at("it has no output".into()));
        };
        for (k, extra) in node.output.iter().enumerate().skip(1) {
            if !extra.is_empty()
                && (consumers.contains_key(extra.as_str()) || *extra == output.name)
            {
                return Err(at(format!(
                    "its output {k} ('{extra}') is used; only the first output of {} is supported",
                    node.op_type
                )));
            }
        }
        if let Some(last) = chain.layers.last_mut() {
            // Errors raised when the layer is finished name the node that produced it.
            if last.label.is_empty() {
                last.label.clone_from(&label);
            }
        }
        current = out.as_str();
        last_label = label;
    }

    if current != output.name {
        let problem = match producer.get(output.name.as_str()) {
            Some(&j) => format!(
                "the graph output '{}' comes from {}, but the chain ends at '{current}' from {last_label}",
                output.name,
                graph.node.get(j).map(|n| node_label(n, j)).unwrap_or_default()
            ),
            None => format!(
                "the graph output '{}' is not produced by the chain, which ends at '{current}' from {last_label}",
                output.name
            ),
        };
        return Err(problem);
    }
    if chain.layers.is_empty() {
        return Err("the graph has no Gemm or MatMul node, so it defines no layer".into());
    }
    check_output_shape(output, chain.shape)?;

    chain
        .layers
        .into_iter()
        .map(|p| {
            let affine = match p.weight {
                Weights::Dense(w) => Dense::new(w, p.bias).map(Affine::Dense),
                Weights::Sparse { inputs, rows } => {
                    Sparse::from_rows(inputs, rows, p.bias).map(Affine::Sparse)
                }
            }
            .map_err(|e| format!("{}: {e}", p.label))?;
            Ok(Layer {
                affine,
                relu: p.relu,
                max_pool: p.max_pool,
                linear_tail: 0,
            })
        })
        .collect()
}

fn lookup(node: &NodeProto) -> Result<&'static Op, String> {
    let op = node.op_type.as_str();
    if !is_default_domain(&node.domain) {
        return Err(format!(
            "unsupported operator '{}::{op}' (only the standard ONNX domain is read; dtdcert reads {})",
            node.domain,
            supported_list()
        ));
    }
    OPS.iter().find(|o| o.name == op).ok_or_else(|| {
        let hint = match op {
            "Shape" | "Gather" => {
                " (a dynamic reshape such as x.view(x.size(0), -1) exports as Shape/Gather/Concat; \
                 use torch.flatten(x, 1) or nn.Flatten instead)"
            }
            _ => "",
        };
        format!(
            "unsupported operator '{op}'{hint}; dtdcert reads {}",
            supported_list()
        )
    })
}

fn check_attributes(node: &NodeProto, op: &Op) -> Result<(), String> {
    match node
        .attribute
        .iter()
        .find(|a| !op.attributes.contains(&a.name.as_str()))
    {
        Some(a) => Err(format!(
            "attribute '{}' of {} is not supported (its meaning could change the function)",
            a.name, op.name
        )),
        None => Ok(()),
    }
}

/// Explains why a node's data input is not the tensor the chain has reached.
fn misplaced_input(
    name: &str,
    current: &str,
    index: usize,
    producer: &HashMap<&str, usize>,
    input: &ValueInfoProto,
) -> String {
    match producer.get(name) {
        Some(&j) if j >= index => format!(
            "it reads '{name}', which node index {j} produces later; nodes must be in topological order \
             (the graph is unordered or cyclic)"
        ),
        Some(&j) => format!(
            "it reads '{name}' (output of node index {j}) instead of '{current}', the output of the node before it; \
             only a single chain is supported (the graph branches)"
        ),
        None if name == input.name => format!(
            "it reads the graph input '{name}' again instead of '{current}'; only a single chain is supported \
             (the graph branches)"
        ),
        None => format!("it reads '{name}', which no node, initializer or graph input defines"),
    }
}

/// The shape the graph input declares; element types other than float and double are refused
/// because the IR's inputs are f32/f64 values.
fn input_shape(input: &ValueInfoProto) -> Result<DataShape, String> {
    let unknown = DataShape {
        rank: None,
        batch: None,
        width: None,
        spatial: None,
    };
    let Some(value) = input.type_.as_ref().and_then(|t| t.value.as_ref()) else {
        return Ok(unknown);
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
        return Ok(unknown);
    };
    let dims: Vec<Option<u64>> = shape.dim.iter().map(static_dim).collect();
    match dims.as_slice() {
        [] => Err(format!(
            "the graph input '{}' is a scalar; a vector per sample is needed",
            input.name
        )),
        // An unbatched vector: the whole tensor is one sample.
        [d] => Ok(DataShape {
            rank: Some(1),
            batch: None,
            width: *d,
            spatial: None,
        }),
        [batch, rest @ ..] => Ok(DataShape {
            rank: Some(dims.len()),
            batch: *batch,
            width: rest
                .iter()
                .try_fold(1u64, |acc, d| d.and_then(|d| acc.checked_mul(d))),
            spatial: match rest {
                [Some(c), Some(h), Some(w)] => {
                    let fits = |d: u64| usize::try_from(d).ok().filter(|&d| d <= MAX_IMAGE_SIDE);
                    let width_known = c.checked_mul(*h).and_then(|v| v.checked_mul(*w)).is_some();
                    match (fits(*c), fits(*h), fits(*w)) {
                        (Some(c), Some(h), Some(w)) if width_known => Some([c, h, w]),
                        _ => None,
                    }
                }
                _ => None,
            },
        }),
    }
}

fn static_dim(d: &onnx_protobuf::tensor_shape_proto::Dimension) -> Option<u64> {
    match d.value {
        Some(dimension::Value::DimValue(n)) if n > 0 => Some(n as u64),
        _ => None,
    }
}

/// If the graph output declares a static per-sample width, it must be what the chain computes.
fn check_output_shape(output: &ValueInfoProto, shape: DataShape) -> Result<(), String> {
    let Some(type_proto::Value::TensorType(tensor)) =
        output.type_.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Ok(());
    };
    let Some(declared) = tensor.shape.as_ref() else {
        return Ok(());
    };
    if let ([_, last], Some(width)) = (declared.dim.as_slice(), shape.width) {
        if let Some(d) = static_dim(last) {
            if d != width {
                return Err(format!(
                    "the graph output '{}' declares {d} values per sample but the network computes {width}",
                    output.name
                ));
            }
        }
    }
    Ok(())
}

fn data_type_name(code: i32) -> String {
    match DataType::from_i32(code) {
        Some(t) => format!("{t:?} ({code})"),
        None => format!("unknown ({code})"),
    }
}

// ---------------------------------------------------------------------------------------------
// Translation steps, one per row of `OPS`.
// ---------------------------------------------------------------------------------------------

/// `Y = alpha · A · op(B) + beta · C`: a dense layer with `W = alpha · op(B)ᵀ`, `b = beta · C`.
fn gemm<'a>(chain: &mut Chain<'a>, ctx: &Ctx<'a>) -> Result<(), String> {
    data_first(ctx)?;
    let (weight, bias) = gemm_weights(ctx.node, |name| chain.floats(name))?;
    let has_c = ctx.node.input.get(2).is_some_and(|n| !n.is_empty());
    chain.push_affine(ctx.node, weight, bias, false)?;
    chain.open_bias = !has_c;
    Ok(())
}

/// A Gemm node's `W = alpha · op(B)ᵀ` ([out, in]) and `b = beta · C` (zeros without C), read
/// with `floats`; products that round are refused.
fn gemm_weights(
    node: &NodeProto,
    floats: impl Fn(&str) -> Result<Tensor, String>,
) -> Result<(Array2<f64>, Array1<f64>), String> {
    let alpha = attr_float(node, "alpha")?.unwrap_or(1.0);
    let beta = attr_float(node, "beta")?.unwrap_or(1.0);
    if attr_int(node, "transA")?.unwrap_or(0) != 0 {
        return Err(
            "transA = 1 is not supported: the data input must be [batch, features], not transposed"
                .into(),
        );
    }
    let trans_b = match attr_int(node, "transB")?.unwrap_or(0) {
        0 => false,
        1 => true,
        other => return Err(format!("transB = {other}; expected 0 or 1")),
    };
    let b_name = required_input(node, 1, "B")?;
    let b = matrix(b_name, floats(b_name)?)?;
    // `op(B)` is [in, out]; the IR stores W as [out, in].
    let weight = if trans_b { b } else { b.reversed_axes() };
    let weight = scale_matrix(alpha, "alpha", weight)?;
    let out = weight.nrows();
    let bias = match node.input.get(2).filter(|n| !n.is_empty()) {
        Some(c) => scale_vector(beta, "beta", bias_vector(c, floats(c)?, out)?)?,
        None => Array1::zeros(out),
    };
    Ok((weight, bias))
}

/// `Y = A · B` with `B` an [in, out] constant: a dense layer with `W = Bᵀ` and, until an `Add`
/// right after it supplies one, a zero bias.
fn matmul<'a>(chain: &mut Chain<'a>, ctx: &Ctx<'a>) -> Result<(), String> {
    data_first(ctx)?;
    let weight = matmul_weight(ctx.node, |name| chain.floats(name))?;
    let out = weight.nrows();
    chain.push_affine(ctx.node, weight, Array1::zeros(out), true)?;
    chain.open_bias = true;
    Ok(())
}

/// A MatMul node's `W = Bᵀ` ([out, in]) for a constant [in, out] matrix `B`.
fn matmul_weight(
    node: &NodeProto,
    floats: impl Fn(&str) -> Result<Tensor, String>,
) -> Result<Array2<f64>, String> {
    let b_name = required_input(node, 1, "B")?;
    let b = floats(b_name)?;
    if b.dims.len() != 2 {
        return Err(format!(
            "the weight '{b_name}' has shape {:?}; MatMul is read only with an [in, out] matrix",
            b.dims
        ));
    }
    Ok(matrix(b_name, b)?.reversed_axes())
}

/// `Y = X + c` right after a MatMul (or a Gemm without C): `c` becomes that layer's bias.
fn add_bias<'a>(chain: &mut Chain<'a>, ctx: &Ctx<'a>) -> Result<(), String> {
    let Some(layer) = chain.layers.last_mut().filter(|_| ctx.bias_open) else {
        return Err(
            "Add is supported only as the bias of the MatMul (or Gemm without C) right before it"
                .into(),
        );
    };
    // The data may be either operand; the other one is the bias.
    let other = match ctx.data {
        Some(0) => 1,
        Some(1) => 0,
        _ => return Err("Add needs exactly two inputs".into()),
    };
    let b_name = required_input(ctx.node, other, "the bias")?;
    let t = float_tensor(b_name, chain.consts.get(b_name).map(AsRef::as_ref))?;
    // The bias replaces the zeros the affine node left, so no addition (and no rounding) occurs.
    layer.bias = bias_vector(b_name, t, layer.weight.rows())?;
    Ok(())
}

/// `relu` on the output of the layer before it; consecutive Relus collapse into one. After a
/// max-pool layer it is a layer of its own (a copy of each input, with ReLU).
fn relu<'a>(chain: &mut Chain<'a>, _ctx: &Ctx<'a>) -> Result<(), String> {
    match chain.layers.last_mut() {
        Some(layer) if layer.max_pool.is_some() => {
            let n = layer.weight.rows() / layer.max_pool.unwrap_or(1);
            chain.layers.push(Pending {
                weight: Weights::Sparse {
                    inputs: n,
                    rows: (0..n as u32).map(|i| vec![(i, 1.0)]).collect(),
                },
                bias: Array1::zeros(n),
                relu: true,
                max_pool: None,
                label: String::new(),
            });
            Ok(())
        }
        Some(layer) => {
            layer.relu = true;
            Ok(())
        }
        None => Err("Relu on the raw input; a Relu must follow a Gemm or MatMul layer".into()),
    }
}

/// Weights a convolution, pooling or batch-norm layer may store in sparse form: 2^26 (1.5 GiB
/// with their indices). A 24-channel 3×3 convolution of a 3×128×128 image stores 2.7 million.
const MAX_LOWERED_ENTRIES: usize = 1 << 26;

/// The largest image side, channel count, kernel side, stride or pad read (2^24): keeps every
/// size computed from them far from overflow.
const MAX_IMAGE_SIDE: usize = 1 << 24;

/// The `[channels, height, width]` of the data reaching an image operator.
fn image_shape(chain: &Chain<'_>, op: &str) -> Result<[usize; 3], String> {
    match (chain.shape.rank, chain.shape.spatial) {
        (Some(4), Some(s)) => Ok(s),
        (Some(4), None) | (None, _) => Err(format!(
            "{op} needs static [channels, height, width] sizes of at most 2^24 each; export the \
             model with a fixed image size (only the batch may be dynamic)"
        )),
        (Some(r), _) => Err(format!(
            "{op} needs [batch, channels, height, width] data but the data has rank {r} here"
        )),
    }
}

/// The window geometry of a node, checked against the attributes this loader does not
/// implement.
trait ReadWindow: Sized {
    fn read(node: &NodeProto, kernel: Option<[usize; 2]>) -> Result<Self, String>;
}

impl ReadWindow for Window {
    fn read(node: &NodeProto, kernel: Option<[usize; 2]>) -> Result<Self, String> {
        if let Some(mode) = attr_string(node, "auto_pad")? {
            if mode != "NOTSET" {
                return Err(format!(
                    "auto_pad = {mode} is not supported; export with explicit pads (auto_pad NOTSET)"
                ));
            }
        }
        if let Some(d) = attr_ints(node, "dilations")? {
            if d.iter().any(|&v| v != 1) {
                return Err(format!("dilations {d:?} are not supported; only 1 is"));
            }
        }
        let side = |v: i64| usize::try_from(v).ok().filter(|&v| v <= MAX_IMAGE_SIDE);
        let pair = |name: &str, v: Vec<i64>| -> Result<[usize; 2], String> {
            match v.as_slice() {
                [a, b] if *a > 0 && *b > 0 => match (side(*a), side(*b)) {
                    (Some(a), Some(b)) => Ok([a, b]),
                    _ => Err(format!("{name} {v:?}: values above 2^24 are not read")),
                },
                _ => Err(format!(
                    "{name} {v:?}: two positive values (height, width) are needed"
                )),
            }
        };
        let declared = attr_ints(node, "kernel_shape")?
            .map(|k| pair("kernel_shape", k))
            .transpose()?;
        let kernel = match (declared, kernel) {
            (Some(d), Some(w)) if d != w => {
                return Err(format!(
                    "kernel_shape {d:?} does not match the weight's kernel {w:?}"
                ))
            }
            (Some(k), _) | (None, Some(k)) => k,
            (None, None) => return Err("kernel_shape is missing".into()),
        };
        let strides = match attr_ints(node, "strides")? {
            Some(v) => pair("strides", v)?,
            None => [1, 1],
        };
        let pads = match attr_ints(node, "pads")?.as_deref() {
            None => [0; 4],
            Some(&[t, l, b, r]) if [t, l, b, r].iter().all(|&p| side(p).is_some()) => {
                [t as usize, l as usize, b as usize, r as usize]
            }
            Some(p) => {
                return Err(format!(
                "pads {p:?}: four values (top, left, bottom, right) between 0 and 2^24 are needed"
            ))
            }
        };
        Ok(Window {
            kernel,
            strides,
            pads,
        })
    }
}

/// Checks that an image layer with the product of `rows` rows, each listing at most
/// `per_row` weights, stays within [`MAX_LOWERED_ENTRIES`] and that its `inputs` can be
/// indexed; returns the number of rows.
fn lowered(op: &str, rows: &[usize], per_row: usize, inputs: usize) -> Result<usize, String> {
    if u32::try_from(inputs).is_err() {
        return Err(format!(
            "{op} reads {inputs} values per sample, more than 2^32 - 1"
        ));
    }
    let count = rows.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    match count {
        Some(r)
            if r.checked_mul(per_row)
                .is_some_and(|n| n <= MAX_LOWERED_ENTRIES) =>
        {
            Ok(r)
        }
        _ => Err(format!(
            "{op} would store ({}) rows × {per_row} weights (more than 2^26); \
             image layers this large are not supported",
            rows.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("·"),
        )),
    }
}

/// `Conv` (2-D, group 1, dilation 1, explicit pads): a sparse layer over the flattened
/// `[channels, height, width]` sample, one row per output position and channel.
fn conv<'a>(chain: &mut Chain<'a>, ctx: &Ctx<'a>) -> Result<(), String> {
    data_first(ctx)?;
    let image = image_shape(chain, "Conv")?;
    let (rows, bias, out) = conv_layer(ctx.node, image, |name| chain.floats(name))?;
    chain.push_image_layer(image.iter().product(), rows, Array1::from(bias), out);
    Ok(())
}

/// A Conv node over a `[c_in, h, w]` image (its weights read with `floats`): its rows, one bias
/// per row, and the `[c_out, ho, wo]` output.
#[allow(clippy::type_complexity)]
fn conv_layer(
    node: &NodeProto,
    [c_in, h, w]: [usize; 3],
    floats: impl Fn(&str) -> Result<Tensor, String>,
) -> Result<(Vec<Vec<(u32, f64)>>, Vec<f64>, [usize; 3]), String> {
    if let Some(g) = attr_int(node, "group")? {
        if g != 1 {
            return Err(format!("group = {g} is not supported; only 1 is"));
        }
    }
    let w_name = required_input(node, 1, "W")?;
    let k = floats(w_name)?;
    let [c_out, k_in, kh, kw] = k.dims[..] else {
        return Err(format!(
            "the weight '{w_name}' has shape {:?}; a 2-D convolution needs [out, in, height, width]",
            k.dims
        ));
    };
    if k_in != c_in {
        return Err(format!(
            "the weight '{w_name}' takes {k_in} channels but the data has {c_in}"
        ));
    }
    if [c_out, kh, kw]
        .iter()
        .any(|&d| d == 0 || d > MAX_IMAGE_SIDE)
    {
        return Err(format!(
            "the weight '{w_name}' has shape {:?}; every size must be between 1 and 2^24",
            k.dims
        ));
    }
    let window = Window::read(node, Some([kh, kw]))?;
    let [ho, wo] = window.output(h, w)?;
    let inputs = c_in
        .checked_mul(h)
        .and_then(|n| n.checked_mul(w))
        .ok_or("Conv reads more values per sample than can be indexed")?;
    let per_row = c_in
        .checked_mul(kh)
        .and_then(|n| n.checked_mul(kw))
        .ok_or("the Conv kernel has more weights than can be indexed")?;
    lowered("Conv", &[c_out, ho, wo], per_row, inputs)?;
    let rows = conv_rows(&k.data, [c_out, c_in], [h, w], &window);
    let bias = match node.input.get(2).filter(|n| !n.is_empty()) {
        Some(b_name) => {
            let b = bias_vector(b_name, floats(b_name)?, c_out)?;
            (0..c_out * ho * wo).map(|row| b[row / (ho * wo)]).collect()
        }
        None => vec![0.0; c_out * ho * wo],
    };
    Ok((rows, bias, [c_out, ho, wo]))
}

/// `AveragePool` (2-D, `ceil_mode` 0): a dense layer whose rows average each window over the
/// input positions it covers (`count_include_pad` 0) or over the whole kernel (1).
fn average_pool<'a>(chain: &mut Chain<'a>, ctx: &Ctx<'a>) -> Result<(), String> {
    data_first(ctx)?;
    let node = ctx.node;
    if attr_int(node, "ceil_mode")?.unwrap_or(0) != 0 {
        return Err("ceil_mode = 1 is not supported; only 0 (floor) is".into());
    }
    let include_pad = attr_int(node, "count_include_pad")?.unwrap_or(0) != 0;
    let [c, h, w] = image_shape(chain, "AveragePool")?;
    let window = Window::read(node, None)?;
    pool(chain, c, h, w, &window, include_pad, "AveragePool")
}

/// The attributes a `MaxPool` node may carry (`storage_order` concerns only the `Indices`
/// output, which is refused when used).
const MAX_POOL_ATTRIBUTES: &[&str] = &[
    "auto_pad",
    "ceil_mode",
    "dilations",
    "kernel_shape",
    "pads",
    "storage_order",
    "strides",
];

/// `MaxPool` (2-D, `ceil_mode` 0): a max-pool layer, gathering each window's inputs.
fn max_pool<'a>(chain: &mut Chain<'a>, ctx: &Ctx<'a>) -> Result<(), String> {
    data_first(ctx)?;
    let [c, h, w] = image_shape(chain, "MaxPool")?;
    let (window, [ho, wo]) = max_pool_window(ctx.node, [h, w])?;
    let (rows, size) = max_pool_rows([c, h, w], &window)?;
    let n = rows.len();
    chain.push_image_layer(c * h * w, rows, Array1::zeros(n), [c, ho, wo]);
    chain.shape.width = Some((c * ho * wo) as u64);
    chain.layers.last_mut().expect("pushed above").max_pool = Some(size);
    Ok(())
}

/// A `MaxPool` node's window and output size.
fn max_pool_window(node: &NodeProto, [h, w]: [usize; 2]) -> Result<(Window, [usize; 2]), String> {
    if attr_int(node, "ceil_mode")?.unwrap_or(0) != 0 {
        return Err("ceil_mode = 1 is not supported; only 0 (floor) is".into());
    }
    let window = Window::read(node, None)?;
    let out = window.output(h, w)?;
    Ok((window, out))
}

/// The rows of a sparse layer: `(input, weight)` lists.
type SparseRows = Vec<Vec<(u32, f64)>>;

/// The gather of a max pooling of a `[c, h, w]` image: for each output position, one row per
/// window position, each a copy of one input, and the window size. Padding never wins a max,
/// so a window cut by the padding repeats its first input in the padded places (a repeat after
/// the original never wins a tie either).
fn max_pool_rows([c, h, w]: [usize; 3], window: &Window) -> Result<(SparseRows, usize), String> {
    let [ho, wo] = window.output(h, w)?;
    let inputs = c
        .checked_mul(h)
        .and_then(|n| n.checked_mul(w))
        .ok_or("MaxPool reads more values per sample than can be indexed")?;
    let size = window.kernel[0]
        .checked_mul(window.kernel[1])
        .ok_or("the MaxPool window has more positions than can be indexed")?;
    lowered("MaxPool", &[c, ho, wo, size], 1, inputs)?;
    let mut rows = Vec::with_capacity(c * ho * wo * size);
    for ch in 0..c {
        for i in 0..ho {
            for j in 0..wo {
                let taps: Vec<u32> = window
                    .taps(i, j, h, w)
                    .into_iter()
                    .map(|(r, col, _, _)| ((ch * h + r) * w + col) as u32)
                    .collect();
                let Some(&first) = taps.first() else {
                    return Err("a window of MaxPool covers no input position".into());
                };
                rows.extend(taps.iter().map(|&t| vec![(t, 1.0)]));
                rows.extend((taps.len()..size).map(|_| vec![(first, 1.0)]));
            }
        }
    }
    Ok((rows, size))
}

/// `GlobalAveragePool`: the mean of each channel.
fn global_average_pool<'a>(chain: &mut Chain<'a>, ctx: &Ctx<'a>) -> Result<(), String> {
    data_first(ctx)?;
    let [c, h, w] = image_shape(chain, "GlobalAveragePool")?;
    let window = Window {
        kernel: [h, w],
        strides: [1, 1],
        pads: [0; 4],
    };
    pool(chain, c, h, w, &window, false, "GlobalAveragePool")
}

fn pool(
    chain: &mut Chain<'_>,
    c: usize,
    h: usize,
    w: usize,
    window: &Window,
    include_pad: bool,
    op: &str,
) -> Result<(), String> {
    let [ho, wo] = window.output(h, w)?;
    let rows = pool_rows(op, [c, h, w], window, include_pad)?;
    let n = rows.len();
    chain.push_image_layer(c * h * w, rows, Array1::zeros(n), [c, ho, wo]);
    Ok(())
}

/// The rows of an average pooling of a `[c, h, w]` image: each window's mean over the input
/// positions it covers (`include_pad` false) or over the whole kernel (true).
fn pool_rows(
    op: &str,
    [c, h, w]: [usize; 3],
    window: &Window,
    include_pad: bool,
) -> Result<Vec<Vec<(u32, f64)>>, String> {
    let [ho, wo] = window.output(h, w)?;
    let inputs = c
        .checked_mul(h)
        .and_then(|n| n.checked_mul(w))
        .ok_or(format!(
            "{op} reads more values per sample than can be indexed"
        ))?;
    let per_row = window.kernel[0]
        .checked_mul(window.kernel[1])
        .ok_or(format!(
            "the {op} window has more positions than can be indexed"
        ))?;
    let n = lowered(op, &[c, ho, wo], per_row, inputs)?;
    let mut rows = Vec::with_capacity(n);
    for ch in 0..c {
        for i in 0..ho {
            for j in 0..wo {
                let taps = window.taps(i, j, h, w);
                let count = if include_pad {
                    window.kernel[0] * window.kernel[1]
                } else {
                    taps.len()
                };
                if count == 0 {
                    return Err(format!("a window of {op} covers no input position"));
                }
                let share = 1.0 / count as f64;
                // Taps come row by row, left to right: already in increasing input order.
                rows.push(
                    taps.into_iter()
                        .map(|(r, col, _, _)| (((ch * h + r) * w + col) as u32, share))
                        .collect(),
                );
            }
        }
    }
    Ok(rows)
}

/// `BatchNormalization` in inference: `y = s (x − mean) + B` per channel with
/// `s = scale / sqrt(var + epsilon)`, both computed in f64. It is folded into the affine layer
/// right before it when that layer has no ReLU yet (each folded weight `s·w` rounded once), and
/// is an affine layer of its own (diagonal, exact in `s` and the shift) otherwise, or always
/// with [`LoadOptions::keep_batch_norm`].
fn batch_norm<'a>(chain: &mut Chain<'a>, ctx: &Ctx<'a>) -> Result<(), String> {
    data_first(ctx)?;
    let node = ctx.node;
    // Channels: dimension 1 of an image or of a [batch, features] tensor.
    let (channels, per_channel) = match (chain.shape.rank, chain.shape.spatial) {
        (Some(4), Some([c, h, w])) => (c, h * w),
        (Some(2), _) => match chain.shape.width {
            Some(n) => (n as usize, 1),
            None => return Err("BatchNormalization needs a static number of features".into()),
        },
        _ => {
            return Err(
                "BatchNormalization is read on [batch, features] or static [batch, channels, height, width] data"
                    .into(),
            )
        }
    };
    let (s, t) = batch_norm_parameters(node, channels, |name| chain.floats(name))?;
    let Some(n) = channels.checked_mul(per_channel) else {
        return Err("BatchNormalization over more values than the IR can index".into());
    };
    let channel_of = |row: usize| row / per_channel;
    let fold = !chain.options.keep_batch_norm;
    match chain
        .layers
        .last_mut()
        .filter(|l| fold && !l.relu && l.max_pool.is_none() && !ctx.bias_open)
    {
        Some(layer) if layer.weight.rows() == n => {
            layer.weight.scale_rows(|row| s[channel_of(row)]);
            for (row, b) in layer.bias.iter_mut().enumerate() {
                *b = *b * s[channel_of(row)] + t[channel_of(row)];
            }
        }
        _ => {
            lowered("BatchNormalization", &[n], 1, n)?;
            let rows = (0..n)
                .map(|row| vec![(row as u32, s[channel_of(row)])])
                .collect();
            let bias = Array1::from_shape_fn(n, |row| t[channel_of(row)]);
            // The data keeps its shape: no `push_*` helper, which would reset it.
            chain.layers.push(Pending {
                weight: Weights::Sparse { inputs: n, rows },
                bias,
                relu: false,
                max_pool: None,
                label: String::new(),
            });
        }
    }
    Ok(())
}

/// Per channel, the scale `s = scale / sqrt(var + epsilon)` and shift `t = B − mean·s` of an
/// inference BatchNormalization, both computed in f64.
fn batch_norm_parameters(
    node: &NodeProto,
    channels: usize,
    floats: impl Fn(&str) -> Result<Tensor, String>,
) -> Result<(Vec<f64>, Vec<f64>), String> {
    if attr_int(node, "training_mode")?.unwrap_or(0) != 0 {
        return Err(
            "training_mode = 1 normalises with batch statistics; export the model after model.eval()"
                .into(),
        );
    }
    let eps = attr_float(node, "epsilon")?.unwrap_or(1e-5);
    let mut params = Vec::with_capacity(4);
    for (pos, what) in [(1, "scale"), (2, "B"), (3, "mean"), (4, "var")] {
        let name = required_input(node, pos, what)?;
        let t = floats(name)?;
        if t.data.len() != channels {
            return Err(format!(
                "'{name}' ({what}) has {} values for {channels} channels",
                t.data.len()
            ));
        }
        params.push(t.data);
    }
    let (scale, shift, mean, var) = (&params[0], &params[1], &params[2], &params[3]);
    let mut s = Vec::with_capacity(channels);
    let mut t = Vec::with_capacity(channels);
    for c in 0..channels {
        let d = (var[c] + eps).sqrt();
        if !(d.is_finite() && d > 0.0) {
            return Err(format!(
                "channel {c}: var + epsilon = {} has no positive square root",
                var[c] + eps
            ));
        }
        let sc = scale[c] / d;
        s.push(sc);
        t.push(shift[c] - mean[c] * sc);
    }
    Ok((s, t))
}

/// Identity, and anything else that leaves each sample's vector as it is.
fn pass_through<'a>(_chain: &mut Chain<'a>, ctx: &Ctx<'a>) -> Result<(), String> {
    data_first(ctx)
}

/// In inference, Dropout passes its input through; a graph exported in training mode is
/// refused because the function would be random.
fn dropout<'a>(chain: &mut Chain<'a>, ctx: &Ctx<'a>) -> Result<(), String> {
    data_first(ctx)?;
    inference_dropout(ctx.node, &chain.consts)
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

/// Flatten keeps the batch and joins every later dimension: a no-op on the per-sample vector
/// exactly when the split is after the batch dimension.
fn flatten<'a>(chain: &mut Chain<'a>, ctx: &Ctx<'a>) -> Result<(), String> {
    data_first(ctx)?;
    let rank = chain.shape.rank.unwrap_or(2);
    if rank < 2 {
        return Err(
            "Flatten of an unbatched vector would change which values form a sample".into(),
        );
    }
    let axis = attr_int(ctx.node, "axis")?.unwrap_or(1);
    let resolved = if axis < 0 { axis + rank as i64 } else { axis };
    if resolved != 1 {
        return Err(format!(
            "Flatten with axis {axis} on a rank-{rank} tensor mixes samples; only axis 1 (keep the batch) is supported"
        ));
    }
    chain.shape.rank = Some(2);
    chain.shape.spatial = None;
    Ok(())
}

/// Reshape to `[batch, d]`, written with `0` (copy) or `-1` (infer) entries; anything that could
/// move values between samples is refused.
fn reshape<'a>(chain: &mut Chain<'a>, ctx: &Ctx<'a>) -> Result<(), String> {
    data_first(ctx)?;
    let shape_name = required_input(ctx.node, 1, "shape")?;
    let target = int64_values(shape_name, chain.consts.get(shape_name).map(AsRef::as_ref))?;
    let allow_zero = attr_int(ctx.node, "allowzero")?.unwrap_or(0) != 0;
    let s = chain.shape;
    let rank = s.rank.unwrap_or(2);
    if rank < 2 {
        return Err("Reshape of an unbatched vector is not supported".into());
    }
    let [first, second] = target.as_slice() else {
        return Err(format!(
            "Reshape to {target:?} (from '{shape_name}'); only a reshape to [batch, features] is supported"
        ));
    };
    let (first, second) = (*first, *second);
    if allow_zero && (first == 0 || second == 0) {
        return Err(format!(
            "Reshape to {target:?} with allowzero = 1 makes an empty tensor"
        ));
    }
    let keeps_batch = match first {
        0 | -1 => true,
        k if k > 0 => s.batch == Some(k as u64),
        _ => false,
    };
    if !keeps_batch {
        return Err(format!(
            "Reshape to {target:?} (from '{shape_name}') does not keep the batch dimension; \
             use 0 or -1 as its first entry"
        ));
    }
    let width = match second {
        -1 if first != -1 => s.width,
        0 if rank == 2 => s.width,
        k if k > 0 => match s.width {
            Some(w) if w != k as u64 => {
                return Err(format!(
                    "Reshape to {target:?} (from '{shape_name}') would split or join samples of {w} values"
                ))
            }
            _ => Some(k as u64),
        },
        _ => {
            return Err(format!(
                "Reshape to {target:?} (from '{shape_name}') is not [batch, features]"
            ))
        }
    };
    chain.shape = DataShape {
        rank: Some(2),
        batch: s.batch,
        width,
        spatial: None,
    };
    Ok(())
}

/// A Constant's tensor acts like an initializer named after its output.
fn constant<'a>(chain: &mut Chain<'a>, ctx: &Ctx<'a>) -> Result<(), String> {
    let node = ctx.node;
    let Some(out) = node.output.first().filter(|n| !n.is_empty()) else {
        return Err("a Constant node without an output".into());
    };
    chain.consts.insert(out.as_str(), constant_tensor(node)?);
    Ok(())
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

/// Registers `Identity(constant)` as a second name of the constant.
fn alias_constant<'a>(chain: &mut Chain<'a>, node: &'a NodeProto) -> Result<(), String> {
    let (Some(from), Some(to)) = (
        node.input.first().filter(|n| !n.is_empty()),
        node.output.first().filter(|n| !n.is_empty()),
    ) else {
        return Err("an Identity node needs one input and one output".into());
    };
    let Some(tensor) = chain.consts.get(from.as_str()).cloned() else {
        return Err(format!("it reads '{from}', which is not defined"));
    };
    chain.consts.insert(to.as_str(), tensor);
    Ok(())
}

impl<'a> Chain<'a> {
    fn floats(&self, name: &str) -> Result<Tensor, String> {
        float_tensor(name, self.consts.get(name).map(AsRef::as_ref))
    }

    /// Appends a dense layer after checking it fits the data it receives.
    fn push_affine(
        &mut self,
        node: &NodeProto,
        weight: Array2<f64>,
        bias: Array1<f64>,
        unbatched_ok: bool,
    ) -> Result<(), String> {
        match self.shape.rank {
            None | Some(2) => {}
            Some(1) if unbatched_ok => {}
            Some(1) => {
                return Err(format!(
                    "{} needs a [batch, features] input but the data is an unbatched vector here",
                    node.op_type
                ))
            }
            Some(r) => {
                return Err(format!(
                    "{} needs a [batch, features] input but the data has rank {r} here; flatten it first",
                    node.op_type
                ))
            }
        }
        let in_dim = weight.ncols() as u64;
        if let Some(w) = self.shape.width {
            if w != in_dim {
                return Err(if self.layers.is_empty() {
                    format!(
                        "the graph input declares {w} values per sample but the first layer expects {in_dim}"
                    )
                } else {
                    format!(
                        "{} expects {in_dim} values per sample but receives {w}",
                        node.op_type
                    )
                });
            }
        }
        self.shape.rank = Some(self.shape.rank.unwrap_or(2));
        self.shape.width = Some(weight.nrows() as u64);
        self.shape.spatial = None;
        self.layers.push(Pending {
            weight: Weights::Dense(weight),
            bias,
            relu: false,
            max_pool: None,
            // Filled in by the driver, which knows the node's index.
            label: String::new(),
        });
        Ok(())
    }
}

impl Chain<'_> {
    /// Appends a sparse image layer over `inputs` inputs whose output is
    /// `[channels, height, width]`.
    fn push_image_layer(
        &mut self,
        inputs: usize,
        rows: Vec<Vec<(u32, f64)>>,
        bias: Array1<f64>,
        out: [usize; 3],
    ) {
        self.shape.rank = Some(4);
        self.shape.width = Some(rows.len() as u64);
        self.shape.spatial = Some(out);
        self.layers.push(Pending {
            weight: Weights::Sparse { inputs, rows },
            bias,
            relu: false,
            max_pool: None,
            label: String::new(),
        });
    }
}

fn data_first(ctx: &Ctx<'_>) -> Result<(), String> {
    match ctx.data {
        None | Some(0) => Ok(()),
        Some(p) => Err(format!(
            "its first input '{}' is an initializer and the data arrives as input {p}; \
             an initializer cannot be the data input",
            ctx.node
                .input
                .first()
                .map(String::as_str)
                .unwrap_or_default()
        )),
    }
}

fn required_input<'n>(node: &'n NodeProto, pos: usize, what: &str) -> Result<&'n str, String> {
    node.input
        .get(pos)
        .filter(|n| !n.is_empty())
        .map(String::as_str)
        .ok_or_else(|| format!("{} has no input {pos} ({what})", node.op_type))
}

// ---------------------------------------------------------------------------------------------
// Attributes and tensors.
// ---------------------------------------------------------------------------------------------

fn attribute_type_name(kind: std::result::Result<AttributeType, i32>) -> String {
    match kind {
        Ok(t) => format!("{t:?}"),
        Err(code) => format!("unknown ({code})"),
    }
}

/// Node attribute `name`, read by `read` when it has type `kind`; `None` when absent.
fn attr<T>(
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

fn attr_float(node: &NodeProto, name: &str) -> Result<Option<f64>, String> {
    attr(node, name, AttributeType::FLOAT, |a| {
        if a.f.is_finite() {
            Ok(f64::from(a.f))
        } else {
            Err(format!("attribute '{name}' is {}", a.f))
        }
    })
}

fn attr_ints(node: &NodeProto, name: &str) -> Result<Option<Vec<i64>>, String> {
    attr(node, name, AttributeType::INTS, |a| Ok(a.ints.clone()))
}

fn attr_string(node: &NodeProto, name: &str) -> Result<Option<String>, String> {
    attr(node, name, AttributeType::STRING, |a| {
        Ok(String::from_utf8_lossy(&a.s).into_owned())
    })
}

fn attr_int(node: &NodeProto, name: &str) -> Result<Option<i64>, String> {
    attr(node, name, AttributeType::INT, |a| Ok(a.i))
}

/// The shape of a tensor and its element count, refusing absurd shapes before anything is
/// allocated for them.
fn tensor_shape(name: &str, t: &TensorProto) -> Result<(Vec<usize>, usize), String> {
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
fn from_raw<const N: usize, V>(
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

fn count_matches(name: &str, found: usize, count: usize, dims: &[usize]) -> Result<(), String> {
    if found == count {
        Ok(())
    } else {
        Err(format!(
            "tensor '{name}' holds {found} values but its shape {dims:?} needs {count}"
        ))
    }
}

/// A float or double tensor as exact f64 values (every f32 is an f64).
fn float_tensor(name: &str, t: Option<&TensorProto>) -> Result<Tensor, String> {
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
fn int64_values(name: &str, t: Option<&TensorProto>) -> Result<Vec<i64>, String> {
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
fn bool_values(name: &str, t: &TensorProto) -> Result<Vec<bool>, String> {
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

fn matrix(name: &str, t: Tensor) -> Result<Array2<f64>, String> {
    let [rows, cols] = t.dims.as_slice() else {
        return Err(format!(
            "the weight '{name}' has shape {:?}; a matrix is needed",
            t.dims
        ));
    };
    Array2::from_shape_vec((*rows, *cols), t.data).map_err(|e| format!("the weight '{name}': {e}"))
}

/// A bias of `out` values from a tensor of shape [out] or [1, out], or a scalar broadcast.
fn bias_vector(name: &str, t: Tensor, out: usize) -> Result<Array1<f64>, String> {
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

/// `factor · v` for every entry, refusing any product that rounds: the IR must hold the exact
/// weights the graph computes with.
fn scale(factor: f64, what: &str, v: f64, entry: &dyn Fn() -> String) -> Result<f64, String> {
    // Non-finite weights pass unchanged so that the network's own check reports them.
    if !v.is_finite() {
        return Ok(v);
    }
    let p = factor * v;
    let exact = if p.abs() >= f64::MIN_POSITIVE || p.is_infinite() {
        // Above the subnormal range the rounding error of a product is itself an f64, so the
        // fused multiply-add returns it exactly: zero if and only if nothing was rounded.
        factor.mul_add(v, -p) == 0.0
    } else {
        // A product that underflows can have an error too small for any f64, so the fused
        // test could miss it; settle these rare cases in exact arithmetic.
        Rational::from_f64(factor) * Rational::from_f64(v) == Rational::from_f64(p)
    };
    if exact {
        Ok(p)
    } else {
        Err(format!(
            "{what} = {factor} times {} = {v} is not exactly representable in f64; \
             fold {what} into the weights before export",
            entry()
        ))
    }
}

fn scale_matrix(factor: f64, what: &str, m: Array2<f64>) -> Result<Array2<f64>, String> {
    if factor == 1.0 {
        return Ok(m);
    }
    let mut m = m;
    for ((r, c), v) in m.indexed_iter_mut() {
        *v = scale(factor, what, *v, &|| format!("weight [{r}, {c}]"))?;
    }
    Ok(m)
}

fn scale_vector(factor: f64, what: &str, b: Array1<f64>) -> Result<Array1<f64>, String> {
    if factor == 1.0 {
        return Ok(b);
    }
    let mut b = b;
    for (j, v) in b.indexed_iter_mut() {
        *v = scale(factor, what, *v, &|| format!("bias [{j}]"))?;
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::forward::output;
    use onnx_protobuf::tensor_shape_proto::Dimension;
    use onnx_protobuf::{
        AttributeProto, GraphProto, OperatorSetIdProto, TensorShapeProto, TypeProto,
    };
    use std::path::PathBuf;

    fn floats(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
        let mut t = TensorProto::new();
        t.name = name.into();
        t.dims = dims.to_vec();
        t.data_type = DataType::FLOAT as i32;
        // torch writes raw little-endian bytes; float_data is covered by `floats_listed`.
        t.raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        t
    }

    fn floats_listed(name: &str, dims: &[i64], values: &[f32]) -> TensorProto {
        let mut t = floats(name, dims, &[]);
        t.float_data = values.to_vec();
        t
    }

    fn doubles(name: &str, dims: &[i64], values: &[f64]) -> TensorProto {
        let mut t = TensorProto::new();
        t.name = name.into();
        t.dims = dims.to_vec();
        t.data_type = DataType::DOUBLE as i32;
        t.double_data = values.to_vec();
        t
    }

    fn int64s(name: &str, values: &[i64]) -> TensorProto {
        let mut t = TensorProto::new();
        t.name = name.into();
        t.dims = vec![values.len() as i64];
        t.data_type = DataType::INT64 as i32;
        t.raw_data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        t
    }

    fn attr_f(name: &str, v: f32) -> AttributeProto {
        let mut a = AttributeProto::new();
        a.name = name.into();
        a.type_ = AttributeType::FLOAT.into();
        a.f = v;
        a
    }

    fn attr_i(name: &str, v: i64) -> AttributeProto {
        let mut a = AttributeProto::new();
        a.name = name.into();
        a.type_ = AttributeType::INT.into();
        a.i = v;
        a
    }

    fn attr_t(name: &str, t: TensorProto) -> AttributeProto {
        let mut a = AttributeProto::new();
        a.name = name.into();
        a.type_ = AttributeType::TENSOR.into();
        a.t = Some(t).into();
        a
    }

    fn node(
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
    fn value(name: &str, dims: &[Option<i64>]) -> ValueInfoProto {
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

    fn model(
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

    fn write_bytes(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("model.onnx");
        std::fs::write(&path, bytes).expect("write model");
        (dir, path)
    }

    fn load_model(m: &ModelProto) -> Result<Network> {
        let (_dir, path) = write_bytes(&m.write_to_bytes().expect("serialise"));
        load(&path)
    }

    fn load_err(m: &ModelProto) -> String {
        match load_model(m) {
            Ok(net) => panic!("expected an error, loaded {}", net.describe()),
            Err(e) => e.to_string(),
        }
    }

    fn assert_has(message: &str, parts: &[&str]) {
        for part in parts {
            assert!(message.contains(part), "'{part}' missing from: {message}");
        }
    }

    fn batch(width: i64) -> ValueInfoProto {
        value("input", &[None, Some(width)])
    }

    fn out(width: i64) -> ValueInfoProto {
        value("output", &[None, Some(width)])
    }

    /// W1 = [[1, 2], [-1, 0.5], [0, -3]], b1 = [0.5, 1, -1], W2 = [[1, -2, 0.25]], b2 = [2].
    const W1: [f32; 6] = [1.0, 2.0, -1.0, 0.5, 0.0, -3.0];
    const B1: [f32; 3] = [0.5, 1.0, -1.0];
    const W2: [f32; 3] = [1.0, -2.0, 0.25];
    const B2: [f32; 1] = [2.0];

    /// The 2-3-1 network by hand at x = [1, -2]: z1 = [-2.5, -1, 5], h1 = [0, 0, 5],
    /// y = 0 - 0 + 1.25 + 2 = 3.25.
    fn reference_output(net: &Network) {
        assert_eq!(net.widths(), vec![2, 3, 1]);
        assert!(net.layers()[0].relu);
        assert!(!net.layers()[1].relu);
        assert_eq!(output(net, &[1.0, -2.0]), vec![3.25]);
        // At x = 0: h1 = relu(b1) = [0.5, 1, 0], y = 0.5 - 2 + 2 = 0.5.
        assert_eq!(output(net, &[0.0, 0.0]), vec![0.5]);
    }

    fn transposed(w: &[f32], rows: usize, cols: usize) -> Vec<f32> {
        (0..cols)
            .flat_map(|c| (0..rows).map(move |r| w[r * cols + c]))
            .collect()
    }

    #[test]
    fn gemm_with_trans_b_1_as_torch_writes_it() {
        let m = model(
            vec![
                node(
                    "Gemm",
                    "/fc1/Gemm",
                    &["input", "w1", "b1"],
                    &["h"],
                    vec![
                        attr_f("alpha", 1.0),
                        attr_f("beta", 1.0),
                        attr_i("transB", 1),
                    ],
                ),
                node("Relu", "/relu/Relu", &["h"], &["r"], vec![]),
                node(
                    "Gemm",
                    "/fc2/Gemm",
                    &["r", "w2", "b2"],
                    &["output"],
                    vec![attr_i("transB", 1)],
                ),
            ],
            vec![
                floats("w1", &[3, 2], &W1),
                floats("b1", &[3], &B1),
                floats("w2", &[1, 3], &W2),
                floats_listed("b2", &[1], &B2),
            ],
            batch(2),
            out(1),
        );
        reference_output(&load_model(&m).expect("loads"));
    }

    #[test]
    fn gemm_with_trans_b_0_takes_in_by_out_weights() {
        let m = model(
            vec![
                node(
                    "Gemm",
                    "g1",
                    &["input", "w1", "b1"],
                    &["h"],
                    vec![attr_i("transB", 0)],
                ),
                node("Relu", "r1", &["h"], &["r"], vec![]),
                node("Gemm", "g2", &["r", "w2", "b2"], &["output"], vec![]),
            ],
            vec![
                floats_listed("w1", &[2, 3], &transposed(&W1, 3, 2)),
                floats("b1", &[1, 3], &B1),
                floats("w2", &[3, 1], &W2),
                floats("b2", &[1, 1], &B2),
            ],
            batch(2),
            out(1),
        );
        reference_output(&load_model(&m).expect("loads"));
    }

    #[test]
    fn gemm_alpha_and_beta_scale_exactly() {
        let m = model(
            vec![node(
                "Gemm",
                "g",
                &["input", "w", "b"],
                &["output"],
                vec![
                    attr_f("alpha", 0.5),
                    attr_f("beta", -3.0),
                    attr_i("transB", 1),
                ],
            )],
            vec![floats("w", &[1, 2], &[3.0, 0.1]), floats("b", &[1], &[0.1])],
            batch(2),
            out(1),
        );
        let net = load_model(&m).expect("loads");
        let layer = &net.layers()[0].affine;
        // Every product of an f32 attribute and an f32 weight is exact in f64.
        assert_eq!(*layer.row(0).dense(), [1.5, 0.5 * f64::from(0.1f32)]);
        assert_eq!(*layer.bias(0), -3.0 * f64::from(0.1f32));
        assert_eq!(
            output(&net, &[2.0, 0.0]),
            vec![3.0 - 3.0 * f64::from(0.1f32)]
        );
    }

    #[test]
    fn gemm_alpha_that_rounds_is_refused() {
        let m = model(
            vec![node(
                "Gemm",
                "g",
                &["input", "w"],
                &["output"],
                vec![attr_f("alpha", 0.1), attr_i("transB", 1)],
            )],
            vec![doubles("w", &[1, 2], &[1.0, 0.1])],
            batch(2),
            out(1),
        );
        assert_has(
            &load_err(&m),
            &[
                "model.onnx",
                "node 'g' (index 0)",
                "alpha",
                "weight [0, 1]",
                "not exactly representable",
            ],
        );
    }

    #[test]
    fn gemm_beta_that_underflows_is_refused() {
        // 2^-1074 (the smallest subnormal) times 0.75 rounds to 2^-1074 or 0: not exact, though
        // the rounding error is too small for the fused test to see.
        let tiny = f64::from_bits(1);
        let m = model(
            vec![node(
                "Gemm",
                "g",
                &["input", "w", "b"],
                &["output"],
                vec![attr_f("beta", 0.75), attr_i("transB", 1)],
            )],
            vec![
                floats("w", &[1, 2], &[1.0, 1.0]),
                doubles("b", &[1], &[tiny]),
            ],
            batch(2),
            out(1),
        );
        assert_has(
            &load_err(&m),
            &[
                "node 'g' (index 0)",
                "beta = 0.75",
                "bias [0]",
                "not exactly representable",
            ],
        );
    }

    #[test]
    fn gemm_trans_a_is_an_error_naming_the_node() {
        let m = model(
            vec![node(
                "Gemm",
                "/fc/Gemm",
                &["input", "w"],
                &["output"],
                vec![attr_i("transA", 1), attr_i("transB", 1)],
            )],
            vec![floats("w", &[1, 2], &[1.0, 2.0])],
            batch(2),
            out(1),
        );
        assert_has(&load_err(&m), &["node '/fc/Gemm' (index 0)", "transA"]);
    }

    fn matmul_add_model(bias_first: bool) -> ModelProto {
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

    #[test]
    fn matmul_then_add_in_either_order() {
        reference_output(&load_model(&matmul_add_model(false)).expect("loads"));
        reference_output(&load_model(&matmul_add_model(true)).expect("loads"));
    }

    #[test]
    fn matmul_without_add_and_affine_after_affine() {
        // Two affine nodes without a Relu between them stay two layers without ReLU.
        let m = model(
            vec![
                node("MatMul", "m", &["input", "w1"], &["a"], vec![]),
                node(
                    "Gemm",
                    "g",
                    &["a", "w2", "b2"],
                    &["output"],
                    vec![attr_i("transB", 1)],
                ),
            ],
            vec![
                floats("w1", &[2, 3], &transposed(&W1, 3, 2)),
                floats("w2", &[1, 3], &W2),
                floats("b2", &[1], &B2),
            ],
            batch(2),
            out(1),
        );
        let net = load_model(&m).expect("loads");
        assert_eq!(net.widths(), vec![2, 3, 1]);
        assert!(net.layers().iter().all(|l| !l.relu));
        assert!(net.layers()[0].affine.bias(0) == &0.0);
        // z1 = [-3, -2, 6] (no bias, no ReLU), y = -3 + 4 + 1.5 + 2 = 4.5.
        assert_eq!(output(&net, &[1.0, -2.0]), vec![4.5]);
    }

    #[test]
    fn shape_nodes_that_keep_the_vector_are_no_ops() {
        let shape_node = node(
            "Constant",
            "/Constant",
            &[],
            &["shape"],
            vec![attr_t("value", int64s("", &[-1, 3]))],
        );
        let m = model(
            vec![
                node(
                    "Flatten",
                    "/flatten/Flatten",
                    &["input"],
                    &["f"],
                    vec![attr_i("axis", 1)],
                ),
                node("Identity", "/id", &["f"], &["i"], vec![]),
                node(
                    "Gemm",
                    "g1",
                    &["i", "w1", "b1"],
                    &["h"],
                    vec![attr_i("transB", 1)],
                ),
                node("Relu", "r1", &["h"], &["r"], vec![]),
                node("Relu", "r2", &["r"], &["rr"], vec![]),
                node(
                    "Dropout",
                    "/drop/Dropout",
                    &["rr", "ratio"],
                    &["d", "mask"],
                    vec![],
                ),
                shape_node,
                node("Reshape", "/Reshape", &["d", "shape"], &["s"], vec![]),
                node("Reshape", "/Reshape_1", &["s", "shape0"], &["s2"], vec![]),
                node(
                    "Flatten",
                    "/flatten_1",
                    &["s2"],
                    &["f2"],
                    vec![attr_i("axis", -1)],
                ),
                node(
                    "Gemm",
                    "g2",
                    &["f2", "w2", "b2"],
                    &["output"],
                    vec![attr_i("transB", 1)],
                ),
            ],
            vec![
                floats("w1", &[3, 2], &W1),
                floats("b1", &[3], &B1),
                floats("w2", &[1, 3], &W2),
                floats("b2", &[1], &B2),
                floats("ratio", &[], &[0.5]),
                int64s("shape0", &[0, -1]),
            ],
            batch(2),
            out(1),
        );
        let net = load_model(&m).expect("loads");
        assert_eq!(
            net.layers().len(),
            2,
            "consecutive Relus collapse and no-ops add no layer"
        );
        reference_output(&net);
    }

    #[test]
    fn image_input_flattened_after_the_batch() {
        let m = model(
            vec![
                node("Flatten", "f", &["input"], &["flat"], vec![]),
                node(
                    "Gemm",
                    "g",
                    &["flat", "w", "b"],
                    &["output"],
                    vec![attr_i("transB", 1)],
                ),
            ],
            vec![
                floats("w", &[1, 4], &[1.0, 2.0, 3.0, 4.0]),
                floats("b", &[1], &[0.0]),
            ],
            value("input", &[None, Some(1), Some(2), Some(2)]),
            out(1),
        );
        let net = load_model(&m).expect("loads");
        assert_eq!(output(&net, &[1.0, 1.0, 1.0, -1.0]), vec![2.0]);

        let mut wrong = m.clone();
        wrong.graph.as_mut().expect("graph").node[0].attribute = vec![attr_i("axis", 2)];
        assert_has(&load_err(&wrong), &["node 'f' (index 0)", "axis 2"]);
    }

    #[test]
    fn constants_from_value_floats_and_identity_aliases() {
        let mut wf = AttributeProto::new();
        wf.name = "value_floats".into();
        wf.type_ = AttributeType::FLOATS.into();
        wf.floats = vec![0.5, -1.0];
        let m = model(
            vec![
                node("Constant", "c", &[], &["bias"], vec![wf]),
                node("Identity", "alias", &["w"], &["w_shared"], vec![]),
                node(
                    "Gemm",
                    "g",
                    &["input", "w_shared", "bias"],
                    &["output"],
                    vec![attr_i("transB", 1)],
                ),
            ],
            vec![floats("w", &[2, 1], &[2.0, 3.0])],
            value("input", &[None, Some(1)]),
            out(2),
        );
        let net = load_model(&m).expect("loads");
        assert_eq!(output(&net, &[2.0]), vec![4.5, 5.0]);
    }

    #[test]
    fn initializers_listed_as_inputs_are_not_data_inputs() {
        let mut m = model(
            vec![node(
                "Gemm",
                "g",
                &["input", "w", "b"],
                &["output"],
                vec![attr_i("transB", 1)],
            )],
            vec![floats("w", &[1, 2], &[1.0, 1.0]), floats("b", &[1], &[1.0])],
            batch(2),
            out(1),
        );
        let g = m.graph.as_mut().expect("graph");
        g.input.push(value("w", &[Some(1), Some(2)]));
        g.input.push(value("b", &[Some(1)]));
        assert_eq!(
            output(&load_model(&m).expect("loads"), &[1.0, 2.0]),
            vec![4.0]
        );
    }

    #[test]
    fn unsupported_operator_names_node_and_operator() {
        let m = model(
            vec![
                node(
                    "Gemm",
                    "g",
                    &["input", "w"],
                    &["h"],
                    vec![attr_i("transB", 1)],
                ),
                node("Sigmoid", "/act/Sigmoid", &["h"], &["output"], vec![]),
            ],
            vec![floats("w", &[1, 2], &[1.0, 2.0])],
            batch(2),
            out(1),
        );
        assert_has(
            &load_err(&m),
            &[
                "model.onnx: node '/act/Sigmoid' (index 1): unsupported operator 'Sigmoid'",
                "Gemm, MatMul",
            ],
        );
        let mut other_domain = m.clone();
        other_domain.graph.as_mut().expect("graph").node[1].domain = "com.microsoft".into();
        assert_has(
            &load_err(&other_domain),
            &["node '/act/Sigmoid' (index 1)", "'com.microsoft::Sigmoid'"],
        );
    }

    #[test]
    fn branches_are_errors_naming_the_node() {
        // The second Gemm reads the first Gemm's output, skipping the Relu: a branch.
        let m = model(
            vec![
                node(
                    "Gemm",
                    "g1",
                    &["input", "w1", "b1"],
                    &["h"],
                    vec![attr_i("transB", 1)],
                ),
                node("Relu", "r", &["h"], &["r"], vec![]),
                node(
                    "Gemm",
                    "g2",
                    &["h", "w2", "b2"],
                    &["output"],
                    vec![attr_i("transB", 1)],
                ),
            ],
            vec![
                floats("w1", &[3, 2], &W1),
                floats("b1", &[3], &B1),
                floats("w2", &[1, 3], &W2),
                floats("b2", &[1], &B2),
            ],
            batch(2),
            out(1),
        );
        assert_has(
            &load_err(&m),
            &["node 'r' (index 1)", "'h' feeds 2 nodes", "branches"],
        );

        // A residual connection: Add of two computed tensors, read tensor by tensor.
        let m = model(
            vec![
                node(
                    "Gemm",
                    "g1",
                    &["input", "w", "b"],
                    &["h"],
                    vec![attr_i("transB", 1)],
                ),
                node("Add", "res", &["h", "input"], &["output"], vec![]),
            ],
            vec![
                floats("w", &[2, 2], &[1.0, 0.0, 0.0, 1.0]),
                floats("b", &[2], &[0.0, 0.0]),
            ],
            batch(2),
            out(2),
        );
        let net = load_model(&m).expect("loads");
        assert_eq!(output(&net, &[0.5, -3.0]), vec![1.0, -6.0]);
    }

    #[test]
    fn chain_shape_errors_name_the_node() {
        let w = || {
            vec![
                floats("w", &[1, 2], &[1.0, 2.0]),
                floats("w2", &[1, 1], &[1.0]),
            ]
        };
        let relu_first = model(
            vec![
                node("Relu", "/relu", &["input"], &["r"], vec![]),
                node(
                    "Gemm",
                    "g",
                    &["r", "w"],
                    &["output"],
                    vec![attr_i("transB", 1)],
                ),
            ],
            w(),
            batch(2),
            out(1),
        );
        assert_has(
            &load_err(&relu_first),
            &["node '/relu' (index 0)", "Relu on the raw input"],
        );

        let init_as_data = model(
            vec![node("MatMul", "mm", &["w", "input"], &["output"], vec![])],
            w(),
            batch(2),
            out(1),
        );
        assert_has(
            &load_err(&init_as_data),
            &[
                "node 'mm' (index 0)",
                "initializer cannot be the data input",
            ],
        );

        let unordered = model(
            vec![
                node(
                    "Gemm",
                    "g2",
                    &["h", "w2"],
                    &["output"],
                    vec![attr_i("transB", 1)],
                ),
                node(
                    "Gemm",
                    "g1",
                    &["input", "w"],
                    &["h"],
                    vec![attr_i("transB", 1)],
                ),
            ],
            w(),
            batch(2),
            out(1),
        );
        assert_has(
            &load_err(&unordered),
            &["node 'g2' (index 0)", "topological order"],
        );

        let mut two_inputs = relu_first.clone();
        two_inputs
            .graph
            .as_mut()
            .expect("graph")
            .input
            .push(value("second", &[None, Some(2)]));
        // A second input is a question, which the caller must give.
        assert_has(
            &load_err(&two_inputs),
            &["second input 'second'", "2 values", "--question"],
        );
        let mut three_inputs = two_inputs.clone();
        three_inputs
            .graph
            .as_mut()
            .expect("graph")
            .input
            .push(value("third", &[None, Some(1)]));
        assert_has(&load_err(&three_inputs), &["3 data inputs", "'third'"]);

        let wrong_width = model(
            vec![node(
                "Gemm",
                "g",
                &["input", "w"],
                &["output"],
                vec![attr_i("transB", 1)],
            )],
            w(),
            batch(3),
            out(1),
        );
        assert_has(
            &load_err(&wrong_width),
            &[
                "node 'g' (index 0)",
                "declares 3 values per sample",
                "expects 2",
            ],
        );

        let batch_changing = model(
            vec![
                node("Reshape", "rs", &["input", "shape"], &["s"], vec![]),
                node(
                    "Gemm",
                    "g",
                    &["s", "w"],
                    &["output"],
                    vec![attr_i("transB", 1)],
                ),
            ],
            vec![floats("w", &[1, 2], &[1.0, 2.0]), int64s("shape", &[1, -1])],
            batch(2),
            out(1),
        );
        assert_has(
            &load_err(&batch_changing),
            &["node 'rs' (index 0)", "batch dimension"],
        );
    }

    #[test]
    fn tensor_problems_name_the_tensor() {
        let with = |t: TensorProto| {
            model(
                vec![node(
                    "Gemm",
                    "g",
                    &["input", "w"],
                    &["output"],
                    vec![attr_i("transB", 1)],
                )],
                vec![t],
                batch(2),
                out(1),
            )
        };
        let mut half = floats("w", &[1, 2], &[]);
        half.data_type = DataType::FLOAT16 as i32;
        half.raw_data = vec![0, 60, 0, 60];
        assert_has(
            &load_err(&with(half)),
            &["node 'g' (index 0)", "tensor 'w'", "FLOAT16 (10)"],
        );

        let mut ints = int64s("w", &[1, 2]);
        ints.dims = vec![1, 2];
        assert_has(&load_err(&with(ints)), &["tensor 'w'", "INT64 (7)"]);

        let short = floats("w", &[1, 3], &[1.0, 2.0]);
        assert_has(
            &load_err(&with(short)),
            &["tensor 'w'", "8 bytes", "needs 12"],
        );

        let absurd = floats("w", &[1 << 40, 1 << 40], &[1.0]);
        assert_has(&load_err(&with(absurd)), &["tensor 'w'", "more than"]);

        let mut external = floats("w", &[1, 2], &[]);
        external.data_location = DataLocation::EXTERNAL.into();
        assert_has(&load_err(&with(external)), &["tensor 'w'", "external"]);

        let nan = floats("w", &[1, 2], &[1.0, f32::NAN]);
        assert_has(
            &load_err(&with(nan)),
            &["model.onnx", "layer 1: weight [0, 1] is NaN"],
        );
    }

    #[test]
    fn dropout_in_training_mode_is_refused() {
        let mut flag = TensorProto::new();
        flag.name = "train".into();
        flag.data_type = DataType::BOOL as i32;
        flag.raw_data = vec![1];
        let m = model(
            vec![
                node(
                    "Gemm",
                    "g",
                    &["input", "w"],
                    &["h"],
                    vec![attr_i("transB", 1)],
                ),
                node("Dropout", "d", &["h", "", "train"], &["output"], vec![]),
            ],
            vec![floats("w", &[1, 2], &[1.0, 2.0]), flag],
            batch(2),
            out(1),
        );
        assert_has(&load_err(&m), &["node 'd' (index 1)", "training_mode"]);
    }

    fn valid_bytes() -> Vec<u8> {
        matmul_add_model(false).write_to_bytes().expect("serialise")
    }

    fn load_via_file(bytes: &[u8]) -> Result<Network> {
        let (_dir, path) = write_bytes(bytes);
        load(&path)
    }

    #[test]
    fn damaged_files_get_one_clear_error() {
        let bytes = valid_bytes();
        // Every cut after the first field (ir_version) must read as a truncation.
        for end in 2..bytes.len() {
            let cut = load_via_file(&bytes[..end]).expect_err("truncated");
            assert_has(&cut.to_string(), &["model.onnx", "truncated"]);
        }
        let half = load_via_file(&bytes[..bytes.len() / 2])
            .expect_err("truncated")
            .to_string();
        assert_has(&half, &["truncated ONNX model (field 7 declares"]);

        let garbage =
            load_via_file(b"\xff\xfe this is not protobuf at all \x00\x01").expect_err("garbage");
        assert_has(&garbage.to_string(), &["model.onnx", "not an ONNX model"]);

        let text = load_via_file(b"{\"layers\": []}").expect_err("json");
        assert_has(&text.to_string(), &["not an ONNX model"]);

        let empty = load_via_file(b"").expect_err("empty");
        assert_has(&empty.to_string(), &["model.onnx", "empty file"]);

        let missing = load(Path::new("/nonexistent/dtdcert/model.onnx")).expect_err("missing");
        assert_has(
            &missing.to_string(),
            &["/nonexistent/dtdcert/model.onnx", "cannot read"],
        );
    }

    /// The in-memory entry point gives what `load` gives, for every checked-in fixture and
    /// every prefix of a valid model.
    #[test]
    fn bytes_load_like_files() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/onnx");
        let mut fixtures: Vec<PathBuf> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
            .collect();
        fixtures.sort();
        assert!(fixtures.len() > 5);
        let same = |path: &Path, bytes: &[u8]| {
            assert_eq!(
                load(path).map_err(|e| e.to_string()),
                load_bytes(bytes, path).map_err(|e| e.to_string()),
                "{}",
                path.display()
            );
        };
        for path in &fixtures {
            same(path, &std::fs::read(path).unwrap());
        }
        let bytes = valid_bytes();
        let (_dir, path) = write_bytes(&bytes);
        for end in 0..bytes.len() {
            std::fs::write(&path, &bytes[..end]).unwrap();
            same(&path, &bytes[..end]);
        }
    }

    #[test]
    fn no_prefix_or_byte_damage_panics() {
        let bytes = valid_bytes();
        for end in 0..bytes.len() {
            let _ = load_via_file(&bytes[..end]);
        }
        // A fixed-seed LCG picks bytes to overwrite; every outcome must be Ok or Err.
        let mut state: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..2000 {
            let mut damaged = bytes.clone();
            for _ in 0..3 {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let at = (state >> 33) as usize % damaged.len();
                damaged[at] = (state >> 17) as u8;
            }
            let _ = load_via_file(&damaged);
        }
    }

    fn attr_is(name: &str, v: &[i64]) -> AttributeProto {
        let mut a = AttributeProto::new();
        a.name = name.into();
        a.type_ = AttributeType::INTS.into();
        a.ints = v.to_vec();
        a
    }

    fn attr_s(name: &str, v: &str) -> AttributeProto {
        let mut a = AttributeProto::new();
        a.name = name.into();
        a.type_ = AttributeType::STRING.into();
        a.s = v.as_bytes().to_vec();
        a
    }

    /// Conv(2 -> 3, 3x2 kernel, stride (2, 1), pads (1, 0, 0, 1)) on a 2x4x3 image, then
    /// AveragePool(2x2, stride 1, count_include_pad 0, pads (0, 0, 1, 1)), Flatten, Gemm.
    fn conv_model(conv_attrs: Vec<AttributeProto>) -> ModelProto {
        let k: Vec<f32> = (0..36)
            .map(|i| ((i * 7) % 11) as f32 / 4.0 - 1.25)
            .collect();
        let b: Vec<f32> = vec![0.5, -0.25, 0.125];
        let mut attrs = vec![
            attr_is("kernel_shape", &[3, 2]),
            attr_is("strides", &[2, 1]),
            attr_is("pads", &[1, 0, 0, 1]),
        ];
        attrs.extend(conv_attrs);
        // Conv output: h = (4 + 1 - 3) / 2 + 1 = 2, w = (3 + 1 - 2) / 1 + 1 = 3: 3x2x3 = 18.
        // Pool output: (2 + 1 - 2) + 1 = 2, (3 + 1 - 2) + 1 = 3: 3x2x3 = 18.
        let fc: Vec<f32> = (0..36)
            .map(|i| ((i * 5) % 7) as f32 / 8.0 - 0.375)
            .collect();
        model(
            vec![
                node("Conv", "conv", &["input", "k", "kb"], &["c"], attrs),
                node("Relu", "relu", &["c"], &["r"], vec![]),
                node(
                    "AveragePool",
                    "pool",
                    &["r"],
                    &["p"],
                    vec![
                        attr_is("kernel_shape", &[2, 2]),
                        attr_is("pads", &[0, 0, 1, 1]),
                    ],
                ),
                node("Flatten", "flat", &["p"], &["f"], vec![attr_i("axis", 1)]),
                node(
                    "Gemm",
                    "fc",
                    &["f", "w", "wb"],
                    &["output"],
                    vec![attr_i("transB", 1)],
                ),
            ],
            vec![
                floats("k", &[3, 2, 3, 2], &k),
                floats("kb", &[3], &b),
                floats("w", &[2, 18], &fc),
                floats("wb", &[2], &[0.0, 1.0]),
            ],
            value("input", &[None, Some(2), Some(4), Some(3)]),
            out(2),
        )
    }

    /// The same network evaluated directly, loop by loop.
    fn conv_by_hand(x: &[f64]) -> Vec<f64> {
        let k: Vec<f64> = (0..36)
            .map(|i| ((i * 7) % 11) as f64 / 4.0 - 1.25)
            .collect();
        let kb = [0.5, -0.25, 0.125];
        let px = |c: usize, r: i64, col: i64| -> Option<f64> {
            (0..4)
                .contains(&r)
                .then_some(())
                .filter(|_| (0..3).contains(&col))
                .map(|_| x[(c * 4 + r as usize) * 3 + col as usize])
        };
        let mut conv = [0.0; 18];
        for o in 0..3 {
            for i in 0..2 {
                for j in 0..3 {
                    let mut acc = kb[o];
                    for c in 0..2 {
                        for u in 0..3 {
                            for v in 0..2 {
                                let r = (i * 2 + u) as i64 - 1;
                                let col = (j + v) as i64;
                                if let Some(val) = px(c, r, col) {
                                    acc += k[((o * 2 + c) * 3 + u) * 2 + v] * val;
                                }
                            }
                        }
                    }
                    conv[(o * 2 + i) * 3 + j] = acc.max(0.0);
                }
            }
        }
        let mut pool = [0.0; 18];
        for c in 0..3 {
            for i in 0..2 {
                for j in 0..3 {
                    let (mut sum, mut n) = (0.0, 0.0);
                    for u in 0..2 {
                        for v in 0..2 {
                            let (r, col) = (i + u, j + v);
                            if r < 2 && col < 3 {
                                sum += conv[(c * 2 + r) * 3 + col];
                                n += 1.0;
                            }
                        }
                    }
                    pool[(c * 2 + i) * 3 + j] = sum / n;
                }
            }
        }
        let fc: Vec<f64> = (0..36)
            .map(|i| ((i * 5) % 7) as f64 / 8.0 - 0.375)
            .collect();
        (0..2)
            .map(|o| (0..18).map(|i| fc[o * 18 + i] * pool[i]).sum::<f64>() + [0.0, 1.0][o])
            .collect()
    }

    #[test]
    fn conv_and_average_pool_are_sparse_layers_computing_the_same_function() {
        let net = load_model(&conv_model(vec![])).expect("loads");
        assert_eq!(net.widths(), vec![24, 18, 18, 2]);
        let relus: Vec<bool> = net.layers().iter().map(|l| l.relu).collect();
        assert_eq!(relus, vec![true, false, false]);
        assert!(net.layers()[..2]
            .iter()
            .all(|l| matches!(l.affine, Affine::Sparse(_))));
        for seed in 0..20u64 {
            let x: Vec<f64> = (0..24)
                .map(|i| (((i as u64 * 31 + seed * 17) % 23) as f64 - 11.0) / 8.0)
                .collect();
            let got = output(&net, &x);
            let want = conv_by_hand(&x);
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    (g - w).abs() <= 1e-12 * (1.0 + w.abs()),
                    "{got:?} vs {want:?}"
                );
            }
        }
    }

    #[test]
    fn conv_attributes_the_loader_does_not_implement_are_named() {
        for (attr, words) in [
            (attr_i("group", 2), &["conv", "group = 2"][..]),
            (
                attr_is("dilations", &[2, 2]),
                &["conv", "dilations [2, 2]"][..],
            ),
            (
                attr_s("auto_pad", "SAME_UPPER"),
                &["conv", "auto_pad = SAME_UPPER"][..],
            ),
        ] {
            assert_has(&load_err(&conv_model(vec![attr])), words);
        }
    }

    /// MaxPool alone on a 2x3x3 image (2x2 windows, stride 2, padded at the bottom and
    /// right): each output is the largest input its window covers; attributes it does not
    /// implement are named.
    #[test]
    fn max_pool_takes_the_largest_covered_input_and_names_what_it_does_not_read() {
        let pool = |attrs: Vec<AttributeProto>, outputs: &[&str]| {
            let mut all = vec![
                attr_is("kernel_shape", &[2, 2]),
                attr_is("strides", &[2, 2]),
                attr_is("pads", &[0, 0, 1, 1]),
            ];
            all.extend(attrs);
            model(
                vec![node("MaxPool", "mp", &["input"], outputs, all)],
                vec![],
                value("input", &[None, Some(2), Some(3), Some(3)]),
                value("output", &[None, None, None, None]),
            )
        };
        let net = load_model(&pool(vec![], &["output"])).expect("loads");
        assert_eq!(net.widths(), vec![18, 8]);
        assert_eq!(net.layers()[0].max_pool, Some(4));
        for seed in 0..20u64 {
            let x: Vec<f64> = (0..18)
                .map(|i| (((i as u64 * 31 + seed * 17) % 23) as f64 - 11.0) / 8.0)
                .collect();
            let mut want = Vec::new();
            for c in 0..2 {
                for (r0, c0) in [(0, 0), (0, 2), (2, 0), (2, 2)] {
                    let mut best = f64::NEG_INFINITY;
                    for r in r0..(r0 + 2).min(3) {
                        for col in c0..(c0 + 2).min(3) {
                            best = best.max(x[(c * 3 + r) * 3 + col]);
                        }
                    }
                    want.push(best);
                }
            }
            assert_eq!(output(&net, &x), want);
        }
        for (attrs, outputs, words) in [
            (
                vec![attr_i("ceil_mode", 1)],
                &["output"][..],
                &["mp", "ceil_mode = 1"][..],
            ),
            (
                vec![attr_is("dilations", &[2, 2])],
                &["output"][..],
                &["mp", "dilations [2, 2]"][..],
            ),
            (
                vec![attr_s("auto_pad", "SAME_UPPER")],
                &["output"][..],
                &["mp", "auto_pad = SAME_UPPER"][..],
            ),
        ] {
            assert_has(&load_err(&pool(attrs, outputs)), words);
        }
        // An Indices output nothing reads changes nothing (storage_order only orders it).
        let with_indices = pool(vec![attr_i("storage_order", 1)], &["output", "indices"]);
        assert_eq!(load_model(&with_indices).expect("loads"), net);
    }

    #[test]
    fn absurd_image_attributes_are_refused_without_overflow_or_allocation() {
        let conv = |attrs: Vec<AttributeProto>, kernel: &[i64], input: &[Option<i64>]| {
            let n: i64 = kernel.iter().product();
            model(
                vec![node("Conv", "c", &["input", "k"], &["output"], attrs)],
                vec![floats("k", kernel, &vec![0.5; n.max(0) as usize])],
                value("input", input),
                value("output", &[None, None, None, None]),
            )
        };
        let image = [None, Some(1), Some(4), Some(4)];
        for (attrs, kernel, input, words) in [
            (
                vec![attr_is("pads", &[i64::MAX, 0, i64::MAX, 0])],
                &[1, 1, 2, 2][..],
                &image[..],
                &["c", "pads", "2^24"][..],
            ),
            (
                vec![attr_is("pads", &[-1, 0, 0, 0])],
                &[1, 1, 2, 2][..],
                &image[..],
                &["c", "pads"][..],
            ),
            (
                vec![attr_is("strides", &[1 << 40, 1])],
                &[1, 1, 2, 2][..],
                &image[..],
                &["c", "strides", "2^24"][..],
            ),
            (
                vec![],
                &[1, 1, 0, 2][..],
                &image[..],
                &["c", "between 1 and 2^24"][..],
            ),
            (
                vec![],
                &[1, 1, 2, 2][..],
                &[None, Some(1), Some(1 << 32), Some(1 << 32)][..],
                &[
                    "c",
                    "static [channels, height, width] sizes of at most 2^24",
                ][..],
            ),
        ] {
            assert_has(&load_err(&conv(attrs, kernel, input)), words);
        }
        // A huge pooling kernel over a small image: refused at once, not looped over.
        let m = model(
            vec![node(
                "AveragePool",
                "p",
                &["input"],
                &["output"],
                vec![
                    attr_is("kernel_shape", &[1 << 24, 1]),
                    attr_is("pads", &[1 << 23, 0, 1 << 23, 0]),
                ],
            )],
            vec![],
            value("input", &[None, Some(1), Some(4), Some(4)]),
            value("output", &[None, None, None, None]),
        );
        let started = std::time::Instant::now();
        let _ = load_model(&m);
        assert!(started.elapsed().as_secs_f64() < 5.0);
    }

    #[test]
    fn image_sized_conv_layers_load_sparse_and_oversized_ones_are_refused() {
        // 3x128x128 input, Conv 3 -> 16, 3x3, pad 1: 262,144 x 49,152 as a dense matrix, but
        // at most 27 weights per row.
        let kernel: Vec<f32> = (0..432).map(|i| (i % 7) as f32 / 4.0 - 0.75).collect();
        let m = model(
            vec![node(
                "Conv",
                "big",
                &["input", "k"],
                &["output"],
                vec![attr_is("pads", &[1, 1, 1, 1])],
            )],
            vec![floats("k", &[16, 3, 3, 3], &kernel)],
            value("input", &[None, Some(3), Some(128), Some(128)]),
            value("output", &[None, Some(16), Some(128), Some(128)]),
        );
        let net = load_model(&m).expect("loads in sparse form");
        let affine = &net.layers()[0].affine;
        assert!(matches!(affine, Affine::Sparse(_)));
        assert_eq!((affine.in_dim(), affine.out_dim()), (49_152, 262_144));
        // Corners see 2x2 positions of 3 channels, inner positions 3x3.
        assert_eq!(
            affine.stored_weights(),
            16 * (126 * 126 * 27 + 4 * 126 * 18 + 4 * 12)
        );
        // Output (channel 5, row 7, column 9) against the convolution written out.
        let x: Vec<f64> = (0..49_152)
            .map(|i| ((i * 37 % 101) as f64 - 50.0) / 64.0)
            .collect();
        let got = output(&net, &x)[(5 * 128 + 7) * 128 + 9];
        let mut want = 0.0;
        for c in 0..3 {
            for u in 0..3 {
                for v in 0..3 {
                    let k = f64::from(kernel[((5 * 3 + c) * 3 + u) * 3 + v]);
                    want += k * x[(c * 128 + 6 + u) * 128 + 8 + v];
                }
            }
        }
        assert!((got - want).abs() <= 1e-12, "{got} vs {want}");

        // 64x256x256, Conv 64 -> 64, 3x3: 4,194,304 rows of 576 weights, over 2^26.
        let m = model(
            vec![node(
                "Conv",
                "huge",
                &["input", "k"],
                &["output"],
                vec![attr_is("pads", &[1, 1, 1, 1])],
            )],
            vec![floats("k", &[64, 64, 3, 3], &vec![0.5; 36_864])],
            value("input", &[None, Some(64), Some(256), Some(256)]),
            value("output", &[None, Some(64), Some(256), Some(256)]),
        );
        assert_has(&load_err(&m), &["huge", "Conv", "2^26", "not supported"]);
    }

    #[test]
    fn batch_norm_folds_into_the_layer_before_it_or_stands_alone() {
        let scale = [2.0f32, 0.5, 1.0];
        let shift = [0.25f32, -1.0, 0.0];
        let mean = [1.0f32, -2.0, 0.5];
        let var = [3.0f32, 0.75, 1.0];
        let bn_inits = || {
            vec![
                floats("s", &[3], &scale),
                floats("t", &[3], &shift),
                floats("m", &[3], &mean),
                floats("v", &[3], &var),
            ]
        };
        let bn = |input: &str, out: &str| {
            node(
                "BatchNormalization",
                "bn",
                &[input, "s", "t", "m", "v"],
                &[out],
                vec![attr_f("epsilon", 0.25)],
            )
        };
        let by_hand = |z: &[f64]| -> Vec<f64> {
            (0..3)
                .map(|c| {
                    let s = f64::from(scale[c]) / (f64::from(var[c]) + 0.25).sqrt();
                    s * (z[c] - f64::from(mean[c])) + f64::from(shift[c])
                })
                .collect()
        };
        // Gemm 2 -> 3, BN: folded into the Gemm.
        let mut inits = vec![floats("w1", &[3, 2], &W1), floats("b1", &[3], &B1)];
        inits.extend(bn_inits());
        let gemm_bn = model(
            vec![
                node(
                    "Gemm",
                    "fc",
                    &["input", "w1", "b1"],
                    &["h"],
                    vec![attr_i("transB", 1)],
                ),
                bn("h", "output"),
            ],
            inits.clone(),
            batch(2),
            out(3),
        );
        let folded = load_model(&gemm_bn).expect("loads");
        assert_eq!(folded.widths(), vec![2, 3]);
        // Gemm, Relu, BN: a diagonal layer of its own after the ReLU.
        let alone = load_model(&model(
            vec![
                node(
                    "Gemm",
                    "fc",
                    &["input", "w1", "b1"],
                    &["h"],
                    vec![attr_i("transB", 1)],
                ),
                node("Relu", "relu", &["h"], &["r"], vec![]),
                bn("r", "output"),
            ],
            inits,
            batch(2),
            out(3),
        ))
        .expect("loads");
        assert_eq!(alone.widths(), vec![2, 3, 3]);
        for x in [[1.0, -2.0], [0.5, 0.25], [-3.0, 1.0]] {
            let z: Vec<f64> = (0..3)
                .map(|j| {
                    f64::from(W1[2 * j]) * x[0] + f64::from(W1[2 * j + 1]) * x[1] + f64::from(B1[j])
                })
                .collect();
            let relu: Vec<f64> = z.iter().map(|v| v.max(0.0)).collect();
            for (net, input) in [(&folded, &z), (&alone, &relu)] {
                let got = output(net, &x);
                for (g, w) in got.iter().zip(by_hand(input)) {
                    assert!((g - w).abs() <= 1e-14 * (1.0 + w.abs()), "{got:?}");
                }
            }
        }
        // Kept on request: the Gemm, then a diagonal layer; folded, each weight and bias is the
        // kept network's exact composition rounded (weights once, biases twice).
        let bytes = gemm_bn.write_to_bytes().unwrap();
        let kept = load_bytes_with(
            &bytes,
            Path::new("bn.onnx"),
            OnnxOptions {
                keep_batch_norm: true,
                ..OnnxOptions::default()
            },
        )
        .expect("loads");
        assert_eq!(kept.widths(), vec![2, 3, 3]);
        let exact = kept.to_exact();
        let (gemm, diag) = (&exact.layers()[0].affine, &exact.layers()[1].affine);
        let half_ulp = |v: f64| {
            Rational::from_f64((v.next_up() - v).abs().max((v - v.next_down()).abs()) / 2.0)
        };
        for j in 0..3 {
            let scale = diag.row(j).dense()[j].clone();
            for (i, w) in gemm.row(j).dense().iter().enumerate() {
                let composed = scale.clone() * w;
                let f = folded.layers()[0].affine.row(j).dense()[i];
                let err = (Rational::from_f64(f) - composed).abs();
                assert!(
                    err <= half_ulp(f),
                    "weight ({j}, {i}) rounded more than once"
                );
            }
            let composed = scale * gemm.bias(j) + diag.bias(j);
            let f = *folded.layers()[0].affine.bias(j);
            let err = (Rational::from_f64(f) - composed).abs();
            // fl(fl(b·s) + t): one rounding of the product, one of the sum.
            let product =
                kept.layers()[0].affine.bias(j) * kept.layers()[1].affine.row(j).dense()[j];
            assert!(err <= half_ulp(product) + half_ulp(f), "bias {j}");
        }
        // Training mode is refused.
        let m = model(
            vec![node(
                "BatchNormalization",
                "bn",
                &["input", "s", "t", "m", "v"],
                &["output"],
                vec![attr_i("training_mode", 1)],
            )],
            bn_inits(),
            batch(3),
            out(3),
        );
        assert_has(&load_err(&m), &["bn", "training_mode", "model.eval()"]);
    }

    // -----------------------------------------------------------------------------------------
    // Graphs read tensor by tensor (graph.rs).
    // -----------------------------------------------------------------------------------------

    /// Values of f32 with few bits, so that self-pair sums are exact.
    fn quarter(k: usize) -> f32 {
        ((k * 5 + 3) % 9) as f32 * 0.25 - 1.0
    }

    fn weights(name: &str, rows: usize, cols: usize, offset: usize) -> TensorProto {
        let w: Vec<f32> = (0..rows * cols).map(|k| quarter(k + offset)).collect();
        floats(name, &[rows as i64, cols as i64], &w)
    }

    fn linear(input: &str, w: &str, b: &str, output: &str) -> NodeProto {
        node(
            "Gemm",
            output,
            &[input, w, b],
            &[output],
            vec![attr_i("transB", 1)],
        )
    }

    /// A relation network as the dynamo exporter writes one: 2×2×2 image (4 objects of 2
    /// channels), a question of 1 value, g = 5 → 3 → 3, sum, f = 3 → 2.
    fn tiny_relation_network() -> ModelProto {
        let nodes = vec![
            node("Reshape", "view", &["x", "s1"], &["v"], vec![]),
            node(
                "Transpose",
                "permute",
                &["v"],
                &["objs"],
                vec![attr_is("perm", &[0, 2, 1])],
            ),
            node("Unsqueeze", "unsqueeze", &["objs", "a1"], &["u1"], vec![]),
            node("Expand", "expand_i", &["u1", "e"], &["xi"], vec![]),
            node("Unsqueeze", "unsqueeze_1", &["objs", "a2"], &["u2"], vec![]),
            node("Expand", "expand_j", &["u2", "e"], &["xj"], vec![]),
            node("Reshape", "view_q", &["q", "s2"], &["q1"], vec![]),
            node("Expand", "expand_q", &["q1", "e2"], &["qe"], vec![]),
            node(
                "Concat",
                "cat",
                &["xi", "xj", "qe"],
                &["pairs"],
                vec![attr_i("axis", 3)],
            ),
            node("Reshape", "view_pairs", &["pairs", "s3"], &["p2"], vec![]),
            linear("p2", "w1", "b1", "g1"),
            node("Relu", "relu1", &["g1"], &["r1"], vec![]),
            linear("r1", "w2", "b2", "g2"),
            node("Relu", "relu2", &["g2"], &["r2"], vec![]),
            node("Reshape", "view_g", &["r2", "s4"], &["r3"], vec![]),
            node(
                "ReduceSum",
                "sum",
                &["r3", "a1"],
                &["s"],
                vec![attr_i("keepdims", 0)],
            ),
            linear("s", "w3", "b3", "output"),
        ];
        let inits = vec![
            int64s("s1", &[1, 2, 4]),
            int64s("a1", &[1]),
            int64s("a2", &[2]),
            int64s("e", &[1, 4, 4, 2]),
            int64s("s2", &[1, 1, 1, -1]),
            int64s("e2", &[1, 4, 4, 1]),
            int64s("s3", &[16, -1]),
            int64s("s4", &[1, 16, -1]),
            weights("w1", 3, 5, 0),
            weights("b1", 1, 3, 7),
            weights("w2", 3, 3, 2),
            weights("b2", 1, 3, 4),
            weights("w3", 2, 3, 5),
            weights("b3", 1, 2, 1),
        ];
        let mut m = model(
            nodes,
            inits,
            value("x", &[None, Some(2), Some(2), Some(2)]),
            out(2),
        );
        m.graph
            .mut_or_insert_default()
            .input
            .push(value("q", &[None, Some(1)]));
        m
    }

    fn load_with_question(m: &ModelProto, question: Option<Vec<f64>>) -> Result<Network> {
        let bytes = m.write_to_bytes().expect("serialise");
        let options = OnnxOptions {
            question,
            ..OnnxOptions::default()
        };
        load_bytes_with(&bytes, Path::new("rn.onnx"), options)
    }

    /// The tiny relation network written out: pair `i·4 + j` is `[object j, object i, q]`.
    fn tiny_by_hand(x: &[f64], q: f64) -> Vec<f64> {
        let w = |rows: usize, cols: usize, offset: usize| -> Vec<Vec<f64>> {
            (0..rows)
                .map(|r| {
                    (0..cols)
                        .map(|c| f64::from(quarter(r * cols + c + offset)))
                        .collect()
                })
                .collect()
        };
        let (w1, b1, w2, b2, w3, b3) = (
            w(3, 5, 0),
            w(1, 3, 7),
            w(3, 3, 2),
            w(1, 3, 4),
            w(2, 3, 5),
            w(1, 2, 1),
        );
        let object = |o: usize| [x[o], x[4 + o]];
        let mut sum = [0.0; 3];
        for i in 0..4 {
            for j in 0..4 {
                let (a, b) = (object(j), object(i));
                let pair = [a[0], a[1], b[0], b[1], q];
                let h1: Vec<f64> = (0..3)
                    .map(|k| (b1[0][k] + (0..5).map(|m| w1[k][m] * pair[m]).sum::<f64>()).max(0.0))
                    .collect();
                for k in 0..3 {
                    sum[k] += (b2[0][k] + (0..3).map(|m| w2[k][m] * h1[m]).sum::<f64>()).max(0.0);
                }
            }
        }
        (0..2)
            .map(|k| b3[0][k] + (0..3).map(|m| w3[k][m] * sum[m]).sum::<f64>())
            .collect()
    }

    #[test]
    fn graphs_that_move_elements_are_read_tensor_by_tensor() {
        let m = tiny_relation_network();
        for (s, q) in [0.5, -1.25, 2.0].into_iter().enumerate() {
            let net = load_with_question(&m, Some(vec![q])).expect("loads");
            // The pairs' first layer (sparse, constants in the bias), g's second layer (one
            // block for all 16 pairs), the sum (no ReLU), f.
            assert_eq!(net.widths(), vec![8, 48, 48, 3, 2]);
            let relu: Vec<bool> = net.layers().iter().map(|l| l.relu).collect();
            assert_eq!(relu, vec![true, true, false, false]);
            let layers = net.layers();
            assert!(matches!(layers[0].affine, Affine::Sparse(_)));
            assert!(matches!(&layers[1].affine, Affine::Shared(sh) if sh.copies() == 16));
            assert!(matches!(layers[2].affine, Affine::Sparse(_)));
            assert!(matches!(layers[3].affine, Affine::Dense(_)));
            // A self-pair lists each of its object's features once, with the summed weight.
            assert_eq!(layers[0].affine.row(0).entries().count(), 2);
            assert_eq!(layers[0].affine.row(3).entries().count(), 4);
            for t in 0..4 {
                let x: Vec<f64> = (0..8)
                    .map(|i| ((i + 3 * t + s) as f64 * 0.7).sin())
                    .collect();
                let (got, want) = (output(&net, &x), tiny_by_hand(&x, q));
                for (a, b) in got.iter().zip(&want) {
                    assert!(
                        (a - b).abs() <= 1e-12 * (1.0 + b.abs()),
                        "{got:?} vs {want:?}"
                    );
                }
            }
        }
    }

    /// g's second layer as MatMul + Add (the bias the same for every pair), and a sum of two
    /// computed tensors: the same functions.
    #[test]
    fn matmul_on_batched_rows_and_sums_of_tensors_compose() {
        let mut m = tiny_relation_network();
        let g = m.graph.mut_or_insert_default();
        g.node[12] = node("MatMul", "mm", &["r1", "w2t"], &["m2"], vec![]);
        g.node
            .insert(13, node("Add", "bias", &["m2", "b2"], &["g2"], vec![]));
        let w2: Vec<f32> = (0..9).map(|k| quarter(k + 2)).collect();
        g.initializer
            .push(floats("w2t", &[3, 3], &transposed(&w2, 3, 3)));
        let net = load_with_question(&m, Some(vec![0.5])).expect("loads");
        assert!(matches!(&net.layers()[1].affine, Affine::Shared(sh) if sh.copies() == 16));
        let x: Vec<f64> = (0..8).map(|i| (i as f64 * 0.9).cos()).collect();
        let (got, want) = (output(&net, &x), tiny_by_hand(&x, 0.5));
        for (a, b) in got.iter().zip(&want) {
            assert!(
                (a - b).abs() <= 1e-12 * (1.0 + b.abs()),
                "{got:?} vs {want:?}"
            );
        }

        // x + x through Unsqueeze/Squeeze: one input listed once with weight 2.
        let nodes = vec![
            node("Unsqueeze", "u", &["input", "a1"], &["u"], vec![]),
            node("Squeeze", "s", &["u", "a1"], &["v"], vec![]),
            node("Add", "twice", &["v", "input"], &["y"], vec![]),
            linear("y", "w", "b", "output"),
        ];
        let inits = vec![
            int64s("a1", &[1]),
            weights("w", 1, 2, 0),
            weights("b", 1, 1, 3),
        ];
        let net = load_with_question(&model(nodes, inits, batch(2), out(1)), None).unwrap();
        let x = [0.75, -1.5];
        let (w0, w1, b) = (
            f64::from(quarter(0)),
            f64::from(quarter(1)),
            f64::from(quarter(3)),
        );
        assert_eq!(output(&net, &x), vec![w0 * 1.5 + w1 * -3.0 + b]);
        assert_eq!(
            net.layers()[0].affine.row(0).entries().collect::<Vec<_>>(),
            vec![(0, &2.0)]
        );
    }

    #[test]
    fn graph_problems_name_the_node_and_what_is_missing() {
        let m = tiny_relation_network();
        let e = load_with_question(&m, None).unwrap_err().to_string();
        assert_has(
            &e,
            &["rn.onnx", "second input 'q'", "1 values", "--question"],
        );
        let e = load_with_question(&m, Some(vec![1.0, 2.0]))
            .unwrap_err()
            .to_string();
        assert_has(&e, &["'q' takes 1 values", "--question gives 2"]);

        // A tensor read again after a later ReLU: a connection that skips a layer.
        let nodes = vec![
            linear("input", "w", "b", "a"),
            node("Relu", "relu_a", &["a"], &["r"], vec![]),
            linear("r", "w", "b", "c"),
            node("Relu", "relu_c", &["c"], &["d"], vec![]),
            node(
                "Concat",
                "skip",
                &["d", "r"],
                &["e"],
                vec![attr_i("axis", 1)],
            ),
            linear("e", "w4", "b1", "output"),
        ];
        let inits = vec![
            weights("w", 2, 2, 0),
            weights("b", 1, 2, 3),
            weights("w4", 1, 4, 1),
            weights("b1", 1, 1, 2),
        ];
        // 'r' is carried past relu_c as two outputs without ReLU, and read from there.
        let skip = model(nodes, inits, batch(2), out(1));
        let net = load_with_question(&skip, None).expect("loads");
        let tails: Vec<usize> = net.layers().iter().map(|l| l.linear_tail).collect();
        assert_eq!(tails, vec![0, 2, 0]);
        let q = |k: usize| f64::from(quarter(k));
        let layer = |x: &[f64]| -> Vec<f64> {
            (0..2)
                .map(|o| q(2 * o) * x[0] + q(2 * o + 1) * x[1] + q(o + 3))
                .collect()
        };
        for x in [[0.5, -1.25], [2.0, 0.75], [-1.0, -0.5]] {
            let r: Vec<f64> = layer(&x).iter().map(|v| v.max(0.0)).collect();
            let d: Vec<f64> = layer(&r).iter().map(|v| v.max(0.0)).collect();
            let e = [d[0], d[1], r[0], r[1]];
            let want = (0..4).map(|i| q(i + 1) * e[i]).sum::<f64>() + q(2);
            assert_eq!(output(&net, &x), vec![want]);
        }
        // A Shape of a tensor after a later cut reads only its (static) sizes: nothing carried.
        let nodes = vec![
            linear("input", "w", "b", "a"),
            node("Relu", "relu_a", &["a"], &["r"], vec![]),
            node("Shape", "size", &["a"], &["s"], vec![]),
            node("Reshape", "view", &["r", "s"], &["v"], vec![]),
            node(
                "Concat",
                "same",
                &["v"],
                &["output"],
                vec![attr_i("axis", 1)],
            ),
        ];
        let inits = vec![weights("w", 2, 2, 0), weights("b", 1, 2, 3)];
        let sized = model(nodes, inits, batch(2), out(2));
        let net = load_with_question(&sized, None).expect("loads");
        assert!(net.layers().iter().all(|l| l.linear_tail == 0));
        assert_eq!(net.widths(), vec![2, 2]);
        // Values are not carried past a max-pool layer.
        let nodes = vec![
            node(
                "MaxPool",
                "pool",
                &["input"],
                &["p"],
                vec![attr_is("kernel_shape", &[1, 2])],
            ),
            node("Add", "join", &["p", "input"], &["output"], vec![]),
        ];
        let image = value("input", &[None, Some(1), Some(1), Some(2)]);
        let e = load_with_question(&model(nodes, vec![], image, out(1)), None)
            .unwrap_err()
            .to_string();
        assert_has(&e, &["node 'join'", "'input'", "not past a max-pool layer"]);

        // Two weights on one input whose sum rounds.
        let nodes = vec![
            node(
                "Concat",
                "twice",
                &["input", "input"],
                &["xx"],
                vec![attr_i("axis", 1)],
            ),
            node(
                "Gemm",
                "fc",
                &["xx", "w"],
                &["output"],
                vec![attr_i("transB", 1)],
            ),
        ];
        let inits = vec![doubles("w", &[1, 2], &[1.0, 1e-30])];
        let rounding = model(nodes, inits, batch(1), out(1));
        let e = load_with_question(&rounding, None).unwrap_err().to_string();
        assert_has(&e, &["node 'fc'", "do not sum exactly"]);

        // An operator outside the list, in a graph read tensor by tensor.
        let mut m = tiny_relation_network();
        let g = m.graph.mut_or_insert_default();
        g.node[11] = node("Sigmoid", "squash", &["g1"], &["r1"], vec![]);
        let e = load_with_question(&m, Some(vec![1.0]))
            .unwrap_err()
            .to_string();
        assert_has(&e, &["node 'squash'", "unsupported operator 'Sigmoid'"]);

        // The output read again by a later ReLU whose result is unused.
        let mut m = tiny_relation_network();
        let g = m.graph.mut_or_insert_default();
        g.node
            .push(node("Relu", "after", &["output"], &["unused"], vec![]));
        let e = load_with_question(&m, Some(vec![1.0]))
            .unwrap_err()
            .to_string();
        assert_has(&e, &["graph output 'output'", "a later node reads it"]);

        // An expansion that would make a batch.
        let mut m = tiny_relation_network();
        let g = m.graph.mut_or_insert_default();
        g.initializer[3] = int64s("e", &[2, 4, 4, 2]);
        let e = load_with_question(&m, Some(vec![1.0]))
            .unwrap_err()
            .to_string();
        assert_has(&e, &["node 'expand_i'", "batch of 2"]);
    }
}
