//! Affine values in double-double with a rigorous error bound: each value is an unevaluated
//! sum `hi + lo` of two f64 (`|lo| <= ulp(hi) / 2`), from inputs given the same way.
//!
//! A plain f64 sum of `n` products rounds by up to `γ_n Σ |w_i x_i|`; carried through the
//! layers of a deep network by `Σ |w_i| e_i`, that bound grows by the ratio of `Σ |w_i| |x_i|`
//! to `|Σ w_i x_i|` per layer (20–40 on a 224×224 VGG-16), until signs of ordinary size are in
//! doubt. Here every product is split into its rounded value and its exact error (Dekker's
//! product), the rounded values are added with exact error terms (Knuth's two-sum), and only
//! the sum of those error terms is rounded, so a value's own error is of order
//! `n u · u Σ |w_i x_i|` instead of `n u Σ |w_i x_i|` (Ogita, Rump and Oishi, "Accuracy
//! and fast summation", SIAM J. Sci. Comput. 26(6), 2005: the compensated dot product).
//!
//! # The bound
//!
//! With `u = 2^-53` and `η = 2^-1074`, for weights `w_i` and bias `b` (exact: the model's
//! values) and inputs `x_i + y_i` within `e_i` of the exact `X_i`:
//!
//! - two-sum `(s, t)` of `a` and `b` gives `s + t = a + b` exactly (no overflow);
//! - Dekker's product `(p, q)` of `w` and `x` gives `p + q = w x` exactly when no intermediate
//!   underflows or overflows; that holds when each of `|w|` and `|x|` is 0 or within
//!   `[2^-450, 2^450]` (every partial product is then a normal number of at most 53 bits).
//!   Other products are taken as rounded (`q = 0`), with error at most `u |p| + η`;
//! - `r = fl(w y)` is within `u |r| + η` of `w y`;
//! - the compensation `c` adds the `N <= 3 n + 8` terms `t`, `q` and `r` in f64, within
//!   `γ_N Σ |terms|` of their exact sum; `m`, their absolute sum computed the same way, is at
//!   least `(1 − γ_N)` times the exact one;
//! - the propagated `Σ |w_i| e_i`, computed in f64, is within a factor `1 + γ_{n+1}` of its
//!   exact value, less `n η` for products lost to underflow;
//! - the result `(hi, lo)` is the two-sum of the running sum and `c`, exact.
//!
//! So `|hi + lo − (Σ w_i X_i + b)| <= (γ_N m + u m + 2 u m_r + p_e) / (1 − γ_N) + 4 N η`, with
//! `m_r` the absolute sum of the products taken as rounded and `p_e` the computed propagated
//! sum. The code evaluates `((N + 2) u m + 2 u m_r + p_e) (1 + 2 N u) + 4 N η` and multiplies
//! by `1 + 16 u` for the rounding of the formula itself (`N u < 10^-3` throughout). A result
//! with no rounded term, no rounded product and no propagated error is exact: its bound is 0.

use super::dyadic::ExactSum;

/// Unit roundoff of f64.
const U: f64 = f64::EPSILON / 2.0;
/// The smallest positive subnormal f64.
const ETA: f64 = f64::from_bits(1);
/// Veltkamp's splitting constant, `2^27 + 1`.
const SPLITTER: f64 = 134_217_729.0;
/// Products of operands within `[2^-450, 2^450]` (or 0) split exactly.
const SAFE_LOW: f64 = 3.5e-136;
const SAFE_HIGH: f64 = 2.9e135;

/// A double-double value with a rigorous bound on its distance to the exact value.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct DoubleBounded {
    /// The leading part.
    pub hi: f64,
    /// The trailing part: `hi + lo` is the value.
    pub lo: f64,
    /// A rigorous bound on `|hi + lo − exact|` (0: exact).
    pub error: f64,
}

impl DoubleBounded {
    /// A value whose sign nothing decides: a sum that overflowed, or a NaN among its terms.
    const UNDECIDED: Self = Self {
        hi: f64::NAN,
        lo: 0.0,
        error: f64::INFINITY,
    };

    /// The sign of the exact value when the bound decides it (`Some(0)` only for an exact
    /// zero); `None` when it does not, or a value is not finite.
    pub fn certain_sign(&self) -> Option<i8> {
        if !(self.hi.is_finite() && self.lo.is_finite() && self.error.is_finite()) {
            return None;
        }
        let sign = if self.hi > 0.0 {
            1
        } else if self.hi < 0.0 {
            -1
        } else {
            0
        };
        if self.error == 0.0 {
            // `lo` is 0 where `hi` is, and smaller than half an ulp of `hi` otherwise: `hi`
            // carries the sign.
            return Some(sign);
        }
        // |hi + lo| >= |hi| (1 − u); the product rounds down to at most |hi| (1 − 3u).
        (self.hi.abs() * (1.0 - 4.0 * U) > self.error).then_some(sign)
    }

    /// `self − other` with a bound (the errors of both, and the rounding of the difference).
    pub fn minus(&self, other: &Self) -> Self {
        let (s, t) = two_sum(self.hi, -other.hi);
        let l = self.lo - other.lo;
        let c = t + l;
        let (hi, lo) = two_sum(s, c);
        // `l` and `c` each round by at most u of their magnitude (sums: no underflow error).
        let rounding = if l == 0.0 && c == 0.0 {
            0.0
        } else {
            U * (l.abs() + c.abs()) * (1.0 + 4.0 * U)
        };
        let error = self.error + other.error + rounding;
        Self {
            hi,
            lo,
            // Exact operands whose difference rounded nowhere: exact.
            error: if error == 0.0 { 0.0 } else { up(error) },
        }
    }

    /// The value rounded to f64 (`hi`) and a bound on its distance to the exact value.
    pub fn rounded(&self) -> (f64, f64) {
        (self.hi, up(self.lo.abs() + self.error))
    }

    /// A bound on the distance of `value` to the exact value.
    pub fn distance_from(&self, value: f64) -> f64 {
        if value == self.hi && self.lo == 0.0 {
            return self.error;
        }
        // |value − hi| rounds by at most u of itself.
        let d = (value - self.hi).abs() * (1.0 + 2.0 * U);
        up(d + self.lo.abs() + self.error)
    }
}

/// Knuth's two-sum: `s = fl(a + b)` and `t` with `s + t = a + b` exactly.
#[inline(always)]
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    (s, (a - (s - bb)) + (b - bb))
}

/// Veltkamp's split of `a` into two halves of at most 26 significant bits each.
#[inline(always)]
fn split(a: f64) -> (f64, f64) {
    let c = SPLITTER * a;
    let hi = c - (c - a);
    (hi, a - hi)
}

/// Whether Dekker's product of `a` by anything of the same kind is exact.
#[inline(always)]
fn safe(a: f64) -> bool {
    let m = a.abs();
    m == 0.0 || (SAFE_LOW..=SAFE_HIGH).contains(&m)
}

/// Dekker's product: `p = fl(a b)` and `q` with `p + q = a b` exactly (for safe operands).
#[inline(always)]
fn two_product(a: f64, b: f64) -> (f64, f64) {
    let p = a * b;
    let (ah, al) = split(a);
    let (bh, bl) = split(b);
    (p, ((ah * bh - p) + ah * bl + al * bh) + al * bl)
}

/// Rounds a non-negative bound up over the rounding of the few operations that computed it.
#[inline(always)]
fn up(b: f64) -> f64 {
    b * (1.0 + 16.0 * U) + 4.0 * ETA
}

/// The terms of one dot product as they accumulate.
#[derive(Clone, Copy, Default)]
struct Lane {
    sum: f64,
    compensation: f64,
    /// `Σ |t| + |q| + |r|`.
    magnitude: f64,
    /// `Σ |p|` of the products taken as rounded.
    rounded: f64,
    /// `Σ |w_i| e_i`.
    propagated: f64,
}

/// `Σ w_i (X_i) + b` for exact inputs `X_i` within `errors[i]` of `hi[i] + lo[i]`, where the
/// `k`-th term reads input `position(k)` with weight `weights[k]`: the value as
/// `hi + lo` with a rigorous bound. `errors` empty: exact inputs.
pub fn dot(
    weights: &[f64],
    position: impl Fn(usize) -> usize,
    (hi, lo, errors): (&[f64], &[f64], &[f64]),
    bias: f64,
) -> DoubleBounded {
    let n = weights.len();
    let mut lanes = [Lane::default(); 4];
    let mut exact_terms = true;
    let mut exact_inputs = true;
    for (k, &w) in weights.iter().enumerate() {
        let i = position(k);
        let lane = &mut lanes[k % 4];
        let (x, y) = (hi[i], lo[i]);
        let (p, q) = if safe(w) && safe(x) {
            two_product(w, x)
        } else {
            let p = w * x;
            if p != 0.0 || (w != 0.0 && x != 0.0) {
                lane.rounded += p.abs();
                exact_terms = false;
            }
            (p, 0.0)
        };
        let (s, t) = two_sum(lane.sum, p);
        lane.sum = s;
        let r = w * y;
        if w != 0.0 && y != 0.0 {
            exact_terms = false;
        }
        lane.compensation += (t + q) + r;
        lane.magnitude += (t.abs() + q.abs()) + r.abs();
        if let Some(&e) = errors.get(i) {
            lane.propagated += w.abs() * e;
            exact_inputs &= w == 0.0 || e == 0.0;
        }
    }
    let (mut sum, mut compensation) = two_sum(lanes[0].sum, lanes[1].sum);
    let mut magnitude = compensation.abs();
    for value in [lanes[2].sum, lanes[3].sum, bias] {
        let (s, t) = two_sum(sum, value);
        sum = s;
        compensation += t;
        magnitude += t.abs();
    }
    let (mut rounded, mut propagated) = (0.0, 0.0);
    for lane in &lanes {
        compensation += lane.compensation;
        magnitude += lane.magnitude;
        rounded += lane.rounded;
        propagated += lane.propagated;
    }
    let (hi, lo) = two_sum(sum, compensation);
    let error = if magnitude == 0.0 && exact_terms && exact_inputs {
        0.0
    } else {
        let terms = (3 * n + 8) as f64;
        let b = ((terms + 2.0) * U * magnitude + 2.0 * U * rounded + propagated)
            * (1.0 + 2.0 * terms * U)
            + 4.0 * terms * ETA;
        up(b)
    };
    if !(hi.is_finite() && lo.is_finite() && error.is_finite()) {
        return DoubleBounded::UNDECIDED;
    }
    DoubleBounded { hi, lo, error }
}

/// `Σ w_i (x_i + y_i) + b` of exact inputs `x_i + y_i` (the `k`-th term reads input
/// `position(k)`), summed exactly: `hi + lo` is the exact sum cut to two f64, and `error`
/// bounds the rest, 0 where two f64 hold the sum exactly (an exact zero, and equal sums, are
/// then recognised as such).
pub fn exact_dot(
    weights: &[f64],
    position: impl Fn(usize) -> usize,
    (x, y): (&[f64], &[f64]),
    bias: f64,
) -> DoubleBounded {
    let mut sum = ExactSum::new();
    for (k, &w) in weights.iter().enumerate() {
        let i = position(k);
        sum.add_product(w, x[i]);
        if y[i] != 0.0 {
            sum.add_product(w, y[i]);
        }
    }
    sum.add(bias);
    // Each part is a nearby f64 of what is left (`Dyadic::to_f64`: within a relative 2^-52
    // and 2^-1070 of it), taken away exactly.
    let Some(hi) = sum.value().map(|v| v.to_f64()) else {
        return DoubleBounded::UNDECIDED;
    };
    sum.add(-hi);
    let Some(lo) = sum.value().map(|v| v.to_f64()) else {
        return DoubleBounded::UNDECIDED;
    };
    sum.add(-lo);
    let Some(rest) = sum.value() else {
        return DoubleBounded::UNDECIDED;
    };
    let error = match rest.is_zero() {
        true => 0.0,
        false => rest.to_f64().abs() * (1.0 + 4.0 * f64::EPSILON) + f64::from_bits(16),
    };
    let (hi, lo) = two_sum(hi, lo);
    if !(hi.is_finite() && lo.is_finite() && error.is_finite()) {
        return DoubleBounded::UNDECIDED;
    }
    DoubleBounded { hi, lo, error }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exact::{Rational, Scalar};
    use proptest::prelude::*;

    fn rational_dot(w: &[f64], x: &[f64], y: &[f64], b: f64) -> Rational {
        let mut acc = Rational::from_f64(b);
        for ((&w, &x), &y) in w.iter().zip(x).zip(y) {
            acc += Rational::from_f64(w) * (Rational::from_f64(x) + Rational::from_f64(y));
        }
        acc
    }

    fn distance(v: &DoubleBounded, exact: &Rational) -> Rational {
        (Rational::from_f64(v.hi) + Rational::from_f64(v.lo) - exact.clone()).abs()
    }

    #[test]
    fn cancellation_plain_f64_loses_is_kept() {
        // 1e16 + 1 − 1e16 + 2^-60: plain f64 gives 0.
        let w = [1.0, 1.0, -1.0, 1.0];
        let x = [1e16, 1.0, 1e16, 2f64.powi(-60)];
        let v = dot(&w, |k| k, (&x, &[0.0; 4], &[]), 0.0);
        // The compensation adds exact error terms in f64: the bound is that of their sum.
        assert!(v.error < 1e-14, "{v:?}");
        assert_eq!(v.certain_sign(), Some(1));
        assert_eq!(
            Rational::from_f64(v.hi) + Rational::from_f64(v.lo),
            Rational::from_f64(1.0) + Rational::from_f64(2f64.powi(-60))
        );
    }

    #[test]
    fn an_exact_zero_is_exact_and_a_rounded_product_carries_a_bound() {
        let v = dot(&[2.0, -1.0], |k| k, (&[1.5, 3.0], &[0.0; 2], &[]), 0.0);
        assert_eq!(
            (v.hi, v.lo, v.error, v.certain_sign()),
            (0.0, 0.0, 0.0, Some(0))
        );
        // 0.1 · 3 rounds: the bound is not 0, and tiny against the value.
        let v = dot(&[0.1], |k| k, (&[3.0], &[0.0], &[]), 0.0);
        assert!(v.error > 0.0 && v.error < 1e-30, "{v:?}");
    }

    #[test]
    fn exact_sums_of_exact_inputs_are_exact_where_two_f64_hold_them() {
        // 1 + 2^-60 + 2^-120: three parts, two f64 cannot hold it.
        let x = [1.0, 2f64.powi(-60), 2f64.powi(-120)];
        let v = exact_dot(&[1.0, 1.0, 1.0], |k| k, (&x, &[0.0; 3]), 0.0);
        let exact = exact_dot_value(&x);
        assert!(distance(&v, &exact) <= Rational::from_f64(v.error));
        assert!(v.error > 0.0 && v.error < 1e-35, "{v:?}");
        // 1 + 2^-60 exactly, and the same value from other terms: equal, exactly.
        let a = exact_dot(&[1.0, 1.0], |k| k, (&x[..2], &[0.0; 2]), 0.0);
        let b = exact_dot(&[2.0], |k| k, (&[0.5], &[2f64.powi(-61)]), 0.0);
        assert_eq!((a.error, b.error), (0.0, 0.0));
        assert_eq!(a.minus(&b).certain_sign(), Some(0));
        let zero = exact_dot(
            &[3.0, -1.0],
            |k| k,
            (&[0.1, 0.30000000000000004], &[0.0; 2]),
            0.0,
        );
        let exact = Rational::from_f64(3.0) * Rational::from_f64(0.1)
            - Rational::from_f64(0.30000000000000004);
        assert!(distance(&zero, &exact) <= Rational::from_f64(zero.error));
        let sign = if exact.is_positive() {
            1
        } else if exact.is_negative() {
            -1
        } else {
            0
        };
        assert_eq!(zero.certain_sign(), Some(sign));
    }

    fn exact_dot_value(x: &[f64]) -> Rational {
        x.iter()
            .map(|&v| Rational::from_f64(v))
            .fold(Rational::from_f64(0.0), |a, b| a + b)
    }

    #[test]
    fn tiny_and_huge_operands_are_bounded_as_rounded() {
        let w = [1e-300, 1e200, 1.0];
        let x = [1e-20, 1e-100, -1e100];
        let v = dot(&w, |k| k, (&x, &[0.0; 3], &[]), 0.0);
        let exact = rational_dot(&w, &x, &[0.0; 3], 0.0);
        assert!(distance(&v, &exact) <= Rational::from_f64(v.error));
        assert!(v.error > 0.0);
    }

    proptest! {
        /// The bound holds: the exact dot product of the exact inputs (anywhere within their
        /// errors) is within `error` of `hi + lo`.
        #[test]
        fn the_bound_holds(
            terms in proptest::collection::vec(
                (-1e3f64..1e3, -1e3f64..1e3, -1e-13f64..1e-13, 0f64..1e-10, -1f64..1f64), 1..40),
            bias in -10f64..10.0,
            exact_inputs in any::<bool>(),
        ) {
            let w: Vec<f64> = terms.iter().map(|t| t.0).collect();
            let x: Vec<f64> = terms.iter().map(|t| t.1).collect();
            let y: Vec<f64> = terms.iter().map(|t| t.1 * t.2).collect();
            let e: Vec<f64> = terms.iter().map(|t| if exact_inputs { 0.0 } else { t.3 }).collect();
            let v = dot(&w, |k| k, (&x, &y, &e), bias);
            // An exact input `t.4` of the way to the end of its interval.
            let mut exact = Rational::from_f64(bias);
            for i in 0..w.len() {
                let xi = Rational::from_f64(x[i]) + Rational::from_f64(y[i])
                    + Rational::from_f64(e[i]) * Rational::from_f64(terms[i].4);
                exact += Rational::from_f64(w[i]) * xi;
            }
            prop_assert!(distance(&v, &exact) <= Rational::from_f64(v.error), "{v:?}");
            if exact_inputs {
                let exact = rational_dot(&w, &x, &y, bias);
                prop_assert!(distance(&v, &exact) <= Rational::from_f64(v.error));
                // Compensated: far below the plain f64 bound.
                let magnitude: f64 = w.iter().zip(&x).map(|(w, x)| (w * x).abs()).sum();
                prop_assert!(v.error <= 1e-26 * (magnitude + bias.abs()) + 1e-300, "{v:?}");
            }
        }

        #[test]
        fn the_difference_is_bounded(a in -1e3f64..1e3, b in -1e3f64..1e3, la in -1e-14f64..1e-14, lb in -1e-14f64..1e-14) {
            let x = DoubleBounded { hi: a, lo: a * la, error: 0.0 };
            let y = DoubleBounded { hi: b, lo: b * lb, error: 0.0 };
            let d = x.minus(&y);
            let exact = Rational::from_f64(x.hi) + Rational::from_f64(x.lo)
                - Rational::from_f64(y.hi) - Rational::from_f64(y.lo);
            prop_assert!(distance(&d, &exact) <= Rational::from_f64(d.error));
            if let Some(s) = d.certain_sign() {
                prop_assert_eq!(s as i32, if exact.is_positive() { 1 } else if exact.is_negative() { -1 } else { 0 });
            }
        }
    }
}
