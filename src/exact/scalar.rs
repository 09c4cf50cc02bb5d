//! The scalar trait shared by the f64 and the exact rational code paths.
//!
//! Every finite f32 or f64 value is a dyadic rational, so [`Scalar::from_f64`] is exact for
//! both implementations; only arithmetic on `f64` rounds.

use std::fmt::Debug;
use std::ops::{Add, Div, Mul, Neg, Sub};

use num_bigint::BigInt;
use num_traits::{Signed, ToPrimitive, Zero};

/// Arbitrary-precision rational number: the exact engine's scalar.
pub type Rational = num_rational::BigRational;

/// A field the numeric code is written over: `f64` (fast, rounding) or [`Rational`] (exact).
pub trait Scalar:
    Clone
    + Debug
    + PartialEq
    + PartialOrd
    + Send
    + Sync
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
{
    fn zero() -> Self;
    fn one() -> Self;
    /// The exact value of a finite `f64`. Callers validate finiteness first.
    fn from_f64(x: f64) -> Self;
    /// The nearest `f64` (exact for `f64`).
    fn to_f64(&self) -> f64;
    fn is_zero(&self) -> bool;
    fn abs(&self) -> Self;
    /// `acc += a * b`, without needless copies for big numbers.
    fn mul_add_assign(acc: &mut Self, a: &Self, b: &Self);
    fn is_positive(&self) -> bool {
        *self > Self::zero()
    }
    fn is_negative(&self) -> bool {
        *self < Self::zero()
    }
}

impl Scalar for f64 {
    fn zero() -> Self {
        0.0
    }
    fn one() -> Self {
        1.0
    }
    fn from_f64(x: f64) -> Self {
        x
    }
    fn to_f64(&self) -> f64 {
        *self
    }
    fn is_zero(&self) -> bool {
        *self == 0.0
    }
    fn abs(&self) -> Self {
        f64::abs(*self)
    }
    #[inline]
    fn mul_add_assign(acc: &mut Self, a: &Self, b: &Self) {
        // Deliberately not fused: the error bounds in `filter` assume a rounded product
        // followed by a rounded sum.
        *acc += *a * *b;
    }
}

impl Scalar for Rational {
    fn zero() -> Self {
        Zero::zero()
    }
    fn one() -> Self {
        num_traits::One::one()
    }
    fn from_f64(x: f64) -> Self {
        Rational::from_float(x)
            .unwrap_or_else(|| panic!("non-finite value {x} reached the exact engine"))
    }
    fn to_f64(&self) -> f64 {
        ToPrimitive::to_f64(self).unwrap_or(f64::NAN)
    }
    fn is_zero(&self) -> bool {
        Zero::is_zero(self)
    }
    fn abs(&self) -> Self {
        Signed::abs(self)
    }
    fn mul_add_assign(acc: &mut Self, a: &Self, b: &Self) {
        if Zero::is_zero(a) || Zero::is_zero(b) {
            return;
        }
        *acc += a * b;
    }
}

/// Exact rational from an integer numerator and denominator (test and settings helper).
pub fn ratio(numer: i64, denom: i64) -> Rational {
    Rational::new(BigInt::from(numer), BigInt::from(denom))
}

/// `Σ w_i x_i + b` in the scalar's own arithmetic, summed left to right.
pub fn affine_dot<T: Scalar>(w: &[T], x: &[T], b: &T) -> T {
    debug_assert_eq!(w.len(), x.len());
    let mut acc = T::zero();
    for (wi, xi) in w.iter().zip(x) {
        T::mul_add_assign(&mut acc, wi, xi);
    }
    acc + b.clone()
}

/// `Σ w_i x_i`.
pub fn dot<T: Scalar>(w: &[T], x: &[T]) -> T {
    affine_dot(w, x, &T::zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_f64_is_exact() {
        let x = 0.1_f64;
        let r = Rational::from_f64(x);
        assert_eq!(Scalar::to_f64(&r), x);
        // 0.1 is not 1/10 in binary; the rational keeps the binary value.
        assert_ne!(r, ratio(1, 10));
        assert_eq!(Rational::from_f64(0.5), ratio(1, 2));
        assert_eq!(Rational::from_f64(-3.0), ratio(-3, 1));
    }

    #[test]
    fn f64_and_rational_dot_agree_on_exact_inputs() {
        let w = [0.5, -2.0, 4.0];
        let x = [1.0, 0.25, -0.125];
        let b = 3.0;
        let f = affine_dot(&w, &x, &b);
        let wr: Vec<Rational> = w.iter().map(|&v| Rational::from_f64(v)).collect();
        let xr: Vec<Rational> = x.iter().map(|&v| Rational::from_f64(v)).collect();
        let e = affine_dot(&wr, &xr, &Rational::from_f64(b));
        assert_eq!(Rational::from_f64(f), e);
    }
}
