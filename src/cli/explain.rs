//! `dtdcert explain`: input relevances, one row per input, by train-free DTD/LRP or, with
//! `--full-backward`, by full-backward DTD with a JSON report of every layer's remainders and
//! the conservation gap.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Args;
use ndarray::Array2;
use rayon::prelude::*;
use serde::Serialize;

use super::{parse_domain, DataArgs, Outcome, RuleArgs, TargetArgs};
use crate::audit::TorchSettings;
use crate::dtd::full_backward::{
    full_backward, Expansion, FullBackward, FullBackwardSettings, RootFinder, Rootless, RuleRoots,
};
use crate::dtd::{explain, DtdSettings, InitialRelevance, Rule};
use crate::error::{Error, Result};
use crate::exact::{Rational, Scalar};
use crate::io::{write_npy_f64_atomic, AtomicFile};
use crate::lp::nearest_valid::{explain_valid, ValidRoots};
use crate::lp::SolveOptions;
use crate::model::forward::{argmax, forward};
use crate::model::{Model, Network};

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
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub rules: RuleArgs,
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
    /// counts as on its neuron's face [default: 1e-9].
    #[arg(long, value_name = "T", requires = "full_backward")]
    pub face_tolerance: Option<f64>,
    /// The input domain box LO:HI for `nearest-valid` roots of layer 1 (default: unbounded, or
    /// the zB rule's box).
    #[arg(long, value_name = "LO:HI", allow_hyphen_values = true)]
    pub domain: Option<String>,
    #[command(flatten)]
    pub lp: super::certify::LpArgs,
    #[command(flatten)]
    pub backend: super::BackendArgs,
    /// With --backend torch: inputs per batch [default: 1024, fewer for wide networks, so
    /// that one layer's values for the batch stay within 2^24 numbers].
    #[arg(long, value_name = "N")]
    pub batch: Option<usize>,
    /// The output .npy file.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
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

/// The LP side of an explanation: only the `nearest-valid` rule uses it.
struct LpSide {
    input_box: Option<(f64, f64)>,
    opts: SolveOptions,
}

fn lp_side(args: &ExplainArgs, dtd: &DtdSettings) -> Result<Option<LpSide>> {
    if !dtd.named_rules().iter().any(Rule::needs_lp) {
        return Ok(None);
    }
    if args.exact {
        return Err(Error::Usage(
            "the nearest-valid rule finds roots with linear programs and cannot run with --exact"
                .into(),
        ));
    }
    let input_box = match args.domain.as_deref().map(parse_domain).transpose()? {
        Some(b) => Some((b.lo, b.hi)),
        None => dtd.input_rule_box(),
    };
    Ok(Some(LpSide {
        input_box,
        opts: args.lp.resolve()?,
    }))
}

pub fn run(args: ExplainArgs) -> Result<Outcome> {
    let dtd = args.rules.resolve()?;
    if let Some(torch) = torch_side(&args, &dtd)? {
        return run_torch(&args, &dtd, &torch);
    }
    let lp = lp_side(&args, &dtd)?;
    if args.full_backward {
        if dtd.initial_relevance != InitialRelevance::Output {
            return Err(Error::Usage(
                "--initial-relevance applies to the train-free recursion; --full-backward \
                 expands the output's value f_k"
                    .into(),
            ));
        }
        return run_full_backward(&args, &dtd, lp.as_ref());
    }
    let (model, inputs) = args.data.load()?;
    super::check_layer_rules(&dtd, &model)?;
    let targets = args.target.resolve(inputs.len())?;
    targets.validate(model.net().output_dim())?;
    let n = inputs.len();
    let d = model.net().input_dim();
    let mut flat: Vec<f64> = Vec::with_capacity(n * d);
    // Rows are converted a chunk at a time, so the inputs are never held twice.
    for start in (0..n).step_by(CHUNK) {
        let end = (start + CHUNK).min(n);
        let rows: Vec<Vec<f64>> = (start..end).map(|i| inputs.row(i)).collect::<Result<_>>()?;
        let relevances: Vec<Vec<f64>> = rows
            .par_iter()
            .enumerate()
            .map(|(offset, x)| {
                relevance_row(
                    &model,
                    &dtd,
                    x,
                    targets.for_sample(start + offset),
                    args.exact,
                    lp.as_ref(),
                )
            })
            .collect();
        flat.extend(relevances.into_iter().flatten());
    }
    let array = Array2::from_shape_vec((n, d), flat).expect("one row of width d per input");
    write_npy_f64_atomic(&args.out, &array)?;
    Ok(Outcome::Clean)
}

const CHUNK: usize = 1024;

/// `--backend torch`: the inputs a batch at a time on the device.
#[cfg(feature = "torch")]
fn run_torch(args: &ExplainArgs, dtd: &DtdSettings, torch: &TorchSettings) -> Result<Outcome> {
    use crate::torch::{Precision, TorchNet};
    let device = crate::torch::device(&torch.device)?;
    let (model, inputs) = args.data.load()?;
    super::check_layer_rules(dtd, &model)?;
    let targets = args.target.resolve(inputs.len())?;
    targets.validate(model.net().output_dim())?;
    let precision = Precision::parse(&torch.precision)?;
    let net = TorchNet::new(model.net(), precision, device);
    let n = inputs.len();
    let d = model.net().input_dim();
    let batch = args
        .batch
        .unwrap_or_else(|| crate::torch::default_batch(model.net()));
    let mut flat: Vec<f64> = Vec::with_capacity(n * d);
    for start in (0..n).step_by(batch) {
        let end = (start + batch).min(n);
        let mut rows: Vec<f64> = Vec::with_capacity((end - start) * d);
        for i in start..end {
            rows.extend(inputs.row(i)?);
        }
        let wanted: Vec<Option<usize>> = (start..end).map(|i| targets.for_sample(i)).collect();
        let relevances = net.explain(&net.input(&rows, end - start), &wanted, dtd)?;
        flat.extend(crate::torch::to_f64(&relevances.lower[0]));
    }
    let array = Array2::from_shape_vec((n, d), flat).expect("one row of width d per input");
    write_npy_f64_atomic(&args.out, &array)?;
    Ok(Outcome::Clean)
}

#[cfg(not(feature = "torch"))]
fn run_torch(_: &ExplainArgs, _: &DtdSettings, _: &TorchSettings) -> Result<Outcome> {
    Err(Error::Usage(crate::audit::NO_TORCH.into()))
}

/// Input relevances of one input, in f64 or computed exactly and rounded once.
fn relevance_row(
    model: &Model,
    dtd: &DtdSettings,
    x: &[f64],
    target: Option<usize>,
    exact: bool,
    lp: Option<&LpSide>,
) -> Vec<f64> {
    if let Some(lp) = lp {
        let trace = forward(model.net(), x);
        let k = target.unwrap_or_else(|| argmax(trace.output()));
        return explain_valid(model, x, &trace, dtd, k, lp.input_box, lp.opts)
            .input_relevance()
            .to_vec();
    }
    if exact {
        let xr: Vec<Rational> = x.iter().map(|&v| Rational::from_f64(v)).collect();
        let trace = forward(model.exact(), &xr);
        let out: Vec<f64> = trace.output().iter().map(Scalar::to_f64).collect();
        let k = target.unwrap_or_else(|| argmax(&out));
        explain(model.exact(), &trace, dtd, k, false)
            .input_relevance()
            .iter()
            .map(Scalar::to_f64)
            .collect()
    } else {
        let trace = forward(model.net(), x);
        let k = target.unwrap_or_else(|| argmax(trace.output()));
        explain(model.net(), &trace, dtd, k, false)
            .input_relevance()
            .to_vec()
    }
}

/// The full-backward settings the arguments ask for.
fn full_backward_settings(args: &ExplainArgs) -> Result<FullBackwardSettings> {
    let defaults = FullBackwardSettings::default();
    let settings = FullBackwardSettings {
        max_evaluations: args.max_evaluations.unwrap_or(defaults.max_evaluations),
        face_tolerance: args.face_tolerance.unwrap_or(defaults.face_tolerance),
    };
    settings.validate().map_err(|_| {
        Error::Usage(format!(
            "--face-tolerance must be a finite number >= 0, got {}",
            settings.face_tolerance
        ))
    })?;
    Ok(settings)
}

fn run_full_backward(
    args: &ExplainArgs,
    dtd: &DtdSettings,
    lp: Option<&LpSide>,
) -> Result<Outcome> {
    let settings = full_backward_settings(args)?;
    if args.report.as_deref() == Some(args.out.as_path()) {
        return Err(Error::Usage(format!(
            "--report and --out name the same file {}",
            args.out.display()
        )));
    }
    let (model, inputs) = args.data.load()?;
    super::check_layer_rules(dtd, &model)?;
    settings.check_network(model.net())?;
    let targets = args.target.resolve(inputs.len())?;
    targets.validate(model.net().output_dim())?;
    let n = inputs.len();
    let d = model.net().input_dim();
    let mut flat: Vec<f64> = Vec::with_capacity(n * d);
    let mut samples: Vec<SampleReport> = Vec::new();
    for start in (0..n).step_by(CHUNK) {
        let end = (start + CHUNK).min(n);
        let rows: Vec<Vec<f64>> = (start..end).map(|i| inputs.row(i)).collect::<Result<_>>()?;
        let results: Vec<(Vec<f64>, SampleReport)> = rows
            .par_iter()
            .enumerate()
            .map(|(offset, x)| {
                let sample = start + offset;
                full_backward_row(
                    &model,
                    dtd,
                    &settings,
                    x,
                    sample,
                    targets.for_sample(sample),
                    args.exact,
                    lp,
                )
            })
            .collect::<Result<_>>()?;
        for (row, report) in results {
            flat.extend(row);
            if args.report.is_some() {
                samples.push(report);
            }
        }
    }
    let array = Array2::from_shape_vec((n, d), flat).expect("one row of width d per input");
    write_npy_f64_atomic(&args.out, &array)?;
    if let Some(path) = &args.report {
        let report = Report {
            tool: "dtdcert",
            version: env!("CARGO_PKG_VERSION"),
            model: ModelRef {
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
        write_json_atomic(path, &report)?;
    }
    Ok(Outcome::Clean)
}

/// Full-backward relevances of one input, in f64 or computed exactly and rounded once.
#[allow(clippy::too_many_arguments)]
fn full_backward_row(
    model: &Model,
    dtd: &DtdSettings,
    settings: &FullBackwardSettings,
    x: &[f64],
    sample: usize,
    target: Option<usize>,
    exact: bool,
    lp: Option<&LpSide>,
) -> Result<(Vec<f64>, SampleReport)> {
    fn run<T: Scalar>(
        net: &Network<T>,
        dtd: &DtdSettings,
        settings: &FullBackwardSettings,
        x: &[T],
        sample: usize,
        target: Option<usize>,
        finder: &dyn RootFinder<T>,
    ) -> Result<(Vec<f64>, SampleReport)> {
        let k = target.unwrap_or_else(|| {
            let out: Vec<f64> = forward(net, x)
                .output()
                .iter()
                .map(Scalar::to_f64)
                .collect();
            argmax(&out)
        });
        let fb = full_backward(net, x, k, settings, finder)?;
        let row = fb.input_relevance().iter().map(Scalar::to_f64).collect();
        Ok((row, SampleReport::new(sample, dtd, &fb)))
    }
    if let Some(lp) = lp {
        let finder = ValidRoots::new(model, dtd, x, lp.input_box, lp.opts);
        return run(model.net(), dtd, settings, x, sample, target, &finder);
    }
    if exact {
        let xr: Vec<Rational> = x.iter().map(|&v| Rational::from_f64(v)).collect();
        let finder = RuleRoots::new(model.exact(), dtd);
        run(model.exact(), dtd, settings, &xr, sample, target, &finder)
    } else {
        let finder = RuleRoots::new(model.net(), dtd);
        run(model.net(), dtd, settings, x, sample, target, &finder)
    }
}

fn write_json_atomic(path: &Path, value: &impl Serialize) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    let writer = file.writer();
    serde_json::to_writer_pretty(&mut *writer, value)
        .map_err(|e| Error::write(path, std::io::Error::other(e)))?;
    writer.write_all(b"\n").map_err(|e| Error::write(path, e))?;
    file.commit()
}

/// The document `--report` writes.
#[derive(Serialize)]
struct Report<'a> {
    tool: &'static str,
    version: &'static str,
    model: ModelRef<'a>,
    inputs: &'a Path,
    rule: String,
    input_rule: String,
    exact: bool,
    settings: &'a DtdSettings,
    full_backward: &'a FullBackwardSettings,
    samples: Vec<SampleReport>,
}

#[derive(Serialize)]
struct ModelRef<'a> {
    path: &'a Path,
    fingerprint: &'a str,
    architecture: String,
}

/// One input. `conservation_gap = output − input_relevance − remainder`, the sum of the
/// layers' `taylor_error` (computed exactly with --exact, then rounded).
#[derive(Serialize)]
struct SampleReport {
    sample: usize,
    explained: usize,
    output: f64,
    evaluations: u64,
    /// Σ of the input relevances.
    input_relevance: f64,
    /// Σ of every neuron's remainder.
    remainder: f64,
    conservation_gap: f64,
    layers: Vec<LayerReport>,
}

#[derive(Serialize)]
struct LayerReport {
    /// 1-based; layer 1 takes the network input.
    layer: usize,
    rule: Rule,
    /// `Σ R^l`.
    relevance_in: f64,
    /// `Σ R^{l-1}`: what the layer passed to its inputs.
    relevance_out: f64,
    remainder: f64,
    /// `relevance_in − relevance_out − remainder`.
    taylor_error: f64,
    neurons: Vec<NeuronReport>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
enum Status {
    Expanded,
    NotPositive,
    NoRoot,
}

#[derive(Serialize)]
struct NeuronReport {
    neuron: usize,
    relevance: f64,
    status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    no_root: Option<Rootless>,
    passed: f64,
    remainder: f64,
    /// `R̂_j(a)`: the upper relevance function with the root's evaluation held fixed.
    #[serde(skip_serializing_if = "Option::is_none")]
    frozen_relevance: Option<f64>,
}

impl SampleReport {
    fn new<T: Scalar>(sample: usize, dtd: &DtdSettings, fb: &FullBackward<T>) -> Self {
        let sum = |v: &[T]| v.iter().fold(T::zero(), |acc, x| acc + x.clone()).to_f64();
        Self {
            sample,
            explained: fb.explained,
            output: fb.output.to_f64(),
            evaluations: fb.evaluations,
            input_relevance: sum(fb.input_relevance()),
            remainder: fb.remainder().to_f64(),
            conservation_gap: fb.conservation_gap().to_f64(),
            layers: fb
                .layers
                .iter()
                .enumerate()
                .map(|(index, layer)| LayerReport {
                    layer: index + 1,
                    rule: dtd.rule_for(index),
                    relevance_in: sum(&layer.upper),
                    relevance_out: sum(&layer.lower),
                    remainder: layer.remainder().to_f64(),
                    taylor_error: layer.taylor_error().to_f64(),
                    neurons: layer
                        .neurons
                        .iter()
                        .enumerate()
                        .map(|(j, n)| {
                            let (status, no_root, frozen) = match &n.expansion {
                                Expansion::Root { frozen, .. } => {
                                    (Status::Expanded, None, Some(frozen.to_f64()))
                                }
                                Expansion::NotPositive => (Status::NotPositive, None, None),
                                Expansion::NoRoot(why) => (Status::NoRoot, Some(*why), None),
                            };
                            NeuronReport {
                                neuron: j,
                                relevance: n.relevance.to_f64(),
                                status,
                                no_root,
                                passed: n.passed.to_f64(),
                                remainder: n.remainder.to_f64(),
                                frozen_relevance: frozen,
                            }
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}
