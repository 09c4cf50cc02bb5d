//! Files that never appear half-written: each is written under a temporary name in its
//! destination's folder, synced, and renamed over the destination.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ndarray::Array2;
use ndarray_npy::{WriteNpyError, WriteNpyExt};

use crate::error::{Error, Result};

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.writer()
        .write_all(bytes)
        .map_err(|e| Error::write(path, e))?;
    file.commit()
}

/// Writes `value` as pretty-printed JSON and a final newline at `path`, atomically.
pub fn write_json_atomic<T: serde::Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let json = serde_json::to_string_pretty(value)
        .map_err(|e| Error::write(path, io::Error::other(e.to_string())))?;
    write_atomic(path, format!("{json}\n").as_bytes())
}

/// Writes `array` as an `.npy` file at `path`, atomically (see [`AtomicFile`]).
pub fn write_npy_f64_atomic(path: &Path, array: &Array2<f64>) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    array.write_npy(file.writer()).map_err(|e| {
        let source = match e {
            WriteNpyError::Io(e) => e,
            other => io::Error::other(other.to_string()),
        };
        Error::write(path, source)
    })?;
    file.commit()
}

/// Writes the rows of `array` as an `.npy` file of shape `[rows, sample_shape…]` at `path`,
/// atomically: relevances in the shape of the input they explain. `sample_shape` must hold
/// one row's values.
pub fn write_npy_f64_shaped_atomic(
    path: &Path,
    array: &Array2<f64>,
    sample_shape: &[usize],
) -> Result<()> {
    let shape: Vec<usize> = std::iter::once(array.nrows())
        .chain(sample_shape.iter().copied())
        .collect();
    let shaped = array
        .as_standard_layout()
        .into_owned()
        .into_shape_with_order(ndarray::IxDyn(&shape))
        .map_err(|e| Error::write(path, io::Error::other(e.to_string())))?;
    let mut file = AtomicFile::create(path)?;
    shaped.write_npy(file.writer()).map_err(|e| {
        let source = match e {
            WriteNpyError::Io(e) => e,
            other => io::Error::other(other.to_string()),
        };
        Error::write(path, source)
    })?;
    file.commit()
}

/// A file written under a temporary name in its destination's folder and renamed over the
/// destination by [`AtomicFile::commit`], so the destination never holds a partial file.
/// Dropped without a commit, the temporary file is removed.
pub struct AtomicFile {
    dest: PathBuf,
    tmp: PathBuf,
    writer: Option<BufWriter<File>>,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl AtomicFile {
    /// Creates a new temporary file beside `dest` (`.NAME.PID-N.tmp`); fails with
    /// [`Error::Write`] when `dest` has no file name or the file cannot be created.
    pub fn create(dest: &Path) -> Result<Self> {
        let name = dest.file_name().ok_or_else(|| {
            Error::write(
                dest,
                io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
            )
        })?;
        let mut attempts = 0;
        loop {
            let mut tmp_name = std::ffi::OsString::from(".");
            tmp_name.push(name);
            tmp_name.push(format!(
                ".{}-{}.tmp",
                std::process::id(),
                TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            let tmp = dest.with_file_name(tmp_name);
            match File::options().write(true).create_new(true).open(&tmp) {
                Ok(file) => {
                    return Ok(Self {
                        dest: dest.to_path_buf(),
                        tmp,
                        writer: Some(BufWriter::new(file)),
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 100 => {
                    attempts += 1
                }
                Err(e) => return Err(Error::write(dest, e)),
            }
        }
    }

    /// The writer of the temporary file.
    pub fn writer(&mut self) -> &mut BufWriter<File> {
        self.writer
            .as_mut()
            .expect("the writer is only taken by commit, which consumes the file")
    }

    /// Flushes, syncs to disk and renames the temporary file over the destination.
    pub fn commit(mut self) -> Result<()> {
        let dest = self.dest.clone();
        let writer = self.writer.take().expect("commit runs once");
        let file = writer
            .into_inner()
            .map_err(|e| Error::write(&dest, e.into_error()))?;
        file.sync_all().map_err(|e| Error::write(&dest, e))?;
        drop(file);
        std::fs::rename(&self.tmp, &dest).map_err(|e| Error::write(&dest, e))?;
        self.tmp = PathBuf::new();
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            self.writer.take();
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer().flush()
    }
}

/// Writes `bytes` to `path` directly and syncs it (inside a staging folder, which is renamed as
/// a whole).
pub(crate) fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(|e| Error::write(path, e))?;
    f.write_all(bytes).map_err(|e| Error::write(path, e))?;
    f.sync_all().map_err(|e| Error::write(path, e))
}
