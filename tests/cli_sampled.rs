//! `dtdcert audit --roots-per-layer K [--seed S]` on the command line: a sampled run writes the
//! draw into every file, and bad settings get one `error:` line, exit code 2 and no output
//! folder.

use std::path::Path;

use assert_cmd::Command;

mod util;

use util::conv::{ConvNet, Pool};
use util::runs::{INPUTS, MODEL};

fn audit(out: &Path, extra: &[&str]) -> assert_cmd::assert::Assert {
    Command::cargo_bin("dtdcert")
        .unwrap()
        .args([
            "audit",
            "--quiet",
            "--explain",
            "0",
            "--model",
            MODEL,
            "--inputs",
            INPUTS,
        ])
        .args(extra)
        .arg("--out")
        .arg(out)
        .assert()
}

/// Exit code 2, one line on stderr that starts with `error:` and says `message`, and no
/// output folder.
fn refused(out: &Path, assert: assert_cmd::assert::Assert, message: &str) {
    let output = assert.get_output().clone();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(stderr.contains(message), "{stderr}");
    assert!(!out.exists(), "{} was written", out.display());
}

#[test]
fn bad_draws_are_refused_before_anything_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let cases: [(&[&str], &str); 6] = [
        (
            &["--roots-per-layer", "0"],
            "--roots-per-layer '0': expected a whole number of roots, at least 1",
        ),
        (&["--roots-per-layer", "many"], "--roots-per-layer 'many'"),
        (&["--roots-per-layer", "-3"], "--roots-per-layer '-3'"),
        (
            &["--roots-per-layer", "4", "--seed", "abc"],
            "--seed 'abc': expected a whole number",
        ),
        (
            &["--roots-per-layer", "4", "--seed", "-1"],
            "--seed '-1': expected a whole number",
        ),
        (&["--seed", "3"], "give --roots-per-layer K with it"),
    ];
    for (args, message) in cases {
        refused(&out, audit(&out, args), message);
    }
}

#[test]
fn exact_arithmetic_is_refused_on_a_network_too_large_for_it() {
    let tmp = tempfile::tempdir().unwrap();
    // One 5×5 convolution of a 3×224×224 image into 64 channels: 64 · 224² · 75 ≈ 2.4 · 10⁸
    // multiply-adds, more than exact arithmetic is allowed.
    let side = 224;
    let net = ConvNet {
        c_in: 3,
        h: side,
        w: side,
        c_out: 64,
        kernel: [5, 5],
        stride: [1, 1],
        pads: [2, 2, 2, 2],
        pool: Pool::Global,
        outputs: 2,
        kernel_values: (0..64 * 3 * 25)
            .map(|i| ((i % 7) as f64 - 3.0) / 8.0)
            .collect(),
        conv_bias: vec![0.125; 64],
        dense: (0..2 * 64).map(|i| ((i % 5) as f64 - 2.0) / 4.0).collect(),
        dense_bias: vec![0.0; 2],
    };
    assert!(net.c_out as u64 * (side * side) as u64 * 75 > dtdcert::audit::EXACT_MULTIPLY_ADDS);
    let model = tmp.path().join("big.onnx");
    std::fs::write(&model, net.onnx()).unwrap();
    let inputs = tmp.path().join("x.npy");
    let x = ndarray::Array2::from_elem((1, 3 * side * side), 0.5);
    dtdcert::io::write_npy_f64_atomic(&inputs, &x).unwrap();
    let out = tmp.path().join("out");
    let assert = Command::cargo_bin("dtdcert")
        .unwrap()
        .args(["audit", "--quiet", "--exact", "--explain", "0", "--model"])
        .arg(&model)
        .arg("--inputs")
        .arg(&inputs)
        .arg("--out")
        .arg(&out)
        .assert();
    refused(&out, assert, "--exact: the network takes");
    // explain --exact refuses it the same way, writing nothing.
    let npy = tmp.path().join("r.npy");
    let assert = Command::cargo_bin("dtdcert")
        .unwrap()
        .args(["explain", "--exact", "--explain", "0", "--model"])
        .arg(&model)
        .arg("--inputs")
        .arg(&inputs)
        .arg("--out")
        .arg(&npy)
        .assert();
    refused(
        &npy,
        assert,
        "more than the 100000000 exact rational arithmetic can finish",
    );
    // The shipped example is far below the limit, exact or not.
    let c6 = tmp.path().join("c6");
    audit(&c6, &["--exact", "--roots-per-layer", "2"]).success();
}

#[test]
fn a_sampled_run_says_what_it_judged_and_resumes_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("run");
    let stdout = audit(&out, &["--roots-per-layer", "3", "--seed", "7", "--csv"])
        .success()
        .get_output()
        .stdout
        .clone();
    let line = String::from_utf8(stdout).unwrap();
    assert!(
        line.contains("roots judged of") && line.contains("up to 3 per layer, seed 7"),
        "{line}"
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["settings"]["root_sample"]["roots_per_layer"], 3);
    assert_eq!(summary["root_sample"]["seed"], 7);
    let layers = summary["root_sample"]["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    for l in layers {
        let (judged, outside) = (&l["roots_judged"], &l["outside"]);
        let [lo, hi] = [0, 1].map(|i| outside["wilson_95"][i].as_f64().unwrap());
        let fraction = outside["fraction"].as_f64().unwrap();
        assert!(lo <= fraction && fraction <= hi, "{l}");
        // Up to 3 of each layer of each of the 100 samples.
        assert!(judged.as_u64().unwrap() <= 300, "{l}");
    }
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        md.contains("## Sampled roots") && md.contains("up to 3 per layer and sample (seed 7)")
    );
    let html = std::fs::read_to_string(out.join("summary.html")).unwrap();
    assert!(html.contains("<table class=\"sampled\">"));
    let csv = std::fs::read_to_string(out.join("roots.csv")).unwrap();
    assert!(csv.lines().next().unwrap().ends_with(",judged"));
    assert!(
        csv.lines().any(|l| l.ends_with(",false")) && csv.lines().any(|l| l.ends_with(",true"))
    );
    // `--resume` of a finished run with another draw names the setting.
    let assert = Command::cargo_bin("dtdcert")
        .unwrap()
        .args(["audit", "--quiet", "--roots-per-layer", "4", "--resume"])
        .arg(&out)
        .assert()
        .code(2);
    let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains("root_sample"), "{stderr}");
}

#[test]
fn the_profile_counts_what_the_run_judged_layer_by_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let (out, profile) = (tmp.path().join("out"), tmp.path().join("profile.json"));
    let path = profile.to_str().unwrap();
    audit(&out, &["--roots-per-layer", "3", "--profile", path]).success();
    let read = |p: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
    };
    let (timed, summary) = (read(&profile), read(&out.join("summary.json")));
    let phases = &timed["phases_summed_over_samples"];
    assert_eq!(timed["samples_in_run"], summary["samples"]);
    assert_eq!(
        phases["samples"], summary["samples"],
        "every sample on the f64 path"
    );
    let judged: Vec<u64> = summary["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["roots"].as_u64().unwrap())
        .collect();
    let timed_roots: Vec<u64> = phases["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["roots"].as_u64().unwrap())
        .collect();
    assert_eq!(timed_roots, judged);
    assert_eq!(timed["roots_judged"], summary["total"]["roots"]);
    for l in phases["layers"].as_array().unwrap() {
        assert!(l["roots_s"].as_f64().unwrap() >= 0.0 && l["verdicts_s"].as_f64().unwrap() >= 0.0);
    }
}

/// A run that ends with an error after computing something keeps its profile, with the
/// error's message; a run refused before computing anything writes none.
#[test]
fn a_failed_run_keeps_the_profile_of_what_it_did() {
    let tmp = tempfile::tempdir().unwrap();
    let inputs = tmp.path().join("huge.npy");
    // The forward pass of these inputs overflows f64.
    let array = ndarray::Array2::from_elem((1, 10), 1e308);
    dtdcert::io::write_npy_f64_atomic(&inputs, &array).unwrap();
    let (out, profile) = (tmp.path().join("out"), tmp.path().join("profile.json"));
    let assert = Command::cargo_bin("dtdcert")
        .unwrap()
        .args(["audit", "--quiet", "--explain", "0", "--model", MODEL])
        .arg("--inputs")
        .arg(&inputs)
        .args(["--roots-per-layer", "3", "--profile"])
        .arg(&profile)
        .arg("--out")
        .arg(&out)
        .assert()
        .code(2);
    let stderr = String::from_utf8(assert.get_output().stderr.clone()).unwrap();
    assert!(stderr.contains("overflows f64"), "{stderr}");
    let timed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&profile).unwrap()).unwrap();
    let error = timed["error"].as_str().unwrap();
    assert!(error.contains("overflows f64"), "{timed}");
    assert_eq!(timed["phases_summed_over_samples"]["samples"], 1);
    assert!(timed["wall_s"].as_f64().unwrap() >= 0.0);

    // `--out` holds a finished run: refused before any sample, no profile.
    let done = tmp.path().join("done");
    let second = tmp.path().join("second.json");
    audit(&done, &["--roots-per-layer", "3"]).success();
    audit(
        &done,
        &[
            "--roots-per-layer",
            "3",
            "--profile",
            second.to_str().unwrap(),
        ],
    )
    .code(2);
    assert!(!second.exists());
}
