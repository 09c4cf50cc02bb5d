//! The `nearest-valid` root finder: roots are certified nearest valid roots, so the audit
//! judges them inside their regions, they lie on their hyperplanes, relevance is conserved,
//! and no valid rule root is nearer than the certified lower bound.

mod util;

use assert_cmd::Command;
use dtdcert::audit::{audit_sample, AuditSettings};
use dtdcert::check::{ExplanationRef, Problem};
use dtdcert::dtd::{explain, DtdSettings, RootOutcome, Rule};
use dtdcert::lp::certify::{Answer, Certifier, QuestionRelevance, RegionQuestion};
use dtdcert::lp::nearest_valid::explain_valid;
use dtdcert::lp::SolveOptions;
use dtdcert::model::forward::forward;
use dtdcert::model::inputs::load_inputs;
use dtdcert::model::Model;
use dtdcert::region::problem::{Domain, Norm};
use dtdcert::region::{membership_filtered, trace_and_pattern};
use proptest::prelude::*;
use std::path::Path;

const MODEL: &str = "examples/c6/model.onnx";
const INPUTS: &str = "examples/c6/inputs.npy";

fn c6() -> (Model, Vec<Vec<f64>>) {
    let model = Model::load(Path::new(MODEL)).unwrap();
    let inputs = load_inputs(Path::new(INPUTS), None).unwrap();
    let rows = (0..20).map(|i| inputs.row(i).unwrap()).collect();
    (model, rows)
}

fn settings(rule: Rule) -> DtdSettings {
    DtdSettings {
        rule,
        ..DtdSettings::default()
    }
}

fn l1(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum()
}

/// On the hidden layers of C6 (where no root plane is the explained neuron's own face) every
/// nearest-valid root is judged inside its region, lies on its hyperplane, and relevance is
/// conserved up to rounding.
#[test]
fn nearest_valid_roots_are_valid_on_their_planes_and_conserve_relevance() {
    let (model, rows) = c6();
    let dtd = settings(Rule::NearestValid(Norm::L1));
    let mut roots = 0;
    for x in &rows {
        let (trace, pattern, _) = trace_and_pattern(&model, x);
        let e = explain_valid(&model, x, &trace, &dtd, 0, None, SolveOptions::default());
        for (index, step) in e.layers.iter().enumerate() {
            let total: f64 = step.upper.iter().map(|v| v.abs()).sum::<f64>().max(1.0);
            assert!(step.conservation_error().abs() <= 1e-12 * total);
            if index + 1 == e.layers.len() {
                continue;
            }
            let a = trace.layer_input(index);
            let affine = &model.net().layers()[index].affine;
            for (j, n) in step.neurons.iter().enumerate() {
                if let RootOutcome::Root { point, .. } = &n.outcome {
                    roots += 1;
                    let (m, _) = membership_filtered(&model, &pattern, index, point);
                    assert!(m.is_inside(), "layer {} neuron {j}: {m:?}", index + 1);
                    if index > 0 {
                        assert!(point.iter().all(|v| *v >= 0.0));
                    }
                    let moved: f64 = affine
                        .row(j)
                        .dense()
                        .iter()
                        .zip(a)
                        .zip(point)
                        .map(|((w, a), p)| w * (a - p))
                        .sum();
                    assert!((moved - n.relevance).abs() <= 1e-9 * n.relevance.abs().max(1.0));
                }
            }
        }
    }
    assert!(roots > 50, "only {roots} roots examined");
}

/// A valid z+ root is never nearer to the layer input than the certified lower bound on the
/// nearest valid root's distance. (The explained neuron's own layer is left out: there the
/// hyperplane is the neuron's face, and an f64 root judged inside may lie a rounding error off
/// the exact plane, on which no point is valid.)
#[test]
fn no_valid_rule_root_beats_the_certified_nearest_distance() {
    let (model, rows) = c6();
    let certifier = Certifier {
        model: &model,
        opts: SolveOptions::default(),
        model_path: None,
        inputs_path: None,
        cache: Default::default(),
    };
    let mut compared = 0;
    for (s, x) in rows.iter().enumerate() {
        let (trace, pattern, _) = trace_and_pattern(&model, x);
        let e = explain(model.net(), &trace, &settings(Rule::ZPlus), 0, true);
        let hidden = e.layers.len() - 1;
        for (index, step) in e.layers.iter().enumerate().take(hidden) {
            for (j, n) in step.neurons.iter().enumerate() {
                let RootOutcome::Root { point, .. } = &n.outcome else {
                    continue;
                };
                let (m, _) = membership_filtered(&model, &pattern, index, point);
                let in_domain = index == 0 || point.iter().all(|v| *v >= 0.0);
                if !m.is_inside() || !in_domain {
                    continue;
                }
                let q = RegionQuestion {
                    sample_index: s,
                    sample: x.clone(),
                    layer: index + 1,
                    neuron: Some(j),
                    relevance: Some(QuestionRelevance::Explained(ExplanationRef {
                        output: 0,
                        settings: settings(Rule::ZPlus),
                    })),
                    domain: Domain::of_layer(model.net(), index + 1, None),
                    problem: Problem::NearestL1,
                    constraint: None,
                    centre: None,
                };
                match certifier.answer(&q).answer {
                    Answer::Found { lower, .. } => {
                        let lower = lower.expect("a nearest answer has a lower bound");
                        let d = l1(trace.layer_input(index), point);
                        assert!(lower <= d, "layer {} neuron {j}: {lower} > {d}", index + 1);
                        compared += 1;
                    }
                    other => panic!("a valid root exists but the answer is {other:?}"),
                }
            }
        }
    }
    assert!(compared > 50, "only {compared} roots compared");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// On random networks, every root the audit sees under nearest-valid is judged valid, also
    /// where the root plane is the neuron's own face.
    #[test]
    fn audit_judges_nearest_valid_roots_valid((model, x) in util::network_and_input(-2.0, 2.0)) {
        let settings = AuditSettings {
            dtd: settings(Rule::NearestValid(Norm::L1)),
            ..AuditSettings::default()
        };
        let out = forward(model.net(), &x);
        let k = dtdcert::model::forward::argmax(out.output());
        let record = audit_sample(&model, &settings, 0, &x, Some(k)).unwrap();
        for lr in &record.layers {
            for n in &lr.neurons {
                if let Some(v) = &n.root {
                    prop_assert!(
                        v.valid,
                        "layer {} neuron {}: {:?}", lr.layer, n.neuron, v.region
                    );
                }
            }
        }
    }
}

#[test]
fn nearest_valid_refuses_exact_mode() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::cargo_bin("dtdcert")
        .unwrap()
        .args([
            "audit",
            "--model",
            MODEL,
            "--inputs",
            INPUTS,
            "--rule",
            "nearest-valid:l1",
            "--exact",
            "--quiet",
            "--out",
        ])
        .arg(dir.path().join("run"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nearest-valid"), "{stderr}");
}

/// Full-backward DTD with nearest-valid roots runs from the command line and reports its
/// remainders; train-free explain with the rule writes relevances that sum to the output up to
/// the reported unresolved relevance (no more than the output).
#[test]
fn explain_with_nearest_valid_roots_train_free_and_full_backward() {
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str], out: &str| {
        Command::cargo_bin("dtdcert")
            .unwrap()
            .args([
                "explain",
                "--model",
                MODEL,
                "--inputs",
                INPUTS,
                "--explain",
                "0",
            ])
            .args(["--rule", "nearest-valid:l1"])
            .args(extra)
            .arg("--out")
            .arg(dir.path().join(out))
            .output()
            .unwrap()
    };
    let report = dir.path().join("fb.json");
    let fb = run(
        &["--full-backward", "--report", report.to_str().unwrap()],
        "fb.npy",
    );
    assert_eq!(
        fb.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&fb.stderr)
    );
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let samples = doc["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 100);
    for s in samples {
        let (output, input, remainder, gap) = (
            s["output"].as_f64().unwrap(),
            s["input_relevance"].as_f64().unwrap(),
            s["remainder"].as_f64().unwrap(),
            s["conservation_gap"].as_f64().unwrap(),
        );
        assert!((output - input - remainder - gap).abs() <= 1e-9 * output.abs().max(1.0));
    }
    let tf = run(&[], "tf.npy");
    assert_eq!(
        tf.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&tf.stderr)
    );
    let r: ndarray::Array2<f64> = ndarray_npy::read_npy(dir.path().join("tf.npy")).unwrap();
    let (model, rows) = c6();
    for (i, x) in rows.iter().enumerate() {
        let out = forward(model.net(), x).output()[0];
        let sum: f64 = r.row(i).sum();
        assert!(
            sum <= out + 1e-12 * out.abs().max(1.0),
            "sample {i}: {sum} > {out}"
        );
    }
}
