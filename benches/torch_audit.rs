//! Audits per second, the exact engine against the libtorch backend (feature `torch`), on
//! the same CPU and thread count: a 784-256-256-128-10 MLP with random weights, 1000
//! samples, every root of every layer (rule z+). The exact engine decides each verdict with
//! f64 error bounds and an exact fallback, samples in parallel; the torch backend computes
//! each root's constraint values in its precision, a batch of samples at a time. Also counts
//! the roots whose verdicts differ from the exact engine's.
//!
//! Run with `LIBTORCH=$(scripts/setup_torch.sh) cargo bench --features torch --bench
//! torch_audit` (`-- cuda` adds the GPU where one is found).

mod common;

use std::time::Instant;

use common::{wide_mlp, WIDTHS};
use dtdcert::audit::{audit_sample, AuditSettings, SampleRecord};
use dtdcert::dtd::{DtdSettings, Rule};
use dtdcert::model::Model;
use dtdcert::torch::audit::TorchAuditor;
use dtdcert::torch::Precision;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use tch::Device;

const SAMPLES: usize = 1000;

/// Roots, and roots whose validity differs between two audits of the same samples.
fn differing(a: &[SampleRecord], b: &[SampleRecord]) -> (usize, usize) {
    let (mut roots, mut differ) = (0, 0);
    for (ra, rb) in a.iter().zip(b) {
        for (la, lb) in ra.layers.iter().zip(&rb.layers) {
            for (na, nb) in la.neurons.iter().zip(&lb.neurons) {
                if let (Some(va), Some(vb)) = (&na.root, &nb.root) {
                    roots += 1;
                    differ += usize::from(va.valid != vb.valid);
                }
            }
        }
    }
    (roots, differ)
}

fn main() {
    let cuda = common::torch_banner();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let model = Model::new(wide_mlp(&mut rng));
    let inputs: Vec<Vec<f64>> = (0..SAMPLES)
        .map(|_| (0..WIDTHS[0]).map(|_| rng.random::<f32>() as f64).collect())
        .collect();
    let settings = AuditSettings {
        dtd: DtdSettings {
            rule: Rule::ZPlus,
            ..DtdSettings::default()
        },
        ..AuditSettings::default()
    };
    let _ = model.row_norms();
    let started = Instant::now();
    let exact: Vec<SampleRecord> = inputs
        .par_iter()
        .enumerate()
        .map(|(i, x)| audit_sample(&model, &settings, i, x, None).unwrap())
        .collect();
    let seconds = started.elapsed().as_secs_f64();
    let (roots, _) = differing(&exact, &exact);
    println!("784-256-256-128-10, {SAMPLES} samples, rule z+, {roots} roots");
    println!("| backend | s | samples/s | roots/s | verdicts differing from the exact engine |");
    println!("|---|---|---|---|---|");
    println!(
        "| exact engine f64 | {seconds:.2} | {:.0} | {:.0} | - |",
        SAMPLES as f64 / seconds,
        roots as f64 / seconds
    );
    let ids: Vec<usize> = (0..SAMPLES).collect();
    let targets = vec![None; SAMPLES];
    let mut devices = vec![("CPU", Device::Cpu)];
    if cuda {
        devices.push(("CUDA", Device::Cuda(0)));
    }
    for (name, device) in devices {
        for (precision, label) in [(Precision::F64, "f64"), (Precision::F32, "f32")] {
            let auditor = TorchAuditor::new(&model, precision, device);
            // A warm-up batch, then the timed run.
            auditor
                .audit(&model, &settings, &ids[..8], &inputs[..8], &targets[..8])
                .unwrap();
            let started = Instant::now();
            let got = auditor
                .audit(&model, &settings, &ids, &inputs, &targets)
                .unwrap();
            let seconds = started.elapsed().as_secs_f64();
            let (_, differ) = differing(&exact, &got);
            println!(
                "| torch {name} {label} | {seconds:.2} | {:.0} | {:.0} | {differ} |",
                SAMPLES as f64 / seconds,
                roots as f64 / seconds
            );
        }
    }
}
