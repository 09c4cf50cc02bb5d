//! Residual additions as a layer of their own, the way Zennit's ResNet canonizer sees them.
//!
//! The ONNX translator folds a residual `Add` into the layer that computes the sum: each row
//! of that layer reads its own inputs (the convolution's) and, with weight 1, values carried
//! past the layer before (the last `linear_tail` outputs of that layer). A rule set on the
//! layer then acts on the sum as a whole. [`split_residuals`] computes the same function with
//! the sum apart: layer A holds each row's own part (weights and bias) and copies of the
//! carried values, without ReLU; layer B (kind `add`) adds each row's part to its carried
//! values and applies the layer's ReLU. A rule on B (the z or ε rule, as Zennit's `Norm`)
//! splits relevance between the two summands in proportion to their contributions; the
//! layer's own rule (z+ on a convolution, say) then acts on A's own part only.
//!
//! The layer holds one bias, the sum of its summands' (a downsampling shortcut's included),
//! and A gives it to the row's own part. An ONNX graph read with `split_residual` does not
//! come here: the translator keeps each addition's summands apart as it reads them, each with
//! its own bias ([`crate::model::onnx::OnnxOptions::split_residual`]), as Zennit counts them.

use ndarray::Array1;

use super::ir::{Affine, Layer, Network, Sparse};
use super::kind::LayerKind;
use crate::error::Result;

/// `net` with every layer that adds carried values to its own part split in two (see the
/// module documentation); `net` itself when it has none. The layers' kinds follow (A keeps
/// the layer's kind, B is `add`), as does the declared input shape.
pub fn split_residuals(net: &Network) -> Result<Network> {
    let layers = net.layers();
    let mut out: Vec<Layer> = Vec::with_capacity(layers.len());
    let mut kinds = Vec::with_capacity(layers.len());
    for (index, layer) in layers.iter().enumerate() {
        let carried_from = match index {
            0 => None,
            _ => {
                let prev = &layers[index - 1];
                (prev.linear_tail > 0).then(|| prev.out_dim() - prev.linear_tail)
            }
        };
        match carried_from.filter(|_| layer.max_pool.is_none()) {
            Some(first) if adds(layer, first) => {
                let (a, b) = split(layer, first)?;
                out.extend([a, b]);
                kinds.extend([net.kinds()[index], LayerKind::Add]);
            }
            _ => {
                out.push(layer.clone());
                kinds.push(net.kinds()[index]);
            }
        }
    }
    if out.len() == layers.len() {
        return Ok(net.clone());
    }
    let split = Network::new(out)?.with_kinds(kinds)?;
    match net.input_shape() {
        Some(shape) => split.with_input_shape(shape.to_vec()),
        None => Ok(split),
    }
}

/// Whether some row of `layer` reads both its own inputs (below `first`) and carried ones.
fn adds(layer: &Layer, first: usize) -> bool {
    (0..layer.affine.out_dim()).any(|j| {
        let row = layer.affine.row(j);
        let carried = row.entries().filter(|(i, _)| *i >= first).count();
        carried > 0 && carried < row.connected()
    })
}

/// A row's listed `(input, weight)` pairs.
type SparseRow = Vec<(u32, f64)>;

/// Layers A and B of `layer`, whose inputs from `first` on are carried values. A's output `j`
/// is row `j`'s own part with its bias, and its output `rows + j` the carried part (the
/// shortcut: a copy of a carried value, or a map of them such as a downsampling
/// convolution); B's output `j` is their sum.
fn split(layer: &Layer, first: usize) -> Result<(Layer, Layer)> {
    let affine = &layer.affine;
    let (rows, n_in) = (affine.out_dim(), affine.in_dim());
    let mut a_rows: Vec<Vec<(u32, f64)>> = Vec::with_capacity(2 * rows);
    let mut skip_rows: Vec<Vec<(u32, f64)>> = Vec::with_capacity(rows);
    let mut a_bias = Vec::with_capacity(2 * rows);
    let mut b_rows: Vec<Vec<(u32, f64)>> = Vec::with_capacity(rows);
    for j in 0..rows {
        let row = affine.row(j);
        let (own, skip): (SparseRow, SparseRow) = row
            .entries()
            .map(|(i, &w)| (i as u32, w))
            .partition(|(i, _)| (*i as usize) < first);
        a_rows.push(own);
        a_bias.push(*affine.bias(j));
        skip_rows.push(skip);
        b_rows.push(vec![(j as u32, 1.0), ((rows + j) as u32, 1.0)]);
    }
    a_rows.extend(skip_rows);
    a_bias.resize(2 * rows, 0.0);
    let a = Layer::new(
        Affine::Sparse(Sparse::from_rows(n_in, a_rows, Array1::from(a_bias))?),
        false,
    );
    let b = Layer {
        affine: Affine::Sparse(Sparse::from_rows(2 * rows, b_rows, Array1::zeros(rows))?),
        relu: layer.relu,
        activation: layer.activation.clone(),
        max_pool: None,
        linear_tail: layer.linear_tail,
    };
    Ok((a, b))
}
