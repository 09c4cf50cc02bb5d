//! The libtorch backend (feature `torch`) on networks with Clip (ReLU6), LeakyRelu and PRelu
//! activations, against the exact engine.
//!
//! - On random MLPs with each activation, the forward pass equals the engine's (within 1e-12)
//!   and the batched relevances of every root rule and of ε equal the engine's f64 relevances
//!   within 1e-12 of each layer's largest relevance (f64); audits agree as
//!   `torch::parity::compare_audits` measures, in f64 and f32, with and without a domain box.
//! - The small MobileNetV2 (ReLU6) of the Zennit conformance, with its convolutions kept as
//!   kernels and the options its manifest gives, explains within 1e-10 of the engine's f64
//!   explanation, through the library and through `dtdcert explain --backend torch`.

#![cfg(feature = "torch")]

mod util;

use std::path::{Path, PathBuf};

use dtdcert::audit::{AuditSettings, DomainBox};
use dtdcert::dtd::{explain, BiasMode, Composite, DtdSettings, InitialRelevance, LayerRule, Rule};
use dtdcert::model::forward::{argmax, forward};
use dtdcert::model::ir::Affine;
use dtdcert::model::onnx::{load_bytes_with, OnnxOptions};
use dtdcert::model::{Activation, Model, Network};
use dtdcert::torch::{Precision, TorchNet};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tch::Device;
use util::activations::{network, with_activations, WIDTHS};
use util::parity::{audit_parity, runner};

/// A random MLP of [`WIDTHS`] whose two hidden layers apply ReLU, Clip, LeakyRelu or PRelu,
/// 1 to 4 inputs on the grid of eighths or in [−2, 2] (f32 values), and a rule with a root
/// (or ε) with a bias mode.
fn cases() -> impl Strategy<Value = (Network, Vec<Vec<f64>>, DtdSettings)> {
    let input = prop_oneof![
        util::activations::eighths(),
        (-2.0f64..2.0).prop_map(|v| v as f32 as f64)
    ];
    let rules = [
        "0",
        "z",
        "z+",
        "gamma:0.25",
        "w2",
        "zb:-1:1",
        "epsilon:0.01",
    ];
    (
        network(),
        prop::collection::vec(prop::collection::vec(input, WIDTHS[0]), 1..=4),
        prop::sample::select(rules.to_vec()),
        prop::sample::select(vec![BiasMode::Ignore, BiasMode::Include, BiasMode::Plain]),
    )
        .prop_map(|((layers, acts), xs, rule, bias)| {
            let dtd = DtdSettings {
                rule: rule.parse().unwrap(),
                bias,
                ..DtdSettings::default()
            };
            (with_activations(&layers, &acts), xs, dtd)
        })
}

/// The largest difference between the backend's relevances (f64) and the engine's, per
/// layer, relative to the largest relevance entering or leaving that layer.
fn worst_relative_error(net: &Network, xs: &[Vec<f64>], settings: &DtdSettings) -> f64 {
    let torch = TorchNet::new(net, Precision::F64, Device::Cpu);
    let flat: Vec<f64> = xs.iter().flatten().copied().collect();
    let got = torch
        .explain(&torch.input(&flat, xs.len()), &[], settings)
        .unwrap();
    let mut worst = 0.0f64;
    for (b, x) in xs.iter().enumerate() {
        let trace = forward(net, x);
        let k = argmax(trace.output());
        assert_eq!(got.explained[b], k, "sample {b}: explained output");
        let e = explain(net, &trace, settings, k, false);
        for (index, layer) in e.layers.iter().enumerate() {
            let row: Vec<f64> = Vec::try_from(&got.lower[index].get(b as i64)).unwrap();
            let scale = layer
                .upper
                .iter()
                .chain(&layer.lower)
                .fold(0.0f64, |m, v| m.max(v.abs()));
            for (g, w) in row.iter().zip(&layer.lower) {
                let d = (g - w).abs();
                worst = worst.max(if scale > 0.0 { d / scale } else { d });
            }
        }
    }
    worst
}

/// Every layer's input as the backend computes it equals the engine's (both apply the
/// activation's pieces to the same f64 pre-activations).
fn forward_matches(net: &Network, xs: &[Vec<f64>]) -> Result<(), TestCaseError> {
    let torch = TorchNet::new(net, Precision::F64, Device::Cpu);
    let flat: Vec<f64> = xs.iter().flatten().copied().collect();
    let h = torch.forward(&torch.input(&flat, xs.len()));
    for (b, x) in xs.iter().enumerate() {
        let trace = forward(net, x);
        for (index, wanted) in trace.activations.iter().enumerate() {
            let got: Vec<f64> = Vec::try_from(&h[index].get(b as i64)).unwrap();
            for (g, w) in got.iter().zip(wanted) {
                prop_assert!(
                    (g - w).abs() <= 1e-12 * (1.0 + w.abs()),
                    "sample {} layer input {}: {} and {}",
                    b,
                    index,
                    g,
                    w
                );
            }
        }
    }
    Ok(())
}

#[test]
fn forward_passes_and_relevances_equal_the_engines() {
    let seen = std::cell::RefCell::new([0usize; 4]);
    let worst = std::cell::Cell::new(0.0f64);
    runner(256, 17)
        .run(&cases(), |(net, xs, dtd)| {
            for layer in net.layers() {
                let kind = match &layer.activation {
                    _ if !layer.relu => continue,
                    Activation::Relu => 0,
                    Activation::Clip { .. } => 1,
                    Activation::LeakyRelu { .. } => 2,
                    Activation::PRelu { .. } => 3,
                };
                seen.borrow_mut()[kind] += 1;
            }
            forward_matches(&net, &xs)?;
            let e = worst_relative_error(&net, &xs, &dtd);
            worst.set(worst.get().max(e));
            if e > 1e-12 {
                return Err(TestCaseError::fail(format!(
                    "relative error {e:e} with {dtd:?}"
                )));
            }
            Ok(())
        })
        .unwrap();
    let seen = seen.into_inner();
    println!(
        "layers with ReLU, Clip, LeakyRelu, PRelu: {seen:?}; worst relative error {:e}",
        worst.get()
    );
    assert!(seen.iter().all(|&n| n >= 20), "{seen:?}");
}

#[test]
fn audits_equal_the_engines() {
    let cases = (cases(), any::<bool>()).prop_map(|((net, xs, dtd), boxed)| {
        let settings = AuditSettings {
            dtd,
            domain: boxed.then_some(DomainBox { lo: -2.0, hi: 2.0 }),
            ..AuditSettings::default()
        };
        (Model::new(net), xs, settings)
    });
    audit_parity("random MLPs with activations", cases, 256, 17);
}

fn conformance() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/conformance_cnn")
}

/// The settings of the manifest's MobileNetV2 reference (`--rule z+ --bias include
/// --stabilizer 1e-06 --denominator-threshold 0 --initial-relevance one --composite
/// epsilon-plus-flat --kind-rule conv=alphabeta:1:0 --layer-rule 1=flat`) for `net`.
fn mobilenet_settings(net: &Network) -> DtdSettings {
    let mut settings = DtdSettings {
        rule: Rule::ZPlus,
        bias: BiasMode::Include,
        stabilizer: 1e-6,
        denominator_threshold: 0.0,
        initial_relevance: InitialRelevance::One,
        composite: Some(Composite::EpsilonPlusFlat),
        kind_rules: vec!["conv=alphabeta:1:0".parse().unwrap()],
        layer_rules: vec![LayerRule {
            layer: 1,
            rule: Rule::Flat,
        }],
        ..DtdSettings::default()
    };
    settings.set_layer_kinds(net.kinds());
    settings
}

/// The small MobileNetV2, loaded with `--split-residual` (as its manifest says) and every
/// convolution kept as its kernel: its ReLU6 layers run on the backend, and its relevances
/// equal the engine's within 1e-10.
#[test]
fn mobilenet_v2_with_kernels_gets_the_engines_relevances() {
    let path = conformance().join("mobilenet_v2_small.onnx");
    let options = OnnxOptions {
        conv_rows_up_to: Some(0),
        split_residual: true,
        ..OnnxOptions::default()
    };
    let net = load_bytes_with(&std::fs::read(&path).unwrap(), &path, options).unwrap();
    assert!(net
        .layers()
        .iter()
        .any(|l| matches!(l.affine, Affine::Conv(_) | Affine::Blocks(_))));
    assert!(net
        .first_other_activation()
        .is_some_and(|(_, a)| matches!(a, Activation::Clip { .. })));
    let inputs = dtdcert::model::inputs::load_inputs(
        &conformance().join("mobilenet_v2_small.inputs.npy"),
        None,
    )
    .unwrap();
    let xs: Vec<Vec<f64>> = (0..inputs.len()).map(|i| inputs.row(i).unwrap()).collect();
    let e = worst_relative_error(&net, &xs, &mobilenet_settings(&net));
    println!("mobilenet_v2_small (kernels): relative error {e:e} (f64)");
    assert!(e <= 1e-10, "{e:e}");
}

/// `dtdcert explain --backend torch` on the small MobileNetV2 with its manifest's options
/// writes what the exact engine writes, within 1e-10 of each input's largest relevance.
#[test]
fn explain_mobilenet_v2_with_the_torch_backend() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--split-residual",
        "--rule",
        "z+",
        "--bias",
        "include",
        "--stabilizer",
        "1e-06",
        "--denominator-threshold",
        "0",
        "--initial-relevance",
        "one",
        "--composite",
        "epsilon-plus-flat",
        "--kind-rule",
        "conv=alphabeta:1:0",
        "--layer-rule",
        "1=flat",
    ];
    let run = |extra: &[&str], out: &str| -> ndarray::ArrayD<f64> {
        let path = dir.path().join(out);
        let run = std::process::Command::new(env!("CARGO_BIN_EXE_dtdcert"))
            .arg("explain")
            .arg("--model")
            .arg(conformance().join("mobilenet_v2_small.onnx"))
            .arg("--inputs")
            .arg(conformance().join("mobilenet_v2_small.inputs.npy"))
            .arg("--out")
            .arg(&path)
            .args(args)
            .args(extra)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        ndarray_npy::read_npy(&path).unwrap()
    };
    let exact = run(&[], "exact.npy");
    let torch = run(&["--backend", "torch"], "torch.npy");
    assert_eq!(torch.shape(), exact.shape());
    let rows = |a: &ndarray::ArrayD<f64>| a.outer_iter().map(|r| r.to_owned()).collect::<Vec<_>>();
    for (i, (t, e)) in rows(&torch).iter().zip(rows(&exact)).enumerate() {
        let scale = e.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(scale > 0.0, "input {i}: no relevance");
        let worst = (t - &e).iter().fold(0.0f64, |m, v| m.max(v.abs())) / scale;
        assert!(worst <= 1e-10, "input {i}: {worst:e}");
    }
}
