//! Output folders and files that never appear half-written: everything is written under a
//! temporary name beside the destination and renamed into place at the end.

use std::fs;
use std::path::{Path, PathBuf};

use super::atomic::write_file;
use crate::error::{Error, Result};

/// The file that marks a folder as a dtdcert run, so a later run may replace it.
pub const MARKER: &str = ".dtdcert-run";

/// A results folder under construction.
#[derive(Debug)]
pub struct OutputDir {
    target: PathBuf,
    staging: PathBuf,
    committed: bool,
}

impl OutputDir {
    /// Checks that `target` is absent, empty, or (with `force`) a complete earlier dtdcert
    /// run of the same `kind`, which the commit replaces as a whole; and creates the staging
    /// folder beside it.
    pub fn prepare(target: &Path, kind: &str, force: bool) -> Result<Self> {
        if target_state(target)? == TargetState::Occupied {
            match marker_status(target) {
                Some(s) if s.kind == kind && s.complete && force => {}
                Some(s) if s.kind == kind && s.complete => return Err(finished(target, kind)),
                Some(s) => {
                    return Err(Error::Usage(format!(
                        "--out {}: holds {} dtdcert {} run, not a complete {kind} run it could replace; \
                         choose another folder",
                        target.display(),
                        if s.complete { "a" } else { "an interrupted" },
                        s.kind
                    )))
                }
                None => return Err(not_a_run(target)),
            }
        }
        let name = target.file_name().ok_or_else(|| {
            Error::Usage(format!("--out {}: not a folder name", target.display()))
        })?;
        let parent = parent_of(target);
        let staging = parent.join(format!(
            ".{}.tmp-{}",
            name.to_string_lossy(),
            std::process::id()
        ));
        if staging.exists() {
            fs::remove_dir_all(&staging).map_err(|e| Error::write(&staging, e))?;
        }
        fs::create_dir(&staging).map_err(|e| Error::write(&staging, e))?;
        Ok(Self {
            target: target.to_path_buf(),
            staging,
            committed: false,
        })
    }

    /// Where to write `name` now; it reaches the destination at [`OutputDir::commit`].
    pub fn file(&self, name: &str) -> PathBuf {
        self.staging.join(name)
    }

    /// The staging folder itself.
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// Marks the folder as a complete run of `kind` and moves it into place, replacing an
    /// earlier run.
    pub fn commit(self, kind: &str) -> Result<PathBuf> {
        let text = marker(kind, true);
        self.commit_marked(&text)
    }

    /// Writes `marker_text` as the marker and moves the folder into place.
    pub fn commit_marked(mut self, marker_text: &str) -> Result<PathBuf> {
        write_file(&self.file(MARKER), marker_text.as_bytes())?;
        if self.target.exists() {
            fs::remove_dir_all(&self.target).map_err(|e| Error::write(&self.target, e))?;
        }
        fs::rename(&self.staging, &self.target).map_err(|e| Error::write(&self.target, e))?;
        self.committed = true;
        Ok(self.target.clone())
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.staging);
        }
    }
}

/// The refusal to replace the finished run of `kind` in `target` without `--force`.
pub fn finished(target: &Path, kind: &str) -> Error {
    Error::Usage(format!(
        "--out {}: holds a finished dtdcert {kind} run; give --force to replace it, or choose another folder",
        target.display()
    ))
}

/// Checks that an `--out` file can be written: its folder exists, it is no folder, and a file
/// already there (a finished result) is replaced only with `force`. The file itself is then
/// written atomically ([`super::atomic::AtomicFile`]).
pub fn check_file_target(target: &Path, force: bool) -> Result<()> {
    if target.is_dir() {
        return Err(Error::Usage(format!(
            "--out {}: is a folder; name a file",
            target.display()
        )));
    }
    if target.exists() && !force {
        return Err(Error::Usage(format!(
            "--out {}: exists; give --force to replace it, or choose another file",
            target.display()
        )));
    }
    let parent = parent_of(target);
    if !parent.is_dir() {
        return Err(Error::Usage(format!(
            "--out {}: the folder {} does not exist",
            target.display(),
            parent.display()
        )));
    }
    Ok(())
}

/// What an `--out` path holds now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TargetState {
    /// Nothing yet; its parent folder exists.
    Absent,
    /// An existing folder with nothing in it.
    Empty,
    /// An existing folder with something in it: only a complete earlier run may be replaced.
    Occupied,
}

/// The folder an `--out` path lives in.
fn parent_of(target: &Path) -> PathBuf {
    match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Checks that `target` is a folder or can become one, and says what it holds.
pub fn target_state(target: &Path) -> Result<TargetState> {
    if !target.exists() {
        let parent = parent_of(target);
        if !parent.is_dir() {
            return Err(Error::Usage(format!(
                "--out {}: the parent folder {} does not exist",
                target.display(),
                parent.display()
            )));
        }
        return Ok(TargetState::Absent);
    }
    if !target.is_dir() {
        return Err(Error::Usage(format!(
            "--out {}: exists and is not a folder",
            target.display()
        )));
    }
    let empty = fs::read_dir(target)
        .map_err(|e| Error::file(target, format!("cannot read the folder: {e}")))?
        .next()
        .is_none();
    Ok(if empty {
        TargetState::Empty
    } else {
        TargetState::Occupied
    })
}

/// The error for an occupied folder that is no dtdcert run.
pub fn not_a_run(target: &Path) -> Error {
    Error::Usage(format!(
        "--out {}: exists and is not an earlier dtdcert run; choose another folder or remove it",
        target.display()
    ))
}

/// The marker file's text for a run of `kind`.
pub fn marker(kind: &str, complete: bool) -> String {
    let m = serde_json::json!({
        "tool": "dtdcert", "version": env!("CARGO_PKG_VERSION"), "kind": kind, "complete": complete,
    });
    format!("{m}\n")
}

/// What a folder's marker says, if it has one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkerStatus {
    /// The kind of run (`audit`, `relnet train`, ...); empty when the marker names none.
    pub kind: String,
    /// Whether the run finished; `false` for an interrupted run, `true` when the marker
    /// does not say.
    pub complete: bool,
}

/// Reads `dir`'s marker; `None` when the folder is not a dtdcert run.
pub fn marker_status(dir: &Path) -> Option<MarkerStatus> {
    let text = fs::read_to_string(dir.join(MARKER)).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    if v.get("tool")?.as_str()? != "dtdcert" {
        return None;
    }
    Some(MarkerStatus {
        kind: v
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or("")
            .to_string(),
        complete: v.get("complete").and_then(|c| c.as_bool()).unwrap_or(true),
    })
}
