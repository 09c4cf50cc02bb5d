//! Audit cost of a Sort-of-CLEVR-sized relation network: 3×75×75 images, four blocks of
//! [Conv 3×3 stride 2 pad 1, 24 channels, batch norm, ReLU] (→ 5×5 = 25 objects, 625 pairs),
//! a question of 11 values, g = 63 → 256 → 256 → 256 → 256, f = 256 → 256 → 256 → 10, random
//! f32 weights. The network is the chain of IR layers `RelationNetwork::network` builds.
//!
//! Measured in one run: a forward pass; the train-free z+ relevances (no roots); and, per
//! layer, the cost of rebuilding and exactly judging roots, on `ROOTS` roots spread evenly
//! over the layer (default 256), from which the cost of all of the layer's roots is projected.
//! Every figure is also given in forward passes. For the roots found outside, where they leave
//! the region: at a constraint of their own layer (of their own pair or another pair in a
//! shared layer) or of a later layer.
//!
//! Run with `cargo bench --bench relnet_audit` (`-- ROOTS` to judge more roots per layer).

use std::time::Instant;

mod common;

use dtdcert::dtd::{explain, neuron_root, DtdSettings, RootOutcome, Rule};
use dtdcert::model::forward;
use dtdcert::model::relnet::Options;
use dtdcert::model::{Affine, Model};
use dtdcert::region::{membership_batch, trace_and_pattern, Membership};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn main() {
    let per_layer: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(256);
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let rn = common::sort_of_clevr(&mut rng);
    let mut question = vec![0.0; 11];
    question[2] = 1.0;
    question[6] = 1.0;
    question[9] = 1.0;
    let started = Instant::now();
    let model = Model::new(rn.network(&question, Options::default()).unwrap());
    let _ = model.row_norms();
    let build_s = started.elapsed().as_secs_f64();
    println!("network: {}", model.net().describe());
    println!("chain built (with row norms) in {build_s:.2} s");
    let x: Vec<f64> = (0..3 * 75 * 75)
        .map(|_| rng.random_range(-1.0..1.0f32) as f64)
        .collect();

    let started = Instant::now();
    let mut passes = 0usize;
    while passes < 3 || started.elapsed().as_secs_f64() < 2.0 {
        std::hint::black_box(forward::output(model.net(), &x));
        passes += 1;
    }
    let forward_s = started.elapsed().as_secs_f64() / passes as f64;
    println!("forward pass: {:.1} ms", forward_s * 1e3);

    let settings = DtdSettings {
        rule: Rule::ZPlus,
        ..DtdSettings::default()
    };
    let started = Instant::now();
    let (trace, pattern, _) = trace_and_pattern(&model, &x);
    let k = forward::argmax(trace.output());
    let e = explain(model.net(), &trace, &settings, k, false);
    let explain_s = started.elapsed().as_secs_f64();
    println!(
        "pattern + z+ relevances (no roots): {:.1} ms = {:.1} forward passes",
        explain_s * 1e3,
        explain_s / forward_s
    );

    let mut projected = 0.0;
    let mut total_roots = 0usize;
    println!(
        "| layer | roots | judged | outside | first violated constraint | s per root | projected s | forward passes |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (index, step) in e.layers.iter().enumerate() {
        let with_root: Vec<usize> = (0..step.neurons.len())
            .filter(|&j| matches!(step.neurons[j].outcome, RootOutcome::Root { .. }))
            .collect();
        if with_root.is_empty() {
            continue;
        }
        let a = trace.layer_input(index);
        // Evenly spread over the layer: a root's cost depends on where its neuron sits (a
        // constraint of an earlier pair or of its own pair may end its check).
        let stride = with_root.len().div_ceil(per_layer).max(1);
        let judged: Vec<usize> = with_root.iter().copied().step_by(stride).collect();
        let started = Instant::now();
        let points: Vec<f64> = judged
            .iter()
            .flat_map(|&j| {
                match neuron_root(
                    model.net(),
                    index,
                    j,
                    a,
                    &step.neurons[j].relevance,
                    &settings,
                ) {
                    RootOutcome::Root { point, .. } => point,
                    RootOutcome::None(_) => unreachable!("the step found a root"),
                }
            })
            .collect();
        let batch = Array2::from_shape_vec((judged.len(), a.len()), points).unwrap();
        let verdicts = membership_batch(&model, &pattern, index, &batch);
        let per_root = started.elapsed().as_secs_f64() / judged.len() as f64;
        let outside = verdicts.iter().filter(|(m, _)| !m.is_inside()).count();
        // Where the outside roots leave the region: a constraint of their own layer (in a shared
        // layer, of their own pair or of another pair) or of a later layer.
        let rows = match &model.net().layers()[index].affine {
            Affine::Shared(s) => Some(s.block().weight().nrows()),
            _ => None,
        };
        let (mut own_pair, mut other_pair, mut own_layer, mut later) = (0, 0, 0, 0);
        for (&j, (m, _)) in judged.iter().zip(&verdicts) {
            if let Membership::Outside { layer, neuron, .. } = m {
                match (*layer == index + 1, rows) {
                    (true, Some(r)) if neuron / r == j / r => own_pair += 1,
                    (true, Some(_)) => other_pair += 1,
                    (true, None) => own_layer += 1,
                    (false, _) => later += 1,
                }
            }
        }
        let exits = match rows {
            Some(_) => format!("own pair {own_pair}, other pairs {other_pair}, later {later}"),
            None => format!("own layer {own_layer}, later {later}"),
        };
        let layer_s = per_root * with_root.len() as f64;
        projected += layer_s;
        total_roots += with_root.len();
        println!(
            "| {} | {} | {} | {} | {exits} | {:.2e} | {:.1} | {:.0} |",
            index + 1,
            with_root.len(),
            judged.len(),
            outside,
            per_root,
            layer_s,
            layer_s / forward_s
        );
    }
    println!(
        "all {total_roots} roots of the sample, projected: {projected:.0} s = {:.0} forward passes \
         (threads: {})",
        projected / forward_s,
        rayon::current_num_threads()
    );
}
