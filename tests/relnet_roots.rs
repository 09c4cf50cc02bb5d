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
use dtdcert::model::relnet::RelationNetwork;
use dtdcert::model::{LoadOptions, Model, Trace};
use dtdcert::region::{membership, trace_and_pattern, Membership, Pattern};
use dtdcert::repro::clevr::{clevr_questions, load_image, Vocabulary};
use dtdcert::repro::relnet_roots::wilson;
use dtdcert::repro::sort_of_clevr::{load_set, Loaded, QUESTION_WIDTH, SIZE};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use relnet_common::{clevr_root, generate, ok, relnet, s};
use safetensors::tensor::{Dtype, TensorView};
use serde_json::{json, Value};

/// Writes the Sort-of-CLEVR-shaped network's description and weights into `dir`; returns
/// the description's path.
fn write_network(dir: &Path, seed: u64) -> PathBuf {
    write_shaped(dir, seed, SIZE, QUESTION_WIDTH, 10, None)
}

/// [`write_network`] for `side × side` images, questions of `question` values and `outputs`
/// outputs; with a vocabulary, the question vector comes from a question encoder (embedding
/// of 3 values, LSTM of `question`) over its words.
fn write_shaped(
    dir: &Path,
    seed: u64,
    side: usize,
    question: usize,
    outputs: usize,
    vocabulary: Option<&Vocabulary>,
) -> PathBuf {
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
    let g = dense("g", &[(8, 2 * (2 + 2) + question), (8, 8)]);
    let f = dense("f", &[(8, 8), (outputs, 8)]);
    let encoder = vocabulary.map(|v| {
        let gates = 4 * question;
        draw(
            "text.embedding.weight",
            vec![v.words.len() + 1, 3],
            0.0,
            1.0,
        );
        draw("text.lstm.weight_ih", vec![gates, 3], 0.0, 0.5);
        draw("text.lstm.weight_hh", vec![gates, question], 0.0, 0.5);
        draw("text.lstm.bias_ih", vec![gates], 0.0, 0.5);
        draw("text.lstm.bias_hh", vec![gates], 0.0, 0.5);
        std::fs::write(
            dir.join("vocabulary.json"),
            serde_json::to_string(v).unwrap(),
        )
        .unwrap();
        json!({"vocabulary": "vocabulary.json", "embedding": "text.embedding.weight",
               "weight_ih": "text.lstm.weight_ih", "weight_hh": "text.lstm.weight_hh",
               "bias_ih": "text.lstm.bias_ih", "bias_hh": "text.lstm.bias_hh"})
    });
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
    let mut description = json!({
        "format": "dtdcert-relation-network", "version": 1, "weights": "rn.safetensors",
        "image": [3, side, side], "conv": conv, "question": question, "g": g, "f": f,
    });
    if let Some(encoder) = encoder {
        description["question_encoder"] = encoder;
    }
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
    /// Question `question` of a Sort-of-CLEVR set.
    fn soc(model_path: &Path, set: &Loaded, question: usize, dtd: &DtdSettings) -> Self {
        let q: Vec<f64> = set.questions[question * QUESTION_WIDTH..][..QUESTION_WIDTH]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let image = set.image_of[question];
        let n = 3 * SIZE * SIZE;
        let x: Vec<f64> = set.images[image * n..(image + 1) * n]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        Self::new(model_path, q, &x, dtd, None)
    }

    /// The sample of question vector `q` and image `x`, explaining output `explained` (the
    /// largest where `None`).
    fn new(
        model_path: &Path,
        q: Vec<f64>,
        x: &[f64],
        dtd: &DtdSettings,
        explained: Option<usize>,
    ) -> Self {
        let model = Model::load_with(
            model_path,
            &LoadOptions {
                question: Some(q),
                ..LoadOptions::default()
            },
        )
        .unwrap();
        let (trace, pattern, _) = trace_and_pattern(&model, x);
        assert_eq!(pattern, exact_pattern(&model, x));
        let explained = explained.unwrap_or_else(|| argmax(trace.output()));
        let explanation = explain(model.net(), &trace, dtd, explained, false);
        Self {
            model,
            trace,
            pattern,
            explanation,
        }
    }
}

/// Per layer the roots judged and those outside, and per (sample, layer) the roots drawn,
/// after judging every line of `csv` again: its sample (`sample_of(question)`) rebuilt here,
/// the root rebuilt and its membership decided in exact rationals. Each (sample, layer)'s
/// neurons are the audit's draw (`audit --roots-per-layer`) among those with a root.
type Tallies = (Vec<u64>, Vec<u64>, HashMap<(usize, usize), usize>);

fn judge_again(csv: &str, report: &Value, sample_of: impl Fn(usize) -> Sample) -> Tallies {
    let dtd = DtdSettings::default();
    let layers = report["layers"].as_array().unwrap();
    let names: Vec<&str> = layers.iter().map(|l| l["name"].as_str().unwrap()).collect();
    let samples = report["samples"].as_array().unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "sample,question,image,layer,name,neuron,status,exit_layer,exit_neuron,margin,slack,decided_by"
    );
    let mut samples_seen: HashMap<usize, Sample> = HashMap::new();
    let mut judged = vec![0u64; layers.len()];
    let mut outside = vec![0u64; layers.len()];
    let mut per_sample_layer: HashMap<(usize, usize), usize> = HashMap::new();
    let mut neurons: HashMap<(usize, usize), Vec<usize>> = HashMap::new();
    let settings = &report["settings"];
    let (seed, k) = (
        settings["seed"].as_u64().unwrap(),
        settings["roots_per_layer"].as_u64().unwrap(),
    );
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
        neurons.entry((sample, layer)).or_default().push(neuron);
        let Sample {
            model,
            trace,
            pattern,
            explanation: e,
        } = samples_seen
            .entry(sample)
            .or_insert_with(|| sample_of(question));
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
    for ((sample, layer), drawn) in neurons {
        let e = &samples_seen[&sample].explanation;
        let with_root: Vec<usize> = (0..e.layers[layer - 1].neurons.len())
            .filter(|&j| {
                matches!(
                    e.layers[layer - 1].neurons[j].outcome,
                    RootOutcome::Root { .. }
                )
            })
            .collect();
        let draw =
            dtdcert::audit::sampling::draw_neurons(seed, sample, layer - 1, &with_root, k as usize);
        assert_eq!(drawn, draw, "sample {sample} layer {layer}");
    }
    (judged, outside, per_sample_layer)
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
    let dtd = DtdSettings::default();
    let csv = std::fs::read_to_string(out.join("roots.csv")).unwrap();
    let (judged, outside, per_sample_layer) =
        judge_again(&csv, &report, |q| Sample::soc(&model_path, &set, q, &dtd));
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

#[test]
fn clevr_questions_go_through_the_network_s_encoder_and_their_roots_are_judged_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("CLEVR_v1.0");
    clevr_root(&root);
    let vocabulary = Vocabulary::build(&clevr_questions(&root, "train").unwrap());
    let outputs = vocabulary.answers.len() + 1;
    let model_path = write_shaped(dir.path(), 3, 128, 4, outputs, Some(&vocabulary));
    let out = dir.path().join("roots");
    ok(roots(
        &model_path,
        &root,
        &out,
        &[
            "--samples",
            "1",
            "--roots",
            "2",
            "--seed",
            "1",
            "--explain",
            "true",
        ],
    ));
    let report = summary(&out);
    let val = clevr_questions(&root, "val").unwrap();
    let rn = RelationNetwork::load(&model_path).unwrap();
    let encoder = rn.question_encoder().unwrap();
    // Each sample's answer is the model's index of the val answer, and it is explained.
    for sample in report["samples"].as_array().unwrap() {
        let q = &val[sample["question"].as_u64().unwrap() as usize];
        let answer = vocabulary.answers[q.answer.as_ref().unwrap()];
        assert_eq!(sample["answer"], answer);
        assert_eq!(sample["explained"], answer);
    }
    let dtd = DtdSettings::default();
    let csv = std::fs::read_to_string(out.join("roots.csv")).unwrap();
    let (judged, _, per_sample_layer) = judge_again(&csv, &report, |question| {
        let q = &val[question];
        let vector = encoder.encode_text(&q.text).unwrap();
        let x: Vec<f64> = load_image(&q.image)
            .unwrap()
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let answer = vocabulary.answers[q.answer.as_ref().unwrap()];
        Sample::new(&model_path, vector, &x, &dtd, Some(answer))
    });
    assert!(judged.iter().sum::<u64>() >= 6, "{judged:?}");
    assert!(per_sample_layer.values().all(|&n| n <= 2));

    // `relnet image` writes the preprocessed images, one row each; the audit reads the same
    // question in words and records both.
    let image = |out: &Path, images: &[&Path]| {
        let head = ["relnet", "image", "--out", s(out)];
        let paths: Vec<&str> = images.iter().map(|p| s(p)).collect();
        relnet_common::dtdcert(&[&head[..], &paths].concat())
    };
    let (two, inputs) = (dir.path().join("two.npy"), dir.path().join("x.npy"));
    ok(image(&two, &[&val[2].image, &val[0].image]));
    ok(image(&inputs, &[&val[0].image]));
    let rows: ndarray::Array2<f64> = ndarray_npy::read_npy(&two).unwrap();
    assert_eq!(rows.dim(), (2, 3 * 128 * 128));
    for (row, q) in rows.outer_iter().zip([&val[2], &val[0]]) {
        let want: Vec<f64> = load_image(&q.image)
            .unwrap()
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        assert_eq!(row.to_vec(), want);
    }
    let bad = image(&dir.path().join("y.npy"), &[&val[0].image, &two]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{err}");
    assert!(err.contains("two.npy") && err.contains("PNG"), "{err}");
    assert!(!dir.path().join("y.npy").exists());
    let audit = dir.path().join("audit");
    ok(relnet_common::dtdcert(&[
        "audit",
        "-q",
        "--model",
        s(&model_path),
        "--inputs",
        s(&inputs),
        "--question-text",
        &val[0].text,
        "--out",
        s(&audit),
    ]));
    let spec: Value =
        serde_json::from_str(&std::fs::read_to_string(audit.join("run.json")).unwrap()).unwrap();
    let vector = encoder.encode_text(&val[0].text).unwrap();
    assert_eq!(spec["model"]["question"], json!(vector));
    assert_eq!(spec["model"]["question_text"], val[0].text.as_str());
}

#[test]
fn bad_question_encoders_and_question_texts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("CLEVR_v1.0");
    clevr_root(&root);
    let vocabulary = Vocabulary::build(&clevr_questions(&root, "train").unwrap());
    let outputs = vocabulary.answers.len() + 1;
    let model = write_shaped(dir.path(), 3, 128, 4, outputs, Some(&vocabulary));
    let refused = |needle: &str| {
        let e = RelationNetwork::load(&model).unwrap_err().to_string();
        assert!(e.contains("rn.json") && e.contains(needle), "{e}");
    };
    let words = dir.path().join("vocabulary.json");
    let good = std::fs::read_to_string(&words).unwrap();
    std::fs::remove_file(&words).unwrap();
    refused("vocabulary.json");
    let mut bad = vocabulary.clone();
    bad.words.insert("zebra".into(), 0);
    std::fs::write(&words, serde_json::to_string(&bad).unwrap()).unwrap();
    refused("'zebra' has index 0");
    let mut bad = vocabulary.clone();
    bad.answers.insert("seven".into(), outputs);
    std::fs::write(&words, serde_json::to_string(&bad).unwrap()).unwrap();
    refused(&format!("'seven' has index {outputs}"));
    // One word more than the embedding has rows.
    let mut bad = vocabulary.clone();
    bad.words.insert("zebra".into(), vocabulary.words.len() + 1);
    std::fs::write(&words, serde_json::to_string(&bad).unwrap()).unwrap();
    refused("text.embedding.weight");
    std::fs::write(&words, good).unwrap();
    RelationNetwork::load(&model).unwrap();

    // --question-text: words outside the dictionary, a network without an encoder, a model
    // that is no relation network; and CLEVR data for a network without an encoder.
    let x = dir.path().join("x.npy");
    ndarray_npy::write_npy(&x, &ndarray::Array2::<f32>::zeros((1, 3 * 128 * 128))).unwrap();
    let plain_dir = dir.path().join("plain");
    std::fs::create_dir(&plain_dir).unwrap();
    let plain = write_network(&plain_dir, 1);
    let out = dir.path().join("out");
    for (model, text, needle) in [
        (
            &model,
            "Is there a zebra?",
            "'zebra' is not in the model's dictionary",
        ),
        (&plain, "Is there a cube?", "no question encoder"),
    ] {
        let got = relnet_common::dtdcert(&[
            "audit",
            "-q",
            "--model",
            s(model),
            "--inputs",
            s(&x),
            "--question-text",
            text,
            "--out",
            s(&out),
        ]);
        let err = String::from_utf8_lossy(&got.stderr);
        assert_eq!(got.status.code(), Some(2), "{err}");
        assert!(err.contains(needle) && err.contains("rn.json"), "{err}");
        assert!(!out.exists());
    }
    let got = relnet_common::dtdcert(&[
        "audit",
        "-q",
        "--model",
        "tests/data/onnx/conv_1x4x4_opset13.onnx",
        "--inputs",
        s(&x),
        "--question-text",
        "Is there a cube?",
        "--out",
        s(&out),
    ]);
    let err = String::from_utf8_lossy(&got.stderr);
    assert_eq!(got.status.code(), Some(2), "{err}");
    assert!(err.contains("applies to relation networks"), "{err}");
    let got = roots(&plain, &root, &out, &["--samples", "1"]);
    let err = String::from_utf8_lossy(&got.stderr);
    assert_eq!(got.status.code(), Some(2), "{err}");
    assert!(err.contains("no question encoder"), "{err}");
    assert!(!out.exists());
}
