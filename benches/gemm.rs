//! f64 matrix products of the shapes dtdcert's layers make (`gemm_shapes`: VGG-16's
//! convolutions at 224×224 as im2col products, the 784-256-256-128-10 MLP on 8,192 inputs),
//! C = A · B with row-major matrices, by ndarray (`general_mat_mul`, the product behind `.dot`:
//! matrixmultiply, one thread) and by faer (`matmul` on rayon's pool with 2 tasks, and
//! sequential). Criterion reports the throughput in elements per second, each element a
//! floating-point operation (2·M·N·K per product): Gelem/s is GFLOP/s. `torch_gemm` times
//! libtorch's product on the same shapes.
//!
//! Run with `cargo bench --bench gemm` (criterion's arguments after `--`, e.g. `-- --warm-up-time
//! 1 --measurement-time 3 'vgg16 conv1_2'`).

mod gemm_shapes;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use faer::{Accum, MatMut, MatRef, Par};
use gemm_shapes::{label, values, SHAPES};
use ndarray::linalg::general_mat_mul;
use ndarray::Array2;

fn products(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm f64");
    group.sample_size(10);
    // Each sample the same number of products: a large one takes a good part of a second.
    group.sampling_mode(SamplingMode::Flat);
    for s in &SHAPES {
        group.throughput(Throughput::Elements(s.flops()));
        let a = Array2::from_shape_vec((s.m, s.k), values(s.m * s.k, 1)).unwrap();
        let b = Array2::from_shape_vec((s.k, s.n), values(s.k * s.n, 2)).unwrap();
        let mut out = Array2::<f64>::zeros((s.m, s.n));
        group.bench_function(BenchmarkId::new("ndarray", label(s)), |bench| {
            bench.iter(|| general_mat_mul(1.0, &a, &b, 0.0, &mut out))
        });
        let a_slice = a.as_slice().unwrap();
        let b_slice = b.as_slice().unwrap();
        let out_slice = out.as_slice_mut().unwrap();
        for (name, par) in [("faer rayon(2)", Par::rayon(2)), ("faer seq", Par::Seq)] {
            group.bench_function(BenchmarkId::new(name, label(s)), |bench| {
                bench.iter(|| {
                    let lhs = MatRef::from_row_major_slice(a_slice, s.m, s.k);
                    let rhs = MatRef::from_row_major_slice(b_slice, s.k, s.n);
                    let dst = MatMut::from_row_major_slice_mut(out_slice, s.m, s.n);
                    faer::linalg::matmul::matmul(dst, Accum::Replace, lhs, rhs, 1.0, par);
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, products);
criterion_main!(benches);
