//! The certificate file format: what a certificate names (model, sample, layer, neuron,
//! relevance and the explanation it comes from, question) and the evidence it carries for one
//! claim. The checker is [`super::check`].

use serde::{Deserialize, Serialize};

use crate::dtd::DtdSettings;
use crate::exact::Rational;
use crate::region::problem::{Domain, Norm};

/// The format tag of certificate files.
pub const FORMAT: &str = "dtdcert-certificate/2";

/// The format tag of the first certificate files, which carried the relevance as an f64 and
/// left the layer input to an f64 forward pass: their claims are not about the exact root, and
/// the checker refuses them.
pub const FORMAT_1: &str = "dtdcert-certificate/1";

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

impl Claim {
    /// The claim as certificates spell it (`feasible`, `optimal`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Claim::Feasible => "feasible",
            Claim::Infeasible => "infeasible",
            Claim::Optimal => "optimal",
            Claim::Ball => "ball",
            Claim::Facet => "facet",
            Claim::Redundant => "redundant",
        }
    }
}

/// The model a certificate is about.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRef {
    /// SHA-256 fingerprint of the architecture and weights ([`crate::model::Network::fingerprint`]).
    pub fingerprint: String,
    /// Where the model was read from when the certificate was written, as an absolute path:
    /// `check-cert` reads the model from there unless `--model` names it.
    #[serde(default)]
    pub path: Option<String>,
}

/// The sample whose region the certificate is about.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleRef {
    /// The row of the inputs file, 0-based (`--sample`).
    pub index: usize,
    /// The network input `x` itself; the checker recomputes everything from it.
    pub values: Vec<f64>,
    /// The inputs file it came from, as an absolute path (`check-cert --inputs` compares the
    /// values with that file's row).
    #[serde(default)]
    pub source: Option<String>,
}

/// The explanation a root question's relevance comes from: the explained output and the
/// rules with their settings, as `--explain` and the rule options give them (and `run.json`
/// records them under `settings.dtd`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExplanationRef {
    /// The explained output `k`, 0-based.
    pub output: usize,
    /// The rule of each layer and the numbers the rules use.
    pub settings: DtdSettings,
}

/// The relevance `R_j` of a root question's hyperplane `w_j·ã = w_j·a − R_j`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelevanceRef {
    /// `R_j` exactly, as `"p/q"` (or `"p"`).
    pub value: String,
    /// `value` rounded to f64, for reading only (the checker ignores it).
    #[serde(default)]
    pub value_f64: Option<f64>,
    /// The explanation whose neuron relevance `R_j` is: the checker recomputes it exactly
    /// from the model, the sample and these settings, and requires `value` to equal it.
    /// `None` only at a given `centre` (full-backward DTD), where the relevance is given.
    #[serde(default)]
    pub explanation: Option<ExplanationRef>,
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
    /// `R_j`, the relevance that defines the hyperplane `w_j·ã = w_j·a − R_j`, and the
    /// explanation it comes from.
    #[serde(default)]
    pub relevance: Option<RelevanceRef>,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What `check-cert` prints is what certificates write.
    #[test]
    fn claim_names_are_the_serialised_ones() {
        for claim in [
            Claim::Feasible,
            Claim::Infeasible,
            Claim::Optimal,
            Claim::Ball,
            Claim::Facet,
            Claim::Redundant,
        ] {
            let json = serde_json::to_value(claim).unwrap();
            assert_eq!(json.as_str(), Some(claim.name()));
        }
    }
}
