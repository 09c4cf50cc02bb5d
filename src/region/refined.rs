//! The filter's second tier: affine layers whose every value is the exact sum of its products
//! (f64 weights times the layer's f64 inputs, added in an [`ExactSum`]) rounded once.
//!
//! A plain f64 sum of `n` products carries the bound `γ_n Σ |w_i x_i|`, which in a deep,
//! wide network (a relation network's `g` sees 625 pairs of 256 values) grows until values
//! of 1e-8 are undecided. Here a value's own error is its single rounding (`|z| 2^-51` and an
//! absolute term for the subnormal range) plus what the inputs' bounds carry through the
//! weights, so only values within a few ulps of their propagated bound stay undecided; those
//! go to exact arithmetic. A value computed from exact inputs (the point itself, at its own
//! layer) has only its rounding as error, and an exact zero has none: the sign is exact.

use rayon::prelude::*;

use crate::exact::dyadic::ExactSum;
use crate::exact::filter::ErrorModel;
use crate::model::Affine;

/// Relative bound of [`crate::exact::dyadic::Dyadic::to_f64`]: the mantissa is cut to its top
/// 64 bits (relative error below 2^-63), then converted with one rounding (2^-53); twice that,
/// taken relative to the rounded value, covers both.
const ROUNDING: f64 = 1.0 / (1u64 << 51) as f64;
/// Absolute term, `2^-1070`: the two scalings by powers of two round at most once each in the
/// subnormal range (`2^-1075` each), and values below `2^-2136` convert to zero.
const TINY: f64 = f64::from_bits(16);
/// Layers with more rows than this are computed in parallel.
const PARALLEL_ROWS: usize = 4096;

/// One affine layer from inputs with bounds `errors` (empty: exact inputs): each output
/// value with its bound.
pub(super) fn affine_layer(affine: &Affine, input: &[f64], errors: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let errors = (!errors.is_empty()).then_some(errors);
    let row = |j: usize| row_value(affine, j, input, errors);
    let values: Vec<(f64, f64)> = if affine.out_dim() > PARALLEL_ROWS {
        (0..affine.out_dim()).into_par_iter().map(row).collect()
    } else {
        (0..affine.out_dim()).map(row).collect()
    };
    values.into_iter().unzip()
}

fn row_value(affine: &Affine, j: usize, input: &[f64], errors: Option<&[f64]>) -> (f64, f64) {
    let row = affine.row(j);
    let weights = row.values();
    let dense = row.is_dense();
    let mut sum = ExactSum::new();
    let mut propagated = 0.0;
    let mut exact_inputs = true;
    for (k, &w) in weights.iter().enumerate() {
        let i = if dense { k } else { row.position(k) };
        sum.add_product(w, input[i]);
        if let Some(e) = errors {
            propagated += w.abs() * e[i];
            exact_inputs &= w == 0.0 || e[i] == 0.0;
        }
    }
    sum.add(*affine.bias(j));
    let Some(exact) = sum.value() else {
        // A NaN or infinity among the inputs: no sign can be trusted.
        return (f64::NAN, f64::INFINITY);
    };
    let value = exact.to_f64();
    let rounding = if exact.is_zero() {
        0.0
    } else {
        value.abs() * ROUNDING + TINY
    };
    if exact_inputs {
        return (value, rounding);
    }
    // `Σ |w_i| e_i` computed in f64: its own rounding and products lost to underflow.
    let carried = ErrorModel::new(weights.len()).bound(0.0, propagated);
    (value, (rounding + carried) * (1.0 + 2.0 * f64::EPSILON))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exact::{Rational, Scalar};
    use crate::model::Dense;
    use ndarray::{arr1, arr2};

    fn exact_value(w: &[f64], x: &[f64], b: f64) -> Rational {
        let mut acc = Rational::from_f64(b);
        for (&wi, &xi) in w.iter().zip(x) {
            acc += Rational::from_f64(wi) * Rational::from_f64(xi);
        }
        acc
    }

    #[test]
    fn cancellation_is_decided_and_exact_zeros_are_exact() {
        // 1e16 + 1 − 1e16 = 1, which plain f64 computes as 0; and 0.1·3 − 0.3 in binary
        // (not zero), and an exact zero.
        let w = arr2(&[[1.0, 1.0, -1.0], [0.1, 0.0, -1.0], [1.0, -1.0, 0.0]]);
        let affine = Affine::Dense(Dense::new(w.clone(), arr1(&[0.0, 0.0, 0.0])).unwrap());
        let x = [1e16, 1.0, 1e16];
        let x2 = [3.0, 0.0, 0.3];
        for x in [x, x2] {
            let (z, e) = affine_layer(&affine, &x, &[]);
            for j in 0..3 {
                let exact = exact_value(w.row(j).as_slice().unwrap(), &x, 0.0);
                let diff = (Rational::from_f64(z[j]) - exact.clone()).abs();
                assert!(diff <= Rational::from_f64(e[j]), "row {j}: {z:?} ± {e:?}");
                if exact.is_zero() {
                    assert_eq!((z[j], e[j]), (0.0, 0.0));
                } else {
                    assert!(z[j].abs() > e[j], "row {j}: sign undecided");
                }
            }
        }
    }

    #[test]
    fn bounds_carry_the_inputs_errors() {
        let w = arr2(&[[2.0, -3.0]]);
        let affine = Affine::Dense(Dense::new(w, arr1(&[0.5])).unwrap());
        let (z, e) = affine_layer(&affine, &[1.0, 1.0], &[0.25, 0.5]);
        assert_eq!(z, vec![-0.5]);
        // 2·0.25 + 3·0.5 = 2 carried, plus the rounding of −0.5.
        assert!(e[0] >= 2.0 && e[0] < 2.0 + 1e-12, "{e:?}");
    }
}
