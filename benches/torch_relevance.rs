//! Train-free relevances per second, the exact engine against the libtorch backend (feature
//! `torch`), on the same CPU and thread count: a 784-256-256-128-10 ReLU MLP at batch 1024
//! and the Sort-of-CLEVR-sized relation network at batch 64, rule z+ (= LRP-α1β0 without
//! bias) and ε. The exact engine runs samples in parallel (rayon), as `dtdcert explain` does;
//! the torch backend runs one batch, its products on libtorch's threads. Each figure is the
//! best of several timed runs after a warm-up. `scripts/bench_lrp_reference.sh` measures
//! Captum and Zennit on the same networks' shapes.
//!
//! Run with `LIBTORCH=$(scripts/setup_torch.sh) cargo bench --features torch --bench
//! torch_relevance` (`-- cuda` adds the GPU where one is found, with the `cuda` feature).
//! Further arguments, for the GPU run (`scripts/gpu_run.sh`): `--tiny` (batches of 16 and 1,
//! one timed run each),
//! `--skip-cpu` (the GPU rows only), `--json FILE` (every row as JSON as well).

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

/// `most`: the most timed runs (fewer for large batches).
fn exact_engine(net: &Network, xs: &[Vec<f64>], settings: &DtdSettings, most: usize) -> f64 {
    let runs = if xs.len() * net.input_dim() > 1 << 22 {
        1
    } else {
        most.min(3)
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
    most: usize,
) -> f64 {
    let torch = TorchNet::new(net, precision, device);
    let flat: Vec<f64> = xs.iter().flatten().copied().collect();
    let batch = torch.input(&flat, xs.len());
    best_of(most.min(5), || {
        let r = torch.explain(&batch, &[], settings).unwrap();
        // Waits for the device: the values are copied back.
        std::hint::black_box(dtdcert::torch::to_f64(&r.lower[0].narrow(0, 0, 1)));
    })
}

/// One measured row: the network, its batch, the backend and the rule, seconds per batch.
struct Row {
    network: &'static str,
    batch: usize,
    backend: String,
    rule: String,
    seconds: f64,
}

fn report(rows: &[Row]) {
    println!("| network | batch | backend | s per batch | relevances/s |");
    println!("|---|---|---|---|---|");
    for r in rows {
        println!(
            "| {} | {} | {}, {} | {:.4} | {:.0} |",
            r.network,
            r.batch,
            r.backend,
            r.rule,
            r.seconds,
            r.batch as f64 / r.seconds
        );
    }
}

fn main() {
    let cuda = common::torch_banner();
    let args: Vec<String> = std::env::args().collect();
    let tiny = args.iter().any(|a| a == "--tiny");
    let skip_cpu = args.iter().any(|a| a == "--skip-cpu");
    let json = args
        .iter()
        .position(|a| a == "--json")
        .and_then(|i| args.get(i + 1));
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mlp = common::wide_mlp(&mut rng);
    let rn = common::sort_of_clevr(&mut rng);
    let mut question = vec![0.0; 11];
    question[2] = 1.0;
    question[6] = 1.0;
    question[9] = 1.0;
    let rn = rn.network(&question, Options::default()).unwrap();
    let (mlp_batch, rn_batch, most) = if tiny { (16, 1, 1) } else { (1024, 64, 5) };
    let mut all = Vec::new();
    for (name, net, batch) in [
        ("784-256-256-128-10", &mlp, mlp_batch),
        ("Sort-of-CLEVR relation network", &rn, rn_batch),
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
            let row = |backend: &str, seconds| Row {
                network: name,
                batch,
                backend: backend.into(),
                rule: rule.to_string(),
                seconds,
            };
            let mut rows = Vec::new();
            if !skip_cpu {
                rows.push(row(
                    "exact engine f64",
                    exact_engine(net, &xs, &settings, most),
                ));
            }
            for (precision, label) in [(Precision::F64, "f64"), (Precision::F32, "f32")] {
                if !skip_cpu {
                    let s = torch_backend(net, &xs, &settings, precision, Device::Cpu, most);
                    rows.push(row(&format!("torch CPU {label}"), s));
                }
                if cuda {
                    let s = torch_backend(net, &xs, &settings, precision, Device::Cuda(0), most);
                    rows.push(row(&format!("torch CUDA {label}"), s));
                }
            }
            report(&rows);
            all.extend(rows);
        }
    }
    if let Some(path) = json {
        let rows: Vec<serde_json::Value> = all
            .iter()
            .map(|r| {
                serde_json::json!({
                    "network": r.network, "batch": r.batch, "backend": r.backend,
                    "rule": r.rule, "seconds_per_batch": r.seconds,
                    "relevances_per_second": r.batch as f64 / r.seconds,
                })
            })
            .collect();
        let text = serde_json::to_string_pretty(&serde_json::json!({ "cuda": cuda, "rows": rows }))
            .unwrap();
        std::fs::write(path, text).unwrap_or_else(|e| panic!("{path}: cannot write: {e}"));
    }
}
