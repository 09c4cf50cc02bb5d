//! Whether one point lies in the region: exact membership in any scalar (`membership`), the
//! filtered decision for an f64 point (`membership_filtered`: f64 with error bounds, then the
//! filter's second tier, then exact rationals), the first tier's per-constraint checks that
//! batched screening shares, and the signed slack `σ z` of every constraint (bounded in f64, or
//! exact).

use serde::{Deserialize, Serialize};

use crate::exact::filter::Bounded;
use crate::exact::{Rational, Scalar};
use crate::model::{Model, Network};

use super::filter::{bounded_affine_layer, difference, Decision};
use super::pattern::Pattern;
use super::refined;

/// Whether a point lies in the region, and if not, where it leaves it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Membership {
    /// Every constraint holds; `slack` is the smallest `σ z` over them (f64, for reading).
    Inside {
        /// The smallest `σ z`; `None` when the region has no constraints.
        slack: Option<f64>,
    },
    /// The first violated constraint in (layer, neuron) order, 1-based layer, 0-based
    /// neuron, and its `σ z` (negative). In a max-pool layer the neuron is the entry of `z`
    /// that overtakes its window's winner, and the margin `z_winner − z_entry`.
    Outside {
        /// The violated constraint's layer, 1-based.
        layer: usize,
        /// The violated neuron (or max-pool entry) of that layer, 0-based.
        neuron: usize,
        /// The violated constraint's `σ z` (negative), rounded to f64.
        margin: f64,
    },
}

impl Membership {
    /// Whether the point satisfies every constraint.
    pub fn is_inside(&self) -> bool {
        matches!(self, Membership::Inside { .. })
    }

    /// Whether the point is inside and on a face: some constraint holds with equality
    /// (`σ z = 0` exactly; every tier reports a slack of 0 only for an exact zero).
    pub fn on_face(&self) -> bool {
        matches!(self, Membership::Inside { slack: Some(s) } if *s == 0.0)
    }
}

/// An exact slack (`>= 0`) for reading: rounded to f64, but never to 0 unless it is 0, so
/// that a slack of 0 always means a face.
fn slack_for_reading<T: Scalar>(slack: &T) -> f64 {
    let rounded = slack.to_f64();
    if rounded == 0.0 && !slack.is_zero() {
        f64::from_bits(1)
    } else {
        rounded
    }
}

/// Exact membership of `point` (an input of layer `m`, 0-based) in `P_m`, computed in `T`'s
/// arithmetic. With `T = Rational` this is the reference the filtered check must equal.
pub fn membership<T: Scalar>(
    net: &Network<T>,
    pattern: &Pattern,
    m: usize,
    point: &[T],
) -> Membership {
    let mut h = point.to_vec();
    let mut z = Vec::new();
    let mut slack: Option<T> = None;
    for (k, layer) in net.layers().iter().enumerate().skip(m) {
        layer.affine.apply_into(&h, &mut z);
        // The layer's constraints in order, each as (neuron, value that must be >= 0).
        let checks: Vec<(usize, T)> = pattern
            .faces(k)
            .into_iter()
            .map(|face| (face.label(), face.value(&z, &layer.activation)))
            .collect();
        for (neuron, signed) in checks {
            if signed.is_negative() {
                return Membership::Outside {
                    layer: k + 1,
                    neuron,
                    margin: signed.to_f64(),
                };
            }
            if slack.as_ref().is_none_or(|s| signed < *s) {
                slack = Some(signed);
            }
        }
        h = pattern.pass(k, layer, std::mem::take(&mut z));
    }
    Membership::Inside {
        slack: slack.as_ref().map(slack_for_reading),
    }
}

/// Membership of an f64 point decided exactly: f64 with error bounds first, then the
/// filter's second tier (`refined::affine_layer`), then exact rationals, each only when
/// the one before leaves a sign that matters undecided.
pub fn membership_filtered(
    model: &Model,
    pattern: &Pattern,
    m: usize,
    point: &[f64],
) -> (Membership, Decision) {
    match bounded_membership(
        model,
        pattern,
        m,
        BoundedPoint::exact(point),
        bounded_affine_layer,
    ) {
        Some(verdict) => (verdict, Decision::Float),
        None => refined_or_exact(model, pattern, m, point),
    }
}

/// Membership of the exact point that `point` stands for within `point_err` (a bound on each
/// coordinate's distance to it): decided by the filter's first tier or, where that leaves a
/// sign undecided, its second, each with the point's own error carried through every layer.
/// `None` when neither settles it: only the exact point can.
pub fn membership_within(
    model: &Model,
    pattern: &Pattern,
    m: usize,
    point: &[f64],
    point_err: &[f64],
) -> Option<(Membership, Decision)> {
    within(model, pattern, m, point, point_err, None)
}

/// [`membership_within`] for an exact point known to lie on the face of neuron `neuron` of
/// layer `m` (its pre-activation is exactly 0 there, as the explained output's own root is by
/// construction): that constraint holds with equality, and the layers above take the neuron's
/// value as an exact 0.
pub fn membership_within_face(
    model: &Model,
    pattern: &Pattern,
    m: usize,
    point: &[f64],
    point_err: &[f64],
    neuron: usize,
) -> Option<(Membership, Decision)> {
    within(model, pattern, m, point, point_err, Some(neuron))
}

fn within(
    model: &Model,
    pattern: &Pattern,
    m: usize,
    point: &[f64],
    point_err: &[f64],
    face: Option<usize>,
) -> Option<(Membership, Decision)> {
    let bounded = |layer_values| {
        let inputs = BoundedPoint {
            point,
            point_err,
            face,
        };
        bounded_membership(model, pattern, m, inputs, layer_values)
    };
    if let Some(verdict) = bounded(bounded_affine_layer) {
        return Some((verdict, Decision::Float));
    }
    bounded(refined::affine_layer).map(|verdict| (verdict, Decision::Refined))
}

/// [`membership_filtered`] past its first tier.
pub(super) fn refined_or_exact(
    model: &Model,
    pattern: &Pattern,
    m: usize,
    point: &[f64],
) -> (Membership, Decision) {
    if let Some(verdict) = bounded_membership(
        model,
        pattern,
        m,
        BoundedPoint::exact(point),
        refined::affine_layer,
    ) {
        return (verdict, Decision::Refined);
    }
    let exact: Vec<Rational> = point.iter().map(|&v| Rational::from_f64(v)).collect();
    (
        membership(model.exact(), pattern, m, &exact),
        Decision::ExactFallback,
    )
}

/// An affine layer evaluated in f64 from inputs with error bounds: its values and theirs.
type LayerValues = fn(&crate::model::Affine, &[f64], &[f64]) -> (Vec<f64>, Vec<f64>);

/// A point of layer `m`'s input space as the bounded check reads it: f64 values, a bound on
/// each one's distance to the exact point (empty: exact), and a neuron of layer `m` on whose
/// face the exact point is known to lie.
#[derive(Clone, Copy)]
struct BoundedPoint<'a> {
    point: &'a [f64],
    point_err: &'a [f64],
    face: Option<usize>,
}

impl<'a> BoundedPoint<'a> {
    fn exact(point: &'a [f64]) -> Self {
        Self {
            point,
            point_err: &[],
            face: None,
        }
    }
}

/// Membership with every layer evaluated by `layer_values`, from a point with per-coordinate
/// error bounds; `None` when a sign that matters is undecided.
fn bounded_membership(
    model: &Model,
    pattern: &Pattern,
    m: usize,
    inputs: BoundedPoint<'_>,
    layer_values: LayerValues,
) -> Option<Membership> {
    let net = model.net();
    let mut h = inputs.point.to_vec();
    let mut h_err: Vec<f64> = inputs.point_err.to_vec();
    let mut slack = f64::INFINITY;
    let mut any_constraint = false;
    let settle = |checked: Result<f64, State>, slack: &mut f64, any: &mut bool| match checked {
        Ok(signed) => {
            *any = true;
            *slack = slack.min(signed);
            Ok(())
        }
        Err(State::Outside {
            layer,
            neuron,
            margin,
        }) => Err(Some(Membership::Outside {
            layer,
            neuron,
            margin,
        })),
        Err(_) => Err(None),
    };
    for (k, layer) in net.layers().iter().enumerate().skip(m) {
        let (mut z, mut e) = layer_values(&layer.affine, &h, &h_err);
        if let Some(j) = inputs.face.filter(|_| k == m) {
            (z[j], e[j]) = (0.0, 0.0);
        }
        // Checked in order: a violated constraint is the first one.
        for face in pattern.faces(k) {
            let checked = settle_sign(face.bounded(&z, &e, &layer.activation), k + 1, face.label());
            if let Err(ended) = settle(checked, &mut slack, &mut any_constraint) {
                return ended;
            }
        }
        (h, h_err) = pattern.pass_bounded(k, layer, z, e);
    }
    Some(Membership::Inside {
        slack: any_constraint.then_some(slack),
    })
}

#[derive(Clone, Copy, PartialEq)]
pub(super) enum State {
    Pending,
    Outside {
        layer: usize,
        neuron: usize,
        margin: f64,
    },
    NeedsExact,
}

/// Constraint `(layer, neuron)` of a pending point, `σ z >= 0` with `z = value ± error`:
/// `Ok(σ z)` when it certainly holds, else the state that ends the point's check (checked in
/// order, it is then the first violated constraint, or a sign only exact arithmetic settles).
pub(super) fn constraint(
    layer: usize,
    neuron: usize,
    active: bool,
    value: f64,
    error: f64,
) -> Result<f64, State> {
    let signed = Bounded {
        value: if active { value } else { -value },
        error,
    };
    settle_sign(signed, layer, neuron)
}

/// A constraint's `σ z` decided by its sign: `Ok` when it certainly holds (strictly, or as an
/// exact zero: a face), `Outside` when it certainly fails, `NeedsExact` otherwise. A value
/// that may be 0 or positive is undecided too: whether the point is on a face is part of the
/// verdict.
fn settle_sign(signed: Bounded, layer: usize, neuron: usize) -> Result<f64, State> {
    match signed.certain_sign() {
        Some(1) | Some(0) => Ok(signed.value),
        Some(_) => Err(State::Outside {
            layer,
            neuron,
            margin: signed.value,
        }),
        None => Err(State::NeedsExact),
    }
}

/// Max-pool constraint `z[s] − z[o] >= 0` of a pending point, as [`constraint`] does for a
/// ReLU neuron; labelled by the entry `o`.
pub(super) fn window_constraint(
    layer: usize,
    z: &[f64],
    e: &[f64],
    s: usize,
    o: usize,
) -> Result<f64, State> {
    settle_sign(difference(z, e, s, o), layer, o)
}

/// `σ z` (`σ (z − c)` at a Clip bound) of every constraint of `P_m` (in (layer, neuron) order,
/// as the rows of [`polytope`](super::polytope())) at a point given in f64 with
/// per-coordinate error bounds (`point_err` empty: exact), each with a rigorous bound on its
/// distance to the exact value.
pub fn signed_slacks_bounded(
    model: &Model,
    pattern: &Pattern,
    m: usize,
    point: &[f64],
    point_err: &[f64],
) -> Vec<Bounded> {
    let mut h = point.to_vec();
    let mut h_err = point_err.to_vec();
    let mut out = Vec::new();
    for (k, layer) in model.net().layers().iter().enumerate().skip(m) {
        let (z, e) = bounded_affine_layer(&layer.affine, &h, &h_err);
        out.extend(
            pattern
                .faces(k)
                .into_iter()
                .map(|face| face.bounded(&z, &e, &layer.activation)),
        );
        (h, h_err) = pattern.pass_bounded(k, layer, z, e);
    }
    out
}

/// [`signed_slacks_bounded`] in exact rationals.
pub fn signed_slacks_exact(
    net: &Network<Rational>,
    pattern: &Pattern,
    m: usize,
    point: &[Rational],
) -> Vec<Rational> {
    let mut h = point.to_vec();
    let mut z = Vec::new();
    let mut out = Vec::new();
    for (k, layer) in net.layers().iter().enumerate().skip(m) {
        layer.affine.apply_into(&h, &mut z);
        out.extend(
            pattern
                .faces(k)
                .into_iter()
                .map(|face| face.value(&z, &layer.activation)),
        );
        h = pattern.pass(k, layer, std::mem::take(&mut z));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::tests::tiny;
    use crate::region::trace_and_pattern;

    #[test]
    fn face_points_are_inside_and_decided_exactly() {
        let model = tiny();
        let (_, pattern, _) = trace_and_pattern(&model, &[1.0, 0.5]);
        // On the face x0 - x1 = 0 of neuron (1, 0).
        let (m, _) = membership_filtered(&model, &pattern, 0, &[0.3, 0.3]);
        assert!(m.is_inside(), "{m:?}");
        let (m, _) = membership_filtered(&model, &pattern, 0, &[0.3, 0.4]);
        assert_eq!(
            m,
            Membership::Outside {
                layer: 1,
                neuron: 0,
                margin: 0.3 - 0.4
            }
        );
    }

    #[test]
    fn a_point_known_to_be_on_a_face_is_on_it_whatever_its_error() {
        let model = tiny();
        let (_, pattern, _) = trace_and_pattern(&model, &[1.0, 0.5]);
        // Within 1e-12 of the face x0 - x1 = 0 of neuron (1, 0): the bound cannot tell on
        // which side, or whether on it.
        let (point, err) = ([0.3, 0.3], [1e-12, 1e-12]);
        assert_eq!(membership_within(&model, &pattern, 0, &point, &err), None);
        let (m, decided_by) = membership_within_face(&model, &pattern, 0, &point, &err, 0).unwrap();
        assert!(m.on_face(), "{m:?}");
        assert_eq!(decided_by, Decision::Float);
        // The other constraints are still checked: (1, 1) is 0.5 x0 + x1 - 0.25 >= 0.
        let (m, _) = membership_within_face(&model, &pattern, 0, &[0.1, 0.1], &err, 0).unwrap();
        assert!(!m.is_inside(), "{m:?}");
    }
}
