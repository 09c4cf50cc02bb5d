//! The certificate file format: what a certificate names (model, sample, layer, neuron,
//! question) and the evidence it carries for one claim. The checker is [`super::check`].

use serde::{Deserialize, Serialize};

use crate::exact::Rational;
use crate::region::problem::{Domain, Norm};

/// The format tag of certificate files.
pub const FORMAT: &str = "dtdcert-certificate/1";

/// The question a certificate answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Problem {
    Exists,
    NearestL1,
    NearestLinf,
    Chebyshev,
    Facet,
}

impl Problem {
    pub fn name(self) -> &'static str {
        match self {
            Problem::Exists => "exists",
            Problem::NearestL1 => "nearest-l1",
            Problem::NearestLinf => "nearest-linf",
            Problem::Chebyshev => "chebyshev",
            Problem::Facet => "facet",
        }
    }

    pub(crate) fn norm(self) -> Norm {
        match self {
            Problem::NearestLinf => Norm::Linf,
            _ => Norm::L1,
        }
    }
}

/// What the certificate claims.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Claim {
    Feasible,
    Infeasible,
    Optimal,
    Ball,
    /// The constraint is not redundant: a point violates it and satisfies the others.
    Facet,
    Redundant,
}

/// The model a certificate is about.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelRef {
    /// SHA-256 fingerprint of the architecture and weights ([`crate::model::Network::fingerprint`]).
    pub fingerprint: String,
    /// Where the model was read from when the certificate was written (informative).
    #[serde(default)]
    pub path: Option<String>,
}

/// The sample whose region the certificate is about.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleRef {
    pub index: usize,
    pub values: Vec<f64>,
    /// The inputs file it came from (informative).
    #[serde(default)]
    pub source: Option<String>,
}

/// A certified interval `[lower, upper]` as exact rationals (`"p/q"`), with f64 readings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    pub lower: Option<String>,
    pub upper: Option<String>,
    pub lower_f64: Option<f64>,
    pub upper_f64: Option<f64>,
}

/// One certificate file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    pub format: String,
    pub model: ModelRef,
    pub sample: SampleRef,
    /// 1-based layer: the point lives in this layer's input space.
    pub layer: usize,
    /// The layer input whose region the question is about, when it is not the sample's own
    /// activation (full-backward DTD expands at the images of other roots); its activation
    /// pattern from `layer` up defines the region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub centre: Option<Vec<f64>>,
    /// The neuron of `layer` whose root hyperplane the question is on (root questions).
    #[serde(default)]
    pub neuron: Option<usize>,
    /// `R_j`, the relevance that defines the hyperplane `w_j·ã = w_j·a − R_j`.
    #[serde(default)]
    pub relevance: Option<f64>,
    pub domain: Domain,
    pub problem: Problem,
    pub claim: Claim,
    /// The constraint (1-based layer, neuron) of a facet question.
    #[serde(default)]
    pub constraint: Option<(usize, usize)>,
    /// The point before projection (root questions), the witness (facet) or the centre.
    #[serde(default)]
    pub point: Option<Vec<f64>>,
    #[serde(default)]
    pub radius: Option<f64>,
    /// One multiplier per row of the program the checker builds for the question.
    #[serde(default)]
    pub multipliers: Option<Vec<f64>>,
    /// The certified interval for the optimum (optimal and ball claims).
    #[serde(default)]
    pub interval: Option<Interval>,
    /// The tool version that wrote it.
    #[serde(default)]
    pub tool: Option<String>,
}

/// What a checked certificate establishes.
#[derive(Clone, Debug, PartialEq)]
pub struct Accepted {
    pub claim: Claim,
    /// The exact interval for an optimum (optimal: distance; ball: radius).
    pub lower: Option<Rational>,
    pub upper: Option<Rational>,
    /// The projected point of a feasible or optimal root claim, rounded to f64 for reading.
    pub point: Option<Vec<f64>>,
}

/// The rational as `"p/q"` (or `"p"`), the interval format of certificates.
pub fn rational_text(x: &Rational) -> String {
    x.to_string()
}
