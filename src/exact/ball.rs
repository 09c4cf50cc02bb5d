//! Midpoint-radius arithmetic: an f64 value with a rigorous bound on its distance to the
//! exact value it stands for, carried through every operation (running error analysis).
//!
//! [`Ball`] implements [`Scalar`], so the forward pass, the rules and the roots run on it from
//! the same source as in f64 and in rationals. Its midpoint is computed by exactly the f64
//! operations the f64 code performs, in the same order, so a ball's midpoint equals the f64
//! result bit for bit; its radius bounds `|midpoint − exact|`, where the exact value is what
//! rational arithmetic computes from the same (exact) f64 weights and inputs.
//!
//! The radius of each operation adds the inputs' propagated error and the rounding of the
//! operation itself (`|fl(x) − x| <= u |fl(x)|` for a sum, plus half the smallest subnormal
//! for a product or quotient), and is itself computed with an upward margin that covers its
//! own rounding. A quotient whose divisor's ball contains 0 has an infinite radius.
//!
//! Code written over [`Scalar`] also branches on values (`is_zero`, `is_positive`, `<`). A
//! ball answers by its midpoint, as f64 would; when the radius leaves the answer about the
//! exact value in doubt, it says so on this thread's doubt flag ([`take_doubt`]), and the
//! caller must then not trust what it computed (the audit computes that sample exactly).
//! Computations whose doubt is read must run on one thread.

use std::cell::Cell;
use std::cmp::Ordering;
use std::ops::{Add, Div, Mul, Neg, Sub};

use super::Scalar;

/// Unit roundoff of f64 (round to nearest).
const U: f64 = f64::EPSILON / 2.0;
/// The smallest positive subnormal f64: a bound on the absolute rounding error of a product
/// or quotient that underflows (twice the true bound, half of it).
const TINY: f64 = f64::from_bits(1);

thread_local! {
    static DOUBT: Cell<bool> = const { Cell::new(false) };
}

/// Whether a ball on this thread answered a comparison whose exact answer its radius left
/// in doubt since the last call; clears the flag.
pub fn take_doubt() -> bool {
    DOUBT.with(|d| d.replace(false))
}

fn doubt() {
    DOUBT.with(|d| d.set(true));
}

/// `x` rounded up past the rounding of the few additions and one product that computed it:
/// every radius below is a sum of at most four non-negative terms, each with a relative
/// error of at most a few `u`.
fn up(x: f64) -> f64 {
    if x.is_nan() {
        return f64::INFINITY;
    }
    // A computed sum of non-negative terms is 0 only when every term is: nothing to cover.
    if x == 0.0 {
        return 0.0;
    }
    x * (1.0 + 16.0 * U) + TINY
}

/// An f64 midpoint and a radius: the exact value lies in `[mid − rad, mid + rad]`.
#[derive(Clone, Copy, Debug)]
pub struct Ball {
    /// The value f64 arithmetic computes.
    pub mid: f64,
    /// A rigorous bound on `|mid − exact|` (0: `mid` is exact; infinite: no bound).
    pub rad: f64,
}

impl Ball {
    /// A ball around `mid` of radius `rad`.
    pub fn new(mid: f64, rad: f64) -> Self {
        Self { mid, rad }
    }

    /// Whether the ball is exactly 0 (midpoint 0, radius 0).
    pub fn is_exact_zero(&self) -> bool {
        self.mid == 0.0 && self.rad == 0.0
    }

    /// The sign of the exact value when the radius settles it: `Some(1)`, `Some(-1)`, or
    /// `Some(0)` for an exact zero; `None` when the ball contains 0 (or is not finite).
    pub fn certain_sign(&self) -> Option<i8> {
        if !(self.mid.is_finite() && self.rad.is_finite()) {
            return None;
        }
        if self.rad == 0.0 {
            return Some(if self.mid > 0.0 {
                1
            } else if self.mid < 0.0 {
                -1
            } else {
                0
            });
        }
        if self.mid > self.rad {
            Some(1)
        } else if self.mid < -self.rad {
            Some(-1)
        } else {
            None
        }
    }

    /// The sign of the midpoint, flagging doubt where the exact value's sign may differ.
    fn sign_checked(&self) -> Ordering {
        if self.rad == 0.0 {
            // An exact value: its sign is the exact sign.
            return self.mid.partial_cmp(&0.0).unwrap_or(Ordering::Equal);
        }
        let by_mid = self.mid.partial_cmp(&0.0).unwrap_or(Ordering::Equal);
        let certain = self.certain_sign().map(|s| s.cmp(&0));
        if certain != Some(by_mid) {
            doubt();
        }
        by_mid
    }
}

impl PartialEq for Ball {
    fn eq(&self, other: &Self) -> bool {
        self.partial_cmp(other) == Some(Ordering::Equal)
    }
}

impl PartialOrd for Ball {
    /// Orders by midpoints, flagging doubt where the exact values may order otherwise.
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some((*self - *other).sign_checked())
    }
}

impl Add for Ball {
    type Output = Ball;
    fn add(self, b: Ball) -> Ball {
        let mid = self.mid + b.mid;
        let rounding = if mid.is_finite() {
            U * mid.abs()
        } else {
            f64::INFINITY
        };
        Ball::new(mid, up(self.rad + b.rad + rounding))
    }
}

impl Sub for Ball {
    type Output = Ball;
    fn sub(self, b: Ball) -> Ball {
        self + (-b)
    }
}

impl Neg for Ball {
    type Output = Ball;
    fn neg(self) -> Ball {
        Ball::new(-self.mid, self.rad)
    }
}

impl Mul for Ball {
    type Output = Ball;
    fn mul(self, b: Ball) -> Ball {
        let mid = self.mid * b.mid;
        if self.is_exact_zero() || b.is_exact_zero() {
            // 0 times a finite value is exactly 0 (`mid` keeps f64's sign of zero).
            return Ball::new(mid, if mid.is_nan() { f64::INFINITY } else { 0.0 });
        }
        if self.rad == 0.0 && b.rad == 0.0 && mid.abs() >= f64::MIN_POSITIVE {
            // A product of exact values, not subnormal: only its own rounding.
            return Ball::new(
                mid,
                if mid.is_finite() {
                    up(U * mid.abs())
                } else {
                    f64::INFINITY
                },
            );
        }
        let propagated = self.mid.abs() * b.rad + b.mid.abs() * self.rad + self.rad * b.rad;
        let rounding = if mid.is_finite() {
            U * mid.abs()
        } else {
            f64::INFINITY
        };
        Ball::new(mid, up(propagated + rounding + TINY))
    }
}

impl Div for Ball {
    type Output = Ball;
    fn div(self, b: Ball) -> Ball {
        let mid = self.mid / b.mid;
        if self.is_exact_zero() && b.certain_sign().is_some_and(|s| s != 0) {
            return Ball::new(mid, 0.0);
        }
        // The divisor's ball must stay away from 0: |B| >= |b.mid| − b.rad > 0.
        let floor = (b.mid.abs() - b.rad) * (1.0 - 4.0 * U);
        if floor.is_nan() || floor <= 0.0 || !mid.is_finite() {
            return Ball::new(mid, f64::INFINITY);
        }
        // |A/B − a/b| <= (a.rad + |a/b| b.rad) / |B|, and |a/b| <= |mid| (1 + u).
        let q = mid.abs() * (1.0 + 2.0 * U);
        let propagated = up(self.rad + q * b.rad) / floor;
        Ball::new(mid, up(propagated + U * mid.abs() + TINY))
    }
}

impl Scalar for Ball {
    fn zero() -> Self {
        Ball::new(0.0, 0.0)
    }
    fn one() -> Self {
        Ball::new(1.0, 0.0)
    }
    fn from_f64(x: f64) -> Self {
        Ball::new(x, 0.0)
    }
    fn to_f64(&self) -> f64 {
        self.mid
    }
    fn is_zero(&self) -> bool {
        self.sign_checked() == Ordering::Equal
    }
    fn abs(&self) -> Self {
        Ball::new(self.mid.abs(), self.rad)
    }
    #[inline]
    fn mul_add_assign(acc: &mut Self, a: &Self, b: &Self) {
        // The f64 code's `acc += a * b`: a rounded product, then a rounded sum.
        *acc = *acc + *a * *b;
    }
    fn is_positive(&self) -> bool {
        self.sign_checked() == Ordering::Greater
    }
    fn is_negative(&self) -> bool {
        self.sign_checked() == Ordering::Less
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exact::Rational;

    fn exact(x: f64) -> Rational {
        Rational::from_f64(x)
    }

    /// `|mid − exact| <= rad`, in rationals.
    fn encloses(b: Ball, exact: &Rational) -> bool {
        let diff = Scalar::abs(&(Rational::from_f64(b.mid) - exact));
        diff <= Rational::from_f64(b.rad)
    }

    #[test]
    fn operations_enclose_the_exact_result_and_keep_f64_midpoints() {
        let values = [
            0.1, -0.3, 1e-300, -2.5e-310, 3.0, 1e16, -7.0e-8, 0.0, 123456.789, -1e300,
        ];
        for &x in &values {
            for &y in &values {
                let (bx, by) = (Ball::from_f64(x), Ball::from_f64(y));
                let (ex, ey) = (exact(x), exact(y));
                let sum = bx + by;
                assert_eq!(sum.mid.to_bits(), (x + y).to_bits());
                assert!(encloses(sum, &(ex.clone() + ey.clone())), "{x} + {y}");
                let product = bx * by;
                assert_eq!(product.mid.to_bits(), (x * y).to_bits());
                if product.mid.is_finite() {
                    assert!(encloses(product, &(ex.clone() * ey.clone())), "{x} * {y}");
                }
                if y != 0.0 {
                    let quotient = bx / by;
                    assert_eq!(quotient.mid.to_bits(), (x / y).to_bits());
                    if quotient.rad.is_finite() {
                        assert!(encloses(quotient, &(ex.clone() / ey.clone())), "{x} / {y}");
                    }
                }
            }
        }
    }

    #[test]
    fn long_computations_stay_enclosed() {
        // A dot product and a quotient of inexact values, tracked in rationals beside.
        let w = [0.1, -0.7, 0.30000000000000004, 1e-3, 2.0 / 3.0];
        let x = [1.0 / 3.0, 0.2, -5.0, 1e5, 0.125];
        let (mut acc, mut exact_acc) = (Ball::zero(), Rational::zero());
        for (wi, xi) in w.iter().zip(&x) {
            let (bw, bx) = (
                Ball::from_f64(*wi) * Ball::from_f64(3.0),
                Ball::from_f64(*xi),
            );
            Ball::mul_add_assign(&mut acc, &bw, &bx);
            exact_acc += exact(*wi) * exact(3.0) * exact(*xi);
        }
        // `bw` is a rounded product: the exact sum is that of the exact products.
        assert!(encloses(acc, &exact_acc));
        let r = acc / (acc + Ball::from_f64(1.0));
        let er = exact_acc.clone() / (exact_acc + Rational::one());
        assert!(encloses(r, &er), "{r:?} vs {}", Scalar::to_f64(&er));
    }

    #[test]
    fn doubtful_comparisons_are_flagged_and_certain_ones_are_not() {
        take_doubt();
        let certain = Ball::new(1.0, 0.5);
        assert!(certain.is_positive());
        assert!(!certain.is_zero());
        assert!(!take_doubt());
        let unsure = Ball::new(1e-20, 1e-16);
        assert!(unsure.is_positive());
        assert!(take_doubt());
        assert!(!take_doubt(), "taking the flag clears it");
        let exact_zero = Ball::zero();
        assert!(exact_zero.is_zero());
        assert!(!take_doubt());
        assert!(Ball::new(0.0, 1e-300).is_zero());
        assert!(take_doubt());
        assert!(Ball::new(2.0, 0.1) > Ball::new(1.0, 0.1));
        assert!(!take_doubt());
        assert!(Ball::new(1.0, 0.1) <= Ball::new(1.05, 0.0));
        assert!(take_doubt());
    }

    #[test]
    fn a_divisor_whose_ball_holds_zero_gives_no_bound() {
        let q = Ball::from_f64(1.0) / Ball::new(1e-10, 2e-10);
        assert!(q.rad.is_infinite());
        assert_eq!(q.certain_sign(), None);
    }

    #[test]
    fn signs_follow_the_exact_value() {
        assert_eq!(Ball::new(3.0, 1.0).certain_sign(), Some(1));
        assert_eq!(Ball::new(-3.0, 1.0).certain_sign(), Some(-1));
        assert_eq!(Ball::new(0.5, 1.0).certain_sign(), None);
        assert_eq!(Ball::zero().certain_sign(), Some(0));
        assert_eq!(Ball::new(1e-300, 0.0).certain_sign(), Some(1));
    }
}
