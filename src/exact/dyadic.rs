//! Exact dyadic rationals `m · 2^e` and an exact accumulator for sums of f64 products.
//!
//! Every finite f64 is a dyadic rational, and so are their sums and products, so certificate
//! arithmetic (multipliers times model weights, summed) never needs general rationals: a big
//! integer mantissa and a binary exponent carry it exactly, without the gcd work of
//! [`Rational`]. [`ExactSum`] adds f64 products exactly into fixed-point bins (a
//! "superaccumulator"), which makes the sums over the hundreds of thousands of weights of a
//! certificate check cost a few nanoseconds each.

use std::cmp::Ordering;
use std::ops::{Add, Mul, Neg, Sub};

use num_bigint::{BigInt, Sign};
use num_traits::{Signed, ToPrimitive, Zero};

use super::Rational;

/// `mantissa · 2^exponent`, exact. Not normalised: equal values may have different fields.
#[derive(Clone, Debug)]
pub struct Dyadic {
    mantissa: BigInt,
    exponent: i64,
}

/// An f64 split as `m · 2^e` with `|m| < 2^53`; `None` for NaN and infinities.
fn split(x: f64) -> Option<(i64, i64)> {
    if !x.is_finite() {
        return None;
    }
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i64;
    let fraction = (bits & ((1u64 << 52) - 1)) as i64;
    let (m, e) = if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | (1i64 << 52), biased - 1075)
    };
    Some((if x < 0.0 { -m } else { m }, e))
}

impl Dyadic {
    /// The value 0 (`0 · 2^0`).
    pub fn zero() -> Self {
        Self {
            mantissa: BigInt::zero(),
            exponent: 0,
        }
    }

    /// The exact value of a finite f64; `None` for NaN and infinities.
    pub fn from_f64(x: f64) -> Option<Self> {
        split(x).map(|(m, e)| Self {
            mantissa: BigInt::from(m),
            exponent: e,
        })
    }

    /// -1, 0 or 1.
    pub fn signum(&self) -> i8 {
        match self.mantissa.sign() {
            Sign::Minus => -1,
            Sign::NoSign => 0,
            Sign::Plus => 1,
        }
    }

    /// Whether the value is 0, whatever its exponent.
    pub fn is_zero(&self) -> bool {
        self.mantissa.is_zero()
    }

    /// The absolute value, exact.
    pub fn abs(&self) -> Self {
        Self {
            mantissa: self.mantissa.abs(),
            exponent: self.exponent,
        }
    }

    /// The value as an unreduced fraction `(numerator, denominator)`, the denominator a power
    /// of two (for arithmetic that reduces once at its end).
    pub fn to_fraction(&self) -> (BigInt, BigInt) {
        if self.exponent >= 0 {
            (&self.mantissa << (self.exponent as usize), BigInt::from(1))
        } else {
            (
                self.mantissa.clone(),
                BigInt::from(1) << ((-self.exponent) as usize),
            )
        }
    }

    /// The exact value as a rational.
    pub fn to_rational(&self) -> Rational {
        if self.exponent >= 0 {
            Rational::from_integer(&self.mantissa << (self.exponent as usize))
        } else {
            Rational::new(
                self.mantissa.clone(),
                BigInt::from(1) << ((-self.exponent) as usize),
            )
        }
    }

    /// A nearby f64 (for reading; not used in any decision). Saturates to ±inf.
    pub fn to_f64(&self) -> f64 {
        if self.mantissa.is_zero() {
            return 0.0;
        }
        // Keep the top 64 bits of the mantissa so the conversion stays in range.
        let bits = self.mantissa.bits() as i64;
        let drop = (bits - 64).max(0);
        let top = (&self.mantissa >> (drop as usize)).to_f64().unwrap_or(0.0);
        let e = self.exponent + drop;
        if e > 2000 {
            return top.signum() * f64::INFINITY;
        }
        if e < -2200 {
            return 0.0;
        }
        // Two steps so that neither power underflows or overflows on its own.
        let half = e / 2;
        top * 2f64.powi(half as i32) * 2f64.powi((e - half) as i32)
    }

    fn aligned(a: &Self, b: &Self) -> (BigInt, BigInt, i64) {
        let e = a.exponent.min(b.exponent);
        (
            &a.mantissa << ((a.exponent - e) as usize),
            &b.mantissa << ((b.exponent - e) as usize),
            e,
        )
    }

    /// The exact value of a rational whose denominator is a power of two; `None` for any
    /// other rational.
    pub fn from_rational(r: &Rational) -> Option<Self> {
        let d = r.denom();
        let k = d.trailing_zeros().unwrap_or(0);
        if d.bits() != k + 1 {
            return None;
        }
        Some(Self {
            mantissa: r.numer().clone(),
            exponent: -(k as i64),
        })
    }

    /// The largest f64 at or below the value (`-inf` below `-f64::MAX`).
    pub fn to_f64_below(&self) -> f64 {
        // `to_f64` is within a few units in the last place: step to the exact neighbour.
        let mut f = self.to_f64();
        while f == f64::INFINITY || Self::from_f64(f).is_some_and(|d| d > *self) {
            f = f.next_down();
        }
        while Self::from_f64(f.next_up()).is_some_and(|d| d <= *self) {
            f = f.next_up();
        }
        f
    }

    /// The smallest f64 at or above the value (`+inf` above `f64::MAX`).
    pub fn to_f64_above(&self) -> f64 {
        -(-self).to_f64_below()
    }

    /// The f64 nearest to the value (ties to even); `±inf` beyond `±f64::MAX`.
    pub fn to_f64_nearest(&self) -> f64 {
        let below = self.to_f64_below();
        let above = self.to_f64_above();
        if below == above || !below.is_finite() || !above.is_finite() {
            // Exact, or beyond the largest finite f64 on one side.
            return if below.is_finite() { above } else { below };
        }
        let (lo, hi) = (
            Self::from_f64(below).expect("finite"),
            Self::from_f64(above).expect("finite"),
        );
        match (self - &lo).cmp(&(&hi - self)) {
            Ordering::Less => below,
            Ordering::Greater => above,
            Ordering::Equal if below.to_bits().is_multiple_of(2) => below,
            Ordering::Equal => above,
        }
    }

    /// The exact product with a finite f64; `None` when `x` is NaN or infinite.
    pub fn mul_f64(&self, x: f64) -> Option<Self> {
        let (m, e) = split(x)?;
        Some(Self {
            mantissa: &self.mantissa * m,
            exponent: self.exponent + e,
        })
    }
}

impl Default for Dyadic {
    fn default() -> Self {
        Self::zero()
    }
}

impl Add for &Dyadic {
    type Output = Dyadic;
    fn add(self, other: &Dyadic) -> Dyadic {
        if self.mantissa.is_zero() {
            return other.clone();
        }
        if other.mantissa.is_zero() {
            return self.clone();
        }
        let (a, b, e) = Dyadic::aligned(self, other);
        Dyadic {
            mantissa: a + b,
            exponent: e,
        }
    }
}

impl Sub for &Dyadic {
    type Output = Dyadic;
    fn sub(self, other: &Dyadic) -> Dyadic {
        self + &(-other)
    }
}

impl Neg for &Dyadic {
    type Output = Dyadic;
    fn neg(self) -> Dyadic {
        Dyadic {
            mantissa: -&self.mantissa,
            exponent: self.exponent,
        }
    }
}

impl Mul for &Dyadic {
    type Output = Dyadic;
    fn mul(self, other: &Dyadic) -> Dyadic {
        Dyadic {
            mantissa: &self.mantissa * &other.mantissa,
            exponent: self.exponent + other.exponent,
        }
    }
}

impl PartialEq for Dyadic {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Dyadic {}

impl PartialOrd for Dyadic {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Dyadic {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b, _) = Dyadic::aligned(self, other);
        a.cmp(&b)
    }
}

/// Bit offset that makes every f64 product's exponent non-negative (`-1074 - 1074`).
const OFFSET: i64 = 2148;
/// 32-bit bins covering products up to `2^(971+971+106)` plus carries.
const BINS: usize = 136;
/// Normalise carries after this many additions (each adds < 2^32 to a bin of an i64).
const CARRY_EVERY: u32 = 1 << 29;

/// An exact sum of f64 values and f64 products, in 32-bit fixed-point bins.
#[derive(Clone, Debug)]
pub struct ExactSum {
    bins: Vec<i64>,
    pending: u32,
    /// A NaN or infinity was added: the sum is not a number.
    invalid: bool,
}

impl Default for ExactSum {
    fn default() -> Self {
        Self::new()
    }
}

impl ExactSum {
    /// An empty sum (value 0).
    pub fn new() -> Self {
        Self {
            bins: vec![0; BINS],
            pending: 0,
            invalid: false,
        }
    }

    /// Adds `sign · value · 2^(position - OFFSET)`.
    fn add_bits(&mut self, negative: bool, value: u128, position: i64) {
        debug_assert!(position >= 0);
        if value == 0 {
            return;
        }
        let bin = (position / 32) as usize;
        let shift = (position % 32) as u32;
        let low = (value & u128::from(u64::MAX)) << shift;
        let high = (value >> 64) << shift;
        let s = if negative { -1i64 } else { 1 };
        for (start, part) in [(bin, low), (bin + 2, high)] {
            let mut p = part;
            let mut k = start;
            while p != 0 {
                self.bins[k] += s * (p & 0xffff_ffff) as i64;
                p >>= 32;
                k += 1;
            }
        }
        self.pending += 1;
        if self.pending >= CARRY_EVERY {
            self.normalise();
        }
    }

    fn normalise(&mut self) {
        for k in 0..BINS - 1 {
            let carry = self.bins[k] >> 32;
            self.bins[k] -= carry << 32;
            self.bins[k + 1] += carry;
        }
        self.pending = 0;
    }

    /// Adds `x` exactly; a NaN or infinity makes the sum invalid ([`ExactSum::value`] is
    /// then `None`).
    pub fn add(&mut self, x: f64) {
        match split(x) {
            Some((m, e)) => self.add_bits(m < 0, u128::from(m.unsigned_abs()), e + OFFSET),
            None => self.invalid = true,
        }
    }

    /// Adds `a · b` exactly.
    pub fn add_product(&mut self, a: f64, b: f64) {
        match (split(a), split(b)) {
            (Some((ma, ea)), Some((mb, eb))) => {
                let m = u128::from(ma.unsigned_abs()) * u128::from(mb.unsigned_abs());
                self.add_bits((ma < 0) != (mb < 0), m, ea + eb + OFFSET);
            }
            _ => self.invalid = true,
        }
    }

    /// The exact sum; `None` when a NaN or infinity was added.
    pub fn value(&self) -> Option<Dyadic> {
        if self.invalid {
            return None;
        }
        // Σ bins[k] 2^(32k − OFFSET), over the bins in use only.
        let Some(low) = self.bins.iter().position(|&b| b != 0) else {
            return Some(Dyadic::zero());
        };
        let high = self.bins.iter().rposition(|&b| b != 0).unwrap_or(low);
        let mut acc = BigInt::zero();
        for &b in self.bins[low..=high].iter().rev() {
            acc = (acc << 32u32) + b;
        }
        Some(Dyadic {
            mantissa: acc,
            exponent: 32 * low as i64 - OFFSET,
        })
    }
}

/// `Σ a_i b_i` exactly.
pub fn exact_dot(a: &[f64], b: &[f64]) -> Option<Dyadic> {
    let mut s = ExactSum::new();
    for (&x, &y) in a.iter().zip(b) {
        s.add_product(x, y);
    }
    s.value()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exact::Scalar;

    fn rat(x: f64) -> Rational {
        Rational::from_f64(x)
    }

    #[test]
    fn sums_of_products_are_exact() {
        let cases: Vec<(f64, f64)> = vec![
            (0.1, 0.2),
            (-1e300, 1e-300),
            (f64::from_bits(1), f64::from_bits(1)),
            (f64::MAX, f64::MAX),
            (-f64::MAX, f64::MAX),
            (3.0, -0.75),
            (1e-320, -7.5e10),
        ];
        let mut s = ExactSum::new();
        let mut expect = Rational::from_f64(0.0);
        for &(a, b) in &cases {
            s.add_product(a, b);
            expect += rat(a) * rat(b);
            s.add(a);
            expect += rat(a);
        }
        assert_eq!(s.value().unwrap().to_rational(), expect);
    }

    #[test]
    fn cancellation_is_exact() {
        let mut s = ExactSum::new();
        s.add_product(1e16, 1.0);
        s.add(1.0);
        s.add_product(-1e16, 1.0);
        assert_eq!(s.value().unwrap().to_rational(), rat(1.0));
        assert_eq!(s.value().unwrap().signum(), 1);
    }

    #[test]
    fn many_additions_carry_correctly() {
        let mut s = ExactSum::new();
        for _ in 0..(CARRY_EVERY as usize + 10) {
            s.add(f64::from_bits(u64::MAX >> 12)); // a large mantissa of all ones
        }
        let one = rat(f64::from_bits(u64::MAX >> 12));
        let n = Rational::from_integer(BigInt::from(CARRY_EVERY as u64 + 10));
        assert_eq!(s.value().unwrap().to_rational(), one * n);
    }

    #[test]
    fn non_finite_values_poison_the_sum() {
        let mut s = ExactSum::new();
        s.add(f64::NAN);
        assert!(s.value().is_none());
        assert!(Dyadic::from_f64(f64::INFINITY).is_none());
    }

    #[test]
    fn directed_roundings_bracket_the_value() {
        let third = Rational::new(1.into(), 3.into());
        for x in [
            0.1,
            -0.1,
            1e-310,
            -1e-310,
            1e300,
            f64::MAX,
            -f64::MAX,
            0.0,
            3.0,
        ] {
            let d = Dyadic::from_f64(x).unwrap();
            assert_eq!(d.to_f64_below(), x);
            assert_eq!(d.to_f64_above(), x);
            assert_eq!(d.to_f64_nearest(), x);
            // A quarter of a unit in the last place above x: between two f64s.
            let q = &d + &d.mul_f64(0.25 * f64::EPSILON).unwrap();
            let (lo, hi) = (q.to_f64_below(), q.to_f64_above());
            assert!(Dyadic::from_f64(lo).is_none_or(|l| l <= q));
            assert!(Dyadic::from_f64(hi).is_none_or(|h| q <= h));
            assert!(hi == lo || hi == lo.next_up(), "{x}: {lo} {hi}");
            let near = q.to_f64_nearest();
            assert!(near == lo || near == hi);
        }
        let huge = Dyadic::from_f64(f64::MAX).unwrap().mul_f64(4.0).unwrap();
        assert_eq!(huge.to_f64_below(), f64::MAX);
        assert_eq!(huge.to_f64_above(), f64::INFINITY);
        assert_eq!(huge.to_f64_nearest(), f64::INFINITY);
        assert_eq!((-&huge).to_f64_nearest(), f64::NEG_INFINITY);
        assert!(Dyadic::from_rational(&third).is_none());
        let r = rat(0.375) + rat(-1e-300);
        assert_eq!(Dyadic::from_rational(&r).unwrap().to_rational(), r);
    }

    #[test]
    fn dyadic_arithmetic_matches_rationals() {
        let a = Dyadic::from_f64(0.375).unwrap();
        let b = Dyadic::from_f64(-1e-300).unwrap();
        assert_eq!((&a + &b).to_rational(), rat(0.375) + rat(-1e-300));
        assert_eq!((&a * &b).to_rational(), rat(0.375) * rat(-1e-300));
        assert_eq!((&a - &a).signum(), 0);
        assert!(b < a);
        assert_eq!(a.mul_f64(4.0).unwrap().to_f64(), 1.5);
        assert_eq!(b.to_f64(), -1e-300);
    }
}
