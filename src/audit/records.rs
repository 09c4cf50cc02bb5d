//! The records an audit writes, one line of `records.jsonl` per sample: each layer's
//! relevance balance, each neuron's root verdict (region and domain) and, with `--certify`,
//! its certified answer.

use serde::{Deserialize, Serialize};

use crate::dtd::NoRoot;
use crate::region::{Decision, Membership};

/// Domain membership of a root.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum DomainCheck {
    /// `{"status": "in"}`: every coordinate lies in the domain (always so where the layer
    /// has none).
    In,
    /// The first coordinate outside the domain and its value.
    Out {
        /// The coordinate's 0-based index in the layer's input.
        coordinate: usize,
        /// The root's value there, rounded to f64.
        value: f64,
    },
}

/// The verdict on one root.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RootVerdict {
    /// Inside the region and in the domain.
    pub valid: bool,
    /// Whether the root lies in the input's linear region seen from its layer.
    pub region: Membership,
    /// Whether the root lies in its layer's domain.
    pub domain: DomainCheck,
    /// How the region verdict was reached (`float`, `refined`, `exact-fallback`, ...).
    pub decided_by: Decision,
    /// The root's coordinates, rounded to f64 (`--roots` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point: Option<Vec<f64>>,
}

/// One neuron of a layer in `records.jsonl`: its relevance and either why it has no root or
/// the verdict on its root.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NeuronRecord {
    /// The neuron's 0-based index in its layer.
    pub neuron: usize,
    /// `R_j`, the relevance the neuron receives from above, rounded to f64.
    pub relevance: f64,
    /// Why the neuron has no root (`zero-relevance`, `small-denominator`, ...); `None` when
    /// it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_root: Option<NoRoot>,
    /// The verdict on the neuron's root; `None` when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<RootVerdict>,
    /// The certified answer for the neuron (`--certify`, for the roots it asks about).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certified: Option<CertifiedRoot>,
    /// `--roots-per-layer`: the neuron has a root, but the draw did not pick it, so it was
    /// neither computed nor judged (`root` is then absent, and so is `no_root`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub not_judged: bool,
}

/// The certified answer for a root's neuron (`--certify`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CertifiedRoot {
    /// What was proved about the neuron's valid roots.
    pub answer: CertifiedAnswer,
    /// The certified interval of the nearest valid root's distance (nearest problems).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance_lower: Option<f64>,
    /// The distance of the checked nearest valid root, the interval's upper end (nearest
    /// problems).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance_upper: Option<f64>,
    /// Why there is no certified answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The certificate, relative to the output folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

/// The outcome of a `--certify` question, as the records' `certified.answer` spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CertifiedAnswer {
    /// A valid root of the neuron exists (proved by a checked point).
    ValidRootExists,
    /// No valid root of the neuron exists (proved by a checked Farkas certificate).
    NoValidRoot,
    /// No certified answer (time limit, solver failure, rejected certificate).
    Unknown,
}

/// One layer of a sample in `records.jsonl`: its relevance balance and its neurons.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// 1-based; layer 1 takes the network input.
    pub layer: usize,
    /// The rule the layer's relevance was passed down with.
    pub rule: crate::dtd::Rule,
    /// `Σ R^l` (relevance entering the layer from above).
    pub relevance_in: f64,
    /// `Σ R^{l-1}` (relevance passed to the layer's inputs).
    pub relevance_out: f64,
    /// Relevance not passed on: `no_root_relevance + absorbed`.
    pub unresolved: f64,
    /// Relevance of neurons without a root (small denominator) or under a rule without one
    /// that did not pass it on.
    pub no_root_relevance: f64,
    /// Relevance absorbed by bias or stabiliser terms of denominators (and, for rule 0, the
    /// mismatch between `R_j` and `w_j · a`).
    pub absorbed: f64,
    /// `relevance_in − relevance_out − unresolved` (0 up to rounding; exactly 0 with --exact).
    pub conservation_error: f64,
    /// `--roots-per-layer`: the layer's neurons with a root, judged or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roots_available: Option<usize>,
    /// `--roots-per-layer`: the roots the draw picked and judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roots_judged: Option<usize>,
    /// One record per neuron of the layer, in order.
    pub neurons: Vec<NeuronRecord>,
}

/// Which neuron records the records file holds (`--records`). Each sample has its line
/// whatever this says, and the summary counts every root.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RecordsKept {
    /// `all`: every neuron of every layer.
    #[default]
    All,
    /// `outside`: the neurons whose root is not valid (outside its region or its domain) and
    /// every neuron with a certified answer.
    Outside,
    /// `none`: no neuron records; each sample's line keeps its layers' relevance balance.
    None,
}

impl RecordsKept {
    /// The name `--records` takes.
    pub fn name(self) -> &'static str {
        match self {
            RecordsKept::All => "all",
            RecordsKept::Outside => "outside",
            RecordsKept::None => "none",
        }
    }

    /// Reads a name of [`RecordsKept::name`].
    pub fn parse(name: &str) -> Option<Self> {
        [RecordsKept::All, RecordsKept::Outside, RecordsKept::None]
            .into_iter()
            .find(|k| k.name() == name)
    }

    /// Whether a neuron's record is kept.
    pub fn keeps(self, n: &NeuronRecord) -> bool {
        match self {
            RecordsKept::All => true,
            RecordsKept::Outside => {
                n.certified.is_some() || n.root.as_ref().is_some_and(|r| !r.valid)
            }
            RecordsKept::None => false,
        }
    }
}

/// One line of `records.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    /// The input's 0-based row in the inputs file.
    pub sample: usize,
    /// The explained output `k`, 0-based (`--explain`, `--targets`, or the top output).
    pub explained: usize,
    /// The network's output `f_k(x)`, rounded to f64.
    pub output: f64,
    /// How the input's activation pattern was decided (`float`, `refined`, ...).
    pub pattern_decided_by: Decision,
    /// One record per layer, layer 1 (the one taking the network input) first.
    pub layers: Vec<LayerRecord>,
}

impl SampleRecord {
    /// The record with only the neuron records `kept` keeps.
    pub fn kept(&self, kept: RecordsKept) -> SampleRecord {
        let layers = self
            .layers
            .iter()
            .map(|l| LayerRecord {
                layer: l.layer,
                rule: l.rule,
                relevance_in: l.relevance_in,
                relevance_out: l.relevance_out,
                unresolved: l.unresolved,
                no_root_relevance: l.no_root_relevance,
                absorbed: l.absorbed,
                conservation_error: l.conservation_error,
                roots_available: l.roots_available,
                roots_judged: l.roots_judged,
                neurons: l
                    .neurons
                    .iter()
                    .filter(|n| kept.keeps(n))
                    .cloned()
                    .collect(),
            })
            .collect();
        SampleRecord {
            sample: self.sample,
            explained: self.explained,
            output: self.output,
            pattern_decided_by: self.pattern_decided_by,
            layers,
        }
    }
}
