//! What the train-free recursion returns: each neuron's relevance, root (or why it has none)
//! and unresolved remainder, each layer's relevances above and below, the whole explanation.

use serde::{Deserialize, Serialize};

use super::rules::Rule;
use crate::exact::Scalar;

/// Why a neuron has no root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoRoot {
    /// `nearest-valid`: proved (by a checked certificate) that no valid root exists.
    NoValidRoot,
    /// `nearest-valid`: no certified answer (time limit, solver failure).
    Uncertified,
    /// `R_j = 0`: nothing to explain.
    ZeroRelevance,
    /// `|w_j · v| <=` the threshold: no root along the rule's direction.
    SmallDenominator,
    /// An LRP rule without a root form, a max-pool layer (winner-take-all), or an identity
    /// neuron (a value carried past its layer), which passes its relevance whole.
    NotApplicable,
}

/// The root of one neuron, or why there is none.
#[derive(Clone, Debug, PartialEq)]
pub enum RootOutcome<T> {
    /// The root `ã = a − t v` along the rule's direction `v`.
    Root {
        /// `ã`, one value per input of the layer; empty when the roots were not kept
        /// (`keep_roots` false: relevances only).
        point: Vec<T>,
        /// The step `t = R_j / (w_j · v + β)` (stabilised); 1 for the rule `0`.
        t: T,
    },
    /// No root, and why.
    None(NoRoot),
}

/// One neuron of one layer.
#[derive(Clone, Debug, PartialEq)]
pub struct NeuronRelevance<T> {
    /// `R_j`: the neuron's relevance, from the layer above (the initial relevance at the
    /// explained output).
    pub relevance: T,
    /// The neuron's root, or why it has none.
    pub outcome: RootOutcome<T>,
    /// `R_j −` what the neuron passed to its inputs.
    pub unresolved: T,
}

/// One layer's step of the recursion.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerRelevance<T> {
    /// The rule the layer used (after `--input-rule` and `--layer-rule`; only recorded for
    /// a max-pool layer, which passes its relevance winner-take-all).
    pub rule: Rule,
    /// `R^l`: relevances of the layer's neurons.
    pub upper: Vec<T>,
    /// `R^{l-1}`: relevances of the layer's inputs.
    pub lower: Vec<T>,
    /// One per neuron of the layer, in order (zero-relevance neurons included).
    pub neurons: Vec<NeuronRelevance<T>>,
}

impl<T: Scalar> LayerRelevance<T> {
    /// `Σ R^l − Σ R^{l-1} − Σ unresolved`: zero up to rounding (exactly zero in rationals).
    pub fn conservation_error(&self) -> T {
        let sum = |v: &mut dyn Iterator<Item = &T>| v.fold(T::zero(), |acc, x| acc + x.clone());
        sum(&mut self.upper.iter())
            - sum(&mut self.lower.iter())
            - sum(&mut self.neurons.iter().map(|n| &n.unresolved))
    }
}

/// A whole explanation: layers in network order (layer 1 first).
#[derive(Clone, Debug, PartialEq)]
pub struct Explanation<T> {
    /// The explained output `k` (0-based), whose relevance starts the recursion.
    pub explained: usize,
    /// One per layer of the network; `layers[0]` takes the network input.
    pub layers: Vec<LayerRelevance<T>>,
}

impl<T: Scalar> Explanation<T> {
    /// Relevance of the network inputs.
    pub fn input_relevance(&self) -> &[T] {
        &self.layers[0].lower
    }
}
