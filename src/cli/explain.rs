//! `dtdcert explain`: input relevances, one row per input, by train-free DTD/LRP or, with
//! `--full-backward`, by full-backward DTD with a JSON report of every layer's remainders and
//! the conservation gap. The arguments become settings here; the work is
//! [`crate::audit::explain`] (or the libtorch backend's).

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;

use super::{parse_domain, DataArgs, Outcome, RuleArgs, TargetArgs};
use crate::audit::explain::{
    full_backward_relevances, input_relevances_and_starts, start_relevances, Arithmetic,
    FullBackwardReport, ReportedModel,
};
use crate::audit::spec::Targets;
use crate::audit::TorchSettings;
use crate::dtd::full_backward::FullBackwardSettings;
use crate::dtd::{DtdSettings, InitialRelevance, Rule};
use crate::error::{Error, Result};
use crate::io::{write_npy_f64_atomic, write_npy_f64_shaped_atomic};
use crate::model::inputs::Inputs;
use crate::model::Model;

/// Compute input relevances with DTD/LRP rules.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  dtdcert explain --model examples/c6/model.onnx --inputs examples/c6/inputs.npy \\\n      --rule z+ --explain 0 --out relevance.npy\n  dtdcert explain --model examples/c6/model.onnx --inputs examples/c6/inputs.npy \\\n      --rule z+ --explain 0 --full-backward --report full_backward.json --out relevance.npy\n\n\
Writes an f64 .npy with one row of input relevances per input. With --full-backward the\n\
relevances come from full-backward DTD (every root re-evaluates the layers above it), and\n\
--report writes, per input and layer, each neuron's relevance, what it passed down, its\n\
remainder, and the conservation gap f_k(x) - sum of input relevances - sum of remainders."
)]
pub struct ExplainArgs {
    /// `--model`, `--inputs`, `--inputs-key` and how the model is read.
    #[command(flatten)]
    pub data: DataArgs,
    /// `--rule`, `--input-rule`, `--layer-rule` and the rules' numerical options.
    #[command(flatten)]
    pub rules: RuleArgs,
    /// `--explain` or `--targets`: which output is explained for each input.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Compute in exact rational arithmetic and round the result to f64 once.
    #[arg(long)]
    pub exact: bool,
    /// Full-backward DTD (the paper's Algorithm 1): expand the upper relevance function,
    /// re-evaluated at every root, instead of the relevance at the input.
    #[arg(long)]
    pub full_backward: bool,
    /// With --full-backward: also write a JSON report (per input and layer: relevances,
    /// remainders, Taylor errors, conservation gap).
    #[arg(long, value_name = "FILE", requires = "full_backward")]
    pub report: Option<PathBuf>,
    /// With --full-backward: refuse networks that may take more evaluations of the relevance
    /// recursion per input [default: 1000000].
    #[arg(long, value_name = "N", requires = "full_backward")]
    pub max_evaluations: Option<u64>,
    /// With --full-backward: a root whose pre-activation is within T·(Σ|w ã| + |b|) of zero
    /// counts as on its neuron's face, and takes the side facing the input [default: none:
    /// only an exact zero is on the face, and every side is decided on the exact value].
    #[arg(long, value_name = "T", requires = "full_backward")]
    pub face_tolerance: Option<f64>,
    /// The input domain box LO:HI for `nearest-valid` roots of layer 1 (default: unbounded, or
    /// the zB rule's box).
    #[arg(long, value_name = "LO:HI", allow_hyphen_values = true)]
    pub domain: Option<String>,
    /// `--lp-time-limit` and `--lp-backend`, for the nearest-valid rule.
    #[command(flatten)]
    pub lp: super::certify::LpArgs,
    /// `--backend`, `--device` and `--precision`.
    #[command(flatten)]
    pub backend: super::BackendArgs,
    /// With --backend torch: inputs per batch [default: 1024, fewer for wide networks, so
    /// that one layer's values for the batch stay within 2^24 numbers].
    #[arg(long, value_name = "N")]
    pub batch: Option<usize>,
    /// The output .npy file: N×features, or N×C×H×W when the model declares an image input.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Also write one PNG heatmap per input into this folder (input_00000.png, …): the
    /// relevance summed over channels, red positive, blue negative, white 0.
    #[arg(long, value_name = "DIR")]
    pub heatmap: Option<PathBuf>,
    /// Replace a finished --heatmap folder.
    #[arg(long, requires = "heatmap")]
    pub force: bool,
    /// Also write FILE (JSON, outside the results): the wall-clock seconds of reading the
    /// model and inputs (with --backend torch, also of copying the weights to the device), of
    /// computing the relevances, and of writing them.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
}

/// The phases `--profile` times, each ended by [`Phases::lap`].
struct Phases {
    started: Instant,
    last: Instant,
    seconds: Vec<(&'static str, f64)>,
}

impl Phases {
    fn start() -> Self {
        let now = Instant::now();
        Phases {
            started: now,
            last: now,
            seconds: Vec::new(),
        }
    }

    /// Ends phase `name`: the seconds since the last lap.
    fn lap(&mut self, name: &'static str) {
        let now = Instant::now();
        self.seconds
            .push((name, now.duration_since(self.last).as_secs_f64()));
        self.last = now;
    }

    /// Writes `--profile` (when asked for): the run's wall-clock seconds, the inputs explained
    /// and each phase's seconds.
    fn write(&self, args: &ExplainArgs, inputs: usize) -> Result<()> {
        let Some(path) = &args.profile else {
            return Ok(());
        };
        let mut doc = serde_json::Map::new();
        doc.insert("inputs".into(), inputs.into());
        doc.insert("wall_s".into(), self.started.elapsed().as_secs_f64().into());
        for (name, seconds) in &self.seconds {
            doc.insert(format!("{name}_s"), (*seconds).into());
        }
        crate::io::write_json_atomic(path, &doc)
    }
}

/// Writes the relevances to `--out` (in the shape of the model's declared input when it has
/// more than one axis) and the `--heatmap` folder.
fn write_relevances(args: &ExplainArgs, model: &Model, array: &ndarray::Array2<f64>) -> Result<()> {
    match model.net().input_shape().filter(|s| s.len() > 1) {
        Some(shape) => write_npy_f64_shaped_atomic(&args.out, array, shape)?,
        None => write_npy_f64_atomic(&args.out, array)?,
    }
    if let Some(dir) = &args.heatmap {
        let shape = model.net().input_shape().unwrap_or(&[]);
        crate::io::heatmap::write_heatmaps(dir, array, shape, args.force)?;
    }
    Ok(())
}

/// What `--backend`, `--device`, `--precision` and `--batch` ask for: `None` for the exact
/// engine.
fn torch_side(args: &ExplainArgs, dtd: &DtdSettings) -> Result<Option<TorchSettings>> {
    let torch = args.backend.resolve(
        &[
            ("--exact", args.exact),
            ("--full-backward", args.full_backward),
            (
                "the nearest-valid rule",
                dtd.named_rules().iter().any(Rule::needs_lp),
            ),
        ],
        &[("--batch", args.batch.is_some())],
    )?;
    if torch.is_some() && args.batch == Some(0) {
        return Err(Error::Usage("--batch must be at least 1".into()));
    }
    Ok(torch)
}

/// How the explanation computes: exactly or in f64, with LP roots for `nearest-valid`.
fn arithmetic(args: &ExplainArgs, dtd: &DtdSettings) -> Result<Arithmetic> {
    let domain = args.domain.as_deref().map(parse_domain).transpose()?;
    Arithmetic::new(
        dtd,
        args.exact,
        domain.map(|b| (b.lo, b.hi)),
        args.lp.resolve()?,
    )
}

/// The model, the inputs and the targets, checked against each other and the rules.
fn load(args: &ExplainArgs, dtd: &mut DtdSettings) -> Result<(Model, Inputs, Targets)> {
    let (model, inputs) = args.data.load()?;
    if args.exact {
        crate::audit::check_exact_size(&model, "--exact")?;
    }
    if args.full_backward {
        super::require_relu(&model, &args.data.model, "--full-backward")?;
    }
    super::fit_rules(dtd, &model)?;
    let targets = args.target.resolve(inputs.len())?;
    targets.validate(model.net().output_dim())?;
    Ok((model, inputs, targets))
}

/// Writes the input relevances of every input to `--out` (and with `--full-backward
/// --report` the full-backward report); always `Clean` when it succeeds.
pub fn run(args: ExplainArgs) -> Result<Outcome> {
    if args.out.extension().and_then(|e| e.to_str()) != Some("npy") {
        return Err(Error::Usage(format!(
            "--out {}: explain writes a NumPy array; name a .npy file",
            args.out.display()
        )));
    }
    if args.profile.as_deref() == Some(args.out.as_path()) {
        return Err(Error::Usage(format!(
            "--profile and --out name the same file {}",
            args.out.display()
        )));
    }
    let mut dtd = args.rules.resolve_with(args.domain.as_deref())?;
    if let Some(torch) = torch_side(&args, &dtd)? {
        return run_torch(&args, &mut dtd, &torch);
    }
    let how = arithmetic(&args, &dtd)?;
    if args.full_backward {
        if dtd.initial_relevance != InitialRelevance::Output {
            return Err(Error::Usage(
                "--initial-relevance applies to the train-free recursion; --full-backward \
                 expands the output's value f_k"
                    .into(),
            ));
        }
        return run_full_backward(&args, &mut dtd, how);
    }
    let mut phases = Phases::start();
    let (model, inputs, targets) = load(&args, &mut dtd)?;
    phases.lap("load");
    let (array, starts) = input_relevances_and_starts(&model, &inputs, &targets, &dtd, how)?;
    phases.lap("relevances");
    write_relevances(&args, &model, &array)?;
    phases.lap("write");
    phases.write(&args, inputs.len())?;
    let line = result_line(&args, &model, &dtd, &array, &starts)?;
    println!("{line}");
    Ok(Outcome::Clean)
}

/// `--backend torch`: the inputs a batch at a time on the device.
#[cfg(feature = "torch")]
fn run_torch(args: &ExplainArgs, dtd: &mut DtdSettings, torch: &TorchSettings) -> Result<Outcome> {
    let device = crate::torch::device(torch.device)?;
    let mut phases = Phases::start();
    let (model, inputs, targets) = load(args, dtd)?;
    let net = crate::torch::TorchNet::new(model.net(), torch.precision, device);
    phases.lap("load");
    let (array, starts) =
        crate::torch::explain::input_relevances(&net, &model, &inputs, &targets, dtd, args.batch)?;
    phases.lap("relevances");
    write_relevances(args, &model, &array)?;
    phases.lap("write");
    phases.write(args, inputs.len())?;
    let line = result_line(args, &model, dtd, &array, &starts)?;
    println!("{line}");
    Ok(Outcome::Clean)
}

#[cfg(not(feature = "torch"))]
fn run_torch(_: &ExplainArgs, _: &mut DtdSettings, _: &TorchSettings) -> Result<Outcome> {
    Err(Error::Usage(crate::audit::NO_TORCH.into()))
}

/// The one line `explain` prints: how many inputs, the rules, the largest gap between the
/// relevance each explanation starts from (`starts`) and what reached the input, and the
/// files written (`--out`, `--heatmap`).
fn result_line(
    args: &ExplainArgs,
    model: &Model,
    dtd: &DtdSettings,
    relevances: &ndarray::Array2<f64>,
    starts: &[f64],
) -> Result<String> {
    let (out, heatmap) = (&args.out, args.heatmap.as_deref());
    let largest = relevances
        .outer_iter()
        .zip(starts)
        .fold(0.0_f64, |m, (row, start)| m.max((start - row.sum()).abs()));
    let by_layer = !dtd.layer_rules.is_empty() || !dtd.kind_rules.is_empty();
    let rules = match (
        dtd.rule_for(0) == dtd.rule,
        by_layer || dtd.composite.is_some(),
    ) {
        (_, true) => format!("rules {}", dtd.resolved_text(model.net().layers().len())),
        (true, false) => format!("rule {}", dtd.rule),
        (false, false) => format!("rule {} (input layer {})", dtd.rule, dtd.rule_for(0)),
    };
    Ok(format!(
        "{} inputs, {rules}, largest |start relevance − input relevance| {largest:.3e}; relevances in {}{}",
        relevances.nrows(),
        out.display(),
        heatmap
            .map(|d| format!(", heatmaps in {}", d.display()))
            .unwrap_or_default()
    ))
}

/// The full-backward settings the arguments ask for.
fn full_backward_settings(args: &ExplainArgs) -> Result<FullBackwardSettings> {
    let defaults = FullBackwardSettings::default();
    let settings = FullBackwardSettings {
        max_evaluations: args.max_evaluations.unwrap_or(defaults.max_evaluations),
        face_tolerance: args.face_tolerance,
    };
    settings.validate().map_err(|_| {
        Error::Usage(format!(
            "--face-tolerance must be a finite number >= 0, got {}",
            args.face_tolerance.unwrap_or_default()
        ))
    })?;
    Ok(settings)
}

fn run_full_backward(
    args: &ExplainArgs,
    dtd: &mut DtdSettings,
    how: Arithmetic,
) -> Result<Outcome> {
    let settings = full_backward_settings(args)?;
    if args.report.as_deref() == Some(args.out.as_path()) {
        return Err(Error::Usage(format!(
            "--report and --out name the same file {}",
            args.out.display()
        )));
    }
    let mut phases = Phases::start();
    let (model, inputs, targets) = load(args, dtd)?;
    phases.lap("load");
    settings.check_network(model.net())?;
    let (array, samples) = full_backward_relevances(
        &model,
        &inputs,
        &targets,
        dtd,
        &settings,
        how,
        args.report.is_some(),
    )?;
    phases.lap("relevances");
    write_relevances(args, &model, &array)?;
    if let Some(path) = &args.report {
        let report = FullBackwardReport {
            tool: "dtdcert",
            version: env!("CARGO_PKG_VERSION"),
            model: ReportedModel {
                path: &args.data.model,
                fingerprint: model.fingerprint(),
                architecture: model.net().describe(),
            },
            inputs: &args.data.inputs,
            rule: dtd.rule.to_string(),
            input_rule: dtd.rule_for(0).to_string(),
            exact: args.exact,
            settings: dtd,
            full_backward: &settings,
            samples,
        };
        report.write(path)?;
    }
    phases.lap("write");
    phases.write(args, inputs.len())?;
    let starts = start_relevances(&model, &inputs, &targets, dtd)?;
    let line = result_line(args, &model, dtd, &array, &starts)?;
    println!("{line}");
    Ok(Outcome::Clean)
}
