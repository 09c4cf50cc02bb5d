//! Conformance with Captum and Zennit: `dtdcert explain` reproduces every reference relevance
//! of tests/data/conformance/ (written by scripts/make_conformance_fixtures.py with the pinned
//! library versions of its manifest) within the manifest's tolerance,
//! `|dtdcert − reference| <= atol + rtol · |reference|` elementwise, with the options the
//! manifest names for the library's conventions.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use dtdcert::model::inputs::load_inputs;
use serde_json::Value;

fn data() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/conformance")
}

fn manifest() -> Value {
    let text = std::fs::read_to_string(data().join("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn rows(path: &Path) -> Vec<Vec<f64>> {
    let inputs = load_inputs(path, None).unwrap();
    (0..inputs.len()).map(|i| inputs.row(i).unwrap()).collect()
}

/// Runs `dtdcert explain` for one reference and returns its relevances.
fn explain(case: &Value, args: &[String], out: &Path) -> Vec<Vec<f64>> {
    let file = |key: &str| data().join(case[key].as_str().unwrap());
    let run = Command::cargo_bin("dtdcert")
        .unwrap()
        .arg("explain")
        .arg("--model")
        .arg(file("model"))
        .arg("--inputs")
        .arg(file("inputs"))
        .arg("--targets")
        .arg(file("targets"))
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    rows(out)
}

#[test]
fn explain_reproduces_every_captum_and_zennit_reference() {
    let m = manifest();
    let dir = tempfile::tempdir().unwrap();
    let mut compared = 0;
    let mut worst = 0.0f64;
    let mut failures = Vec::new();
    for (n, r) in m["references"].as_array().unwrap().iter().enumerate() {
        let case = m["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["case"] == r["case"])
            .expect("the reference's case is in the manifest");
        let args: Vec<String> = r["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        let (atol, rtol) = (r["atol"].as_f64().unwrap(), r["rtol"].as_f64().unwrap());
        let got = explain(case, &args, &dir.path().join(format!("{n}.npy")));
        let want = rows(&data().join(r["reference"].as_str().unwrap()));
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.len(), w.len());
            for (&gi, &wi) in g.iter().zip(w) {
                let err = (gi - wi).abs();
                worst = worst.max(err / (atol + rtol * wi.abs()));
                // A NaN on either side fails too.
                if err.is_nan() || err > atol + rtol * wi.abs() {
                    failures.push(format!(
                        "{} {} {} ({}): dtdcert {gi:e}, reference {wi:e}",
                        r["case"], r["library"], r["rule"], r["initial_relevance"]
                    ));
                }
                compared += 1;
            }
        }
    }
    println!("{compared} relevances compared; largest error / tolerance {worst:.3e}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(compared > 0);
}

/// The manifest covers what the conformance claims: both libraries, every shared rule, both
/// initial-relevance conventions, and tolerances no looser than 1e-8.
#[test]
fn the_manifest_covers_both_libraries_and_every_shared_rule() {
    let m = manifest();
    let refs = m["references"].as_array().unwrap();
    let has = |library: &str, rule: &str| {
        refs.iter()
            .any(|r| r["library"] == library && r["rule"] == rule)
    };
    for rule in [
        "epsilon",
        "gamma",
        "gamma-nobias",
        "alpha1beta0",
        "alpha1beta0-nobias",
    ] {
        assert!(has("captum", rule), "captum {rule}");
    }
    for rule in [
        "epsilon",
        "gamma",
        "zplus",
        "alphabeta-2-1",
        "wsquare",
        "flat",
        "zbox-epsilon",
        "EpsilonGammaBox",
        "EpsilonPlusFlat",
        "EpsilonPlus",
        "EpsilonAlpha2Beta1",
        "EpsilonGammaBox-conv",
        "EpsilonPlusFlat-conv",
    ] {
        assert!(has("zennit", rule), "zennit {rule}");
    }
    assert!(has("captum", "gamma-conv-epsilon-dense"));
    // A convolutional case is among them, with flat and w² on its convolutions.
    assert!(m["cases"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["convolutional"] == true));
    for rule in ["flat", "wsquare", "gamma", "alphabeta-2-1"] {
        assert!(refs
            .iter()
            .any(|r| r["case"] == "conv_2x6x6" && r["library"] == "zennit" && r["rule"] == rule));
    }
    for initial in ["output", "one"] {
        assert!(refs.iter().any(|r| r["initial_relevance"] == initial));
    }
    for r in refs {
        assert!(r["atol"].as_f64().unwrap() <= 1e-8 && r["rtol"].as_f64().unwrap() <= 1e-8);
    }
}

/// `--composite` reproduces Zennit's composites: every composite reference the manifest
/// reaches with per-layer rules is reached again with the composite's name alone (and the
/// input box of the case for `epsilon-gamma-box`), the other options unchanged.
#[test]
fn composites_by_name_reproduce_zennits_composites() {
    let m = manifest();
    let dir = tempfile::tempdir().unwrap();
    let mut compared = 0;
    let mut names = std::collections::BTreeSet::new();
    for (n, r) in m["references"].as_array().unwrap().iter().enumerate() {
        let rule = r["rule"].as_str().unwrap();
        let name = match rule.trim_end_matches("-conv") {
            "EpsilonPlus" => "epsilon-plus",
            "EpsilonPlusFlat" => "epsilon-plus-flat",
            "EpsilonGammaBox" => "epsilon-gamma-box",
            _ => continue,
        };
        let case = m["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["case"] == r["case"])
            .unwrap();
        // The reference's options without its rules.
        let given: Vec<&str> = r["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let mut args = Vec::new();
        let mut k = 0;
        while k < given.len() {
            if matches!(given[k], "--rule" | "--input-rule" | "--layer-rule") {
                k += 2;
                continue;
            }
            args.push(given[k].to_string());
            k += 1;
        }
        args.extend(["--composite".to_string(), name.to_string()]);
        if name == "epsilon-gamma-box" {
            let range = &case["input_range"];
            args.push(format!("--low={}", range[0].as_f64().unwrap()));
            args.push(format!("--high={}", range[1].as_f64().unwrap()));
        }
        let (atol, rtol) = (r["atol"].as_f64().unwrap(), r["rtol"].as_f64().unwrap());
        let got = explain(case, &args, &dir.path().join(format!("{n}.npy")));
        let want = rows(&data().join(r["reference"].as_str().unwrap()));
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            for (&gi, &wi) in g.iter().zip(w) {
                assert!(
                    (gi - wi).abs() <= atol + rtol * wi.abs(),
                    "{} {rule} with {args:?}: dtdcert {gi:e}, reference {wi:e}",
                    r["case"]
                );
                compared += 1;
            }
        }
        names.insert(name);
    }
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(compared > 0);
}
