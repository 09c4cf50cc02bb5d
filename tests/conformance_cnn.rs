//! Conformance with Zennit on the convolutional architectures people explain: `dtdcert explain`
//! reproduces the input relevances Zennit 0.5.1 computes (in f64, with its torchvision
//! canonizers) for VGG-16, ResNet-50 and MobileNetV2 built with torchvision's classes and
//! seeded weights, within `|dtdcert − reference| <= atol + rtol · max |reference|` per input,
//! with the options each reference of the manifest names.
//!
//! The small networks (32×32 inputs, narrowed) live in tests/data/conformance_cnn/; the
//! full-size ones (1×3×224×224) are written to a folder by
//! `scripts/make_cnn_conformance.sh --full DIR`, and the tests that read them run with
//! `DTDCERT_CNN_FIXTURES=DIR cargo test --test conformance_cnn -- --ignored`.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use dtdcert::model::inputs::load_inputs;
use dtdcert::model::Model;
use serde_json::Value;

fn small() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/conformance_cnn")
}

/// The folder of the full-size fixtures, which `DTDCERT_CNN_FIXTURES` names.
fn full() -> PathBuf {
    match std::env::var_os("DTDCERT_CNN_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => panic!(
            "set DTDCERT_CNN_FIXTURES to the folder `scripts/make_cnn_conformance.sh --full DIR` \
             wrote"
        ),
    }
}

fn manifest(dir: &Path) -> Value {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn rows(path: &Path) -> Vec<Vec<f64>> {
    let inputs = load_inputs(path, None).unwrap();
    (0..inputs.len()).map(|i| inputs.row(i).unwrap()).collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// The manifest's references of the network `architecture`, with their case.
fn references<'m>(m: &'m Value, architecture: &str) -> Vec<(&'m Value, &'m Value)> {
    let cases = m["cases"].as_array().unwrap();
    let case = cases
        .iter()
        .find(|c| c["architecture"] == architecture)
        .unwrap_or_else(|| panic!("no {architecture} in the manifest"));
    m["references"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["case"] == case["case"])
        .map(|r| (case, r))
        .collect()
}

/// Runs `dtdcert explain` for the references of `architecture` in `dir` with one of `rules`
/// and compares; panics with every input out of tolerance. Returns how many references were
/// compared.
fn compare(dir: &Path, architecture: &str, rules: &[&str]) -> usize {
    let m = manifest(dir);
    let out = tempfile::tempdir().unwrap();
    let refs: Vec<_> = references(&m, architecture)
        .into_iter()
        .filter(|(_, r)| rules.iter().any(|rule| r["rule"] == *rule))
        .collect();
    assert!(!refs.is_empty(), "no {architecture} reference");
    let mut failures = Vec::new();
    for (n, (case, r)) in refs.iter().enumerate() {
        let file = |key: &str| dir.join(case[key].as_str().unwrap());
        let args = strings(&r["args"]);
        let path = out.path().join(format!("{n}.npy"));
        let run = Command::cargo_bin("dtdcert")
            .unwrap()
            .arg("explain")
            .arg("--model")
            .arg(file("model"))
            .arg("--inputs")
            .arg(file("inputs"))
            .arg("--targets")
            .arg(file("targets"))
            .args(&args)
            .arg("--out")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            run.status.success(),
            "{} {}: {}",
            r["case"],
            r["rule"],
            String::from_utf8_lossy(&run.stderr)
        );
        let (got, want) = (
            rows(&path),
            rows(&dir.join(r["reference"].as_str().unwrap())),
        );
        let atol = r["atol"].as_f64().unwrap();
        let rtol = r["rtol"].as_f64().unwrap();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.len(), w.len());
            let scale = w.iter().fold(0.0f64, |s, v| s.max(v.abs()));
            assert!(
                scale > 0.0,
                "{} {}: an all-zero reference",
                r["case"],
                r["rule"]
            );
            let tolerance = atol + rtol * scale;
            let worst = g
                .iter()
                .zip(w)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f64, f64::max);
            let nan = g.iter().any(|v| v.is_nan());
            println!(
                "{} {}: largest error {worst:.3e} = {:.3e} of the largest |relevance|",
                r["case"],
                r["rule"],
                worst / scale
            );
            if nan || worst > tolerance {
                failures.push(format!(
                    "{} {}: largest error {worst:e} above {tolerance:e} ({:e} of the largest \
                     |relevance|)",
                    r["case"],
                    r["rule"],
                    worst / scale
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    refs.len()
}

/// The rules compared with Zennit's own canonizers.
const ZENNIT_RULES: &[&str] = &["zplus", "EpsilonPlusFlat"];

#[test]
fn small_vgg16_matches_zennit() {
    assert_eq!(compare(&small(), "vgg16", ZENNIT_RULES), 2);
}

/// dtdcert takes a residual addition into one layer with the branch's last convolution and the
/// shortcut side by side; with Zennit's ResNet canonizer replaced by one that computes each
/// block's end so (`zplus-joint`), everything else — batch norms, the downsample branch, the
/// overlapping max pooling, the block input carried past the block's first two layers —
/// agrees.
#[test]
fn small_resnet50_matches_zennit_with_dtdcerts_residual_convention() {
    assert_eq!(compare(&small(), "resnet50", &["zplus-joint"]), 1);
}

/// Zennit's ResNetCanonizer first splits the relevance between the two summands of a residual
/// addition in proportion to their values (Norm on its Sum module) and applies the rule to the
/// convolution and to the downsample convolution afterwards, each with its own bias; dtdcert
/// does so with `--split-residual`, which the references' options give. dtdcert carries the
/// block input past the block's first two convolutions (and an identity shortcut past the
/// last one) as copies: identity neurons, which pass their relevance whole whatever the rule,
/// as the reused block input does in Zennit. The two agree within the manifest's tolerance
/// with Zennit's stabiliser 1e-6, under `zplus` and `EpsilonPlusFlat`.
#[test]
fn small_resnet50_read_apart_matches_zennits_resnet_canonizer() {
    assert_eq!(compare(&small(), "resnet50", ZENNIT_RULES), 2);
}

/// Zennit 0.5.1 has no canonizer for MobileNetV2: torchvision's InvertedResidual adds
/// `x + self.conv(x)` with Python's `+`, which hands both summands the whole relevance. The
/// reference uses the analogue of Zennit's ResNet canonizer (the sum through Zennit's `Sum`,
/// which gets `Norm`; the global average pooling through a module), which dtdcert reads with
/// `--split-residual`; Zennit's ZPlus on inputs of both signs (the projections have no
/// activation) is dtdcert's `alphabeta:1:0`. dtdcert carries each block's input past the
/// block's layers as identity neurons, which pass their relevance whole (a negative one
/// included, which α1β0 on a neuron would drop), as the reused block input does in Zennit;
/// the two agree within the manifest's tolerance: Flat on the first layer, depthwise
/// convolutions, `Clip`'s pass, the pooling and Epsilon on the classifier included.
#[test]
fn small_mobilenet_v2_matches_zennits_plain_canonizer() {
    assert_eq!(compare(&small(), "mobilenet_v2", &["EpsilonPlusFlat"]), 1);
}

/// What the small fixtures hold: the three networks, each exported with its operators (batch
/// norms as nodes, ResNet's residual additions, VGG's and ResNet's max pooling), references
/// for both rules on VGG-16 and ResNet-50 and the composite on MobileNetV2 with their options, with
/// tolerances no looser than 1e-8, and files that are the ones the manifest hashed.
#[test]
fn the_small_manifest_covers_the_three_networks() {
    let m = manifest(&small());
    for arch in ["vgg16", "resnet50", "mobilenet_v2"] {
        assert!(!references(&m, arch).is_empty(), "{arch}");
    }
    for arch in ["vgg16", "resnet50"] {
        let rules: Vec<&Value> = references(&m, arch)
            .iter()
            .map(|(_, r)| &r["rule"])
            .collect();
        for rule in ZENNIT_RULES {
            assert!(rules.contains(&&Value::from(*rule)), "{arch} {rule}");
        }
    }
    assert!(references(&m, "resnet50")
        .iter()
        .any(|(_, r)| r["rule"] == "zplus-joint"));
    assert!(references(&m, "mobilenet_v2")
        .iter()
        .any(|(_, r)| r["rule"] == "EpsilonPlusFlat" && r["args"].is_array()));
    for r in m["references"].as_array().unwrap() {
        assert!(r["atol"].as_f64().unwrap() <= 1e-8 && r["rtol"].as_f64().unwrap() <= 1e-8);
    }
    for c in m["cases"].as_array().unwrap() {
        assert_eq!(c["input_shape"], serde_json::json!([3, 32, 32]));
    }
    let ops = |file: &str| {
        let bytes = std::fs::read(small().join(file)).unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        move |op: &str| text.contains(op)
    };
    let resnet = ops("resnet50_small.onnx");
    assert!(resnet("BatchNormalization") && resnet("Add") && resnet("MaxPool"));
    assert!(ops("vgg16_small.onnx")("MaxPool"));
    assert!(ops("mobilenet_v2_small.onnx")("Clip"));
    for (name, hash) in m["sha256"].as_object().unwrap() {
        let bytes = std::fs::read(small().join(name)).unwrap();
        assert_eq!(sha256_hex(&bytes), hash.as_str().unwrap(), "{name}");
    }
}

/// The layer numbers the options name are those of the network dtdcert loads: as many layers
/// as the manifest counts, average-pooling layers without ReLU or max pooling, and the dense
/// layers ending the network.
#[test]
fn the_options_name_the_layers_dtdcert_loads() {
    let m = manifest(&small());
    for arch in ["vgg16", "resnet50", "mobilenet_v2"] {
        let (case, _) = references(&m, arch)[0];
        let model = Model::load(&small().join(case["model"].as_str().unwrap())).unwrap();
        let layers = model.net().layers();
        let listed = &case["dtdcert_layers"];
        assert_eq!(
            layers.len() as u64,
            listed["count"].as_u64().unwrap(),
            "{arch}"
        );
        let numbers = |key: &str| -> Vec<usize> {
            listed[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect()
        };
        for p in numbers("avg_pool") {
            let layer = &layers[p - 1];
            assert!(!layer.relu && layer.max_pool.is_none(), "{arch} layer {p}");
        }
        let dense = numbers("dense");
        assert_eq!(dense.last(), Some(&layers.len()), "{arch}");
        for d in dense {
            assert!(layers[d - 1].max_pool.is_none(), "{arch} layer {d}");
        }
        assert!(layers[0].relu && layers[0].max_pool.is_none(), "{arch}");
    }
}

#[test]
#[ignore = "needs DTDCERT_CNN_FIXTURES, the folder of `scripts/make_cnn_conformance.sh --full DIR`"]
fn full_vgg16_matches_zennit() {
    assert_eq!(compare(&full(), "vgg16", ZENNIT_RULES), 2);
}

#[test]
#[ignore = "needs DTDCERT_CNN_FIXTURES, the folder of `scripts/make_cnn_conformance.sh --full DIR`"]
fn full_resnet50_matches_zennit_with_dtdcerts_residual_convention() {
    assert_eq!(compare(&full(), "resnet50", &["zplus-joint"]), 1);
}

#[test]
#[ignore = "needs DTDCERT_CNN_FIXTURES, the folder of `scripts/make_cnn_conformance.sh --full DIR`"]
fn full_resnet50_read_apart_matches_zennits_resnet_canonizer() {
    assert_eq!(compare(&full(), "resnet50", &["zplus"]), 1);
}

#[test]
#[ignore = "needs DTDCERT_CNN_FIXTURES, the folder of `scripts/make_cnn_conformance.sh --full DIR`"]
fn full_mobilenet_v2_matches_zennits_plain_canonizer() {
    assert_eq!(compare(&full(), "mobilenet_v2", &["EpsilonPlusFlat"]), 1);
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("{:x}", Sha256::digest(bytes))
}
