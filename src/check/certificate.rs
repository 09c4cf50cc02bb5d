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
    /// `--problem exists`: is there a valid root of the neuron (on its root hyperplane, in
    /// the region and the domain)?
    Exists,
    /// `--problem nearest-l1`: the valid root nearest to the layer input in the L1 norm.
    NearestL1,
    /// `--problem nearest-linf`: the valid root nearest to the layer input in the L∞ norm.
    NearestLinf,
    /// `--problem chebyshev`: the largest Euclidean ball inside the region and the domain.
    Chebyshev,
    /// `--problem facet`: is the constraint named by `--constraint` redundant?
    Facet,
}

impl Problem {
    /// The name as `--problem` and certificate files spell it (`nearest-l1`, ...).
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
    /// A valid root exists; the evidence is a point, projected exactly onto the hyperplane.
    Feasible,
    /// No valid root exists; the evidence is multipliers whose safe bound is positive.
    Infeasible,
    /// The nearest valid root's distance lies in `interval`: a point (upper end) and
    /// multipliers (lower end).
    Optimal,
    /// A ball of `radius` around `point` lies in the region and the domain; multipliers,
    /// when given, bound the largest radius from above.
    Ball,
    /// The constraint is not redundant: a point violates it and satisfies the others.
    Facet,
    /// The constraint is redundant: multipliers prove its pre-activation keeps its sign.
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
    /// The row of the inputs file, 0-based (`--sample`).
    pub index: usize,
    /// The network input `x` itself; the checker recomputes everything from it.
    pub values: Vec<f64>,
    /// The inputs file it came from (informative).
    #[serde(default)]
    pub source: Option<String>,
}

/// A certified interval `[lower, upper]` as exact rationals (`"p/q"`), with f64 readings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// The lower end as an exact rational; `None` when no lower bound is claimed.
    pub lower: Option<String>,
    /// The upper end as an exact rational; `None` when no upper bound is claimed.
    pub upper: Option<String>,
    /// `lower` rounded to f64, for reading only (the checker ignores it).
    pub lower_f64: Option<f64>,
    /// `upper` rounded to f64, for reading only (the checker ignores it).
    pub upper_f64: Option<f64>,
}

/// One certificate file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Certificate {
    /// The format tag, [`FORMAT`].
    pub format: String,
    /// The model the question is about, by fingerprint.
    pub model: ModelRef,
    /// The sample whose activation pattern defines the region.
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
    /// The domain box of the question: `--domain` (or none) at layer 1, the layer's own
    /// domain above.
    pub domain: Domain,
    /// The question asked.
    pub problem: Problem,
    /// The answer the evidence supports.
    pub claim: Claim,
    /// The constraint (1-based layer, neuron) of a facet question.
    #[serde(default)]
    pub constraint: Option<(usize, usize)>,
    /// The point before projection (root questions), the witness (facet) or the centre.
    #[serde(default)]
    pub point: Option<Vec<f64>>,
    /// The radius of the checked ball (ball claims).
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
    /// The claim, now proved.
    pub claim: Claim,
    /// The exact interval for an optimum (optimal: distance; ball: radius).
    pub lower: Option<Rational>,
    /// The exact upper end; `None` for a ball without multipliers and for claims without
    /// an optimum.
    pub upper: Option<Rational>,
    /// The projected point of a feasible or optimal root claim, rounded to f64 for reading.
    pub point: Option<Vec<f64>>,
}

/// The rational as `"p/q"` (or `"p"`), the interval format of certificates.
pub fn rational_text(x: &Rational) -> String {
    x.to_string()
}
