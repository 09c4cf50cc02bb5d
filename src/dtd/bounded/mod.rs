//! The train-free recursion in f64 with a-priori error bounds: every relevance and root
//! coordinate exactly as the f64 recursion computes it (the same operations in the same order,
//! so the values are the f64 explanation's bit for bit), each with a rigorous bound on its
//! distance to the value exact arithmetic computes from the same weights and layer inputs.
//!
//! # The bounds
//!
//! Write `u = 2^-53` (f64's unit roundoff) and `η = 2^-1074` (its smallest subnormal). In
//! round-to-nearest, without overflow (every value is checked for finiteness by the caller):
//!
//! - (S) a sum or difference satisfies `|fl(x ± y) − (x ± y)| <= u |fl(x ± y)|`: the error is
//!   at most half a unit in the last place of the result, which is `<= u |fl(x ± y)|` for a
//!   normal result, and a sum whose result is subnormal is exact;
//! - (P) a product or quotient satisfies `|fl(x ∘ y) − x ∘ y| <= u |fl(x ∘ y)| + η/2` (the
//!   second term for a result in the subnormal range; `η/2` is not an f64, so the bounds add
//!   `η`), and is exact when an operand of a product (the dividend of a quotient) is 0;
//! - (D) a dot product of `n` terms summed in any order satisfies
//!   `|fl(Σ w_i x_i) − Σ w_i X_i| <= γ_n Σ |w_i x_i| + Σ |w_i| |x_i − X_i| + n η/2`, with
//!   `γ_n = n u / (1 − n u)` (Higham, "Accuracy and Stability of Numerical Algorithms",
//!   §3.1); [`ErrorModel::bound_of_sum`] evaluates it from the computed sum of
//!   `γ |w_i x_i| + |w_i| e_i` (`γ` for `n + 2` terms, the computed products in place of the
//!   exact ones), inflated over its own rounding, with an absolute term for underflow.
//!
//! A bound is itself computed in f64, from non-negative terms: each short formula below
//! (at most eight operations, at most four of them products) is passed through `up`, which
//! multiplies by `1 + 16 u` (covering a relative rounding of `(1 − u)^k`, `k <= 15`) and adds
//! `4 η` (covering up to four products that underflow, `η/2` each), so the computed bound is
//! at least the exact one. Exact zeros stay exact, decided by the operands (never by a
//! computed bound, which may have underflowed): an exact 0 times anything is an exact 0, a
//! sum that rounds to 0 is exact, so a neuron whose input is an exact 0 (a ReLU certainly off)
//! passes an exact 0 on, and a zero relevance is recognised as exactly zero.
//!
//! For neuron `j` with weights `w` (exact), bias `b` (exact), relevance `r` within `e_r` of
//! `R`, layer input `a` within `e_a` of `A`, the f64 code computes, and the bounds are:
//!
//! 1. the direction `v_i = φ(w_i, a_i)` within `e_v,i` of `V_i = φ(w_i, A_i)` (`Direction`);
//! 2. `wv = Σ fl(w_i v_i)` (four partial sums, as the f64 step adds them) within `e_wv` of
//!    `Σ w_i V_i`, by (D); 0 where every product is an exact 0 (`w_i = 0`, or `v_i` and
//!    `e_v,i` both 0);
//! 3. the bias term `β` within `e_β` of its exact value (`beta_error`), and
//!    `s = fl(wv + β)` within `e_s = up(e_wv + e_β + u |s|)`, by (S) (0 where the terms are
//!    exact and `s = 0`);
//! 4. with a stabiliser `ε`, `d = fl(s ± ε)` by the sign of `s`, which must be the sign of
//!    the exact `S` (certain: `|s| > e_s`, or `e_s = 0`), within `e_d = up(e_s + u |d|)`;
//! 5. the threshold test `|d| <= θ` agrees with `|D| <= θ` when `e_d = 0`, when
//!    `|d| − e_d > θ` (then `|D| > θ`: a root), or when `|d| + e_d <= θ` (no root); else the
//!    branch is in doubt;
//! 6. `t = fl(r / d)` within `e_t = up(2u|t| + η + (e_r + q e_d) / f)`, where
//!    `f <= |d| − e_d <= |D|` and `q = fl(|t|(1 + 4u) + 2η) >= (|t| + η/2) / (1 − u) >= |r/d|`
//!    (by (P), `|r/d| (1 − u) − η/2 <= |t|`): since
//!    `|r/d − R/D| = |r (D − d) + d (r − R)| / |d D| <= (|r/d| e_d + e_r) / |D|`, and
//!    `|t − r/d| <= u |r/d| + η/2` by (P). The rule `0` has `t = 1` exactly;
//! 7. `tv_i = fl(t v_i)` within `e_tv,i = up(ρ + (|t| + e_t) e_v,i + |v_i| e_t)`, where
//!    `ρ = u |tv_i| + η` is the rounding of (P) (0 when `v_i` is 0):
//!    `|T V − t v| <= |T| |V − v| + |v| |T − t| <= (|t| + e_t) e_v + |v| e_t`; an exact 0 where
//!    `v_i` and `e_v,i` are;
//! 8. the root `p_i = fl(a_i − tv_i)` within `up(e_a,i + e_tv,i + u |p_i|)` by (S), an exact
//!    `a_i` where `tv_i` is an exact 0 and `a_i` exact (the rule `0`'s root is the origin,
//!    exactly);
//! 9. each input's relevance `Σ_j fl(w_ji tv_ji)`, summed over the neurons in order, within
//!    the bound of (D) with `x = tv` and `e = e_tv` (0 where every term is an exact 0:
//!    `w_ji = 0`, or `e_tv,ji = 0`, which makes `tv_ji` an exact 0 too).
//!
//! A branch the bounds leave in doubt (a zero relevance, the stabiliser's sign, the
//! threshold) makes [`explain_bounded`] give `None`: the exact recursion could go the other
//! way there. Layers without roots (max pooling, the LRP rules) are computed in
//! midpoint-radius arithmetic ([`Ball`]), whose midpoints are the same f64 values.
//!
//! [`ErrorModel::bound_of_sum`]: crate::exact::filter::ErrorModel::bound_of_sum

mod step;

use super::explanation::{Explanation, LayerRelevance, NeuronRelevance, NoRoot, RootOutcome};
use super::rules::{InitialRelevance, Rule};
use super::settings::DtdSettings;
use super::train_free::{layer_step, pass_whole, winner_take_all};
use crate::exact::ball::{take_doubt, Ball};
use crate::model::ir::Layer;
use crate::model::{Model, Trace};
pub(super) use step::beta_error;
use step::{LowerSums, RootLayer};

/// Bounds on one layer's relevances, and its roots with theirs: each bound is on the distance
/// of the f64 value at the same place to the exact value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LayerBounds {
    /// One per relevance of the layer's `upper`.
    pub upper: Vec<f64>,
    /// One per relevance of the layer's `lower` (the first layer's only with
    /// [`Keep::input_bounds`]).
    pub lower: Vec<f64>,
    /// With [`Keep::roots`], the roots of the neurons that have one, in neuron order, one row of
    /// the layer's input width each (row after row); empty otherwise.
    pub roots: Vec<f64>,
    /// One per coordinate of `roots`.
    pub root_errors: Vec<f64>,
}

/// What [`explain_bounded`] keeps besides the relevances of every layer and the bounds of
/// those the recursion reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Keep {
    /// Each layer's roots, with their bounds, in its [`LayerBounds`].
    pub roots: bool,
    /// The bounds of the input relevances (the first layer's `lower`; empty otherwise).
    pub input_bounds: bool,
}

/// An f64 explanation with its error bounds, layer by layer.
#[derive(Clone, Debug, PartialEq)]
pub struct BoundedExplanation {
    /// The explanation, equal to the f64 [`explain`](super::explain)'s without kept roots bit
    /// for bit (the roots are in `bounds`).
    pub explanation: Explanation<f64>,
    /// One per layer, in network order.
    pub bounds: Vec<LayerBounds>,
}

/// [`explain`](super::explain) in f64 at the traced input, with a rigorous bound on the
/// distance of every relevance and kept root coordinate to what exact arithmetic computes
/// from the same weights and the exact layer inputs. `errors[l]` bounds the distance of each
/// value of `trace.activations[l]` to its exact value (the pattern of the trace must be the
/// exact one). `None` where a branch of the recursion (a zero relevance, a denominator at the
/// threshold, the stabiliser's sign, a max-pool winner) is in doubt, or a bound overflows.
/// `keep` says what to keep besides: each layer's roots and their bounds in its
/// [`LayerBounds`] (as the rows of [`explain`](super::explain)'s kept roots), the bounds of
/// the input relevances.
pub fn explain_bounded(
    model: &Model,
    trace: &Trace<f64>,
    errors: &[Vec<f64>],
    settings: &DtdSettings,
    k: usize,
    keep: Keep,
) -> Option<BoundedExplanation> {
    let net = model.net();
    let layers = net.layers();
    let mut upper = vec![0.0; net.output_dim()];
    let mut upper_err = vec![0.0; net.output_dim()];
    match settings.initial_relevance {
        InitialRelevance::Output => {
            upper[k] = trace.output()[k];
            upper_err[k] = errors.last()?[k];
        }
        InitialRelevance::One => upper[k] = 1.0,
    }
    let mut steps = Vec::with_capacity(layers.len());
    let mut bounds = Vec::with_capacity(layers.len());
    for index in (0..layers.len()).rev() {
        let (a, a_err) = (trace.layer_input(index), &errors[index][..]);
        let rule = settings.rule_for(index);
        let layer = &layers[index];
        let (step, b) = if layer.max_pool.is_none() && rule.has_root() {
            bounded_layer_step(
                layer,
                (a, a_err),
                (&upper, &upper_err),
                rule,
                settings,
                Keep {
                    roots: keep.roots,
                    input_bounds: index > 0 || keep.input_bounds,
                },
            )?
        } else {
            let (step, mut b) =
                ball_layer_step(model, index, (a, a_err), (&upper, &upper_err), settings)?;
            if index == 0 && !keep.input_bounds {
                b.lower.clear();
            }
            (step, b)
        };
        upper.clone_from(&step.lower);
        upper_err.clone_from(&b.lower);
        steps.push(step);
        bounds.push(b);
    }
    steps.reverse();
    bounds.reverse();
    Some(BoundedExplanation {
        explanation: Explanation {
            explained: k,
            layers: steps,
        },
        bounds,
    })
}

/// The root of neuron `j` of 0-based layer `index` at the layer input `a` (each value within
/// its bound in `a_err`) with relevance `r` (within `r_err`), exactly as [`explain_bounded`]
/// with [`Keep::roots`] computes it, with the bound of each coordinate; `None` where a branch is
/// in doubt. The layer must have roots (a root rule, no max pooling).
pub fn neuron_root_bounded(
    model: &Model,
    index: usize,
    j: usize,
    input: (&[f64], &[f64]),
    relevance: (f64, f64),
    settings: &DtdSettings,
) -> Option<(RootOutcome<f64>, Vec<f64>)> {
    let layer = &model.net().layers()[index];
    if model.net().identity(index, j).is_some() {
        return Some((RootOutcome::None(NoRoot::NotApplicable), Vec::new()));
    }
    let affine = &layer.affine;
    let layer = RootLayer::new(affine, settings.rule_for(index), settings);
    let n = input.0.len();
    let mut lower = vec![0.0; n];
    let mut sums = LowerSums::new(n, affine.out_dim());
    let mut passed = 0.0;
    let (mut point, mut errors) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let outcome = layer.neuron(
        j,
        input,
        relevance,
        (&mut lower, Some(&mut sums), &mut passed),
        Some((&mut point, &mut errors)),
    )?;
    Some(match outcome {
        RootOutcome::Root { t, .. } => (RootOutcome::Root { point, t }, errors),
        none => (none, Vec::new()),
    })
}

/// One layer of a root rule, as [`layer_step`] computes it, with bounds (of the layer's
/// input relevances only where `keep.input_bounds`).
fn bounded_layer_step(
    layer: &Layer,
    input: (&[f64], &[f64]),
    relevance: (&[f64], &[f64]),
    rule: Rule,
    settings: &DtdSettings,
    keep: Keep,
) -> Option<(LayerRelevance<f64>, LayerBounds)> {
    let (upper, upper_err) = relevance;
    let affine = &layer.affine;
    let n_in = affine.in_dim();
    let mut lower = vec![0.0; n_in];
    let mut sums = LowerSums::new(n_in, affine.out_dim());
    let mut neurons = Vec::with_capacity(upper.len());
    // Room for a root of every neuron with a relevance, so that the rows are not moved as
    // they grow.
    let capacity = match keep.roots {
        true => upper.iter().filter(|r| **r != 0.0).count() * n_in,
        false => 0,
    };
    let (mut roots, mut root_errors) = (Vec::with_capacity(capacity), Vec::with_capacity(capacity));
    let root_layer = RootLayer::new(affine, rule, settings);
    let identities = layer.identities();
    for (j, (&r, &r_err)) in upper.iter().zip(upper_err).enumerate() {
        if certainly_zero(r, r_err)? {
            neurons.push(NeuronRelevance {
                relevance: r,
                outcome: RootOutcome::None(NoRoot::ZeroRelevance),
                unresolved: 0.0,
            });
            continue;
        }
        if let Some(i) = identities[j] {
            if keep.input_bounds {
                sums.pass_whole(i, r, r_err);
            }
            neurons.push(pass_whole(i, &r, &mut lower));
            continue;
        }
        let mut passed = 0.0;
        let kept = keep.roots.then_some((&mut roots, &mut root_errors));
        let sums = keep.input_bounds.then_some(&mut sums);
        let outcome =
            root_layer.neuron(j, input, (r, r_err), (&mut lower, sums, &mut passed), kept)?;
        neurons.push(NeuronRelevance {
            relevance: r,
            unresolved: r + -passed,
            outcome,
        });
    }
    let lower_err = match keep.input_bounds {
        true => sums.bounds(),
        false => Vec::new(),
    };
    Some((
        LayerRelevance {
            rule,
            upper: upper.to_vec(),
            lower,
            neurons,
        },
        LayerBounds {
            upper: upper_err.to_vec(),
            lower: lower_err,
            roots,
            root_errors,
        },
    ))
}

/// A layer without roots (max pooling, an LRP rule) in midpoint-radius arithmetic: the same
/// f64 values as the f64 step, each with the radius of its ball as its bound.
fn ball_layer_step(
    model: &Model,
    index: usize,
    input: (&[f64], &[f64]),
    relevance: (&[f64], &[f64]),
    settings: &DtdSettings,
) -> Option<(LayerRelevance<f64>, LayerBounds)> {
    let balls = |(values, errors): (&[f64], &[f64])| -> Vec<Ball> {
        values
            .iter()
            .zip(errors)
            .map(|(&v, &e)| Ball::new(v, e))
            .collect()
    };
    let (a, upper) = (balls(input), balls(relevance));
    let layer = &model.balls().layers()[index];
    let rule = settings.rule_for(index);
    take_doubt();
    let step = match layer.max_pool {
        Some(window) => winner_take_all(layer, window, &a, &upper, rule),
        None => layer_step(layer, &a, &upper, rule, settings, false),
    };
    if take_doubt() {
        return None;
    }
    let mids = |v: &[Ball]| v.iter().map(|b| b.mid).collect::<Vec<f64>>();
    let rads = |v: &[Ball]| v.iter().map(|b| b.rad).collect::<Vec<f64>>();
    let bounds = LayerBounds {
        upper: rads(&step.upper),
        lower: rads(&step.lower),
        ..LayerBounds::default()
    };
    let neurons = step
        .neurons
        .iter()
        .map(|n| NeuronRelevance {
            relevance: n.relevance.mid,
            outcome: match &n.outcome {
                RootOutcome::None(reason) => RootOutcome::None(*reason),
                RootOutcome::Root { .. } => unreachable!("a layer without roots found one"),
            },
            unresolved: n.unresolved.mid,
        })
        .collect();
    Some((
        LayerRelevance {
            rule: step.rule,
            upper: mids(&step.upper),
            lower: mids(&step.lower),
            neurons,
        },
        bounds,
    ))
}

/// Whether the exact value within `error` of `value` is 0, when the bound settles it (as the
/// f64 test `value == 0` then answers); `None` when it does not, or a value is not finite.
fn certainly_zero(value: f64, error: f64) -> Option<bool> {
    if !(value.is_finite() && error.is_finite()) {
        return None;
    }
    if error == 0.0 {
        return Some(value == 0.0);
    }
    (value.abs() > error).then_some(false)
}

#[cfg(test)]
mod tests;
