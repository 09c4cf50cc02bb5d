//! The records file of an audit: `--records all|outside|none` and `--compress`. The counts do
//! not depend on either; a run that cannot rebuild its counts from its records resumes from
//! its checkpoint to the uninterrupted result, after a stop, a kill or a torn write; shards
//! merge; and arguments that do not fit the run are refused.

use std::fs;
use std::path::{Path, PathBuf};

use dtdcert::audit::records_file::{open_records, records_name, COMPRESSED, PLAIN};
use dtdcert::audit::spec::{RunSpec, Shard};
use dtdcert::audit::{AuditSettings, RecordsKept, SampleRecord};
use dtdcert::audit::{OutputOptions, Runner, Summary};
use dtdcert::error::Result;
use dtdcert::io::output_dir::{marker, MARKER};
use dtdcert::model::inputs::Inputs;
use dtdcert::model::Model;
use dtdcert::report::Reports;
use serde_json::Value;

mod util;

use util::runs::{c6_run, c6_workload, wait_until, INPUTS, MODEL};

const CHECKPOINT: &str = "checkpoint.json";

fn setup(kept: RecordsKept, compress: bool, shard: Option<Shard>) -> (Model, Inputs, RunSpec) {
    let settings = AuditSettings {
        records: kept,
        compress,
        ..AuditSettings::default()
    };
    c6_run(settings, shard)
}

fn runner(csv: bool) -> Runner<'static> {
    util::runs::runner(OutputOptions {
        progress: false,
        csv,
        force: false,
    })
}

/// A complete run of the 100 C6 inputs into `dir`.
fn run(kept: RecordsKept, compress: bool, shard: Option<Shard>, dir: &Path) -> Summary {
    let (model, inputs, spec) = setup(kept, compress, shard);
    runner(kept != RecordsKept::None)
        .run(&model, &inputs, &spec, dir)
        .unwrap()
}

fn resume(kept: RecordsKept, compress: bool, dir: &Path) -> Result<Summary> {
    let (model, inputs, spec) = setup(kept, compress, None);
    runner(kept != RecordsKept::None).resume(&model, &inputs, &spec, dir)
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The lines of a run's records file, decompressed.
fn lines(dir: &Path, compress: bool) -> Vec<String> {
    use std::io::BufRead;
    open_records(&dir.join(records_name(compress)))
        .unwrap()
        .lines()
        .map(|l| l.unwrap())
        .collect()
}

fn records(dir: &Path, compress: bool) -> Vec<SampleRecord> {
    lines(dir, compress)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// summary.json without the two settings that say how the records are written.
fn counts(dir: &Path) -> Value {
    let mut v: Value = serde_json::from_slice(&read(&dir.join("summary.json"))).unwrap();
    let settings = v["settings"].as_object_mut().unwrap();
    assert!(settings.remove("records").is_some());
    assert!(settings.remove("compress").is_some());
    v
}

const MODES: [(RecordsKept, bool); 5] = [
    (RecordsKept::All, true),
    (RecordsKept::Outside, false),
    (RecordsKept::Outside, true),
    (RecordsKept::None, false),
    (RecordsKept::None, true),
];

#[test]
fn the_counts_do_not_depend_on_which_records_are_kept_or_on_compression() {
    let tmp = tempfile::tempdir().unwrap();
    let reference = tmp.path().join("all");
    let whole = run(RecordsKept::All, false, None, &reference);
    let full = records(&reference, false);
    assert_eq!(full.len(), 100);
    for (kept, compress) in MODES {
        let dir = tmp.path().join(format!("{}-{compress}", kept.name()));
        let summary = run(kept, compress, None, &dir);
        assert_eq!(summary, whole, "{kept:?} {compress}");
        assert_eq!(counts(&dir), counts(&reference), "{kept:?} {compress}");
        assert!(read(&dir.join("summary.md")) == read(&reference.join("summary.md")));
        // The file of the mode, and only it; no checkpoint left behind.
        let (name, other) = if compress {
            (COMPRESSED, PLAIN)
        } else {
            (PLAIN, COMPRESSED)
        };
        assert!(dir.join(name).is_file() && !dir.join(other).exists());
        assert!(!dir.join(CHECKPOINT).exists());
        if compress {
            assert_eq!(read(&dir.join(name))[..4], [0x28, 0xB5, 0x2F, 0xFD]);
        }
        // One line per sample, with the layers' balance; the neurons the mode keeps.
        let kept_records = records(&dir, compress);
        assert_eq!(kept_records.len(), 100);
        let mut neurons = 0u64;
        for (k, f) in kept_records.iter().zip(&full) {
            assert_eq!((k.sample, k.output), (f.sample, f.output));
            for (kl, fl) in k.layers.iter().zip(&f.layers) {
                assert_eq!(kl.relevance_in, fl.relevance_in);
                assert_eq!(kl.conservation_error, fl.conservation_error);
                for n in &kl.neurons {
                    assert!(fl.neurons.contains(n));
                    if kept == RecordsKept::Outside {
                        let root = n.root.as_ref().expect("kept neurons have a root");
                        assert!(!root.valid, "{n:?}");
                    }
                }
                neurons += kl.neurons.len() as u64;
            }
        }
        let invalid = whole.total.roots - whole.total.roots_valid;
        match kept {
            RecordsKept::All => assert_eq!(lines(&dir, true), lines(&reference, false)),
            RecordsKept::Outside => assert_eq!(neurons, invalid),
            RecordsKept::None => assert_eq!(neurons, 0),
        }
        if kept == RecordsKept::Outside {
            let csv = String::from_utf8(read(&dir.join("roots.csv"))).unwrap();
            assert_eq!(csv.lines().count() as u64, 1 + invalid);
        }
    }
}

/// The bytes of `lines` as a records file writes them: plain, or as one zstd frame.
fn encoded(lines: &[String], compress: bool) -> Vec<u8> {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    if compress {
        zstd::stream::encode_all(text.as_bytes(), 3).unwrap()
    } else {
        text.into_bytes()
    }
}

/// An interrupted run as one leaves it: run.json, an unfinished marker, the records of the
/// first `cuts.last()` samples written chunk by chunk (`cuts` are the chunk ends), a write
/// torn after them, and (when some chunk was done) the checkpoint that covers them.
fn interrupted(reference: &Path, full: &[SampleRecord], compress: bool, cuts: &[usize], to: &Path) {
    fs::create_dir_all(to).unwrap();
    fs::write(to.join("run.json"), read(&reference.join("run.json"))).unwrap();
    fs::write(to.join(MARKER), marker("audit", false)).unwrap();
    let all = lines(reference, compress);
    let mut bytes = Vec::new();
    let mut start = 0;
    for &end in cuts {
        bytes.extend(encoded(&all[start..end], compress));
        start = end;
    }
    let covered = bytes.len();
    let torn = encoded(&all[start..(start + 3).min(all.len())], compress);
    bytes.extend_from_slice(&torn[..torn.len() / 2]);
    fs::write(to.join(records_name(compress)), bytes).unwrap();
    if let Some(&done) = cuts.last() {
        let mut summary = Summary::new(full[0].layers.len());
        for r in &full[..done] {
            summary.add(r);
        }
        let checkpoint = serde_json::json!({
            "samples_done": done, "records_bytes": covered, "summary": summary,
        });
        fs::write(to.join(CHECKPOINT), checkpoint.to_string()).unwrap();
    }
}

#[test]
fn a_run_resumes_from_its_checkpoint_to_the_uninterrupted_result() {
    let tmp = tempfile::tempdir().unwrap();
    let all = tmp.path().join("all");
    run(RecordsKept::All, false, None, &all);
    let full = records(&all, false);
    for (kept, compress) in MODES {
        let reference = tmp.path().join(format!("ref-{}-{compress}", kept.name()));
        run(kept, compress, None, &reference);
        for (n, cuts) in [&[][..], &[37], &[37, 60], &[1, 2, 99], &[100]]
            .iter()
            .enumerate()
        {
            let dir = tmp.path().join(format!("{}-{compress}-{n}", kept.name()));
            interrupted(&reference, &full, compress, cuts, &dir);
            let summary = resume(kept, compress, &dir).unwrap();
            assert_eq!(summary.samples, 100);
            let what = format!("{kept:?}, compress {compress}, chunks ending at {cuts:?}");
            assert_eq!(lines(&dir, compress), lines(&reference, compress), "{what}");
            for name in ["summary.json", "summary.md", "summary.html", "run.json"] {
                assert!(
                    read(&dir.join(name)) == read(&reference.join(name)),
                    "{name} differs: {what}"
                );
            }
            assert!(!dir.join(CHECKPOINT).exists(), "{what}");
            assert!(String::from_utf8(read(&dir.join(MARKER)))
                .unwrap()
                .contains("\"complete\":true"));
            // A finished run resumes to itself.
            assert_eq!(resume(kept, compress, &dir).unwrap(), summary);
        }
    }
}

#[test]
fn damaged_checkpoints_foreign_records_and_other_settings_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let all = tmp.path().join("all");
    run(RecordsKept::All, false, None, &all);
    let full = records(&all, false);
    let (kept, compress) = (RecordsKept::Outside, true);
    let reference = tmp.path().join("reference");
    run(kept, compress, None, &reference);

    // The checkpoint counts more than the file holds.
    let short = tmp.path().join("short");
    interrupted(&reference, &full, compress, &[40], &short);
    let records_path = short.join(COMPRESSED);
    let bytes = read(&records_path);
    fs::write(&records_path, &bytes[..bytes.len() / 3]).unwrap();
    let err = resume(kept, compress, &short).unwrap_err().to_string();
    assert!(
        err.contains("checkpoint") && err.contains("start the run again"),
        "{err}"
    );

    // The records of another shard, under a checkpoint that counts them.
    let shard = tmp.path().join("shard");
    run(kept, compress, Some(Shard { index: 2, count: 2 }), &shard);
    let foreign = tmp.path().join("foreign");
    interrupted(&reference, &full, compress, &[], &foreign);
    let shard_records = read(&shard.join(COMPRESSED));
    fs::write(foreign.join(COMPRESSED), &shard_records).unwrap();
    let mut summary = Summary::new(3);
    for r in full.iter().skip(1).step_by(2) {
        summary.add(r);
    }
    let checkpoint = serde_json::json!({
        "samples_done": 50, "records_bytes": shard_records.len(), "summary": summary,
    });
    fs::write(foreign.join(CHECKPOINT), checkpoint.to_string()).unwrap();
    let err = resume(kept, compress, &foreign).unwrap_err().to_string();
    assert!(err.contains("does not belong to this run"), "{err}");

    // Other records or compression than the run's: refused, naming the setting.
    let part = tmp.path().join("part");
    interrupted(&reference, &full, compress, &[40], &part);
    let err = resume(RecordsKept::None, compress, &part)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("settings.records") && err.contains("none"),
        "{err}"
    );
    let err = resume(kept, false, &part).unwrap_err().to_string();
    assert!(err.contains("settings.compress"), "{err}");
    // The refusals left the run as it was: it still resumes.
    resume(kept, compress, &part).unwrap();
    assert_eq!(lines(&part, compress), lines(&reference, compress));
}

#[test]
fn shards_merge_into_the_single_run_whatever_records_they_keep() {
    let tmp = tempfile::tempdir().unwrap();
    for (kept, compress) in [(RecordsKept::Outside, true), (RecordsKept::None, false)] {
        let reference = tmp.path().join(format!("ref-{}", kept.name()));
        run(kept, compress, None, &reference);
        let dirs: Vec<PathBuf> = (1..=3)
            .map(|index| {
                let dir = tmp.path().join(format!("{}-{index}", kept.name()));
                run(kept, compress, Some(Shard { index, count: 3 }), &dir);
                dir
            })
            .collect();
        let out = tmp.path().join(format!("merged-{}", kept.name()));
        let csv = kept != RecordsKept::None;
        dtdcert::audit::merge::merge(&dirs, &out, csv, false, &Reports).unwrap();
        assert_eq!(lines(&out, compress), lines(&reference, compress));
        let mut names = vec!["run.json", "summary.json", "summary.md", "summary.html"];
        if csv {
            names.push("roots.csv");
        }
        for name in names {
            assert!(
                read(&out.join(name)) == read(&reference.join(name)),
                "{name} differs ({kept:?})"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The command line

fn dtdcert(args: &[&std::ffi::OsStr]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_dtdcert"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn bad_records_arguments_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let base = ["audit", "--model", MODEL, "--inputs", INPUTS, "--out"];
    let mut args: Vec<&std::ffi::OsStr> = base.iter().map(|a| a.as_ref()).collect();
    args.push(out.as_os_str());
    let with = |extra: &[&'static str]| {
        let mut a = args.clone();
        a.extend(extra.iter().map(std::ffi::OsStr::new));
        dtdcert(&a)
    };
    let bad = with(&["--records", "foo"]);
    assert_eq!(bad.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("--records") && stderr.contains("foo"),
        "{stderr}"
    );
    let csv = with(&["--records", "none", "--csv"]);
    assert_eq!(csv.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&csv.stderr);
    assert!(stderr.contains("--records none"), "{stderr}");
    assert!(!out.exists());

    // A finished `outside` run, then the same folder resumed with other settings.
    let ok = with(&["-q", "--explain", "0", "--records", "outside", "--compress"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    fs::write(out.join(MARKER), marker("audit", false)).unwrap();
    for (extra, field) in [
        (&["--records", "none"][..], "settings.records"),
        (&["--records", "all"], "settings.records"),
    ] {
        let mut a: Vec<&std::ffi::OsStr> = ["audit", "-q", "--resume"]
            .iter()
            .map(|s| s.as_ref())
            .collect();
        a.push(out.as_os_str());
        a.extend(extra.iter().map(std::ffi::OsStr::new));
        let refused = dtdcert(&a);
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(field), "{stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    }
    // Resumed alone, it keeps its own settings.
    let mut a: Vec<&std::ffi::OsStr> = ["audit", "-q", "--resume"]
        .iter()
        .map(|s| s.as_ref())
        .collect();
    a.push(out.as_os_str());
    assert!(dtdcert(&a).status.success());
    assert!(out.join(COMPRESSED).is_file() && !out.join(PLAIN).exists());
}

/// A compressed run that keeps only the roots outside, stopped by SIGTERM and, separately,
/// killed outright after its first checkpoint: the records on disk read as whole records,
/// and resuming gives the uninterrupted result.
#[cfg(unix)]
#[test]
fn stopped_and_killed_compressed_runs_resume_to_the_uninterrupted_result() {
    let tmp = tempfile::tempdir().unwrap();
    // Enough samples that the run outlasts its first checkpoint (written a second in) by
    // seconds even on an idle machine: the kill must land before the run completes.
    const SAMPLES: usize = 200_000;
    let args = c6_workload(tmp.path(), SAMPLES, &["--records", "outside", "--compress"]);
    let full = tmp.path().join("full");
    assert!(args("--out", &full).status().unwrap().success());
    for signal in ["-TERM", "-KILL"] {
        let dir = tmp.path().join(signal.trim_start_matches('-'));
        let child = args("--out", &dir)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // SIGTERM once the first frame is on disk; SIGKILL once a checkpoint covers some.
        if signal == "-TERM" {
            let records = dir.join(COMPRESSED);
            let started = std::time::Instant::now();
            while fs::metadata(&records).map_or(0, |m| m.len()) == 0
                && started.elapsed().as_secs() < 60
            {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        } else {
            wait_until(|| dir.join(CHECKPOINT).exists());
        }
        let sent = std::process::Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let complete = String::from_utf8(read(&dir.join(MARKER)))
            .unwrap()
            .contains("\"complete\":true");
        assert!(!complete, "the run finished before the {signal}");
        if signal == "-TERM" {
            assert_eq!(out.status.code(), Some(130), "{stderr}");
            // Stopped between chunks: the file is whole frames of whole records, and the
            // checkpoint counts them.
            let done = lines(&dir, true).len();
            assert!(done > 0 && done < SAMPLES, "{done} records");
            let checkpoint: Value = serde_json::from_slice(&read(&dir.join(CHECKPOINT))).unwrap();
            assert_eq!(checkpoint["samples_done"], done);
        }
        let resumed = args("--resume", &dir).output().unwrap();
        assert!(
            resumed.status.success(),
            "{}",
            String::from_utf8_lossy(&resumed.stderr)
        );
        assert!(
            lines(&dir, true) == lines(&full, true),
            "records differ after {signal}"
        );
        for name in ["summary.json", "summary.md", "summary.html"] {
            assert!(
                read(&dir.join(name)) == read(&full.join(name)),
                "{name} differs after {signal}"
            );
        }
        assert!(!dir.join(CHECKPOINT).exists());
    }
}
