//! The default audit of one input: relevances and roots in f64, each with a rigorous bound on
//! its distance to the value exact arithmetic computes from the same weights and inputs
//! (`dtd::bounded`); region and domain verdicts that hold for every point within those bounds,
//! so for the exact root; what the bounds cannot settle decided on the exact root, and a sample
//! whose recursion the bounds leave in doubt computed in rationals throughout.

use std::time::Instant;

use ndarray::Array2;

use crate::dtd::bounded::{explain_bounded, neuron_root_bounded, BoundedExplanation, Keep};
use crate::dtd::{
    explain, explain_down_to, neuron_root, root_on_own_face, Explanation, RootOutcome,
};
use crate::error::{Error, Result};
use crate::exact::{Rational, Scalar};
use crate::io::profile::{self, Phase};
use crate::lp::nearest_valid::uses_lp;
use crate::model::{forward, Model};
use crate::region::{
    membership, membership_batch, membership_batch_within, membership_filtered, membership_within,
    membership_within_face, trace_with_errors_if, Decision, Membership, Pattern,
};

use super::records::{DomainCheck, RootVerdict, SampleRecord};
use super::sample::{
    audit_exact, audit_lp_roots, domain_bounds, domain_check, judged_neurons, judged_record,
    overflow, resolve_target, with_root, Judged, ROOTS_PER_BLOCK,
};
use super::settings::{multiply_adds, AuditSettings, DomainBox, EXACT_MULTIPLY_ADDS};

/// [`audit_sample`](super::audit_sample) on the f64 path (the `nearest-valid` rule's roots
/// judged as the points they are).
pub(super) fn audit_float(
    model: &Model,
    settings: &AuditSettings,
    sample: usize,
    x: &[f64],
    target: Option<usize>,
) -> Result<SampleRecord> {
    let traced = profile::timed(Phase::Forward, || traced(model, sample, x))?;
    if uses_lp(&settings.dtd, model.net().layers().len()) {
        let Traced {
            trace,
            pattern,
            decided_by,
            ..
        } = traced;
        return audit_lp_roots(
            model,
            settings,
            sample,
            x,
            target,
            (trace, pattern, decided_by),
        );
    }
    let judged = judge_float(
        model,
        settings,
        (sample, x, target),
        &traced,
        |index, candidates| Some(judged_neurons(settings, sample, index, candidates)),
        false,
    )?;
    Ok(match judged {
        Some(f) => judged_record(
            &f.explanation,
            f.layers.into_iter().map(|(verdicts, _)| verdicts).collect(),
            settings.root_sample.is_some(),
            (sample, f.k, traced.trace.output()[f.k]),
            traced.decided_by,
        ),
        None if !rationals_can_finish(model) => {
            return Err(too_large_to_decide(
                sample,
                model,
                "the relevances and roots",
            ));
        }
        None => profile::timed(Phase::Exact, || {
            audit_exact(model, settings, sample, x, target, Decision::ExactFallback)
        }),
    })
}

/// The roots of one layer of an input's explanation, each with its verdict about the exact
/// root: what the paper's table of roots outside their region reads (`repro mlp-roots`).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerRoots {
    /// The explained output's f64 value (of the forward pass the pattern was decided on).
    pub output: f64,
    /// How the activation pattern of the input was decided.
    pub pattern_decided_by: Decision,
    /// One per neuron of the layer.
    pub neurons: Vec<LayerRoot>,
}

/// A neuron of [`LayerRoots`]: its outcome in the f64 recursion, and the verdict about its
/// exact root. The two have a root together except where the sample needed the recursion in
/// rationals and that took another branch (a denominator at the threshold, a zero relevance).
#[derive(Clone, Debug, PartialEq)]
pub struct LayerRoot {
    /// The f64 recursion's root (its point) or why it has none.
    pub outcome: RootOutcome<f64>,
    /// The verdict about the exact root, as [`audit_sample`](super::audit_sample) gives it;
    /// `None` where the exact recursion has no root.
    pub verdict: Option<RootVerdict>,
}

/// The roots of layer `layer` (0-based) of the explanation of output `k` at input `x`, with
/// their verdicts: [`audit_sample`](super::audit_sample)'s verdicts of that layer, without
/// judging the others.
pub fn audit_layer(
    model: &Model,
    settings: &AuditSettings,
    x: &[f64],
    k: usize,
    layer: usize,
) -> Result<LayerRoots> {
    let traced = traced(model, 0, x)?;
    let from_record = |record: &SampleRecord| {
        let explanation = explain(model.net(), &traced.trace, &settings.dtd, k, true);
        let step = &explanation.layers[layer];
        step.neurons
            .iter()
            .zip(&record.layers[layer].neurons)
            .map(|(n, r)| LayerRoot {
                outcome: n.outcome.clone(),
                verdict: r.root.clone(),
            })
            .collect()
    };
    // `--exact` and the `nearest-valid` rule take the audit's own paths.
    let whole = settings.exact || uses_lp(&settings.dtd, model.net().layers().len());
    let judged = match whole {
        true => None,
        false => judge_float(
            model,
            settings,
            (0, x, Some(k)),
            &traced,
            |i, candidates| (i == layer).then_some(candidates),
            true,
        )?,
    };
    let neurons = match judged {
        Some(mut f) => {
            let (verdicts, points) = std::mem::take(&mut f.layers[layer]);
            let width = traced.trace.layer_input(layer).len();
            let mut verdicts = verdicts.into_iter();
            let mut points = points.chunks(width.max(1));
            f.explanation.layers[layer]
                .neurons
                .iter()
                .map(|n| match n.outcome {
                    RootOutcome::None(reason) => LayerRoot {
                        outcome: RootOutcome::None(reason),
                        verdict: None,
                    },
                    RootOutcome::Root { t, .. } => {
                        let (_, (region, domain, decided_by, coords)) =
                            verdicts.next().expect("one verdict per root");
                        let point = points.next().expect("one row per root").to_vec();
                        LayerRoot {
                            outcome: RootOutcome::Root { point, t },
                            verdict: Some(RootVerdict {
                                valid: region.is_inside() && domain == DomainCheck::In,
                                region,
                                domain,
                                decided_by,
                                point: coords,
                            }),
                        }
                    }
                })
                .collect()
        }
        None if whole => from_record(&super::audit_sample(model, settings, 0, x, Some(k))?),
        None => from_record(&audit_exact(
            model,
            settings,
            0,
            x,
            Some(k),
            Decision::ExactFallback,
        )),
    };
    Ok(LayerRoots {
        output: traced.trace.output()[k],
        pattern_decided_by: traced.decided_by,
        neurons,
    })
}

/// The error for sample `sample` of a network too large for rationals
/// ([`EXACT_MULTIPLY_ADDS`]) when the f64 bounds and the second tier leave `what` undecided:
/// no verdict can be proved, so none is given.
fn too_large_to_decide(sample: usize, model: &Model, what: &str) -> Error {
    Error::Invalid(format!(
        "sample {sample}: the f64 error bounds leave {what} undecided, and the network's {} \
         multiply-adds per forward pass are more than the {EXACT_MULTIPLY_ADDS} the exact \
         fallback can finish; no verdict can be proved for it",
        multiply_adds(model.net())
    ))
}

/// Whether a forward pass of `model` in rationals can finish (at most
/// [`EXACT_MULTIPLY_ADDS`]): past it, what the f64 bounds leave undecided is an error.
fn rationals_can_finish(model: &Model) -> bool {
    multiply_adds(model.net()) <= EXACT_MULTIPLY_ADDS
}

/// A sample's f64 forward pass with its error bounds and its exactly decided pattern.
struct Traced {
    trace: forward::Trace<f64>,
    bounds: Vec<Vec<f64>>,
    pattern: Pattern,
    decided_by: Decision,
}

fn traced(model: &Model, sample: usize, x: &[f64]) -> Result<Traced> {
    // Past EXACT_MULTIPLY_ADDS a forward pass in rationals would not finish: a pattern the
    // bounds leave undecided is an error, not a verdict.
    let fallback = rationals_can_finish(model);
    let Some((trace, bounds, pattern, decided_by)) = trace_with_errors_if(model, x, fallback)
    else {
        return Err(too_large_to_decide(
            sample,
            model,
            "the input's activation pattern",
        ));
    };
    if trace.activations.iter().flatten().any(|v| !v.is_finite()) {
        return Err(overflow(sample, "the forward pass"));
    }
    Ok(Traced {
        trace,
        bounds,
        pattern,
        decided_by,
    })
}

/// What the f64 path judged: the explained output, the explanation, and per layer the
/// verdicts of its judged roots, each with its neuron (neuron order; empty for a layer not
/// judged) and, where asked for, its roots' f64 values (one row each).
struct FloatVerdicts {
    k: usize,
    explanation: Explanation<f64>,
    layers: Vec<(Vec<NeuronVerdict>, Vec<f64>)>,
}

/// A judged root's neuron and its verdict.
type NeuronVerdict = (usize, Judged);

/// The verdicts of the roots `pick` chooses, each about the exact root: `pick(index,
/// candidates)` gives the neurons of 0-based layer `index` to judge among those with a root
/// (in order; `None`: none of the layer). Only the chosen roots are computed. `None` where the
/// sample must be computed in rationals (the bounds leave a branch of the pattern, the top
/// output or the recursion in doubt, or a root only the exact recursion can judge took
/// another branch there). The third argument is (sample, input, explained output); with
/// `keep_values`, the judged roots are returned with their verdicts.
fn judge_float(
    model: &Model,
    settings: &AuditSettings,
    (sample, x, target): (usize, &[f64], Option<usize>),
    traced: &Traced,
    pick: impl Fn(usize, Vec<usize>) -> Option<Vec<usize>>,
    keep_values: bool,
) -> Result<Option<FloatVerdicts>> {
    let Traced {
        trace,
        bounds,
        pattern,
        decided_by,
    } = traced;
    if !matches!(decided_by, Decision::Float | Decision::Compensated) {
        // A ReLU within its bound of zero: the f64 trace may not follow the exact pattern,
        // and its bounds do not hold past it.
        return Ok(None);
    }
    let k = resolve_target(target, trace.output());
    let output_err = bounds.last().expect("a trace has the output");
    if target.is_none() && !certain_argmax(trace.output(), output_err, k) {
        return Ok(None);
    }
    // Where every layer's roots fit in one block and every root is judged, the explanation
    // keeps them; otherwise the judged ones are rebuilt and judged a block at a time below,
    // so a wide image layer never holds all its roots at once, and the roots a draw
    // (`--roots-per-layer`) leaves out are never computed.
    let keep_roots = settings.root_sample.is_none()
        && model
            .net()
            .layers()
            .iter()
            .all(|l| l.affine.out_dim() <= ROOTS_PER_BLOCK);
    // The input relevances' bounds are not needed: nothing is judged below the first layer.
    let keep = Keep {
        roots: keep_roots,
        input_bounds: false,
    };
    let bounded = profile::timed(Phase::Relevances, || {
        explain_bounded(model, trace, bounds, &settings.dtd, k, keep)
    });
    let Some(bounded) = bounded else {
        return Ok(None);
    };
    let BoundedExplanation {
        explanation,
        bounds: layer_bounds,
    } = bounded;
    let input_box = settings.input_domain();
    let mut exact = ExactRoots::new(model, settings, x, k);
    let exact_fallback = rationals_can_finish(model);
    let mut layers = Vec::with_capacity(layer_bounds.len());
    for (index, (step, step_bounds)) in explanation.layers.iter().zip(layer_bounds).enumerate() {
        let Some(with_root) = pick(index, with_root(step)) else {
            layers.push(Default::default());
            continue;
        };
        let (a, a_err) = (trace.layer_input(index), &bounds[index][..]);
        let mut verdicts = Vec::with_capacity(with_root.len());
        let mut values = Vec::new();
        // The layer's roots as the explanation kept them (one block), or rebuilt a block at a
        // time.
        let mut kept = Some((step_bounds.roots, step_bounds.root_errors))
            .filter(|(roots, _)| !roots.is_empty());
        profile::count_roots(index, with_root.len());
        for block in with_root.chunks(ROOTS_PER_BLOCK) {
            let building = Instant::now();
            // The roots' f64 values and error bounds, one row per root.
            let (points, errors) = match kept.take() {
                Some(rows) => rows,
                None => {
                    let mut points: Vec<f64> = Vec::with_capacity(block.len() * a.len());
                    let mut errors: Vec<f64> = Vec::with_capacity(block.len() * a.len());
                    for &j in block {
                        let relevance = (step.neurons[j].relevance, step_bounds.upper[j]);
                        let settings = &settings.dtd;
                        match neuron_root_bounded(model, index, j, (a, a_err), relevance, settings)
                        {
                            Some((RootOutcome::Root { point, .. }, err)) => {
                                points.extend(point);
                                errors.extend(err);
                            }
                            Some((RootOutcome::None(_), _)) => {
                                unreachable!("the same step found a root")
                            }
                            None => return Ok(None),
                        }
                    }
                    (points, errors)
                }
            };
            for (&j, point) in block.iter().zip(points.chunks(a.len().max(1))) {
                if !step.neurons[j].relevance.is_finite() || point.iter().any(|v| !v.is_finite()) {
                    return Err(overflow(
                        sample,
                        &format!("the root of layer {} neuron {j}", index + 1),
                    ));
                }
            }
            let rows = |values: Vec<f64>| {
                Array2::from_shape_vec((block.len(), a.len()), values)
                    .expect("every root has the layer's input width")
            };
            let (points, errors) = (rows(points), rows(errors));
            profile::add(Phase::Roots(index), building.elapsed().as_secs_f64());
            let deciding = Instant::now();
            // The explained output's root sits on its own face: an exact zero no f64 bound
            // settles, known from how the root is built.
            let on_face = match block {
                &[j] => root_on_own_face(model.net(), index, j, &settings.dtd).then_some(j),
                _ => None,
            };
            let block_verdicts = judge_block(
                model,
                pattern,
                index,
                &points,
                Some(&errors),
                on_face,
                input_box,
                settings.keep_points,
            );
            for (verdict, &j) in block_verdicts.into_iter().zip(block) {
                // What the bounds cannot settle, the exact root decides, where rationals can
                // finish.
                if verdict.is_none() && !exact_fallback {
                    profile::add(Phase::Verdicts(index), deciding.elapsed().as_secs_f64());
                    // Blocks of roots are checked in parallel, and the first undecided one
                    // ends the others' checks: this root, or one checked beside it.
                    let what = format!(
                        "the verdict of a root of layer {} (neuron {j}, or one judged beside it)",
                        index + 1
                    );
                    return Err(too_large_to_decide(sample, model, &what));
                }
                match verdict.or_else(|| exact.judge(pattern, index, j)) {
                    Some(verdict) => verdicts.push((j, verdict)),
                    None => return Ok(None),
                }
            }
            profile::add(Phase::Verdicts(index), deciding.elapsed().as_secs_f64());
            if keep_values {
                values.extend(points.iter());
            }
        }
        layers.push((verdicts, values));
    }
    Ok(Some(FloatVerdicts {
        k,
        explanation,
        layers,
    }))
}

/// Judges a block of roots of layer `index` together (one matrix product per layer above).
/// Without `errors` the points are the roots themselves, exact f64 values, and every verdict
/// is decided (the filter's tiers, then rationals on the point). With `errors`, each point
/// stands for an exact root within its errors, and a verdict the bounds cannot settle is
/// `None`: only the exact root can.
///
/// `on_face` names the neuron of layer `index` whose face the single exact root of the block
/// lies on by construction ([`root_on_own_face`]).
#[allow(clippy::too_many_arguments)]
pub(super) fn judge_block(
    model: &Model,
    pattern: &Pattern,
    index: usize,
    points: &Array2<f64>,
    errors: Option<&Array2<f64>>,
    on_face: Option<usize>,
    input_box: Option<DomainBox>,
    keep_points: bool,
) -> Vec<Option<Judged>> {
    let regions: Vec<Option<(Membership, Decision)>> = match (errors, points.nrows()) {
        (None, 1) => vec![Some(membership_filtered(
            model,
            pattern,
            index,
            row(points, 0),
        ))],
        (Some(e), 1) => {
            let (point, err) = (row(points, 0), row(e, 0));
            vec![match on_face {
                Some(j) => membership_within_face(model, pattern, index, point, err, j),
                None => membership_within(model, pattern, index, point, err),
            }]
        }
        (None, _) => membership_batch(model, pattern, index, points)
            .into_iter()
            .map(Some)
            .collect(),
        // Past the rationals' limit the first root left undecided ends the sample's audit
        // (with an error): the other roots of the block need no further look.
        (Some(e), _) => {
            let until_undecided = !rationals_can_finish(model);
            membership_batch_within(model, pattern, index, (points, e), until_undecided)
        }
    };
    regions
        .into_iter()
        .enumerate()
        .map(|(r, region)| {
            let point = row(points, r);
            let domain = match errors {
                None => Some(domain_check(point, index, input_box, model.net())),
                Some(e) => domain_within(point, row(e, r), index, input_box, model.net()),
            };
            let (region, decided_by) = region?;
            Some((
                region,
                domain?,
                decided_by,
                keep_points.then(|| point.to_vec()),
            ))
        })
        .collect()
}

/// Row `r` of a standard-layout array as a slice.
fn row(values: &Array2<f64>, r: usize) -> &[f64] {
    let width = values.ncols();
    &values.as_slice().expect("a standard-layout array")[r * width..(r + 1) * width]
}

/// Whether output `k` certainly exceeds every other output, each exact value within `errors`
/// of the f64 one (the top output of the exact values is then `k` too).
fn certain_argmax(output: &[f64], errors: &[f64], k: usize) -> bool {
    let (top, top_err) = (output[k], errors[k]);
    output.iter().zip(errors).enumerate().all(|(i, (&v, &e))| {
        i == k
            || if top_err == 0.0 && e == 0.0 {
                top > v
            } else {
                // Rounded outwards: the lower end of the top output's interval above the
                // upper end of the other's.
                (top - top_err).next_down() > (v + e).next_up()
            }
    })
}

/// The domain verdict of the exact point that `point` stands for within `error`, when the
/// bounds settle every coordinate's side of the domain's bounds up to the first one outside;
/// `None` otherwise.
fn domain_within(
    point: &[f64],
    error: &[f64],
    layer_index: usize,
    input_box: Option<DomainBox>,
    net: &crate::model::Network,
) -> Option<DomainCheck> {
    let (lo, hi) = match domain_bounds(layer_index, input_box, net) {
        Some(bounds) => bounds,
        None => return Some(DomainCheck::In),
    };
    for (i, (&v, &e)) in point.iter().zip(error).enumerate() {
        let below = match lo {
            Some(l) => below_within(v, e, l)?,
            None => false,
        };
        let above = match hi {
            Some(h) => below_within(-v, e, -h)?,
            None => false,
        };
        if below || above {
            return Some(DomainCheck::Out {
                coordinate: i,
                value: v,
            });
        }
    }
    Some(DomainCheck::In)
}

/// Whether the exact value within `e` of `v` is below `l`, when the bound settles it (as the
/// f64 test `v < l` then answers); `None` when it does not.
fn below_within(v: f64, e: f64, l: f64) -> Option<bool> {
    if e == 0.0 {
        Some(v < l)
    } else if l == 0.0 {
        // The interval's ends against 0, compared exactly.
        if v >= e {
            Some(false)
        } else if -v > e {
            Some(true)
        } else {
            None
        }
    } else if (v + e).next_up() < l {
        // Rounded up, the upper end of the interval is below `l`.
        Some(true)
    } else if (v - e).next_down() >= l {
        Some(false)
    } else {
        None
    }
}

/// The exact twin of one sample, computed on first need: its forward pass and pattern, and
/// the relevances and roots of the layers from the top down to the lowest asked for. Judges
/// the roots whose verdict the f64 bounds leave open.
struct ExactRoots<'a> {
    model: &'a Model,
    settings: &'a AuditSettings,
    x: &'a [f64],
    k: usize,
    trace: Option<forward::Trace<Rational>>,
    /// Layers `lowest..L` of the exact explanation, with their roots.
    layers: Vec<crate::dtd::LayerRelevance<Rational>>,
}

impl<'a> ExactRoots<'a> {
    fn new(model: &'a Model, settings: &'a AuditSettings, x: &'a [f64], k: usize) -> Self {
        Self {
            model,
            settings,
            x,
            k,
            trace: None,
            layers: Vec::new(),
        }
    }

    /// The exact verdict of the root of neuron `j` of layer index `index` in the region of
    /// `pattern`; `None` where the exact recursion finds no root there (the f64 recursion's
    /// branches were then not the exact ones).
    fn judge(&mut self, pattern: &Pattern, index: usize, j: usize) -> Option<Judged> {
        let net = self.model.exact();
        let trace = self.trace.get_or_insert_with(|| {
            let xr: Vec<Rational> = self.x.iter().map(|&v| Rational::from_f64(v)).collect();
            forward::forward(net, &xr)
        });
        let depth = net.layers().len() - index;
        // A draw (`--roots-per-layer`) rebuilds the roots it judges alone.
        let keep_roots = self.settings.root_sample.is_none();
        if self.layers.len() < depth {
            let dtd = &self.settings.dtd;
            self.layers = explain_down_to(net, trace, dtd, self.k, index, keep_roots);
        }
        let offset = self.layers.len() - depth;
        let neuron = &self.layers[offset].neurons[j];
        let rebuilt;
        let point = match (&neuron.outcome, keep_roots) {
            (RootOutcome::None(_), _) => return None,
            (RootOutcome::Root { point, .. }, true) => point,
            (RootOutcome::Root { .. }, false) => {
                let (a, r) = (trace.layer_input(index), &neuron.relevance);
                rebuilt = match neuron_root(net, index, j, a, r, &self.settings.dtd) {
                    RootOutcome::Root { point, .. } => point,
                    RootOutcome::None(_) => unreachable!("the same step found a root"),
                };
                &rebuilt
            }
        };
        let region = membership(net, pattern, index, point);
        let domain = domain_check(point, index, self.settings.input_domain(), net);
        let coords = self
            .settings
            .keep_points
            .then(|| point.iter().map(Scalar::to_f64).collect());
        Some((region, domain, Decision::ExactFallback, coords))
    }
}
