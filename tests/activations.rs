//! The forward pass of Clip, LeakyRelu and PRelu against ReLU networks that compute the same
//! function: each activation is a constant plus a sum of ReLUs,
//!
//! - LeakyRelu(α), PRelu: `relu(z) − α relu(−z)`
//! - Clip(lo, hi): `lo + relu(z − lo) − relu(z − hi)`; Clip(lo, ∞): `lo + relu(z − lo)`;
//!   Clip(−∞, hi): `hi − relu(hi − z)`,
//!
//! so widening each layer into one ReLU neuron per term, and folding the coefficients and the
//! constant into the next layer, gives a ReLU network with the same output. With weights,
//! constants and inputs small multiples of 1/8 every value is exact in f64, so the f64 forward
//! pass, the exact one, and the ReLU network's exact one must agree exactly.

use dtdcert::exact::{Rational, Scalar};
use dtdcert::model::forward::output;
use dtdcert::model::ir::dense_layer;
use dtdcert::model::{Activation, Layer, Network};
use proptest::prelude::*;

/// Widths of the networks: 3 inputs, two hidden layers with activations, 2 outputs.
const WIDTHS: [usize; 4] = [3, 4, 3, 2];

fn eighths() -> impl Strategy<Value = f64> {
    (-16i32..=16).prop_map(|k| f64::from(k) / 8.0)
}

fn activation(width: usize) -> impl Strategy<Value = Activation> {
    let quarter = |k: i32| f64::from(k) / 4.0;
    prop_oneof![
        Just(Activation::Relu),
        (-12i32..=12, 1i32..=12).prop_map(move |(lo, d)| Activation::Clip {
            lo: Some(quarter(lo)),
            hi: Some(quarter(lo + d)),
        }),
        (-12i32..=12).prop_map(move |lo| Activation::Clip {
            lo: Some(quarter(lo)),
            hi: None,
        }),
        (-12i32..=12).prop_map(move |hi| Activation::Clip {
            lo: None,
            hi: Some(quarter(hi)),
        }),
        eighths().prop_map(|alpha| Activation::LeakyRelu { alpha }),
        prop::collection::vec(eighths(), width).prop_map(|slopes| Activation::PRelu { slopes }),
    ]
}

/// One layer's weights (row-major, outputs × inputs) and bias.
type Params = (Vec<f64>, Vec<f64>);

fn params(rows: usize, cols: usize) -> impl Strategy<Value = Params> {
    (
        prop::collection::vec(eighths(), rows * cols),
        prop::collection::vec(eighths(), rows),
    )
}

fn network() -> impl Strategy<Value = (Vec<Params>, Vec<Activation>)> {
    let layers: Vec<_> = WIDTHS.windows(2).map(|w| params(w[1], w[0])).collect();
    let acts: Vec<_> = WIDTHS[1..WIDTHS.len() - 1]
        .iter()
        .map(|&w| activation(w))
        .collect();
    (layers, acts)
}

/// The network as given: hidden layers with their activations, the last one linear.
fn with_activations(layers: &[Params], acts: &[Activation]) -> Network {
    let built = layers
        .iter()
        .enumerate()
        .map(|(i, (w, b))| {
            let layer = dense_layer(
                WIDTHS[i + 1],
                WIDTHS[i],
                w.clone(),
                b.clone(),
                i < acts.len(),
            )
            .unwrap();
            match acts.get(i) {
                Some(act) => Layer {
                    activation: act.clone(),
                    ..layer
                },
                None => layer,
            }
        })
        .collect();
    Network::new(built).unwrap()
}

/// `act(z) = c + Σ coef · relu(σ z + θ)` for output `j`: `(c, [(coef, σ, θ)])`.
fn terms(act: &Activation, j: usize) -> (f64, Vec<(f64, f64, f64)>) {
    match act {
        Activation::Relu => (0.0, vec![(1.0, 1.0, 0.0)]),
        Activation::LeakyRelu { alpha } => (0.0, vec![(1.0, 1.0, 0.0), (-alpha, -1.0, 0.0)]),
        Activation::PRelu { slopes } => (0.0, vec![(1.0, 1.0, 0.0), (-slopes[j], -1.0, 0.0)]),
        Activation::Clip { lo: Some(lo), hi } => {
            let mut t = vec![(1.0, 1.0, -lo)];
            if let Some(hi) = hi {
                t.push((-1.0, 1.0, -hi));
            }
            (*lo, t)
        }
        Activation::Clip {
            lo: None,
            hi: Some(hi),
        } => (*hi, vec![(-1.0, -1.0, *hi)]),
        Activation::Clip { lo: None, hi: None } => unreachable!("a Clip has a bound"),
    }
}

/// The same function with ReLUs only: each hidden layer widened to one neuron per term, the
/// next layer's columns scaled by the coefficients and its bias shifted by the constants.
fn relu_only(layers: &[Params], acts: &[Activation]) -> Network {
    let mut built = Vec::new();
    // The next layer's input, as (column of the original layer's input, coefficient), and
    // the constant each original input contributes.
    let mut columns: Vec<(usize, f64)> = (0..WIDTHS[0]).map(|i| (i, 1.0)).collect();
    let mut constants = vec![0.0; WIDTHS[0]];
    for (i, (w, b)) in layers.iter().enumerate() {
        let (rows, cols) = (WIDTHS[i + 1], WIDTHS[i]);
        // The original layer on the widened input: z_j = Σ_k coef_k w_{j, col_k} h'_k + b'_j.
        let weight = |j: usize| -> Vec<f64> {
            columns
                .iter()
                .map(|&(c, coef)| coef * w[j * cols + c])
                .collect()
        };
        let bias = |j: usize| -> f64 {
            b[j] + (0..cols)
                .map(|c| w[j * cols + c] * constants[c])
                .sum::<f64>()
        };
        let Some(act) = acts.get(i) else {
            let weights: Vec<f64> = (0..rows).flat_map(weight).collect();
            let biases: Vec<f64> = (0..rows).map(bias).collect();
            built.push(dense_layer(rows, columns.len(), weights, biases, false).unwrap());
            break;
        };
        let (mut weights, mut biases) = (Vec::new(), Vec::new());
        let (mut next_columns, mut next_constants) = (Vec::new(), Vec::new());
        for j in 0..rows {
            let (c, t) = terms(act, j);
            next_constants.push(c);
            for (coef, sigma, theta) in t {
                weights.extend(weight(j).into_iter().map(|v| sigma * v));
                biases.push(sigma * bias(j) + theta);
                next_columns.push((j, coef));
            }
        }
        let width = biases.len();
        built.push(dense_layer(width, columns.len(), weights, biases, true).unwrap());
        columns = next_columns;
        constants = next_constants;
    }
    Network::new(built).unwrap()
}

fn exact(v: &[f64]) -> Vec<Rational> {
    v.iter().map(|&x| Rational::from_f64(x)).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_forward_pass_equals_a_relu_network_computing_the_same_function(
        (layers, acts) in network(),
        x in prop::collection::vec(eighths(), WIDTHS[0]),
    ) {
        let net = with_activations(&layers, &acts);
        let twin = relu_only(&layers, &acts);
        prop_assert!(twin.layers().iter().all(|l| l.activation.is_relu()));
        let want = output(&twin.to_exact(), &exact(&x));
        prop_assert_eq!(&output(&net.to_exact(), &exact(&x)), &want);
        // Every value is a small multiple of a power of two, so f64 computes it exactly.
        prop_assert_eq!(exact(&output(&net, &x)), want);
    }
}
