//! The f64 matrix products `gemm` and `torch_gemm` time: C (M×N) = A (M×K) · B (K×N), every
//! matrix row-major, with seeded values in [−1, 1).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One product's shape and where it comes from.
pub struct Shape {
    /// The benchmark's name for it.
    pub name: &'static str,
    /// Rows of A and C.
    pub m: usize,
    /// Columns of A, rows of B.
    pub k: usize,
    /// Columns of B and C.
    pub n: usize,
}

impl Shape {
    /// Floating-point operations of the product, 2·M·N·K (a multiply and an add each).
    pub fn flops(&self) -> u64 {
        2 * (self.m * self.n * self.k) as u64
    }
}

/// VGG-16's convolutions at 224×224 for one image as im2col products (M = output channels,
/// K = input channels · 9, N = output height · width), each shape once, and the forward
/// products of the 784-256-256-128-10 MLP on 8,192 inputs (M = inputs, K = a layer's input
/// width, N = its output width).
pub const SHAPES: [Shape; 13] = [
    shape("vgg16 conv1_1", 64, 27, 224 * 224),
    shape("vgg16 conv1_2", 64, 576, 224 * 224),
    shape("vgg16 conv2_1", 128, 576, 112 * 112),
    shape("vgg16 conv2_2", 128, 1152, 112 * 112),
    shape("vgg16 conv3_1", 256, 1152, 56 * 56),
    shape("vgg16 conv3_2-3", 256, 2304, 56 * 56),
    shape("vgg16 conv4_1", 512, 2304, 28 * 28),
    shape("vgg16 conv4_2-3", 512, 4608, 28 * 28),
    shape("vgg16 conv5_1-3", 512, 4608, 14 * 14),
    shape("mlp 784-256", 8192, 784, 256),
    shape("mlp 256-256", 8192, 256, 256),
    shape("mlp 256-128", 8192, 256, 128),
    shape("mlp 128-10", 8192, 128, 10),
];

const fn shape(name: &'static str, m: usize, k: usize, n: usize) -> Shape {
    Shape { name, m, k, n }
}

/// `len` seeded values in [−1, 1) (the same for the same `seed` in both benchmarks).
pub fn values(len: usize, seed: u64) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
}

/// The benchmark's label of a shape: its name and M×K×N.
pub fn label(s: &Shape) -> String {
    format!("{} {}x{}x{}", s.name, s.m, s.k, s.n)
}
