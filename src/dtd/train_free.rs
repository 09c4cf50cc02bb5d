//! The train-free recursion: from the explained output down, each layer's relevances passed
//! to its inputs by the layer's rule, through roots (`roots.rs`), LRP shares
//! (`lrp.rs`) or, at a max-pool layer, to each window's winner.

use super::explanation::{Explanation, LayerRelevance, NeuronRelevance, NoRoot, RootOutcome};
use super::lrp::lrp_step;
use super::roots::{root_step, RootRule};
use super::rules::{InitialRelevance, Rule};
use super::settings::DtdSettings;
use crate::exact::Scalar;
use crate::model::ir::Layer;
use crate::model::{Network, Trace};

/// Train-free DTD/LRP of output `k` at the traced input. With `keep_roots` false, roots are
/// not materialised (relevances only).
pub fn explain<T: Scalar>(
    net: &Network<T>,
    trace: &Trace<T>,
    settings: &DtdSettings,
    k: usize,
    keep_roots: bool,
) -> Explanation<T> {
    Explanation {
        explained: k,
        layers: explain_down_to(net, trace, settings, k, 0, keep_roots),
    }
}

/// The layers of [`explain`] from layer index `lowest` (0-based) up, in order: the recursion
/// stops there, so the relevances and roots of an upper layer cost only the layers above it.
pub fn explain_down_to<T: Scalar>(
    net: &Network<T>,
    trace: &Trace<T>,
    settings: &DtdSettings,
    k: usize,
    lowest: usize,
    keep_roots: bool,
) -> Vec<LayerRelevance<T>> {
    descend(
        net,
        trace,
        k,
        settings.initial_relevance,
        lowest,
        |index, a, upper| {
            let rule = settings.rule_for(index);
            let layer = &net.layers()[index];
            if let Some(window) = layer.max_pool {
                return winner_take_all(layer, window, a, upper, rule);
            }
            layer_step(layer, a, upper, rule, settings, keep_roots)
        },
    )
}

/// The train-free recursion from output `k` (starting as `initial` says) down, with each
/// layer's step given by `step(layer index, layer input, upper relevances)`: [`explain`] uses
/// the rule steps; other root finders (the LP-based `nearest-valid`) supply their own for some
/// layers.
pub fn explain_with<T: Scalar>(
    net: &Network<T>,
    trace: &Trace<T>,
    k: usize,
    initial: InitialRelevance,
    step: impl FnMut(usize, &[T], &[T]) -> LayerRelevance<T>,
) -> Explanation<T> {
    Explanation {
        explained: k,
        layers: descend(net, trace, k, initial, 0, step),
    }
}

/// The recursion of [`explain_with`] from the top down to layer index `lowest`; the layers
/// from `lowest` up, in order.
fn descend<T: Scalar>(
    net: &Network<T>,
    trace: &Trace<T>,
    k: usize,
    initial: InitialRelevance,
    lowest: usize,
    mut step: impl FnMut(usize, &[T], &[T]) -> LayerRelevance<T>,
) -> Vec<LayerRelevance<T>> {
    let layers = net.layers();
    let mut upper: Vec<T> = vec![T::zero(); net.output_dim()];
    upper[k] = match initial {
        InitialRelevance::Output => trace.output()[k].clone(),
        InitialRelevance::One => T::one(),
    };
    let mut out: Vec<LayerRelevance<T>> = Vec::with_capacity(layers.len() - lowest);
    for index in (lowest..layers.len()).rev() {
        let step = step(index, trace.layer_input(index), &upper);
        upper.clone_from(&step.lower);
        out.push(step);
    }
    out.reverse();
    out
}

/// One layer: neuron relevances `upper` → input relevances, with roots. An identity neuron
/// ([`Layer::identity`]) passes its relevance whole to the input it copies, whatever the rule,
/// and has no root.
pub fn layer_step<T: Scalar>(
    layer: &Layer<T>,
    a: &[T],
    upper: &[T],
    rule: Rule,
    settings: &DtdSettings,
    keep_roots: bool,
) -> LayerRelevance<T> {
    let affine = &layer.affine;
    let n_in = affine.in_dim();
    let mut lower = vec![T::zero(); n_in];
    let mut neurons = Vec::with_capacity(upper.len());
    let threshold = T::from_f64(settings.denominator_threshold);
    let stabilizer = T::from_f64(settings.stabilizer);
    let root_rule = rule.has_root().then(|| RootRule::new(rule));
    let identities = layer.identities();
    for (j, r) in upper.iter().enumerate() {
        if r.is_zero() {
            neurons.push(NeuronRelevance {
                relevance: r.clone(),
                outcome: RootOutcome::None(NoRoot::ZeroRelevance),
                unresolved: T::zero(),
            });
            continue;
        }
        if let Some(i) = identities[j] {
            neurons.push(pass_whole(i, r, &mut lower));
            continue;
        }
        let w = affine.row(j);
        let b = affine.bias(j);
        let mut passed = T::zero();
        let outcome = if let Some(root_rule) = &root_rule {
            root_step(
                root_rule,
                &w,
                a,
                b,
                r,
                settings,
                &threshold,
                &stabilizer,
                keep_roots,
                &mut lower,
                &mut passed,
                None,
            )
        } else {
            lrp_step(rule, &w, a, b, r, settings, &mut lower, &mut passed);
            RootOutcome::None(NoRoot::NotApplicable)
        };
        neurons.push(NeuronRelevance {
            relevance: r.clone(),
            unresolved: T::plus(r, &-passed),
            outcome,
        });
    }
    LayerRelevance {
        rule,
        upper: upper.to_vec(),
        lower,
        neurons,
    }
}

/// A max-pool layer: each window's relevance goes whole to the input its winner copies (the
/// first largest entry), so nothing is left unresolved and no neuron has a root. `rule` is
/// only recorded.
pub fn winner_take_all<T: Scalar>(
    layer: &Layer<T>,
    window: usize,
    a: &[T],
    upper: &[T],
    rule: Rule,
) -> LayerRelevance<T> {
    let mut z = Vec::with_capacity(layer.affine.out_dim());
    layer.affine.apply_into(a, &mut z);
    let (_, selected) = crate::model::ir::max_pool(&z, window);
    let mut lower = vec![T::zero(); a.len()];
    let neurons = upper
        .iter()
        .zip(&selected)
        .map(|(r, &s)| {
            let i = layer.gathered(s as usize);
            lower[i] = lower[i].clone() + r.clone();
            NeuronRelevance {
                relevance: r.clone(),
                outcome: RootOutcome::None(if r.is_zero() {
                    NoRoot::ZeroRelevance
                } else {
                    NoRoot::NotApplicable
                }),
                unresolved: T::zero(),
            }
        })
        .collect();
    LayerRelevance {
        rule,
        upper: upper.to_vec(),
        lower,
        neurons,
    }
}

/// An identity neuron's step ([`Layer::identity`]): relevance `r` passed whole to input `i`
/// (added to `lower`), nothing unresolved, no root.
pub(crate) fn pass_whole<T: Scalar>(i: usize, r: &T, lower: &mut [T]) -> NeuronRelevance<T> {
    lower[i] = lower[i].clone() + r.clone();
    NeuronRelevance {
        relevance: r.clone(),
        outcome: RootOutcome::None(NoRoot::NotApplicable),
        unresolved: T::zero(),
    }
}
