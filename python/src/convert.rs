//! Python values to the library's settings, through the command line's own resolution (the
//! same validation and the same messages): rule strings, the domain box, targets, and inputs
//! given as a file or as the bytes of a `.npy` file (an array in memory).

use std::path::{Path, PathBuf};

use clap::ValueEnum;
use dtdcert::audit::spec::{bytes_fingerprint, Targets};
use dtdcert::cli::certify::LpArgs;
use dtdcert::cli::{parse_domain, RuleArgs};
use dtdcert::dtd::DtdSettings;
use dtdcert::error::{Error, Result};
use dtdcert::lp::SolveOptions;
use dtdcert::model::inputs::{load_inputs, load_inputs_bytes, Inputs};
use dtdcert::model::targets::load_targets_bytes;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// The name that stands for inputs given as an array, in messages and until a run is written.
pub const ARRAY: &str = "<array>";
/// The name that stands for targets given as an array.
pub const TARGETS: &str = "<targets>";

/// The rule options of `explain`, `audit` and `certify`, as the command line's flags take
/// them.
#[derive(Clone, Debug)]
pub struct Rules {
    /// `--rule`.
    pub rule: String,
    /// `--input-rule`.
    pub input_rule: Option<String>,
    /// `--layer-rule L=RULE`, one per layer given.
    pub layer_rules: Vec<String>,
    /// `--bias`.
    pub bias: String,
    /// `--stabilizer`.
    pub stabilizer: f64,
    /// `--denominator-threshold`.
    pub denominator_threshold: f64,
    /// `--initial-relevance`.
    pub initial_relevance: String,
}

impl Rules {
    /// The DTD settings, resolved as the command line resolves its flags.
    pub fn resolve(&self) -> Result<DtdSettings> {
        RuleArgs {
            rule: self.rule.clone(),
            input_rule: self.input_rule.clone(),
            bias: value_enum("bias", &self.bias)?,
            stabilizer: self.stabilizer,
            denominator_threshold: self.denominator_threshold,
            initial_relevance: value_enum("initial-relevance", &self.initial_relevance)?,
            layer_rule: self.layer_rules.clone(),
            kind_rule: Vec::new(),
            composite: None,
            low: None,
            high: None,
        }
        .resolve()
    }
}

/// One of a flag's values (`--bias ignore`, ...), or a usage error listing them.
pub fn value_enum<T: ValueEnum>(flag: &str, text: &str) -> Result<T> {
    T::from_str(text, false).map_err(|_| {
        let names: Vec<String> = T::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value())
            .map(|p| p.get_name().to_string())
            .collect();
        Error::Usage(format!(
            "--{flag} '{text}': expected one of {}",
            names.join(", ")
        ))
    })
}

/// `--domain LO:HI` as a box.
pub fn domain(text: Option<&str>) -> Result<Option<(f64, f64)>> {
    Ok(text.map(parse_domain).transpose()?.map(|b| (b.lo, b.hi)))
}

/// `--lp-time-limit` and `--lp-backend`.
pub fn lp(time_limit: f64, backend: &str) -> Result<SolveOptions> {
    LpArgs {
        lp_time_limit: time_limit,
        lp_backend: backend.to_string(),
    }
    .resolve()
}

/// Where inputs come from: a file (`.npy`/`.npz`, with an optional key), or the bytes of a
/// `.npy` file that holds an array given in memory.
pub enum Source {
    /// A file and the key of its array in an `.npz`.
    File(PathBuf, Option<String>),
    /// The bytes of a `.npy` file.
    Npy(Vec<u8>),
}

impl Source {
    /// `bytes` (an array saved with `numpy.save`) or a path.
    pub fn from_py(value: &Bound<'_, PyAny>, key: Option<String>) -> PyResult<Self> {
        if let Ok(bytes) = value.cast::<PyBytes>() {
            return Ok(Source::Npy(bytes.as_bytes().to_vec()));
        }
        Ok(Source::File(value.extract::<PathBuf>()?, key))
    }

    /// The path that names the inputs in messages and records.
    pub fn path(&self) -> &Path {
        match self {
            Source::File(path, _) => path,
            Source::Npy(_) => Path::new(ARRAY),
        }
    }

    /// The inputs, checked against the model's input width.
    pub fn load(&self, input_dim: usize) -> Result<Inputs> {
        let inputs = match self {
            Source::File(path, key) => load_inputs(path, key.as_deref())?,
            Source::Npy(bytes) => load_inputs_bytes(bytes, Path::new(ARRAY), None)?,
        };
        inputs.check_width(self.path(), input_dim)?;
        Ok(inputs)
    }

    /// SHA-256 of the inputs file's bytes (of the `.npy` bytes of an array).
    pub fn fingerprint(&self) -> Result<String> {
        match self {
            Source::File(path, _) => dtdcert::audit::spec::file_fingerprint(path),
            Source::Npy(bytes) => Ok(bytes_fingerprint(bytes)),
        }
    }

    /// The `.npy` bytes of an array (for the run's folder); `None` for a file.
    pub fn in_memory(&self) -> Option<Vec<u8>> {
        match self {
            Source::File(..) => None,
            Source::Npy(bytes) => Some(bytes.clone()),
        }
    }
}

/// Which output each input explains: `--explain K`, the `.npy` bytes of one index per input
/// (`--targets`), or each input's top output.
pub fn targets(explain: Option<usize>, npy: Option<&[u8]>, samples: usize) -> Result<Targets> {
    Ok(match (explain, npy) {
        (Some(k), _) => Targets::Index { index: k },
        (None, Some(bytes)) => Targets::from_file(
            PathBuf::from(TARGETS),
            load_targets_bytes(bytes, Path::new(TARGETS), None, samples)?,
        ),
        (None, None) => Targets::Top,
    })
}

/// The row `sample` of `inputs` (`None`: the one input they hold).
pub fn sample(inputs: &Inputs, path: &Path, sample: Option<usize>) -> Result<(usize, Vec<f64>)> {
    let i = match sample {
        Some(i) => {
            dtdcert::cli::check_sample(path, i, inputs.len())?;
            i
        }
        None if inputs.len() == 1 => 0,
        None => {
            return Err(Error::Usage(format!(
                "{}: holds {} inputs; choose one with sample=I",
                path.display(),
                inputs.len()
            )))
        }
    };
    Ok((i, inputs.row(i)?))
}
