//! Train-free relevances per second, the exact engine against the libtorch backend (feature
//! `torch`), on the same CPU and thread count: a 784-256-256-128-10 ReLU MLP at batch 1024
//! and the Sort-of-CLEVR-sized relation network at batch 64, rule z+ (= LRP-α1β0 without
//! bias) and ε. The exact engine runs samples in parallel (rayon), as `dtdcert explain` does;
//! the torch backend runs one batch, its products on libtorch's threads. Each figure is the
//! best of several timed runs after a warm-up. `scripts/bench_lrp_reference.sh` measures
//! Captum and Zennit on the same networks' shapes.
//!
//! Run with `LIBTORCH=$(scripts/setup_torch.sh) cargo bench --features torch --bench
//! torch_relevance` (`-- cuda` adds the GPU where one is found).

use std::time::Instant;

mod common;

use dtdcert::dtd::{explain, DtdSettings, Rule};
use dtdcert::model::forward::{argmax, forward};
use dtdcert::model::relnet::Options;
use dtdcert::model::Network;
use dtdcert::torch::{Precision, TorchNet};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use tch::Device;

/// The best of `runs` timings of `f`, in seconds, after one warm-up call.
fn best_of(runs: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..runs)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn exact_engine(net: &Network, xs: &[Vec<f64>], settings: &DtdSettings) -> f64 {
    let runs = if xs.len() * net.input_dim() > 1 << 22 {
        1
    } else {
        3
    };
    best_of(runs, || {
        let sum: f64 = xs
            .par_iter()
            .map(|x| {
                let trace = forward(net, x);
                let k = argmax(trace.output());
                explain(net, &trace, settings, k, false).input_relevance()[0]
            })
            .sum();
        std::hint::black_box(sum);
    })
}

fn torch_backend(
    net: &Network,
    xs: &[Vec<f64>],
    settings: &DtdSettings,
    precision: Precision,
    device: Device,
) -> f64 {
    let torch = TorchNet::new(net, precision, device);
    let flat: Vec<f64> = xs.iter().flatten().copied().collect();
    let batch = torch.input(&flat, xs.len());
    best_of(5, || {
        let r = torch.explain(&batch, &[], settings).unwrap();
        // Waits for the device: the values are copied back.
        std::hint::black_box(dtdcert::torch::to_f64(&r.lower[0].narrow(0, 0, 1)));
    })
}

fn report(name: &str, batch: usize, rows: &[(String, f64)]) {
    println!("| network | batch | backend | s per batch | relevances/s |");
    println!("|---|---|---|---|---|");
    for (backend, s) in rows {
        println!(
            "| {name} | {batch} | {backend} | {s:.4} | {:.0} |",
            batch as f64 / s
        );
    }
}

fn main() {
    let cuda = common::torch_banner();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mlp = common::wide_mlp(&mut rng);
    let rn = common::sort_of_clevr(&mut rng);
    let mut question = vec![0.0; 11];
    question[2] = 1.0;
    question[6] = 1.0;
    question[9] = 1.0;
    let rn = rn.network(&question, Options::default()).unwrap();
    for (name, net, batch) in [
        ("784-256-256-128-10", &mlp, 1024usize),
        ("Sort-of-CLEVR relation network", &rn, 64),
    ] {
        let xs: Vec<Vec<f64>> = (0..batch)
            .map(|_| {
                (0..net.input_dim())
                    .map(|_| rng.random_range(0.0..1.0f32) as f64)
                    .collect()
            })
            .collect();
        for rule in [Rule::ZPlus, Rule::Epsilon(0.01)] {
            let settings = DtdSettings {
                rule,
                ..DtdSettings::default()
            };
            let mut rows = vec![(
                format!("exact engine f64, {rule}"),
                exact_engine(net, &xs, &settings),
            )];
            for (precision, label) in [(Precision::F64, "f64"), (Precision::F32, "f32")] {
                rows.push((
                    format!("torch CPU {label}, {rule}"),
                    torch_backend(net, &xs, &settings, precision, Device::Cpu),
                ));
                if cuda {
                    rows.push((
                        format!("torch CUDA {label}, {rule}"),
                        torch_backend(net, &xs, &settings, precision, Device::Cuda(0)),
                    ));
                }
            }
            report(name, batch, &rows);
        }
    }
}
