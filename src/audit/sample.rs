//! The audit of one input: explain it, rebuild every root of every layer, judge each root's
//! region and domain (in f64 with error bounds and an exact fallback, `float.rs`; or in
//! rationals throughout, here), and certify the roots `--certify` asks about.

use ndarray::Array2;

use crate::check::{Certificate, ExplanationRef};
use crate::dtd::{explain, neuron_root, RootOutcome};
use crate::error::Result;
use crate::exact::{Rational, Scalar};
use crate::lp::certify::{Answer, Certifier, QuestionRelevance, RegionQuestion};
use crate::lp::nearest_valid::{explain_valid, uses_lp};
use crate::model::{forward, Model};
use crate::region::problem::Domain;
use crate::region::{membership, Decision, Membership, Pattern};

use super::float::judge_block;
use super::records::{
    CertifiedAnswer, CertifiedRoot, DomainCheck, LayerRecord, NeuronRecord, RootVerdict,
    SampleRecord,
};
use super::settings::{AuditSettings, CertifySettings, DomainBox};

/// The explained output: a fixed index, or the sample's top output.
pub fn resolve_target(target: Option<usize>, output: &[f64]) -> usize {
    target.unwrap_or_else(|| forward::argmax(output))
}

pub(super) fn domain_check<T: Scalar, U: Scalar>(
    point: &[T],
    layer_index: usize,
    input_box: Option<DomainBox>,
    net: &crate::model::Network<U>,
) -> DomainCheck {
    let Some((lo, hi)) = domain_bounds(layer_index, input_box, net) else {
        return DomainCheck::In;
    };
    let (lo, hi) = (lo.map(T::from_f64), hi.map(T::from_f64));
    for (i, v) in point.iter().enumerate() {
        let below = lo.as_ref().is_some_and(|l| v < l);
        let above = hi.as_ref().is_some_and(|h| v > h);
        if below || above {
            return DomainCheck::Out {
                coordinate: i,
                value: v.to_f64(),
            };
        }
    }
    DomainCheck::In
}

/// The domain of layer `layer_index`'s input, as (lower, upper) bounds of every coordinate:
/// the input box at the network input, `>= 0` above a ReLU; `None` where it is unbounded (a
/// layer without ReLU below, or no box).
pub(super) fn domain_bounds<U: Scalar>(
    layer_index: usize,
    input_box: Option<DomainBox>,
    net: &crate::model::Network<U>,
) -> Option<(Option<f64>, Option<f64>)> {
    if layer_index == 0 {
        input_box.map(|b| (Some(b.lo), Some(b.hi)))
    } else if net.output_nonnegative(layer_index - 1) {
        Some((Some(0.0), None))
    } else {
        None
    }
}

/// Audit one input: explain output `target` (or the top output) and decide every root.
/// Fails (naming the sample) when f64 overflows on this input: a value of the forward pass, a
/// relevance or a root that is not finite cannot be judged.
pub fn audit_sample(
    model: &Model,
    settings: &AuditSettings,
    sample: usize,
    x: &[f64],
    target: Option<usize>,
) -> Result<SampleRecord> {
    audit_sample_certified(model, settings, sample, x, target).map(|(r, _)| r)
}

/// A certificate to be written under the output folder, by file name.
pub type NamedCertificate = (String, Certificate);

/// [`audit_sample`], with the certificates of `--certify` (the records name their files,
/// `certificates/s<sample>_l<layer>_n<neuron>.json`).
pub fn audit_sample_certified(
    model: &Model,
    settings: &AuditSettings,
    sample: usize,
    x: &[f64],
    target: Option<usize>,
) -> Result<(SampleRecord, Vec<NamedCertificate>)> {
    let mut record = plain_audit(model, settings, sample, x, target)?;
    let certificates = match &settings.certify {
        Some(c) => certify_roots(model, settings, c, x, &mut record)?,
        None => Vec::new(),
    };
    Ok((record, certificates))
}

/// Certifies the region question of `c` for the roots of `record` it asks about (those
/// outside their region or domain, or all with `--certify-all`), writing each answer into its
/// neuron's record; returns the certificates to write.
pub(super) fn certify_roots(
    model: &Model,
    settings: &AuditSettings,
    c: &CertifySettings,
    x: &[f64],
    record: &mut SampleRecord,
) -> Result<Vec<NamedCertificate>> {
    let opts = settings.lp.options();
    let text = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| p.display().to_string());
    let certifier = Certifier {
        model,
        opts,
        model_path: text(&c.model_path),
        inputs_path: text(&c.inputs_path),
        cache: Default::default(),
    };
    let mut out = Vec::new();
    let input_box = settings.input_domain();
    let explanation = ExplanationRef {
        output: record.explained,
        settings: settings.dtd.clone(),
    };
    let layers = model.net().layers().len();
    let mut traced: Option<crate::model::Trace<f64>> = None;
    for lr in &mut record.layers {
        // Below a layer whose rule finds its roots with linear programs, the relevance is the
        // recursion's own (f64) at its f64 layer input, both given; elsewhere it is the
        // neuron's relevance in the explanation, which the checker recomputes exactly.
        let given = (lr.layer..layers).any(|l| settings.dtd.rule_for(l).needs_lp());
        let centre = given.then(|| {
            let trace = traced.get_or_insert_with(|| forward::forward(model.net(), x));
            trace.layer_input(lr.layer - 1).to_vec()
        });
        for n in &mut lr.neurons {
            let Some(root) = &n.root else { continue };
            if root.valid && !c.all {
                continue;
            }
            let question = RegionQuestion {
                sample_index: record.sample,
                sample: x.to_vec(),
                layer: lr.layer,
                neuron: Some(n.neuron),
                relevance: Some(match Rational::from_float(n.relevance) {
                    Some(r) if given => QuestionRelevance::Given(r),
                    _ => QuestionRelevance::Explained(explanation.clone()),
                }),
                domain: Domain::of_layer(model.net(), lr.layer, input_box.map(|b| (b.lo, b.hi))),
                problem: c.problem,
                constraint: None,
                centre: centre.clone(),
            };
            let certified = certifier.answer(&question);
            let name = format!(
                "certificates/s{}_l{}_n{}.json",
                record.sample, lr.layer, n.neuron
            );
            let (answer, lower, upper, reason) = match &certified.answer {
                Answer::Found { lower, upper, .. } => {
                    (CertifiedAnswer::ValidRootExists, *lower, *upper, None)
                }
                Answer::None => (CertifiedAnswer::NoValidRoot, None, None, None),
                Answer::Unknown { reason } => {
                    (CertifiedAnswer::Unknown, None, None, Some(reason.clone()))
                }
                other => unreachable!("a root question gave {other:?}"),
            };
            let certificate = certified.certificate.map(|cert| {
                out.push((name.clone(), cert));
                name
            });
            n.certified = Some(CertifiedRoot {
                answer,
                distance_lower: lower,
                distance_upper: upper,
                reason,
                certificate,
            });
        }
    }
    Ok(out)
}

fn plain_audit(
    model: &Model,
    settings: &AuditSettings,
    sample: usize,
    x: &[f64],
    target: Option<usize>,
) -> Result<SampleRecord> {
    if settings.exact && uses_lp(&settings.dtd, model.net().layers().len()) {
        return Err(crate::error::Error::Usage(
            "the nearest-valid rule finds roots with linear programs and cannot run with --exact"
                .into(),
        ));
    }
    let record = if settings.exact {
        audit_exact(model, settings, sample, x, target, Decision::Exact)
    } else {
        super::float::audit_float(model, settings, sample, x, target)?
    };
    if !record.output.is_finite() {
        return Err(overflow(sample, "the explained output"));
    }
    Ok(record)
}

pub(crate) fn overflow(sample: usize, what: &str) -> crate::error::Error {
    crate::error::invalid(format!(
        "sample {sample}: {what} overflows f64, so its roots cannot be judged"
    ))
}

/// The record of a sample from its explanation and the verdicts of its judged roots (per
/// layer, each with its neuron, in neuron order; a root without one is not judged);
/// `explained` is (sample, explained output, its value), `sampled` whether a draw
/// (`--roots-per-layer`) picked the judged roots.
pub(super) fn judged_record<T: Scalar>(
    explanation: &crate::dtd::Explanation<T>,
    verdicts: Vec<Vec<(usize, Judged)>>,
    sampled: bool,
    explained: (usize, usize, f64),
    pattern_decided_by: Decision,
) -> SampleRecord {
    let mut verdicts: Vec<std::iter::Peekable<std::vec::IntoIter<(usize, Judged)>>> = verdicts
        .into_iter()
        .map(|v| v.into_iter().peekable())
        .collect();
    let layers = assemble(explanation, sampled, |index, j, _| {
        verdicts[index]
            .next_if(|(neuron, _)| *neuron == j)
            .map(|(_, judged)| judged)
    });
    let (sample, k, output) = explained;
    SampleRecord {
        sample,
        explained: k,
        output,
        pattern_decided_by,
        layers,
    }
}

/// The neurons of `step` that have a root, in order.
pub(super) fn with_root<T>(step: &crate::dtd::LayerRelevance<T>) -> Vec<usize> {
    (0..step.neurons.len())
        .filter(|&j| matches!(step.neurons[j].outcome, RootOutcome::Root { .. }))
        .collect()
}

/// The neurons of `candidates` (layer `index`'s neurons with a root) that the audit of sample
/// `sample` judges: the draw of `--roots-per-layer`, or every one.
pub(super) fn judged_neurons(
    settings: &AuditSettings,
    sample: usize,
    index: usize,
    candidates: Vec<usize>,
) -> Vec<usize> {
    match settings.root_sample {
        Some(draw) => draw.pick(sample, index, &candidates),
        None => candidates,
    }
}

/// The roots of the `nearest-valid` rule: points the LP root finder found and keeps, judged as
/// the points they are (exact f64 values, so the filter's tiers end in exact arithmetic on
/// them).
pub(super) fn audit_lp_roots(
    model: &Model,
    settings: &AuditSettings,
    sample: usize,
    x: &[f64],
    target: Option<usize>,
    traced: (forward::Trace<f64>, Pattern, Decision),
) -> Result<SampleRecord> {
    let (trace, pattern, pattern_decided_by) = traced;
    let k = resolve_target(target, trace.output());
    let input_box = settings.input_domain();
    let explanation = explain_valid(
        model,
        x,
        &trace,
        &settings.dtd,
        k,
        input_box.map(|b| (b.lo, b.hi)),
        settings.lp.options(),
    );
    let mut verdicts: Vec<Vec<(usize, Judged)>> = Vec::new();
    for (index, step) in explanation.layers.iter().enumerate() {
        // The linear programs found every root; a draw judges some of them.
        let with_root = judged_neurons(settings, sample, index, with_root(step));
        let a = trace.layer_input(index);
        let mut judged = Vec::with_capacity(with_root.len());
        for block in with_root.chunks(ROOTS_PER_BLOCK) {
            let mut points: Vec<f64> = Vec::with_capacity(block.len() * a.len());
            for &j in block {
                let n = &step.neurons[j];
                let point = match &n.outcome {
                    // A root the step kept (the LP root finder keeps its points).
                    RootOutcome::Root { point, .. } if !point.is_empty() => point.clone(),
                    _ => match neuron_root(model.net(), index, j, a, &n.relevance, &settings.dtd) {
                        RootOutcome::Root { point, .. } => point,
                        RootOutcome::None(_) => unreachable!("the same step found a root"),
                    },
                };
                if !n.relevance.is_finite() || point.iter().any(|v| !v.is_finite()) {
                    return Err(overflow(
                        sample,
                        &format!("the root of layer {} neuron {j}", index + 1),
                    ));
                }
                points.extend(point);
            }
            let points = Array2::from_shape_vec((block.len(), a.len()), points)
                .expect("every root has the layer's input width");
            let block_verdicts = judge_block(
                model,
                &pattern,
                index,
                &points,
                None,
                None,
                input_box,
                settings.keep_points,
            );
            judged.extend(
                block_verdicts
                    .into_iter()
                    .zip(block)
                    .map(|(v, &j)| (j, v.expect("exact points are always decided"))),
            );
        }
        verdicts.push(judged);
    }
    Ok(judged_record(
        &explanation,
        verdicts,
        settings.root_sample.is_some(),
        (sample, k, trace.output()[k]),
        pattern_decided_by,
    ))
}

/// The whole sample in exact rationals; every verdict labelled `decided_by` (`Exact` for
/// `--exact`, `ExactFallback` where the f64 bounds sent the sample here).
pub(super) fn audit_exact(
    model: &Model,
    settings: &AuditSettings,
    sample: usize,
    x: &[f64],
    target: Option<usize>,
    decided_by: Decision,
) -> SampleRecord {
    let net = model.exact();
    let xr: Vec<Rational> = x.iter().map(|&v| Rational::from_f64(v)).collect();
    let trace = forward::forward(net, &xr);
    let pattern = Pattern::from_pre(net, &trace.pre);
    let out_f64: Vec<f64> = trace.output().iter().map(Scalar::to_f64).collect();
    let k = resolve_target(target, &out_f64);
    // A draw keeps no roots in the recursion and rebuilds the drawn ones alone.
    let sampled = settings.root_sample.is_some();
    let explanation = explain(net, &trace, &settings.dtd, k, !sampled);
    let picked: Vec<Vec<usize>> = explanation
        .layers
        .iter()
        .enumerate()
        .map(|(index, step)| judged_neurons(settings, sample, index, with_root(step)))
        .collect();
    let input_box = settings.input_domain();
    let layers = assemble(&explanation, sampled, |index, j, point| {
        picked[index].binary_search(&j).ok()?;
        let rebuilt;
        let point = match sampled {
            false => point,
            true => {
                let step = &explanation.layers[index];
                let a = trace.layer_input(index);
                let r = &step.neurons[j].relevance;
                rebuilt = match neuron_root(net, index, j, a, r, &settings.dtd) {
                    RootOutcome::Root { point, .. } => point,
                    RootOutcome::None(_) => unreachable!("the same step found a root"),
                };
                &rebuilt[..]
            }
        };
        let region = membership(net, &pattern, index, point);
        let domain = domain_check(point, index, input_box, net);
        let coords = settings
            .keep_points
            .then(|| point.iter().map(Scalar::to_f64).collect());
        Some((region, domain, decided_by, coords))
    });
    SampleRecord {
        sample,
        explained: k,
        output: out_f64[k],
        pattern_decided_by: decided_by,
        layers,
    }
}

pub(super) type Judged = (Membership, DomainCheck, Decision, Option<Vec<f64>>);

/// Roots rebuilt and judged together: bounds the memory of a wide layer's roots to this many
/// points of the layer's input width.
pub(super) const ROOTS_PER_BLOCK: usize = 1024;

/// Turn an explanation into records, judging each root with `judge(layer_index, neuron,
/// point)` (the point as the explanation kept it: empty where it kept none); a root it gives
/// no verdict is not judged. With `sampled` (a draw picked the judged roots), each layer
/// records how many roots it has and how many were judged.
fn assemble<T: Scalar>(
    explanation: &crate::dtd::Explanation<T>,
    sampled: bool,
    mut judge: impl FnMut(usize, usize, &[T]) -> Option<Judged>,
) -> Vec<LayerRecord> {
    let sum = |v: &[T]| v.iter().fold(T::zero(), |acc, x| acc + x.clone());
    explanation
        .layers
        .iter()
        .enumerate()
        .map(|(index, step)| {
            let neurons = step
                .neurons
                .iter()
                .enumerate()
                .map(|(j, n)| {
                    let (no_root, root) = match &n.outcome {
                        RootOutcome::None(reason) => (Some(*reason), None),
                        RootOutcome::Root { point, .. } => {
                            let verdict = judge(index, j, point).map(
                                |(region, domain, decided_by, point)| RootVerdict {
                                    valid: region.is_inside() && domain == DomainCheck::In,
                                    region,
                                    domain,
                                    decided_by,
                                    point,
                                },
                            );
                            (None, verdict)
                        }
                    };
                    NeuronRecord {
                        neuron: j,
                        relevance: n.relevance.to_f64(),
                        not_judged: no_root.is_none() && root.is_none(),
                        no_root,
                        root,
                        certified: None,
                    }
                })
                .collect::<Vec<NeuronRecord>>();
            let judged = neurons.iter().filter(|n| n.root.is_some()).count();
            let left_out = neurons.iter().filter(|n| n.not_judged).count();
            let (roots_available, roots_judged) = match sampled {
                true => (Some(judged + left_out), Some(judged)),
                false => (None, None),
            };
            let (mut no_root, mut absorbed) = (T::zero(), T::zero());
            for n in &step.neurons {
                match n.outcome {
                    RootOutcome::Root { .. } => absorbed = absorbed + n.unresolved.clone(),
                    RootOutcome::None(_) => no_root = no_root + n.unresolved.clone(),
                }
            }
            let unresolved = no_root.clone() + absorbed.clone();
            LayerRecord {
                layer: index + 1,
                rule: step.rule,
                relevance_in: sum(&step.upper).to_f64(),
                relevance_out: sum(&step.lower).to_f64(),
                unresolved: unresolved.to_f64(),
                no_root_relevance: no_root.to_f64(),
                absorbed: absorbed.to_f64(),
                conservation_error: step.conservation_error().to_f64(),
                roots_available,
                roots_judged,
                neurons,
            }
        })
        .collect()
}
