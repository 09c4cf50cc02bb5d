//! The region's constraints as dense rows around a centre, in f64:
//! `σ_i (z_i(a) + g_i·δ) >= 0` for every constraint `i` of layers `>= m` (a ReLU, LeakyRelu or
//! PRelu neuron's pre-activation, a Clip neuron's pre-activation less the bound `c` of its
//! face, or a max-pool entry's difference to its winner), with `δ = ã − a`.
//!
//! These rows are rounded (each `g_i` is a chain of matrix products), so they decide nothing:
//! they choose which constraints a reduced program needs (see `lp::screened`). Every answer
//! built from them is rebuilt and checked against the exact region.

use ndarray::{Array1, Array2, Axis};

use crate::model::Network;

use super::{Local, Pattern};

/// The composed constraint rows of one region seen from one layer.
#[derive(Clone, Debug)]
pub struct ComposedRows {
    /// (0-based layer, label) of each row, in the order of `P_m`'s rows (see
    /// [`Face::label`](super::Face::label)).
    pub labels: Vec<(usize, usize)>,
    /// `σ = +1` for an active neuron (`z >= 0`) or a max-pool constraint, `−1` for an
    /// inactive neuron (`z <= 0`).
    pub sign: Vec<f64>,
    /// `∂z_i / ∂ã`, one row per constraint.
    pub g: Array2<f64>,
    /// `z_i(a)` (less a Clip face's bound, or the difference of two) at the centre.
    pub z0: Vec<f64>,
}

impl ComposedRows {
    /// The rows of the region of `pattern` seen from 0-based layer `m`, around `centre`.
    pub fn new(net: &Network, pattern: &Pattern, m: usize, centre: &[f64]) -> Self {
        let layers = net.layers();
        let dim = layers[m].affine.in_dim();
        let mut labels = Vec::new();
        let mut sign = Vec::new();
        let mut z0 = Vec::new();
        let mut blocks: Vec<Array2<f64>> = Vec::new();
        // The current layer input's value at the centre and its Jacobian in ã.
        let mut h = Array1::from(centre.to_vec());
        let mut jac: Option<Array2<f64>> = None;
        for (k, layer) in layers.iter().enumerate().skip(m) {
            let affine = &layer.affine;
            let mut z = Vec::with_capacity(affine.out_dim());
            affine.apply_into(h.as_slice().expect("contiguous"), &mut z);
            let z = Array1::from(z);
            let g = match &jac {
                None => affine
                    .dense_matrix(usize::MAX)
                    .expect("no size limit")
                    .into_owned(),
                Some(j) => affine.times(j.view(), false),
            };
            let faces = pattern.faces(k);
            let mut block = Array2::zeros((faces.len(), dim));
            for (r, face) in faces.iter().enumerate() {
                labels.push((k, face.label()));
                sign.push(face.sign());
                let (first, second) = face.entries();
                match second {
                    None => {
                        // A Clip bound's face is `σ (z − c)`: `σ c` is the face's offset.
                        let c = face.sign() * face.offset(&layer.activation);
                        z0.push(z[first] - c);
                        block.row_mut(r).assign(&g.row(first));
                    }
                    Some(o) => {
                        z0.push(z[first] - z[o]);
                        block.row_mut(r).assign(&(&g.row(first) - &g.row(o)));
                    }
                }
            }
            blocks.push(block);
            let mut next_h = z;
            let mut next_g = g;
            if let Some(mask) = pattern.layer(k).filter(|_| layer.activation.is_relu()) {
                for (j, &active) in mask.iter().enumerate() {
                    if !active {
                        next_h[j] = 0.0;
                        next_g.row_mut(j).fill(0.0);
                    }
                }
            } else if layer.other_activation().is_some() {
                for j in 0..layer.relu_count() {
                    match pattern.local(k, layer, j) {
                        Local::Identity => {}
                        Local::Scale(s) => {
                            next_h[j] *= s;
                            next_g.row_mut(j).mapv_inplace(|v| v * s);
                        }
                        Local::Constant(c) => {
                            next_h[j] = c;
                            next_g.row_mut(j).fill(0.0);
                        }
                    }
                }
            }
            if let Some(selection) = pattern.selection(k) {
                let winners: Vec<usize> = selection.selected.iter().map(|&s| s as usize).collect();
                next_h = next_h.select(Axis(0), &winners);
                next_g = next_g.select(Axis(0), &winners);
            }
            h = next_h;
            jac = Some(next_g);
        }
        let mut all = Array2::zeros((labels.len(), dim));
        let mut at = 0;
        for b in blocks {
            let rows = b.nrows();
            all.slice_mut(ndarray::s![at..at + rows, ..]).assign(&b);
            at += rows;
        }
        ComposedRows {
            labels,
            sign,
            g: all,
            z0,
        }
    }

    /// The number of constraint rows.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the region has no constraints from layer `m` up.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// `σ_i (z_i(a) + g_i·δ)` for every row: positive inside.
    pub fn slacks(&self, delta: &[f64]) -> Vec<f64> {
        let gd = self.g.dot(&ndarray::ArrayView1::from(delta));
        gd.iter()
            .zip(&self.z0)
            .zip(&self.sign)
            .map(|((v, z), s)| s * (z + v))
            .collect()
    }

    /// The row's scale: `1 + |z_i(a)| + max_k |g_ik|`.
    pub fn scale(&self, i: usize) -> f64 {
        1.0 + self.z0[i].abs() + self.g.row(i).iter().fold(0.0f64, |m, v| m.max(v.abs()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::forward::forward;
    use crate::model::ir::dense_layer;
    use crate::region::Pattern;

    #[test]
    fn rows_give_the_pre_activations_of_nearby_points() {
        let net = Network::new(vec![
            dense_layer(
                3,
                2,
                vec![1.0, -2.0, 0.5, 1.0, -1.0, 0.25],
                vec![0.1, -0.2, 0.3],
                true,
            )
            .unwrap(),
            dense_layer(
                2,
                3,
                vec![1.0, 1.0, -1.0, -0.5, 2.0, 1.0],
                vec![0.0, 0.5],
                true,
            )
            .unwrap(),
            dense_layer(1, 2, vec![1.0, -1.0], vec![0.0], false).unwrap(),
        ])
        .unwrap();
        let x = [0.3, 0.7];
        let trace = forward(&net, &x);
        let pattern = Pattern::from_pre(&net, &trace.pre);
        let rows = ComposedRows::new(&net, &pattern, 0, &x);
        assert_eq!(rows.len(), 5);
        // A point whose pattern is the same: the linear rows are the pre-activations.
        let delta = [1e-3, -2e-3];
        let y = [x[0] + delta[0], x[1] + delta[1]];
        let t = forward(&net, &y);
        assert_eq!(Pattern::from_pre(&net, &t.pre), pattern);
        let s = rows.slacks(&delta);
        for (i, &(k, j)) in rows.labels.iter().enumerate() {
            let z = t.pre[k][j];
            assert!((s[i] - rows.sign[i] * z).abs() < 1e-12, "row {i}");
            assert!(s[i] >= 0.0);
        }
    }
}
