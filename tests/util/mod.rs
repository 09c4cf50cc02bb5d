//! Helpers shared by the integration tests: random small networks and inputs.

#![allow(dead_code)]

pub mod activations;
pub mod conv;
pub mod onnx;
pub mod operator;
#[cfg(feature = "torch")]
pub mod parity;
pub mod runs;
pub mod verdicts;

use std::ops::RangeInclusive;

use dtdcert::dtd::{explain, DtdSettings, RootOutcome, Rule};
use dtdcert::exact::{Rational, Scalar};
use dtdcert::model::forward::{activate, forward};
use dtdcert::model::ir::{dense_layer, Affine, Layer, Sparse};
use dtdcert::model::{Model, Network};
use dtdcert::region::{
    membership, membership_batch, membership_filtered, trace_and_pattern, Membership, Pattern,
};
use ndarray::Array2;
use proptest::test_runner::TestCaseError;

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

/// [`mlp`] with the two other shapes of region: after a hidden ReLU layer, sometimes its last
/// outputs skip the ReLU (a carried tail, as a residual connection's input: rows of the
/// layer's weights, or copies of its inputs, identity neurons), sometimes the layer has no
/// activation at all and carries copies of its inputs beside its own outputs (as the summands'
/// layer of a residual addition read apart), and sometimes a max-pool layer follows with one
/// window of 2 per output (the output itself and a copy of another, so that the next layer's
/// width is unchanged).
pub fn mlp_with_tails_and_pools<S: Strategy<Value = f64> + 'static>(
    inputs: RangeInclusive<usize>,
    widths: RangeInclusive<usize>,
    depth: RangeInclusive<usize>,
    weight: fn() -> S,
) -> impl Strategy<Value = Network> {
    mlp(inputs, widths, depth, weight)
        .prop_flat_map(|net| {
            let hidden = net.layers().len() - 1;
            (
                Just(net),
                prop::collection::vec((0u8..5, 0u8..3, any::<u64>()), hidden),
            )
        })
        .prop_map(|(net, choices)| {
            let mut layers = Vec::new();
            // Copies added to the layer before, which this one reads besides its own inputs.
            let mut carried = 0;
            for (k, layer) in net.layers().iter().enumerate() {
                let mut layer = layer.clone();
                if carried > 0 {
                    layer = reading_copies(&layer, carried);
                }
                let width = layer.affine.out_dim();
                let (tail, pool, seed) = choices.get(k).copied().unwrap_or((4, 1, 0));
                match tail {
                    0 => layer.linear_tail = 1 + seed as usize % width,
                    1 => {
                        layer = with_copies(&layer, 1 + seed as usize % width, seed);
                        layer.linear_tail = layer.affine.out_dim() - width;
                    }
                    2 => {
                        layer = with_copies(&layer, 1 + seed as usize % 3, seed);
                        layer.relu = false;
                    }
                    _ => {}
                }
                carried = layer.affine.out_dim() - width;
                let width = layer.affine.out_dim();
                layers.push(layer);
                if pool == 0 {
                    let rows: Vec<Vec<(u32, f64)>> = (0..width)
                        .flat_map(|g| {
                            let other = (seed >> (4 * (g % 16))) as usize % width;
                            [vec![(g as u32, 1.0)], vec![(other as u32, 1.0)]]
                        })
                        .collect();
                    let gather =
                        Sparse::from_rows(width, rows, ndarray::Array1::zeros(2 * width)).unwrap();
                    layers.push(Layer {
                        affine: Affine::Sparse(gather),
                        relu: false,
                        activation: dtdcert::model::Activation::Relu,
                        max_pool: Some(2),
                        linear_tail: 0,
                    });
                }
            }
            Network::new(layers).unwrap()
        })
}

/// `layer` with `copies` more outputs after its own, each a copy of one of its inputs (picked
/// by `seed`): a row of one weight of 1 and a bias of 0, an identity neuron where no activation
/// follows it.
pub fn with_copies(layer: &Layer, copies: usize, seed: u64) -> Layer {
    with_copies_of(layer, copies, seed).0
}

/// [`with_copies`], with the input each added output copies, in order.
pub fn with_copies_of(layer: &Layer, copies: usize, seed: u64) -> (Layer, Vec<usize>) {
    let affine = &layer.affine;
    let n_in = affine.in_dim();
    let mut rows: Vec<Vec<(u32, f64)>> = (0..affine.out_dim())
        .map(|j| {
            affine
                .row(j)
                .entries()
                .map(|(i, &w)| (i as u32, w))
                .collect()
        })
        .collect();
    let mut bias: Vec<f64> = (0..affine.out_dim()).map(|j| *affine.bias(j)).collect();
    let mut copied = Vec::with_capacity(copies);
    for c in 0..copies {
        let i = (seed.rotate_right(8 * c as u32 + 3)) as usize % n_in;
        rows.push(vec![(i as u32, 1.0)]);
        bias.push(0.0);
        copied.push(i);
    }
    let layer = Layer {
        affine: Affine::Sparse(Sparse::from_rows(n_in, rows, ndarray::Array1::from(bias)).unwrap()),
        ..layer.clone()
    };
    (layer, copied)
}

/// `layer` reading `copies` more inputs after its own: output `j` adds the `j`-th of them (in
/// turn) with weight 1, as a residual connection adds a carried value.
pub fn reading_copies(layer: &Layer, copies: usize) -> Layer {
    let affine = &layer.affine;
    let n_in = affine.in_dim();
    let rows: Vec<Vec<(u32, f64)>> = (0..affine.out_dim())
        .map(|j| {
            let mut row: Vec<(u32, f64)> = affine
                .row(j)
                .entries()
                .map(|(i, &w)| (i as u32, w))
                .collect();
            row.push(((n_in + j % copies) as u32, 1.0));
            row
        })
        .collect();
    let bias: Vec<f64> = (0..affine.out_dim()).map(|j| *affine.bias(j)).collect();
    Layer {
        affine: Affine::Sparse(
            Sparse::from_rows(n_in + copies, rows, ndarray::Array1::from(bias)).unwrap(),
        ),
        ..layer.clone()
    }
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

/// The f64 verdict with its exact fallback, one root at a time and batched per layer, equals
/// the verdict computed purely in rationals, for every root of `x`'s explanation.
/// Returns how many roots it compared.
pub fn verdicts_agree(
    model: &Model,
    x: &[f64],
    settings: &DtdSettings,
) -> Result<usize, TestCaseError> {
    let mut compared = 0;
    let (trace, pattern, _) = trace_and_pattern(model, x);
    let k = dtdcert::model::forward::argmax(trace.output());
    let e = explain(model.net(), &trace, settings, k, true);
    for (index, step) in e.layers.iter().enumerate() {
        let points: Vec<&Vec<f64>> = step
            .neurons
            .iter()
            .filter_map(|n| match &n.outcome {
                RootOutcome::Root { point, .. } => Some(point),
                RootOutcome::None(_) => None,
            })
            .collect();
        if points.is_empty() {
            continue;
        }
        let d = points[0].len();
        let batch = Array2::from_shape_fn((points.len(), d), |(r, c)| points[r][c]);
        let batched = membership_batch(model, &pattern, index, &batch);
        for (point, (in_batch, _)) in points.iter().zip(&batched) {
            compared += 1;
            let (fast, _) = membership_filtered(model, &pattern, index, point);
            let exact = membership(model.exact(), &pattern, index, &to_exact(point));
            for verdict in [&fast, in_batch] {
                match (verdict, &exact) {
                    (Membership::Inside { .. }, Membership::Inside { .. }) => {}
                    (
                        Membership::Outside {
                            layer: l1,
                            neuron: n1,
                            ..
                        },
                        Membership::Outside {
                            layer: l2,
                            neuron: n2,
                            ..
                        },
                    ) => prop_assert_eq!((l1, n1), (l2, n2)),
                    _ => prop_assert!(false, "f64 {:?} vs exact {:?}", verdict, exact),
                }
            }
        }
    }
    Ok(compared)
}

/// At every root of `x`'s explanation (computed in rationals) that lies inside `P_l(x)`, the
/// network above layer `l` equals its first-order Taylor expansion at the layer input.
/// Returns how many inside roots it checked.
pub fn taylor_exact_at_inside_roots(
    model: &Model,
    x: &[f64],
    settings: &DtdSettings,
) -> Result<usize, TestCaseError> {
    let mut checked = 0;
    let net = model.exact();
    let trace = forward(net, &to_exact(x));
    let pattern = Pattern::from_pre(net, &trace.pre);
    let out: Vec<f64> = trace.output().iter().map(Scalar::to_f64).collect();
    let k = dtdcert::model::forward::argmax(&out);
    let e = explain(net, &trace, settings, k, true);
    for (index, step) in e.layers.iter().enumerate() {
        let a = trace.layer_input(index);
        for n in &step.neurons {
            let RootOutcome::Root { point, .. } = &n.outcome else {
                continue;
            };
            if !membership(net, &pattern, index, point).is_inside() {
                continue;
            }
            checked += 1;
            // The real network from layer `index` upwards at the root.
            let mut h = point.clone();
            let mut z = Vec::new();
            for layer in &net.layers()[index..] {
                layer.affine.apply_into(&h, &mut z);
                z = activate(layer, &z);
                std::mem::swap(&mut h, &mut z);
            }
            // Taylor expansion at a: f(a) + J (ã − a), J the region's linear map.
            let step: Vec<Rational> = point
                .iter()
                .zip(a)
                .map(|(p, a)| p.clone() - a.clone())
                .collect();
            let moved = linearised_step(net, &pattern, index, step);
            for ((value, fa), d) in h.iter().zip(trace.output()).zip(&moved) {
                prop_assert_eq!(value, &(fa.clone() + d.clone()));
            }
        }
    }
    Ok(checked)
}

/// `J d`: the direction `d` (an input of layer `m`, 0-based) through the network with the
/// activation pattern fixed (inactive ReLU outputs zeroed, each max-pool window's winner
/// passed on, carried outputs unchanged), without biases.
pub fn linearised_step(
    net: &Network<Rational>,
    pattern: &Pattern,
    m: usize,
    mut d: Vec<Rational>,
) -> Vec<Rational> {
    for (k, layer) in net.layers().iter().enumerate().skip(m) {
        let mut z: Vec<Rational> = (0..layer.affine.out_dim())
            .map(|j| layer.affine.row(j).dot(&d))
            .collect();
        if let Some(mask) = pattern.layer(k) {
            for (v, &active) in z.iter_mut().zip(mask) {
                if !active {
                    *v = Rational::zero();
                }
            }
        }
        if let Some(selection) = pattern.selection(k) {
            z = selection
                .selected
                .iter()
                .map(|&s| z[s as usize].clone())
                .collect();
        }
        d = z;
    }
    d
}

/// The root rules whose roots satisfy w_j · ã = w_j · a − R_j (all but rule 0).
pub fn hyperplane_rules() -> impl Strategy<Value = Rule> {
    prop_oneof![
        Just(Rule::Z),
        Just(Rule::ZPlus),
        Just(Rule::Gamma(0.25)),
        Just(Rule::WSquare),
        Just(Rule::ZBox { lo: -1.0, hi: 1.0 }),
    ]
}

/// The train-free rules other than nearest-valid (every rule with a batched step), zB on the
/// box `[-bound, bound]` and αβ with `(alpha, beta)`.
pub fn train_free_rules(bound: f64, (alpha, beta): (f64, f64)) -> impl Strategy<Value = Rule> {
    prop_oneof![
        Just(Rule::Zero),
        Just(Rule::Z),
        Just(Rule::ZPlus),
        Just(Rule::Gamma(0.25)),
        Just(Rule::WSquare),
        Just(Rule::ZBox {
            lo: -bound,
            hi: bound
        }),
        Just(Rule::Epsilon(0.01)),
        Just(Rule::AlphaBeta { alpha, beta }),
        Just(Rule::Flat),
    ]
}
