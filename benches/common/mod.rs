//! The network the benchmarks share.

use dtdcert::model::ir::dense_layer;
use dtdcert::model::Network;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// Layer widths of the wide MLP.
pub const WIDTHS: [usize; 5] = [784, 256, 256, 128, 10];

/// A 784-256-256-128-10 ReLU MLP with Gaussian weights scaled by 1/sqrt(fan_in) and small
/// uniform biases, all f32 values.
pub fn wide_mlp(rng: &mut ChaCha8Rng) -> Network {
    let layers = WIDTHS
        .windows(2)
        .enumerate()
        .map(|(i, w)| {
            let scale = 1.0 / (w[0] as f64).sqrt();
            let weight = (0..w[0] * w[1])
                .map(|_| {
                    let v: f64 = StandardNormal.sample(rng);
                    (v * scale) as f32 as f64
                })
                .collect();
            let bias = (0..w[1])
                .map(|_| rng.random_range(-0.05..0.05f32) as f64)
                .collect();
            dense_layer(w[1], w[0], weight, bias, i + 2 < WIDTHS.len()).unwrap()
        })
        .collect();
    Network::new(layers).unwrap()
}
