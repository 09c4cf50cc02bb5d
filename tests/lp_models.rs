//! The LP files of `lp_models/` (written by `scripts/make_lp_models.sh`): each reads back with
//! the LP file reader, rewrites to the same text, and solves with the built-in solver to the
//! status and objective its manifest records; and `dtdcert export-lp`'s command-line contract
//! (exit code 2 and nothing written for bad input).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use dtdcert::lp::lpfile::{parse_lp, read_lp_file, to_lp_string};
use dtdcert::lp::{solve, Backend, SolveOptions, Solved};
use serde_json::Value;
use tempfile::TempDir;

const MODEL: &str = "examples/c6/model.onnx";
const INPUTS: &str = "examples/c6/inputs.npy";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn models_dir() -> PathBuf {
    root().join("lp_models")
}

struct Entry {
    file: String,
    status: String,
    objective: Option<f64>,
}

fn manifest() -> Vec<Entry> {
    let path = models_dir().join("manifest.json");
    let text = std::fs::read_to_string(&path).expect("lp_models/manifest.json");
    let value: Value = serde_json::from_str(&text).expect("the manifest is JSON");
    value
        .as_array()
        .expect("the manifest is a list")
        .iter()
        .map(|e| Entry {
            file: e["file"].as_str().expect("file").to_string(),
            status: e["status"].as_str().expect("status").to_string(),
            objective: e["objective"].as_f64(),
        })
        .collect()
}

/// Relative 1e-6 plus absolute 1e-9.
fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 + 1e-6 * a.abs().max(b.abs())
}

#[test]
fn the_manifest_covers_every_file_and_both_outcomes() {
    let entries = manifest();
    let listed: BTreeSet<String> = entries.iter().map(|e| e.file.clone()).collect();
    assert_eq!(listed.len(), entries.len(), "a file is listed twice");
    let on_disk: BTreeSet<String> = std::fs::read_dir(models_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".lp"))
        .collect();
    assert_eq!(listed, on_disk, "manifest entries and .lp files differ");
    assert!(entries.len() >= 12, "{} problems", entries.len());
    for status in ["optimal", "infeasible"] {
        assert!(
            entries.iter().any(|e| e.status == status),
            "no {status} problem"
        );
    }
    for e in &entries {
        match e.status.as_str() {
            "optimal" => assert!(e.objective.is_some(), "{}: no objective", e.file),
            "infeasible" => assert!(e.objective.is_none(), "{}: an objective", e.file),
            other => panic!("{}: status {other}", e.file),
        }
    }
}

#[test]
fn every_model_solves_as_the_manifest_says() {
    let opts = SolveOptions {
        backend: Backend::Microlp,
        time_limit: Some(300.0),
    };
    let mut failures = Vec::new();
    for e in manifest() {
        let lp = read_lp_file(&models_dir().join(&e.file)).unwrap_or_else(|err| panic!("{err}"));
        let outcome = match (solve(&lp, &opts), e.objective) {
            (Solved::Optimal { objective, .. }, Some(expected)) if e.status == "optimal" => {
                if close(objective, expected) {
                    continue;
                }
                format!("objective {objective:e}, the manifest {expected:e}")
            }
            (Solved::Infeasible, None) if e.status == "infeasible" => continue,
            (other, _) => format!("{other:?}, the manifest {}", e.status),
        };
        failures.push(format!("{}: {outcome}", e.file));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_model_is_exactly_what_the_writer_writes() {
    for e in manifest() {
        let path = models_dir().join(&e.file);
        let text = std::fs::read_to_string(&path).unwrap();
        let lp = parse_lp(&text).unwrap_or_else(|err| panic!("{}: {err}", e.file));
        let comments: Vec<String> = text
            .lines()
            .take_while(|l| l.starts_with('\\'))
            .map(|l| l.strip_prefix("\\ ").unwrap_or(&l[1..]).to_string())
            .collect();
        let rewritten = to_lp_string(&lp, &comments).unwrap();
        assert!(rewritten == text, "{}: the rewritten file differs", e.file);
    }
}

// ---------------------------------------------------------------------------------------------
// dtdcert export-lp

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn dtdcert(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_dtdcert"))
        .current_dir(root())
        .args(args)
        .output()
        .expect("the binary runs");
    Run {
        code: out.status.code().expect("exited, not killed by a signal"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn export(dir: &Path, extra: &[&str]) -> (Run, PathBuf) {
    let out = dir.join("out.lp");
    let mut args = vec!["export-lp", "--model", MODEL, "--inputs", INPUTS];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-o", out.to_str().unwrap()]);
    (dtdcert(&args), out)
}

/// The lines of an LP file after its comment header.
fn body(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with('\\'))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn export_lp_reproduces_the_committed_c6_models() {
    let dir = TempDir::new().unwrap();
    for (name, args) in [
        (
            "c6-s3-l1-n0-nearest-l1.lp",
            &[
                "--sample",
                "3",
                "--layer",
                "1",
                "--neuron",
                "0",
                "--problem",
                "nearest-l1",
            ][..],
        ),
        (
            "c6-s2-l1-n9-z-box-exists.lp",
            &[
                "--rule",
                "z",
                "--domain",
                "0:4",
                "--sample",
                "2",
                "--layer",
                "1",
                "--neuron",
                "9",
                "--problem",
                "exists",
            ][..],
        ),
        (
            "c6-s3-l1-chebyshev-box.lp",
            &[
                "--domain",
                "0:4",
                "--sample",
                "3",
                "--layer",
                "1",
                "--problem",
                "chebyshev",
            ][..],
        ),
    ] {
        let (run, out) = export(dir.path(), args);
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        assert!(run.stdout.contains("variables"), "{}", run.stdout);
        let written = std::fs::read_to_string(&out).unwrap();
        let committed = std::fs::read_to_string(models_dir().join(name)).unwrap();
        assert!(
            body(&written) == body(&committed),
            "{name} differs from the export"
        );
        assert!(
            written.contains("\\ model model.onnx: 10-10-10-2"),
            "{written}"
        );
    }
}

#[test]
fn chebyshev_ignores_the_neuron() {
    let dir = TempDir::new().unwrap();
    let (run, out) = export(
        dir.path(),
        &[
            "--sample",
            "3",
            "--layer",
            "2",
            "--neuron",
            "99",
            "--problem",
            "chebyshev",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lp = read_lp_file(&out).unwrap();
    let r = lp.names.iter().position(|n| n == "r").expect("the radius");
    assert_eq!(lp.cost[r], -1.0);
    assert!(
        lp.names.iter().all(|n| !n.starts_with('p')),
        "a root program"
    );
}

#[test]
fn export_lp_refuses_bad_input_and_writes_nothing() {
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "--sample",
                "100",
                "--layer",
                "1",
                "--neuron",
                "0",
                "--problem",
                "exists",
            ],
            "--sample 100 is out of range",
        ),
        (
            &[
                "--sample",
                "0",
                "--layer",
                "0",
                "--neuron",
                "0",
                "--problem",
                "exists",
            ],
            "--layer 0 is out of range",
        ),
        (
            &[
                "--sample",
                "0",
                "--layer",
                "4",
                "--neuron",
                "0",
                "--problem",
                "nearest-l1",
            ],
            "--layer 4 is out of range: the model has layers 1..3",
        ),
        (
            &[
                "--sample",
                "0",
                "--layer",
                "3",
                "--neuron",
                "2",
                "--problem",
                "nearest-linf",
            ],
            "--neuron 2 is out of range: layer 3 has 2 neurons",
        ),
        (
            &["--sample", "0", "--layer", "1", "--problem", "nearest-l1"],
            "needs --neuron",
        ),
        (
            &[
                "--sample",
                "0",
                "--layer",
                "1",
                "--neuron",
                "0",
                "--problem",
                "exists",
                "--explain",
                "2",
            ],
            "--explain 2 is out of range",
        ),
        (
            &[
                "--sample",
                "0",
                "--layer",
                "1",
                "--neuron",
                "0",
                "--problem",
                "exists",
                "--domain",
                "1:0",
            ],
            "--domain '1:0'",
        ),
        (
            &[
                "--sample",
                "0",
                "--layer",
                "1",
                "--neuron",
                "0",
                "--problem",
                "biggest",
            ],
            "biggest",
        ),
    ];
    for &(args, message) in cases {
        let dir = TempDir::new().unwrap();
        // An earlier file at the destination stays as it was.
        let out = dir.path().join("out.lp");
        std::fs::write(&out, "keep").unwrap();
        let (run, _) = export(dir.path(), args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(message), "{args:?}: {}", run.stderr);
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "keep", "{args:?}");
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(files.len(), 1, "{args:?}: something else was written");
    }
}
