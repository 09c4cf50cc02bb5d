//! libtorch's f64 matrix product (`matmul_out`, 2 threads: `tch::set_num_threads(2)`) on the
//! shapes of `gemm` (`gemm_shapes`), the same seeded row-major matrices. Criterion reports
//! elements per second, each element a floating-point operation (2·M·N·K per product):
//! Gelem/s is GFLOP/s.
//!
//! Run with `LIBTORCH=$(scripts/setup_torch.sh) cargo bench --features torch --bench
//! torch_gemm` (criterion's arguments after `--`).

mod gemm_shapes;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use gemm_shapes::{label, values, SHAPES};
use tch::{Kind, Tensor};

fn products(c: &mut Criterion) {
    tch::set_num_threads(2);
    let mut group = c.benchmark_group("gemm f64");
    group.sample_size(10);
    // Each sample the same number of products: a large one takes a good part of a second.
    group.sampling_mode(SamplingMode::Flat);
    for s in &SHAPES {
        group.throughput(Throughput::Elements(s.flops()));
        let a = Tensor::from_slice(&values(s.m * s.k, 1)).view([s.m as i64, s.k as i64]);
        let b = Tensor::from_slice(&values(s.k * s.n, 2)).view([s.k as i64, s.n as i64]);
        let out = Tensor::zeros([s.m as i64, s.n as i64], (Kind::Double, tch::Device::Cpu));
        group.bench_function(BenchmarkId::new("libtorch 2 threads", label(s)), |bench| {
            bench.iter(|| a.matmul_out(&out, &b))
        });
    }
    group.finish();
}

criterion_group!(benches, products);
criterion_main!(benches);
