//! One region question about one input, as `dtdcert certify` asks it: the layer, neuron and
//! constraint checked against the model, the root plane's relevance taken from the input's
//! explanation, and the answer with its certificate; and the closed-form step along a rule
//! root's direction, which needs no program.

use serde::Serialize;

use super::{Answer, Certifier, QuestionRelevance, RegionQuestion};
use crate::check::{Certificate, ExplanationRef, Problem};
use crate::dtd::{explain, DtdSettings, RootOutcome};
use crate::error::{Error, Result};
use crate::exact::{Rational, Scalar};
use crate::model::forward::{argmax, forward};
use crate::model::Model;
use crate::region::problem::Domain;
use crate::region::{constraint_labels, step_length, trace_and_pattern};

/// Checks a 1-based layer and a neuron against the model.
pub fn check_layer_neuron(model: &Model, layer: usize, neuron: Option<usize>) -> Result<()> {
    let layers = model.net().layers().len();
    if layer == 0 || layer > layers {
        return Err(Error::Usage(format!(
            "--layer {layer} is out of range: the model has layers 1..{layers}"
        )));
    }
    let width = model.net().layers()[layer - 1].affine.out_dim();
    if let Some(j) = neuron {
        if j >= width {
            return Err(Error::Usage(format!(
                "--neuron {j} is out of range: layer {layer} has {width} neurons (0..{})",
                width - 1
            )));
        }
    }
    Ok(())
}

/// One question about the region of input `x` (row `sample` of its file), seen from `layer`.
#[derive(Clone, Debug)]
pub struct SampleQuestion<'a> {
    /// The input's row in its file, 0-based; recorded in the certificate.
    pub sample: usize,
    /// The network input.
    pub x: &'a [f64],
    /// 1-based: the point lives in this layer's input space.
    pub layer: usize,
    /// The neuron whose roots are asked about (root questions and the step).
    pub neuron: Option<usize>,
    /// The constraint (1-based layer, neuron) of a facet question.
    pub constraint: Option<(usize, usize)>,
    /// The input domain box (layer 1 only; hidden layers use their own domain).
    pub input_box: Option<(f64, f64)>,
    /// The rules of the explanation that gives a root plane's relevance.
    pub dtd: &'a DtdSettings,
    /// The explained output; `None`: the input's top output.
    pub target: Option<usize>,
}

/// The answer to a [`SampleQuestion`], as `dtdcert certify` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct CertifyReport {
    /// The input's row in its file.
    pub sample: usize,
    /// The layer asked about, 1-based.
    pub layer: usize,
    /// The neuron of a root question.
    pub neuron: Option<usize>,
    /// The problem's name (`exists`, `nearest-l1`, ...).
    pub problem: &'static str,
    /// The root plane's relevance, rounded to f64.
    pub relevance: Option<f64>,
    /// The root plane's relevance, exactly (`"p/q"`).
    pub relevance_exact: Option<String>,
    /// The certified answer (or Unknown with the reason).
    #[serde(flatten)]
    pub answer: Answer,
    /// Wall time spent solving and checking.
    pub seconds: f64,
    /// Where the certificate was written (the caller sets it).
    pub certificate: Option<String>,
}

impl SampleQuestion<'_> {
    /// Answers `problem` with `certifier` (whose model is the one asked about): the report and,
    /// unless the answer is Unknown, its certificate. Usage errors for a layer, neuron or
    /// constraint the question cannot have.
    pub fn certify(
        &self,
        certifier: &Certifier,
        problem: Problem,
    ) -> Result<(CertifyReport, Option<Certificate>)> {
        let model = certifier.model;
        let root_question = matches!(
            problem,
            Problem::Exists | Problem::NearestL1 | Problem::NearestLinf
        );
        if root_question && self.neuron.is_none() {
            return Err(Error::Usage(format!(
                "--problem {} needs --neuron",
                problem.name()
            )));
        }
        check_layer_neuron(model, self.layer, self.neuron)?;
        let constraint = match (self.constraint, problem) {
            (Some((l, j)), Problem::Facet) => {
                // Constraints are ReLU neurons and, for a max-pool layer, the entries of each
                // window but its winner at this sample.
                let (_, pattern, _) = trace_and_pattern(model, self.x);
                if !constraint_labels(&pattern, self.layer - 1).contains(&(l, j)) {
                    return Err(Error::Usage(format!(
                        "--constraint {l}:{j}: not a constraint of sample {}'s region seen \
                         from layer {}: expected a ReLU neuron, or an entry of a max-pool \
                         window other than its winner, of a layer from {} to {}",
                        self.sample,
                        self.layer,
                        self.layer,
                        model.net().layers().len()
                    )));
                }
                Some((l, j))
            }
            (None, Problem::Facet) => {
                return Err(Error::Usage(
                    "--problem facet needs --constraint L:J".into(),
                ))
            }
            _ => None,
        };
        // The neuron's relevance in the explanation of the sample's target under these rules,
        // which the certifier and the checker compute exactly.
        let relevance = root_question.then(|| {
            let trace = forward(model.net(), self.x);
            let k = self.target.unwrap_or_else(|| argmax(trace.output()));
            QuestionRelevance::Explained(ExplanationRef {
                output: k,
                settings: self.dtd.clone(),
            })
        });
        let question = RegionQuestion {
            sample_index: self.sample,
            sample: self.x.to_vec(),
            layer: self.layer,
            neuron: self.neuron.filter(|_| root_question),
            relevance,
            domain: Domain::of_layer(model.net(), self.layer, self.input_box),
            problem,
            constraint,
            centre: None,
        };
        let certified = certifier.answer(&question);
        let report = CertifyReport {
            sample: self.sample,
            layer: self.layer,
            neuron: question.neuron,
            problem: problem.name(),
            relevance: certified.relevance.as_ref().map(Scalar::to_f64),
            relevance_exact: certified.relevance.as_ref().map(|r| r.to_string()),
            answer: certified.answer,
            seconds: certified.seconds,
            certificate: None,
        };
        Ok((report, certified.certificate))
    }

    /// The largest `t >= 0` with `a − t (a − ã) ∈ P_L(x)`, where `ã` is the neuron's rule root,
    /// computed exactly in closed form (no linear program): `certify --problem step`.
    pub fn step(&self, model: &Model) -> Result<StepReport> {
        let Some(j) = self.neuron else {
            return Err(Error::Usage("--problem step needs --neuron".into()));
        };
        check_layer_neuron(model, self.layer, Some(j))?;
        let m = self.layer - 1;
        let (trace, pattern, _) = trace_and_pattern(model, self.x);
        let k = self.target.unwrap_or_else(|| argmax(trace.output()));
        let e = explain(model.net(), &trace, self.dtd, k, true);
        let RootOutcome::Root { point, .. } = &e.layers[m].neurons[j].outcome else {
            return Err(Error::Usage(format!(
                "neuron {j} of layer {} has no {} root for sample {} (no direction to step \
                 along)",
                self.layer,
                self.dtd.rule_for(m),
                self.sample
            )));
        };
        let a: Vec<Rational> = trace
            .layer_input(m)
            .iter()
            .map(|&v| Rational::from_f64(v))
            .collect();
        let v: Vec<Rational> = a
            .iter()
            .zip(point)
            .map(|(ai, &p)| ai.clone() - Rational::from_f64(p))
            .collect();
        let t = step_length(model.exact(), &pattern, m, &a, &v);
        Ok(StepReport {
            sample: self.sample,
            layer: self.layer,
            neuron: j,
            problem: "step",
            rule: self.dtd.rule_for(m).to_string(),
            rule_root_inside: t.as_ref().is_none_or(|t| *t >= Rational::from_f64(1.0)),
            t_f64: t.as_ref().map(Scalar::to_f64),
            t: t.as_ref().map(|t| t.to_string()),
        })
    }
}

/// The step along a rule root's direction, as `dtdcert certify --problem step` prints it.
#[derive(Clone, Debug, Serialize)]
pub struct StepReport {
    /// The input's row in its file.
    pub sample: usize,
    /// The layer, 1-based.
    pub layer: usize,
    /// The neuron whose rule root gives the direction.
    pub neuron: usize,
    /// `"step"`.
    pub problem: &'static str,
    /// The layer's rule.
    pub rule: String,
    /// `t*` as an exact rational (`null`: the ray never leaves the region).
    pub t: Option<String>,
    /// `t*` rounded to f64.
    pub t_f64: Option<f64>,
    /// `t* >= 1`: the rule root itself lies in the region.
    pub rule_root_inside: bool,
}
