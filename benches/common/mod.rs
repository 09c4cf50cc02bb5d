//! The networks the benchmarks share (each benchmark uses some of them).

#![allow(dead_code)]

use dtdcert::model::ir::{dense_layer, Dense};
use dtdcert::model::relnet::{BatchNorm, ConvBlock, RelationNetwork};
use dtdcert::model::Network;
use ndarray::{Array1, Array2};
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

fn gaussian(rng: &mut ChaCha8Rng, n: usize, scale: f64) -> Vec<f64> {
    (0..n)
        .map(|_| {
            let v: f64 = StandardNormal.sample(rng);
            (v * scale) as f32 as f64
        })
        .collect()
}

fn dense(rng: &mut ChaCha8Rng, out: usize, inp: usize) -> Dense {
    Dense::new(
        Array2::from_shape_vec(
            (out, inp),
            gaussian(rng, out * inp, (2.0 / inp as f64).sqrt()),
        )
        .unwrap(),
        Array1::from(gaussian(rng, out, 0.01)),
    )
    .unwrap()
}

/// A Sort-of-CLEVR-sized relation network with random f32 weights: 3×75×75 images, four
/// blocks of [Conv 3×3 stride 2 pad 1, 24 channels, batch norm, ReLU] (→ 5×5 = 25 objects, 625
/// pairs), a question of 11 values, g = 63 → 256 → 256 → 256 → 256, f = 256 → 256 → 256 → 10.
pub fn sort_of_clevr(rng: &mut ChaCha8Rng) -> RelationNetwork {
    let mut conv = Vec::new();
    let mut c_in = 3;
    for _ in 0..4 {
        let uniform = |rng: &mut ChaCha8Rng, lo: f32, hi: f32| -> Vec<f64> {
            (0..24)
                .map(|_| f64::from(rng.random_range(lo..hi)))
                .collect()
        };
        conv.push(ConvBlock {
            kernel: gaussian(rng, 24 * c_in * 9, (2.0 / (9 * c_in) as f64).sqrt()),
            shape: [24, c_in, 3, 3],
            bias: None,
            stride: 2,
            padding: 1,
            batch_norm: Some(BatchNorm {
                scale: uniform(rng, 0.5, 1.5),
                shift: uniform(rng, -0.2, 0.2),
                mean: uniform(rng, -0.1, 0.1),
                var: uniform(rng, 0.5, 2.0),
                eps: 1e-5,
            }),
        });
        c_in = 24;
    }
    let g = vec![
        dense(rng, 256, 2 * 26 + 11),
        dense(rng, 256, 256),
        dense(rng, 256, 256),
        dense(rng, 256, 256),
    ];
    let f = vec![
        dense(rng, 256, 256),
        dense(rng, 256, 256),
        dense(rng, 10, 256),
    ];
    RelationNetwork::new([3, 75, 75], conv, None, 11, g, f).unwrap()
}

/// Whether the GPU rows are wanted (`-- cuda`) and libtorch finds a CUDA device; prints the
/// thread counts and the answer.
#[cfg(feature = "torch")]
pub fn torch_banner() -> bool {
    let cuda = std::env::args().any(|a| a == "cuda") && dtdcert::torch::cuda_available();
    println!(
        "threads: rayon {}, libtorch {}; CUDA: {}",
        rayon::current_num_threads(),
        tch::get_num_threads(),
        if cuda { "yes" } else { "no" }
    );
    cuda
}
