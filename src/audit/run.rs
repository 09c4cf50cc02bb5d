//! A whole audit run: inputs in; `run.json`, `records.jsonl` (or `records.jsonl.zst`),
//! `summary.json`, `summary.md`, `summary.html` (and `roots.csv`) out. Runs stream, resume
//! after a crash, split into shards, and merge.
//!
//! The results folder holds `run.json` (everything that determines the results) from the
//! start, and the records file grows as samples finish, handed to the operating system after
//! every chunk. The summaries are written, each atomically, only when every sample is done; the
//! marker file then says the run is complete. An interrupted run is continued with `--resume`:
//! with every neuron record in plain JSON Lines, the records on disk are read back (a torn last
//! line is cut off and redone) and the counts rebuilt from them; otherwise the run's checkpoint
//! (`checkpoint.json`) says how far it got. The audit goes on from there, so the final
//! files equal those of an uninterrupted run.
//!
//! A run can also be held in memory ([`Runner::audit`], for programs that call the library)
//! and written into a folder afterwards ([`Runner::write`]); the folder is then the one
//! [`Runner::run`] writes for the same model, inputs and settings, byte for byte.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::sync::atomic::AtomicU64;

use rayon::prelude::*;
use serde_json::Value;

use super::checkpoint::{self, CHECKPOINT};
use super::records_file::{records_name, RecordsWriter, COMPRESSED, PLAIN};
use super::spec::{first_difference, identity, RunSpec, Targets};
use super::summary::SummaryDocument;
use super::{BatchBackend, Engine, NamedCertificate, RecordsKept, SampleRecord, Summary};
use crate::error::{Error, Result};
use crate::io::output_dir::{finished, marker, not_a_run, target_state, TargetState, MARKER};
use crate::io::{write_atomic, write_json_atomic};
use crate::model::inputs::Inputs;
use crate::model::Model;

/// Output options that do not change the results.
#[derive(Clone, Copy, Debug, Default)]
pub struct OutputOptions {
    /// Show a progress bar on stderr (only when it is a terminal).
    pub progress: bool,
    /// Also write `roots.csv`.
    pub csv: bool,
    /// `--force`: a new run may replace a finished run in its folder.
    pub force: bool,
}

/// Writes the reports of a finished run (`report` implements it; the CLI connects the two):
/// the run loop produces `summary.json` and the records, a writer turns them into what people
/// read.
pub trait ReportWriter {
    /// Writes the reports of the run in `dir`, whose summary is `doc`, after `summary.json`
    /// (and `roots.csv` from `dir/records.jsonl` when `csv`), each atomically.
    fn write(&self, dir: &Path, doc: &SummaryDocument, csv: bool) -> Result<()>;

    /// Writes `out`, the per-root table of the records in `records`.
    fn roots_csv(&self, records: &Path, out: &Path) -> Result<()>;
}

/// How audit runs are carried out and written: the batch backend that `--backend torch`
/// settings need (none in a build without one), the writer of the reports, and the output
/// options. The CLI builds it.
pub struct Runner<'a> {
    /// Builds the batch auditor of `--backend torch`; `None` in a build without libtorch,
    /// where such settings are refused.
    pub backend: Option<BatchBackend<'a>>,
    /// Writes `summary.md`, `summary.html` and (with `--csv`) `roots.csv`.
    pub reports: &'a dyn ReportWriter,
    /// Progress bar and `--csv`.
    pub options: OutputOptions,
}

/// An audit run held in memory, not yet written: what [`Runner::run`] would write into its
/// folder ([`Runner::audit`] makes one, [`Runner::write`] writes it).
#[derive(Clone, Debug)]
pub struct AuditedRun {
    /// What determines the results (the paths of files held only in memory are set when the
    /// run is written).
    pub spec: RunSpec,
    /// The counts of summary.json.
    pub summary: Summary,
    /// The lines of records.jsonl, in sample order, without their line breaks.
    pub lines: Vec<String>,
    /// The certificates of `--certify`, named by their paths relative to the folder.
    pub certificates: Vec<NamedCertificate>,
    /// The run's files that exist only in memory.
    pub in_memory: InMemoryFiles,
}

/// The bytes of a run's files that exist only in memory (a network exported in memory,
/// inputs or targets given as arrays): [`Runner::write`] writes each into the run's folder,
/// as `model.onnx`, `inputs.npy` and `targets.npy`, and records it there in `run.json`.
#[derive(Clone, Debug, Default)]
pub struct InMemoryFiles {
    /// The ONNX file of the model.
    pub model_onnx: Option<Vec<u8>>,
    /// The `.npy` file of the inputs.
    pub inputs_npy: Option<Vec<u8>>,
    /// The `.npy` file of the targets.
    pub targets_npy: Option<Vec<u8>>,
}

/// Samples audited together; records of a chunk are written in sample order, then flushed
/// (with `--compress`, as one zstd frame).
pub(crate) const CHUNK: usize = 512;
/// How often records are forced to the disk.
const SYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The files an audit run writes into its folder.
const RUN_FILES: [&str; 9] = [
    MARKER,
    "run.json",
    PLAIN,
    COMPRESSED,
    CHECKPOINT,
    "summary.json",
    "summary.md",
    "summary.html",
    "roots.csv",
];

/// Refuses an `--out` that holds something other than a complete earlier audit run (that one
/// too without `force`), or whose parent folder is missing.
fn check_fresh_target(out: &Path, force: bool) -> Result<()> {
    if target_state(out)? != TargetState::Occupied {
        return Ok(());
    }
    match crate::io::output_dir::marker_status(out) {
        Some(s) if s.kind != "audit" => Err(Error::Usage(format!(
            "--out {}: holds a dtdcert {} run, not an audit; choose another folder",
            out.display(),
            s.kind
        ))),
        Some(s) if s.complete && force => Ok(()),
        Some(s) if s.complete => Err(finished(out, "audit")),
        // Interrupted before it recorded what it was: there is nothing to resume.
        Some(_) if !out.join("run.json").exists() => Ok(()),
        Some(_) => Err(Error::Usage(format!(
            "--out {}: holds an interrupted run; continue it with --resume {} (same arguments), or remove the folder",
            out.display(),
            out.display()
        ))),
        None => Err(not_a_run(out)),
    }
}

/// Reads back the complete records of an interrupted run, cuts off anything after the last
/// complete one, and returns their counts and how many there are.
fn scan_records(path: &Path, spec: &RunSpec, num_layers: usize) -> Result<(Summary, usize)> {
    if !path.exists() {
        // Interrupted before the first record file was created.
        File::create(path).map_err(|e| Error::write(path, e))?;
    }
    let file = File::open(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    let mut reader = BufReader::new(file);
    let mut summary = Summary::new(num_layers);
    let mut expected = spec.samples();
    let (mut good_bytes, mut done) = (0u64, 0usize);
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
        if read == 0 || line.last() != Some(&b'\n') {
            break; // End of file, or a line torn by the interruption.
        }
        let Ok(record) = serde_json::from_slice::<SampleRecord>(&line) else {
            break; // A damaged line: it and everything after it are redone.
        };
        match expected.next() {
            Some(i) if i == record.sample => {}
            want => {
                return Err(Error::file(
                    path,
                    format!(
                        "line {}: sample {} where {} was expected; the folder does not belong to this run",
                        done + 1,
                        record.sample,
                        want.map_or("no further sample".to_string(), |i| format!("sample {i}"))
                    ),
                ))
            }
        }
        summary.add(&record);
        good_bytes += read as u64;
        done += 1;
    }
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| Error::write(path, e))?;
    f.set_len(good_bytes).map_err(|e| Error::write(path, e))?;
    f.sync_all().map_err(|e| Error::write(path, e))?;
    Ok((summary, done))
}

impl Runner<'_> {
    /// Starts a new run in `out` (absent, empty, or with `--force` a complete earlier run,
    /// which is replaced).
    pub fn run(
        &self,
        model: &Model,
        inputs: &Inputs,
        spec: &RunSpec,
        out: &Path,
    ) -> Result<Summary> {
        check_fresh_target(out, self.options.force)?;
        let engine = Engine::new(model, &spec.settings, self.backend)?;
        // Bad input must not cost an earlier run or leave a partial folder: every row is checked
        // before the folder is touched.
        check_rows(inputs, spec)?;
        start_folder(out, spec)?;
        let records = out.join(records_name(spec.settings.compress));
        File::create(&records).map_err(|e| Error::write(&records, e))?;
        let mut summary = Summary::new(model.net().layers().len());
        self.continue_run(&engine, model, inputs, spec, out, &mut summary, 0)?;
        Ok(summary)
    }

    /// Audits every sample of `spec` in memory, adding to `done` as samples finish (another
    /// thread may read it to show progress); [`Runner::write`] writes the result as
    /// [`Runner::run`] would have. The output options play no part (nothing is shown or
    /// written). A stop request ([`crate::io::interrupt`]) ends it with
    /// [`Error::Interrupted`], naming no folder.
    pub fn audit(
        &self,
        model: &Model,
        inputs: &Inputs,
        spec: &RunSpec,
        done: &AtomicU64,
    ) -> Result<AuditedRun> {
        let engine = Engine::new(model, &spec.settings, self.backend)?;
        check_rows(inputs, spec)?;
        let todo: Vec<usize> = spec.samples().collect();
        let mut summary = Summary::new(model.net().layers().len());
        let mut lines = Vec::with_capacity(todo.len());
        let mut certificates = Vec::new();
        audit_chunks(&engine, model, inputs, spec, &todo, done, |chunk| {
            for (record, line, mut named) in chunk {
                summary.add(&record);
                lines.push(line);
                certificates.append(&mut named);
            }
            Ok(())
        })?;
        Ok(AuditedRun {
            spec: spec.clone(),
            summary,
            lines,
            certificates,
            in_memory: InMemoryFiles::default(),
        })
    }

    /// Writes an audit held in memory into `out` (absent, empty, or with `--force` a complete
    /// earlier run, which is replaced) as [`Runner::run`] writes one: `run.json` first, then
    /// the certificates, `records.jsonl`, the summaries and the marker that says the run is
    /// complete. Files the run holds only in memory are written into the folder first, and
    /// the spec names them there. Returns the spec as written.
    pub fn write(&self, run: &AuditedRun, out: &Path) -> Result<RunSpec> {
        check_fresh_target(out, self.options.force)?;
        let mut spec = run.spec.clone();
        let files = [
            (&run.in_memory.model_onnx, "model.onnx"),
            (&run.in_memory.inputs_npy, "inputs.npy"),
            (&run.in_memory.targets_npy, "targets.npy"),
        ];
        let was_there = out.exists();
        let written = (|| -> Result<()> {
            start_folder_empty(out)?;
            for (bytes, name) in files {
                if let Some(bytes) = bytes {
                    write_atomic(&out.join(name), bytes)?;
                }
            }
            let absolute = |name: &str| {
                let path = out.join(name);
                std::path::absolute(&path).unwrap_or(path)
            };
            if run.in_memory.model_onnx.is_some() {
                spec.model.path = absolute("model.onnx");
            }
            if run.in_memory.inputs_npy.is_some() {
                spec.inputs.path = absolute("inputs.npy");
            }
            if let (Some(_), Targets::File { path, .. }) =
                (&run.in_memory.targets_npy, &mut spec.targets)
            {
                *path = absolute("targets.npy");
            }
            write_spec(out, &spec)?;
            for (name, cert) in &run.certificates {
                write_certificate(out, name, cert)?;
            }
            let records = out.join(records_name(spec.settings.compress));
            let mut file = crate::io::AtomicFile::create(&records)?;
            // Chunk by chunk, as a run writes them (one zstd frame each with --compress).
            let mut writer = RecordsWriter::new(&mut file, spec.settings.compress);
            run.lines
                .chunks(CHUNK)
                .try_for_each(|chunk| {
                    chunk
                        .iter()
                        .try_for_each(|line| writer.line(line.as_bytes()))?;
                    writer.end_chunk()
                })
                .map_err(|e| Error::write(&records, e))?;
            drop(writer);
            file.commit()?;
            write_summaries(out, &spec, &run.summary, self.options.csv, self.reports)?;
            write_atomic(&out.join(MARKER), marker("audit", true).as_bytes())
        })();
        if written.is_err() && !was_there {
            // Nothing half-written is left behind where there was nothing before.
            let _ = fs::remove_dir_all(out);
        }
        written.map(|()| spec)
    }

    /// Continues the interrupted run in `dir`, which must have been started with the same spec.
    pub fn resume(
        &self,
        model: &Model,
        inputs: &Inputs,
        spec: &RunSpec,
        dir: &Path,
    ) -> Result<Summary> {
        let status = crate::io::output_dir::marker_status(dir);
        let Some(status) = status else {
            return Err(Error::Usage(format!(
                "--resume {}: not a dtdcert audit folder (no {MARKER})",
                dir.display()
            )));
        };
        let run_json = dir.join("run.json");
        let text = fs::read_to_string(&run_json)
            .map_err(|e| Error::file(&run_json, format!("cannot read: {e}")))?;
        let stored: Value = serde_json::from_str(&text)
            .map_err(|e| Error::file(&run_json, format!("not a run description: {e}")))?;
        // The paths as the run recorded them, so that its reports are those of a run never
        // interrupted.
        let recorded: RunSpec = serde_json::from_value(stored)
            .map_err(|e| Error::file(&run_json, format!("not a run description: {e}")))?;
        // Compared as this version writes it: a setting an earlier version did not record
        // reads as its default.
        let stored = serde_json::to_value(&recorded).expect("run specs serialise");
        let current = serde_json::to_value(spec).expect("run specs serialise");
        // Runs are told apart by what determines their results: the files' fingerprints, not
        // the paths they were given by (another working folder, a moved model).
        if let Some((field, was, now)) =
            first_difference(&identity(&stored), &identity(&current), String::new())
        {
            return Err(Error::Usage(format!(
                "--resume {}: this run was started with {field} = {was}, not {now}; \
             resume it with the original settings or start a new run",
                dir.display()
            )));
        }
        let mut spec = spec.clone();
        spec.model.path = recorded.model.path;
        spec.inputs.path = recorded.inputs.path;
        if let (Targets::File { path, .. }, Targets::File { path: was, .. }) =
            (&mut spec.targets, recorded.targets)
        {
            *path = was;
        }
        let spec = &spec;
        let engine = Engine::new(model, &spec.settings, self.backend)?;
        let records = dir.join(records_name(spec.settings.compress));
        let layers = model.net().layers().len();
        if status.complete && !rebuilt_from_records(spec) {
            let summary = finished_summary(dir)?;
            if self.options.csv && !dir.join("roots.csv").exists() {
                self.reports.roots_csv(&records, &dir.join("roots.csv"))?;
            }
            return Ok(summary);
        }
        let (mut summary, done) = if rebuilt_from_records(spec) {
            scan_records(&records, spec, layers)?
        } else {
            checkpoint::restore(dir, &records, spec, layers)?
        };
        if status.complete {
            // Nothing left to audit; a table asked for now is still written.
            if self.options.csv && !dir.join("roots.csv").exists() {
                self.reports.roots_csv(&records, &dir.join("roots.csv"))?;
            }
            return Ok(summary);
        }
        self.continue_run(&engine, model, inputs, spec, dir, &mut summary, done)?;
        Ok(summary)
    }

    /// Audits the samples of `spec` after the first `done`, appending to records.jsonl, then
    /// writes the summaries and marks the run complete.
    #[allow(clippy::too_many_arguments)]
    fn continue_run(
        &self,
        engine: &Engine,
        model: &Model,
        inputs: &Inputs,
        spec: &RunSpec,
        dir: &Path,
        summary: &mut Summary,
        done: usize,
    ) -> Result<()> {
        let records_path = dir.join(records_name(spec.settings.compress));
        let checkpoints = !rebuilt_from_records(spec);
        let stopped = |e: std::io::Error| {
            Error::file(
                &records_path,
                format!(
                    "{e}; the run stopped and can be continued with `dtdcert audit --resume {}`",
                    dir.display()
                ),
            )
        };
        let file = OpenOptions::new()
            .append(true)
            .open(&records_path)
            .map_err(stopped)?;
        let mut records = RecordsWriter::new(file, spec.settings.compress);
        let todo: Vec<usize> = spec.samples().skip(done).collect();
        let total = (done + todo.len()) as u64;
        let bar = crate::io::progress_bar(
            total,
            "{bar:40} {pos}/{len} samples, {per_sec}, ETA {eta}",
            self.options.progress,
        );
        bar.set_position(done as u64);
        let mut last_sync = std::time::Instant::now();
        let interrupted = || Error::Interrupted {
            dir: dir.to_path_buf(),
        };
        let mut finished = done;
        // The records written so far forced to the disk, and then (where the records cannot
        // be read back into the counts) the checkpoint that covers them.
        let sync = |records: &mut RecordsWriter, summary: &Summary, finished: usize| {
            records.sync().map_err(stopped)?;
            if checkpoints {
                let bytes = records.written_len().map_err(stopped)?;
                checkpoint::save(dir, finished, bytes, summary)?;
            }
            Ok::<(), Error>(())
        };
        let audited = audit_chunks(
            engine,
            model,
            inputs,
            spec,
            &todo,
            &AtomicU64::new(0),
            |chunk| {
                for (record, line, certificates) in &chunk {
                    // Certificates first: a record never names a file that is not there.
                    for (name, cert) in certificates {
                        write_certificate(dir, name, cert)?;
                    }
                    summary.add(record);
                    records.line(line.as_bytes()).map_err(stopped)?;
                }
                records.end_chunk().map_err(stopped)?;
                finished += chunk.len();
                // Flushed to the OS after every chunk (enough for a killed process); forced to
                // the disk at most once a second (what a power loss can take is redone on
                // --resume).
                if last_sync.elapsed() >= SYNC_EVERY {
                    sync(&mut records, summary, finished)?;
                    last_sync = std::time::Instant::now();
                }
                bar.inc(chunk.len() as u64);
                Ok(())
            },
        );
        // Stopped between chunks or during one (whose records are then not written): what is
        // in the records file is complete, flushed and synced, and --resume continues it.
        if let Err(Error::Interrupted { .. }) = audited {
            bar.abandon();
            sync(&mut records, summary, finished)?;
            return Err(interrupted());
        }
        audited?;
        bar.finish_and_clear();
        records.sync().map_err(stopped)?;
        drop(records);
        write_summaries(dir, spec, summary, self.options.csv, self.reports)?;
        write_atomic(&dir.join(MARKER), marker("audit", true).as_bytes())?;
        checkpoint::remove(dir)
    }
}

/// Whether a run's counts can be rebuilt from its records file: every neuron record, in plain
/// JSON Lines that a torn last line can be cut from. Other runs keep a checkpoint.
fn rebuilt_from_records(spec: &RunSpec) -> bool {
    spec.settings.records == RecordsKept::All && !spec.settings.compress
}

/// The counts of a complete run, from its summary.json.
fn finished_summary(dir: &Path) -> Result<Summary> {
    let path = dir.join("summary.json");
    let text =
        fs::read_to_string(&path).map_err(|e| Error::file(&path, format!("cannot read: {e}")))?;
    serde_json::from_str(&text).map_err(|e| Error::file(&path, format!("not a summary: {e}")))
}

/// The records of chunk of samples: each record with its line of records.jsonl and its
/// certificates.
type Chunk = Vec<(SampleRecord, String, Vec<NamedCertificate>)>;

/// Audits the samples `todo` of `spec` a chunk at a time, in parallel within a chunk, and
/// hands each chunk's records to `sink` in sample order; `done` counts finished samples.
/// A stop request ends it between samples with [`Error::Interrupted`] (naming no folder).
fn audit_chunks(
    engine: &Engine,
    model: &Model,
    inputs: &Inputs,
    spec: &RunSpec,
    todo: &[usize],
    done: &AtomicU64,
    mut sink: impl FnMut(Chunk) -> Result<()>,
) -> Result<()> {
    let mut rows: Vec<Vec<f64>> = Vec::with_capacity(CHUNK);
    for chunk in todo.chunks(CHUNK) {
        if crate::io::interrupt::requested() {
            return Err(Error::Interrupted {
                dir: Default::default(),
            });
        }
        rows.clear();
        for &i in chunk {
            rows.push(inputs.row(i)?);
        }
        let targets: Vec<Option<usize>> =
            chunk.iter().map(|&i| spec.targets.for_sample(i)).collect();
        let audited = engine
            .audit_counted(model, &spec.settings, chunk, &rows, &targets, done)
            .map_err(|e| match e {
                e @ Error::Interrupted { .. } => e,
                other => other.in_file(&spec.inputs.path),
            })?;
        let lines: Chunk = audited
            .into_par_iter()
            .map(|(record, certificates)| {
                let line = match spec.settings.records {
                    RecordsKept::All => serde_json::to_string(&record),
                    kept => serde_json::to_string(&record.kept(kept)),
                }
                .expect("records serialise");
                (record, line, certificates)
            })
            .collect();
        sink(lines)?;
    }
    Ok(())
}

/// Reads every row of the run's samples, so that bad input is refused before any work.
fn check_rows(inputs: &Inputs, spec: &RunSpec) -> Result<()> {
    let mut row = Vec::new();
    for i in spec.samples() {
        inputs.row_into(i, &mut row)?;
    }
    Ok(())
}

/// Makes `out` ready for a new run: created, or (a complete earlier run there, `--force`
/// given) marked unfinished and emptied of that run's files.
fn start_folder_empty(out: &Path) -> Result<()> {
    if out.exists() {
        // The folder is marked unfinished before anything of the earlier run goes, so an
        // interruption never leaves a folder that looks complete. Only the files of the earlier
        // run go; anything else the folder holds (the model, say) stays.
        write_atomic(&out.join(MARKER), marker("audit", false).as_bytes())?;
        for name in &RUN_FILES[1..] {
            let path = out.join(name);
            if path.exists() {
                fs::remove_file(&path).map_err(|e| Error::write(&path, e))?;
            }
        }
        Ok(())
    } else {
        fs::create_dir(out).map_err(|e| Error::write(out, e))
    }
}

/// [`start_folder_empty`], then `run.json` and the marker of an unfinished run.
fn start_folder(out: &Path, spec: &RunSpec) -> Result<()> {
    start_folder_empty(out)?;
    write_spec(out, spec)
}

/// Writes `run.json`, then the marker of an unfinished run.
fn write_spec(out: &Path, spec: &RunSpec) -> Result<()> {
    write_json_atomic(&out.join("run.json"), spec)?;
    write_atomic(&out.join(MARKER), marker("audit", false).as_bytes())
}

/// Writes a certificate at `name`, relative to the folder `dir`, creating its folder.
fn write_certificate(dir: &Path, name: &str, cert: &crate::check::Certificate) -> Result<()> {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| Error::write(parent, e))?;
    }
    let text = serde_json::to_string_pretty(cert).expect("certificates serialise");
    write_atomic(&path, text.as_bytes())
}

/// Writes summary.json, then the reports (`reports`), each atomically.
pub(crate) fn write_summaries(
    dir: &Path,
    spec: &RunSpec,
    summary: &Summary,
    csv: bool,
    reports: &dyn ReportWriter,
) -> Result<()> {
    let doc = SummaryDocument::new(spec, summary);
    write_json_atomic(&dir.join("summary.json"), &doc)?;
    reports.write(dir, &doc, csv)
}
