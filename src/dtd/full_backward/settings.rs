//! Settings of full-backward DTD, and the worst-case number of evaluations of the recursion
//! (the module documentation's "Cost") that `max_evaluations` bounds.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::exact::Scalar;
use crate::model::Network;

/// Settings of full-backward DTD (the rules live in [`DtdSettings`], used by [`RuleRoots`]).
///
/// [`DtdSettings`]: crate::dtd::DtdSettings
/// [`RuleRoots`]: super::RuleRoots
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FullBackwardSettings {
    /// Networks whose worst-case number of evaluations per input exceeds this are refused.
    /// Default 1,000,000.
    pub max_evaluations: u64,
    /// `None` (the default): a root is on its neuron's face when its pre-activation is exactly
    /// 0, and takes the activation of the side facing the input; otherwise the sign of its
    /// pre-activation decides. `Some(T)`: a pre-activation within `T · (Σ_i |w_ji ã_ji| +
    /// |b_j|)` of zero counts as on the face too (`Some(0.0)` is the default rule).
    pub face_tolerance: Option<f64>,
}

impl Default for FullBackwardSettings {
    fn default() -> Self {
        Self {
            max_evaluations: 1_000_000,
            face_tolerance: None,
        }
    }
}

impl FullBackwardSettings {
    /// Refuses (as a usage error) a `face_tolerance` that is negative or not finite.
    pub fn validate(&self) -> Result<()> {
        if let Some(t) = self.face_tolerance {
            if !t.is_finite() || t < 0.0 {
                return Err(Error::Usage(format!(
                    "the face tolerance must be a finite number >= 0, got {t}"
                )));
            }
        }
        Ok(())
    }

    /// Refuses a network whose worst-case number of evaluations per input exceeds
    /// `max_evaluations` (what [`full_backward`] checks first), so that a caller can refuse it
    /// before explaining any input.
    ///
    /// [`full_backward`]: super::full_backward()
    pub fn check_network<T: Scalar>(&self, net: &Network<T>) -> Result<()> {
        self.validate()?;
        net.require_relu("full-backward DTD")?;
        check_cost(net, 0, self)
    }
}

/// The most evaluations of the recursion that explaining one input from layer `from` (0-based;
/// 0 for a whole explanation) can take: see the module documentation.
pub fn worst_case_evaluations<T: Scalar>(net: &Network<T>, from: usize) -> u64 {
    let layers = net.layers();
    let mut count: u64 = 1;
    for index in (from..layers.len()).rev() {
        let expanded = if index + 1 == layers.len() {
            1
        } else {
            layers[index].affine.out_dim() as u64
        };
        count = expanded
            .saturating_add(1)
            .saturating_mul(count)
            .saturating_add(1);
    }
    count
}

pub(super) fn check_cost<T: Scalar>(
    net: &Network<T>,
    from: usize,
    settings: &FullBackwardSettings,
) -> Result<()> {
    if let Some(k) = net.layers().iter().position(|l| l.max_pool.is_some()) {
        return Err(Error::Usage(format!(
            "full-backward DTD differentiates relevance functions of ReLU layers, and layer {} \
             max-pools (the train-free recursion passes its relevance winner-take-all)",
            k + 1
        )));
    }
    let worst = worst_case_evaluations(net, from);
    if worst > settings.max_evaluations {
        return Err(Error::Usage(format!(
            "full-backward DTD of the {} network may take {worst} evaluations of the relevance \
             recursion per input (every root re-evaluates all layers above it), more than the \
             limit of {} (--max-evaluations); raise the limit or use train-free DTD",
            net.describe(),
            settings.max_evaluations
        )));
    }
    Ok(())
}
