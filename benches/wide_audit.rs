//! Audit of a 784-256-256-128-10 MLP with random weights: 1000 samples, every root of every
//! layer, exact verdicts; compared with plain matrix products of the same shapes, timed in the
//! same run with the same library (ndarray), parallel over samples in both cases.
//!
//! Run with `cargo bench --bench wide_audit`.

mod common;

use std::time::Instant;

use common::{wide_mlp, WIDTHS};
use dtdcert::audit::{audit_sample, AuditSettings, Summary};
use dtdcert::model::Model;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

const SAMPLES: usize = 1000;

fn main() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let model = Model::new(wide_mlp(&mut rng));
    let inputs: Vec<Vec<f64>> = (0..SAMPLES)
        .map(|_| (0..WIDTHS[0]).map(|_| rng.random::<f32>() as f64).collect())
        .collect();
    let settings = AuditSettings::default();
    let _ = model.row_norms();

    let started = Instant::now();
    let records: Vec<_> = inputs
        .par_iter()
        .enumerate()
        .map(|(i, x)| audit_sample(&model, &settings, i, x, None).unwrap())
        .collect();
    let mut summary = Summary::new(WIDTHS.len() - 1);
    for r in &records {
        summary.add(r);
    }
    let audit = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let lines: usize = records
        .par_iter()
        .map(|r| serde_json::to_string(r).unwrap().len())
        .sum();
    let serialise = started.elapsed().as_secs_f64();

    // The same matrix products as the verdicts: for every sample and layer, (roots × width)
    // times the transposed weights of that layer and of every layer above it.
    let weights: Vec<Array2<f64>> = model
        .net()
        .layers()
        .iter()
        .map(|l| {
            l.affine
                .dense_matrix(usize::MAX)
                .expect("no size limit")
                .into_owned()
        })
        .collect();
    let shapes: Vec<Vec<usize>> = records
        .iter()
        .map(|r| {
            r.layers
                .iter()
                .map(|l| l.neurons.iter().filter(|n| n.root.is_some()).count())
                .collect()
        })
        .collect();
    let started = Instant::now();
    let checksum: f64 = shapes
        .par_iter()
        .map(|roots| {
            let mut acc = 0.0;
            for (m, &n) in roots.iter().enumerate() {
                if n == 0 {
                    continue;
                }
                let mut h = Array2::from_elem((n, WIDTHS[m]), 0.5);
                for w in &weights[m..] {
                    h = h.dot(&w.t());
                }
                acc += h[[0, 0]];
            }
            acc
        })
        .sum();
    let gemm = started.elapsed().as_secs_f64();

    let t = &summary.total;
    println!("wide audit, 784-256-256-128-10, {SAMPLES} samples, every root of every layer, exact verdicts");
    println!(
        "  roots {} (outside {}, exact fallbacks {}), records {:.1} MB",
        t.roots,
        t.roots_outside,
        t.exact_fallbacks,
        lines as f64 / 1e6
    );
    println!(
        "  audit:                 {audit:.3} s  ({:.0} samples/s)",
        SAMPLES as f64 / audit
    );
    println!("  records to JSON:       {serialise:.3} s");
    println!("  plain matrix products: {gemm:.3} s  (checksum {checksum:.3e})");
    println!("  ratio audit / matrix products: {:.2}", audit / gemm);
}
