//! What determines an audit run's results, as `run.json` records it: the model and inputs
//! (with their fingerprints), the targets, the settings and the shard.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::AuditSettings;
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
    Index {
        /// The 0-based output index (`--explain K`).
        index: usize,
    },
    /// One index per sample, from a file.
    File {
        /// The targets file (`--targets FILE`).
        path: PathBuf,
        /// SHA-256 of the indices, so a resumed run can tell a changed file.
        fingerprint: String,
        /// One 0-based output index per sample, in order (not written to `run.json`).
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

    /// The output sample `i` explains; `None`: its top output. Panics when a targets file
    /// has no entry for `i`.
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
    /// `K` of `--shard K/N`, from 1 to `count`.
    pub index: usize,
    /// `N` of `--shard K/N`, at least 1.
    pub count: usize,
}

impl Shard {
    /// Whether sample `sample` (0-based) belongs to this shard.
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

/// The model of a run, as `run.json` and the summary record it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The model file given to `--model`, as an absolute path (informative: the run is
    /// identified by the fingerprint).
    pub path: PathBuf,
    /// SHA-256 of the architecture and weights.
    pub fingerprint: String,
    /// A short description of the layer widths, such as `10-10-10-2 (ReLU after every
    /// layer)`.
    pub architecture: String,
    /// The question a relation-network model answered (`--question`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question: Option<Vec<f64>>,
    /// The question's words, where `--question-text` gave them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question_text: Option<String>,
    /// `--keep-batch-norm`: batch norm was read as a layer of its own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_batch_norm: bool,
    /// `--strip-softmax`: the Softmax computing the graph output was left out.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub strip_softmax: bool,
    /// `--split-residual`: residual additions were read as layers of their own.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub split_residual: bool,
}

/// The inputs of a run, as `run.json` and the summary record them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputsInfo {
    /// The inputs file given to `--inputs`, as an absolute path (informative: the run is
    /// identified by the fingerprint).
    pub path: PathBuf,
    /// `--inputs-key`: the array read from an .npz.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The number of inputs in the file (all of them, whatever the shard).
    pub samples: usize,
    /// The number of values per input.
    pub width: usize,
    /// SHA-256 of the input file's bytes.
    pub fingerprint: String,
}

/// Everything that determines a run's results: `run.json`. A resumed run and the shards of a
/// merge must agree on all of it (shards differ only in `shard`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    /// The writing tool's name, `dtdcert`.
    pub tool: String,
    /// The writing tool's version.
    pub version: String,
    /// The audited model.
    pub model: ModelInfo,
    /// The inputs file.
    pub inputs: InputsInfo,
    /// Which output each sample explains.
    pub targets: Targets,
    /// Everything else that determines the results.
    pub settings: AuditSettings,
    /// The shard this run covers (`--shard K/N`); `None`: every sample.
    pub shard: Option<Shard>,
}

impl RunSpec {
    /// The spec of a run of `model` over `inputs`; fails when a target is out of range for
    /// the model's outputs or the inputs file cannot be read for its fingerprint.
    pub fn new(
        model: &Model,
        model_path: &Path,
        inputs: &Inputs,
        inputs_path: &Path,
        targets: Targets,
        settings: AuditSettings,
        shard: Option<Shard>,
    ) -> Result<Self> {
        let fingerprint = file_fingerprint(inputs_path)?;
        Self::with_inputs_fingerprint(
            model,
            model_path,
            inputs,
            inputs_path,
            fingerprint,
            targets,
            settings,
            shard,
        )
    }

    /// [`RunSpec::new`] for inputs whose fingerprint is known (inputs held in memory, as
    /// [`bytes_fingerprint`] of the bytes of the `.npy` file they will be written to); fails
    /// when a target is out of range for the model's outputs.
    #[allow(clippy::too_many_arguments)]
    pub fn with_inputs_fingerprint(
        model: &Model,
        model_path: &Path,
        inputs: &Inputs,
        inputs_path: &Path,
        inputs_fingerprint: String,
        targets: Targets,
        settings: AuditSettings,
        shard: Option<Shard>,
    ) -> Result<Self> {
        targets.validate(model.net().output_dim())?;
        Ok(Self {
            tool: "dtdcert".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            model: ModelInfo {
                path: absolute(model_path),
                fingerprint: model.fingerprint().to_string(),
                architecture: model.net().describe(),
                question: None,
                question_text: None,
                keep_batch_norm: false,
                strip_softmax: false,
                split_residual: false,
            },
            inputs: InputsInfo {
                path: absolute(inputs_path),
                key: None,
                samples: inputs.len(),
                width: inputs.dim(),
                fingerprint: inputs_fingerprint,
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

/// `path` made absolute against the working folder (as given where that fails).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// `spec` as JSON without what does not identify a run: the paths of the model, inputs and
/// targets files (their fingerprints do).
pub(crate) fn identity(spec: &Value) -> Value {
    let mut value = spec.clone();
    for (outer, inner) in [("model", "path"), ("inputs", "path"), ("targets", "path")] {
        if let Some(object) = value.get_mut(outer).and_then(Value::as_object_mut) {
            object.remove(inner);
        }
    }
    value
}

/// SHA-256 of a file's bytes, streamed.
pub fn file_fingerprint(path: &Path) -> Result<String> {
    let mut f = File::open(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    let mut h = Sha256::new();
    std::io::copy(&mut f, &mut h).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    Ok(format!("sha256:{:x}", h.finalize()))
}

/// SHA-256 of bytes, written as [`file_fingerprint`] writes a file's.
pub fn bytes_fingerprint(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// The first field (as a dotted path) where two JSON values differ.
pub(crate) fn first_difference(
    a: &Value,
    b: &Value,
    path: String,
) -> Option<(String, Value, Value)> {
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
