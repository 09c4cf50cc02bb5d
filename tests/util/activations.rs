//! Random small MLPs with Clip, LeakyRelu and PRelu activations: weights, constants and
//! inputs on a grid of eighths (every value exact in f64), or mixed with float32 values.

use dtdcert::model::ir::dense_layer;
use dtdcert::model::{Activation, Layer, Model, Network};
use proptest::prelude::*;

/// Widths of the networks: 3 inputs, two hidden layers with activations, 2 outputs.
pub const WIDTHS: [usize; 4] = [3, 4, 3, 2];

pub fn eighths() -> impl Strategy<Value = f64> {
    (-16i32..=16).prop_map(|k| f64::from(k) / 8.0)
}

pub fn activation(width: usize) -> impl Strategy<Value = Activation> {
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
pub type Params = (Vec<f64>, Vec<f64>);

pub fn params(rows: usize, cols: usize) -> impl Strategy<Value = Params> {
    (
        prop::collection::vec(eighths(), rows * cols),
        prop::collection::vec(eighths(), rows),
    )
}

pub fn network() -> impl Strategy<Value = (Vec<Params>, Vec<Activation>)> {
    let layers: Vec<_> = WIDTHS.windows(2).map(|w| params(w[1], w[0])).collect();
    let acts: Vec<_> = WIDTHS[1..WIDTHS.len() - 1]
        .iter()
        .map(|&w| activation(w))
        .collect();
    (layers, acts)
}

/// The network as given: hidden layers with their activations, the last one linear.
pub fn with_activations(layers: &[Params], acts: &[Activation]) -> Network {
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

pub fn weight() -> impl Strategy<Value = f64> {
    prop_oneof![eighths(), (-2.0f64..2.0).prop_map(|v| v as f32 as f64)]
}

pub fn mixed_params(rows: usize, cols: usize) -> impl Strategy<Value = Params> {
    (
        prop::collection::vec(weight(), rows * cols),
        prop::collection::vec(weight(), rows),
    )
}

/// A network of [`WIDTHS`] with mixed weights and random activations, and an input.
pub fn mixed_network_and_input() -> impl Strategy<Value = (Model, Vec<f64>)> {
    let layers: Vec<_> = WIDTHS
        .windows(2)
        .map(|w| mixed_params(w[1], w[0]))
        .collect();
    let acts: Vec<_> = WIDTHS[1..WIDTHS.len() - 1]
        .iter()
        .map(|&w| activation(w))
        .collect();
    (layers, acts, prop::collection::vec(weight(), WIDTHS[0]))
        .prop_map(|(layers, acts, x)| (Model::new(with_activations(&layers, &acts)), x))
}
