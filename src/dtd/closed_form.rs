//! The closed-form relevances of standard LRP rules, written independently of the root
//! machinery; tests compare the two.

use crate::exact::Scalar;

/// LRP-α1β0 without bias: `R_i = Σ_j a_i w_ji⁺ / Σ_i' a_i' w_ji'⁺ · R_j` (inputs >= 0).
pub fn alpha1_beta0<T: Scalar>(w_rows: &[&[T]], a: &[T], upper: &[T]) -> Vec<T> {
    weighted(w_rows, upper, |wi, i| {
        if wi.is_positive() {
            wi.clone() * a[i].clone()
        } else {
            T::zero()
        }
    })
}

/// LRP-w²: `R_i = Σ_j w_ji² / Σ_i' w_ji'² · R_j`.
pub fn w_square<T: Scalar>(w_rows: &[&[T]], upper: &[T]) -> Vec<T> {
    weighted(w_rows, upper, |wi, _| wi.clone() * wi.clone())
}

/// LRP-zB: `R_i = Σ_j (a_i w_ji − l w_ji⁺ − h w_ji⁻) / Σ_i' (…) · R_j`.
pub fn z_box<T: Scalar>(w_rows: &[&[T]], a: &[T], lo: &T, hi: &T, upper: &[T]) -> Vec<T> {
    weighted(w_rows, upper, |wi, i| {
        let pos = if wi.is_positive() {
            wi.clone()
        } else {
            T::zero()
        };
        let neg = if wi.is_negative() {
            wi.clone()
        } else {
            T::zero()
        };
        wi.clone() * a[i].clone() - lo.clone() * pos - hi.clone() * neg
    })
}

fn weighted<T: Scalar>(w_rows: &[&[T]], upper: &[T], z: impl Fn(&T, usize) -> T) -> Vec<T> {
    let n = w_rows.first().map_or(0, |r| r.len());
    let mut out = vec![T::zero(); n];
    for (row, r) in w_rows.iter().zip(upper) {
        if r.is_zero() {
            continue;
        }
        let zs: Vec<T> = row.iter().enumerate().map(|(i, wi)| z(wi, i)).collect();
        let total = zs.iter().fold(T::zero(), |acc, v| acc + v.clone());
        if total.is_zero() {
            continue;
        }
        for (o, zi) in out.iter_mut().zip(zs) {
            *o = o.clone() + zi * r.clone() / total.clone();
        }
    }
    out
}
