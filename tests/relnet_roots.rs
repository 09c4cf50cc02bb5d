//! `dtdcert relnet roots`: every judged root of a relation network's z+ explanation is judged
//! again here, independently, in exact rationals (the input's pattern from an exact forward
//! pass, the root's membership from the exact linearised network); the per-layer tallies
//! match the roots listed; the draws follow the seed; bad requests exit 2 and write nothing.
//!
//! The network is a Sort-of-CLEVR-shaped one with random f32 weights (four conv blocks of 2
//! channels with batch norm, g = 19→8→8, f = 8→8→10), written here as `rn.json` and
//! safetensors, so that this runs without libtorch.

mod relnet_common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use dtdcert::dtd::{explain, neuron_root, DtdSettings, Explanation, RootOutcome};
use dtdcert::exact::{Rational, Scalar};
use dtdcert::model::forward::{argmax, forward};
use dtdcert::model::{LoadOptions, Model, Trace};
use dtdcert::region::{membership, trace_and_pattern, Membership, Pattern};
use dtdcert::repro::relnet_roots::wilson;
use dtdcert::repro::sort_of_clevr::{load_set, Loaded, QUESTION_WIDTH, SIZE};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use relnet_common::{generate, ok, relnet};
use safetensors::tensor::{Dtype, TensorView};
use serde_json::{json, Value};

/// Writes the network's description and weights into `dir`; returns the description's path.
fn write_network(dir: &Path, seed: u64) -> PathBuf {
    let rng = &mut ChaCha8Rng::seed_from_u64(seed);
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let mut draw = |name: &str, shape: Vec<usize>, centre: f32, scale: f32| {
        let n = shape.iter().product();
        let values = (0..n)
            .map(|_| centre + scale * rng.random_range(-1.0f32..1.0))
            .collect();
        tensors.push((name.to_string(), shape, values));
    };
    let mut conv = Vec::new();
    for (k, inp) in [3, 2, 2, 2].into_iter().enumerate() {
        let (w, bn) = (format!("conv.{}", 3 * k), format!("conv.{}", 3 * k + 1));
        draw(&format!("{w}.weight"), vec![2, inp, 3, 3], 0.0, 0.5);
        draw(&format!("{bn}.weight"), vec![2], 1.0, 0.3);
        draw(&format!("{bn}.bias"), vec![2], 0.0, 0.2);
        draw(&format!("{bn}.running_mean"), vec![2], 0.0, 0.2);
        draw(&format!("{bn}.running_var"), vec![2], 1.0, 0.5);
        conv.push(json!({
            "weight": format!("{w}.weight"), "stride": 2, "padding": 1,
            "batch_norm": {"weight": format!("{bn}.weight"), "bias": format!("{bn}.bias"),
                "running_mean": format!("{bn}.running_mean"),
                "running_var": format!("{bn}.running_var"), "eps": 1e-5}
        }));
    }
    let mut dense = |prefix: &str, shapes: &[(usize, usize)]| {
        shapes
            .iter()
            .enumerate()
            .map(|(k, &(out, inp))| {
                let name = format!("{prefix}.{k}");
                draw(
                    &format!("{name}.weight"),
                    vec![out, inp],
                    0.0,
                    1.5 / (inp as f32).sqrt(),
                );
                draw(&format!("{name}.bias"), vec![out], 0.0, 0.1);
                json!({"weight": format!("{name}.weight"), "bias": format!("{name}.bias")})
            })
            .collect::<Vec<_>>()
    };
    let g = dense("g", &[(8, 2 * (2 + 2) + QUESTION_WIDTH), (8, 8)]);
    let f = dense("f", &[(8, 8), (10, 8)]);
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, shape, v)| {
            (
                name,
                shape,
                v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = bytes
        .iter()
        .map(|(name, shape, b)| {
            (
                name.clone(),
                TensorView::new(Dtype::F32, shape.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::tensor::serialize_to_file(views, None, &dir.join("rn.safetensors")).unwrap();
    let description = json!({
        "format": "dtdcert-relation-network", "version": 1, "weights": "rn.safetensors",
        "image": [3, SIZE, SIZE], "conv": conv, "question": QUESTION_WIDTH, "g": g, "f": f,
    });
    let path = dir.join("rn.json");
    std::fs::write(&path, serde_json::to_string_pretty(&description).unwrap()).unwrap();
    path
}

fn roots(model: &Path, data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    relnet("roots", model, data, out, extra)
}

fn summary(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap()
}

/// The exact pattern of `x`: the signs of an exact rational forward pass.
fn exact_pattern(model: &Model, x: &[f64]) -> Pattern {
    let xr: Vec<Rational> = x.iter().map(|&v| Rational::from_f64(v)).collect();
    Pattern::from_pre(model.exact(), &forward(model.exact(), &xr).pre)
}

/// One sample as judged here: its chain, f64 forward pass, exact pattern and explanation.
struct Sample {
    model: Model,
    trace: Trace<f64>,
    pattern: Pattern,
    explanation: Explanation<f64>,
}

impl Sample {
    fn new(model_path: &Path, set: &Loaded, question: usize, dtd: &DtdSettings) -> Self {
        let q: Vec<f64> = set.questions[question * QUESTION_WIDTH..][..QUESTION_WIDTH]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let model = Model::load_with(
            model_path,
            &LoadOptions {
                question: Some(q),
                ..LoadOptions::default()
            },
        )
        .unwrap();
        let image = set.image_of[question];
        let n = 3 * SIZE * SIZE;
        let x: Vec<f64> = set.images[image * n..(image + 1) * n]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let (trace, pattern, _) = trace_and_pattern(&model, &x);
        assert_eq!(pattern, exact_pattern(&model, &x), "question {question}");
        let explained = argmax(trace.output());
        let explanation = explain(model.net(), &trace, dtd, explained, false);
        Self {
            model,
            trace,
            pattern,
            explanation,
        }
    }
}

#[test]
fn every_judged_root_is_judged_again_in_exact_rationals() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("soc");
    generate(&data, 2, 5);
    let model_path = write_network(dir.path(), 11);
    let out = dir.path().join("roots");
    ok(roots(
        &model_path,
        &data,
        &out,
        &["--samples", "3", "--roots", "3", "--seed", "4"],
    ));
    let report = summary(&out);
    let layers = report["layers"].as_array().unwrap();
    let names: Vec<&str> = layers.iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "conv block 1",
            "conv block 2",
            "conv block 3",
            "conv block 4",
            "g.0",
            "g.1",
            "sum over pairs",
            "f.0",
            "f.1"
        ]
    );
    let samples = report["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 3);

    // Every CSV line judged again.
    let set = load_set(&data, None).unwrap();
    let csv = std::fs::read_to_string(out.join("roots.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "sample,question,image,layer,name,neuron,status,exit_layer,exit_neuron,margin,slack,decided_by"
    );
    let mut samples_seen: HashMap<usize, Sample> = HashMap::new();
    let mut judged = vec![0u64; layers.len()];
    let mut outside = vec![0u64; layers.len()];
    let mut per_sample_layer: HashMap<(usize, usize), usize> = HashMap::new();
    let dtd = DtdSettings::default();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        let sample: usize = f[0].parse().unwrap();
        let question: usize = f[1].parse().unwrap();
        let layer: usize = f[3].parse().unwrap();
        let neuron: usize = f[5].parse().unwrap();
        assert_eq!(f[4], names[layer - 1], "{line}");
        assert_eq!(samples[sample]["question"], question, "{line}");
        judged[layer - 1] += 1;
        *per_sample_layer.entry((sample, layer)).or_default() += 1;
        let Sample {
            model,
            trace,
            pattern,
            explanation: e,
        } = samples_seen
            .entry(sample)
            .or_insert_with(|| Sample::new(&model_path, &set, question, &dtd));
        assert_eq!(samples[sample]["explained"], e.explained, "{line}");
        let relevance = &e.layers[layer - 1].neurons[neuron].relevance;
        let a = trace.layer_input(layer - 1);
        let RootOutcome::Root { point, .. } =
            neuron_root(model.net(), layer - 1, neuron, a, relevance, &dtd)
        else {
            panic!("{line}: no root");
        };
        let point: Vec<Rational> = point.iter().map(|&v| Rational::from_f64(v)).collect();
        match membership(model.exact(), pattern, layer - 1, &point) {
            Membership::Inside { .. } => assert_eq!(f[6], "inside", "{line}"),
            Membership::Outside {
                layer: l,
                neuron: n,
                ..
            } => {
                outside[layer - 1] += 1;
                assert_eq!(
                    (f[6], f[7], f[8]),
                    ("outside", l.to_string().as_str(), n.to_string().as_str()),
                    "{line}"
                );
            }
        }
    }
    // The tallies are those of the lines, and each sample's draws are min(K, available).
    for (l, row) in layers.iter().enumerate() {
        assert_eq!(row["judged"], judged[l], "layer {}", l + 1);
        assert_eq!(row["outside"], outside[l], "layer {}", l + 1);
        if judged[l] > 0 {
            let fraction = outside[l] as f64 / judged[l] as f64;
            assert_eq!(row["fraction_outside"].as_f64().unwrap(), fraction);
            let [lo, hi] = wilson(outside[l], judged[l]).unwrap();
            assert!(lo <= fraction && fraction <= hi);
            assert_eq!(row["wilson_95"], json!([lo, hi]));
        }
        for (k, sample) in samples.iter().enumerate() {
            let available = sample["roots_available"][l].as_u64().unwrap() as usize;
            let drawn = per_sample_layer.get(&(k, l + 1)).copied().unwrap_or(0);
            assert_eq!(drawn, available.min(3), "sample {k} layer {}", l + 1);
        }
    }
    assert!(judged.iter().sum::<u64>() > 20, "{judged:?}");
    assert!(
        outside.iter().sum::<u64>() > 0,
        "no root outside: {judged:?}"
    );

    // The same seed draws the same; another seed draws other roots.
    let again = dir.path().join("again");
    ok(roots(
        &model_path,
        &data,
        &again,
        &["--samples", "3", "--roots", "3", "--seed", "4"],
    ));
    assert_eq!(
        std::fs::read_to_string(again.join("roots.csv")).unwrap(),
        csv
    );
    assert_eq!(summary(&again)["layers"], report["layers"]);
    let other = dir.path().join("other");
    ok(roots(
        &model_path,
        &data,
        &other,
        &["--samples", "3", "--roots", "3", "--seed", "5"],
    ));
    assert_ne!(
        std::fs::read_to_string(other.join("roots.csv")).unwrap(),
        csv
    );
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| 5 | g.0 | 5000 |"), "{md}");
}

#[test]
fn bad_roots_requests_exit_with_code_2_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("soc");
    generate(&data, 1, 5);
    let model = write_network(dir.path(), 11);
    let other = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/relnet/rn.json");
    let out = dir.path().join("out");
    for (model, extra, words) in [
        (
            other.as_path(),
            vec!["--samples", "1"],
            vec!["rn.json", "3×20×20", "3×75×75"],
        ),
        (model.as_path(), vec!["--samples", "0"], vec!["--samples"]),
        (
            model.as_path(),
            vec!["--samples", "21"],
            vec!["--samples 21", "holds 20 questions"],
        ),
        (
            model.as_path(),
            vec!["--samples", "1", "--roots", "0"],
            vec!["--roots"],
        ),
        (
            model.as_path(),
            vec!["--samples", "1", "--explain", "best"],
            vec!["--explain best"],
        ),
        (
            model.as_path(),
            vec!["--samples", "1", "--rule", "nearest-valid:l1"],
            vec!["nearest-valid", "linear programs"],
        ),
        (
            model.as_path(),
            vec!["--samples", "1", "--layer-rule", "10=z"],
            vec!["--layer-rule", "1..9"],
        ),
    ] {
        let got = roots(model, &data, &out, &extra);
        let err = String::from_utf8_lossy(&got.stderr);
        assert_eq!(got.status.code(), Some(2), "{extra:?}: {err}");
        for w in words {
            assert!(err.contains(w), "{extra:?}: {err} lacks {w}");
        }
        assert!(!out.exists(), "{extra:?} wrote {}", out.display());
    }
    // A data folder without its question file.
    std::fs::remove_file(data.join("questions.json")).unwrap();
    let got = roots(&model, &data, &out, &["--samples", "1"]);
    let err = String::from_utf8_lossy(&got.stderr);
    assert_eq!(got.status.code(), Some(2), "{err}");
    assert!(err.contains("questions.json"), "{err}");
    assert!(!out.exists());
}
