//! The libtorch backend against the exact engine on one model and its inputs: every audit
//! record compared, relevances layer by layer, verdicts root by root, with the differences
//! that floating point allows counted. The tests run it on the CPU; the GPU run
//! (`scripts/gpu_run.sh`) on a CUDA device.

use tch::Device;

use crate::audit::{audit_sample, AuditSettings, DomainCheck, RootVerdict};
use crate::model::forward::forward;
use crate::model::Model;
use crate::region::{Decision, Membership};
use crate::torch::audit::TorchAuditor;
use crate::torch::Precision;

/// What comparing the two engines' audit records found.
#[derive(Clone, Copy, Default, Debug, serde::Serialize)]
pub struct Parity {
    /// Roots both engines found.
    pub roots: usize,
    /// Roots whose verdicts differ (each one with a deciding value below resolution).
    pub differing: usize,
    /// The largest `|value| / (ε S)` among the differing roots' deciding values.
    pub worst_ratio: f64,
    /// The largest relevance difference, relative to the layer's scale.
    pub worst_relevance: f64,
    /// Neurons whose root/no-root outcome differs (a denominator at the threshold).
    pub outcomes: usize,
    /// The largest margin or slack difference of agreeing verdicts, relative to `S`.
    pub worst_margin: f64,
}

/// The values a root's verdict turns on, as the exact engine reports them: the margin of the
/// first violated constraint, the least slack, the distance of the first coordinate outside
/// the domain box from the box.
fn deciding_values(v: &RootVerdict, bounds: (Option<f64>, Option<f64>)) -> Vec<f64> {
    let mut values = Vec::new();
    match v.region {
        Membership::Outside { margin, .. } => values.push(margin),
        Membership::Inside { slack: Some(s) } => values.push(s),
        Membership::Inside { slack: None } => {}
    }
    let point = v.point.as_ref().expect("points are kept");
    let nearest_bound = point
        .iter()
        .flat_map(|&p| [bounds.0.map(|lo| p - lo), bounds.1.map(|hi| hi - p)])
        .flatten()
        .fold(f64::INFINITY, |m, d| m.min(d.abs()));
    if nearest_bound.is_finite() {
        values.push(nearest_bound);
    }
    values
}

/// Audits `xs` with the exact engine (f64 with error bounds) and with the torch backend in
/// `precision` on `device`, and compares every record. Relevances must agree within `tolerance` relative
/// to each layer's scale where `check_relevances`, and so must the margins and slacks of
/// agreeing verdicts (relative to `S`); a verdict may differ only where the exact engine
/// needed exact arithmetic (its f64 bounds could not settle the root or its verdict) or one of
/// either engine's deciding values is within `1024 ε S` of zero (`ε` the precision's unit
/// roundoff, `S` the largest magnitude among the sample's layer inputs and the root).
pub fn compare_audits(
    model: &Model,
    xs: &[Vec<f64>],
    settings: &AuditSettings,
    precision: Precision,
    device: Device,
    tolerance: f64,
    check_relevances: bool,
) -> Result<Parity, String> {
    let settings = AuditSettings {
        keep_points: true,
        ..settings.clone()
    };
    let eps = match precision {
        Precision::F64 => f64::EPSILON / 2.0,
        Precision::F32 => f32::EPSILON as f64 / 2.0,
    };
    let auditor = TorchAuditor::new(model, precision, device);
    let ids: Vec<usize> = (0..xs.len()).collect();
    let targets = vec![None; xs.len()];
    let got = auditor
        .audit(model, &settings, &ids, xs, &targets)
        .map_err(|e| e.to_string())?;
    let mut parity = Parity::default();
    let net = model.net();
    for (i, (x, torch)) in xs.iter().zip(&got).enumerate() {
        let exact = audit_sample(model, &settings, i, x, None).map_err(|e| e.to_string())?;
        if torch.explained != exact.explained {
            return Err(format!(
                "sample {i}: explained {} and {}",
                torch.explained, exact.explained
            ));
        }
        let trace = forward(net, x);
        let size = trace
            .activations
            .iter()
            .flatten()
            .fold(1.0f64, |m, v| m.max(v.abs()));
        for (index, (t, e)) in torch.layers.iter().zip(&exact.layers).enumerate() {
            let scale = e
                .neurons
                .iter()
                .map(|n| n.relevance.abs())
                .sum::<f64>()
                .max(e.relevance_out.abs())
                .max(e.unresolved.abs())
                .max(f64::MIN_POSITIVE);
            let pairs = [
                (t.relevance_in, e.relevance_in),
                (t.relevance_out, e.relevance_out),
                (t.unresolved, e.unresolved),
                (t.absorbed, e.absorbed),
                (t.no_root_relevance, e.no_root_relevance),
            ];
            let neurons = t.neurons.iter().zip(&e.neurons);
            let differences = pairs
                .into_iter()
                .chain(neurons.clone().map(|(a, b)| (a.relevance, b.relevance)));
            // A sample the exact engine computed in exact arithmetic throughout (its f64
            // bounds left a branch of the recursion in doubt: a ReLU, a denominator's sign)
            // may have taken another branch than a floating-point recursion.
            let exact_throughout = exact.pattern_decided_by == Decision::ExactFallback;
            for (a, b) in differences.filter(|_| !exact_throughout) {
                parity.worst_relevance = parity.worst_relevance.max((a - b).abs() / scale);
            }
            if check_relevances && parity.worst_relevance > tolerance {
                return Err(format!(
                    "sample {i} layer {}: relevance error {:e}",
                    index + 1,
                    parity.worst_relevance
                ));
            }
            let bounds = match (index, settings.input_domain()) {
                (0, Some(b)) => (Some(b.lo), Some(b.hi)),
                (0, None) => (None, None),
                _ if net.output_nonnegative(index - 1) => (Some(0.0), None),
                _ => (None, None),
            };
            for (a, b) in neurons {
                match (&a.root, &b.root) {
                    (Some(ta), Some(eb)) => {
                        parity.roots += 1;
                        let point_size = eb
                            .point
                            .as_ref()
                            .unwrap()
                            .iter()
                            .fold(size, |m, v| m.max(v.abs()));
                        let same_domain = match (&ta.domain, &eb.domain) {
                            (
                                DomainCheck::Out {
                                    coordinate: c1,
                                    value: v1,
                                },
                                DomainCheck::Out {
                                    coordinate: c2,
                                    value: v2,
                                },
                            ) => {
                                if c1 == c2 {
                                    let d = (v1 - v2).abs() / point_size;
                                    parity.worst_margin = parity.worst_margin.max(d);
                                }
                                c1 == c2
                            }
                            (a, b) => a == b,
                        };
                        let same = ta.valid == eb.valid
                            && same_domain
                            && match (&ta.region, &eb.region) {
                                (
                                    Membership::Outside {
                                        layer: l1,
                                        neuron: n1,
                                        margin: m1,
                                    },
                                    Membership::Outside {
                                        layer: l2,
                                        neuron: n2,
                                        margin: m2,
                                    },
                                ) => {
                                    let here = l1 == l2 && n1 == n2;
                                    if here {
                                        let d = (m1 - m2).abs() / point_size;
                                        parity.worst_margin = parity.worst_margin.max(d);
                                    }
                                    here
                                }
                                (
                                    Membership::Inside { slack: s1 },
                                    Membership::Inside { slack: s2 },
                                ) => {
                                    if let (Some(s1), Some(s2)) = (s1, s2) {
                                        let d = (s1 - s2).abs() / point_size;
                                        parity.worst_margin = parity.worst_margin.max(d);
                                    }
                                    s1.is_some() == s2.is_some()
                                }
                                _ => false,
                            };
                        if !same {
                            // Either engine's verdict may turn on a value at rounding
                            // distance from zero: the exact engine judges the exact root,
                            // the backend its rounded root (on a face, it may report that
                            // face violated by a rounding error, where the exact root leaves
                            // at another constraint).
                            let ratio = deciding_values(eb, bounds)
                                .into_iter()
                                .chain(deciding_values(ta, bounds))
                                .fold(f64::INFINITY, |m, v| m.min(v.abs()))
                                / (eps * point_size);
                            parity.differing += 1;
                            // The exact engine needed exact arithmetic for this root: its f64
                            // bounds could not settle the root or its verdict, so a
                            // floating-point backend may land on either side.
                            if eb.decided_by == Decision::ExactFallback {
                                continue;
                            }
                            parity.worst_ratio = parity.worst_ratio.max(ratio);
                            if ratio > 1024.0 {
                                return Err(format!(
                                    "sample {i} layer {} neuron {}: verdicts {:?} (torch) and \
                                     {:?} (exact), deciding values {ratio:e} ε S from zero",
                                    index + 1,
                                    b.neuron,
                                    ta,
                                    eb
                                ));
                            }
                        }
                    }
                    (None, None) if a.no_root == b.no_root => {}
                    _ => parity.outcomes += 1,
                }
            }
        }
    }
    if check_relevances && parity.worst_margin > tolerance {
        return Err(format!("margin error {:e}", parity.worst_margin));
    }
    Ok(parity)
}
