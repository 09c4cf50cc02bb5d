//! Output folders and files that never appear half-written: everything is written under a
//! temporary name beside the destination and renamed into place at the end.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

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
    /// Checks that `target` is absent, empty, or an earlier dtdcert run, and creates the
    /// staging folder beside it.
    pub fn prepare(target: &Path) -> Result<Self> {
        if target.exists() {
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
            if !empty && !target.join(MARKER).is_file() {
                return Err(Error::Usage(format!(
                    "--out {}: exists and is not an earlier dtdcert run; choose another folder or remove it",
                    target.display()
                )));
            }
        }
        let name = target.file_name().ok_or_else(|| {
            Error::Usage(format!("--out {}: not a folder name", target.display()))
        })?;
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !parent.is_dir() {
            return Err(Error::Usage(format!(
                "--out {}: the parent folder {} does not exist",
                target.display(),
                parent.display()
            )));
        }
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

    /// Marks the folder as a run and moves it into place, replacing an earlier run.
    pub fn commit(mut self, kind: &str) -> Result<PathBuf> {
        let marker = serde_json::json!({"tool": "dtdcert", "version": env!("CARGO_PKG_VERSION"), "kind": kind});
        write_file(&self.file(MARKER), format!("{marker}\n").as_bytes())?;
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

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = fs::File::create(path).map_err(|e| Error::write(path, e))?;
    f.write_all(bytes).map_err(|e| Error::write(path, e))?;
    f.sync_all().map_err(|e| Error::write(path, e))
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::Usage(format!("{}: not a file name", path.display())))?;
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = write_file(&tmp, bytes)
        .and_then(|()| fs::rename(&tmp, path).map_err(|e| Error::write(path, e)));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
