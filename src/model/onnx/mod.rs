//! ONNX loader: translates the networks that `torch.onnx.export` writes (operator set 7 and
//! later; torch uses 11 to 18) into the network IR: ReLU MLPs, convolutional networks with
//! pooling and batch norm, residual connections, and relation networks.
//!
//! One translator reads every graph, tensor by tensor (`translate.rs`): each tensor computed from
//! the input is tracked element by element in terms of the input of the layer under
//! construction (`state.rs`), each operator is a row of one table, one file per operator family
//! (`ops/`), and shape arithmetic on constants is folded (`fold.rs`). Attributes and tensors
//! are read in `proto.rs`; the tests are in `tests/`. An operator outside the table, an attribute the translation does not
//! implement, and a graph the IR cannot hold are errors naming the node. Weights are the exact
//! f32/f64 values stored in the file, and any scaling the graph asks for (Gemm's `alpha` and
//! `beta`) must itself be exact in f64, so the IR computes exactly the function the file
//! describes; the documented exceptions are the f64 roundings of average pooling's `1/count`,
//! of batch norm's per-channel scale and shift and their folding into the layer before, and of
//! Mul and Div by constants folded into an affine map (and Div's `1/c`).

use std::path::Path;

use onnx_protobuf::ModelProto;
use protobuf::{CodedInputStream, Message};

use crate::error::{Error, Result};
use crate::model::ir::Network;

/// The oldest default-domain operator set read. From 7 on, Gemm, Add and Dropout lost the
/// `broadcast`/`is_test` attributes whose meaning differs, and Reshape takes its shape as an
/// input; the operators read keep the same meaning in every later set.
const MIN_OPSET: i64 = 7;

mod fold;
mod ops;
mod proto;
mod state;
mod translate;

#[cfg(test)]
mod tests;

/// Choices in how a graph becomes the IR.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OnnxOptions {
    /// BatchNormalization as a (diagonal) layer of its own, never folded into the layer
    /// before it: no rounding, at the price of one more layer.
    pub keep_batch_norm: bool,
    /// An Add of two computed tensors (a residual addition) as a layer of its own: the two
    /// summands, each with its own bias, are first cut into a layer without activation
    /// (`--split-residual`).
    pub split_residual: bool,
    /// The values of the graph's second input (a relation network's question), which the
    /// network then treats as constants.
    pub question: Option<Vec<f64>>,
    /// Leaves out a Softmax that computes the graph output, so that the network ends with
    /// the logits it normalises (`--strip-softmax`).
    pub strip_softmax: bool,
    /// The most bytes the network may take (as [`crate::model::estimated_bytes`] counts
    /// them): a layer that would take the total past it is refused, naming its node, before
    /// it is built. `None`: no limit.
    pub max_memory: Option<u64>,
    /// The most weights a convolution's rows may list and be kept as sparse rows; a larger
    /// one is kept as its kernel. `None`: 2^23. A lower value loads a small network the way a
    /// large one loads (its convolutions as kernels, its residual blocks as [`Blocks`] maps).
    ///
    /// [`Blocks`]: crate::model::blocks::Blocks
    pub conv_rows_up_to: Option<usize>,
}

/// Loads an ONNX file and translates it into a validated [`Network`].
pub fn load(path: &Path) -> Result<Network> {
    load_with(path, OnnxOptions::default())
}

/// [`load`] with options.
pub fn load_with(path: &Path, options: OnnxOptions) -> Result<Network> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::file(path, format!("cannot read the ONNX model: {e}")))?;
    let model = parse(&bytes).map_err(|problem| Error::file(path, problem))?;
    // The parsed model holds its own copy of every weight: the file's bytes go before the
    // weights are converted to f64.
    drop(bytes);
    translate_model(model, path, options)
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
    translate_model(model, path, options)
}

/// A parsed model's graph translated into a validated [`Network`], its final Softmax left out
/// first with `strip_softmax`.
fn translate_model(mut model: ModelProto, path: &Path, options: OnnxOptions) -> Result<Network> {
    if options.strip_softmax {
        if let Some(graph) = model.graph.as_mut() {
            translate::strip_softmax(graph).map_err(|problem| Error::file(path, problem))?;
        }
    }
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
    let translated = translate::translate(graph, &options, opset)
        .map_err(|problem| Error::file(path, problem))?;
    let net = Network::new(translated.layers)
        .and_then(|n| n.with_kinds(translated.kinds))
        .map_err(|e| e.in_file(path))?;
    match translated.input_shape {
        Some(shape) if shape.iter().product::<usize>() == net.input_dim() => {
            net.with_input_shape(shape).map_err(|e| e.in_file(path))
        }
        _ => Ok(net),
    }
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

/// Whether `domain` names the standard ONNX operators.
fn is_default_domain(domain: &str) -> bool {
    domain.is_empty() || domain == "ai.onnx"
}
