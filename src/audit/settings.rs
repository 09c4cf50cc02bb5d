//! The settings of an audit: everything that determines its results (rules, domain box,
//! exact or f64 arithmetic, `--certify`, LP options, the libtorch backend's device and
//! precision), serialised into every summary.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::sampling::RootSample;
use super::RecordsKept;
use crate::check::Problem;
use crate::dtd::DtdSettings;
use crate::error::{Error, Result};
use crate::lp::{Backend, SolveOptions};

/// Where roots must lie besides the region.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DomainBox {
    /// The smallest value every input coordinate may take (`LO` of `--domain LO:HI`).
    pub lo: f64,
    /// The largest value every input coordinate may take (`HI` of `--domain LO:HI`).
    pub hi: f64,
}

/// Everything that determines an audit's results; serialised into every summary.
/// The default: the default DTD settings, no domain box, f64 with exact fallback, every neuron
/// record without root coordinates, uncompressed.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditSettings {
    /// The explanation's rules and their options (`--rule`, `--bias`, ...).
    pub dtd: DtdSettings,
    /// The input domain box (`--domain LO:HI`); `None`: unbounded, unless the input rule is
    /// zB, whose box is then the domain.
    pub domain: Option<DomainBox>,
    /// Compute roots and verdicts in exact rationals throughout.
    pub exact: bool,
    /// Write root coordinates into the records.
    pub keep_points: bool,
    /// Which neuron records go into the records file (`--records`); the counts cover every
    /// root whatever it says.
    #[serde(default)]
    pub records: RecordsKept,
    /// Write the records zstd-compressed, to `records.jsonl.zst` (`--compress`).
    #[serde(default)]
    pub compress: bool,
    /// Certify a region question for roots (`--certify`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certify: Option<CertifySettings>,
    /// How linear programs are solved (`--certify`, the `nearest-valid` rule).
    #[serde(default)]
    pub lp: LpSettings,
    /// `--backend torch`: roots and verdicts on the libtorch backend, in its precision and
    /// without error bounds; `None`: the exact engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torch: Option<TorchSettings>,
    /// `--roots-per-layer K [--seed S]`: judge a uniform random draw of `K` roots of every
    /// layer of every sample; `None`: every root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_sample: Option<RootSample>,
}

/// The most multiply-adds one forward pass of a network may take (`Σ` over its layers of
/// outputs × the inputs each is connected to) for `--exact`. Exact rationals cost far more
/// than floats, and their denominators grow layer by layer; an exact audit also rebuilds one
/// root of the layer input's width per neuron, so its cost grows with this count times the
/// widths. 10^8 admits every MLP and small convolutional network (the C6 example takes a few
/// hundred) and refuses image networks such as VGG-16 (about 1.5 · 10^10 at 224×224) and
/// ResNet-50 (about 4 · 10^9), which would not finish; their audits run in f64 with error
/// bounds and fall back to rationals only where the bounds do not decide.
pub const EXACT_MULTIPLY_ADDS: u64 = 100_000_000;

/// The multiply-adds of one forward pass of `net`, as [`EXACT_MULTIPLY_ADDS`] counts them.
pub fn multiply_adds(net: &crate::model::Network) -> u64 {
    net.layers()
        .iter()
        .map(|l| l.affine.out_dim() as u64 * l.affine.max_connected() as u64)
        .fold(0u64, u64::saturating_add)
}

/// Refuses `what` (`--exact`) on a network whose forward pass takes more than
/// [`EXACT_MULTIPLY_ADDS`] multiply-adds.
pub fn check_exact_size(model: &crate::model::Model, what: &str) -> Result<()> {
    let count = multiply_adds(model.net());
    if count > EXACT_MULTIPLY_ADDS {
        return Err(Error::Usage(format!(
            "{what}: the network takes {count} multiply-adds per forward pass, more than the \
             {EXACT_MULTIPLY_ADDS} exact rational arithmetic can finish; leave out --exact"
        )));
    }
    Ok(())
}

impl AuditSettings {
    /// Refuses settings no run of `model` can have: a rule for a layer the model does not
    /// have, the nearest-valid rule (roots from linear programs) with `exact`, `exact` on a
    /// network too large for rationals ([`EXACT_MULTIPLY_ADDS`]), a draw of no roots, or a
    /// draw on the libtorch backend (which judges every root).
    pub fn check(&self, model: &crate::model::Model) -> Result<()> {
        if self.exact && self.dtd.named_rules().iter().any(|r| r.needs_lp()) {
            return Err(Error::Usage(
                "the nearest-valid rule finds roots with linear programs and cannot run with \
                 --exact"
                    .into(),
            ));
        }
        if self.exact {
            check_exact_size(model, "--exact")?;
        }
        if let Some(sample) = self.root_sample {
            if sample.roots_per_layer == 0 {
                return Err(Error::Usage(
                    "--roots-per-layer 0: judge at least 1 root per layer".into(),
                ));
            }
            if self.torch.is_some() {
                return Err(Error::Usage(
                    "--roots-per-layer runs on the exact engine; leave out --backend torch".into(),
                ));
            }
        }
        self.dtd
            .check_layers(model.net().layers().len())
            .map_err(Error::Usage)
    }

    /// The box the input-layer roots must lie in, if any.
    pub fn input_domain(&self) -> Option<DomainBox> {
        self.domain.or(self
            .dtd
            .input_rule_box()
            .map(|(lo, hi)| DomainBox { lo, hi }))
    }
}

/// `--device` and `--precision` of `--backend torch`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TorchSettings {
    /// Where libtorch computes.
    pub device: DeviceChoice,
    /// The floating-point type libtorch computes in.
    pub precision: Precision,
}

/// `--device`: where libtorch computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    /// `cpu`: the CPU.
    Cpu,
    /// `cuda`: the first CUDA device (an error where there is none).
    Cuda,
    /// `auto`: the first CUDA device where there is one, the CPU otherwise.
    Auto,
}

impl DeviceChoice {
    /// Parses `cpu`, `cuda` or `auto` (the value of `--device`).
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda),
            "auto" => Ok(DeviceChoice::Auto),
            other => Err(crate::error::Error::Usage(format!(
                "--device '{other}': expected cpu, cuda or auto"
            ))),
        }
    }

    /// The name `--device` takes and reports show.
    pub fn name(self) -> &'static str {
        match self {
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Cuda => "cuda",
            DeviceChoice::Auto => "auto",
        }
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `--precision`: the floating-point type of a libtorch run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// `f64`: double precision.
    F64,
    /// `f32`: single precision.
    F32,
}

impl Precision {
    /// Parses `f64` or `f32` (the value of `--precision`).
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "f64" => Ok(Precision::F64),
            "f32" => Ok(Precision::F32),
            other => Err(crate::error::Error::Usage(format!(
                "--precision '{other}': expected f32 or f64"
            ))),
        }
    }

    /// The name `--precision` takes and reports show.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F64 => "f64",
            Precision::F32 => "f32",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `--lp-time-limit` and `--lp-backend`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LpSettings {
    /// Seconds per linear program.
    pub time_limit: f64,
    /// microlp or highs.
    pub backend: Backend,
}

impl Default for LpSettings {
    fn default() -> Self {
        Self {
            time_limit: 60.0,
            backend: Backend::Microlp,
        }
    }
}

impl LpSettings {
    /// The solve options of every program: this backend, `time_limit` seconds per solve.
    pub fn options(&self) -> SolveOptions {
        SolveOptions {
            backend: self.backend,
            time_limit: Some(self.time_limit),
        }
    }
}

impl CertifySettings {
    /// The problem `--certify NAME` asks: `exists`, `nearest` (= `nearest-l1`), `nearest-l1`
    /// or `nearest-linf`.
    pub fn problem_named(name: &str) -> Result<Problem> {
        match name {
            "exists" => Ok(Problem::Exists),
            "nearest" | "nearest-l1" => Ok(Problem::NearestL1),
            "nearest-linf" => Ok(Problem::NearestLinf),
            other => Err(Error::Usage(format!(
                "--certify '{other}': expected exists, nearest, nearest-l1 or nearest-linf"
            ))),
        }
    }
}

/// `--certify`: which question is asked for which roots, with which LP settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CertifySettings {
    /// exists, nearest-l1 or nearest-linf.
    pub problem: Problem,
    /// Every root, not only those outside their region or domain (`--certify-all`).
    pub all: bool,
    /// The model file as an absolute path, recorded in every certificate (not in `run.json`:
    /// a run is identified by fingerprints, not by where its files are).
    #[serde(skip)]
    pub model_path: Option<PathBuf>,
    /// The inputs file as an absolute path, recorded in every certificate (not in
    /// `run.json`).
    #[serde(skip)]
    pub inputs_path: Option<PathBuf>,
}
