//! Audit of the Sort-of-CLEVR relation network's convolution stack on 3×75×75 images: four
//! [Conv 3×3 stride 2 pad 1, 24 channels, no bias; BatchNorm; ReLU] (75 → 38 → 19 → 10 → 5),
//! then Flatten and a Linear 600 → 10 head, read from ONNX bytes as torch writes them, with
//! random f32 weights and batch-norm statistics. Every root of every layer is rebuilt and
//! judged exactly; the cost is compared with plain forward passes of the same network in the
//! same run.
//!
//! Run with `cargo bench --bench conv_audit` (`-- SAMPLES` to change the 8 samples).

#[allow(dead_code)]
#[path = "../tests/util/onnx.rs"]
mod onnx;

use std::path::Path;
use std::time::Instant;

use dtdcert::audit::{audit_sample, AuditSettings, Summary};
use dtdcert::dtd::{explain, DtdSettings, Rule};
use dtdcert::model::{forward, Model};
use onnx::{attr_int, attr_ints, floats, model, node, value};
use onnx_protobuf::tensor_proto::DataType;
use protobuf::Message;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

const SIDES: [i64; 5] = [75, 38, 19, 10, 5];
const CHANNELS: i64 = 24;

fn conv_stack(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut nodes = Vec::new();
    let mut inits = Vec::new();
    let mut current = "input".to_string();
    for block in 0..4 {
        let c_in = if block == 0 { 3 } else { CHANNELS };
        let fan_in = (c_in * 9) as f64;
        let k: Vec<f32> = (0..CHANNELS * c_in * 9)
            .map(|_| {
                let v: f64 = StandardNormal.sample(rng);
                (v * (2.0 / fan_in).sqrt()) as f32
            })
            .collect();
        let names = |what: &str| format!("b{block}.{what}");
        inits.push(floats(&names("k"), &[CHANNELS, c_in, 3, 3], &k));
        let per_channel = |lo: f32, hi: f32, rng: &mut ChaCha8Rng| -> Vec<f32> {
            (0..CHANNELS).map(|_| rng.random_range(lo..hi)).collect()
        };
        inits.push(floats(
            &names("scale"),
            &[CHANNELS],
            &per_channel(0.5, 1.5, rng),
        ));
        inits.push(floats(
            &names("shift"),
            &[CHANNELS],
            &per_channel(-0.2, 0.2, rng),
        ));
        inits.push(floats(
            &names("mean"),
            &[CHANNELS],
            &per_channel(-0.1, 0.1, rng),
        ));
        inits.push(floats(
            &names("var"),
            &[CHANNELS],
            &per_channel(0.5, 2.0, rng),
        ));
        let (conv, bn, relu) = (names("conv"), names("bn"), names("relu"));
        nodes.push(node(
            "Conv",
            &conv,
            &[&current, &names("k")],
            &[&conv],
            vec![
                attr_ints("kernel_shape", &[3, 3]),
                attr_ints("strides", &[2, 2]),
                attr_ints("pads", &[1, 1, 1, 1]),
            ],
        ));
        nodes.push(node(
            "BatchNormalization",
            &bn,
            &[
                &conv,
                &names("scale"),
                &names("shift"),
                &names("mean"),
                &names("var"),
            ],
            &[&bn],
            vec![],
        ));
        nodes.push(node("Relu", &relu, &[&bn], &[&relu], vec![]));
        current = relu;
    }
    let flat = CHANNELS * SIDES[4] * SIDES[4];
    nodes.push(node(
        "Flatten",
        "flat",
        &[&current],
        &["flat"],
        vec![attr_int("axis", 1)],
    ));
    let head: Vec<f32> = (0..10 * flat)
        .map(|_| {
            let v: f64 = StandardNormal.sample(rng);
            (v / (flat as f64).sqrt()) as f32
        })
        .collect();
    inits.push(floats("head.w", &[10, flat], &head));
    inits.push(floats("head.b", &[10], &[0.0; 10]));
    nodes.push(node(
        "Gemm",
        "head",
        &["flat", "head.w", "head.b"],
        &["output"],
        vec![attr_int("transB", 1)],
    ));
    model(
        nodes,
        inits,
        value(
            "input",
            &[None, Some(3), Some(75), Some(75)],
            DataType::FLOAT,
        ),
        value("output", &[None, Some(10)], DataType::FLOAT),
    )
    .write_to_bytes()
    .unwrap()
}

fn main() {
    let samples: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(8);
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let bytes = conv_stack(&mut rng);
    let net = dtdcert::model::onnx::load_bytes(&bytes, Path::new("conv_stack.onnx")).unwrap();
    let model = Model::new(net);
    println!("network: {}", model.net().describe());
    let inputs: Vec<Vec<f64>> = (0..samples)
        .map(|_| {
            (0..3 * 75 * 75)
                .map(|_| rng.random_range(-1.0..1.0f32) as f64)
                .collect()
        })
        .collect();

    // Forward passes, repeated until they take a second.
    let started = Instant::now();
    let mut passes = 0usize;
    while started.elapsed().as_secs_f64() < 1.0 {
        for x in &inputs {
            std::hint::black_box(forward::output(model.net(), x));
            passes += 1;
        }
    }
    let forward_s = started.elapsed().as_secs_f64() / passes as f64;

    let settings = AuditSettings {
        dtd: DtdSettings {
            rule: Rule::ZPlus,
            ..DtdSettings::default()
        },
        ..AuditSettings::default()
    };
    let started = Instant::now();
    for x in &inputs {
        let trace = forward::forward(model.net(), x);
        let k = forward::argmax(trace.output());
        std::hint::black_box(explain(model.net(), &trace, &settings.dtd, k, false));
    }
    let explain_s = started.elapsed().as_secs_f64() / samples as f64;

    let _ = model.row_norms();
    let started = Instant::now();
    let mut summary = Summary::new(model.net().layers().len());
    for (i, x) in inputs.iter().enumerate() {
        summary.add(&audit_sample(&model, &settings, i, x, None).unwrap());
    }
    let audit_s = started.elapsed().as_secs_f64() / samples as f64;

    println!(
        "samples: {samples}, rule z+, threads: {}",
        rayon::current_num_threads()
    );
    println!("forward pass: {:.3} ms", forward_s * 1e3);
    println!(
        "relevances (explain, no roots): {:.1} ms = {:.1} forward passes",
        explain_s * 1e3,
        explain_s / forward_s
    );
    println!(
        "audit (every root rebuilt and judged): {:.0} ms/sample = {:.0} forward passes",
        audit_s * 1e3,
        audit_s / forward_s
    );
    for layer in &summary.layers {
        let c = &layer.counts;
        println!(
            "layer {}: {} roots, {} outside the region, {} out of the domain, {} decided exactly",
            layer.layer, c.roots, c.roots_outside, c.roots_out_of_domain, c.exact_fallbacks
        );
    }
}
