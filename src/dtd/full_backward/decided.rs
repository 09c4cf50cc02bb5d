//! Full-backward DTD of an f64 input with every decision about the exact values, as the
//! audit's verdicts are: the recursion runs in midpoint-radius arithmetic ([`Ball`]), whose
//! midpoints are the f64 values bit for bit and whose radii bound their distance to the
//! values exact arithmetic computes from the same weights and input; where a radius leaves a
//! decision in doubt (a face, a relevance's sign, a denominator at the threshold, the top
//! output), the whole input is explained again in rationals.

use super::finder::RuleRoots;
use super::recursion::full_backward;
use super::result::FullBackward;
use super::settings::FullBackwardSettings;
use crate::dtd::DtdSettings;
use crate::error::Result;
use crate::exact::ball::{take_doubt, Ball};
use crate::exact::{Rational, Scalar};
use crate::model::forward::{argmax, forward};
use crate::model::Model;

/// A full-backward explanation from [`full_backward_decided`].
#[derive(Clone, Debug, PartialEq)]
pub enum Decided {
    /// The error bounds settled every decision, so each was the exact one: the explanation
    /// in f64 (exactly what [`full_backward`] computes in f64 from the same input).
    ///
    /// [`full_backward`]: super::full_backward()
    Float(FullBackward<f64>),
    /// A decision the bounds left open: the explanation in exact rationals.
    Exact(FullBackward<Rational>),
}

impl Decided {
    /// The explanation in f64: as computed, or the exact one rounded once.
    pub fn to_f64(&self) -> FullBackward<f64> {
        match self {
            Decided::Float(fb) => fb.clone(),
            Decided::Exact(fb) => fb.to_f64(),
        }
    }
}

/// Full-backward DTD with the rule roots of `dtd` of output `target` (`None`: the top output)
/// at the f64 input `x`, deciding every branch of the recursion (each root's side of its face,
/// each relevance's sign, each denominator against the threshold, the top output) as exact
/// arithmetic does: in f64 with rigorous error bounds, and in rationals for the whole input
/// where a bound leaves a branch in doubt. Its decisions, and so its roots' activations and
/// gradients, are those of the same explanation in rationals.
///
/// Runs on the calling thread (the doubt flag is per thread). Fails as [`full_backward`]
/// does.
///
/// [`full_backward`]: super::full_backward()
pub fn full_backward_decided(
    model: &Model,
    x: &[f64],
    target: Option<usize>,
    dtd: &DtdSettings,
    settings: &FullBackwardSettings,
) -> Result<Decided> {
    take_doubt();
    let net = model.balls();
    let xb: Vec<Ball> = x.iter().map(|&v| Ball::from_f64(v)).collect();
    let k = target.unwrap_or_else(|| {
        let trace = forward(net, &xb);
        let out = trace.output();
        let k = argmax(&out.iter().map(|v| v.mid).collect::<Vec<_>>());
        for (i, v) in out.iter().enumerate() {
            if i != k {
                // Flags doubt unless output k certainly exceeds output i.
                let _ = out[k] > *v;
            }
        }
        k
    });
    let fb = full_backward(net, &xb, k, settings, &RuleRoots::new(net, dtd))?;
    if !take_doubt() {
        return Ok(Decided::Float(fb.to_f64()));
    }
    full_backward_exact(model, x, target, dtd, settings).map(Decided::Exact)
}

/// Full-backward DTD with the rule roots of `dtd` of output `target` (`None`: the top output)
/// at the f64 input `x`, entirely in exact rationals (`--exact`, and the fallback of
/// [`full_backward_decided`]). Fails as [`full_backward`] does.
///
/// [`full_backward`]: super::full_backward()
pub fn full_backward_exact(
    model: &Model,
    x: &[f64],
    target: Option<usize>,
    dtd: &DtdSettings,
    settings: &FullBackwardSettings,
) -> Result<FullBackward<Rational>> {
    let net = model.exact();
    let xr: Vec<Rational> = x.iter().map(|&v| Rational::from_f64(v)).collect();
    let k = target.unwrap_or_else(|| {
        let out: Vec<f64> = forward(net, &xr)
            .output()
            .iter()
            .map(Scalar::to_f64)
            .collect();
        argmax(&out)
    });
    full_backward(net, &xr, k, settings, &RuleRoots::new(net, dtd))
}
