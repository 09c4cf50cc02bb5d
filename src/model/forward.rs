//! The forward pass, written once over [`Scalar`] so it runs in f64 and in exact rationals, and
//! in f64 for many inputs at once with whole-layer products.

use ndarray::{s, Array1, Array2, ArrayView2};

use crate::exact::Scalar;
use crate::model::ir::{max_pool, Layer, Network};

/// Every intermediate value of one forward pass.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace<T> {
    /// `h_0 … h_L`: `inputs[l]` is the input of layer `l + 1`; the last entry is the output.
    pub activations: Vec<Vec<T>>,
    /// `z_1 … z_L`.
    pub pre: Vec<Vec<T>>,
}

impl<T: Scalar> Trace<T> {
    /// The input of layer `index + 1` (0-based layer index).
    pub fn layer_input(&self, index: usize) -> &[T] {
        &self.activations[index]
    }

    /// The network output `h_L`.
    pub fn output(&self) -> &[T] {
        self.activations
            .last()
            .expect("a trace has at least the input")
    }
}

/// `max(z, 0)`.
pub fn relu<T: Scalar>(z: &T) -> T {
    if z.is_positive() {
        z.clone()
    } else {
        T::zero()
    }
}

/// The full forward pass from `x`, keeping pre-activations and activations of every layer.
pub fn forward<T: Scalar>(net: &Network<T>, x: &[T]) -> Trace<T> {
    let layers = net.layers();
    let mut activations = Vec::with_capacity(layers.len() + 1);
    let mut pre = Vec::with_capacity(layers.len());
    activations.push(x.to_vec());
    for layer in layers {
        let mut z = Vec::with_capacity(layer.affine.out_dim());
        layer
            .affine
            .apply_into(activations.last().expect("pushed above"), &mut z);
        let h = activate(layer, &z);
        pre.push(z);
        activations.push(h);
    }
    Trace { activations, pre }
}

/// Only the network output at `x`.
pub fn output<T: Scalar>(net: &Network<T>, x: &[T]) -> Vec<T> {
    let mut h = x.to_vec();
    let mut z = Vec::new();
    for layer in net.layers() {
        layer.affine.apply_into(&h, &mut z);
        if layer.relu {
            for (j, v) in z[..layer.relu_count()].iter_mut().enumerate() {
                *v = layer.activation.apply(j, v);
            }
        }
        if let Some(window) = layer.max_pool {
            z = max_pool(&z, window).0;
        }
        std::mem::swap(&mut h, &mut z);
    }
    h
}

/// `h_l` from `z_l`: the layer's activation (except on a carried tail), the largest entry of
/// each max-pool window, or `z_l` itself.
pub fn activate<T: Scalar>(layer: &Layer<T>, z: &[T]) -> Vec<T> {
    if let Some(window) = layer.max_pool {
        max_pool(z, window).0
    } else if layer.relu {
        let relus = layer.relu_count();
        z.iter()
            .enumerate()
            .map(|(j, v)| {
                if j < relus {
                    layer.activation.apply(j, v)
                } else {
                    v.clone()
                }
            })
            .collect()
    } else {
        z.to_vec()
    }
}

/// One layer applied to the points `h` (one a row) in f64, with whole-layer products
/// ([`Affine::apply_rows`](crate::model::Affine::apply_rows)): `h_l` of each point, and for a
/// max-pool layer the winner of each window of each point (an index into its `z`, the first
/// largest entry, as [`max_pool`] picks it).
pub fn layer_rows(layer: &Layer, h: ArrayView2<'_, f64>) -> (Array2<f64>, Option<Array2<usize>>) {
    let affine = &layer.affine;
    let mut z = affine.apply_rows(h);
    let bias = affine.biases();
    z += &bias;
    if let Some(window) = layer.max_pool {
        let groups = z.ncols() / window;
        let mut pooled = Array2::zeros((z.nrows(), groups));
        let mut won = Array2::zeros((z.nrows(), groups));
        for (p, row) in z.rows().into_iter().enumerate() {
            let (values, selected) = max_pool(&row.to_vec(), window);
            pooled.row_mut(p).assign(&Array1::from(values));
            for (g, s) in selected.into_iter().enumerate() {
                won[[p, g]] = s as usize;
            }
        }
        return (pooled, Some(won));
    }
    let active = layer.relu_count();
    if active > 0 {
        for mut row in z.rows_mut() {
            for (j, v) in row.slice_mut(s![..active]).iter_mut().enumerate() {
                *v = layer.activation.apply(j, v);
            }
        }
    }
    (z, None)
}

/// The network outputs of the inputs `x` (one a row) in f64, a layer at a time for all of
/// them ([`layer_rows`]): [`output`] of each input up to the order of the additions.
pub fn output_rows(net: &Network, x: ArrayView2<'_, f64>) -> Array2<f64> {
    let mut h = x.to_owned();
    for layer in net.layers() {
        h = layer_rows(layer, h.view()).0;
    }
    h
}

/// Index of the largest output (the first one on ties); the default explained output.
pub fn argmax(values: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}
