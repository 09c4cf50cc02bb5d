//! Rational arithmetic on long numbers: Lehmer's gcd and the sum, product and quotient of
//! reduced fractions with the least gcd work (Knuth, The Art of Computer Programming, vol. 2,
//! §4.5.1 and §4.5.2).
//!
//! [`Rational`]'s own operations reduce with num-bigint's binary gcd, whose loop removes about
//! one bit per pass over all the digits: quadratic in the bits even when one operand is a
//! single word, as when a relevance with thousands of bits in its denominator meets an f64
//! weight. Lehmer's algorithm runs Euclid's on the leading 64 bits and applies the steps to
//! the long numbers at once, about 60 bits per pass; the sum and the product below take gcds
//! of denominators and cross terms only, which are short where the operands share little.

use num_bigint::{BigInt, BigUint, Sign};
use num_traits::{One, Signed, ToPrimitive, Zero};

use super::Rational;

/// Euclid's gcd of two machine words.
fn gcd_word(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The greatest common divisor of `a` and `b` (0 when both are 0), by Lehmer's algorithm.
pub fn gcd(a: &BigUint, b: &BigUint) -> BigUint {
    let (mut u, mut v) = if a >= b {
        (a.clone(), b.clone())
    } else {
        (b.clone(), a.clone())
    };
    while v.bits() > 64 {
        // The leading 64 bits of u, and v's bits at the same places.
        let shift = u.bits() - 64;
        let mut uh = i128::from((&u >> shift).to_u64().expect("64 bits"));
        let mut vh = i128::from((&v >> shift).to_u64().expect("64 bits"));
        // Euclid's steps on the leading bits while they are certainly the long numbers'
        // steps too (Knuth's Algorithm L): u' = a u + b v, v' = c u + d v.
        let (mut ca, mut cb, mut cc, mut cd) = (1i128, 0i128, 0i128, 1i128);
        loop {
            if vh + cc == 0 || vh + cd == 0 {
                break;
            }
            let q = (uh + ca) / (vh + cc);
            if q != (uh + cb) / (vh + cd) {
                break;
            }
            (ca, cc) = (cc, ca - q * cc);
            (cb, cd) = (cd, cb - q * cd);
            (uh, vh) = (vh, uh - q * vh);
        }
        if cb == 0 {
            // No step was certain: one division on the long numbers.
            let r = &u % &v;
            u = std::mem::replace(&mut v, r);
            continue;
        }
        let (ui, vi) = (BigInt::from(u), BigInt::from(v));
        let nu = &ui * ca + &vi * cb;
        let nv = &ui * cc + &vi * cd;
        u = nu
            .to_biguint()
            .expect("Lehmer's cofactors keep u non-negative");
        v = nv
            .to_biguint()
            .expect("Lehmer's cofactors keep v non-negative");
    }
    if v.is_zero() {
        return u;
    }
    let v = v.to_u64().expect("at most 64 bits");
    let r = (&u % v).to_u64().expect("a remainder below a word");
    BigUint::from(gcd_word(v, r))
}

fn gcd_int(a: &BigInt, b: &BigInt) -> BigInt {
    BigInt::from(gcd(a.magnitude(), b.magnitude()))
}

/// `numer / denom` reduced (`denom` not 0).
pub fn reduced(numer: BigInt, denom: BigInt) -> Rational {
    let (numer, denom) = if denom.sign() == Sign::Minus {
        (-numer, -denom)
    } else {
        (numer, denom)
    };
    let g = gcd_int(&numer, &denom);
    if g.is_one() || g.is_zero() {
        return Rational::new_raw(numer, denom);
    }
    Rational::new_raw(numer / &g, denom / g)
}

/// `a + b`, reduced: one gcd of the denominators, and one of the sum with it.
pub fn sum(a: &Rational, b: &Rational) -> Rational {
    if a.is_zero() {
        return b.clone();
    }
    if b.is_zero() {
        return a.clone();
    }
    let (u, u_) = (a.numer(), a.denom());
    let (v, v_) = (b.numer(), b.denom());
    let d1 = gcd_int(u_, v_);
    if d1.is_one() {
        return Rational::new_raw(u * v_ + u_ * v, u_ * v_);
    }
    let t = u * (v_ / &d1) + v * (u_ / &d1);
    if t.is_zero() {
        return Rational::zero();
    }
    let d2 = gcd_int(&t, &d1);
    Rational::new_raw(&t / &d2, (u_ / &d1) * (v_ / &d2))
}

/// `a · b`, reduced: the gcds of each numerator with the other denominator.
pub fn product(a: &Rational, b: &Rational) -> Rational {
    if a.is_zero() || b.is_zero() {
        return Rational::zero();
    }
    let (u, u_) = (a.numer(), a.denom());
    let (v, v_) = (b.numer(), b.denom());
    let d1 = gcd_int(u, v_);
    let d2 = gcd_int(u_, v);
    Rational::new_raw((u / &d1) * (v / &d2), (u_ / &d2) * (v_ / &d1))
}

/// `a / b`, reduced (`b` not 0).
pub fn quotient(a: &Rational, b: &Rational) -> Rational {
    let (n, d) = (b.numer(), b.denom());
    let reciprocal = if n.is_negative() {
        Rational::new_raw(-d, -n)
    } else {
        Rational::new_raw(d.clone(), n.clone())
    };
    product(a, &reciprocal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// The gcd as num-bigint's own (binary) gcd gives it, through a reduced ratio.
    fn reference_gcd(a: &BigUint, b: &BigUint) -> BigUint {
        if b.is_zero() {
            return a.clone();
        }
        let r = Rational::new(BigInt::from(a.clone()), BigInt::from(b.clone()));
        b / r.denom().magnitude()
    }

    fn random_big(rng: &mut impl Rng, bits: u64) -> BigUint {
        let words = bits.div_ceil(64) as usize;
        let mut digits: Vec<u64> = (0..words).map(|_| rng.random()).collect();
        let extra = words as u64 * 64 - bits;
        if let Some(top) = digits.last_mut() {
            *top >>= extra;
        }
        BigUint::new(
            digits
                .iter()
                .flat_map(|d| [*d as u32, (*d >> 32) as u32])
                .collect(),
        )
    }

    #[test]
    fn lehmer_s_gcd_is_the_gcd() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for _ in 0..400 {
            let (ba, bb) = (rng.random_range(1..2000), rng.random_range(1..2000));
            let bc = rng.random_range(1..600);
            let common = random_big(&mut rng, bc);
            let a = random_big(&mut rng, ba) * &common;
            let b = random_big(&mut rng, bb) * &common;
            assert_eq!(gcd(&a, &b), reference_gcd(&a, &b), "{a} {b}");
        }
        let zero = BigUint::zero();
        let x = BigUint::from(12u32);
        assert_eq!(gcd(&zero, &x), x);
        assert_eq!(gcd(&x, &zero), x);
        assert_eq!(gcd(&zero, &zero), zero);
        // Consecutive Fibonacci numbers: the longest run of quotients 1.
        let (mut f0, mut f1) = (BigUint::one(), BigUint::one());
        for _ in 0..3000 {
            (f0, f1) = (f1.clone(), f0 + f1);
        }
        assert!(gcd(&f0, &f1).is_one());
    }

    #[test]
    fn sums_products_and_quotients_are_rational_arithmetic_reduced() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut values: Vec<Rational> = Vec::new();
        for _ in 0..30 {
            let (bn, bd) = (rng.random_range(1..500), rng.random_range(1..500));
            let n = BigInt::from(random_big(&mut rng, bn));
            let d = BigInt::from(random_big(&mut rng, bd)) + 1;
            let n = if rng.random_bool(0.5) { -n } else { n };
            values.push(Rational::new(n, d));
        }
        // Shared factors, as the relevances of one layer have.
        let shared = values[0].clone() * values[1].clone();
        values.push(shared.clone() * values[2].clone());
        values.push(shared.clone() / values[3].clone());
        values.push(Rational::zero());
        values.push(-shared);
        for a in &values {
            for b in &values {
                let s = sum(a, b);
                let want = a + b;
                assert_eq!((s.numer(), s.denom()), (want.numer(), want.denom()));
                let p = product(a, b);
                let want = a * b;
                assert_eq!((p.numer(), p.denom()), (want.numer(), want.denom()));
                if !b.is_zero() {
                    let q = quotient(a, b);
                    let want = a / b;
                    assert_eq!((q.numer(), q.denom()), (want.numer(), want.denom()));
                }
            }
            let r = reduced(a.numer() * 6, a.denom() * -6);
            assert_eq!(r, -a.clone());
            assert_eq!((r.numer(), r.denom()), ((-a).numer(), (-a).denom()));
        }
    }
}
