//! The command-line contract (DESIGN.md §3), exercised by spawning the `dtdcert` binary: what
//! `audit`, `explain`, `region` and `repro mlp-roots` write and print, their exit codes (0 ok,
//! 1 found, 2 bad input or usage), and how bad input is refused: exit code 2, one line
//! `error: …` naming the file or argument and the problem, no panic, nothing written.
//!
//! Fixtures: `examples/c6/` (the 10-10-10-2 network with 100 inputs), `tests/data/onnx/`
//! (valid and invalid ONNX exports), and `tests/data/bad/` (malformed inputs and targets for
//! the 3-4-2 network of `tests/data/safetensors/`, written by `tests/data/bad/make_fixtures.py`).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use dtdcert::audit::explain::{
    input_relevances, input_relevances_and_starts, start_relevances, Arithmetic,
};
use dtdcert::audit::spec::Targets;
use dtdcert::dtd::{explain, DtdSettings, InitialRelevance};
use dtdcert::exact::{Rational, Scalar};
use dtdcert::model::inputs::load_inputs;
use dtdcert::model::{forward, Model};
use ndarray::{s, Array2};
use ndarray_npy::{read_npy, write_npy};
use serde_json::Value;
use tempfile::TempDir;

const MODEL: &str = "examples/c6/model.onnx";
const MODEL_JSON: &str = "examples/c6/model.json";
const INPUTS: &str = "examples/c6/inputs.npy";
/// A 3-4-2 MLP (2 outputs) and four inputs for it; the files in tests/data/bad/ pair with it.
const SMALL_MODEL: &str = "tests/data/safetensors/mlp_3_4_2.json";
const SMALL_INPUTS: &str = "tests/data/npy/inputs_f64_4x3.npy";

// ---------------------------------------------------------------------------------------------
// Helpers

/// What one run of the binary did.
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
        self
    }

    #[track_caller]
    fn ok(self) -> Self {
        self.expect_code(0)
    }
}

/// Runs `dtdcert ARGS` from the package root (fixture paths are relative to it).
fn dtdcert<S: AsRef<OsStr>>(args: &[S]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_dtdcert"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .expect("the binary runs");
    Run {
        code: out.status.code().expect("exited, not killed by a signal"),
        stdout: String::from_utf8(out.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(out.stderr).expect("UTF-8 stderr"),
    }
}

fn tmp() -> TempDir {
    tempfile::tempdir().unwrap()
}

fn s(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temporary paths")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every entry under `dir`, relative to it: folders map to `None`, files to their bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    fn walk(base: &Path, dir: &Path, into: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(base).unwrap().to_path_buf();
            if path.is_dir() {
                into.insert(rel, None);
                walk(base, &path, into);
            } else {
                into.insert(rel, Some(std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut map = BTreeMap::new();
    walk(dir, dir, &mut map);
    map
}

/// Names in `dir` (hidden ones included).
fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

fn read_records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{path:?} line {i}: {e}"))
        })
        .collect()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("{v} is not a count"))
}

/// Runs `dtdcert ARGS` expecting a refusal of bad input: exit code 2, exactly one stderr line,
/// starting `error:`, containing every needle (case-insensitive; `a|b` accepts either), no
/// panic, and `dir` exactly as it was: no output created, nothing replaced, no staging entry
/// left behind. `dir` should hold the --out target. Returns stderr.
#[track_caller]
fn expect_refusal_in<S: AsRef<OsStr>>(dir: &Path, args: &[S], needles: &[&str]) -> String {
    let before = tree(dir);
    let run = dtdcert(args);
    let shown: Vec<String> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    let context = format!(
        "dtdcert {}\n--- exit code {}\n--- stdout\n{}\n--- stderr\n{}",
        shown.join(" "),
        run.code,
        run.stdout,
        run.stderr
    );
    assert!(!run.stderr.contains("panicked"), "a panic\n{context}");
    assert_eq!(run.code, 2, "exit code\n{context}");
    assert!(run.stderr.starts_with("error: "), "no `error:`\n{context}");
    assert_eq!(
        run.stderr.trim_end().lines().count(),
        1,
        "not one line\n{context}"
    );
    let lower = run.stderr.to_lowercase();
    for needle in needles {
        assert!(
            needle
                .split('|')
                .any(|alt| lower.contains(&alt.to_lowercase())),
            "stderr lacks {needle:?}\n{context}"
        );
    }
    let after = tree(dir);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>(),
        "entries appeared or vanished in {dir:?}\n{context}"
    );
    assert!(before == after, "a file changed in {dir:?}\n{context}");
    run.stderr
}

/// [`expect_refusal_in`] in a fresh folder, with `--out DIR/out` appended (`out.npy` for
/// `explain`; nothing for `region`, which writes no file).
#[track_caller]
fn expect_refusal(args: &[&str], needles: &[&str]) -> String {
    let dir = tmp();
    let mut full: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    match args[0] {
        "region" => {}
        "explain" => full.extend(["--out".into(), s(&dir.path().join("out.npy")).into()]),
        _ => full.extend(["--out".into(), s(&dir.path().join("out")).into()]),
    }
    expect_refusal_in(dir.path(), &full, needles)
}

/// Every command that reads a model and inputs refuses them alike.
#[track_caller]
fn expect_refusal_by_every_command(model: &str, inputs: &str, needles: &[&str]) {
    let data = ["--model", model, "--inputs", inputs];
    for cmd in [
        &["audit"][..],
        &["explain"],
        &["region", "--sample", "2"],
        &["repro", "mlp-roots"],
    ] {
        let args: Vec<&str> = cmd.iter().chain(&data).copied().collect();
        expect_refusal(&args, needles);
    }
}

fn audit_c6(out: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "audit",
        "--model",
        MODEL,
        "--inputs",
        INPUTS,
        "--out",
        s(out),
    ];
    args.extend_from_slice(extra);
    dtdcert(&args)
}

/// Writes the first `n` C6 inputs, as f64, to `path`.
fn c6_head(path: &Path, n: usize) {
    let inputs = load_inputs(&root().join(INPUTS), None).unwrap();
    let rows: Vec<f64> = (0..n).flat_map(|i| inputs.row(i).unwrap()).collect();
    write_npy(
        path,
        &Array2::from_shape_vec((n, inputs.dim()), rows).unwrap(),
    )
    .unwrap();
}

// ---------------------------------------------------------------------------------------------
// audit

#[test]
fn audit_writes_records_and_a_summary_whose_counts_match_them() {
    let dir = tmp();
    let out = dir.path().join("run");
    audit_c6(&out, &["--explain", "0"]).ok();
    assert_eq!(names(dir.path()), BTreeSet::from(["run".to_string()]));
    for file in ["records.jsonl", "summary.json", "summary.md"] {
        assert!(out.join(file).is_file(), "{file} missing");
    }

    let records = read_records(&out.join("records.jsonl"));
    assert_eq!(records.len(), 100);
    let widths = [10, 10, 2];
    let mut roots = [0u64; 3];
    let mut outside = [0u64; 3];
    let mut valid = [0u64; 3];
    let mut samples_outside = [0u64; 3];
    let mut samples_any_outside = 0u64;
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["sample"], i, "records in sample order");
        assert_eq!(r["explained"], 0);
        let layers = r["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 3);
        let mut any = false;
        for (l, layer) in layers.iter().enumerate() {
            assert_eq!(layer["layer"], l + 1);
            let neurons = layer["neurons"].as_array().unwrap();
            assert_eq!(neurons.len(), widths[l], "sample {i} layer {}", l + 1);
            let mut here = false;
            for n in neurons {
                let (has_root, has_none) = (n.get("root").is_some(), n.get("no_root").is_some());
                assert!(has_root != has_none, "sample {i}: {n}");
                if let Some(root) = n.get("root") {
                    roots[l] += 1;
                    if root["region"]["status"] == "outside" {
                        outside[l] += 1;
                        here = true;
                    } else {
                        assert_eq!(root["region"]["status"], "inside", "{root}");
                    }
                    valid[l] += u64::from(root["valid"].as_bool().unwrap());
                }
            }
            samples_outside[l] += u64::from(here);
            any |= here;
        }
        samples_any_outside += u64::from(any);
    }

    let summary = read_json(&out.join("summary.json"));
    assert_eq!(summary["rule"], "z+");
    assert_eq!(summary["samples"], 100);
    let layers = summary["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    for (l, layer) in layers.iter().enumerate() {
        assert_eq!(layer["layer"], l + 1);
        assert_eq!(u(&layer["roots"]), roots[l], "layer {}", l + 1);
        assert_eq!(u(&layer["roots_outside"]), outside[l], "layer {}", l + 1);
        assert_eq!(u(&layer["roots_valid"]), valid[l], "layer {}", l + 1);
        assert_eq!(
            u(&layer["samples_with_root_outside"]),
            samples_outside[l],
            "layer {}",
            l + 1
        );
    }
    let total = &summary["total"];
    assert_eq!(u(&total["roots"]), roots.iter().sum::<u64>());
    assert_eq!(u(&total["roots_outside"]), outside.iter().sum::<u64>());
    assert_eq!(u(&total["roots_valid"]), valid.iter().sum::<u64>());
    assert_eq!(u(&total["samples_with_root_outside"]), samples_any_outside);
    // The example exists to show roots outside their region.
    assert!(samples_any_outside > 0);

    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(
        md.contains("z+"),
        "summary.md does not name the rule:\n{md}"
    );
}

#[test]
fn audit_of_the_safetensors_encoding_equals_the_onnx_one_but_for_the_model_path() {
    let dir = tmp();
    let (a, b) = (dir.path().join("onnx"), dir.path().join("json"));
    audit_c6(&a, &["--explain", "0"]).ok();
    dtdcert(&[
        "audit",
        "--model",
        MODEL_JSON,
        "--inputs",
        INPUTS,
        "--explain",
        "0",
        "--out",
        s(&b),
    ])
    .ok();
    let mut sa = read_json(&a.join("summary.json"));
    let mut sb = read_json(&b.join("summary.json"));
    // Recorded as absolute paths.
    let here = std::env::current_dir().unwrap();
    assert_eq!(sa["model"]["path"], s(&here.join(MODEL)));
    assert_eq!(sb["model"]["path"], s(&here.join(MODEL_JSON)));
    assert!(sa["model"]["fingerprint"].as_str().unwrap().len() > 16);
    assert_eq!(sa["model"]["fingerprint"], sb["model"]["fingerprint"]);
    sa["model"]["path"] = Value::Null;
    sb["model"]["path"] = Value::Null;
    assert_eq!(sa, sb);
    assert_eq!(
        std::fs::read(a.join("records.jsonl")).unwrap(),
        std::fs::read(b.join("records.jsonl")).unwrap()
    );
}

/// The C6 model with a Softmax after its output, written to `path`.
fn c6_with_softmax(path: &Path) {
    use protobuf::Message;
    let bytes = std::fs::read(root().join(MODEL)).unwrap();
    let mut m = onnx_protobuf::ModelProto::parse_from_bytes(&bytes).unwrap();
    let g = m.graph.as_mut().unwrap();
    let logits = g.output[0].name.clone();
    let mut softmax = onnx_protobuf::NodeProto::new();
    softmax.op_type = "Softmax".into();
    softmax.name = "/softmax/Softmax".into();
    softmax.input = vec![logits];
    softmax.output = vec!["probabilities".into()];
    g.node.push(softmax);
    g.output[0].name = "probabilities".into();
    std::fs::write(path, m.write_to_bytes().unwrap()).unwrap();
}

#[test]
fn a_final_softmax_is_left_out_only_when_asked_and_resumed_runs_remember_it() {
    let dir = tmp();
    let model = dir.path().join("softmax.onnx");
    c6_with_softmax(&model);
    let (plain, stripped) = (dir.path().join("plain"), dir.path().join("stripped"));
    let audit = |out: &Path, extra: &[&str]| {
        let mut args = vec!["audit", "-q", "--model", s(&model), "--inputs", INPUTS];
        args.extend_from_slice(&["--explain", "0", "--out", s(out)]);
        args.extend_from_slice(extra);
        dtdcert(&args)
    };
    let refused = audit(&plain, &[]).expect_code(2);
    assert_eq!(
        refused.stderr.trim_end().lines().count(),
        1,
        "{}",
        refused.stderr
    );
    for part in [
        "softmax.onnx",
        "'/softmax/Softmax'",
        "not piecewise linear",
        "--strip-softmax",
    ] {
        assert!(
            refused.stderr.contains(part),
            "'{part}' missing: {}",
            refused.stderr
        );
    }
    assert!(!plain.exists());

    audit(&stripped, &["--strip-softmax"]).ok();
    audit_c6(&plain, &["-q", "--explain", "0"]).ok();
    let (a, b) = (
        read_json(&stripped.join("summary.json")),
        read_json(&plain.join("summary.json")),
    );
    assert_eq!(a["model"]["strip_softmax"], true);
    assert!(b["model"].get("strip_softmax").is_none());
    assert_eq!(a["model"]["fingerprint"], b["model"]["fingerprint"]);
    assert_eq!(a["total"], b["total"]);
    assert_eq!(a["layers"], b["layers"]);
    let run = read_json(&stripped.join("run.json"));
    assert_eq!(run["model"]["strip_softmax"], true);
    // Resumed alone, the run reads its model as it did.
    dtdcert(&["audit", "-q", "--resume", s(&stripped)]).ok();

    // Other formats have no Softmax to leave out.
    let e = dtdcert(&[
        "explain",
        "--model",
        MODEL_JSON,
        "--inputs",
        INPUTS,
        "--strip-softmax",
        "--out",
        s(&dir.path().join("r.npy")),
    ])
    .expect_code(2);
    assert!(
        e.stderr.contains("--strip-softmax applies to ONNX models"),
        "{}",
        e.stderr
    );
}

/// Audits the first ten C6 inputs (few enough for rational arithmetic to be quick) into
/// `DIR/NAME` and returns the records.
fn audit_c6_head(dir: &Path, name: &str, extra: &[&str]) -> Vec<Value> {
    let inputs = dir.join("head.npy");
    if !inputs.exists() {
        c6_head(&inputs, 10);
    }
    let out = dir.join(name);
    let mut args = vec!["audit", "--model", MODEL, "--inputs", s(&inputs), "-q"];
    args.extend_from_slice(&["--explain", "0", "--out", s(&out)]);
    args.extend_from_slice(extra);
    dtdcert(&args).ok();
    read_records(&out.join("records.jsonl"))
}

#[test]
fn exact_audit_decides_everything_exactly_and_conserves_relevance_exactly() {
    let dir = tmp();
    let records = audit_c6_head(dir.path(), "exact", &["--exact"]);
    assert_eq!(records.len(), 10);
    let mut verdicts = 0;
    for r in &records {
        assert_eq!(r["pattern_decided_by"], "exact");
        for layer in r["layers"].as_array().unwrap() {
            let at = format!("sample {} layer {}", r["sample"], layer["layer"]);
            assert_eq!(layer["conservation_error"].as_f64(), Some(0.0), "{at}");
            for n in layer["neurons"].as_array().unwrap() {
                if let Some(root) = n.get("root") {
                    assert_eq!(root["decided_by"], "exact", "{at}: {n}");
                    verdicts += 1;
                }
            }
        }
    }
    assert!(verdicts > 0);
    let summary = read_json(&dir.path().join("exact/summary.json"));
    assert_eq!(summary["settings"]["exact"], true);
    for layer in summary["layers"].as_array().unwrap() {
        assert_eq!(layer["max_conservation_error"].as_f64(), Some(0.0));
        assert_eq!(layer["exact_fallbacks"], 0);
    }
}

/// The root of the explained output neuron lies exactly on that neuron's own face (z = 0,
/// since R = z with the bias ignored). Neither mode finds it on the wrong side of that face:
/// `--exact` computes that root exactly, and the default mode knows it from how the root is
/// built (an exact 0 that no error bound could settle), so its other constraints decide. The
/// two modes give the same verdict for every root, and the own root, when inside, is on a face.
#[test]
fn f64_and_exact_audits_give_the_same_verdicts() {
    let dir = tmp();
    let exact = audit_c6_head(dir.path(), "exact", &["--exact"]);
    let float = audit_c6_head(dir.path(), "float", &[]);
    for (e, f) in exact.iter().zip(&float) {
        let layers = e["layers"].as_array().unwrap();
        let explained = e["explained"].as_u64().unwrap() as usize;
        let top = &layers.last().unwrap()["neurons"][explained]["root"]["region"];
        let own_face = top["layer"] == layers.len() as u64 && top["neuron"] == explained as u64;
        assert!(
            !own_face,
            "sample {}: the exact root violates its own face: {top}",
            e["sample"]
        );
        let top_f64 =
            &f["layers"].as_array().unwrap().last().unwrap()["neurons"][explained]["root"];
        if top_f64["region"]["status"] == "inside" {
            assert_eq!(top_f64["region"]["slack"], 0.0, "sample {}", f["sample"]);
        }
        for (el, fl) in layers.iter().zip(f["layers"].as_array().unwrap()) {
            let neurons = el["neurons"].as_array().unwrap();
            for (en, fn_) in neurons.iter().zip(fl["neurons"].as_array().unwrap()) {
                let at = format!(
                    "sample {} layer {} neuron {}",
                    e["sample"], el["layer"], en["neuron"]
                );
                assert_eq!(en["no_root"], fn_["no_root"], "{at}");
                let (er, fr) = (&en["root"], &fn_["root"]);
                assert_eq!(er["valid"], fr["valid"], "{at}");
                assert_eq!(er["region"]["status"], fr["region"]["status"], "{at}");
                assert_eq!(er["region"]["layer"], fr["region"]["layer"], "{at}");
                assert_eq!(er["region"]["neuron"], fr["region"]["neuron"], "{at}");
                assert_eq!(er["domain"]["status"], fr["domain"]["status"], "{at}");
                assert_eq!(
                    er["domain"]["coordinate"], fr["domain"]["coordinate"],
                    "{at}"
                );
            }
        }
    }
}

#[test]
fn fail_on_invalid_exits_1_when_a_root_is_outside_and_still_writes_the_run() {
    let dir = tmp();
    let (plain, strict) = (dir.path().join("plain"), dir.path().join("strict"));
    audit_c6(&plain, &["--explain", "0", "-q"]).ok();
    audit_c6(&strict, &["--explain", "0", "-q", "--fail-on-invalid"]).expect_code(1);
    let summary = read_json(&strict.join("summary.json"));
    assert!(u(&summary["total"]["roots_outside"]) > 0);
    assert_eq!(
        summary["total"],
        read_json(&plain.join("summary.json"))["total"]
    );
}

#[test]
fn a_finished_run_is_replaced_only_with_force() {
    let dir = tmp();
    let out = dir.path().join("run");
    audit_c6(&out, &["--explain", "0", "-q"]).ok();
    let args = [
        "audit",
        "--model",
        MODEL,
        "--inputs",
        INPUTS,
        "--explain",
        "1",
        "--out",
        s(&out),
    ];
    // Refused, naming the folder and the flag, with the run left as it was.
    expect_refusal_in(dir.path(), &args, &["run", "finished", "--force"]);
    assert_eq!(read_json(&out.join("summary.json"))["targets"]["index"], 0);
    audit_c6(&out, &["--explain", "1", "-q", "--force"]).ok();
    assert_eq!(read_json(&out.join("summary.json"))["targets"]["index"], 1);
    assert!(read_records(&out.join("records.jsonl"))
        .iter()
        .all(|r| r["explained"] == 1));
    assert_eq!(names(dir.path()), BTreeSet::from(["run".to_string()]));
}

#[test]
fn an_empty_existing_folder_is_used() {
    let dir = tmp();
    let out = dir.path().join("run");
    std::fs::create_dir(&out).unwrap();
    audit_c6(&out, &["-q"]).ok();
    assert!(out.join("summary.json").is_file());
}

#[test]
fn a_folder_with_foreign_files_is_refused_and_left_alone() {
    let dir = tmp();
    let out = dir.path().join("mine");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "my notes\n").unwrap();
    let args = [
        "audit",
        "--model",
        MODEL,
        "--inputs",
        INPUTS,
        "--out",
        s(&out),
    ];
    expect_refusal_in(dir.path(), &args, &["mine", "--out|dtdcert run|not empty"]);
    let repro = ["repro", "mlp-roots", "--samples", "5", "--out", s(&out)];
    expect_refusal_in(dir.path(), &repro, &["mine", "--out|dtdcert run|not empty"]);
}

#[test]
fn a_failed_rerun_leaves_the_earlier_run_intact() {
    let dir = tmp();
    let out = dir.path().join("run");
    audit_c6(&out, &["-q"]).ok();
    // The NaN is in row 2: found while auditing, after the staging folder exists; --force
    // lets the new run replace the old one only once it has finished.
    let args = [
        "audit",
        "--model",
        SMALL_MODEL,
        "--inputs",
        "tests/data/bad/inputs_nan_4x3.npy",
        "--force",
        "--out",
        s(&out),
    ];
    expect_refusal_in(dir.path(), &args, &["inputs_nan_4x3.npy", "NaN"]);
}

/// Replacing an earlier run must not destroy what the new run reads: auditing the network and
/// inputs that `repro mlp-roots` wrote, into that same folder, either refuses (exit 2) or
/// keeps them; it never leaves a summary pointing at deleted files.
#[test]
fn audit_into_the_folder_holding_its_own_model_and_inputs_keeps_them() {
    let dir = tmp();
    let out = dir.path().join("c6");
    dtdcert(&["repro", "mlp-roots", "--samples", "5", "--out", s(&out)]).ok();
    let kept = ["model.json", "model.safetensors", "inputs.npy"];
    let before: Vec<Vec<u8>> = kept
        .iter()
        .map(|f| std::fs::read(out.join(f)).unwrap())
        .collect();
    let (model, inputs) = (out.join("model.json"), out.join("inputs.npy"));
    let run = dtdcert(&[
        "audit",
        "-q",
        "--model",
        s(&model),
        "--inputs",
        s(&inputs),
        "--out",
        s(&out),
    ]);
    assert!(
        run.code == 0 || run.code == 2,
        "exit code {}: {}",
        run.code,
        run.stderr
    );
    for (file, bytes) in kept.iter().zip(&before) {
        let now = std::fs::read(out.join(file));
        assert!(
            now.as_ref().is_ok_and(|b| b == bytes),
            "{file} was deleted or changed by `dtdcert audit --out {}` (exit {}, stderr {:?})",
            out.display(),
            run.code,
            run.stderr
        );
    }
}

/// `--domain LO:HI` with a negative LO (the usual case, e.g. inputs in [-1, 1]) is a domain,
/// not an unknown option.
#[test]
fn domain_with_a_negative_lower_bound_is_accepted() {
    let dir = tmp();
    let out = dir.path().join("run");
    audit_c6(&out, &["-q", "--domain", "-1:1"]).ok();
    let summary = read_json(&out.join("summary.json"));
    assert_eq!(summary["settings"]["domain"]["lo"], -1.0);
    assert_eq!(summary["settings"]["domain"]["hi"], 1.0);
}

// ---------------------------------------------------------------------------------------------
// explain

fn library_explanations(model: &Model, n: usize) -> Vec<(Vec<f64>, f64, f64)> {
    let inputs = load_inputs(&root().join(INPUTS), None).unwrap();
    assert_eq!(inputs.len(), n);
    (0..n)
        .map(|i| {
            let x = inputs.row(i).unwrap();
            let trace = forward(model.net(), &x);
            let e = explain(model.net(), &trace, &DtdSettings::default(), 0, false);
            let unresolved: f64 = e
                .layers
                .iter()
                .flat_map(|l| l.neurons.iter().map(|n| n.unresolved))
                .sum();
            (e.input_relevance().to_vec(), trace.output()[0], unresolved)
        })
        .collect()
}

#[test]
fn explain_writes_the_library_relevances_and_exact_agrees() {
    let dir = tmp();
    let (f, e) = (dir.path().join("r.npy"), dir.path().join("r_exact.npy"));
    let args = |out: &Path, exact: bool| {
        let mut a = vec![
            "explain", "--model", MODEL, "--inputs", INPUTS, "--rule", "z+",
        ];
        a.extend_from_slice(&["--explain", "0", "--out", s(out)]);
        if exact {
            a.push("--exact");
        }
        a.into_iter().map(String::from).collect::<Vec<_>>()
    };
    dtdcert(&args(&f, false)).ok();
    dtdcert(&args(&e, true)).ok();
    assert_eq!(
        names(dir.path()),
        BTreeSet::from(["r.npy".into(), "r_exact.npy".into()])
    );
    let got: Array2<f64> = read_npy(&f).unwrap();
    let exact: Array2<f64> = read_npy(&e).unwrap();
    assert_eq!(got.dim(), (100, 10));
    assert_eq!(exact.dim(), (100, 10));

    let model = Model::load(&root().join(MODEL)).unwrap();
    // The binary writes what the library computes; in f64 that is a batch of inputs at a time,
    // the per-neuron engine's relevances up to the order of the additions.
    let inputs = load_inputs(&root().join(INPUTS), None).unwrap();
    let how = Arithmetic {
        exact: false,
        lp: None,
    };
    let targets = Targets::Index { index: 0 };
    let library = input_relevances(&model, &inputs, &targets, &DtdSettings::default(), how);
    assert_eq!(got, library.unwrap(), "the binary and the library differ");
    // The batched path takes the relevances it started from out of its own forward pass: the
    // values a separate forward pass gives (the explained outputs, or 1), bit for bit.
    for initial_relevance in [InitialRelevance::Output, InitialRelevance::One] {
        let dtd = DtdSettings {
            initial_relevance,
            ..DtdSettings::default()
        };
        for targets in [Targets::Top, Targets::Index { index: 1 }] {
            let (relevances, starts) =
                input_relevances_and_starts(&model, &inputs, &targets, &dtd, how).unwrap();
            let alone = input_relevances(&model, &inputs, &targets, &dtd, how).unwrap();
            assert_eq!(relevances, alone, "{initial_relevance:?}, {targets:?}");
            let forward = start_relevances(&model, &inputs, &targets, &dtd).unwrap();
            assert_eq!(starts, forward, "{initial_relevance:?}, {targets:?}");
        }
    }
    for (i, (want, output, unresolved)) in library_explanations(&model, 100).into_iter().enumerate()
    {
        let row = got.slice(s![i, ..]);
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (a, b) in row.iter().zip(&want) {
            assert!(
                (a - b).abs() <= 1e-12 * scale,
                "row {i}: {a} against the per-neuron engine's {b}"
            );
        }
        // z+ with the bias ignored passes everything on but what neurons without a root keep.
        let sum: f64 = row.sum();
        assert!(
            (sum + unresolved - output).abs() <= 1e-12 * output.abs().max(1.0),
            "row {i}: Σ R = {sum}, unresolved {unresolved}, f_0 = {output}"
        );
        for (j, (a, b)) in row.iter().zip(exact.slice(s![i, ..])).enumerate() {
            assert!(
                (a - b).abs() <= 1e-12 * b.abs(),
                "row {i}, input {j}: f64 {a:e}, exact {b:e}"
            );
        }
    }
}

#[test]
fn explain_exact_rounds_the_rational_relevance_once() {
    // The --exact output is the rational relevance rounded once: check a few rows by hand.
    // An existing file is replaced whole, with no temporary file left beside it.
    let dir = tmp();
    let out = dir.path().join("r.npy");
    std::fs::write(&out, "an earlier result\n").unwrap();
    dtdcert(&[
        "explain",
        "--model",
        MODEL,
        "--inputs",
        INPUTS,
        "--explain",
        "1",
        "--exact",
        "--out",
        s(&out),
    ])
    .ok();
    assert_eq!(names(dir.path()), BTreeSet::from(["r.npy".to_string()]));
    let got: Array2<f64> = read_npy(&out).unwrap();
    assert_eq!(got.dim(), (100, 10));
    let model = Model::load(&root().join(MODEL)).unwrap();
    let inputs = load_inputs(&root().join(INPUTS), None).unwrap();
    for i in [0, 57, 99] {
        let x: Vec<Rational> = inputs
            .row(i)
            .unwrap()
            .iter()
            .map(|&v| Rational::from_f64(v))
            .collect();
        let trace = forward(model.exact(), &x);
        let e = explain(model.exact(), &trace, &DtdSettings::default(), 1, false);
        let want: Vec<f64> = e.input_relevance().iter().map(Scalar::to_f64).collect();
        assert_eq!(got.slice(s![i, ..]).to_vec(), want, "row {i}");
    }
}

// ---------------------------------------------------------------------------------------------
// region

fn region(extra: &[&str]) -> Run {
    let mut args = vec!["region", "--model", MODEL, "--inputs", INPUTS];
    args.extend_from_slice(extra);
    dtdcert(&args)
}

#[test]
fn region_reports_the_constraints_of_the_polytope() {
    let text = region(&["--sample", "3"]).ok().stdout;
    assert!(text.contains("22 constraints"), "{text}");

    let report: Value =
        serde_json::from_str(&region(&["--sample", "3", "--json"]).ok().stdout).unwrap();
    assert_eq!(report["sample"], 3);
    assert_eq!(report["layer"], 1);
    assert_eq!(report["constraints"], 22);
    assert_eq!(report["dimension"], 10);

    // The pattern is the signs of the pre-activations.
    let model = Model::load(&root().join(MODEL)).unwrap();
    let x = load_inputs(&root().join(INPUTS), None)
        .unwrap()
        .row(3)
        .unwrap();
    let trace = forward(model.net(), &x);
    let layers = report["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 3);
    for (l, layer) in layers.iter().enumerate() {
        let bits: String = trace.pre[l]
            .iter()
            .map(|z| if *z > 0.0 { '1' } else { '0' })
            .collect();
        assert_eq!(layer["pattern"], bits, "layer {}", l + 1);
        assert_eq!(u(&layer["active"]), bits.matches('1').count() as u64);
        assert_eq!(u(&layer["width"]), bits.len() as u64);
    }

    for (layer, constraints) in [("2", 12), ("3", 2)] {
        let report: Value = serde_json::from_str(
            &region(&["--sample", "3", "--json", "--layer", layer])
                .ok()
                .stdout,
        )
        .unwrap();
        assert_eq!(report["constraints"], constraints, "layer {layer}");
        assert_eq!(report["dimension"], 10, "layer {layer}");
    }
}

#[test]
fn region_refuses_a_layer_or_sample_out_of_range() {
    let data = ["region", "--model", MODEL, "--inputs", INPUTS];
    let with = |extra: &[&'static str]| data.iter().chain(extra).copied().collect::<Vec<_>>();
    expect_refusal(
        &with(&["--sample", "0", "--layer", "4"]),
        &["--layer", "out of range"],
    );
    expect_refusal(
        &with(&["--sample", "0", "--layer", "0"]),
        &["--layer", "out of range"],
    );
    expect_refusal(
        &with(&["--sample", "100"]),
        &["--sample", "out of range", "inputs.npy"],
    );
}

// ---------------------------------------------------------------------------------------------
// repro mlp-roots

#[test]
fn repro_mlp_roots_is_consistent_reproducible_and_auditable() {
    let dir = tmp();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for out in [&a, &b] {
        dtdcert(&[
            "repro",
            "mlp-roots",
            "--samples",
            "50",
            "--seed",
            "3",
            "--out",
            s(out),
        ])
        .ok();
    }
    assert_eq!(
        std::fs::read(a.join("mlp_roots.json")).unwrap(),
        std::fs::read(b.join("mlp_roots.json")).unwrap(),
        "same seed, different mlp_roots.json"
    );
    assert_eq!(tree(&a), tree(&b), "same seed, different files");

    let report = read_json(&a.join("mlp_roots.json"));
    assert_eq!(report["settings"]["seed"], 3);
    assert_eq!(report["settings"]["samples"], 50);
    let rows = report["rows"].as_array().unwrap();
    let rules: Vec<&str> = rows.iter().map(|r| r["rule"].as_str().unwrap()).collect();
    assert_eq!(rules, ["0", "z+", "gamma:1", "w2"]);
    for r in rows {
        check_row(r, 50);
    }

    // The generated network and inputs load back, are what the report names, and audit.
    let model = Model::load(&a.join("model.json")).unwrap();
    assert_eq!(report["source"]["fingerprint"], model.fingerprint());
    assert_eq!(model.net().widths(), [10, 10, 10, 2]);
    let inputs = load_inputs(&a.join("inputs.npy"), None).unwrap();
    assert_eq!((inputs.len(), inputs.dim()), (50, 10));
    let audit = dir.path().join("audit");
    dtdcert(&[
        "audit",
        "--model",
        s(&a.join("model.json")),
        "--inputs",
        s(&a.join("inputs.npy")),
        "--explain",
        "0",
        "-q",
        "--out",
        s(&audit),
    ])
    .ok();
    // The z+ row is the audit's layer 1 (the roots in the network input).
    let summary = read_json(&audit.join("summary.json"));
    assert_eq!(summary["model"]["fingerprint"], model.fingerprint());
    same_counts(&rows[1], &summary["layers"][0]);
}

/// Counts of one table row are counts, fractions are their ratios.
#[track_caller]
fn check_row(r: &Value, samples: u64) {
    assert_eq!(u(&r["samples"]), samples, "{r}");
    let roots = u(&r["roots"]);
    assert!(roots > 0, "{r}");
    for (count, of, fraction) in [
        (
            "samples_with_root_outside",
            samples,
            "fraction_samples_with_root_outside",
        ),
        ("roots_outside", roots, "fraction_roots_outside"),
        (
            "roots_output_unchanged",
            roots,
            "fraction_roots_output_unchanged",
        ),
        (
            "roots_with_negative_entries",
            roots,
            "fraction_roots_with_negative_entries",
        ),
    ] {
        let c = u(&r[count]);
        assert!(c <= of, "{count} {c} > {of}: {r}");
        let f = r[fraction].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&f), "{fraction}: {r}");
        assert!((f - c as f64 / of as f64).abs() < 1e-12, "{fraction}: {r}");
    }
    assert!(
        u(&r["samples_with_root_outside"]) <= u(&r["roots_outside"]),
        "{r}"
    );
}

#[track_caller]
fn same_counts(row: &Value, layer: &Value) {
    for key in ["roots", "roots_outside", "samples_with_root_outside"] {
        assert_eq!(row[key], layer[key], "{key}: repro {row}, audit {layer}");
    }
}

#[test]
fn repro_mlp_roots_on_a_given_model_agrees_with_the_audit() {
    let dir = tmp();
    let out = dir.path().join("c6");
    let run = dtdcert(&[
        "repro",
        "mlp-roots",
        "--model",
        MODEL,
        "--inputs",
        INPUTS,
        "--explain",
        "0",
        "--out",
        s(&out),
    ])
    .ok();
    assert!(run.stdout.contains("z+"), "{}", run.stdout);
    assert!(out.join("mlp_roots.md").is_file());
    let report = read_json(&out.join("mlp_roots.json"));
    assert_eq!(report["source"]["model"], MODEL);
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    for r in rows {
        check_row(r, 100);
    }
    let audit = dir.path().join("audit");
    audit_c6(&audit, &["--explain", "0", "-q"]).ok();
    same_counts(
        &rows[1],
        &read_json(&audit.join("summary.json"))["layers"][0],
    );
}

fn repro_generated(extra: &[&'static str]) -> Vec<&'static str> {
    let base = ["repro", "mlp-roots", "--samples", "2"];
    base.iter().chain(extra).copied().collect()
}

#[test]
fn repro_mlp_roots_refuses_rules_without_a_root_and_unknown_rules() {
    expect_refusal(
        &repro_generated(&["--rules", "epsilon:0.1"]),
        &["epsilon", "root"],
    );
    expect_refusal(
        &repro_generated(&["--rules", "z+,foo"]),
        &["foo", "unknown"],
    );
}

/// Settings that leave the generated network unable to produce a usable network or input are
/// the user's to fix: exit 2 and a message, not a panic.
#[test]
fn repro_mlp_roots_refuses_factors_that_kill_the_generated_network() {
    // No weight is positive and every bias is negative: no input makes f_0 positive.
    expect_refusal(
        &repro_generated(&[
            "--positive-weight-factor",
            "0",
            "--positive-bias-factor",
            "-100",
        ]),
        &["f_0|output|dead|no input"],
    );
}

#[test]
fn repro_mlp_roots_refuses_factors_that_overflow_the_weights() {
    // 1e300 times a positive f32 weight is infinite in f32.
    expect_refusal(
        &repro_generated(&["--positive-weight-factor", "1e300"]),
        &[
            "--positive-weight-factor|weight",
            "finite|overflow|too large|inf",
        ],
    );
}

#[test]
fn repro_mlp_roots_refuses_an_explained_output_the_generated_network_lacks() {
    // The generated network has 2 outputs.
    expect_refusal(
        &repro_generated(&["--explain", "5"]),
        &["--explain", "out of range|outputs"],
    );
}

// ---------------------------------------------------------------------------------------------
// help and usage

#[test]
fn every_subcommand_help_has_an_example() {
    for cmd in [
        &["audit"][..],
        &["explain"],
        &["region"],
        &["repro", "mlp-roots"],
    ] {
        let args: Vec<&str> = cmd.iter().copied().chain(["--help"]).collect();
        let help = dtdcert(&args).ok().stdout;
        assert!(help.contains("Example"), "dtdcert {cmd:?} --help:\n{help}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let run = dtdcert(&["audit", "--model", MODEL, "--inputs", INPUTS]).expect_code(2);
    assert!(run.stderr.contains("--out"), "{}", run.stderr);
    dtdcert(&["no-such-command"]).expect_code(2);
    let run = dtdcert(&[
        "audit",
        "--model",
        MODEL,
        "--inputs",
        INPUTS,
        "--explain",
        "0",
        "--targets",
        "tests/data/npy/targets_i64_4.npy",
        "--out",
        "unused",
    ])
    .expect_code(2);
    assert!(run.stderr.contains("--targets"), "{}", run.stderr);
    // Refused explain options: one error naming the problem, exit 2, nothing written. A
    // one-hot start with full-backward DTD (which expands f_k); per-layer rules malformed or
    // for a layer the model lacks (C6 has 3).
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.npy");
    for (extra, says) in [
        (
            &["--full-backward", "--initial-relevance", "one"][..],
            "--initial-relevance",
        ),
        (&["--layer-rule", "0=z+"][..], "not a layer number"),
        (&["--layer-rule", "two=z+"][..], "not a layer number"),
        (&["--layer-rule", "2"][..], "expected L=RULE"),
        (&["--layer-rule", "2=zz"][..], "zz"),
        (&["--layer-rule", "4=w2"][..], "the model has layers 1..3"),
    ] {
        let mut args = vec!["explain", "--model", MODEL, "--inputs", INPUTS];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["--out", out.to_str().unwrap()]);
        let run = dtdcert(&args).expect_code(2);
        assert!(run.stderr.contains(says), "{extra:?}: {}", run.stderr);
        assert!(!out.exists());
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input: exit 2, one `error:` line naming the file or argument and the problem, no output.

#[test]
fn missing_model_file() {
    expect_refusal_by_every_command(
        "tests/data/onnx/no_such_model.onnx",
        INPUTS,
        &[
            "no_such_model.onnx",
            "no such file|not found|does not exist|cannot read",
        ],
    );
}

#[test]
fn empty_onnx() {
    expect_refusal_by_every_command(
        "tests/data/onnx/empty.onnx",
        INPUTS,
        &["empty.onnx", "empty"],
    );
}

#[test]
fn truncated_onnx() {
    expect_refusal_by_every_command(
        "tests/data/onnx/truncated.onnx",
        INPUTS,
        &["truncated.onnx", "truncated"],
    );
}

#[test]
fn not_onnx() {
    expect_refusal_by_every_command(
        "tests/data/onnx/not_onnx.onnx",
        INPUTS,
        &["not_onnx.onnx", "not an onnx|not a valid onnx|protobuf"],
    );
}

#[test]
fn unsupported_operator_sigmoid() {
    expect_refusal_by_every_command(
        "tests/data/onnx/unsupported_sigmoid.onnx",
        INPUTS,
        &["unsupported_sigmoid.onnx", "Sigmoid", "unsupported"],
    );
}

/// Runs `dtdcert audit` of `model` on `inputs` with `rule` (and `extra` flags) into `out`,
/// quietly, and returns its summary's totals.
fn audit_totals(out: &Path, model: &str, inputs: &str, rule: &str, extra: &[&str]) -> Value {
    let mut args = vec![
        "audit", "--model", model, "--inputs", inputs, "--rule", rule, "--quiet", "--out",
    ];
    args.push(s(out));
    args.extend(extra);
    dtdcert(&args).ok();
    read_json(&out.join("summary.json"))["total"].clone()
}

/// Audits `model` on `inputs` (z+), checks that it judged more than 100 roots, and returns
/// the `region --json` report of `sample`.
fn audit_and_region(model: &str, inputs: &str, sample: &str) -> serde_json::Value {
    let dir = tmp();
    let total = audit_totals(&dir.path().join("audit"), model, inputs, "z+", &[]);
    assert!(u(&total["roots"]) > 100, "{total}");
    let run = dtdcert(&[
        "region", "--model", model, "--inputs", inputs, "--sample", sample, "--json",
    ])
    .ok();
    serde_json::from_str(&run.stdout).unwrap()
}

/// Audits `model` on `inputs` with `--certify` (and the extra flags) and checks the
/// certificates: every certified root's question has a certified answer (none Unknown), and
/// `check-cert` accepts every certificate written. Returns the summary's totals.
fn audit_certified(model: &str, inputs: &str, extra: &[&str]) -> Value {
    let dir = tmp();
    let out = dir.path().join("audit");
    let total = audit_totals(&out, model, inputs, "z+", extra);
    assert_eq!(u(&total["certify_unknown"]), 0, "{total}");
    let files: Vec<PathBuf> = std::fs::read_dir(out.join("certificates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let mut check = vec!["check-cert".to_string(), "--model".into(), model.into()];
    check.extend(files.iter().map(|p| s(p).to_string()));
    let run = dtdcert(&check).ok();
    assert_eq!(run.stdout.matches(": accepted").count(), files.len());
    let mut total = total;
    total["certificate_files"] = files.len().into();
    total
}

/// A residual network (two BasicBlocks exported by PyTorch) is audited; `region` counts only
/// the ReLU outputs as constraints; every root outside its region gets a certified L∞ answer
/// whose certificate `check-cert` accepts. (Checking a certificate recomputes its relevance
/// in rationals through every layer above, which costs about 0.2 s a certificate here in a
/// release build: the roots outside, not all 1,674, keep the test short.)
#[test]
fn residual_networks_are_audited_and_certified() {
    let (model, inputs) = (
        "tests/data/onnx/residual_conv_2x6x6_f64_opset17.onnx",
        "tests/data/onnx/residual_conv_2x6x6_f64_opset17.inputs.npy",
    );
    let report = audit_and_region(model, inputs, "0");
    // The ReLU outputs of layers 1-5; layer 2 carries 144 values and layer 4 carries 144.
    assert_eq!(report["constraints"], 144 + 144 + 144 + 54 + 54, "{report}");
    let total = audit_certified(model, inputs, &["--certify", "nearest-linf"]);
    assert!(u(&total["roots"]) > 100, "{total}");
    assert!(u(&total["roots_outside"]) > 0, "{total}");
    assert_eq!(
        total["certificate_files"], total["roots_outside"],
        "{total}"
    );
    assert_eq!(
        u(&total["invalid_with_valid_alternative"]) + u(&total["invalid_without_valid_root"]),
        u(&total["roots_outside"]),
        "{total}"
    );
}

/// A max-pool network (exported by PyTorch) is audited; `region` shows each window's winner;
/// the roots outside their regions get certified nearest valid roots, and the nearest-valid
/// rule's roots are all valid; a facet question about a window's entry is answered, and about
/// its winner refused; full-backward DTD is refused, naming the layer.
#[test]
fn max_pool_networks_are_audited_and_certified() {
    let (model, inputs) = (
        "tests/data/onnx/maxpool_coord_2x7x7_opset17.onnx",
        "tests/data/onnx/maxpool_coord_2x7x7_opset17.inputs.npy",
    );
    let report = audit_and_region(model, inputs, "1");
    let pool = &report["layers"][1];
    assert_eq!(pool["max_pool"], 9, "{report}");
    assert_eq!(pool["width"], 48, "{report}");
    let winners: Vec<usize> = pool["pattern"]
        .as_str()
        .unwrap()
        .split('.')
        .map(|w| w.parse().unwrap())
        .collect();
    assert_eq!(winners.len(), 48);
    assert!(winners.iter().all(|&w| w < 9));
    // Seen from the input: 8 losers in each of 48 windows, 48 + 36 ReLUs, 3 losers in each of 16.
    assert_eq!(report["constraints"], 48 * 8 + 48 + 36 + 16 * 3, "{report}");

    let total = audit_certified(model, inputs, &["--certify", "nearest-l1"]);
    assert!(u(&total["roots_outside"]) > 0, "{total}");
    assert_eq!(
        total["certificate_files"], total["roots_outside"],
        "{total}"
    );

    // Window 0 of layer 2 at sample 1: its winner is no constraint, another entry is one.
    let dir = tmp();
    let facet = |entry: usize| -> Run {
        dtdcert(&[
            "certify",
            "--model",
            model,
            "--inputs",
            inputs,
            "--sample",
            "1",
            "--layer",
            "1",
            "--problem",
            "facet",
            "--constraint",
            &format!("2:{entry}"),
            "--out",
            s(&dir.path().join(format!("facet{entry}.json"))),
        ])
    };
    let loser = (winners[0] + 1) % 9;
    facet(loser).ok();
    let cert = dir.path().join(format!("facet{loser}.json"));
    let run = dtdcert(&["check-cert", "--model", model, s(&cert)]).ok();
    assert!(run.stdout.contains("accepted"), "{}", run.stdout);
    let refused = facet(winners[0]).expect_code(2);
    assert!(
        refused.stderr.contains("not a constraint"),
        "{}",
        refused.stderr
    );
    assert!(!dir
        .path()
        .join(format!("facet{}.json", winners[0]))
        .exists());

    // The nearest-valid rule's roots are certified valid: none lies outside its region.
    let out = dir.path().join("nearest-valid");
    let total = audit_totals(&out, model, inputs, "nearest-valid:l1", &[]);
    assert!(u(&total["roots"]) > 10, "{total}");
    assert_eq!(u(&total["roots_valid"]), u(&total["roots"]), "{total}");

    let data = ["--model", model, "--inputs", inputs];
    let with = |cmd: &[&'static str]| -> Vec<&str> { cmd.iter().chain(&data).copied().collect() };
    expect_refusal(
        &with(&["explain", "--full-backward"]),
        &["full-backward", "layer 2 max-pools"],
    );
}

/// `explain --backend torch` in a build without the `torch` feature says how to build it;
/// `--device` and `--precision` belong to the torch backend.
#[test]
fn the_torch_backend_is_named_where_it_is_missing() {
    let data = ["--model", MODEL, "--inputs", INPUTS];
    let with = |cmd: &[&'static str]| -> Vec<&str> { cmd.iter().chain(&data).copied().collect() };
    if !cfg!(feature = "torch") {
        expect_refusal(
            &with(&["explain", "--backend", "torch"]),
            &["--backend torch", "--features torch", "setup_torch.sh"],
        );
    }
    expect_refusal(
        &with(&["explain", "--device", "cpu"]),
        &["--device applies to --backend torch"],
    );
    expect_refusal(
        &with(&["explain", "--batch", "8"]),
        &["--batch applies to --backend torch"],
    );
    expect_refusal(
        &with(&["explain", "--backend", "gpu"]),
        &["--backend 'gpu'", "exact or torch"],
    );
}

#[test]
fn nan_weights() {
    expect_refusal_by_every_command(
        "tests/data/onnx/nan_weights.onnx",
        INPUTS,
        &["nan_weights.onnx", "NaN", "weight"],
    );
}

#[test]
fn inf_bias() {
    expect_refusal_by_every_command(
        "tests/data/onnx/inf_bias.onnx",
        INPUTS,
        &["inf_bias.onnx", "inf", "bias"],
    );
}

#[test]
fn unknown_model_extension() {
    let dir = tmp();
    let pt = dir.path().join("model.pt");
    std::fs::copy(root().join(MODEL), &pt).unwrap();
    expect_refusal_by_every_command(s(&pt), INPUTS, &["model.pt", "format|extension"]);
}

#[test]
fn inputs_of_the_wrong_width() {
    // The 3-wide inputs of the small network, fed to the 10-wide C6 network.
    expect_refusal_by_every_command(
        MODEL,
        SMALL_INPUTS,
        &["inputs_f64_4x3.npy", "width", "3", "10"],
    );
}

#[test]
fn inputs_of_an_integer_dtype() {
    expect_refusal_by_every_command(
        SMALL_MODEL,
        "tests/data/bad/inputs_i64_4x3.npy",
        &["inputs_i64_4x3.npy", "int64|integer", "float"],
    );
}

#[test]
fn truncated_npy() {
    expect_refusal_by_every_command(
        SMALL_MODEL,
        "tests/data/bad/inputs_truncated_4x3.npy",
        &["inputs_truncated_4x3.npy", "truncated"],
    );
}

#[test]
fn empty_npy() {
    expect_refusal_by_every_command(
        SMALL_MODEL,
        "tests/data/bad/inputs_empty.npy",
        &["inputs_empty.npy", "empty"],
    );
}

#[test]
fn npz_with_two_arrays_and_no_key() {
    expect_refusal_by_every_command(
        SMALL_MODEL,
        "tests/data/bad/inputs_two_arrays.npz",
        &[
            "inputs_two_arrays.npz",
            "several arrays|more than one",
            "key",
        ],
    );
    // With the key it is fine.
    let dir = tmp();
    dtdcert(&[
        "audit",
        "--model",
        SMALL_MODEL,
        "--inputs",
        "tests/data/bad/inputs_two_arrays.npz",
        "--inputs-key",
        "b",
        "-q",
        "--out",
        s(&dir.path().join("run")),
    ])
    .ok();
}

#[test]
fn nan_in_inputs() {
    expect_refusal_by_every_command(
        SMALL_MODEL,
        "tests/data/bad/inputs_nan_4x3.npy",
        &["inputs_nan_4x3.npy", "NaN", "row 2"],
    );
}

#[test]
fn explained_output_out_of_range() {
    let data = [
        "--model",
        SMALL_MODEL,
        "--inputs",
        SMALL_INPUTS,
        "--explain",
        "2",
    ];
    for cmd in [&["audit"][..], &["explain"], &["repro", "mlp-roots"]] {
        let args: Vec<&str> = cmd.iter().chain(&data).copied().collect();
        expect_refusal(&args, &["--explain 2", "out of range", "2 outputs"]);
    }
}

#[test]
fn targets_file_of_the_wrong_length() {
    for cmd in ["audit", "explain"] {
        expect_refusal(
            &[
                cmd,
                "--model",
                SMALL_MODEL,
                "--inputs",
                SMALL_INPUTS,
                "--targets",
                "tests/data/bad/targets_len3.npy",
            ],
            &["targets_len3.npy", "4", "3"],
        );
    }
}

#[test]
fn targets_file_with_an_index_out_of_range() {
    for cmd in ["audit", "explain"] {
        expect_refusal(
            &[
                cmd,
                "--model",
                SMALL_MODEL,
                "--inputs",
                SMALL_INPUTS,
                "--targets",
                "tests/data/bad/targets_out_of_range.npy",
            ],
            &["targets_out_of_range.npy", "2 outputs|out of range"],
        );
    }
    // The good targets file for the same inputs is accepted.
    let dir = tmp();
    dtdcert(&[
        "audit",
        "--model",
        SMALL_MODEL,
        "--inputs",
        SMALL_INPUTS,
        "--targets",
        "tests/data/npy/targets_i64_4.npy",
        "-q",
        "--out",
        s(&dir.path().join("run")),
    ])
    .ok();
}

#[test]
fn bad_rule_strings() {
    for (rule, needles) in [
        ("gamma", &["gamma", "parameter"][..]),
        ("zb:1:0", &["zb:1:0", "LO|exceed"]),
        ("foo", &["foo", "unknown"]),
    ] {
        for option in ["--rule", "--input-rule"] {
            for cmd in ["audit", "explain"] {
                expect_refusal(
                    &[
                        cmd,
                        "--model",
                        SMALL_MODEL,
                        "--inputs",
                        SMALL_INPUTS,
                        option,
                        rule,
                    ],
                    needles,
                );
            }
        }
    }
}

#[test]
fn bad_domain() {
    for domain in ["1:0", "0", "a:1", "0:inf"] {
        expect_refusal(
            &[
                "audit",
                "--model",
                SMALL_MODEL,
                "--inputs",
                SMALL_INPUTS,
                "--domain",
                domain,
            ],
            &["--domain", domain],
        );
    }
}

#[test]
fn out_is_an_existing_regular_file() {
    let dir = tmp();
    let file = dir.path().join("results");
    std::fs::write(&file, "precious\n").unwrap();
    let audit = [
        "audit",
        "--model",
        SMALL_MODEL,
        "--inputs",
        SMALL_INPUTS,
        "--out",
        s(&file),
    ];
    expect_refusal_in(
        dir.path(),
        &audit,
        &["results", "not a folder|not a directory"],
    );
    let repro = ["repro", "mlp-roots", "--samples", "2", "--out", s(&file)];
    expect_refusal_in(
        dir.path(),
        &repro,
        &["results", "not a folder|not a directory"],
    );
}

#[test]
fn out_in_a_missing_folder() {
    let dir = tmp();
    let out = dir.path().join("missing-parent/run");
    let needles = &["missing-parent", "does not exist|no such file"][..];
    let data = ["--model", SMALL_MODEL, "--inputs", SMALL_INPUTS, "--out"];
    let audit: Vec<&str> = ["audit"]
        .iter()
        .chain(&data)
        .copied()
        .chain([s(&out)])
        .collect();
    expect_refusal_in(dir.path(), &audit, needles);
    let npy = dir.path().join("missing-parent/r.npy");
    let explain: Vec<&str> = ["explain"]
        .iter()
        .chain(&data)
        .copied()
        .chain([s(&npy)])
        .collect();
    expect_refusal_in(dir.path(), &explain, needles);
    let repro = ["repro", "mlp-roots", "--samples", "2", "--out", s(&out)];
    expect_refusal_in(dir.path(), &repro, needles);
}

/// A relation network audited for one question: the run records the question, and the
/// question is required, checked against the network, and refused for other models.
#[test]
fn relation_network_audit_records_its_question_and_needs_one() {
    let dir = tmp();
    let model = "tests/data/relnet/rn.json";
    let images = "tests/data/relnet/images.npy";
    // An audit with the question, which run.json records; its summary.
    let audit = |model: &str, out: &Path| {
        dtdcert(&[
            "audit",
            "--model",
            model,
            "--inputs",
            images,
            "--question",
            "1,0,0,1,0",
            "--rule",
            "z+",
            "--quiet",
            "--out",
            s(out),
        ])
        .ok();
        let spec = read_json(&out.join("run.json"));
        assert_eq!(
            spec["model"]["question"],
            serde_json::json!([1.0, 0.0, 0.0, 1.0, 0.0])
        );
        read_json(&out.join("summary.json"))
    };
    let out = dir.path().join("rn");
    let summary = audit(model, &out);
    let md = std::fs::read_to_string(out.join("summary.md")).unwrap();
    assert!(md.contains("- question: `1,0,0,1,0`"), "{md}");
    assert!(u(&summary["total"]["roots"]) > 1000, "{summary}");

    expect_refusal(
        &["audit", "--model", model, "--inputs", images],
        &["rn.json", "--question", "5 values"],
    );
    expect_refusal(
        &[
            "audit",
            "--model",
            model,
            "--inputs",
            images,
            "--question",
            "1,0",
        ],
        &["rn.json", "the question has 2 values; the network takes 5"],
    );
    expect_refusal(
        &[
            "audit",
            "--model",
            MODEL,
            "--inputs",
            INPUTS,
            "--question",
            "1",
        ],
        &["--question", "second input", "this graph has one input"],
    );
    expect_refusal(
        &[
            "audit",
            "--model",
            MODEL_JSON,
            "--inputs",
            INPUTS,
            "--question",
            "1",
        ],
        &["--question applies to relation networks"],
    );

    // The same network as torch.onnx.export writes it, with the question as its second input:
    // the same roots, the question recorded the same way.
    let from_onnx = audit("tests/data/relnet/rn.onnx", &dir.path().join("rn_onnx"));
    assert_eq!(from_onnx["total"]["roots"], summary["total"]["roots"]);
    expect_refusal(
        &[
            "audit",
            "--model",
            "tests/data/relnet/rn.onnx",
            "--inputs",
            images,
        ],
        &["rn.onnx", "second input 'question'", "--question"],
    );
}

/// In a build without the `torch` feature, `--backend torch`, `relnet train` and `relnet eval`
/// are refused with the way to build it, and nothing is written; the exact backend refuses the
/// torch-only flags.
#[cfg(not(feature = "torch"))]
#[test]
fn the_torch_backend_is_refused_in_a_build_without_it() {
    let dir = tmp();
    let out = dir.path().join("audit");
    let npy = dir.path().join("r.npy");
    let audit = [
        "audit",
        "--model",
        MODEL,
        "--inputs",
        INPUTS,
        "--out",
        s(&out),
    ];
    let explain = [
        "explain",
        "--model",
        MODEL,
        "--inputs",
        INPUTS,
        "--out",
        s(&npy),
    ];
    for command in [&audit[..], &explain[..]] {
        let run = dtdcert(&[command, &["--backend", "torch"]].concat()).expect_code(2);
        assert!(
            run.stderr.contains("--features torch") && run.stderr.contains("setup_torch.sh"),
            "{}",
            run.stderr
        );
        assert_eq!(run.stderr.trim_end().lines().count(), 1, "{}", run.stderr);
        for (flag, value) in [("--device", "cpu"), ("--precision", "f32")] {
            let run = dtdcert(&[command, &[flag, value]].concat()).expect_code(2);
            assert!(run
                .stderr
                .contains(&format!("{flag} applies to --backend torch")));
        }
    }
    assert!(!out.exists() && !npy.exists());
    let train = [
        "relnet", "train", "--data", "x", "--out", "o", "--epochs", "1",
    ];
    let eval = ["relnet", "eval", "--data", "x", "--model", "m"];
    let sanity = [
        "relnet",
        "sanity",
        "--data",
        "x",
        "--model",
        "m",
        "--samples",
        "2",
        "--out",
        "o",
    ];
    for command in [&train[..], &eval[..], &sanity[..]] {
        let run = dtdcert(command).expect_code(2);
        assert!(run.stderr.contains("--features torch"), "{}", run.stderr);
    }
}

/// `explain --profile FILE` writes where the time went beside the relevances, whose file is
/// the same with or without it; naming the output file for it is refused before anything is
/// written.
#[test]
fn explain_profile_times_the_phases() {
    let dir = tmp();
    let (out, plain, profile) = (
        dir.path().join("r.npy"),
        dir.path().join("plain.npy"),
        dir.path().join("profile.json"),
    );
    let common = ["--model", MODEL, "--inputs", INPUTS, "--explain", "0"];
    let with = |extra: &[&str]| -> Vec<String> {
        common.iter().chain(extra).map(|a| a.to_string()).collect()
    };
    dtdcert(&[&["explain".to_string()][..], &with(&["--out", s(&plain)])].concat()).ok();
    let run = &with(&["--out", s(&out), "--profile", s(&profile)]);
    dtdcert(&[&["explain".to_string()][..], run].concat()).ok();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&plain).unwrap());
    let doc: Value = serde_json::from_slice(&std::fs::read(&profile).unwrap()).unwrap();
    assert_eq!(doc["inputs"], 100);
    let seconds = |key: &str| doc[key].as_f64().unwrap_or_else(|| panic!("{key}: {doc}"));
    let phases = seconds("load_s") + seconds("relevances_s") + seconds("write_s");
    assert!(phases >= 0.0 && phases <= seconds("wall_s"), "{doc}");

    let same = dir.path().join("same.npy");
    let refused = with(&["--out", s(&same), "--profile", s(&same)]);
    let run = dtdcert(&[&["explain".to_string()][..], &refused].concat()).expect_code(2);
    assert!(
        run.stderr
            .contains("--profile and --out name the same file"),
        "{}",
        run.stderr
    );
    assert!(!same.exists());
}
