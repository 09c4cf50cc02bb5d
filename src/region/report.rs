//! The activation pattern of one input and the size of its region seen from one layer, as
//! `dtdcert region` reports them.

use serde::Serialize;

use super::{trace_and_pattern, Decision, Pattern, Piece};
use crate::error::{Error, Result};
use crate::model::Model;

/// One layer's part of the pattern.
#[derive(Clone, Debug, Serialize)]
pub struct LayerPattern {
    /// 1-based; layer 1 takes the network input.
    pub layer: usize,
    /// The layer's number of outputs.
    pub width: usize,
    /// Whether a ReLU follows the layer.
    pub relu: bool,
    /// The window of a max-pool layer; its pattern is each window's winner.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_pool: Option<usize>,
    /// Outputs carried past the ReLU (the last ones of the layer); no constraints.
    #[serde(skip_serializing_if = "is_zero")]
    pub linear_tail: usize,
    /// Active neurons (`None` for a layer without ReLU); for a Clip layer, the neurons
    /// between its bounds.
    pub active: Option<usize>,
    /// The activation's operator when it is not ReLU (`Clip`, `LeakyRelu` or `PRelu`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activation: Option<&'static str>,
    /// For a Clip layer, its neurons below, between and above its bounds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pieces: Option<[usize; 3]>,
    /// The pattern as text ([`Pattern::bit_strings`]).
    pub pattern: String,
}

/// The activation pattern of one input and the size of the polytope `P_L(x)`.
#[derive(Clone, Debug, Serialize)]
pub struct RegionReport {
    /// The input's row in its inputs file, 0-based.
    pub sample: usize,
    /// The layer the region is seen from, 1-based.
    pub layer: usize,
    /// The polytope's dimension: the width of the layer's input.
    pub dimension: usize,
    /// One constraint per ReLU, LeakyRelu or PRelu neuron of the layers from `layer` up, one
    /// per bound a Clip neuron's piece touches, and one per max-pool entry that is not its
    /// window's winner.
    pub constraints: usize,
    /// How the pattern was decided (f64 bound, refined sums, or exact arithmetic).
    pub pattern_decided_by: Decision,
    /// One entry per layer of the network.
    pub layers: Vec<LayerPattern>,
    /// The pattern itself.
    #[serde(skip)]
    pub pattern: Pattern,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl RegionReport {
    /// The pattern of input `x` (row `sample` of its file) and the size of its region seen
    /// from `layer` (1-based); a usage error for a layer the model does not have.
    pub fn new(model: &Model, sample: usize, x: &[f64], layer: usize) -> Result<Self> {
        let num_layers = model.net().layers().len();
        if layer == 0 || layer > num_layers {
            return Err(Error::Usage(format!(
                "--layer {layer} is out of range: the model has layers 1..{num_layers}"
            )));
        }
        let (_, pattern, decided_by) = trace_and_pattern(model, x);
        let m = layer - 1;
        let bits = pattern.bit_strings();
        let counts = pattern.active_counts();
        Ok(Self {
            sample,
            layer,
            dimension: model.net().layers()[m].affine.in_dim(),
            constraints: pattern.constraints_from(m),
            pattern_decided_by: decided_by,
            layers: model
                .net()
                .layers()
                .iter()
                .enumerate()
                .map(|(k, l)| LayerPattern {
                    layer: k + 1,
                    width: l.out_dim(),
                    relu: l.relu,
                    max_pool: l.max_pool,
                    linear_tail: l.linear_tail,
                    active: counts[k],
                    activation: l.other_activation().map(|a| a.name()),
                    pieces: pattern.pieces(k).map(|p| {
                        let count = |piece| p.iter().filter(|&&q| q == piece).count();
                        [
                            count(Piece::Below),
                            count(Piece::Between),
                            count(Piece::Above),
                        ]
                    }),
                    pattern: bits[k].clone(),
                })
                .collect(),
            pattern,
        })
    }
}
