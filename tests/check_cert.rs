//! `dtdcert check-cert` on certificates that travel and on bad ones.
//!
//! - Certificates record the model as an absolute path with its fingerprint (an audit's too),
//!   so `check-cert` finds the model from anywhere; when the file moved it says which
//!   fingerprint it expected, and `--model` points it at the new place. `--inputs` compares
//!   each sample with its row.
//! - A batch with bad certificates (values that overflow f64, NaN, a missing or unknown rule,
//!   another model, the first format) gets one line for each and the rest of the batch
//!   checked: exit 1 where only claims are rejected, 2 where a file could not be read; never
//!   a panic.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;
use tempfile::TempDir;

const MODEL: &str = "examples/c6/model.onnx";
const INPUTS: &str = "examples/c6/inputs.npy";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        self
    }
}

/// Runs the binary in `dir` (the repository root unless given).
fn dtdcert_in<S: AsRef<OsStr>>(dir: Option<&Path>, args: &[S]) -> Run {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new(env!("CARGO_BIN_EXE_dtdcert"))
        .current_dir(dir.unwrap_or(&root))
        .args(args)
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .expect("the binary runs");
    Run {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn dtdcert<S: AsRef<OsStr>>(args: &[S]) -> Run {
    dtdcert_in(None, args)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A nearest-l1 certificate for C6 (sample 3, layer 1, neuron 2), written with `model`.
fn certificate(dir: &TempDir, model: &str, name: &str) -> PathBuf {
    let path = dir.path().join(name);
    dtdcert(&[
        "certify",
        "--model",
        model,
        "--inputs",
        INPUTS,
        "--sample",
        "3",
        "--layer",
        "1",
        "--neuron",
        "2",
        "--problem",
        "nearest-l1",
        "--out",
        s(&path),
    ])
    .expect_code(0);
    path
}

fn read(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn edit(path: &Path, into: &Path, f: impl FnOnce(&mut Value)) {
    let mut v = read(path);
    f(&mut v);
    std::fs::write(into, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

fn fingerprint(path: &Path) -> String {
    read(path)["model"]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn certificates_record_where_their_model_is_and_travel() {
    let dir = tempfile::tempdir().unwrap();
    let path = certificate(&dir, MODEL, "c.json");
    let cert = read(&path);
    let model_path = cert["model"]["path"].as_str().unwrap();
    assert!(Path::new(model_path).is_absolute(), "{cert}");
    assert!(Path::new(model_path).exists());
    assert!(Path::new(cert["sample"]["source"].as_str().unwrap()).is_absolute());
    // The relevance is exact, and names the explanation it comes from.
    let relevance = &cert["relevance"];
    assert!(relevance["value"].as_str().unwrap().contains('/'), "{cert}");
    assert_eq!(relevance["explanation"]["settings"]["rule"], "z+");
    // Checked from another folder, without --model: the recorded path finds the model.
    let elsewhere = tempfile::tempdir().unwrap();
    let run = dtdcert_in(Some(elsewhere.path()), &["check-cert", s(&path)]).expect_code(0);
    assert!(run.stdout.contains("accepted (optimal)"), "{}", run.stdout);
    // With --inputs the sample is compared with its row.
    dtdcert(&["check-cert", "--inputs", INPUTS, s(&path)]).expect_code(0);
    let other_row = dir.path().join("other_row.json");
    edit(&path, &other_row, |v| v["sample"]["index"] = Value::from(4));
    let run = dtdcert(&["check-cert", "--inputs", INPUTS, s(&other_row)]).expect_code(1);
    assert!(
        run.stdout.contains("rejected") && run.stdout.contains("row 4"),
        "{}",
        run.stdout
    );

    // A model that moved: the certificate says which fingerprint it expects.
    let copy = dir.path().join("model.onnx");
    std::fs::copy(MODEL, &copy).unwrap();
    let moved_cert = certificate(&dir, s(&copy), "moved.json");
    let expected = fingerprint(&moved_cert);
    let moved = dir.path().join("moved-model.onnx");
    std::fs::rename(&copy, &moved).unwrap();
    let run = dtdcert(&["check-cert", s(&moved_cert)]).expect_code(2);
    assert!(
        run.stderr.contains(&expected) && run.stderr.contains("--model"),
        "{}",
        run.stderr
    );
    dtdcert(&["check-cert", "--model", s(&moved), s(&moved_cert)]).expect_code(0);
    // Another file in its place: the fingerprints differ, and both are named.
    std::fs::copy(
        "tests/data/onnx/mlp_10_10_10_2_relu_last_opset11.onnx",
        &copy,
    )
    .unwrap();
    let run = dtdcert(&["check-cert", s(&moved_cert)]).expect_code(1);
    assert!(
        run.stdout.contains(&expected) && run.stdout.contains(s(&copy)),
        "{}",
        run.stdout
    );
}

#[test]
fn an_audit_s_certificates_record_the_model_and_check_from_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("audit");
    let run = dtdcert(&[
        "audit",
        "--model",
        MODEL,
        "--inputs",
        INPUTS,
        "--explain",
        "0",
        "--certify",
        "nearest-l1",
        "--quiet",
        "--out",
        s(&out),
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let files: Vec<PathBuf> = std::fs::read_dir(out.join("certificates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .take(20)
        .collect();
    assert!(!files.is_empty());
    for f in &files {
        let cert = read(f);
        assert!(Path::new(cert["model"]["path"].as_str().unwrap()).is_absolute());
        assert!(Path::new(cert["sample"]["source"].as_str().unwrap()).is_absolute());
    }
    let mut args = vec!["check-cert".to_string(), "--inputs".into()];
    args.push(std::fs::canonicalize(INPUTS).unwrap().display().to_string());
    args.extend(files.iter().map(|f| s(f).to_string()));
    let run = dtdcert_in(Some(dir.path()), &args).expect_code(0);
    assert_eq!(run.stdout.matches(": accepted").count(), files.len());
}

#[test]
fn bad_certificates_get_one_line_each_and_the_batch_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let good = certificate(&dir, MODEL, "good.json");
    let bad = |name: &str, f: &dyn Fn(&mut Value)| -> PathBuf {
        let p = dir.path().join(name);
        edit(&good, &p, f);
        p
    };
    // Rejected claims (exit 1).
    let far_point = bad("far_point.json", &|v| {
        for c in v["point"].as_array_mut().unwrap() {
            *c = Value::from(1e308);
        }
    });
    let huge_relevance = bad("huge_relevance.json", &|v| {
        // A given relevance at a given centre (the sample itself at layer 1) of 10^400.
        v["centre"] = v["sample"]["values"].clone();
        v["relevance"]["explanation"] = Value::Null;
        v["relevance"]["value"] = Value::from(format!("1{}", "0".repeat(400)));
    });
    let no_rule = bad("no_rule.json", &|v| {
        v["relevance"]["explanation"] = Value::Null
    });
    let wrong_relevance = bad("wrong_relevance.json", &|v| {
        v["relevance"]["value"] = Value::from("1/3")
    });
    let other_model = bad("other_model.json", &|v| {
        v["model"]["fingerprint"] = Value::from("sha256:0")
    });
    let first_format = bad("first_format.json", &|v| {
        v["format"] = Value::from("dtdcert-certificate/1");
        v["relevance"] = Value::from(1.5);
    });
    let rejected = [
        // Far beyond f64's range once projected, or far outside the region.
        (&far_point, ": rejected: "),
        (&huge_relevance, "overflows f64"),
        (&no_rule, "no explanation"),
        (&wrong_relevance, "is not neuron 2's relevance"),
        (&other_model, "is for model sha256:0"),
        (&first_format, "dtdcert-certificate/1"),
    ];
    for (file, needle) in &rejected {
        let run = dtdcert(&["check-cert", s(file)]).expect_code(1);
        assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
        assert!(
            run.stdout.contains("rejected") && run.stdout.contains(needle),
            "{}: {}",
            file.display(),
            run.stdout
        );
    }
    // Unreadable files (exit 2).
    let nan = dir.path().join("nan.json");
    let text = std::fs::read_to_string(&good).unwrap();
    let first_value = read(&good)["point"][0].to_string();
    std::fs::write(&nan, text.replacen(&first_value, "NaN", 1)).unwrap();
    let unknown_rule = bad("unknown_rule.json", &|v| {
        v["relevance"]["explanation"]["settings"]["rule"] = Value::from("lrp")
    });
    let unreadable = [
        (&nan, "not a certificate"),
        (&unknown_rule, "unknown rule 'lrp'"),
    ];
    for (file, needle) in &unreadable {
        let run = dtdcert(&["check-cert", s(file)]).expect_code(2);
        assert!(
            run.stderr.contains(s(file)) && run.stderr.contains(needle),
            "{}",
            run.stderr
        );
    }
    // All of them in one batch with good ones between: one line each, every good one
    // accepted, exit 2.
    let mut batch: Vec<&Path> = vec![&good];
    batch.extend(rejected.iter().map(|(f, _)| f.as_path()));
    batch.extend(unreadable.iter().map(|(f, _)| f.as_path()));
    batch.push(&good);
    let mut args = vec!["check-cert".to_string()];
    args.extend(batch.iter().map(|f| s(f).to_string()));
    let run = dtdcert(&args).expect_code(2);
    assert_eq!(
        run.stdout.matches(": accepted").count(),
        2,
        "{}",
        run.stdout
    );
    assert_eq!(
        run.stdout.matches(": rejected").count(),
        rejected.len(),
        "{}",
        run.stdout
    );
    assert_eq!(
        run.stderr.lines().count(),
        unreadable.len() + 1,
        "{}",
        run.stderr
    );
}

/// `check-cert` names each accepted claim with the word certificates write and the guide
/// lists, never a name of the code.
#[test]
fn accepted_claims_are_named_in_the_guide_s_words() {
    let dir = tempfile::tempdir().unwrap();
    let formats = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/src/file-formats.md"),
    )
    .unwrap();
    let mut files = Vec::new();
    for (problem, claim, extra) in [
        ("nearest-l1", "optimal", &["--neuron", "2"][..]),
        ("exists", "feasible", &["--neuron", "2"]),
        ("chebyshev", "ball", &["--domain=-4:4"]),
    ] {
        let path = dir.path().join(format!("{problem}.json"));
        let mut args = vec![
            "certify",
            "--model",
            MODEL,
            "--inputs",
            INPUTS,
            "--sample",
            "3",
            "--layer",
            "1",
            "--problem",
            problem,
            "--out",
        ];
        args.push(s(&path));
        args.extend_from_slice(extra);
        dtdcert(&args).expect_code(0);
        assert_eq!(read(&path)["claim"], claim);
        files.push((path, claim));
    }
    let mut args = vec!["check-cert".to_string()];
    args.extend(files.iter().map(|(f, _)| s(f).to_string()));
    let run = dtdcert(&args).expect_code(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), files.len());
    for (line, (file, claim)) in lines.iter().zip(&files) {
        let word = line
            .strip_prefix(&format!("{}: accepted (", file.display()))
            .and_then(|rest| rest.split(')').next())
            .unwrap_or_else(|| panic!("{line}"));
        assert_eq!(word, *claim, "{line}");
        assert!(
            formats.contains(&format!("`{word}`")),
            "{word} is not in the guide"
        );
    }
}

/// `certify --out` behaves alike for every problem: `step`, which needs no certificate,
/// writes its answer there; a file already there is replaced only with `--force`, and a
/// refusal leaves the folder as it was.
#[test]
fn certify_out_is_written_for_every_problem_and_replaced_only_with_force() {
    let dir = tempfile::tempdir().unwrap();
    let certify = |problem: &str, out: &Path, force: bool| {
        let mut args = vec![
            "certify",
            "--model",
            MODEL,
            "--inputs",
            INPUTS,
            "--sample",
            "3",
            "--layer",
            "1",
            "--neuron",
            "2",
            "--problem",
            problem,
            "--out",
        ];
        args.push(s(out));
        if force {
            args.push("--force");
        }
        dtdcert(&args)
    };
    let step = dir.path().join("step.json");
    let run = certify("step", &step, false).expect_code(0);
    let written = read(&step);
    assert_eq!(written, serde_json::from_str::<Value>(&run.stdout).unwrap());
    assert_eq!(written["problem"], "step");
    assert!(written["rule_root_inside"].is_boolean());
    for (problem, path) in [
        ("step", step.clone()),
        ("nearest-l1", certificate(&dir, MODEL, "cert.json")),
    ] {
        std::fs::write(&path, "an earlier result\n").unwrap();
        let before: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        let run = certify(problem, &path, false).expect_code(2);
        assert!(
            run.stderr.contains("--force") && run.stderr.contains(s(&path)),
            "{}",
            run.stderr
        );
        assert_eq!(run.stderr.trim_end().lines().count(), 1);
        assert!(run.stdout.is_empty());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "an earlier result\n"
        );
        let after: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(before, after, "a refusal left a file behind");
        certify(problem, &path, true).expect_code(0);
        assert_eq!(read(&path)["problem"], problem);
    }
}
