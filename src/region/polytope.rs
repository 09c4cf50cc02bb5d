//! The region as a polytope: the affine maps `a ↦ z_k(a)` inside it, `P_m` materialised as
//! dense constraints, the labels of its constraints, and how far a ray from a point stays
//! inside (`step_length`, in closed form).

use ndarray::{Array1, Array2, Axis};

use crate::exact::Scalar;
use crate::model::Network;

use super::pattern::{Local, Pattern};

/// `z_k(a) = A a + c` for one layer `k` above `m`, inside the region.
#[derive(Clone, Debug, PartialEq)]
pub struct AffineMap<T> {
    /// `A`, of shape (outputs of layer `k`, width of layer `m`'s input).
    pub a: Array2<T>,
    /// `c`, one entry per output of layer `k`.
    pub c: Array1<T>,
}

/// The affine maps `a ↦ z_k(a)` for every layer `k >= m` (0-based), with the pattern fixed.
pub fn affine_maps<T: Scalar>(net: &Network<T>, pattern: &Pattern, m: usize) -> Vec<AffineMap<T>> {
    let layers = net.layers();
    let dim = layers[m].affine.in_dim();
    // The map of the current layer input h_{k-1}(a): starts as the identity.
    let mut h_a = Array2::from_shape_fn(
        (dim, dim),
        |(i, j)| if i == j { T::one() } else { T::zero() },
    );
    let mut h_c = Array1::from_elem(dim, T::zero());
    let mut maps = Vec::with_capacity(layers.len() - m);
    for (k, layer) in layers.iter().enumerate().skip(m) {
        let out = layer.affine.out_dim();
        let mut a = Array2::from_elem((out, dim), T::zero());
        let mut c = Array1::from_elem(out, T::zero());
        for j in 0..out {
            for (i, wi) in layer.affine.row(j).entries() {
                if wi.is_zero() {
                    continue;
                }
                for col in 0..dim {
                    T::mul_add_assign(&mut a[[j, col]], wi, &h_a[[i, col]]);
                }
                T::mul_add_assign(&mut c[j], wi, &h_c[i]);
            }
            c[j] = c[j].clone() + layer.affine.bias(j).clone();
        }
        let (mut next_a, mut next_c) = (a.clone(), c.clone());
        for j in 0..out {
            match pattern.local(k, layer, j) {
                Local::Identity => {}
                Local::Scale(s) => {
                    next_a.row_mut(j).mapv_inplace(|v| T::times(&s, &v));
                    next_c[j] = T::times(&s, &next_c[j]);
                }
                Local::Constant(v) => {
                    next_a.row_mut(j).fill(T::zero());
                    next_c[j] = v;
                }
            }
        }
        if let Some(selection) = pattern.selection(k) {
            let winners: Vec<usize> = selection.selected.iter().map(|&s| s as usize).collect();
            next_a = next_a.select(Axis(0), &winners);
            next_c = next_c.select(Axis(0), &winners);
        }
        maps.push(AffineMap { a, c });
        h_a = next_a;
        h_c = next_c;
    }
    maps
}

/// The polytope `P_m = { a : G a + h >= 0 }`, one row per face of layers >= m: per ReLU,
/// LeakyRelu or PRelu neuron, per bound a Clip neuron's piece touches, and per max-pool
/// constraint.
#[derive(Clone, Debug, PartialEq)]
pub struct Polytope<T> {
    /// `G`, one row per constraint, one column per coordinate of `a`.
    pub g: Array2<T>,
    /// `h`, one entry per constraint.
    pub h: Array1<T>,
    /// The (1-based layer, neuron) of each row.
    pub rows: Vec<(usize, usize)>,
}

impl<T: Scalar> Polytope<T> {
    /// Whether `G a + h >= 0` holds row by row, in `T`'s arithmetic.
    pub fn contains(&self, a: &[T]) -> bool {
        (0..self.g.nrows()).all(|r| {
            let row = self.g.row(r);
            let mut acc = self.h[r].clone();
            for (gi, ai) in row.iter().zip(a) {
                T::mul_add_assign(&mut acc, gi, ai);
            }
            !acc.is_negative()
        })
    }

    /// The dimension of the space `a` lives in (layer `m`'s input width).
    pub fn dim(&self) -> usize {
        self.g.ncols()
    }

    /// The number of rows of `G`.
    pub fn num_constraints(&self) -> usize {
        self.g.nrows()
    }
}

/// `P_m(x)` for the pattern of `x`, materialised as dense constraints.
pub fn polytope<T: Scalar>(net: &Network<T>, pattern: &Pattern, m: usize) -> Polytope<T> {
    let maps = affine_maps(net, pattern, m);
    let dim = net.layers()[m].affine.in_dim();
    let count = pattern.constraints_from(m);
    let mut g = Array2::from_elem((count, dim), T::zero());
    let mut h = Array1::from_elem(count, T::zero());
    let mut rows = Vec::with_capacity(count);
    for (offset, map) in maps.iter().enumerate() {
        let k = m + offset;
        let activation = &net.layers()[k].activation;
        for face in pattern.faces(k) {
            let r = rows.len();
            let (first, second) = face.entries();
            let sign = face.sign() < 0.0;
            for col in 0..dim {
                let v = map.a[[first, col]].clone();
                g[[r, col]] = match second {
                    Some(o) => v - map.a[[o, col]].clone(),
                    None if sign => -v,
                    None => v,
                };
            }
            let c = map.c.as_slice().expect("a standard layout");
            h[r] = face.linear(c) - face.offset(activation);
            rows.push((k + 1, face.label()));
        }
    }
    Polytope { g, h, rows }
}

/// The (1-based layer, neuron) of every constraint of `P_m`, in the order of the slacks.
/// A max-pool constraint is labelled by the entry that must not exceed its window's winner.
pub fn constraint_labels(pattern: &Pattern, m: usize) -> Vec<(usize, usize)> {
    (m..pattern.num_layers())
        .flat_map(|k| {
            pattern
                .faces(k)
                .into_iter()
                .map(move |f| (k + 1, f.label()))
        })
        .collect()
}

/// The largest `t >= 0` with `a − t v ∈ P_m` (0-based layer `m`, `a` and `v` in layer `m`'s
/// input space), in closed form: with the pattern fixed each constraint is affine along the
/// ray, `σ z_k(a − t v) = σ z_k(a) − t σ J_k v` (less `σ c` at a Clip bound), so `t* = min { σ z_k(a) / σ J_k v : σ J_k v > 0 }`.
/// `None` when the ray never leaves the region; `Some(0)` also when `a` itself is outside.
/// Exact in rationals; in f64 it is the float reading of the same formula.
pub fn step_length<T: Scalar>(
    net: &Network<T>,
    pattern: &Pattern,
    m: usize,
    a: &[T],
    v: &[T],
) -> Option<T> {
    // Propagate the point and the direction together: the direction without biases.
    let (mut h, mut d) = (a.to_vec(), v.to_vec());
    let (mut z, mut dz) = (Vec::new(), Vec::new());
    let mut best: Option<T> = None;
    for (k, layer) in net.layers().iter().enumerate().skip(m) {
        layer.affine.apply_into(&h, &mut z);
        dz.clear();
        for j in 0..layer.affine.out_dim() {
            dz.push(layer.affine.row(j).dot(&d));
        }
        // Each constraint's value at `a` and its rate of decrease along `v`.
        let checks: Vec<(T, T)> = pattern
            .faces(k)
            .into_iter()
            .map(|face| (face.value(&z, &layer.activation), face.linear(&dz)))
            .collect();
        for (slack, rate) in checks {
            if slack.is_negative() {
                return Some(T::zero());
            }
            if rate.is_positive() {
                let t = slack / rate;
                if best.as_ref().is_none_or(|b| t < *b) {
                    best = Some(t);
                }
            }
        }
        z = pattern.pass(k, layer, z);
        dz = pattern.pass_direction(k, layer, dz);
        std::mem::swap(&mut h, &mut z);
        std::mem::swap(&mut d, &mut dz);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exact::Rational;
    use crate::region::tests::tiny;
    use crate::region::trace_and_pattern;

    #[test]
    fn affine_map_matches_linearised_forward() {
        let model = tiny();
        let (_, pattern, _) = trace_and_pattern(&model, &[1.0, 0.5]);
        let maps = affine_maps(model.exact(), &pattern, 0);
        let p = [Rational::from_f64(0.75), Rational::from_f64(-0.5)];
        let z1: Vec<Rational> = (0..2)
            .map(|j| {
                crate::exact::scalar::affine_dot(
                    maps[0].a.row(j).to_slice().unwrap(),
                    &p,
                    &maps[0].c[j],
                )
            })
            .collect();
        let mut expect = Vec::new();
        model.exact().layers()[0].affine.apply_into(&p, &mut expect);
        assert_eq!(z1, expect);
    }
}
