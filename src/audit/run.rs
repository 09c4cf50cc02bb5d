//! A whole audit run: inputs in, `records.jsonl`, `summary.json` and `summary.md` out.

use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use super::output::OutputDir;
use super::{audit_sample, AuditSettings, SampleRecord, Summary};
use crate::error::{Error, Result};
use crate::model::inputs::Inputs;
use crate::model::Model;

/// Which output each sample explains.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Targets {
    /// Each sample's top output.
    Top,
    /// The same output index for every sample.
    Index { index: usize },
    /// One index per sample, from a file.
    File {
        path: PathBuf,
        #[serde(skip)]
        indices: Vec<usize>,
    },
}

impl Targets {
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
            Targets::File { path, indices } => match indices.iter().position(|&k| k >= outputs) {
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

/// What identifies a run besides its settings.
#[derive(Clone, Debug, Serialize)]
pub struct RunIdentity {
    pub model_path: PathBuf,
    pub inputs_path: PathBuf,
}

/// The document written to summary.json.
#[derive(Serialize)]
pub struct SummaryDocument<'a> {
    pub tool: &'static str,
    pub version: &'static str,
    pub model: ModelInfo,
    pub inputs: InputsInfo,
    pub rule: String,
    pub input_rule: String,
    pub targets: &'a Targets,
    pub settings: &'a AuditSettings,
    #[serde(flatten)]
    pub summary: &'a Summary,
}

#[derive(Serialize)]
pub struct ModelInfo {
    pub path: PathBuf,
    pub fingerprint: String,
    pub architecture: String,
}

#[derive(Serialize)]
pub struct InputsInfo {
    pub path: PathBuf,
    pub samples: usize,
    pub width: usize,
}

/// Samples audited together; records of a chunk are written in sample order.
const CHUNK: usize = 512;

/// Audits every input and writes the run's folder. Returns the summary.
pub fn run(
    model: &Model,
    inputs: &Inputs,
    identity: &RunIdentity,
    targets: &Targets,
    settings: &AuditSettings,
    out: &Path,
    progress: bool,
) -> Result<Summary> {
    targets.validate(model.net().output_dim())?;
    let dir = OutputDir::prepare(out)?;
    let records_path = dir.file("records.jsonl");
    let file = std::fs::File::create(&records_path).map_err(|e| Error::write(&records_path, e))?;
    let mut records = BufWriter::new(file);
    let mut summary = Summary::new(model.net().layers().len());
    let n = inputs.len();
    let show = progress && std::io::stderr().is_terminal();
    let started = Instant::now();
    let mut rows: Vec<Vec<f64>> = Vec::with_capacity(CHUNK);
    for start in (0..n).step_by(CHUNK) {
        let end = (start + CHUNK).min(n);
        rows.clear();
        for i in start..end {
            rows.push(inputs.row(i)?);
        }
        let done: Vec<(SampleRecord, String)> = rows
            .par_iter()
            .enumerate()
            .map(|(offset, x)| {
                let i = start + offset;
                let record = audit_sample(model, settings, i, x, targets.for_sample(i));
                let line = serde_json::to_string(&record).expect("records serialise");
                (record, line)
            })
            .collect();
        for (record, line) in &done {
            summary.add(record);
            writeln!(records, "{line}").map_err(|e| Error::write(&records_path, e))?;
        }
        if show {
            let secs = started.elapsed().as_secs_f64().max(1e-9);
            let rate = end as f64 / secs;
            let eta = (n - end) as f64 / rate;
            eprint!("\raudited {end}/{n} samples, {rate:.0} samples/s, ETA {eta:.0} s   ");
        }
    }
    if show {
        eprintln!();
    }
    records
        .into_inner()
        .map_err(|e| Error::write(&records_path, e.into_error()))?
        .sync_all()
        .map_err(|e| Error::write(&records_path, e))?;
    let doc = SummaryDocument {
        tool: "dtdcert",
        version: env!("CARGO_PKG_VERSION"),
        model: ModelInfo {
            path: identity.model_path.clone(),
            fingerprint: model.fingerprint().to_string(),
            architecture: model.net().describe(),
        },
        inputs: InputsInfo {
            path: identity.inputs_path.clone(),
            samples: n,
            width: inputs.dim(),
        },
        rule: settings.dtd.rule.to_string(),
        input_rule: settings.dtd.rule_for(0).to_string(),
        targets,
        settings,
        summary: &summary,
    };
    let json = serde_json::to_string_pretty(&doc).expect("summaries serialise");
    std::fs::write(dir.file("summary.json"), format!("{json}\n"))
        .map_err(|e| Error::write(dir.file("summary.json"), e))?;
    let md = crate::report::audit_markdown(&doc);
    std::fs::write(dir.file("summary.md"), md)
        .map_err(|e| Error::write(dir.file("summary.md"), e))?;
    dir.commit("audit")?;
    Ok(summary)
}
