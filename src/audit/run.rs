//! A whole audit run: inputs in; `run.json`, `records.jsonl`, `summary.json`, `summary.md`,
//! `summary.html` (and `roots.csv`) out. Runs stream, resume after a crash, split into shards,
//! and merge.
//!
//! The results folder holds `run.json` (everything that determines the results) from the
//! start, and `records.jsonl` grows as samples finish, flushed to disk after every chunk. The
//! summaries are written, each atomically, only when every sample is done; the marker file then
//! says the run is complete. An interrupted run is continued with `--resume`: the records on
//! disk are read back (a torn last line is cut off and redone), the counts rebuilt from them,
//! and the audit goes on after the last complete record, so the final files equal those of an
//! uninterrupted run.

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::output::{
    marker, not_a_run, target_state, write_atomic, OutputDir, TargetState, MARKER,
};
use super::{AuditSettings, Engine, NamedCertificate, SampleRecord, Summary};
use crate::error::{Error, Result};
use crate::model::inputs::Inputs;
use crate::model::Model;

/// Which output each sample explains.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Targets {
    /// Each sample's top output.
    Top,
    /// The same output index for every sample.
    Index { index: usize },
    /// One index per sample, from a file.
    File {
        path: PathBuf,
        /// SHA-256 of the indices, so a resumed run can tell a changed file.
        fingerprint: String,
        #[serde(skip)]
        indices: Vec<usize>,
    },
}

impl Targets {
    /// Targets read from a file.
    pub fn from_file(path: PathBuf, indices: Vec<usize>) -> Self {
        let mut h = Sha256::new();
        for k in &indices {
            h.update((*k as u64).to_le_bytes());
        }
        Targets::File {
            path,
            fingerprint: format!("sha256:{:x}", h.finalize()),
            indices,
        }
    }

    pub fn for_sample(&self, i: usize) -> Option<usize> {
        match self {
            Targets::Top => None,
            Targets::Index { index } => Some(*index),
            Targets::File { indices, .. } => Some(indices[i]),
        }
    }

    /// Checks every index against the model's output width.
    pub fn validate(&self, outputs: usize) -> Result<()> {
        match self {
            Targets::Top => Ok(()),
            Targets::Index { index } if *index >= outputs => Err(Error::Usage(format!(
                "--explain {index} is out of range: the model has {outputs} outputs (0..{})",
                outputs - 1
            ))),
            Targets::Index { .. } => Ok(()),
            Targets::File { path, indices, .. } => match indices.iter().position(|&k| k >= outputs)
            {
                Some(pos) => Err(Error::file(
                    path,
                    format!(
                        "target [{pos}] is {} but the model has {outputs} outputs (0..{})",
                        indices[pos],
                        outputs - 1
                    ),
                )),
                None => Ok(()),
            },
        }
    }
}

/// Shard `index` of `count` (1-based): the samples `i` with `i mod count = index − 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl Shard {
    pub fn contains(&self, sample: usize) -> bool {
        sample % self.count == self.index - 1
    }
}

impl FromStr for Shard {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::Usage(format!("--shard '{s}': {why}"));
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| bad("expected K/N, for example 2/8"))?;
        let index: usize = k
            .trim()
            .parse()
            .map_err(|_| bad("K is not a whole number"))?;
        let count: usize = n
            .trim()
            .parse()
            .map_err(|_| bad("N is not a whole number"))?;
        if count == 0 {
            return Err(bad("N must be at least 1"));
        }
        if index == 0 || index > count {
            return Err(bad(&format!("K must be between 1 and N = {count}")));
        }
        Ok(Shard { index, count })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub path: PathBuf,
    pub fingerprint: String,
    pub architecture: String,
    /// The question a relation-network model answered (`--question`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<Vec<f64>>,
    /// The question's words, where `--question-text` gave them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question_text: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputsInfo {
    pub path: PathBuf,
    pub samples: usize,
    pub width: usize,
    /// SHA-256 of the input file's bytes.
    pub fingerprint: String,
}

/// Everything that determines a run's results: `run.json`. A resumed run and the shards of a
/// merge must agree on all of it (shards differ only in `shard`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    pub tool: String,
    pub version: String,
    pub model: ModelInfo,
    pub inputs: InputsInfo,
    pub targets: Targets,
    pub settings: AuditSettings,
    pub shard: Option<Shard>,
}

impl RunSpec {
    pub fn new(
        model: &Model,
        model_path: &Path,
        inputs: &Inputs,
        inputs_path: &Path,
        targets: Targets,
        settings: AuditSettings,
        shard: Option<Shard>,
    ) -> Result<Self> {
        targets.validate(model.net().output_dim())?;
        Ok(Self {
            tool: "dtdcert".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            model: ModelInfo {
                path: model_path.to_path_buf(),
                fingerprint: model.fingerprint().to_string(),
                architecture: model.net().describe(),
                question: None,
                question_text: None,
            },
            inputs: InputsInfo {
                path: inputs_path.to_path_buf(),
                samples: inputs.len(),
                width: inputs.dim(),
                fingerprint: file_fingerprint(inputs_path)?,
            },
            targets,
            settings,
            shard,
        })
    }

    /// The samples of this run, in order.
    pub fn samples(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.inputs.samples).filter(move |&i| self.shard.is_none_or(|s| s.contains(i)))
    }
}

/// SHA-256 of a file's bytes, streamed.
pub fn file_fingerprint(path: &Path) -> Result<String> {
    let mut f = File::open(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    Ok(format!("sha256:{:x}", h.finalize()))
}

/// The document written to summary.json: the run's identity, its settings, and the counts.
#[derive(Serialize)]
pub struct SummaryDocument<'a> {
    pub tool: &'static str,
    pub version: &'a str,
    pub model: &'a ModelInfo,
    pub inputs: &'a InputsInfo,
    pub rule: String,
    pub input_rule: String,
    pub targets: &'a Targets,
    pub settings: &'a AuditSettings,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    #[serde(flatten)]
    pub summary: &'a Summary,
}

impl<'a> SummaryDocument<'a> {
    pub fn new(spec: &'a RunSpec, summary: &'a Summary) -> Self {
        Self {
            tool: "dtdcert",
            version: &spec.version,
            model: &spec.model,
            inputs: &spec.inputs,
            rule: spec.settings.dtd.rule.to_string(),
            input_rule: spec.settings.dtd.rule_for(0).to_string(),
            targets: &spec.targets,
            settings: &spec.settings,
            shard: spec.shard,
            summary,
        }
    }
}

/// Output options that do not change the results.
#[derive(Clone, Copy, Debug, Default)]
pub struct OutputOptions {
    /// Show a progress bar on stderr (only when it is a terminal).
    pub progress: bool,
    /// Also write `roots.csv`.
    pub csv: bool,
}

/// Samples audited together; records of a chunk are written in sample order, then flushed.
const CHUNK: usize = 512;
/// How often records are forced to the disk.
const SYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Starts a new run in `out` (absent, empty, or a complete earlier run, which is replaced).
pub fn run(
    model: &Model,
    inputs: &Inputs,
    spec: &RunSpec,
    out: &Path,
    options: OutputOptions,
) -> Result<Summary> {
    check_fresh_target(out)?;
    let engine = Engine::new(model, &spec.settings)?;
    // Bad input must not cost an earlier run or leave a partial folder: every row is checked
    // before the folder is touched.
    let mut row = Vec::new();
    for i in spec.samples() {
        inputs.row_into(i, &mut row)?;
    }
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
    } else {
        fs::create_dir(out).map_err(|e| Error::write(out, e))?;
    }
    let json = serde_json::to_string_pretty(spec).expect("run specs serialise");
    write_atomic(&out.join("run.json"), format!("{json}\n").as_bytes())?;
    write_atomic(&out.join(MARKER), marker("audit", false).as_bytes())?;
    let records = out.join("records.jsonl");
    File::create(&records).map_err(|e| Error::write(&records, e))?;
    let mut summary = Summary::new(model.net().layers().len());
    continue_run(&engine, model, inputs, spec, out, &mut summary, 0, options)?;
    Ok(summary)
}

/// Continues the interrupted run in `dir`, which must have been started with the same spec.
pub fn resume(
    model: &Model,
    inputs: &Inputs,
    spec: &RunSpec,
    dir: &Path,
    options: OutputOptions,
) -> Result<Summary> {
    let status = super::output::marker_status(dir);
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
    let current = serde_json::to_value(spec).expect("run specs serialise");
    if let Some((field, was, now)) = first_difference(&stored, &current, String::new()) {
        return Err(Error::Usage(format!(
            "--resume {}: this run was started with {field} = {was}, not {now}; \
             resume it with the original settings or start a new run",
            dir.display()
        )));
    }
    let engine = Engine::new(model, &spec.settings)?;
    let records = dir.join("records.jsonl");
    let (mut summary, done) = scan_records(&records, spec, model.net().layers().len())?;
    if status.complete {
        // Nothing left to audit; a table asked for now is still written.
        if options.csv && !dir.join("roots.csv").exists() {
            crate::report::csv::roots_csv(&records, &dir.join("roots.csv"))?;
        }
        return Ok(summary);
    }
    continue_run(
        &engine,
        model,
        inputs,
        spec,
        dir,
        &mut summary,
        done,
        options,
    )?;
    Ok(summary)
}

/// The files an audit run writes into its folder.
const RUN_FILES: [&str; 7] = [
    MARKER,
    "run.json",
    "records.jsonl",
    "summary.json",
    "summary.md",
    "summary.html",
    "roots.csv",
];

/// Refuses an `--out` that holds something other than a complete earlier audit run, or whose
/// parent folder is missing.
fn check_fresh_target(out: &Path) -> Result<()> {
    if target_state(out)? != TargetState::Occupied {
        return Ok(());
    }
    match super::output::marker_status(out) {
        Some(s) if s.kind != "audit" => Err(Error::Usage(format!(
            "--out {}: holds a dtdcert {} run, not an audit; choose another folder",
            out.display(),
            s.kind
        ))),
        Some(s) if s.complete => Ok(()),
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

/// The first field (as a dotted path) where two JSON values differ.
fn first_difference(a: &Value, b: &Value, path: String) -> Option<(String, Value, Value)> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                first_difference(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    p,
                )
            })
        }
        _ if a == b => None,
        _ => Some((path, a.clone(), b.clone())),
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

/// Audits the samples of `spec` after the first `done`, appending to records.jsonl, then
/// writes the summaries and marks the run complete.
#[allow(clippy::too_many_arguments)]
fn continue_run(
    engine: &Engine,
    model: &Model,
    inputs: &Inputs,
    spec: &RunSpec,
    dir: &Path,
    summary: &mut Summary,
    done: usize,
    options: OutputOptions,
) -> Result<()> {
    let records_path = dir.join("records.jsonl");
    let stopped = |e: std::io::Error| {
        Error::file(
            &records_path,
            format!(
                "{e}; the run stopped and can be continued with `dtdcert audit ... --resume {}`",
                dir.display()
            ),
        )
    };
    let file = OpenOptions::new()
        .append(true)
        .open(&records_path)
        .map_err(stopped)?;
    let mut records = BufWriter::new(file);
    let todo: Vec<usize> = spec.samples().skip(done).collect();
    let total = (done + todo.len()) as u64;
    let bar = super::output::progress_bar(
        total,
        "{bar:40} {pos}/{len} samples, {per_sec}, ETA {eta}",
        options.progress,
    );
    bar.set_position(done as u64);
    let mut rows: Vec<Vec<f64>> = Vec::with_capacity(CHUNK);
    let mut last_sync = std::time::Instant::now();
    for chunk in todo.chunks(CHUNK) {
        rows.clear();
        for &i in chunk {
            rows.push(inputs.row(i)?);
        }
        let targets: Vec<Option<usize>> =
            chunk.iter().map(|&i| spec.targets.for_sample(i)).collect();
        let lines: Vec<(SampleRecord, String, Vec<NamedCertificate>)> = engine
            .audit(model, &spec.settings, chunk, &rows, &targets)
            .map_err(|e| e.in_file(&spec.inputs.path))?
            .into_par_iter()
            .map(|(record, certificates)| {
                let line = serde_json::to_string(&record).expect("records serialise");
                (record, line, certificates)
            })
            .collect();
        for (record, line, certificates) in &lines {
            // Certificates first: a record never names a file that is not there.
            for (name, cert) in certificates {
                let path = dir.join(name);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| Error::write(parent, e))?;
                }
                let text = serde_json::to_string_pretty(cert).expect("certificates serialise");
                write_atomic(&path, text.as_bytes())?;
            }
            summary.add(record);
            records.write_all(line.as_bytes()).map_err(stopped)?;
            records.write_all(b"\n").map_err(stopped)?;
        }
        records.flush().map_err(stopped)?;
        // Flushed to the OS after every chunk (enough for a killed process); forced to the disk
        // at most once a second (what a power loss can take is redone on --resume).
        if last_sync.elapsed() >= SYNC_EVERY {
            records.get_ref().sync_data().map_err(stopped)?;
            last_sync = std::time::Instant::now();
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    records.get_ref().sync_data().map_err(stopped)?;
    drop(records);
    finish(dir, spec, summary, options.csv)
}

/// Writes the summaries, then marks the run complete.
fn finish(dir: &Path, spec: &RunSpec, summary: &Summary, csv: bool) -> Result<()> {
    write_summaries(dir, spec, summary, csv)?;
    write_atomic(&dir.join(MARKER), marker("audit", true).as_bytes())
}

/// Writes summary.json, summary.md, summary.html (and roots.csv from records.jsonl), each
/// atomically.
fn write_summaries(dir: &Path, spec: &RunSpec, summary: &Summary, csv: bool) -> Result<()> {
    let doc = SummaryDocument::new(spec, summary);
    let json = serde_json::to_string_pretty(&doc).expect("summaries serialise");
    write_atomic(&dir.join("summary.json"), format!("{json}\n").as_bytes())?;
    write_atomic(
        &dir.join("summary.md"),
        crate::report::audit_markdown(&doc).as_bytes(),
    )?;
    if csv {
        crate::report::csv::roots_csv(&dir.join("records.jsonl"), &dir.join("roots.csv"))?;
    }
    write_atomic(
        &dir.join("summary.html"),
        crate::report::html::audit_html(&doc).as_bytes(),
    )
}

/// Combines the complete shard folders of one run into the folder `out`, identical to what a
/// single run over all samples writes.
pub fn merge(dirs: &[PathBuf], out: &Path, csv: bool) -> Result<Summary> {
    if dirs.is_empty() {
        return Err(Error::Usage(
            "merge: name the shard folders to combine".into(),
        ));
    }
    let mut specs = Vec::with_capacity(dirs.len());
    for dir in dirs {
        match super::output::marker_status(dir) {
            Some(s) if s.complete => {}
            Some(_) => {
                return Err(Error::Usage(format!(
                    "merge: {} is an interrupted run; finish it with --resume first",
                    dir.display()
                )))
            }
            None => {
                return Err(Error::Usage(format!(
                    "merge: {} is not a dtdcert audit folder",
                    dir.display()
                )))
            }
        }
        let path = dir.join("run.json");
        let text = fs::read_to_string(&path)
            .map_err(|e| Error::file(&path, format!("cannot read: {e}")))?;
        let spec: RunSpec = serde_json::from_str(&text)
            .map_err(|e| Error::file(&path, format!("not a run description: {e}")))?;
        specs.push(spec);
    }
    for (d, spec) in specs.iter().enumerate() {
        if let Some(s) = spec.shard {
            if s.count == 0 || s.index == 0 || s.index > s.count {
                return Err(Error::file(
                    dirs[d].join("run.json"),
                    format!("shard {}/{} is not a valid shard", s.index, s.count),
                ));
            }
            if s.count > dirs.len() {
                // Fewer folders than shards: name the first shard that is not among them.
                let given: std::collections::BTreeSet<usize> = specs
                    .iter()
                    .filter_map(|sp| sp.shard.map(|x| x.index))
                    .collect();
                let missing = (1..=s.count)
                    .find(|k| !given.contains(k))
                    .unwrap_or(s.count);
                return Err(Error::Usage(format!(
                    "merge: shard {missing}/{} is missing",
                    s.count
                )));
            }
        }
    }
    let count = match specs[0].shard {
        Some(s) => s.count,
        None => {
            return Err(Error::Usage(format!(
                "merge: {} is not a shard (no --shard)",
                dirs[0].display()
            )))
        }
    };
    let mut by_index: Vec<Option<usize>> = vec![None; count];
    let base = RunSpec {
        shard: None,
        ..specs[0].clone()
    };
    let base_value = serde_json::to_value(&base).expect("run specs serialise");
    for (d, spec) in specs.iter().enumerate() {
        let Some(shard) = spec.shard else {
            return Err(Error::Usage(format!(
                "merge: {} is not a shard (no --shard)",
                dirs[d].display()
            )));
        };
        if shard.count != count {
            return Err(Error::Usage(format!(
                "merge: {} is shard {}/{}, but {} is one of {count}",
                dirs[d].display(),
                shard.index,
                shard.count,
                dirs[0].display()
            )));
        }
        let value = serde_json::to_value(RunSpec {
            shard: None,
            ..spec.clone()
        })
        .expect("run specs serialise");
        if let Some((field, a, b)) = first_difference(&base_value, &value, String::new()) {
            return Err(Error::Usage(format!(
                "merge: {} and {} belong to different runs ({field}: {a} vs {b})",
                dirs[0].display(),
                dirs[d].display()
            )));
        }
        if let Some(other) = by_index[shard.index - 1].replace(d) {
            return Err(Error::Usage(format!(
                "merge: {} and {} are both shard {}/{count}",
                dirs[other].display(),
                dirs[d].display(),
                shard.index
            )));
        }
    }
    if let Some(missing) = by_index.iter().position(Option::is_none) {
        return Err(Error::Usage(format!(
            "merge: shard {}/{count} is missing",
            missing + 1
        )));
    }
    let staging = OutputDir::prepare(out, "audit")?;
    let mut readers: Vec<(PathBuf, BufReader<File>)> = by_index
        .iter()
        .map(|d| {
            let path = dirs[d.expect("checked above")].join("records.jsonl");
            let f =
                File::open(&path).map_err(|e| Error::file(&path, format!("cannot read: {e}")))?;
            Ok((path, BufReader::new(f)))
        })
        .collect::<Result<_>>()?;
    let records_path = staging.file("records.jsonl");
    let mut writer =
        BufWriter::new(File::create(&records_path).map_err(|e| Error::write(&records_path, e))?);
    let mut summary: Option<Summary> = None;
    let mut line = String::new();
    for i in 0..base.inputs.samples {
        let (path, reader) = &mut readers[i % count];
        line.clear();
        reader
            .read_line(&mut line)
            .map_err(|e| Error::file(&*path, format!("cannot read: {e}")))?;
        let record: SampleRecord = serde_json::from_str(&line).map_err(|e| {
            Error::file(
                &*path,
                format!("record of sample {i} is missing or damaged: {e}"),
            )
        })?;
        if record.sample != i {
            return Err(Error::file(
                &*path,
                format!(
                    "holds sample {} where sample {i} was expected",
                    record.sample
                ),
            ));
        }
        summary
            .get_or_insert_with(|| Summary::new(record.layers.len()))
            .add(&record);
        writer
            .write_all(line.as_bytes())
            .map_err(|e| Error::write(&records_path, e))?;
    }
    for (path, reader) in &mut readers {
        line.clear();
        let more = reader
            .read_line(&mut line)
            .map_err(|e| Error::file(&*path, format!("cannot read: {e}")))?;
        if more > 0 {
            return Err(Error::file(
                &*path,
                "holds more records than its shard has samples",
            ));
        }
    }
    writer.flush().map_err(|e| Error::write(&records_path, e))?;
    drop(writer);
    let summary = summary.expect("a run has at least one sample");
    let json = serde_json::to_string_pretty(&base).expect("run specs serialise");
    write_atomic(&staging.file("run.json"), format!("{json}\n").as_bytes())?;
    write_summaries(staging.path(), &base, &summary, csv)?;
    staging.commit_marked(&marker("audit", true))?;
    Ok(summary)
}
