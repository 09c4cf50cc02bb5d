//! Rigorous error bounds for f64 evaluation of affine maps: the float filter.
//!
//! The standard model of floating-point arithmetic (Higham, "Accuracy and Stability of
//! Numerical Algorithms", 2nd ed., §3.1) gives, for a sum of `n` rounded products evaluated
//! left to right, `|fl(Σ w_i x_i) − Σ w_i x_i| <= γ_n Σ |w_i x_i|` with `γ_n = n u / (1 − n u)`
//! and `u = 2^-53`, as long as no product underflows. Underflow adds at most half the smallest
//! subnormal per product, which the bound below adds as an absolute term. The bound itself is
//! computed in f64, so it is inflated once more by a relative and an absolute margin that
//! cover its own rounding. A sign is trusted only when the computed value is farther from zero
//! than this bound; everything else goes to exact rational arithmetic.

/// Unit roundoff of f64 (round to nearest).
const UNIT_ROUNDOFF: f64 = f64::EPSILON / 2.0;
/// The smallest positive subnormal f64.
const TINY: f64 = f64::from_bits(1);

/// `γ_n = n u / (1 − n u)`.
pub fn gamma(n: usize) -> f64 {
    let nu = n as f64 * UNIT_ROUNDOFF;
    assert!(nu < 0.5, "error bound requested for a sum of {n} terms");
    nu / (1.0 - nu)
}

/// An f64 value with a bound on its distance to the exact value it stands for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bounded {
    /// The computed f64 value.
    pub value: f64,
    /// A rigorous bound on `|value − exact|` (0 when the value is exact).
    pub error: f64,
}

impl Bounded {
    /// A value known to be exact (error bound 0).
    pub fn exact(value: f64) -> Self {
        Self { value, error: 0.0 }
    }

    /// The sign of the exact value, when the bound decides it: `Some(1)`, `Some(-1)` or
    /// `Some(0)` (only for an error-free zero); `None` when the bound straddles zero or a
    /// value or bound is not finite (an overflowed sum can have either sign).
    pub fn certain_sign(&self) -> Option<i8> {
        if !(self.value.is_finite() && self.error.is_finite()) {
            return None;
        }
        if self.error == 0.0 {
            return Some(if self.value > 0.0 {
                1
            } else if self.value < 0.0 {
                -1
            } else {
                0
            });
        }
        if self.value > self.error {
            Some(1)
        } else if self.value < -self.error {
            Some(-1)
        } else {
            None
        }
    }

    /// Whether the exact value is certainly `>= 0` (`Some(true)`), certainly `< 0`
    /// (`Some(false)`), or undecided (also when a value or bound is not finite: an overflowed
    /// sum can be `+inf` with a negative exact value).
    pub fn certainly_nonnegative(&self) -> Option<bool> {
        if !(self.value.is_finite() && self.error.is_finite()) {
            return None;
        }
        if self.value >= self.error {
            Some(true)
        } else if self.value < -self.error {
            Some(false)
        } else {
            None
        }
    }
}

/// `Σ w_i x_i + b` in f64 with a rigorous bound on the distance to the exact value of
/// `Σ w_i X_i + b`, where the exact inputs satisfy `|X_i − x_i| <= x_err[i]` (`None`: the inputs
/// are exact). Weights and bias are exact by construction (they are the model's values).
pub fn affine_bounded(w: &[f64], x: &[f64], x_err: Option<&[f64]>, b: f64) -> Bounded {
    debug_assert_eq!(w.len(), x.len());
    let n = w.len();
    // Four independent partial sums (the bound holds for any order of summation).
    let mut value = [0.0f64; 4];
    let mut magnitude = [0.0f64; 4];
    // A product is an exact zero only when an operand is; a tiny product that underflowed to
    // zero still counts (the bound's absolute term covers it).
    let mut all_zero_products = true;
    let (w4, x4) = (w.chunks_exact(4), x.chunks_exact(4));
    let (w_rest, x_rest) = (w4.remainder(), x4.remainder());
    for (wc, xc) in w4.zip(x4) {
        for lane in 0..4 {
            let p = wc[lane] * xc[lane];
            value[lane] += p;
            magnitude[lane] += p.abs();
            all_zero_products &= wc[lane] == 0.0 || xc[lane] == 0.0;
        }
    }
    for (wi, xi) in w_rest.iter().zip(x_rest) {
        let p = wi * xi;
        value[0] += p;
        magnitude[0] += p.abs();
        all_zero_products &= *wi == 0.0 || *xi == 0.0;
    }
    let value = (value[0] + value[1]) + (value[2] + value[3]) + b;
    let magnitude = (magnitude[0] + magnitude[1]) + (magnitude[2] + magnitude[3]) + b.abs();
    let mut propagated = 0.0;
    // Exact inputs only where every error that meets a non-zero weight is itself zero: a
    // computed sum of tiny errors may underflow to 0.0 without being one.
    let mut exact_inputs = true;
    if let Some(e) = x_err {
        for (wi, ei) in w.iter().zip(e) {
            propagated += wi.abs() * ei;
            exact_inputs &= *wi == 0.0 || *ei == 0.0;
        }
    }
    if all_zero_products && exact_inputs {
        // The sum is `0 + … + 0 + b`, which f64 computes exactly.
        return Bounded::exact(value);
    }
    Bounded {
        value,
        error: ErrorModel::new(n).bound(magnitude, propagated),
    }
}

/// The constants of the error bound for affine evaluations with `n` products, computed once
/// per layer.
#[derive(Clone, Copy, Debug)]
pub struct ErrorModel {
    gamma: f64,
    inflate: f64,
    underflow: f64,
}

impl ErrorModel {
    /// The constants for sums of `n` products plus a bias; panics when `(n + 4) u >= 1/2`.
    pub fn new(n: usize) -> Self {
        let terms = n + 2;
        Self {
            gamma: gamma(terms),
            // Both computed sums are themselves within a factor (1 + γ) of their exact values.
            inflate: 1.0 + 4.0 * gamma(terms + 2),
            underflow: (4 * terms) as f64 * TINY,
        }
    }

    /// The bound from the computed `Σ |w_i x_i| + |b|` and `Σ |w_i| e_i`.
    #[inline]
    pub fn bound(&self, magnitude: f64, propagated: f64) -> f64 {
        (self.gamma * magnitude + propagated) * self.inflate + self.underflow
    }

    /// `γ` of the bound, for sums that accumulate `γ |w_i x_i| + |w_i| e_i` term by term.
    #[inline]
    pub fn gamma(&self) -> f64 {
        self.gamma
    }

    /// The bound from the computed `Σ (γ |w_i x_i| + |w_i| e_i)` (with [`Self::gamma`]),
    /// accumulated term by term: the same bound as [`Self::bound`], whose inflation covers
    /// the rounding of either sum (one more product and sum per term is within its margin)
    /// and whose absolute term the products' underflow.
    #[inline]
    pub fn bound_of_sum(&self, sum: f64) -> f64 {
        sum * self.inflate + self.underflow
    }

    /// The bound of `fl(w · x + b)` evaluated in any order (a blocked matrix product, with or
    /// without fused multiply-adds), from upper bounds on `‖w‖₂`, `‖x‖₂` and the Euclidean
    /// norm of the inputs' own errors: Cauchy–Schwarz bounds both `Σ |w_i x_i|` and
    /// `Σ |w_i| e_i`.
    #[inline]
    pub fn bound_from_norms(&self, w_norm: f64, x_norm: f64, b: f64, err_norm: f64) -> f64 {
        self.bound(w_norm * x_norm + b.abs(), w_norm * err_norm)
    }
}

/// A rigorous upper bound on the Euclidean norm of `x`, from its computed value: covers the
/// rounding of the squares, the sum (in any order: four partial sums here) and the square
/// root, and squares lost to underflow.
pub fn norm_upper(x: &[f64]) -> f64 {
    let mut lanes = [0.0f64; 4];
    let chunks = x.chunks_exact(4);
    let rest = chunks.remainder();
    for c in chunks {
        for (lane, v) in lanes.iter_mut().zip(c) {
            *lane += v * v;
        }
    }
    for v in rest {
        lanes[0] += v * v;
    }
    norm_from_squares((lanes[0] + lanes[1]) + (lanes[2] + lanes[3]), x.len())
}

/// [`norm_upper`] of the values an iterator yields.
pub fn norm_upper_iter(x: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut n) = (0.0f64, 0usize);
    for v in x {
        sum += v * v;
        n += 1;
    }
    norm_from_squares(sum, n)
}

/// The bound of [`norm_upper`] from the computed sum of `n` squares.
fn norm_from_squares(sum: f64, n: usize) -> f64 {
    sum.sqrt() * (1.0 + 2.0 * gamma(n + 4)) + (n as f64).sqrt() * 1.5e-154
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exact::{Rational, Scalar};

    /// `3e308 − 1.5e308 − 1.6e308` is `+inf` in f64 (the first product overflows and the
    /// others are added to it), but its exact value is negative: an infinite value or bound
    /// decides nothing.
    #[test]
    fn an_overflowed_sum_decides_no_sign() {
        let mut w = [0.0; 9];
        let mut x = [0.0; 9];
        (w[0], x[0]) = (2.0, 1.5e308);
        (w[4], x[4]) = (-1.5, 1e308);
        (w[8], x[8]) = (-1.6, 1e308);
        let b = affine_bounded(&w, &x, None, 0.0);
        assert_eq!(b.value, f64::INFINITY);
        assert_eq!(b.certainly_nonnegative(), None);
        assert_eq!(b.certain_sign(), None);
        let nan = Bounded {
            value: f64::NAN,
            error: 0.0,
        };
        assert_eq!(
            (nan.certain_sign(), nan.certainly_nonnegative()),
            (None, None)
        );
    }

    #[test]
    fn bound_covers_cancellation() {
        // 1e16 + 1 - 1e16 loses the 1 in f64.
        let w = [1.0, 1.0, -1.0];
        let x = [1e16, 1.0, 1e16];
        let r = affine_bounded(&w, &x, None, 0.0);
        let exact = Rational::from_f64(1.0);
        let diff = (Rational::from_f64(r.value) - exact).abs();
        assert!(diff <= Rational::from_f64(r.error));
        assert_eq!(
            r.certain_sign(),
            None,
            "the sign of 1 is not decidable from {r:?}"
        );
    }

    #[test]
    fn exact_zero_products_give_zero_error() {
        let r = affine_bounded(&[0.0, 2.0], &[5.0, 0.0], None, 0.0);
        assert_eq!(r, Bounded::exact(0.0));
        assert_eq!(r.certain_sign(), Some(0));
    }

    #[test]
    fn underflowed_products_are_not_exact_zeros() {
        // 1e-200 * 1e-200 underflows to 0 in f64, but the exact product is positive.
        let r = affine_bounded(&[1e-200], &[1e-200], None, 0.0);
        assert_eq!(r.value, 0.0);
        assert!(r.error > 0.0);
        assert_eq!(r.certain_sign(), None);
        assert_eq!(r.certainly_nonnegative(), None);
    }

    #[test]
    fn batched_bounds_cover_the_exact_error() {
        let w = [0.1, -0.3, 0.7, 1e-3];
        let x = [3.0, 1.0 / 3.0, -2.5, 1e5];
        let b = 0.2;
        let mut value = 0.0;
        // Any summation order is covered: reversed here.
        for (wi, xi) in w.iter().zip(&x).rev() {
            value += wi * xi;
        }
        value += b;
        let bound =
            ErrorModel::new(w.len()).bound_from_norms(norm_upper(&w), norm_upper(&x), b, 0.0);
        let exact = w
            .iter()
            .zip(&x)
            .fold(Rational::from_f64(b), |acc, (wi, xi)| {
                acc + Rational::from_f64(*wi) * Rational::from_f64(*xi)
            });
        assert!((Rational::from_f64(value) - exact).abs() <= Rational::from_f64(bound));
    }

    #[test]
    fn clear_cases_are_decided() {
        let r = affine_bounded(&[1.0, 2.0], &[3.0, 4.0], None, -1.0);
        assert_eq!(r.value, 10.0);
        assert_eq!(r.certain_sign(), Some(1));
        assert_eq!(r.certainly_nonnegative(), Some(true));
    }
}
