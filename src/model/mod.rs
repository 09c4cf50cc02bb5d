//! The network IR, its loaders, and the forward pass.

pub mod activation;
pub mod blocks;
pub mod conv;
pub mod file;
pub mod forward;
pub mod gemm;
pub mod image;
pub mod inputs;
pub mod ir;
pub mod kind;
pub mod onnx;
pub mod relnet;
pub mod residual;
pub mod safetensors_json;
pub mod targets;
pub mod vocabulary;

use std::path::Path;
use std::sync::OnceLock;

pub use activation::Activation;
pub use file::ModelFile;
pub use forward::{forward, output, Trace};
pub use ir::{Affine, Dense, Layer, Network};
pub use kind::LayerKind;

use crate::error::{Error, Result};
use crate::exact::ball::Ball;
use crate::exact::Rational;

/// Choices in how a model file becomes a network.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadOptions {
    /// Batch norm as a diagonal layer of its own instead of folded into the layer before it
    /// (ONNX files and relation networks).
    pub keep_batch_norm: bool,
    /// Residual additions as layers of their own (the ONNX translator's, each summand with
    /// its own bias; [`residual::split_residuals`] for the other formats), so that a rule on
    /// the addition splits relevance between its summands.
    pub split_residual: bool,
    /// The question a relation network answers (its description needs one; other models
    /// take none).
    pub question: Option<Vec<f64>>,
    /// Leaves out a Softmax computing an ONNX graph's output: the network ends with the
    /// logits (`--strip-softmax`; other formats have no Softmax to leave out).
    pub strip_softmax: bool,
}

/// The bytes a network takes, estimated: 8 a stored weight or bias (f64), 4 more a listed
/// weight of sparse rows (its input index), and 8 an activation of one sample (each layer's
/// output and the input).
pub fn estimated_bytes(net: &Network) -> u64 {
    let layers: u64 = net.layers().iter().map(|l| layer_bytes(&l.affine)).sum();
    layers + 8 * net.input_dim() as u64
}

/// [`estimated_bytes`] for one layer: its parameters and its outputs.
pub fn layer_bytes(affine: &Affine) -> u64 {
    let index = if matches!(affine, Affine::Sparse(_)) {
        4
    } else {
        0
    };
    let weights = affine.stored_weights() as u64;
    // Biases: one per output but for a shared block or a convolution, where fewer are stored;
    // counted per output, an upper bound.
    let outputs = affine.out_dim() as u64;
    weights * (8 + index) + 16 * outputs
}

/// `bytes` in a short human form (`1.5 GiB`).
pub fn show_bytes(bytes: u64) -> String {
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// A loaded network with its exact twin, built on first use.
#[derive(Clone, Debug)]
pub struct Model {
    net: Network,
    exact: OnceLock<Network<Rational>>,
    balls: OnceLock<Network<Ball>>,
    row_norms: OnceLock<Vec<Vec<f64>>>,
    fingerprint: OnceLock<String>,
}

impl Model {
    /// Wraps a validated network (its fingerprint is computed on first use). Patterns, regions, roots,
    /// verdicts, the linear programs, their certificates and the libtorch backend read every
    /// activation; full-backward DTD and the paper's experiments read ReLU networks only, and
    /// refuse others ([`Network::require_relu`]).
    pub fn new(net: Network) -> Self {
        Self {
            net,
            exact: OnceLock::new(),
            balls: OnceLock::new(),
            row_norms: OnceLock::new(),
            fingerprint: OnceLock::new(),
        }
    }

    /// Loads `.onnx` files, or `.json` descriptions that point at safetensors weights.
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_with(path, &LoadOptions::default())
    }

    /// [`Model::load`] with load options.
    pub fn load_with(path: &Path, options: &LoadOptions) -> Result<Self> {
        Self::load_within(path, options, None)
    }

    /// [`Model::load_with`], refusing a network that would take more than `max_memory` bytes
    /// as [`estimated_bytes`] counts them (an ONNX layer that would take the total past it is
    /// refused before it is built).
    pub fn load_within(
        path: &Path,
        options: &LoadOptions,
        max_memory: Option<u64>,
    ) -> Result<Self> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let relation_network = ext.as_deref() == Some("json") && relnet::is_description(path);
        // An ONNX graph may take the question as its second input; it checks that itself.
        if options.question.is_some() && !relation_network && ext.as_deref() != Some("onnx") {
            return Err(Error::Usage(format!(
                "--question applies to relation networks; {} is not one",
                path.display()
            )));
        }
        if options.strip_softmax && ext.as_deref() != Some("onnx") {
            return Err(Error::Usage(format!(
                "--strip-softmax applies to ONNX models; {} is not one",
                path.display()
            )));
        }
        let net = match ext.as_deref() {
            Some("onnx") => onnx::load_with(
                path,
                onnx::OnnxOptions {
                    keep_batch_norm: options.keep_batch_norm,
                    split_residual: options.split_residual,
                    question: options.question.clone(),
                    strip_softmax: options.strip_softmax,
                    max_memory,
                    conv_rows_up_to: None,
                },
            )?,
            Some("json") if relation_network => {
                let rn = relnet::RelationNetwork::load(path)?;
                let Some(question) = &options.question else {
                    return Err(Error::file(
                        path,
                        format!(
                            "a relation network answers a question: give its {} values with --question",
                            rn.question_width()
                        ),
                    ));
                };
                let keep_batch_norm = options.keep_batch_norm;
                rn.network(question, relnet::Options { keep_batch_norm })
                    .map_err(|e| e.in_file(path))?
            }
            Some("json") => safetensors_json::load(path)?,
            _ => {
                return Err(Error::file(
                    path,
                    "unknown model format: expected an .onnx file or a .json description with safetensors weights",
                ))
            }
        };
        // The ONNX translator keeps each addition's summands apart itself, each with its own
        // bias; the other formats' networks are split as the IR holds them.
        let net = match options.split_residual && ext.as_deref() != Some("onnx") {
            true => residual::split_residuals(&net).map_err(|e| e.in_file(path))?,
            false => net,
        };
        if let Some(limit) = max_memory {
            let need = estimated_bytes(&net);
            if need > limit {
                return Err(Error::file(
                    path,
                    format!(
                        "the network takes about {} (weights as f64 and one sample's \
                         activations), more than the {} of --max-memory",
                        show_bytes(need),
                        show_bytes(limit)
                    ),
                ));
            }
        }
        Ok(Self::new(net))
    }

    /// The network in f64.
    pub fn net(&self) -> &Network {
        &self.net
    }

    /// The same network in exact rationals, converted from the f64 weights on first use.
    pub fn exact(&self) -> &Network<Rational> {
        self.exact.get_or_init(|| self.net.to_exact())
    }

    /// The same network in midpoint-radius arithmetic (every weight exact, radius 0), for
    /// computations that carry their own error bounds; converted on first use.
    pub fn balls(&self) -> &Network<Ball> {
        self.balls.get_or_init(|| self.net.to_scalar())
    }

    /// Per layer, upper bounds on the Euclidean norms of the weight rows (for batched error
    /// bounds).
    pub fn row_norms(&self) -> &[Vec<f64>] {
        self.row_norms.get_or_init(|| {
            self.net
                .layers()
                .iter()
                .map(|l| {
                    (0..l.affine.out_dim())
                        .map(|j| crate::exact::filter::norm_upper(l.affine.row(j).values()))
                        .collect()
                })
                .collect()
        })
    }

    /// SHA-256 of the architecture and parameters.
    pub fn fingerprint(&self) -> &str {
        self.fingerprint.get_or_init(|| self.net.fingerprint())
    }
}
