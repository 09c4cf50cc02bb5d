//! The scalar trait shared by the f64 and the exact rational code paths.
//!
//! Every finite f32 or f64 value is a dyadic rational, so [`Scalar::from_f64`] is exact for
//! both implementations; only arithmetic on `f64` rounds.

use std::cmp::Ordering;
use std::fmt::Debug;
use std::ops::{Add, Div, Mul, Neg, Sub};

use num_bigint::BigInt;
use num_traits::{Signed, ToPrimitive, Zero};

use super::dyadic::ExactSum;
use super::filter::affine_bounded;
use super::fraction;

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
    /// The additive identity, 0.
    fn zero() -> Self;
    /// The multiplicative identity, 1.
    fn one() -> Self;
    /// The exact value of a finite `f64`. Callers validate finiteness first.
    fn from_f64(x: f64) -> Self;
    /// The nearest `f64` (exact for `f64`).
    fn to_f64(&self) -> f64;
    /// Whether the value equals 0 (for `f64`, `-0.0` too).
    fn is_zero(&self) -> bool;
    /// The absolute value `|x|` (exact in both implementations).
    fn abs(&self) -> Self;
    /// `acc += a * b`, without needless copies for big numbers.
    fn mul_add_assign(acc: &mut Self, a: &Self, b: &Self);
    /// `a + b` by reference (rationals: with the least gcd work).
    fn plus(a: &Self, b: &Self) -> Self {
        a.clone() + b.clone()
    }
    /// `a · b` by reference (rationals: with the least gcd work).
    fn times(a: &Self, b: &Self) -> Self {
        a.clone() * b.clone()
    }
    /// `a / b` by reference (rationals: with the least gcd work).
    fn over(a: &Self, b: &Self) -> Self {
        a.clone() / b.clone()
    }
    /// `Σ w_i x_i + b` over `terms`, the products summed left to right and `b` added last
    /// (as [`affine_dot`] sums).
    fn affine_sum<'a>(terms: impl Iterator<Item = (&'a Self, &'a Self)>, b: &Self) -> Self {
        let mut acc = Self::zero();
        for (w, x) in terms {
            Self::mul_add_assign(&mut acc, w, x);
        }
        acc + b.clone()
    }
    /// The sign of `w · x + b`, every value taken as the number it is: `Equal` only for an
    /// exact 0. Rationals compute it; a [`Ball`] answers by its midpoint and flags doubt where
    /// its radius leaves the sign open, like any comparison; f64 decides the sign of the
    /// exact value of the sum of its (exact) values, not of its rounding (the float filter,
    /// then an exact sum of the products).
    ///
    /// [`Ball`]: super::ball::Ball
    fn affine_sign(w: &[Self], x: &[Self], b: &Self) -> Ordering {
        let v = Self::affine_sum(w.iter().zip(x), b);
        if v.is_positive() {
            Ordering::Greater
        } else if v.is_negative() {
            Ordering::Less
        } else {
            Ordering::Equal
        }
    }
    /// Whether the value is strictly greater than 0.
    fn is_positive(&self) -> bool {
        *self > Self::zero()
    }
    /// Whether the value is strictly less than 0.
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
    fn affine_sign(w: &[Self], x: &[Self], b: &Self) -> Ordering {
        if let Some(sign) = affine_bounded(w, x, None, *b).certain_sign() {
            return sign.cmp(&0);
        }
        let mut sum = ExactSum::new();
        for (wi, xi) in w.iter().zip(x) {
            sum.add_product(*wi, *xi);
        }
        sum.add(*b);
        match sum.value() {
            Some(v) => v.signum().cmp(&0),
            // A value that is not finite: the rounded sum's sign is all there is.
            None => {
                let v = Self::affine_sum(w.iter().zip(x), b);
                v.partial_cmp(&0.0).unwrap_or(Ordering::Equal)
            }
        }
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
        if let (Some(ka), Some(kb), Some(kc)) = (
            dyadic_exponent(a.denom()),
            dyadic_exponent(b.denom()),
            dyadic_exponent(acc.denom()),
        ) {
            *acc = dyadic_mul_add(acc.numer(), kc, a.numer() * b.numer(), ka + kb);
            return;
        }
        *acc = fraction::sum(acc, &product(a, b));
    }
    fn plus(a: &Self, b: &Self) -> Self {
        fraction::sum(a, b)
    }
    fn times(a: &Self, b: &Self) -> Self {
        product(a, b)
    }
    fn over(a: &Self, b: &Self) -> Self {
        fraction::quotient(a, b)
    }
    fn affine_sum<'a>(terms: impl Iterator<Item = (&'a Self, &'a Self)>, b: &Self) -> Self {
        let mut sum = CommonSum::new();
        for (w, x) in terms {
            if !Zero::is_zero(w) && !Zero::is_zero(x) {
                sum.add(&product(w, x));
            }
        }
        sum.add(b);
        sum.value()
    }
}

/// A sum of rationals kept over one common denominator `2^twos · odd` (`odd` odd), reduced
/// once at the end: [`Rational`]'s addition reduces after every term, by binary gcds whose
/// loops run once per bit of the numbers.
struct CommonSum {
    numer: BigInt,
    odd: BigInt,
    twos: u64,
}

impl CommonSum {
    fn new() -> Self {
        Self {
            numer: BigInt::zero(),
            odd: BigInt::from(1u8),
            twos: 0,
        }
    }

    fn add(&mut self, r: &Rational) {
        if Zero::is_zero(r) {
            return;
        }
        let d = r.denom();
        let twos = d.trailing_zeros().unwrap_or(0);
        let odd = d >> twos;
        let mut p = r.numer().clone();
        // The same power of two.
        if twos > self.twos {
            self.numer <<= twos - self.twos;
            self.twos = twos;
        } else {
            p <<= self.twos - twos;
        }
        // The same odd part: equal, one a multiple of the other, or their product.
        if odd == self.odd {
            self.numer += p;
        } else if (&self.odd % &odd).is_zero() {
            self.numer += p * (&self.odd / &odd);
        } else if (&odd % &self.odd).is_zero() {
            self.numer = &self.numer * (&odd / &self.odd) + p;
            self.odd = odd;
        } else {
            self.numer = &self.numer * &odd + p * &self.odd;
            self.odd *= odd;
        }
    }

    fn value(self) -> Rational {
        if self.odd == BigInt::from(1u8) {
            return dyadic_mul_add(&BigInt::zero(), 0, self.numer, self.twos);
        }
        fraction::reduced(self.numer, self.odd << self.twos)
    }
}

/// Euclid's gcd of two machine words.
fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// `a · b`, reduced. Where one factor is dyadic with a numerator of one machine word (an
/// f64 weight), the cross-cancellation needs only a remainder by that word and a count of
/// trailing zeros, not [`Rational`]'s binary gcds over the other factor's long digits.
fn product(a: &Rational, b: &Rational) -> Rational {
    if Zero::is_zero(a) || Zero::is_zero(b) {
        return Zero::zero();
    }
    let word = |r: &Rational| {
        let k = dyadic_exponent(r.denom())?;
        let n = r.numer().magnitude().to_u64()?;
        Some((n, k))
    };
    let (small, (n, k), other) = match (word(a), word(b)) {
        (Some(w), _) => (a, w, b),
        (None, Some(w)) => (b, w, a),
        (None, None) => return fraction::product(a, b),
    };
    // small = ±n / 2^k and other = m / d, both reduced: cancel gcd(n, d) and gcd(m, 2^k).
    let (m, d) = (other.numer(), other.denom());
    let g = gcd(n, (d.magnitude() % n).to_u64().unwrap_or(0));
    let twos = m.trailing_zeros().unwrap_or(0).min(k);
    let numer = (small.numer() / BigInt::from(g)) * (m >> twos);
    let denom = (d / BigInt::from(g)) << (k - twos);
    Rational::new_raw(numer, denom)
}

/// `k` where `denominator = 2^k` (a reduced rational's positive denominator), `None` for
/// any other denominator.
fn dyadic_exponent(denominator: &BigInt) -> Option<u64> {
    let k = denominator.trailing_zeros().unwrap_or(0);
    (denominator.bits() == k + 1).then_some(k)
}

/// `c / 2^kc + p / 2^kp` reduced, in integer arithmetic: the sum of dyadic rationals over
/// the larger power of two, then the common factors of two removed. [`Rational`]'s own
/// addition reduces by a binary gcd whose loop runs once per bit of the numerator, which
/// made the exact forward passes quadratic in the numbers' length; every f64 is dyadic, and
/// so are the sums and products the exact engine forms from them.
fn dyadic_mul_add(c: &BigInt, kc: u64, p: BigInt, kp: u64) -> Rational {
    let k = kc.max(kp);
    let sum = (c << (k - kc)) + (p << (k - kp));
    let Some(zeros) = sum.trailing_zeros() else {
        return Zero::zero();
    };
    let shift = zeros.min(k);
    Rational::new_raw(sum >> shift, BigInt::from(1u8) << (k - shift))
}

/// Exact rational from an integer numerator and denominator (test and settings helper).
pub fn ratio(numer: i64, denom: i64) -> Rational {
    Rational::new(BigInt::from(numer), BigInt::from(denom))
}

/// `Σ w_i x_i + b` in the scalar's own arithmetic, summed left to right.
pub fn affine_dot<T: Scalar>(w: &[T], x: &[T], b: &T) -> T {
    debug_assert_eq!(w.len(), x.len());
    T::affine_sum(w.iter().zip(x), b)
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

    /// f64's `affine_sign` is the sign of the exact value, where the rounded sum says
    /// otherwise (cancellation, a term below the rounding of the others) and where it agrees.
    #[test]
    fn f64_affine_sign_is_the_exact_sign() {
        let cases: [(&[f64], &[f64], f64); 6] = [
            // fl(1 + 1e-17) − 1 = 0, exactly 1e-17.
            (&[1.0, 1.0], &[1.0, 1e-17], -1.0),
            (&[1.0, -1.0], &[1.0, 1e-17], 1.0),
            // fl(1e16 + 1) = 1e16, so the rounded sum is 0; exactly −1.
            (&[1.0, 1.0, -1.0], &[1e16, -1.0, 1e16], 0.0),
            // Exactly 0, and plainly positive or negative.
            (&[0.1, 0.2], &[3.0, -1.5], 0.0),
            (&[2.0, -1.0], &[1.5, 0.25], -1.0),
            (&[2.0, -1.0], &[1.5, 0.25], -3.0),
        ];
        for (w, x, b) in cases {
            let exact = {
                let wr: Vec<Rational> = w.iter().map(|&v| Rational::from_f64(v)).collect();
                let xr: Vec<Rational> = x.iter().map(|&v| Rational::from_f64(v)).collect();
                Rational::affine_sign(&wr, &xr, &Rational::from_f64(b))
            };
            assert_eq!(f64::affine_sign(w, x, &b), exact, "{w:?} · {x:?} + {b}");
        }
        let rounded = |w: &[f64], x: &[f64], b: f64| affine_dot(w, x, &b);
        assert_eq!(rounded(&[1.0, 1.0], &[1.0, 1e-17], -1.0), 0.0);
        assert_eq!(
            f64::affine_sign(&[1.0, 1.0], &[1.0, 1e-17], &-1.0),
            Ordering::Greater
        );
        assert_eq!(rounded(&[1.0, 1.0, -1.0], &[1e16, -1.0, 1e16], 0.0), 0.0);
        assert_eq!(
            f64::affine_sign(&[1.0, 1.0, -1.0], &[1e16, -1.0, 1e16], &0.0),
            Ordering::Less
        );
    }

    /// The shortcuts of `mul_add_assign` (dyadic sums, products with a word-sized dyadic
    /// factor) give Rational's own `acc + a·b`, reduced, on dyadic and other values (signs,
    /// zeros, integers, cancellation, long numerators).
    #[test]
    fn dyadic_mul_add_is_rational_arithmetic() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let mut values: Vec<Rational> = [0.0, 1.0, -1.0, 0.5, -0.75, 3.0, 1e-300, 2e300]
            .iter()
            .map(|&v| Rational::from_f64(v))
            .collect();
        for _ in 0..40 {
            let v: f64 = rng.random_range(-1.0..1.0) * 2f64.powi(rng.random_range(-60..60));
            values.push(Rational::from_f64(v));
        }
        values.push(ratio(1, 3));
        values.push(ratio(-5, 6));
        values.push(ratio(7, 12));
        values.push(ratio(-1 << 40, 3 * 5 * 7 * 11 * 13));
        // A long non-dyadic value with factors a word-sized numerator can cancel.
        values.push(ratio(9, 35) * values[12].clone() * values[13].clone());
        // Long dyadic numerators, as a few layers of exact products make them.
        values.push(values[10].clone() * values[11].clone() * values[12].clone());
        for acc in &values {
            for a in &values {
                for b in values.iter().step_by(7) {
                    let mut fast = acc.clone();
                    Rational::mul_add_assign(&mut fast, a, b);
                    let want = acc.clone() + a.clone() * b.clone();
                    assert_eq!(fast, want);
                    // Reduced: the same fields as Rational's own result.
                    assert_eq!((fast.numer(), fast.denom()), (want.numer(), want.denom()));
                }
            }
        }
        // Sums over one common denominator: Rational's own sum, reduced, whatever the
        // denominators (equal, multiples of each other, coprime) and the bias.
        for start in 0..values.len() {
            let w: Vec<Rational> = values.iter().cycle().skip(start).take(9).cloned().collect();
            let x: Vec<Rational> = values
                .iter()
                .rev()
                .cycle()
                .skip(start)
                .take(9)
                .cloned()
                .collect();
            let b = values[(start * 5) % values.len()].clone();
            let mut want = <Rational as Scalar>::zero();
            for (wi, xi) in w.iter().zip(&x) {
                want += wi.clone() * xi.clone();
            }
            want += b.clone();
            let got = affine_dot(&w, &x, &b);
            assert_eq!((got.numer(), got.denom()), (want.numer(), want.denom()));
        }
        // acc = −a·b cancels to zero.
        let mut zero = -(values[3].clone() * values[4].clone());
        Rational::mul_add_assign(&mut zero, &values[3], &values[4]);
        assert!(Zero::is_zero(&zero));
        assert_eq!(zero.denom(), &BigInt::from(1));
    }
}
