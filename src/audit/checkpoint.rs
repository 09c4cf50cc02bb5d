//! The checkpoint of a run whose records cannot be read back into its counts
//! (`--records outside` or `none`) or cut after any line (`--compress`): `checkpoint.json`
//! holds how many samples are done, how many bytes of the records file hold their records, and
//! the counts so far. It is written, atomically, only after the records it covers are on the
//! disk, so `--resume` cuts the records file to that length and goes on from there; it is
//! removed when the run is complete.

use std::fs::{self, File, OpenOptions};
use std::io::BufRead;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::records_file::open_records;
use super::spec::RunSpec;
use super::Summary;
use crate::error::{Error, Result};
use crate::io::write_atomic;

/// The checkpoint's file name in the run's folder.
pub const CHECKPOINT: &str = "checkpoint.json";

#[derive(Serialize, Deserialize)]
struct Checkpoint {
    /// The run's samples done, in order.
    samples_done: usize,
    /// The length of the records file that holds their records.
    records_bytes: u64,
    /// Their counts.
    summary: Summary,
}

/// Records, atomically, that the first `done` samples are done, their records the first
/// `records_bytes` bytes of the records file (already on the disk), with counts `summary`.
pub(crate) fn save(dir: &Path, done: usize, records_bytes: u64, summary: &Summary) -> Result<()> {
    let json = serde_json::to_string(&Checkpoint {
        samples_done: done,
        records_bytes,
        summary: summary.clone(),
    })
    .expect("checkpoints serialise");
    write_atomic(&dir.join(CHECKPOINT), format!("{json}\n").as_bytes())
}

/// Removes the checkpoint of a run now complete.
pub(crate) fn remove(dir: &Path) -> Result<()> {
    let path = dir.join(CHECKPOINT);
    match fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::write(&path, e)),
        _ => Ok(()),
    }
}

/// The counts and the number of samples done of an interrupted run, from its checkpoint (none:
/// nothing done); cuts the records file at `records` to what the checkpoint covers and checks
/// that it holds the records of those samples, in order.
pub(crate) fn restore(
    dir: &Path,
    records: &Path,
    spec: &RunSpec,
    num_layers: usize,
) -> Result<(Summary, usize)> {
    let path = dir.join(CHECKPOINT);
    let damaged = |why: String| Error::file(&path, format!("{why}; start the run again"));
    let (summary, done, bytes) = match fs::read(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Summary::new(num_layers), 0, 0),
        Err(e) => return Err(Error::file(&path, format!("cannot read: {e}"))),
        Ok(text) => {
            let c: Checkpoint = serde_json::from_slice(&text)
                .map_err(|e| damaged(format!("not a checkpoint: {e}")))?;
            if c.summary.layers.len() != num_layers || c.summary.samples != c.samples_done as u64 {
                return Err(damaged(format!(
                    "counts of {} samples in {} layers do not fit {} samples done of a network \
                     of {num_layers} layers",
                    c.summary.samples,
                    c.summary.layers.len(),
                    c.samples_done
                )));
            }
            (c.summary, c.samples_done, c.records_bytes)
        }
    };
    if !records.exists() {
        // Interrupted before the records file was created.
        File::create(records).map_err(|e| Error::write(records, e))?;
    }
    let f = OpenOptions::new()
        .write(true)
        .open(records)
        .map_err(|e| Error::write(records, e))?;
    let len = f.metadata().map_err(|e| Error::write(records, e))?.len();
    if len < bytes {
        return Err(Error::file(
            records,
            format!(
                "holds {len} bytes, fewer than the {bytes} its checkpoint covers; the folder was \
                 damaged: start the run again"
            ),
        ));
    }
    // What follows the checkpoint's length is redone (a chunk whose checkpoint was not written).
    f.set_len(bytes).map_err(|e| Error::write(records, e))?;
    f.sync_all().map_err(|e| Error::write(records, e))?;
    drop(f);
    check_samples(records, spec, done)?;
    Ok((summary, done))
}

/// Checks that the records file holds the records of the first `done` samples of `spec`, in
/// order, and nothing else.
fn check_samples(records: &Path, spec: &RunSpec, done: usize) -> Result<()> {
    #[derive(Deserialize)]
    struct Sample {
        sample: usize,
    }
    let mut reader = open_records(records)?;
    let mut expected = spec.samples();
    let mut line = Vec::new();
    let mut n = 0;
    loop {
        n += 1;
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::file(records, format!("cannot read: {e}")))?;
        if read == 0 {
            if n - 1 != done {
                return Err(Error::file(
                    records,
                    format!(
                        "holds {} records where its checkpoint counts {done}; start the run again",
                        n - 1
                    ),
                ));
            }
            return Ok(());
        }
        let record: Sample = serde_json::from_slice(&line)
            .map_err(|e| Error::file(records, format!("line {n}: not a record: {e}")))?;
        match expected.next() {
            Some(i) if i == record.sample && n <= done => {}
            want => {
                return Err(Error::file(
                    records,
                    format!(
                        "line {n}: sample {} where {} was expected; the folder does not belong \
                         to this run",
                        record.sample,
                        want.filter(|_| n <= done)
                            .map_or("no further sample".to_string(), |i| format!("sample {i}"))
                    ),
                ))
            }
        }
    }
}
