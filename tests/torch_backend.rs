//! The libtorch backend (feature `torch`) against the exact engine's f64 results.
//!
//! - On random MLPs (with carried tails and max-pool layers) and on the convolutional ONNX
//!   fixtures, the batched train-free relevances of every rule with a closed form, with
//!   per-layer rules, bias modes and a stabiliser, equal the engine's f64 relevances layer by
//!   layer within 1e-12 in f64, relative to the largest relevance entering the layer. In f32
//!   the fixtures' relevances are within 1e-5 for the rules whose denominators cannot cancel
//!   (0, z+, w², α-β, flat); for z, γ, zB and ε (sums of mixed signs, divided by) and on the
//!   random MLPs the f32 errors are printed, and the random cases above 1e-5 counted. The
//!   fixtures are loaded as rows and with their convolutions kept as kernels (which the
//!   backend runs as convolutions), and so are the small VGG-16 and ResNet-50 of the Zennit
//!   conformance, whose z+ and EpsilonPlusFlat relevances are within 1e-10.
//! - Audits (every root's verdict, relevances) agree with the engine's as
//!   `torch::parity::compare_audits` measures, on random MLPs, random convolutional networks
//!   and the fixtures, with convolutions as rows and as kernels.
//! - The forward pass equals the engine's.
//! - Bad requests (a rule that needs linear programs, wrong targets, `--device cuda` without
//!   a CUDA device) are refused with the reason.

#![cfg(feature = "torch")]

mod util;

use dtdcert::audit::{AuditSettings, DomainBox};
use std::path::Path;

use dtdcert::dtd::{explain, BiasMode, Composite, DtdSettings, InitialRelevance, LayerRule, Rule};
use dtdcert::model::forward::{argmax, forward};
use dtdcert::model::ir::Affine;
use dtdcert::model::onnx::{load_bytes_with, OnnxOptions};
use dtdcert::model::{Model, Network};
use dtdcert::torch::parity::compare_audits;
use dtdcert::torch::{to_f64, Precision, TorchNet};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tch::Device;
use util::parity::{audit_parity, runner};

/// Every rule with a closed form (DTD root rules and LRP rules).
fn rules() -> Vec<Rule> {
    [
        "0",
        "z",
        "z+",
        "gamma:0.25",
        "w2",
        "zb:-1:1",
        "epsilon:0.01",
        "alphabeta:2:1",
        "alphabeta:1:0",
        "flat",
    ]
    .iter()
    .map(|r| r.parse().unwrap())
    .collect()
}

/// Settings drawn from the rules, bias modes, stabilisers and per-layer choices.
fn settings(layers: usize) -> impl Strategy<Value = DtdSettings> {
    let n = rules().len();
    (
        0..n,
        prop::option::of(0..n),
        prop::sample::select(vec![BiasMode::Ignore, BiasMode::Include, BiasMode::Plain]),
        prop::sample::select(vec![0.0, 1e-3]),
        prop::sample::select(vec![InitialRelevance::Output, InitialRelevance::One]),
        prop::collection::vec((1..=layers, 0..n), 0..=2),
    )
        .prop_map(|(rule, input, bias, stabilizer, initial, per_layer)| {
            let all = rules();
            DtdSettings {
                rule: all[rule],
                input_rule: input.map(|i| all[i]),
                bias,
                stabilizer,
                initial_relevance: initial,
                layer_rules: per_layer
                    .into_iter()
                    .map(|(layer, r)| LayerRule {
                        layer,
                        rule: all[r],
                    })
                    .collect(),
                ..DtdSettings::default()
            }
        })
}

/// The largest absolute difference between the backend's relevances and the engine's, per
/// layer, relative to the largest absolute relevance entering that layer.
fn worst_relative_error(
    net: &Network,
    xs: &[Vec<f64>],
    settings: &DtdSettings,
    precision: Precision,
) -> f64 {
    let torch = TorchNet::new(net, precision, Device::Cpu);
    let flat: Vec<f64> = xs.iter().flatten().copied().collect();
    let batch = torch.input(&flat, xs.len());
    let got = torch.explain(&batch, &[], settings).unwrap();
    let mut worst = 0.0f64;
    for (b, x) in xs.iter().enumerate() {
        let trace = forward(net, x);
        let k = argmax(trace.output());
        assert_eq!(got.explained[b], k, "sample {b}: explained output");
        let e = explain(net, &trace, settings, k, false);
        for (index, layer) in e.layers.iter().enumerate() {
            let row: Vec<f64> =
                Vec::try_from(&got.lower[index].get(b as i64).to_kind(tch::Kind::Double)).unwrap();
            let scale = layer
                .upper
                .iter()
                .chain(&layer.lower)
                .fold(0.0f64, |m, v| m.max(v.abs()));
            for (g, w) in row.iter().zip(&layer.lower) {
                let d = (g - w).abs();
                let rel = if scale > 0.0 { d / scale } else { d };
                worst = worst.max(rel);
            }
        }
    }
    worst
}

/// A random MLP with carried tails and max-pool layers, 1 to 4 inputs for it (f32 values in
/// [−1, 1]) and drawn settings.
fn mlp_cases() -> impl Strategy<Value = (Network, Vec<Vec<f64>>, DtdSettings)> {
    util::mlp_with_tails_and_pools(2..=6, 2..=6, 1..=3, util::weight).prop_flat_map(|net| {
        let d = net.input_dim();
        let layers = net.layers().len();
        (
            Just(net),
            prop::collection::vec(
                prop::collection::vec((-1.0f64..1.0).prop_map(|v| v as f32 as f64), d),
                1..=4,
            ),
            settings(layers),
        )
    })
}

/// The device `--device TEXT` names: parsed at the command line's boundary, then found.
fn device(text: &str) -> dtdcert::Result<tch::Device> {
    dtdcert::torch::device(dtdcert::audit::DeviceChoice::parse(text)?)
}

#[test]
fn batched_relevances_equal_the_engines_in_f64_and_f32() {
    let cases = mlp_cases();
    let worst = std::cell::Cell::new((0.0f64, 0.0f64, 0usize));
    runner(128, 11)
        .run(&cases, |(net, xs, settings)| {
            let e64 = worst_relative_error(&net, &xs, &settings, Precision::F64);
            let e32 = worst_relative_error(&net, &xs, &settings, Precision::F32);
            let (w64, w32, over) = worst.get();
            worst.set((w64.max(e64), w32.max(e32), over + usize::from(e32 > 1e-5)));
            if e64 > 1e-12 {
                return Err(TestCaseError::fail(format!(
                    "relative error {e64:e} (f64) with {settings:?}"
                )));
            }
            Ok(())
        })
        .unwrap();
    // In f32 a denominator near the rule's threshold (1e-5) amplifies rounding errors: such
    // cases are counted, not hidden.
    let (w64, w32, over) = worst.get();
    println!(
        "worst relative error: {w64:e} (f64), {w32:e} (f32); {over} of 128 cases above 1e-5 in f32"
    );
}

/// An ONNX fixture of tests/data/onnx/ and its inputs.
fn fixture(name: &str) -> (Model, Vec<Vec<f64>>) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/onnx");
    let model = Model::load(&dir.join(format!("{name}.onnx"))).unwrap();
    let inputs =
        dtdcert::model::inputs::load_inputs(&dir.join(format!("{name}.inputs.npy")), None).unwrap();
    let xs = (0..inputs.len()).map(|i| inputs.row(i).unwrap()).collect();
    (model, xs)
}

/// `net` loaded from `path` with every convolution kept as its kernel (`conv_rows_up_to: 0`),
/// which the backend runs as convolutions; `split_residual` as `--split-residual` says.
fn with_kernels(path: &Path, split_residual: bool) -> Network {
    let bytes = std::fs::read(path).unwrap();
    let options = OnnxOptions {
        conv_rows_up_to: Some(0),
        split_residual,
        ..OnnxOptions::default()
    };
    let net = load_bytes_with(&bytes, path, options).unwrap();
    let kernels = net
        .layers()
        .iter()
        .filter(|l| matches!(l.affine, Affine::Conv(_) | Affine::Blocks(_)))
        .count();
    assert!(kernels > 0, "{}: no layer kept as kernels", path.display());
    net
}

/// An ONNX fixture of tests/data/onnx/ loaded as rows, then with its convolutions kept as
/// kernels, and its inputs.
fn both_loadings(name: &str) -> [(String, Model, Vec<Vec<f64>>); 2] {
    let (model, xs) = fixture(name);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/onnx");
    let kernels = Model::new(with_kernels(&dir.join(format!("{name}.onnx")), false));
    [
        (name.to_string(), model, xs.clone()),
        (format!("{name} (kernels)"), kernels, xs),
    ]
}

/// The convolutional fixtures (conv, batch norm, average and max pooling, residual blocks,
/// coordinate channels), loaded as rows and (those whose convolutions read their layer's
/// input as it is) with their convolutions kept as kernels, every rule: f64 relevances equal
/// the engine's.
#[test]
fn convolutional_networks_get_the_engines_relevances() {
    let (model, xs) = fixture("maxpool_coord_2x7x7_opset17");
    let mut cases = vec![("maxpool_coord_2x7x7_opset17".to_string(), model, xs)];
    for name in [
        "conv_bn_pool_2x6x6_f64_opset17",
        "residual_conv_2x6x6_f64_opset17",
    ] {
        cases.extend(both_loadings(name));
    }
    for (name, model, xs) in cases {
        for rule in rules() {
            let settings = DtdSettings {
                rule,
                ..DtdSettings::default()
            };
            let e = worst_relative_error(model.net(), &xs, &settings, Precision::F64);
            assert!(e <= 1e-12, "{name}, {rule}: relative error {e:e} (f64)");
            // Rules whose denominators are sums that can cancel (z, γ, zB, ε) divide f32
            // rounding errors by small numbers: their f32 errors are printed, the others'
            // asserted.
            let e32 = worst_relative_error(model.net(), &xs, &settings, Precision::F32);
            println!("{name}, {rule}: relative error {e:e} (f64), {e32:e} (f32)");
            let cancelling = matches!(
                rule,
                Rule::Z | Rule::Gamma(_) | Rule::ZBox { .. } | Rule::Epsilon(_)
            );
            assert!(
                cancelling || e32 <= 1e-5,
                "{name}, {rule}: relative error {e32:e} (f32)"
            );
        }
    }
}

/// The small VGG-16 and ResNet-50 (its residual additions joint and split apart) of
/// tests/data/conformance_cnn/ with every convolution kept as its kernel (residual blocks
/// then maps of parts): their f64 relevances under z+ and the EpsilonPlusFlat composite equal
/// the engine's f64 explanation within 1e-10 of each layer's largest relevance.
#[test]
fn kernel_networks_get_the_engines_relevances() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/conformance_cnn");
    for (name, split) in [
        ("vgg16_small", false),
        ("resnet50_small", false),
        ("resnet50_small", true),
    ] {
        let net = with_kernels(&dir.join(format!("{name}.onnx")), split);
        let inputs =
            dtdcert::model::inputs::load_inputs(&dir.join(format!("{name}.inputs.npy")), None)
                .unwrap();
        let xs: Vec<Vec<f64>> = (0..inputs.len()).map(|i| inputs.row(i).unwrap()).collect();
        let mut composite = DtdSettings {
            rule: Rule::ZPlus,
            bias: BiasMode::Include,
            stabilizer: 1e-6,
            denominator_threshold: 0.0,
            initial_relevance: InitialRelevance::One,
            composite: Some(Composite::EpsilonPlusFlat),
            ..DtdSettings::default()
        };
        composite.set_layer_kinds(net.kinds());
        let z_plus = DtdSettings::default();
        for (rules, settings) in [("z+", z_plus), ("epsilon-plus-flat", composite)] {
            let e = worst_relative_error(&net, &xs, &settings, Precision::F64);
            println!("{name} (split: {split}), {rules}: relative error {e:e} (f64)");
            assert!(e <= 1e-10, "{name} (split: {split}), {rules}: {e:e}");
        }
    }
}

/// The input relevances alone (each layer's relevances let go on the way down) are the full
/// pass's, bit for bit: on the split ResNet (residual additions as short sparse rows, blocks
/// whose carried values are identity neurons) and on a convolutional fixture.
#[test]
fn input_relevances_alone_are_the_full_pass() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/conformance_cnn");
    let resnet = with_kernels(&dir.join("resnet50_small.onnx"), true);
    let inputs =
        dtdcert::model::inputs::load_inputs(&dir.join("resnet50_small.inputs.npy"), None).unwrap();
    let xs: Vec<Vec<f64>> = (0..inputs.len()).map(|i| inputs.row(i).unwrap()).collect();
    let (conv, conv_xs) = fixture("residual_conv_2x6x6_f64_opset17");
    for (net, xs) in [(&resnet, &xs), (conv.net(), &conv_xs)] {
        for precision in [Precision::F64, Precision::F32] {
            let torch = TorchNet::new(net, precision, Device::Cpu);
            let flat: Vec<f64> = xs.iter().flatten().copied().collect();
            let batch = torch.input(&flat, xs.len());
            let targets: Vec<Option<usize>> =
                (0..xs.len()).map(|b| (b % 2 == 0).then_some(1)).collect();
            for rule in [Rule::ZPlus, Rule::Epsilon(0.01), Rule::WSquare, Rule::Flat] {
                let settings = DtdSettings {
                    rule,
                    ..DtdSettings::default()
                };
                let full = torch.explain(&batch, &targets, &settings).unwrap();
                let alone = torch.input_relevances(&batch, &targets, &settings).unwrap();
                assert_eq!(alone.lower.len(), 1);
                assert_eq!(alone.explained, full.explained);
                assert_eq!(to_f64(&alone.output), to_f64(&full.output));
                assert_eq!(to_f64(&alone.lower[0]), to_f64(&full.lower[0]), "{rule}");
            }
        }
    }
}

#[test]
fn the_forward_pass_is_the_engines() {
    let (model, xs) = fixture("residual_conv_2x6x6_f64_opset17");
    let torch = TorchNet::new(model.net(), Precision::F64, Device::Cpu);
    let flat: Vec<f64> = xs.iter().flatten().copied().collect();
    let h = torch.forward(&torch.input(&flat, xs.len()));
    for (b, x) in xs.iter().enumerate() {
        let trace = forward(model.net(), x);
        for (index, layer_input) in h.iter().enumerate().take(model.net().layers().len()) {
            let got: Vec<f64> = Vec::try_from(&layer_input.get(b as i64)).unwrap();
            for (g, w) in got.iter().zip(trace.layer_input(index)) {
                assert!((g - w).abs() <= 1e-12 * (1.0 + w.abs()), "layer {index}");
            }
        }
    }
}

#[test]
fn bad_requests_are_refused_with_the_reason() {
    let net = dtdcert::model::Network::new(vec![
        dtdcert::model::ir::dense_layer(
            2,
            3,
            vec![1.0, -1.0, 0.5, 0.25, 1.0, -0.5],
            vec![0.0; 2],
            true,
        )
        .unwrap(),
        dtdcert::model::ir::dense_layer(2, 2, vec![1.0, 0.5, -1.0, 1.0], vec![0.1, 0.0], false)
            .unwrap(),
    ])
    .unwrap();
    let torch = TorchNet::new(&net, Precision::F64, Device::Cpu);
    let x = torch.input(&[0.1, 0.2, 0.3], 1);
    let lp = DtdSettings {
        rule: "nearest-valid:l1".parse().unwrap(),
        ..DtdSettings::default()
    };
    let err = torch.explain(&x, &[], &lp).err().unwrap().to_string();
    assert!(
        err.contains("linear programs") && err.contains("--backend exact"),
        "{err}"
    );
    let settings = DtdSettings::default();
    let err = torch
        .explain(&x, &[Some(0), Some(1)], &settings)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("2 targets for a batch of 1"), "{err}");
    let err = torch
        .explain(&x, &[Some(99)], &settings)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("target 99"), "{err}");
    if !dtdcert::torch::cuda_available() {
        let err = device("cuda").err().unwrap().to_string();
        assert!(err.contains("no CUDA device"), "{err}");
    }
    assert!(device("tpu").is_err());
    assert_eq!(device("cpu").unwrap(), Device::Cpu);
}

/// `dtdcert explain --backend torch` writes the exact engine's relevances (f64 within 1e-12
/// relative, in one batch or in batches of 7; f32 within 1e-5 for z+), and refuses what it cannot do with one line and exit
/// code 2, writing nothing.
#[test]
fn explain_with_the_torch_backend() {
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str], out: &str| {
        let path = dir.path().join(out);
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_dtdcert"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .args(["explain", "--model", "examples/c6/model.onnx"])
            .args(["--inputs", "examples/c6/inputs.npy", "--out"])
            .arg(&path)
            .args(extra)
            .output()
            .unwrap();
        (status, path)
    };
    let read = |p: &std::path::Path| -> ndarray::Array2<f64> { ndarray_npy::read_npy(p).unwrap() };
    let (s, exact) = run(&["--rule", "z+"], "exact.npy");
    assert!(s.status.success());
    let exact = read(&exact);
    let scale = exact.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    // f64 and f32 in one batch (all 100 inputs), and f64 in batches of 7.
    let cases = [
        ("f64", "1024", 1e-12),
        ("f32", "1024", 1e-5),
        ("f64", "7", 1e-12),
    ];
    for (precision, batch, tolerance) in cases {
        let flags = [
            "--rule",
            "z+",
            "--backend",
            "torch",
            "--precision",
            precision,
        ];
        let (s, path) = run(
            &[&flags[..], &["--batch", batch]].concat(),
            &format!("{precision}_{batch}.npy"),
        );
        assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
        let got = read(&path);
        assert_eq!(got.dim(), exact.dim());
        let worst = (&got - &exact).iter().fold(0.0f64, |m, v| m.max(v.abs())) / scale;
        assert!(worst <= tolerance, "{precision}: {worst:e}");
    }
    let refused = |extra: &[&str], needle: &str| {
        let (s, path) = run(extra, "refused.npy");
        let stderr = String::from_utf8_lossy(&s.stderr);
        assert_eq!(s.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(!path.exists());
    };
    for (extra, needle) in [
        (&["--exact"][..], "--exact runs on --backend exact"),
        (&["--precision", "f16"], "expected f32 or f64"),
        (&["--batch", "0"], "--batch must be at least 1"),
        (&["--device", "tpu"], "expected cpu, cuda or auto"),
        (&["--rule", "nearest-valid:l1"], "--backend exact"),
    ] {
        refused(&[&["--backend", "torch"][..], extra].concat(), needle);
    }
    if !dtdcert::torch::cuda_available() {
        refused(
            &["--backend", "torch", "--device", "cuda"],
            "no CUDA device",
        );
    }
}

/// Audit settings: the drawn DTD settings, with or without a domain box.
fn audit_settings(dtd: DtdSettings, boxed: bool) -> AuditSettings {
    AuditSettings {
        dtd,
        domain: boxed.then_some(DomainBox { lo: -1.0, hi: 1.0 }),
        ..AuditSettings::default()
    }
}

/// The torch backend's audit records equal the exact engine's on random MLPs with carried
/// tails and max-pool layers, every rule (LRP rules for the unresolved relevance), with and
/// without a domain box.
#[test]
fn audits_equal_the_engines_on_random_mlps() {
    let cases = (mlp_cases(), any::<bool>())
        .prop_map(|((net, xs, dtd), boxed)| (Model::new(net), xs, audit_settings(dtd, boxed)));
    audit_parity("random MLPs", cases, 256, 11);
}

/// The same on random convolutional networks (convolution, average, global and max
/// pooling) read from ONNX, loaded as rows or with the convolution kept as its kernel, with
/// the DTD root rules.
#[test]
fn audits_equal_the_engines_on_random_conv_nets() {
    let root_rules = ["0", "z", "z+", "gamma:0.25", "w2", "zb:-1:1"];
    let cases = (
        util::conv::conv_net_and_input(),
        prop::sample::select(root_rules.to_vec()),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|((net, x), rule, boxed, kernels)| {
            let dtd = DtdSettings {
                rule: rule.parse().unwrap(),
                ..DtdSettings::default()
            };
            let model = match kernels {
                false => util::conv::load(&net),
                true => {
                    let options = OnnxOptions {
                        conv_rows_up_to: Some(0),
                        ..OnnxOptions::default()
                    };
                    let path = Path::new("random.onnx");
                    Model::new(load_bytes_with(&net.onnx(), path, options).unwrap())
                }
            };
            (model, vec![x], audit_settings(dtd, boxed))
        });
    audit_parity("random conv nets", cases, 192, 11);
}

/// The shipped example (C6, whose roots lie on faces of their regions) and the convolutional
/// (also with their convolutions kept as kernels), max-pool, residual and shared-layer
/// fixtures: the torch backend's audits differ from the
/// exact engine's only below resolution (in f64 and f32), and the differences are counted.
#[test]
fn audits_of_the_fixtures_differ_only_below_resolution() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let c6 = Model::load(&root.join("examples/c6/model.onnx")).unwrap();
    let inputs =
        dtdcert::model::inputs::load_inputs(&root.join("examples/c6/inputs.npy"), None).unwrap();
    let c6_inputs = (0..inputs.len()).map(|i| inputs.row(i).unwrap()).collect();
    let mut models = vec![("c6".to_string(), c6, c6_inputs)];
    for name in [
        "conv_bn_pool_2x6x6_f64_opset17",
        "residual_conv_2x6x6_f64_opset17",
    ] {
        models.extend(both_loadings(name));
    }
    for name in ["maxpool_coord_2x7x7_opset17", "coord_set_1x5x5_opset17"] {
        let (model, xs) = fixture(name);
        models.push((name.to_string(), model, xs));
    }
    let mut roots = 0;
    for (name, model, xs) in &models {
        for rule in ["z+", "z"] {
            let settings = audit_settings(
                DtdSettings {
                    rule: rule.parse().unwrap(),
                    ..DtdSettings::default()
                },
                false,
            );
            let p64 = compare_audits(
                model,
                xs,
                &settings,
                Precision::F64,
                Device::Cpu,
                1e-12,
                true,
            )
            .unwrap_or_else(|e| panic!("{name}, {rule}, f64: {e}"));
            assert_eq!(p64.outcomes, 0, "{name}, {rule}");
            let p32 = compare_audits(
                model,
                xs,
                &settings,
                Precision::F32,
                Device::Cpu,
                1e-5,
                false,
            )
            .unwrap_or_else(|e| panic!("{name}, {rule}, f32: {e}"));
            println!("{name}, {rule}, f64: {p64:?}\n{name}, {rule}, f32: {p32:?}");
            roots += p64.roots;
        }
    }
    assert!(roots >= 1000, "{roots} roots");
}

/// Runs the binary from the package root.
fn dtdcert(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_dtdcert"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .unwrap()
}

/// `dtdcert audit --backend torch` writes the same files as the exact engine, with verdicts
/// marked `unchecked` and the backend recorded in run.json (a resume with another precision
/// is refused); `--certify` answers its roots with certificates `check-cert` accepts; what it
/// cannot do is refused with one line and exit code 2, writing nothing.
#[test]
fn audit_with_the_torch_backend() {
    let dir = tempfile::tempdir().unwrap();
    let out = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let base = [
        "audit",
        "--model",
        "examples/c6/model.onnx",
        "--inputs",
        "examples/c6/inputs.npy",
        "-q",
    ];
    let z_plus = ["--rule", "z+"];
    let exact = out("exact");
    assert!(dtdcert(&[&base[..], &z_plus, &["--out", &exact]].concat())
        .status
        .success());
    let torch = out("torch");
    let flags = ["--backend", "torch", "--precision", "f64"];
    let s = dtdcert(&[&base[..], &z_plus, &flags, &["--out", &torch]].concat());
    assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
    let json = |dir: &str, file: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}/{file}")).unwrap()).unwrap()
    };
    let run = json(&torch, "run.json");
    assert_eq!(run["settings"]["torch"]["precision"], "f64");
    assert_eq!(run["settings"]["torch"]["device"], "cpu");
    let (te, tt) = (json(&exact, "summary.json"), json(&torch, "summary.json"));
    assert_eq!(te["total"]["roots"], tt["total"]["roots"]);
    assert_eq!(te["samples"], tt["samples"]);
    let records = std::fs::read_to_string(format!("{torch}/records.jsonl")).unwrap();
    assert_eq!(records.lines().count(), 100);
    let verdicts = records.matches("\"decided_by\":\"unchecked\"").count();
    assert_eq!(verdicts as u64, tt["total"]["roots"].as_u64().unwrap());
    // Resuming with another precision is refused.
    let f32 = ["--backend", "torch", "--precision", "f32"];
    let s = dtdcert(&[&base[..], &z_plus, &f32, &["--resume", &torch]].concat());
    assert_eq!(s.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&s.stderr).contains("settings.torch.precision"));
    // --certify on five samples: every certificate is accepted.
    let certified = out("certified");
    let certify = [
        "--certify",
        "nearest-l1",
        "--shard",
        "1/20",
        "--out",
        &certified,
    ];
    let s = dtdcert(&[&base[..], &z_plus, &flags, &certify].concat());
    assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
    let files: Vec<String> = std::fs::read_dir(format!("{certified}/certificates"))
        .unwrap()
        .map(|e| e.unwrap().path().to_str().unwrap().to_string())
        .collect();
    assert!(!files.is_empty());
    let mut check = vec!["check-cert", "--model", "examples/c6/model.onnx"];
    check.extend(files.iter().map(String::as_str));
    let s = dtdcert(&check);
    let stdout = String::from_utf8_lossy(&s.stdout);
    assert_eq!(
        stdout.matches(": accepted").count(),
        files.len(),
        "{stdout}"
    );
    // Refused, writing nothing.
    let refused = out("refused");
    let mut cases = vec![
        (
            vec!["--rule", "z+", "--exact"],
            "--exact runs on --backend exact",
        ),
        (vec!["--precision", "f16"], "expected f32 or f64"),
        (vec!["--device", "tpu"], "expected cpu, cuda or auto"),
        (vec!["--rule", "nearest-valid:l1"], "--backend exact"),
    ];
    if !dtdcert::torch::cuda_available() {
        cases.push((vec!["--device", "cuda"], "no CUDA device"));
    }
    for (extra, needle) in cases {
        let s = dtdcert(
            &[
                &base[..],
                &["--backend", "torch", "--out", &refused],
                &extra,
            ]
            .concat(),
        );
        let stderr = String::from_utf8_lossy(&s.stderr);
        assert_eq!(s.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(!std::path::Path::new(&refused).exists(), "{extra:?}");
    }
}
