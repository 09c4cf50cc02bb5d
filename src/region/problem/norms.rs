//! Rigorous bounds on the Euclidean norms of a region's composed constraint rows, for the
//! Chebyshev programs.

use crate::exact::filter::gamma;
use crate::model::Network;
use crate::region::{Local, Pattern};

/// Rigorous lower and upper bounds on the Euclidean norms of the composed constraint rows
/// (`∇_ã z_{k,j}` of every face of a ReLU, LeakyRelu, PRelu or Clip neuron,
/// `∇_ã (z_{k,s} − z_{k,o})` of every max-pool constraint) of every layer `k >= m`, in the order of `P_m`'s rows.
pub fn composed_row_norms(net: &Network, pattern: &Pattern, m: usize) -> Vec<(f64, f64)> {
    let layers = net.layers();
    let dim = layers[m].affine.in_dim();
    // Current composed map of the layer input (rows = neurons) and its absolute counterpart.
    let mut g = ndarray::Array2::<f64>::eye(dim);
    let mut g_abs = ndarray::Array2::<f64>::eye(dim);
    let mut depth_terms = 0usize;
    let mut out = Vec::new();
    let norm = |row: ndarray::ArrayView1<f64>| row.iter().map(|v| v * v).sum::<f64>().sqrt();
    for (k, layer) in layers.iter().enumerate().skip(m) {
        let mut z = layer.affine.times(g.view(), false);
        let mut z_abs = layer.affine.times(g_abs.view(), true);
        depth_terms += layer.affine.in_dim();
        // |fl(chain) − chain| <= γ_{Σ n} |W_k|…|W_m|, with the absolute product itself
        // rounded up by one more γ factor.
        let rel = gamma(depth_terms + 2) * (1.0 + gamma(depth_terms + 2));
        for face in pattern.faces(k) {
            // The norm's own rounding: γ of the row length plus 4; a difference of two
            // rounded rows is rounded once more.
            let (n, e, terms) = match face.entries() {
                // Two copies of one value (a window cut by padding): exactly 0.
                (s, Some(o)) if same_row(&layer.affine, s, o) => (0.0, 0.0, 0),
                (j, None) => (norm(z.row(j)), norm(z_abs.row(j)) * rel, dim + 4),
                (s, Some(o)) => (
                    norm((&z.row(s) - &z.row(o)).view()),
                    (norm(z_abs.row(s)) + norm(z_abs.row(o))) * rel,
                    dim + 5,
                ),
            };
            let round = 1.0 + gamma(terms);
            // A row that is exactly zero (n = e = 0: every product in it is zero).
            if terms == 0 || n + e == 0.0 {
                out.push((0.0, 0.0));
                continue;
            }
            let upper = ((n + e) * round).next_up();
            let lower = ((n - e) / round).next_down().max(0.0);
            out.push((lower, upper));
        }
        if let Some(mask) = pattern.layer(k).filter(|_| layer.activation.is_relu()) {
            for (j, &active) in mask.iter().enumerate() {
                if !active {
                    z.row_mut(j).fill(0.0);
                    z_abs.row_mut(j).fill(0.0);
                }
            }
        } else if layer.other_activation().is_some() {
            let mut scaled = false;
            for j in 0..layer.relu_count() {
                match pattern.local(k, layer, j) {
                    Local::Identity => {}
                    Local::Scale(s) => {
                        z.row_mut(j).mapv_inplace(|v| v * s);
                        z_abs.row_mut(j).mapv_inplace(|v| v * s.abs());
                        scaled = true;
                    }
                    Local::Constant(_) => {
                        z.row_mut(j).fill(0.0);
                        z_abs.row_mut(j).fill(0.0);
                    }
                }
            }
            // Each product with a slope rounds once more: one more term of the chain's γ.
            depth_terms += usize::from(scaled);
        }
        if let Some(selection) = pattern.selection(k) {
            let winners: Vec<usize> = selection.selected.iter().map(|&s| s as usize).collect();
            z = z.select(ndarray::Axis(0), &winners);
            z_abs = z_abs.select(ndarray::Axis(0), &winners);
        }
        g = z;
        g_abs = z_abs;
    }
    out
}

/// Whether rows `s` and `o` of `affine` are the same map (same weights, same bias).
fn same_row(affine: &crate::model::Affine, s: usize, o: usize) -> bool {
    let (rs, ro) = (affine.row(s), affine.row(o));
    affine.bias(s) == affine.bias(o) && rs.entries().eq(ro.entries())
}
