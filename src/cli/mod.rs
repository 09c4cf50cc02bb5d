//! The command-line front end: argument structs (what the user typed) and one function per
//! subcommand that resolves them into settings and calls the library.

pub mod audit;
pub mod certify;
pub mod explain;
pub mod export_lp;
pub mod merge;
pub mod region;
pub mod relnet;
pub mod repro;

use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::audit::spec::Targets;
use crate::audit::{DeviceChoice, DomainBox, Precision, TorchSettings};
use crate::dtd::{BiasMode, Composite, DtdSettings, InitialRelevance, KindRule, LayerRule, Rule};
use crate::error::{Error, Result};
use crate::model::inputs::{load_inputs, Inputs};
use crate::model::targets::load_targets;
use crate::model::Model;

/// `--backend`, `--device` and `--precision` (audit, explain).
#[derive(Args, Debug)]
pub struct BackendArgs {
    /// Where the work runs: `exact` (this engine: f64 with error bounds and an exact
    /// fallback, or rationals with --exact) or `torch` (libtorch, a batch of inputs at a time,
    /// in floating point; in builds with the `torch` feature).
    #[arg(long, value_name = "exact|torch", default_value = "exact")]
    pub backend: String,
    /// With --backend torch: `cpu`, `cuda` (an error where there is no CUDA device) or
    /// `auto` [default: cpu].
    #[arg(long, value_name = "DEVICE")]
    pub device: Option<String>,
    /// With --backend torch: `f64` or `f32` [default: f64]. Output files are f64 either way.
    #[arg(long, value_name = "f32|f64")]
    pub precision: Option<String>,
}

impl BackendArgs {
    /// The libtorch settings asked for (`None`: the exact engine). `exact_only` lists flags
    /// (and whether each was given) that need the exact engine; `torch_only` those that apply
    /// to the libtorch backend alone.
    pub fn resolve(
        &self,
        exact_only: &[(&str, bool)],
        torch_only: &[(&str, bool)],
    ) -> Result<Option<TorchSettings>> {
        match self.backend.as_str() {
            "exact" => {
                let mut given = [
                    ("--device", self.device.is_some()),
                    ("--precision", self.precision.is_some()),
                ]
                .into_iter()
                .chain(torch_only.iter().copied());
                if let Some((flag, _)) = given.find(|(_, given)| *given) {
                    return Err(Error::Usage(format!("{flag} applies to --backend torch")));
                }
                Ok(None)
            }
            "torch" => {
                if let Some((flag, _)) = exact_only.iter().find(|(_, given)| *given) {
                    return Err(Error::Usage(format!(
                        "--backend torch computes in floating point; {flag} runs on --backend \
                         exact"
                    )));
                }
                let precision = Precision::parse(self.precision.as_deref().unwrap_or("f64"))?;
                let device = DeviceChoice::parse(self.device.as_deref().unwrap_or("cpu"))?;
                Ok(Some(TorchSettings { device, precision }))
            }
            other => Err(Error::Usage(format!(
                "--backend '{other}': expected exact or torch"
            ))),
        }
    }
}

/// What a command found: 0 nothing to report, 1 what it was asked to look for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Exit code 0: the command ran and found nothing it was asked to look for.
    Clean,
    /// Exit code 1: e.g. `audit --fail-on-invalid` met an invalid root, `certify` got no
    /// certified answer, `check-cert` rejected a certificate.
    Found,
}

/// The whole command line: one subcommand and its arguments.
#[derive(Parser, Debug)]
#[command(
    name = "dtdcert",
    version,
    about = "Exact audits of Deep Taylor Decomposition root points in ReLU networks",
    long_about = "dtdcert materialises the root points that Deep Taylor Decomposition uses, models each \
input's activation pattern as a polytope, and decides exactly whether every root lies in the \
input's linear region, where its Taylor expansion is exact.\n\nExit codes: 0 success, 1 the \
command found what it was asked to look for (see each command), 2 bad input or usage."
)]
pub struct Cli {
    /// The subcommand and its arguments.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands, each with its own argument struct.
///
/// A variant's doc comment would replace its argument struct's description in `--help`, so
/// the variants with an argument struct take their description from it.
#[derive(Subcommand, Debug)]
#[allow(missing_docs)]
pub enum Command {
    Audit(audit::AuditArgs),
    Certify(certify::CertifyArgs),
    CheckCert(certify::CheckCertArgs),
    Explain(explain::ExplainArgs),
    ExportLp(export_lp::ExportLpArgs),
    Merge(merge::MergeArgs),
    Region(region::RegionArgs),
    /// The relation-network experiments (C7): data, training, roots, the sanity check
    #[command(subcommand)]
    Relnet(relnet::RelnetCommand),
    /// The paper's small-network experiment (C6): roots outside the input's region
    #[command(subcommand)]
    Repro(repro::ReproCommand),
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Result<Outcome> {
    match cli.command {
        Command::Audit(a) => audit::run(a),
        Command::Certify(a) => certify::run(a),
        Command::CheckCert(a) => certify::run_check(a),
        Command::Explain(a) => explain::run(a),
        Command::ExportLp(a) => export_lp::run(a),
        Command::Merge(a) => merge::run(a),
        Command::Region(a) => region::run(a),
        Command::Relnet(c) => relnet::run(c),
        Command::Repro(c) => repro::run(c),
    }
}

/// The model and the inputs, shared by most commands.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// The network: an .onnx file, or a .json description with safetensors weights.
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// The inputs: .npy or .npz (f32 or f64), one row per input.
    #[arg(long, value_name = "FILE")]
    pub inputs: PathBuf,
    /// The array to use from an .npz with several arrays.
    #[arg(long, value_name = "NAME")]
    pub inputs_key: Option<String>,
    /// How the model file is read (`--keep-batch-norm`, `--question`, `--question-text`).
    #[command(flatten)]
    pub reading: ModelArgs,
}

/// How a model file becomes a network (the data commands and `check-cert`).
#[derive(Args, Debug, Clone, Default)]
pub struct ModelArgs {
    /// Keep batch norm (ONNX BatchNormalization, a relation network's) as a diagonal layer of
    /// its own instead of folding it into the layer before it (no rounding; one more layer)
    #[arg(long)]
    pub keep_batch_norm: bool,
    /// Read each residual addition as a layer of its own (kind `add`) after the layer that
    /// computes its summand, so that its rule splits relevance between the summands in
    /// proportion to their contributions (Zennit's ResNet canonizer); one more layer each
    #[arg(long)]
    pub split_residual: bool,
    /// The question a relation-network model answers, for every input: its values, comma
    /// separated (a relation network's description needs it, as does an ONNX graph with a
    /// second input; other models take none)
    #[arg(
        long,
        value_name = "V,V,...",
        value_delimiter = ',',
        allow_negative_numbers = true
    )]
    pub question: Option<Vec<f64>>,
    /// The question in words, for a relation network whose description has a question
    /// encoder (a CLEVR model of `relnet train`): its vector is computed by the encoder
    #[arg(long, value_name = "TEXT", conflicts_with = "question")]
    pub question_text: Option<String>,
    /// Leave out the Softmax that computes an ONNX graph's output: the network read ends with
    /// the logits, and relevances, roots and regions are those of the logits
    #[arg(long)]
    pub strip_softmax: bool,
    /// The most memory the network may take (weights as f64 and one sample's activations),
    /// in bytes or with a K, M or G suffix (powers of 1024); a larger model, or an ONNX layer
    /// that would take it past this, is refused before it is built. Default: the memory
    /// available (MemAvailable in /proc/meminfo; no limit where it cannot be read)
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub max_memory: Option<u64>,
}

/// `BYTES`, `BYTES K`, `M` or `G` (powers of 1024).
fn parse_bytes(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim();
    let (digits, scale) = match t.char_indices().last() {
        Some((at, c)) if c.is_ascii_alphabetic() => {
            let scale: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                _ => return Err(format!("'{text}': the suffix is K, M or G")),
            };
            (&t[..at], scale)
        }
        _ => (t, 1),
    };
    digits
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| format!("'{text}' is not a number of bytes (such as 512M or 4G)"))
}

/// The memory available now (MemAvailable in /proc/meminfo), where it can be read.
fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

impl ModelArgs {
    /// Loads `path` as these options say.
    pub fn load(&self, path: &Path) -> Result<Model> {
        let options = crate::model::LoadOptions {
            keep_batch_norm: self.keep_batch_norm,
            split_residual: self.split_residual,
            question: self.question(path)?,
            strip_softmax: self.strip_softmax,
        };
        Model::load_within(path, &options, self.max_memory.or_else(available_memory))
    }

    /// The question vector: `--question`'s values, or `--question-text` encoded by the
    /// question encoder of the relation network described in `path`.
    pub fn question(&self, path: &Path) -> Result<Option<Vec<f64>>> {
        let Some(text) = &self.question_text else {
            return Ok(self.question.clone());
        };
        if !crate::model::relnet::is_description(path) {
            return Err(Error::Usage(format!(
                "--question-text applies to relation networks with a question encoder; {} is \
                 not a relation-network description",
                path.display()
            )));
        }
        let rn = crate::model::relnet::RelationNetwork::load(path)?;
        let encoder = rn.question_encoder().ok_or_else(|| {
            Error::file(
                path,
                "this relation network has no question encoder: give the question's values \
                 with --question",
            )
        })?;
        encoder
            .encode_text(text)
            .map(Some)
            .map_err(|e| e.in_file(path))
    }
}

/// Refuses a model read from `path` with an activation other than ReLU for `what`, a part of
/// the tool that reads ReLU networks only: one line naming the file, the layer and the
/// activation.
pub fn require_relu(model: &Model, path: &Path, what: &str) -> Result<()> {
    model.net().require_relu(what).map_err(|e| e.in_file(path))
}

/// Records the kind of each of `model`'s layers in `dtd` (for `--kind-rule` and
/// `--composite`) and refuses `--layer-rule`s for layers `model` does not have.
pub fn fit_rules(dtd: &mut DtdSettings, model: &Model) -> Result<()> {
    dtd.set_layer_kinds(model.net().kinds());
    dtd.check_layers(model.net().layers().len())
        .map_err(Error::Usage)
}

impl DataArgs {
    /// Loads the model and the inputs and checks that their widths agree.
    pub fn load(&self) -> Result<(Model, Inputs)> {
        let model = self.reading.load(&self.model)?;
        let inputs = load_inputs(&self.inputs, self.inputs_key.as_deref())?;
        inputs.check_width(&self.inputs, model.net().input_dim())?;
        Ok((model, inputs))
    }
}

/// Which output to explain.
#[derive(Args, Debug, Clone)]
pub struct TargetArgs {
    /// Explain output K for every input (default: each input's top output).
    #[arg(long, value_name = "K", conflicts_with = "targets")]
    pub explain: Option<usize>,
    /// One output index per input, from an .npy/.npz of integers.
    #[arg(long, value_name = "FILE")]
    pub targets: Option<PathBuf>,
}

impl TargetArgs {
    /// The explained outputs for `samples` inputs; fails when the `--targets` file cannot be
    /// read or does not hold one output index per input.
    pub fn resolve(&self, samples: usize) -> Result<Targets> {
        Ok(match (&self.explain, &self.targets) {
            (Some(k), _) => Targets::Index { index: *k },
            (None, Some(path)) => Targets::from_file(path.clone(), load_targets(path, samples)?),
            (None, None) => Targets::Top,
        })
    }
}

/// Rules and their numerical options.
#[derive(Args, Debug, Clone)]
pub struct RuleArgs {
    /// The rule of every layer: 0, z, z+, w2, gamma:G, zb:LO:HI, epsilon:E, alphabeta:A:B, flat,
    /// nearest-valid:l1, nearest-valid:linf.
    #[arg(long, default_value = "z+", value_name = "RULE")]
    pub rule: String,
    /// The rule of the first layer (DTD prescribes w2 or zb:LO:HI at the input, z+ above).
    #[arg(long, value_name = "RULE")]
    pub input_rule: Option<String>,
    /// Whether denominators include the layer's bias (DTD's z+ ignores it).
    #[arg(long, value_enum, default_value_t = BiasMode::Ignore)]
    pub bias: BiasMode,
    /// Add EPS · sign(d) (sign(0) = +1) to every rule's denominator d but ε's, which has its
    /// own (0: none)
    #[arg(long, default_value_t = 0.0, value_name = "EPS")]
    pub stabilizer: f64,
    /// Neurons whose |denominator| is at or below this get no root.
    #[arg(long, default_value_t = 1e-5, value_name = "T")]
    pub denominator_threshold: f64,
    /// The explained output's starting relevance: its value f_k (DTD, Captum) or 1 (Zennit's
    /// one-hot `attr_output`)
    #[arg(long, value_enum, default_value_t = InitialRelevance::Output)]
    pub initial_relevance: InitialRelevance,
    /// The rule of layer L (1-based; repeatable; overrides --rule and --input-rule there)
    #[arg(long = "layer-rule", value_name = "L=RULE")]
    pub layer_rule: Vec<String>,
    /// The rule of every layer of a kind: conv, dense, pool, maxpool, batchnorm, add, other,
    /// or input (layer 1). Repeatable; overrides --composite and --rule, and is overridden by
    /// --layer-rule
    #[arg(long = "kind-rule", value_name = "KIND=RULE")]
    pub kind_rule: Vec<String>,
    /// Zennit's composite of that name: epsilon-plus, epsilon-plus-flat, epsilon-gamma-box
    /// (with --low/--high, --domain, or epsilon-gamma-box:LO:HI); overrides --rule
    #[arg(long, value_name = "NAME", allow_hyphen_values = true)]
    pub composite: Option<String>,
    /// The lowest input value, for the box of --composite epsilon-gamma-box
    #[arg(long, value_name = "LO", allow_hyphen_values = true, requires = "high")]
    pub low: Option<f64>,
    /// The highest input value, for the box of --composite epsilon-gamma-box
    #[arg(long, value_name = "HI", allow_hyphen_values = true, requires = "low")]
    pub high: Option<f64>,
}

impl RuleArgs {
    /// The DTD settings these flags ask for; fails for a rule that does not parse, a negative
    /// or non-finite `--stabilizer` or `--denominator-threshold`, or a malformed `--layer-rule`.
    pub fn resolve(&self) -> Result<DtdSettings> {
        self.resolve_with(None)
    }

    /// [`RuleArgs::resolve`] with the command's `--domain`, which gives `--composite
    /// epsilon-gamma-box` its box when `--low`/`--high` do not; fails for an unknown kind or
    /// composite, naming the valid ones.
    pub fn resolve_with(&self, domain: Option<&str>) -> Result<DtdSettings> {
        let rule: Rule = self.rule.parse()?;
        let input_rule = self
            .input_rule
            .as_deref()
            .map(str::parse::<Rule>)
            .transpose()?;
        for (name, v) in [
            ("--stabilizer", self.stabilizer),
            ("--denominator-threshold", self.denominator_threshold),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(Error::Usage(format!(
                    "{name} must be a finite number >= 0, got {v}"
                )));
            }
        }
        Ok(DtdSettings {
            rule,
            input_rule,
            bias: self.bias,
            stabilizer: self.stabilizer,
            denominator_threshold: self.denominator_threshold,
            initial_relevance: self.initial_relevance,
            layer_rules: self
                .layer_rule
                .iter()
                .map(|text| parse_layer_rule(text))
                .collect::<Result<_>>()?,
            kind_rules: self
                .kind_rule
                .iter()
                .map(|text| text.parse::<KindRule>())
                .collect::<Result<_>>()?,
            composite: self.composite_box(domain)?,
            layer_kinds: Vec::new(),
        })
    }

    /// The composite `--composite` names, with its box from `--low`/`--high` or `domain`.
    fn composite_box(&self, domain: Option<&str>) -> Result<Option<Composite>> {
        let Some(name) = &self.composite else {
            if self.low.is_some() {
                return Err(Error::Usage(
                    "--low and --high give the box of --composite epsilon-gamma-box".into(),
                ));
            }
            return Ok(None);
        };
        let given = match (self.low, self.high) {
            (Some(lo), Some(hi)) => {
                if !lo.is_finite() || !hi.is_finite() || lo > hi {
                    return Err(Error::Usage(format!(
                        "--low {lo} --high {hi}: expected finite numbers, low <= high"
                    )));
                }
                Some((lo, hi))
            }
            _ => domain.map(parse_domain).transpose()?.map(|b| (b.lo, b.hi)),
        };
        Composite::parse(name, given).map(Some)
    }
}

/// Parses `L=RULE` (1-based layer).
fn parse_layer_rule(text: &str) -> Result<LayerRule> {
    let bad = |why: String| Error::Usage(format!("--layer-rule '{text}': {why}"));
    let (layer, rule) = text
        .split_once('=')
        .ok_or_else(|| bad("expected L=RULE, e.g. 1=w2".into()))?;
    let layer: usize = layer
        .trim()
        .parse()
        .ok()
        .filter(|&l| l >= 1)
        .ok_or_else(|| bad(format!("'{layer}' is not a layer number (1, 2, ...)")))?;
    let rule: Rule = rule.trim().parse()?;
    Ok(LayerRule { layer, rule })
}

/// Parses `LO:HI`.
pub fn parse_domain(text: &str) -> Result<DomainBox> {
    let bad = || {
        Error::Usage(format!(
            "--domain '{text}': expected LO:HI with finite numbers, LO <= HI"
        ))
    };
    let (lo, hi) = text.split_once(':').ok_or_else(bad)?;
    let lo: f64 = lo.trim().parse().map_err(|_| bad())?;
    let hi: f64 = hi.trim().parse().map_err(|_| bad())?;
    if !lo.is_finite() || !hi.is_finite() || lo > hi {
        return Err(bad());
    }
    Ok(DomainBox { lo, hi })
}

/// `path` as an absolute path (relative to the working directory), as certificates record
/// their model and inputs.
pub fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|e| Error::file(path, format!("no absolute path: {e}")))
}

/// Refuses a sample index past the end of the inputs.
pub fn check_sample(path: &Path, sample: usize, samples: usize) -> Result<()> {
    if sample >= samples {
        return Err(Error::Usage(format!(
            "--sample {sample} is out of range: {} has {samples} inputs (0..{})",
            path.display(),
            samples - 1
        )));
    }
    Ok(())
}

/// The batch backend `--backend torch` runs on: the libtorch backend where this build has one.
pub fn batch_backend() -> Option<crate::audit::BatchBackend<'static>> {
    #[cfg(feature = "torch")]
    {
        Some(&crate::torch::audit::backend)
    }
    #[cfg(not(feature = "torch"))]
    {
        None
    }
}
