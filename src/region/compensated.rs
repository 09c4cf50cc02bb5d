//! The filter's compensated tier: a forward pass whose every value is a double-double with a
//! rigorous bound ([`crate::exact::compensated`]), tried where the f64 bounds leave a sign of
//! the pattern undecided. Each layer's own rounding is then of order `u²` instead of `u`, so
//! the bounds a deep convolutional network multiplies layer after layer stay far below the
//! values for longer: on a 224×224 VGG-16 the f64 bounds leave ReLUs of the eighth
//! convolution undecided, this tier decides the whole pattern (ResNet-50's bounds, carried
//! through more layers and residual sums, still outgrow it past its 27th layer).
//!
//! ReLU, max-pool and linear layers are supported (a carried tail passes unchanged); a layer
//! with another activation leaves the tier undecided, and the next tier takes over.

use rayon::prelude::*;

use crate::exact::compensated::{dot, exact_dot, DoubleBounded};
use crate::model::{Activation, Affine, Layer, Model};

use super::pattern::Pattern;

/// Rows per parallel task.
const ROWS_PER_TASK: usize = 256;

/// A layer's values: `hi[i] + lo[i]` within `error[i]` of the exact value (`error` empty:
/// exact).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Values {
    /// Leading parts.
    pub hi: Vec<f64>,
    /// Trailing parts.
    pub lo: Vec<f64>,
    /// Bounds (empty: every value exact).
    pub error: Vec<f64>,
}

impl Values {
    /// Exact f64 values.
    pub fn exact(values: &[f64]) -> Self {
        Self {
            hi: values.to_vec(),
            lo: vec![0.0; values.len()],
            error: Vec::new(),
        }
    }

    fn get(&self, i: usize) -> DoubleBounded {
        DoubleBounded {
            hi: self.hi[i],
            lo: self.lo[i],
            error: self.error.get(i).copied().unwrap_or(0.0),
        }
    }

    fn from_values(values: Vec<DoubleBounded>) -> Self {
        let exact = values.iter().all(|v| v.error == 0.0);
        Self {
            hi: values.iter().map(|v| v.hi).collect(),
            lo: values.iter().map(|v| v.lo).collect(),
            error: match exact {
                true => Vec::new(),
                false => values.iter().map(|v| v.error).collect(),
            },
        }
    }

    /// For each `values[i]` (an f64 computation of the same quantity), a bound on its
    /// distance to the exact value.
    pub fn distances_from(&self, values: &[f64]) -> Vec<f64> {
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| self.get(i).distance_from(v))
            .collect()
    }

    /// The bound on the distance of each `hi` to the exact value.
    pub fn rounded_errors(&self) -> Vec<f64> {
        (0..self.hi.len())
            .map(|i| self.get(i).rounded().1)
            .collect()
    }
}

/// One affine layer: each output as a double-double with its bound. From exact inputs (the
/// point itself, and layers two f64 hold exactly) each value is summed exactly
/// ([`exact_dot`]), so that values two f64 hold are exact: ties in a max-pool window over an
/// image's flat areas, and exact zeros, are then decided.
pub fn affine_layer(affine: &Affine, input: &Values) -> Values {
    let out = affine.out_dim();
    let exact = input.error.is_empty();
    let inputs = (&input.hi[..], &input.lo[..], &input.error[..]);
    let values: Vec<DoubleBounded> = (0..out)
        .into_par_iter()
        .with_min_len(ROWS_PER_TASK)
        .map(|j| {
            let row = affine.row(j);
            let (bias, at) = (*affine.bias(j), |k| row.position(k));
            match exact {
                true => exact_dot(row.values(), at, (&input.hi, &input.lo), bias),
                false => dot(row.values(), at, inputs, bias),
            }
        })
        .collect();
    Values::from_values(values)
}

/// `h_l` from `z_l`, when every sign and window winner of the layer is decided: the outputs
/// and their bounds. `None` where one is not, or the layer's activation is not a ReLU.
pub fn activate(layer: &Layer, z: &Values) -> Option<Values> {
    if let Some(window) = layer.max_pool {
        return max_pool(z, window);
    }
    if !layer.relu {
        return Some(z.clone());
    }
    if !matches!(layer.activation, Activation::Relu) {
        return None;
    }
    let mut h = z.clone();
    for j in 0..layer.relu_count() {
        match z.get(j).certain_sign()? {
            1 => {}
            // Certainly not above 0: an exact zero.
            _ => {
                h.hi[j] = 0.0;
                h.lo[j] = 0.0;
                if let Some(e) = h.error.get_mut(j) {
                    *e = 0.0;
                }
            }
        }
    }
    Some(h)
}

/// A max-pool layer's outputs when every window's first largest entry is decided (each
/// earlier entry certainly smaller, each later one certainly not larger): the winner's value,
/// within the largest bound of its window.
fn max_pool(z: &Values, window: usize) -> Option<Values> {
    let groups = z.hi.len() / window;
    let mut out = Vec::with_capacity(groups);
    for g in 0..groups {
        let entries = g * window..(g + 1) * window;
        // The first largest by leading parts, then by trailing parts.
        let mut best = g * window;
        for o in entries.clone().skip(1) {
            if (z.hi[o], z.lo[o]) > (z.hi[best], z.lo[best]) {
                best = o;
            }
        }
        let winner = z.get(best);
        let mut error = winner.error;
        for o in entries {
            if o == best {
                continue;
            }
            let other = z.get(o);
            error = error.max(other.error);
            let sign = winner.minus(&other).certain_sign()?;
            let decided = match o < best {
                true => sign == 1,
                false => sign >= 0,
            };
            if !decided {
                return None;
            }
        }
        out.push(DoubleBounded { error, ..winner });
    }
    Some(Values::from_values(out))
}

/// The compensated forward pass from layer `m` (0-based) at its input `input`: each layer's
/// pre-activations (leading parts) and activations, and the pattern of the layers from `m`
/// up (layers below get empty masks). `None` where a sign or winner stays undecided, or a
/// layer's activation is not supported.
pub fn forward_from(model: &Model, m: usize, input: &Values) -> Option<Pass> {
    let net = model.net();
    let mut activations: Vec<Values> = Vec::with_capacity(net.layers().len() - m);
    let mut pre: Vec<Vec<f64>> = vec![Vec::new(); m];
    for layer in &net.layers()[m..] {
        let z = affine_layer(&layer.affine, activations.last().unwrap_or(input));
        let h = activate(layer, &z)?;
        pre.push(z.hi);
        activations.push(h);
    }
    let pattern = Pattern::from_pre(net, &pre);
    Some(Pass {
        pre,
        activations,
        pattern,
    })
}

/// What [`forward_from`] computed from layer `m`.
pub struct Pass {
    /// Per layer, the leading parts of its pre-activations (empty below `m`).
    pub pre: Vec<Vec<f64>>,
    /// Per layer from `m` up, its activations.
    pub activations: Vec<Values>,
    /// The exact pattern of the layers from `m` up.
    pub pattern: Pattern,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exact::{Rational, Scalar};
    use crate::model::forward::forward;
    use crate::model::ir::dense_layer;
    use crate::model::Network;

    /// A pattern the f64 bounds cannot decide: layer 2's value is `2^-70` after a
    /// cancellation of values near 1, far below the f64 bound and far above this tier's.
    #[test]
    fn decides_a_sign_the_f64_bounds_leave_open() {
        let l1 = dense_layer(2, 2, vec![1.0, 0.0, 0.0, 1.0], vec![0.0, 0.0], true).unwrap();
        let bias = -(2f64.powi(-52)) + 2f64.powi(-70);
        let l2 = dense_layer(1, 2, vec![1.0, -1.0], vec![bias], true).unwrap();
        let model = Model::new(Network::new(vec![l1, l2]).unwrap());
        let x = [1.0 + f64::EPSILON, 1.0];
        let layers = model.net().layers();
        let (h1, e1) = super::super::filter::bounded_affine_layer(&layers[0].affine, &x, &[]);
        let (z2, e2) = super::super::filter::bounded_affine_layer(&layers[1].affine, &h1, &e1);
        assert!(e2[0] > z2[0].abs(), "{z2:?} ± {e2:?}");
        let pass = forward_from(&model, 0, &Values::exact(&x)).expect("decided");
        let xr: Vec<Rational> = x.iter().map(|&v| Rational::from_f64(v)).collect();
        let exact = forward(model.exact(), &xr);
        assert_eq!(pass.pattern, Pattern::from_pre(model.exact(), &exact.pre));
        for (k, h) in pass.activations.iter().enumerate() {
            for (i, v) in exact.activations[k + 1].iter().enumerate() {
                let got = Rational::from_f64(h.hi[i]) + Rational::from_f64(h.lo[i]);
                let e = h.error.get(i).copied().unwrap_or(0.0);
                assert!(
                    (got - v.clone()).abs() <= Rational::from_f64(e),
                    "layer {k}"
                );
            }
        }
    }
}
