//! `dtdcert relnet train` and `relnet eval` (feature `torch`) on tiny Sort-of-CLEVR sets:
//!
//! - training writes the model, a checkpoint per epoch and a report, and lowers the loss;
//! - the saved model, loaded by the exact engine as a relation-network description, computes
//!   the trained network's outputs (within f32 rounding);
//! - `relnet eval` reports the accuracy the training report recorded for the same set;
//! - bad requests exit with code 2.

#![cfg(feature = "torch")]

mod relnet_common;

use std::path::Path;
use std::process::Command;

use dtdcert::model::forward::forward;
use dtdcert::model::relnet::{Options, RelationNetwork};
use dtdcert::repro::sort_of_clevr::load_set;
use dtdcert::torch::relnet::TorchRelationNet;
use relnet_common::{dtdcert, generate, ok, s};
use serde_json::Value;
use tch::{Device, Kind, Tensor};

#[test]
fn training_exports_a_model_the_exact_engine_computes() {
    let dir = tempfile::tempdir().unwrap();
    let (train, test, model) = (
        dir.path().join("train"),
        dir.path().join("test"),
        dir.path().join("model"),
    );
    generate(&train, 16, 1);
    generate(&test, 4, 2);
    ok(dtdcert(&[
        "relnet",
        "train",
        "-q",
        "--data",
        s(&train),
        "--eval",
        s(&test),
        "--epochs",
        "3",
        "--batch",
        "32",
        "--learning-rate",
        "1e-3",
        "--seed",
        "7",
        "--out",
        s(&model),
    ]));
    for file in ["rn.json", "rn.safetensors", "training.json"] {
        assert!(model.join(file).is_file(), "{file}");
    }
    for epoch in 1..=3 {
        assert!(model
            .join(format!("checkpoints/epoch-{epoch:03}.safetensors"))
            .is_file());
    }
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("training.json")).unwrap())
            .unwrap();
    let epochs = report["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 3);
    assert_eq!(report["questions"], 16 * 20);
    assert_eq!(report["settings"]["seed"], 7);
    let loss: Vec<f64> = epochs.iter().map(|e| e["loss"].as_f64().unwrap()).collect();
    assert!(loss.iter().all(|l| l.is_finite()));
    assert!(loss[2] < loss[0], "the loss does not fall: {loss:?}");

    // The exact engine's chain of the saved model computes the trained network.
    let exact = RelationNetwork::load(&model.join("rn.json")).unwrap();
    let torch = TorchRelationNet::load(&model, Device::Cpu).unwrap();
    let data = load_set(&test, None).unwrap();
    let pixels = 3 * 75 * 75;
    let _guard = tch::no_grad_guard();
    for q in (0..data.num_questions()).step_by(7) {
        let image = &data.images[data.image_of[q] * pixels..(data.image_of[q] + 1) * pixels];
        let question = &data.questions[q * 11..(q + 1) * 11];
        let got = torch.forward(
            &Tensor::from_slice(image).view([1, 3, 75, 75]),
            &Tensor::from_slice(question).view([1, 11]),
            false,
        );
        let got: Vec<f64> = Vec::try_from(&got.to_kind(Kind::Double).view([-1])).unwrap();
        let question: Vec<f64> = question.iter().map(|&v| f64::from(v)).collect();
        let chain = exact.network(&question, Options::default()).unwrap();
        let x: Vec<f64> = image.iter().map(|&v| f64::from(v)).collect();
        let trace = forward(&chain, &x);
        let scale = got.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (a, b) in got.iter().zip(trace.output()) {
            assert!(
                (a - b).abs() <= 1e-4 * scale,
                "question {q}: {a} (torch) vs {b} (exact)"
            );
        }
    }

    // `relnet eval` on the held-out set reports the accuracy of the last epoch.
    let out = ok(dtdcert(&[
        "relnet",
        "eval",
        "--model",
        s(&model),
        "--data",
        s(&test),
    ]));
    let eval: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(eval["questions"], 80);
    assert_eq!(eval["overall"], epochs[2]["eval"]["overall"]);
    assert_eq!(eval["by_type"].as_array().unwrap().len(), 6);
}

#[test]
fn bad_training_requests_exit_with_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("soc");
    generate(&data, 2, 0);
    let out = dir.path().join("model");
    for (extra, needle) in [
        (vec!["--epochs", "0"], "at least 1"),
        (vec!["--epochs", "1", "--images", "0"], "at least 1"),
        (vec!["--epochs", "1", "--learning-rate", "0"], "positive"),
        (
            vec!["--epochs", "1", "--device", "tpu"],
            "expected cpu, cuda or auto",
        ),
    ] {
        let args = [
            &["relnet", "train", "--data", s(&data), "--out", s(&out)][..],
            &extra,
        ]
        .concat();
        let run = dtdcert(&args);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
        assert!(!out.exists());
    }
    // Not a Sort-of-CLEVR set: the error names the file.
    let run = dtdcert(&[
        "relnet",
        "train",
        "--data",
        s(dir.path()),
        "--epochs",
        "1",
        "--out",
        s(&out),
    ]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("questions.json"));
    // Not a model folder; no images.
    for (extra, needle) in [
        (&[][..], "rn.json"),
        (&["--images", "0"], "--images must be at least 1"),
    ] {
        let eval = [
            "relnet",
            "eval",
            "--model",
            s(dir.path()),
            "--data",
            s(&data),
        ];
        let run = dtdcert(&[&eval[..], extra].concat());
        assert_eq!(run.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&run.stderr).contains(needle));
    }
}

/// The parameters of a saved model, by name.
fn weights(dir: &Path) -> Vec<(String, Tensor)> {
    let mut named = Tensor::read_safetensors(dir.join("rn.safetensors")).unwrap();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

fn losses(dir: &Path) -> Vec<f64> {
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("training.json")).unwrap()).unwrap();
    report["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["loss"].as_f64().unwrap())
        .collect()
}

/// A training killed after a checkpoint and resumed, and a finished training trained on to
/// more epochs, end with exactly the weights and losses of a training that ran through.
#[test]
fn resumed_training_equals_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("soc");
    generate(&data, 6, 4);
    let seeded = |seed: &str, out: &str, flag: &str, epochs: &str| -> Vec<String> {
        let path = dir.path().join(out);
        [
            "relnet",
            "train",
            "-q",
            "--data",
            s(&data),
            "--batch",
            "24",
            "--seed",
            seed,
            "--learning-rate",
            "1e-3",
            "--epochs",
            epochs,
            flag,
            s(&path),
        ]
        .iter()
        .map(|a| a.to_string())
        .collect()
    };
    let args = |out: &str, flag: &str, epochs: &str| seeded("3", out, flag, epochs);
    let run = |a: Vec<String>| dtdcert(&a.iter().map(String::as_str).collect::<Vec<_>>());
    ok(run(args("through", "--out", "3")));

    // Killed once its first epoch is saved, then resumed.
    let mut child = Command::new(env!("CARGO_BIN_EXE_dtdcert"))
        .args(args("killed", "--out", "3"))
        .spawn()
        .unwrap();
    let report = dir.path().join("killed/training.json");
    let started = std::time::Instant::now();
    while !report.exists() && started.elapsed().as_secs() < 300 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(report.exists(), "no epoch finished");
    let again = run(args("killed", "--out", "3"));
    assert_eq!(
        again.status.code(),
        Some(2),
        "an interrupted folder is not replaced"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));
    let refused = run(seeded("4", "killed", "--resume", "3"));
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("seed"));
    ok(run(args("killed", "--resume", "3")));

    // Finished after one epoch, then trained on to three.
    ok(run(args("extended", "--out", "1")));
    ok(run(args("extended", "--resume", "3")));

    let want = weights(&dir.path().join("through"));
    for name in ["killed", "extended"] {
        let folder = dir.path().join(name);
        assert_eq!(
            losses(&folder),
            losses(&dir.path().join("through")),
            "{name}"
        );
        let got = weights(&folder);
        assert_eq!(got.len(), want.len());
        for ((n1, t1), (n2, t2)) in got.iter().zip(&want) {
            assert_eq!(n1, n2);
            assert!(t1.equal(t2), "{name}: {n1} differs");
        }
    }
}
