//! The `nearest-valid` root finder: for every neuron with relevance, the certified nearest
//! valid root (in the input's region and the domain, on the neuron's root hyperplane), so the
//! Taylor expansion at every root is exact. Relevance passes as `R_i = w_ji (a_i − ã_i)`,
//! which sums to `R_j` because the root is on the hyperplane `w_j·ã = w_j·a − R_j`.
//!
//! Layers under other rules use the train-free step of [`crate::dtd`]; a layer under
//! `nearest-valid` solves one certified LP per neuron with relevance. A neuron proved to have
//! no valid root, or whose question gets no certified answer, passes nothing: its relevance is
//! reported as unresolved, never dropped.

use crate::check::Problem;
use crate::dtd::full_backward::{FoundRoot, RootFinder, Rootless, RuleRoots};
use crate::dtd::{
    explain_with, layer_step, pass_whole, DtdSettings, Explanation, LayerRelevance,
    NeuronRelevance, NoRoot, RootOutcome, Rule,
};
use crate::error::Result;
use crate::exact::dyadic::{Dyadic, ExactSum};
use crate::exact::{Rational, Scalar};
use crate::model::forward::Trace;
use crate::model::Model;
use crate::region::problem::{Domain, Norm};
use crate::region::{membership_filtered, pattern_from_layer, trace_and_pattern, Pattern};

use super::certify::{Answer, Certifier, QuestionRelevance, RegionQuestion};
use super::SolveOptions;

/// Roots for full-backward DTD ([`crate::dtd::full_backward`]): certified nearest valid roots
/// on the layers whose rule is `nearest-valid`, the rule roots elsewhere. The recursion asks at
/// the images of other roots, so each question is about the region of the point it is asked
/// at (its own activation pattern from the layer up), not the input's.
pub struct ValidRoots<'a> {
    certifier: Certifier<'a>,
    rules: RuleRoots<'a, f64>,
    settings: DtdSettings,
    x: Vec<f64>,
    input_box: Option<(f64, f64)>,
}

impl<'a> ValidRoots<'a> {
    /// Roots for the explanation of the network input `x` under `settings`; `input_box` is
    /// layer 1's domain (`--domain`, else none) and `opts` the solver of every question.
    pub fn new(
        model: &'a Model,
        settings: &DtdSettings,
        x: &[f64],
        input_box: Option<(f64, f64)>,
        opts: SolveOptions,
    ) -> Self {
        Self {
            certifier: Certifier {
                model,
                opts,
                model_path: None,
                inputs_path: None,
                cache: Default::default(),
            },
            rules: RuleRoots::new(model.net(), settings),
            settings: settings.clone(),
            x: x.to_vec(),
            input_box,
        }
    }
}

impl RootFinder<f64> for ValidRoots<'_> {
    fn root(
        &self,
        layer: usize,
        neuron: usize,
        a: &[f64],
        relevance: f64,
    ) -> Result<Option<Vec<f64>>> {
        let Rule::NearestValid(norm) = self.settings.rule_for(layer) else {
            return self.rules.root(layer, neuron, a, relevance);
        };
        let relevance = plane_relevance(self.certifier.model, layer, neuron, a, relevance);
        if !relevance.is_finite() {
            return Ok(None);
        }
        let question = RegionQuestion {
            sample_index: 0,
            sample: self.x.clone(),
            layer: layer + 1,
            neuron: Some(neuron),
            relevance: Some(QuestionRelevance::Given(Rational::from_f64(relevance))),
            domain: Domain::of_layer(self.certifier.model.net(), layer + 1, self.input_box),
            problem: problem_of(norm),
            constraint: None,
            centre: Some(a.to_vec()),
        };
        match self.certifier.answer(&question).answer {
            Answer::Found { point, .. } => {
                let (pattern, _) = pattern_from_layer(self.certifier.model, layer, a);
                let domain =
                    Domain::of_layer(self.certifier.model.net(), layer + 1, self.input_box);
                Ok(Some(settle(
                    self.certifier.model,
                    &pattern,
                    layer,
                    domain,
                    a,
                    point,
                )))
            }
            // Proved absent or unanswered: the neuron's relevance stays its remainder.
            _ => Ok(None),
        }
    }

    fn found(
        &self,
        layer: usize,
        neuron: usize,
        a: &[f64],
        relevance: f64,
    ) -> Result<Option<FoundRoot<f64>>> {
        if !self.settings.rule_for(layer).needs_lp() {
            return self.rules.found(layer, neuron, a, relevance);
        }
        Ok(self
            .root(layer, neuron, a, relevance)?
            .map(|point| FoundRoot {
                point,
                step: None,
                on_root_plane: false,
            }))
    }

    fn rootless(&self, layer: usize, neuron: usize) -> Rootless {
        if !self.settings.rule_for(layer).needs_lp() {
            return self.rules.rootless(layer, neuron);
        }
        Rootless::NotFound
    }
}

/// The relevance to put on the root plane of neuron `j` of layer `index` at `a`. When `R_j`
/// is the neuron's own pre-activation up to rounding (the explained output, or any neuron
/// whose relevance is its activation), the plane `w·ã = w·a − R_j` is the neuron's face, and
/// the f64 rounding of `R_j` puts it on either side; then the relevance is rounded down to the
/// largest f64 that keeps the plane on the region's side, and the difference (a few units in
/// the last place) stays with the neuron as unresolved relevance.
fn plane_relevance(model: &Model, index: usize, j: usize, a: &[f64], r: f64) -> f64 {
    let layer = &model.net().layers()[index];
    if !layer.relu || j >= layer.relu_count() || r <= 0.0 {
        return r;
    }
    let mut z = ExactSum::new();
    for (i, &w) in layer.affine.row(j).entries() {
        z.add_product(w, a[i]);
    }
    z.add(*layer.affine.bias(j));
    let Some(z) = z.value() else { return r };
    let zf = z.to_f64();
    if zf.is_nan() || zf <= 0.0 || (r - zf).abs() > 8.0 * f64::EPSILON * zf {
        return r;
    }
    // The largest f64 not above the exact pre-activation.
    let mut down = zf;
    while Dyadic::from_f64(down).is_some_and(|d| d > z) {
        down = down.next_down();
    }
    down.min(r)
}

/// The f64 reading of a certified root can round across a face it lies exactly on (the
/// neuron's own face); moving it a tiny fraction of the way to the layer input `a` (inside
/// the region) settles it. Returns the first of `root`, `root + ε (a − root)` for growing `ε`
/// that is exactly inside the region and the domain (or `root` if none is).
fn settle(
    model: &Model,
    pattern: &Pattern,
    m: usize,
    domain: Domain,
    a: &[f64],
    root: Vec<f64>,
) -> Vec<f64> {
    let inside = |p: &[f64]| {
        let in_domain = match domain {
            Domain::Free => true,
            Domain::NonNegative => p.iter().all(|v| *v >= 0.0),
            Domain::Box { lo, hi } => p.iter().all(|v| *v >= lo && *v <= hi),
        };
        in_domain && membership_filtered(model, pattern, m, p).0.is_inside()
    };
    if inside(&root) {
        return root;
    }
    for eps in [1e-15, 1e-13, 1e-11, 1e-9] {
        let moved: Vec<f64> = root
            .iter()
            .zip(a)
            .map(|(r, ai)| r + eps * (ai - r))
            .collect();
        if inside(&moved) {
            return moved;
        }
    }
    root
}

fn problem_of(norm: Norm) -> Problem {
    match norm {
        Norm::L1 => Problem::NearestL1,
        Norm::Linf => Problem::NearestLinf,
    }
}

/// Whether any layer's rule needs the LP path.
pub fn uses_lp(settings: &DtdSettings, layers: usize) -> bool {
    (0..layers).any(|i| settings.rule_for(i).needs_lp())
}

/// Train-free DTD of output `k` at input `x` (traced as `trace`), with certified nearest valid
/// roots on the layers whose rule is `nearest-valid`. `input_box` is the input domain.
pub fn explain_valid(
    model: &Model,
    x: &[f64],
    trace: &Trace<f64>,
    settings: &DtdSettings,
    k: usize,
    input_box: Option<(f64, f64)>,
    opts: SolveOptions,
) -> Explanation<f64> {
    let certifier = Certifier {
        model,
        opts,
        model_path: None,
        inputs_path: None,
        cache: Default::default(),
    };
    let mut pattern: Option<Pattern> = None;
    explain_with(
        model.net(),
        trace,
        k,
        settings.initial_relevance,
        |index, a, upper| {
            let rule = settings.rule_for(index);
            match rule {
                Rule::NearestValid(norm) => {
                    let pattern = pattern.get_or_insert_with(|| trace_and_pattern(model, x).1);
                    valid_step(
                        &certifier, x, pattern, index, a, upper, norm, input_box, rule,
                    )
                }
                _ => layer_step(&model.net().layers()[index], a, upper, rule, settings, true),
            }
        },
    )
}

#[allow(clippy::too_many_arguments)]
fn valid_step(
    certifier: &Certifier,
    x: &[f64],
    pattern: &Pattern,
    index: usize,
    a: &[f64],
    upper: &[f64],
    norm: Norm,
    input_box: Option<(f64, f64)>,
    rule: Rule,
) -> LayerRelevance<f64> {
    let layer = &certifier.model.net().layers()[index];
    let affine = &layer.affine;
    let mut lower = vec![0.0; a.len()];
    let mut neurons = Vec::with_capacity(upper.len());
    let identities = layer.identities();
    for (j, &r) in upper.iter().enumerate() {
        if r == 0.0 {
            neurons.push(NeuronRelevance {
                relevance: r,
                outcome: RootOutcome::None(NoRoot::ZeroRelevance),
                unresolved: 0.0,
            });
            continue;
        }
        // An identity passes its relevance whole, as in every rule's step.
        if let Some(i) = identities[j] {
            neurons.push(pass_whole(i, &r, &mut lower));
            continue;
        }
        let plane = plane_relevance(certifier.model, index, j, a, r);
        let domain = Domain::of_layer(certifier.model.net(), index + 1, input_box);
        let answer = if plane.is_finite() && a.iter().all(|v| v.is_finite()) {
            // The question is about the layer input this recursion uses (the f64 trace) and
            // the relevance it passes on, both exact as given.
            let question = RegionQuestion {
                sample_index: 0,
                sample: x.to_vec(),
                layer: index + 1,
                neuron: Some(j),
                relevance: Some(QuestionRelevance::Given(Rational::from_f64(plane))),
                domain,
                problem: problem_of(norm),
                constraint: None,
                centre: Some(a.to_vec()),
            };
            certifier.answer(&question).answer
        } else {
            Answer::Unknown {
                reason: "the relevance or the layer input overflows f64".into(),
            }
        };
        let (outcome, passed) = match answer {
            Answer::Found { point, .. } => {
                let point = settle(certifier.model, pattern, index, domain, a, point);
                let mut passed = 0.0;
                for (i, &wi) in affine.row(j).entries() {
                    let c = wi * (a[i] - point[i]);
                    lower[i] += c;
                    passed += c;
                }
                (RootOutcome::Root { point, t: 1.0 }, passed)
            }
            Answer::None => (RootOutcome::None(NoRoot::NoValidRoot), 0.0),
            _ => (RootOutcome::None(NoRoot::Uncertified), 0.0),
        };
        neurons.push(NeuronRelevance {
            relevance: r,
            outcome,
            unresolved: r - passed,
        });
    }
    LayerRelevance {
        rule,
        upper: upper.to_vec(),
        lower,
        neurons,
    }
}
