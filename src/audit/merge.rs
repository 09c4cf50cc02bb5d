//! Merging the shards of one audit run into one results folder, identical to what a single
//! run over all samples writes (with `--compress`, the same records once decompressed).

use std::fs::{self, File};
use std::io::BufRead;
use std::path::{Path, PathBuf};

use super::records_file::{open_records, records_name, RecordsWriter};
use super::run::{write_summaries, ReportWriter, CHUNK};
use super::spec::{first_difference, identity, RunSpec};
use super::{RecordsKept, SampleRecord, Summary};
use crate::error::{Error, Result};
use crate::io::output_dir::{marker, OutputDir};
use crate::io::write_json_atomic;

/// Combines the complete shard folders of one run into the folder `out`, identical to what a
/// single run over all samples writes. `out` may not be one of the shards, and replaces a
/// finished audit run only with `force`.
pub fn merge(
    dirs: &[PathBuf],
    out: &Path,
    csv: bool,
    force: bool,
    reports: &dyn ReportWriter,
) -> Result<Summary> {
    if dirs.is_empty() {
        return Err(Error::Usage(
            "merge: name the shard folders to combine".into(),
        ));
    }
    // The same folder however it is spelled (`part-1`, `./part-1`, an absolute path).
    if let Ok(target) = out.canonicalize() {
        if let Some(dir) = dirs
            .iter()
            .find(|d| d.canonicalize().is_ok_and(|d| d == target))
        {
            return Err(Error::Usage(format!(
                "merge: --out {} is the shard {}; write the merged run to another folder",
                out.display(),
                dir.display()
            )));
        }
    }
    let mut specs = Vec::with_capacity(dirs.len());
    for dir in dirs {
        match crate::io::output_dir::marker_status(dir) {
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
        if let Some((field, a, b)) =
            first_difference(&identity(&base_value), &identity(&value), String::new())
        {
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
    // Without every neuron record, the counts are the shards' counts added up (exact: counts,
    // histograms and maxima); with them, they are counted again from the records.
    let mut summary: Option<Summary> = match base.settings.records {
        RecordsKept::All => None,
        _ => {
            let mut total: Option<Summary> = None;
            for d in &by_index {
                let path = dirs[d.expect("checked above")].join("summary.json");
                let text = fs::read_to_string(&path)
                    .map_err(|e| Error::file(&path, format!("cannot read: {e}")))?;
                let shard: Summary = serde_json::from_str(&text)
                    .map_err(|e| Error::file(&path, format!("not a summary: {e}")))?;
                match &mut total {
                    Some(t) if t.layers.len() != shard.layers.len() => {
                        return Err(Error::file(
                            &path,
                            format!(
                                "counts {} layers where the other shards count {}",
                                shard.layers.len(),
                                t.layers.len()
                            ),
                        ))
                    }
                    Some(t) => t.merge(&shard),
                    None => total = Some(shard),
                }
            }
            total
        }
    };
    let recount = summary.is_none();
    let name = records_name(base.settings.compress);
    let staging = OutputDir::prepare(out, "audit", force)?;
    let mut readers: Vec<(PathBuf, Box<dyn BufRead>)> = by_index
        .iter()
        .map(|d| {
            let path = dirs[d.expect("checked above")].join(name);
            let reader = open_records(&path)?;
            Ok((path, reader))
        })
        .collect::<Result<_>>()?;
    let records_path = staging.file(name);
    let mut writer = RecordsWriter::new(
        File::create(&records_path).map_err(|e| Error::write(&records_path, e))?,
        base.settings.compress,
    );
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
        if recount {
            summary
                .get_or_insert_with(|| Summary::new(record.layers.len()))
                .add(&record);
        }
        writer
            .line(line.trim_end_matches('\n').as_bytes())
            .map_err(|e| Error::write(&records_path, e))?;
        if (i + 1) % CHUNK == 0 {
            writer
                .end_chunk()
                .map_err(|e| Error::write(&records_path, e))?;
        }
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
    writer.sync().map_err(|e| Error::write(&records_path, e))?;
    drop(writer);
    let summary = summary.expect("a run has at least one sample");
    write_json_atomic(&staging.file("run.json"), &base)?;
    write_summaries(staging.path(), &base, &summary, csv, reports)?;
    staging.commit_marked(&marker("audit", true))?;
    Ok(summary)
}
