//! The step of an LRP rule without a root form (ε, αβ, flat): each neuron's relevance shared
//! among its inputs in proportion to the rule's contributions.

use super::roots::{negative, positive, stabilize};
use super::rules::{BiasMode, Rule};
use super::settings::DtdSettings;
use crate::exact::Scalar;
use crate::model::ir::WeightRow;

/// One neuron's LRP step over the listed weights of its row (an unlisted input has weight 0
/// and is not connected, so it receives nothing).
#[allow(clippy::too_many_arguments)]
pub(super) fn lrp_step<T: Scalar>(
    rule: Rule,
    row: &WeightRow<'_, T>,
    a: &[T],
    b: &T,
    r: &T,
    settings: &DtdSettings,
    lower: &mut [T],
    passed: &mut T,
) {
    let include = settings.bias != BiasMode::Ignore;
    let stabilizer = T::from_f64(settings.stabilizer);
    let (w, a) = (row.values(), row.gather(a));
    let mut give = |k: usize, c: T| {
        let i = row.position(k);
        *passed = passed.clone() + c.clone();
        lower[i] = lower[i].clone() + c;
    };
    match rule {
        Rule::Epsilon(e) => {
            let mut z = if include { b.clone() } else { T::zero() };
            for (wi, ai) in w.iter().zip(a.iter()) {
                T::mul_add_assign(&mut z, wi, ai);
            }
            let d = stabilize(z, &T::from_f64(e));
            if d.is_zero() {
                return;
            }
            let scale = r.clone() / d;
            for (i, (wi, ai)) in w.iter().zip(a.iter()).enumerate() {
                give(i, wi.clone() * ai.clone() * scale.clone());
            }
        }
        Rule::AlphaBeta { alpha, beta } => {
            let contributions: Vec<T> = w
                .iter()
                .zip(a.iter())
                .map(|(wi, ai)| wi.clone() * ai.clone())
                .collect();
            let mut pos = if include { positive(b) } else { T::zero() };
            let mut neg = if include { negative(b) } else { T::zero() };
            for c in &contributions {
                pos = pos + positive(c);
                neg = neg + negative(c);
            }
            // Each side's denominator is stabilised on its own (sign(0) = +1).
            let (pos, neg) = (stabilize(pos, &stabilizer), stabilize(neg, &stabilizer));
            let (alpha, beta) = (T::from_f64(alpha), T::from_f64(beta));
            for (i, c) in contributions.iter().enumerate() {
                let mut share = T::zero();
                if c.is_positive() && !pos.is_zero() {
                    share = share + alpha.clone() * c.clone() / pos.clone();
                }
                if c.is_negative() && !neg.is_zero() {
                    share = share - beta.clone() * c.clone() / neg.clone();
                }
                if !share.is_zero() {
                    give(i, share * r.clone());
                }
            }
        }
        // Every input the neuron is connected to gets an equal share (a convolution's
        // window, a dense layer's every input).
        Rule::Flat => {
            let n = stabilize(T::from_f64(row.connected() as f64), &stabilizer);
            // A window that covers only padding has no inputs to share with.
            if n.is_zero() {
                return;
            }
            let share = r.clone() / n;
            (0..w.len()).for_each(|k| give(k, share.clone()));
        }
        // Without the LP path the rule passes nothing; the LP layer supplies its roots.
        Rule::NearestValid(_) => {}
        _ => unreachable!("{rule} is a root rule"),
    }
}
