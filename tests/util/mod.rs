//! Helpers shared by the integration tests: random small networks and inputs.

#![allow(dead_code)]

use std::ops::RangeInclusive;

use dtdcert::exact::{Rational, Scalar};
use dtdcert::model::ir::dense_layer;
use dtdcert::model::{Model, Network};

use proptest::prelude::*;

/// Weights that are f32 values, half of them from a small dyadic grid so that exact ties and
/// points on faces of regions occur often.
pub fn weight() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-8i32..=8).prop_map(|k| k as f64 / 4.0),
        (-2.0f64..2.0).prop_map(|v| v as f32 as f64),
    ]
}

/// A random MLP: 1–5 inputs, 1–3 hidden layers of width 1–5, 1–3 outputs.
pub fn network() -> impl Strategy<Value = Network> {
    mlp(1..=5, 1..=5, 1..=3, weight)
}

/// A random MLP with `inputs` inputs, 1–3 hidden ReLU layers of `widths` neurons, 1–3 outputs
/// with or without a last ReLU, and parameters drawn from `weight()`.
pub fn mlp<S: Strategy<Value = f64> + 'static>(
    inputs: RangeInclusive<usize>,
    widths: RangeInclusive<usize>,
    depth: RangeInclusive<usize>,
    weight: fn() -> S,
) -> impl Strategy<Value = Network> {
    (
        inputs,
        prop::collection::vec(widths, depth),
        1usize..=3,
        any::<bool>(),
    )
        .prop_flat_map(move |(input, hidden, outputs, last_relu)| {
            let mut widths = vec![input];
            widths.extend(hidden);
            widths.push(outputs);
            let shapes: Vec<(usize, usize)> = widths.windows(2).map(|w| (w[1], w[0])).collect();
            let params: Vec<_> = shapes
                .iter()
                .map(|&(r, c)| {
                    (
                        prop::collection::vec(weight(), r * c),
                        prop::collection::vec(weight(), r),
                    )
                })
                .collect();
            (Just(shapes), params, Just(last_relu))
        })
        .prop_map(|(shapes, params, last_relu)| {
            let n = shapes.len();
            let layers = shapes
                .into_iter()
                .zip(params)
                .enumerate()
                .map(|(i, ((r, c), (w, b)))| {
                    dense_layer(r, c, w, b, i + 1 < n || last_relu).unwrap()
                })
                .collect();
            Network::new(layers).unwrap()
        })
}

/// A network with an input of matching width; inputs in `[lo, hi]`.
pub fn network_and_input(lo: f64, hi: f64) -> impl Strategy<Value = (Model, Vec<f64>)> {
    network().prop_flat_map(move |net| {
        let d = net.input_dim();
        let x = prop::collection::vec(
            prop_oneof![
                (0i32..=8).prop_map(move |k| lo + (hi - lo) * k as f64 / 8.0),
                (lo..hi).prop_map(|v| v as f32 as f64),
            ],
            d,
        );
        (Just(Model::new(net)), x)
    })
}

pub fn to_exact(v: &[f64]) -> Vec<Rational> {
    v.iter().map(|&x| Rational::from_f64(x)).collect()
}
