//! A model together with the file it was read from, so that a long-lived holder of the model
//! (a program that loads it once and uses it many times) can tell when the file has changed
//! under it: results that name the file would otherwise describe weights it no longer holds.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::{LoadOptions, Model};
use crate::error::{Error, Result};

/// The length and modification time of one file, as read when the model was loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    path: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
}

impl Stamp {
    /// The file's stamp now; `None` when it cannot be read.
    fn of(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Self {
            path: path.to_path_buf(),
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }
}

/// Where a loaded model came from: its file as an absolute path, the options it was read
/// with, and the state of that file (and of the weights file a JSON description names) at
/// the time.
#[derive(Clone, Debug)]
pub struct ModelFile {
    path: PathBuf,
    options: LoadOptions,
    stamps: Vec<Stamp>,
}

impl ModelFile {
    /// Loads the model at `path` with `options` ([`Model::load_with`]) and records the state
    /// of its files. Errors name the file as `path` gives it; [`ModelFile::path`] is absolute.
    pub fn load(path: &Path, options: &LoadOptions) -> Result<(Model, Self)> {
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        // Stamped before reading: a change during the read shows as a change afterwards.
        let stamps = files_of(&absolute)
            .iter()
            .filter_map(|p| Stamp::of(p))
            .collect();
        let model = Model::load_with(path, options)?;
        Ok((
            model,
            Self {
                path: absolute,
                options: options.clone(),
                stamps,
            },
        ))
    }

    /// The model file, as an absolute path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The options the model was read with.
    pub fn options(&self) -> &LoadOptions {
        &self.options
    }

    /// Checks that the file still holds `model` (the model this file gave). Files whose
    /// length and modification time are unchanged are taken as unchanged; otherwise the file
    /// is read again and its fingerprint compared with the model's. Fails, naming the file
    /// and both fingerprints, when they differ or the file can no longer be read.
    pub fn check(&self, model: &Model) -> Result<()> {
        let now: Vec<Stamp> = files_of(&self.path)
            .iter()
            .filter_map(|p| Stamp::of(p))
            .collect();
        if now == self.stamps {
            return Ok(());
        }
        let reloaded = Model::load_with(&self.path, &self.options).map_err(|e| {
            Error::file(
                &self.path,
                format!(
                    "the model (fingerprint {}) was loaded from this file, which can no longer \
                     be read: {e}",
                    model.fingerprint()
                ),
            )
        })?;
        if reloaded.fingerprint() == model.fingerprint() {
            return Ok(());
        }
        Err(Error::file(
            &self.path,
            format!(
                "the file changed since the model was loaded: its fingerprint is now {}, the \
                 loaded model's is {}; load the model again",
                reloaded.fingerprint(),
                model.fingerprint()
            ),
        ))
    }
}

/// The files a model is read from: the file itself and, for a JSON description, the weights
/// file it names.
fn files_of(path: &Path) -> Vec<PathBuf> {
    let mut files = vec![path.to_path_buf()];
    let is_json = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    if is_json {
        let weights = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|v| v.get("weights")?.as_str().map(str::to_string));
        if let Some(weights) = weights {
            files.push(path.parent().unwrap_or(Path::new("")).join(weights));
        }
    }
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
    }

    #[test]
    fn a_changed_file_is_told_from_a_touched_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.onnx");
        let c6 = std::fs::read(fixture("examples/c6/model.onnx")).unwrap();
        std::fs::write(&path, &c6).unwrap();
        let (model, file) = ModelFile::load(&path, &LoadOptions::default()).unwrap();
        assert!(file.path().is_absolute());
        file.check(&model).unwrap();
        // The same bytes written again: a new modification time, the same network.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, &c6).unwrap();
        file.check(&model).unwrap();
        // Another network under the same name.
        std::fs::copy(fixture("tests/data/onnx/mlp_6_5_4_opset17.onnx"), &path).unwrap();
        let err = file.check(&model).unwrap_err().to_string();
        assert!(err.contains("changed since the model was loaded"), "{err}");
        assert!(err.contains(model.fingerprint()), "{err}");
        std::fs::remove_file(&path).unwrap();
        let err = file.check(&model).unwrap_err().to_string();
        assert!(err.contains("can no longer be read"), "{err}");
    }

    #[test]
    fn the_weights_of_a_description_are_watched_too() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["mlp_3_4_2.json", "mlp_3_4_2.safetensors"] {
            std::fs::copy(
                fixture(&format!("tests/data/safetensors/{name}")),
                dir.path().join(name),
            )
            .unwrap();
        }
        let json = dir.path().join("mlp_3_4_2.json");
        let (model, file) = ModelFile::load(&json, &LoadOptions::default()).unwrap();
        let weights = dir.path().join("mlp_3_4_2.safetensors");
        let mut bytes = std::fs::read(&weights).unwrap();
        // The last byte belongs to the last tensor's data: another weight, the same layout.
        *bytes.last_mut().unwrap() ^= 0x01;
        std::fs::write(&weights, &bytes).unwrap();
        let err = file.check(&model).unwrap_err().to_string();
        assert!(err.contains("changed since the model was loaded"), "{err}");
    }
}
