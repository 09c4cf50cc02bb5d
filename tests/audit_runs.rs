//! Audit runs: resume after an interruption at any point, shards merged into the single run,
//! and well-formed report files.

use std::fs;
use std::path::{Path, PathBuf};

use dtdcert::audit::spec::{RunSpec, Shard, Targets};
use dtdcert::audit::AuditSettings;
use dtdcert::audit::{OutputOptions, Summary};
use dtdcert::error::Result;
use dtdcert::io::output_dir::{marker, MARKER};
use dtdcert::model::inputs::{load_inputs, Inputs};
use dtdcert::model::Model;
use dtdcert::report::Reports;

mod util;

use util::runs::{
    assert_same_outputs, c6_run, c6_workload, read, runner, wait_until, INPUTS, MODEL,
};

fn setup(shard: Option<Shard>) -> (Model, Inputs, RunSpec) {
    c6_run(AuditSettings::default(), shard)
}

const OPTIONS: OutputOptions = OutputOptions {
    progress: false,
    csv: true,
    force: false,
};

fn run(
    model: &Model,
    inputs: &Inputs,
    spec: &RunSpec,
    out: &Path,
    options: OutputOptions,
) -> Result<Summary> {
    runner(options).run(model, inputs, spec, out)
}

fn resume(
    model: &Model,
    inputs: &Inputs,
    spec: &RunSpec,
    dir: &Path,
    options: OutputOptions,
) -> Result<Summary> {
    runner(options).resume(model, inputs, spec, dir)
}

fn merge(dirs: &[PathBuf], out: &Path, csv: bool) -> Result<Summary> {
    dtdcert::audit::merge::merge(dirs, out, csv, false, &Reports)
}

fn reference(tmp: &Path) -> PathBuf {
    let (model, inputs, spec) = setup(None);
    let dir = tmp.join("reference");
    run(&model, &inputs, &spec, &dir, OPTIONS).unwrap();
    dir
}

/// A folder as a run killed after `cut` bytes of records.jsonl reached the disk leaves it.
fn interrupted_copy(reference: &Path, cut: usize, to: &Path) {
    fs::create_dir_all(to).unwrap();
    fs::write(to.join("run.json"), read(reference, "run.json")).unwrap();
    fs::write(to.join(MARKER), marker("audit", false)).unwrap();
    let records = read(reference, "records.jsonl");
    fs::write(to.join("records.jsonl"), &records[..cut]).unwrap();
}

#[test]
fn resume_after_interruption_at_many_points_gives_identical_results() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = reference(tmp.path());
    let records = read(&reference, "records.jsonl");
    let line_ends: Vec<usize> = records
        .iter()
        .enumerate()
        .filter(|(_, &b)| b == b'\n')
        .map(|(i, _)| i + 1)
        .collect();
    // Nothing written, a record boundary, mid-line (torn), one byte short of a newline, and all.
    let mut cuts = vec![0, 1, records.len() - 1, records.len()];
    for &end in line_ends.iter().step_by(17) {
        cuts.extend([end, end + 5, end.saturating_sub(1)]);
    }
    let (model, inputs, spec) = setup(None);
    for (n, cut) in cuts.into_iter().filter(|&c| c <= records.len()).enumerate() {
        let dir = tmp.path().join(format!("cut-{n}"));
        interrupted_copy(&reference, cut, &dir);
        let summary = resume(&model, &inputs, &spec, &dir, OPTIONS).unwrap();
        assert_eq!(summary.samples, 100, "cut at byte {cut}");
        assert_same_outputs(&reference, &dir);
        assert!(fs::read_to_string(dir.join(MARKER))
            .unwrap()
            .contains("\"complete\":true"));
    }
}

#[test]
fn a_damaged_last_line_is_redone() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = reference(tmp.path());
    let dir = tmp.path().join("damaged");
    let records = read(&reference, "records.jsonl");
    let cut = records.iter().position(|&b| b == b'\n').unwrap() + 1;
    interrupted_copy(&reference, cut, &dir);
    let mut bytes = read(&dir, "records.jsonl");
    bytes.extend_from_slice(b"{\"sample\":1,\"expl\n");
    fs::write(dir.join("records.jsonl"), bytes).unwrap();
    let (model, inputs, spec) = setup(None);
    resume(&model, &inputs, &spec, &dir, OPTIONS).unwrap();
    assert_same_outputs(&reference, &dir);
}

#[test]
fn resume_refuses_other_settings_and_foreign_records() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = reference(tmp.path());
    let dir = tmp.path().join("part");
    interrupted_copy(&reference, 0, &dir);
    let (model, inputs, mut spec) = setup(None);
    spec.settings.dtd.rule = dtdcert::dtd::Rule::WSquare;
    let err = resume(&model, &inputs, &spec, &dir, OPTIONS)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("settings.dtd.rule") && err.contains("w2"),
        "{err}"
    );
    spec = setup(None).2;
    spec.targets = Targets::Index { index: 1 };
    let err = resume(&model, &inputs, &spec, &dir, OPTIONS)
        .unwrap_err()
        .to_string();
    assert!(err.contains("targets.index"), "{err}");
    // Records of another shard in a folder whose run.json says single run.
    let (_, _, shard_spec) = setup(Some(Shard { index: 2, count: 2 }));
    let shard_dir = tmp.path().join("shard");
    run(&model, &inputs, &shard_spec, &shard_dir, OPTIONS).unwrap();
    fs::write(dir.join("records.jsonl"), read(&shard_dir, "records.jsonl")).unwrap();
    let err = resume(&model, &inputs, &setup(None).2, &dir, OPTIONS)
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not belong to this run"), "{err}");
}

#[test]
fn merged_shards_equal_the_single_run() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = reference(tmp.path());
    for count in [1, 3, 7] {
        let mut dirs = Vec::new();
        for index in (1..=count).rev() {
            let (model, inputs, spec) = setup(Some(Shard { index, count }));
            let dir = tmp.path().join(format!("shard-{index}-of-{count}"));
            let summary = run(&model, &inputs, &spec, &dir, OPTIONS).unwrap();
            assert_eq!(
                summary.samples as usize,
                (0..100).filter(|i| i % count == index - 1).count()
            );
            dirs.push(dir);
        }
        let out = tmp.path().join(format!("merged-{count}"));
        merge(&dirs, &out, true).unwrap();
        assert_same_outputs(&reference, &out);
    }
}

#[test]
fn merge_refuses_incomplete_sets_and_mixed_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let mut dirs = Vec::new();
    for index in 1..=3 {
        let (model, inputs, spec) = setup(Some(Shard { index, count: 3 }));
        let dir = tmp.path().join(format!("s{index}"));
        run(&model, &inputs, &spec, &dir, OPTIONS).unwrap();
        dirs.push(dir);
    }
    let out = tmp.path().join("out");
    let err = merge(&dirs[..2], &out, false).unwrap_err().to_string();
    assert!(err.contains("shard 3/3 is missing"), "{err}");
    let err = merge(
        &[dirs[0].clone(), dirs[0].clone(), dirs[2].clone()],
        &out,
        false,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("both shard 1/3"), "{err}");
    let (model, inputs, mut spec) = setup(Some(Shard { index: 2, count: 3 }));
    spec.settings.dtd.rule = dtdcert::dtd::Rule::Gamma(1.0);
    let other = tmp.path().join("other");
    run(&model, &inputs, &spec, &other, OPTIONS).unwrap();
    let err = merge(&[dirs[0].clone(), other, dirs[2].clone()], &out, false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("different runs"), "{err}");
    fs::write(dirs[1].join(MARKER), marker("audit", false)).unwrap();
    let err = merge(&dirs, &out, false).unwrap_err().to_string();
    assert!(err.contains("interrupted"), "{err}");
    assert!(!out.exists(), "a refused merge writes nothing");
}

/// Every file of a folder with its bytes, to show that a refusal changed nothing.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<(PathBuf, Vec<u8>)> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.clone(), fs::read(&p).unwrap()))
        .collect();
    files.sort();
    files
}

#[test]
fn a_finished_run_is_replaced_only_with_force() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, inputs, spec) = setup(None);
    let dir = tmp.path().join("run");
    run(&model, &inputs, &spec, &dir, OPTIONS).unwrap();
    let before = snapshot(&dir);
    let (_, _, mut other) = setup(None);
    other.settings.dtd.rule = dtdcert::dtd::Rule::WSquare;
    let err = run(&model, &inputs, &other, &dir, OPTIONS).unwrap_err();
    assert!(matches!(err, dtdcert::error::Error::Usage(_)), "{err}");
    assert!(err.to_string().contains("--force"), "{err}");
    assert_eq!(snapshot(&dir), before, "a refused run changes nothing");
    let forced = OutputOptions {
        force: true,
        ..OPTIONS
    };
    run(&model, &inputs, &other, &dir, forced).unwrap();
    assert_ne!(snapshot(&dir), before);
}

#[test]
fn merge_refuses_to_write_over_a_shard_or_a_finished_run() {
    let tmp = tempfile::tempdir().unwrap();
    let mut dirs = Vec::new();
    for index in 1..=2 {
        let (model, inputs, spec) = setup(Some(Shard { index, count: 2 }));
        let dir = tmp.path().join(format!("s{index}"));
        run(&model, &inputs, &spec, &dir, OPTIONS).unwrap();
        dirs.push(dir);
    }
    let before = snapshot(&dirs[0]);
    // The shard itself, however it is spelled.
    let spelled = tmp.path().join(".").join("s1");
    for out in [dirs[0].clone(), spelled] {
        let err = merge(&dirs, &out, false).unwrap_err();
        assert!(matches!(err, dtdcert::error::Error::Usage(_)), "{err}");
        assert!(err.to_string().contains("is the shard"), "{err}");
        assert_eq!(snapshot(&dirs[0]), before, "the shard is untouched");
    }
    let out = tmp.path().join("merged");
    merge(&dirs, &out, false).unwrap();
    let merged = snapshot(&out);
    let err = merge(&dirs, &out, false).unwrap_err();
    assert!(err.to_string().contains("--force"), "{err}");
    assert_eq!(snapshot(&out), merged);
    dtdcert::audit::merge::merge(&dirs, &out, false, true, &Reports).unwrap();
    // The merged folder is an audit run, so neither --force nor its shards may write over
    // the shards: merging into a shard is refused with --force too.
    let err = dtdcert::audit::merge::merge(&dirs, &dirs[1], false, true, &Reports).unwrap_err();
    assert!(err.to_string().contains("is the shard"), "{err}");
}

#[test]
fn shard_specs_are_checked() {
    for bad in ["5/4", "0/0", "0/3", "x/2", "3", "1/-2"] {
        assert!(bad.parse::<Shard>().is_err(), "{bad}");
    }
    assert_eq!(
        "2/8".parse::<Shard>().unwrap(),
        Shard { index: 2, count: 8 }
    );
}

#[test]
fn report_files_are_well_formed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = reference(tmp.path());
    let summary: serde_json::Value = serde_json::from_slice(&read(&dir, "summary.json")).unwrap();
    let html = String::from_utf8(read(&dir, "summary.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") || html.starts_with("<!doctype html>"));
    assert!(html.trim_end().ends_with("</html>"));
    assert_eq!(html.matches("<svg").count(), html.matches("</svg>").count());
    assert!(html.matches("<svg").count() >= 3, "three plots");
    assert!(!html.contains("<script"), "self-contained, no scripts");
    assert!(!html.contains("http://") || html.contains("http://www.w3.org/2000/svg"));
    let md = String::from_utf8(read(&dir, "summary.md")).unwrap();
    // The headline opens it, with the totals of summary.json.
    let total = &summary["total"];
    let headline = md.lines().nth(2).unwrap();
    assert!(
        headline.starts_with(&format!(
            "Of {} roots in 100 samples, {} (",
            total["roots"], total["roots_outside"]
        )),
        "{headline}"
    );
    assert!(html.find("class=\"headline\"") < html.find("<h2>Settings</h2>"));
    // The first table is the per-layer one; every table's rows have its header's columns.
    let mut tables: Vec<Vec<&str>> = Vec::new();
    let mut previous_was_row = false;
    for line in md.lines() {
        let row = line.starts_with('|');
        if row && !previous_was_row {
            tables.push(Vec::new());
        }
        if row {
            tables.last_mut().unwrap().push(line);
        }
        previous_was_row = row;
    }
    for table in &tables {
        let columns = table[0].matches('|').count();
        assert!(table.iter().all(|l| l.matches('|').count() == columns));
    }
    assert_eq!(
        tables[0].len(),
        2 + 3 + 1,
        "header, rule, three layers, total"
    );
    let csv = String::from_utf8(read(&dir, "roots.csv")).unwrap();
    let mut lines = csv.lines();
    let fields = lines.next().unwrap().split(',').count();
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 100 * (10 + 10 + 2));
    assert!(rows.iter().all(|r| r.split(',').count() == fields));
    let outside_rows = rows.iter().filter(|r| r.contains(",outside,")).count() as u64;
    assert_eq!(
        outside_rows,
        summary["total"]["roots_outside"].as_u64().unwrap()
    );
}

/// Waits until `records` holds at least `bytes` (or a minute has passed).
fn wait_for_records(records: &Path, bytes: u64) {
    wait_until(|| fs::metadata(records).map_or(0, |m| m.len()) >= bytes);
}

/// SIGTERM (as Ctrl-C's SIGINT) mid-run: the process stops with exit code 130 and one line
/// saying how to resume, every record written so far is whole, and resuming gives the
/// uninterrupted result.
#[cfg(unix)]
#[test]
fn a_terminated_run_says_how_to_resume_and_resumes_to_the_uninterrupted_result() {
    let tmp = tempfile::tempdir().unwrap();
    let args = c6_workload(tmp.path(), 10_000, &[]);
    let full = tmp.path().join("full");
    assert!(args("--out", &full).status().unwrap().success());
    let stopped = tmp.path().join("stopped");
    let child = args("--out", &stopped)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let records = stopped.join("records.jsonl");
    wait_for_records(&records, 100_000);
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "interrupted: resume with dtdcert audit --resume {}",
            stopped.display()
        )
    );
    let text = fs::read_to_string(&records).unwrap();
    assert!(text.ends_with('\n'), "the last record is whole");
    let whole = text.lines().count();
    assert!(whole > 0 && whole < 10_000, "{whole} records");
    for line in text.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
    assert!(!fs::read_to_string(stopped.join(MARKER))
        .unwrap()
        .contains("\"complete\":true"));
    assert!(args("--resume", &stopped).status().unwrap().success());
    for name in ["records.jsonl", "summary.json", "summary.md"] {
        assert!(
            read(&full, name) == read(&stopped, name),
            "{name} differs after resume"
        );
    }
}

/// A real process killed with SIGKILL mid-run, then resumed from the command line.
#[test]
fn killed_process_resumes_to_the_uninterrupted_result() {
    let tmp = tempfile::tempdir().unwrap();
    let args = c6_workload(tmp.path(), 10_000, &[]);
    let full = tmp.path().join("full");
    assert!(args("--out", &full).status().unwrap().success());
    let killed = tmp.path().join("killed");
    let mut child = args("--out", &killed).spawn().unwrap();
    let records = killed.join("records.jsonl");
    wait_for_records(&records, 100_000);
    child.kill().unwrap();
    child.wait().unwrap();
    let written = fs::metadata(&records).unwrap().len();
    let complete = fs::read_to_string(killed.join(MARKER))
        .unwrap()
        .contains("\"complete\":true");
    assert!(
        !complete,
        "the run was killed before it finished ({written} bytes of records)"
    );
    assert!(args("--resume", &killed).status().unwrap().success());
    for name in [
        "records.jsonl",
        "summary.json",
        "summary.md",
        "summary.html",
    ] {
        assert!(
            read(&full, name) == read(&killed, name),
            "{name} differs after resume"
        );
    }
}

/// `audit --resume DIR` alone continues a run from any working folder with the model, inputs
/// and settings run.json records; an argument beside it must agree; runs are known by their
/// files' fingerprints, so moved files given at their new place continue the run, and a
/// changed file is refused, naming the fingerprint the run expects.
#[test]
fn resume_alone_continues_from_any_folder_and_runs_are_known_by_fingerprint() {
    use std::process::{Command, Output};

    let tmp = tempfile::tempdir().unwrap();
    let tmp = tmp.path().canonicalize().unwrap();
    let files = tmp.join("files");
    fs::create_dir(&files).unwrap();
    fs::copy(MODEL, files.join("model.onnx")).unwrap();
    fs::copy(INPUTS, files.join("inputs.npy")).unwrap();
    let cli = |cwd: &Path, args: &[&str]| -> Output {
        Command::new(env!("CARGO_BIN_EXE_dtdcert"))
            .current_dir(cwd)
            .args(args)
            .output()
            .unwrap()
    };
    let full = tmp.join("full");
    let ran = cli(
        &files,
        &[
            "audit",
            "-q",
            "--model",
            "model.onnx",
            "--inputs",
            "inputs.npy",
            "--explain",
            "0",
            "--out",
            "../full",
        ],
    );
    assert!(ran.status.success());
    let cut = read(&full, "records.jsonl").len() / 3;
    let same = |dir: &Path| {
        for name in ["records.jsonl", "summary.json", "summary.md"] {
            assert!(read(&full, name) == read(dir, name), "{name} differs");
        }
    };
    let stderr = |out: &Output| String::from_utf8_lossy(&out.stderr).into_owned();

    let elsewhere = tmp.join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    interrupted_copy(&full, cut, &tmp.join("part"));
    let out = cli(&elsewhere, &["audit", "-q", "--resume", "../part"]);
    assert!(out.status.success(), "{}", stderr(&out));
    same(&tmp.join("part"));

    interrupted_copy(&full, cut, &tmp.join("part2"));
    let out = cli(&tmp, &["audit", "-q", "--resume", "part2", "--rule", "w2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("settings.dtd.rule"),
        "{}",
        stderr(&out)
    );

    fs::rename(&files, tmp.join("moved")).unwrap();
    let out = cli(&tmp, &["audit", "-q", "--resume", "part2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--model"), "{}", stderr(&out));
    let out = cli(
        &tmp,
        &[
            "audit",
            "-q",
            "--model",
            "moved/model.onnx",
            "--inputs",
            "moved/inputs.npy",
            "--explain",
            "0",
            "--resume",
            "part2",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    same(&tmp.join("part2"));

    fs::rename(tmp.join("moved"), &files).unwrap();
    interrupted_copy(&full, cut, &tmp.join("part3"));
    let run_json = tmp.join("part3/run.json");
    let text = fs::read_to_string(&run_json).unwrap();
    let fingerprint = serde_json::from_str::<serde_json::Value>(&text).unwrap()["model"]
        ["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let expected = format!("sha256:{}", "0".repeat(64));
    fs::write(&run_json, text.replace(&fingerprint, &expected)).unwrap();
    let out = cli(&tmp, &["audit", "-q", "--resume", "part3"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
    assert_eq!(stderr(&out).trim_end().lines().count(), 1);
}

/// A disk that fills mid-run (here a file-size limit, as a full disk fails a write): one
/// clear line naming the records file and how to resume, exit code 2, and the run resumes
/// to the uninterrupted result.
#[cfg(unix)]
#[test]
fn a_full_disk_stops_the_run_resumably() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_dtdcert");
    let audit = |out: &Path| {
        format!(
            "{bin} audit -q --model {MODEL} --inputs {INPUTS} --explain 0 --out {}",
            out.display()
        )
    };
    let full = tmp.path().join("full");
    let ran = std::process::Command::new("sh")
        .args(["-c", &audit(&full)])
        .status()
        .unwrap();
    assert!(ran.success());
    let dir = tmp.path().join("limited");
    // Writes past 40 blocks fail with EFBIG (SIGXFSZ ignored) as they would with ENOSPC.
    let out = std::process::Command::new("sh")
        .args([
            "-c",
            &format!("ulimit -f 40; trap '' XFSZ; exec {}", audit(&dir)),
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("records.jsonl"), "{stderr}");
    assert!(
        stderr.contains(&format!("--resume {}", dir.display())),
        "{stderr}"
    );
    assert!(
        read(&full, "records.jsonl").len()
            > fs::metadata(dir.join("records.jsonl")).unwrap().len() as usize
    );
    let resumed = std::process::Command::new(bin)
        .args(["audit", "-q", "--resume"])
        .arg(&dir)
        .status()
        .unwrap();
    assert!(resumed.success());
    for name in ["records.jsonl", "summary.json", "summary.md"] {
        assert!(read(&full, name) == read(&dir, name), "{name} differs");
    }
}

#[test]
fn a_run_held_in_memory_writes_the_folder_of_a_run_on_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = reference(tmp.path());
    let (model, inputs, spec) = setup(None);
    let done = std::sync::atomic::AtomicU64::new(0);
    let held = runner(OPTIONS)
        .audit(&model, &inputs, &spec, &done)
        .unwrap();
    assert_eq!(done.into_inner(), inputs.len() as u64);
    assert_eq!(held.lines.len(), inputs.len());
    let out = tmp.path().join("from-memory");
    let written = runner(OPTIONS).write(&held, &out).unwrap();
    assert_eq!(written, spec);
    assert_same_outputs(&reference, &out);
    assert_eq!(read(&reference, MARKER), read(&out, MARKER));
    // A finished folder is not written over without force, and is left as it was.
    let before = snapshot(&out);
    assert!(runner(OPTIONS).write(&held, &out).is_err());
    assert_eq!(before, snapshot(&out));
}

/// With fewer records kept and compressed, a run held in memory writes the same bytes as a run
/// on disk: the same lines, in the same zstd frames.
#[test]
fn a_run_held_in_memory_keeps_and_compresses_records_as_a_run_on_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let (model, inputs, mut spec) = setup(None);
    spec.settings.records = dtdcert::audit::RecordsKept::Outside;
    spec.settings.compress = true;
    let on_disk = tmp.path().join("on-disk");
    run(&model, &inputs, &spec, &on_disk, OPTIONS).unwrap();
    let done = std::sync::atomic::AtomicU64::new(0);
    let held = runner(OPTIONS)
        .audit(&model, &inputs, &spec, &done)
        .unwrap();
    let out = tmp.path().join("from-memory");
    runner(OPTIONS).write(&held, &out).unwrap();
    assert!(!out.join("records.jsonl").exists());
    for name in [
        "records.jsonl.zst",
        "summary.json",
        "summary.md",
        "roots.csv",
    ] {
        assert!(read(&on_disk, name) == read(&out, name), "{name} differs");
    }
}

#[test]
fn inputs_held_in_memory_are_written_into_the_folder_and_named_there() {
    let tmp = tempfile::tempdir().unwrap();
    let bytes = fs::read(INPUTS).unwrap();
    let model = Model::load(Path::new(MODEL)).unwrap();
    let inputs =
        dtdcert::model::inputs::load_inputs_bytes(&bytes, Path::new("<array>"), None).unwrap();
    let spec = RunSpec::with_inputs_fingerprint(
        &model,
        Path::new(MODEL),
        &inputs,
        Path::new("<array>"),
        dtdcert::audit::spec::bytes_fingerprint(&bytes),
        Targets::Index { index: 0 },
        AuditSettings::default(),
        None,
    )
    .unwrap();
    let done = std::sync::atomic::AtomicU64::new(0);
    let mut held = runner(OPTIONS)
        .audit(&model, &inputs, &spec, &done)
        .unwrap();
    held.in_memory.inputs_npy = Some(bytes.clone());
    let out = tmp.path().join("arrays");
    let written = runner(OPTIONS).write(&held, &out).unwrap();
    assert_eq!(read(&out, "inputs.npy"), bytes);
    assert_eq!(
        written.inputs.path,
        std::path::absolute(out.join("inputs.npy")).unwrap()
    );
    // The folder is the one a run on that file writes.
    let on_disk = tmp.path().join("on-disk");
    let file_inputs = load_inputs(&out.join("inputs.npy"), None).unwrap();
    let file_spec = RunSpec::new(
        &model,
        Path::new(MODEL),
        &file_inputs,
        &out.join("inputs.npy"),
        Targets::Index { index: 0 },
        AuditSettings::default(),
        None,
    )
    .unwrap();
    run(&model, &file_inputs, &file_spec, &on_disk, OPTIONS).unwrap();
    assert_same_outputs(&on_disk, &out);
}
