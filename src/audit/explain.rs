//! Explanations of many inputs (`dtdcert explain`): one row of input relevances per input,
//! by train-free DTD/LRP (in f64, or exactly and rounded once, or with certified nearest valid
//! roots from linear programs) or by full-backward DTD with a report of every layer's
//! remainders and the conservation gap. Like an audit, a run over an inputs file, a chunk of
//! inputs at a time, in parallel.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use ndarray::Array2;
use rayon::prelude::*;
use serde::Serialize;

use super::spec::Targets;
use crate::dtd::batched::{self, batch_size, Batched};
use crate::dtd::full_backward::{
    full_backward, full_backward_decided, full_backward_exact, Decided, Expansion, FullBackward,
    FullBackwardSettings, Rootless,
};
use crate::dtd::{explain, DtdSettings, InitialRelevance, Rule};
use crate::error::{Error, Result};
use crate::exact::{Rational, Scalar};
use crate::io::AtomicFile;
use crate::lp::nearest_valid::{explain_valid, ValidRoots};
use crate::lp::SolveOptions;
use crate::model::forward::{argmax, forward};
use crate::model::inputs::Inputs;
use crate::model::Model;
use crate::region::Decision;

/// Inputs converted to f64 and explained together; rows are converted a chunk at a time, so
/// the inputs are never held twice.
const CHUNK: usize = 1024;

/// Roots from linear programs: what the `nearest-valid` rule needs.
#[derive(Clone, Copy, Debug)]
pub struct LpRoots {
    /// The input domain box of layer 1's roots (`None`: unbounded).
    pub input_box: Option<(f64, f64)>,
    /// The solver and time limit of every program (`--lp-backend`, `--lp-time-limit`).
    pub opts: SolveOptions,
}

/// How `explain` computes: exactly or in f64, with LP roots or rule roots.
#[derive(Clone, Copy, Debug)]
pub struct Arithmetic {
    /// Exact rational arithmetic, rounded to f64 once.
    pub exact: bool,
    /// LP roots (the nearest-valid rule); `None` for rule roots.
    pub lp: Option<LpRoots>,
}

impl Arithmetic {
    /// How `explain` computes under `dtd`: exactly when `exact`; where a rule is
    /// `nearest-valid`, with roots from linear programs solved with `lp`, layer 1's in the box
    /// `domain` (or, without one, the zB rule's box). Refuses `nearest-valid` with `exact`.
    pub fn new(
        dtd: &DtdSettings,
        exact: bool,
        domain: Option<(f64, f64)>,
        lp: SolveOptions,
    ) -> Result<Self> {
        if !dtd.named_rules().iter().any(Rule::needs_lp) {
            return Ok(Self { exact, lp: None });
        }
        if exact {
            return Err(Error::Usage(
                "the nearest-valid rule finds roots with linear programs and cannot run with \
                 --exact"
                    .into(),
            ));
        }
        Ok(Self {
            exact,
            lp: Some(LpRoots {
                input_box: domain.or_else(|| dtd.input_rule_box()),
                opts: lp,
            }),
        })
    }
}

/// Input relevances by train-free DTD/LRP, one row per input.
pub fn input_relevances(
    model: &Model,
    inputs: &Inputs,
    targets: &Targets,
    dtd: &DtdSettings,
    how: Arithmetic,
) -> Result<Array2<f64>> {
    input_relevances_counted(model, inputs, targets, dtd, how, &AtomicU64::new(0))
}

/// [`input_relevances`], adding to `done` as inputs are explained (another thread may read it
/// to show progress). The path is [`explain_path`]'s: a batch of inputs at a time in f64
/// with rule roots, else input by input. A stop request ([`crate::io::interrupt`]) ends it
/// between inputs (between batches on the batched path) with [`Error::Interrupted`], naming
/// no folder.
pub fn input_relevances_counted(
    model: &Model,
    inputs: &Inputs,
    targets: &Targets,
    dtd: &DtdSettings,
    how: Arithmetic,
    done: &AtomicU64,
) -> Result<Array2<f64>> {
    let n = inputs.len();
    let d = model.net().input_dim();
    let mut flat: Vec<f64> = Vec::with_capacity(n * d);
    if explain_path(model, dtd, how) == ExplainPath::Batched {
        return Ok(batched_relevances(model, inputs, targets, dtd, done)?.0);
    }
    for start in (0..n).step_by(CHUNK) {
        let end = (start + CHUNK).min(n);
        let rows: Vec<Vec<f64>> = (start..end).map(|i| inputs.row(i)).collect::<Result<_>>()?;
        let relevances: Vec<Vec<f64>> = rows
            .par_iter()
            .enumerate()
            .map(|(offset, x)| {
                if crate::io::interrupt::requested() {
                    return Err(Error::Interrupted {
                        dir: Default::default(),
                    });
                }
                let row = relevance_row(
                    model,
                    dtd,
                    x,
                    targets.for_sample(start + offset),
                    how.exact,
                    how.lp.as_ref(),
                );
                done.fetch_add(1, Ordering::Relaxed);
                Ok(row)
            })
            .collect::<Result<_>>()?;
        flat.extend(relevances.into_iter().flatten());
    }
    Ok(Array2::from_shape_vec((n, d), flat).expect("one row of width d per input"))
}

/// How [`input_relevances`] computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExplainPath {
    /// A batch of inputs at a time, each layer's step as matrix products
    /// ([`crate::dtd::batched`]): f64 arithmetic with rule roots.
    Batched,
    /// One input at a time, neuron by neuron: exact arithmetic, or LP roots.
    PerInput,
}

/// The path [`input_relevances`] takes for `model` under `dtd` and `how`: batched in f64
/// with rule roots where every layer's rule has a batched step, else input by input.
pub fn explain_path(model: &Model, dtd: &DtdSettings, how: Arithmetic) -> ExplainPath {
    if !how.exact && how.lp.is_none() && batched::covers(model.net(), dtd) {
        ExplainPath::Batched
    } else {
        ExplainPath::PerInput
    }
}

/// [`input_relevances_counted`] by batches ([`Batched`]): the inputs converted a chunk at a
/// time, explained [`batch_size`] at a time; a stop request ends it between batches.
fn batched_relevances(
    model: &Model,
    inputs: &Inputs,
    targets: &Targets,
    dtd: &DtdSettings,
    done: &AtomicU64,
) -> Result<(Array2<f64>, Vec<f64>)> {
    let net = model.net();
    let (n, d) = (inputs.len(), net.input_dim());
    let batched = Batched::new(net, dtd).expect("explain_path checked the rules");
    let size = batch_size(net);
    let mut flat: Vec<f64> = Vec::with_capacity(n * d);
    let mut starts = Vec::with_capacity(n);
    for start in (0..n).step_by(size) {
        if crate::io::interrupt::requested() {
            return Err(Error::Interrupted {
                dir: Default::default(),
            });
        }
        let end = (start + size).min(n);
        let x = Array2::from_shape_vec((end - start, d), inputs.batch(start..end)?)
            .expect("one row of width d per input");
        let wanted: Vec<Option<usize>> = (start..end).map(|i| targets.for_sample(i)).collect();
        let (relevances, started) = batched.input_relevances_and_starts(x.view(), &wanted);
        flat.extend(relevances);
        starts.extend(started);
        done.fetch_add((end - start) as u64, Ordering::Relaxed);
    }
    let relevances = Array2::from_shape_vec((n, d), flat).expect("one row of width d per input");
    Ok((relevances, starts))
}

/// [`input_relevances`], and the relevance each input's explanation started from
/// ([`start_relevances`]); on the batched path both come from the same forward pass.
pub fn input_relevances_and_starts(
    model: &Model,
    inputs: &Inputs,
    targets: &Targets,
    dtd: &DtdSettings,
    how: Arithmetic,
) -> Result<(Array2<f64>, Vec<f64>)> {
    if explain_path(model, dtd, how) == ExplainPath::Batched {
        return batched_relevances(model, inputs, targets, dtd, &AtomicU64::new(0));
    }
    let relevances = input_relevances(model, inputs, targets, dtd, how)?;
    Ok((relevances, start_relevances(model, inputs, targets, dtd)?))
}

/// The relevance each input's explanation starts from, by an f64 forward pass a batch at a
/// time: the explained output's value (its target, or its largest output), or 1 with
/// `--initial-relevance one`.
pub fn start_relevances(
    model: &Model,
    inputs: &Inputs,
    targets: &Targets,
    dtd: &DtdSettings,
) -> Result<Vec<f64>> {
    let net = model.net();
    let (n, d) = (inputs.len(), net.input_dim());
    let size = batch_size(net);
    let mut starts = Vec::with_capacity(n);
    for first in (0..n).step_by(size) {
        let end = (first + size).min(n);
        let x = Array2::from_shape_vec((end - first, d), inputs.batch(first..end)?)
            .expect("one row of width d per input");
        let outputs = crate::model::forward::output_rows(net, x.view());
        for (i, output) in (first..end).zip(outputs.rows()) {
            let output = output.to_vec();
            let k = targets
                .for_sample(i)
                .unwrap_or_else(|| crate::model::forward::argmax(&output));
            starts.push(match dtd.initial_relevance {
                InitialRelevance::Output => output[k],
                InitialRelevance::One => 1.0,
            });
        }
    }
    Ok(starts)
}

/// Input relevances by full-backward DTD, one row per input, and (when `reports`) each
/// input's report.
pub fn full_backward_relevances(
    model: &Model,
    inputs: &Inputs,
    targets: &Targets,
    dtd: &DtdSettings,
    settings: &FullBackwardSettings,
    how: Arithmetic,
    reports: bool,
) -> Result<(Array2<f64>, Vec<SampleReport>)> {
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
                    model,
                    dtd,
                    settings,
                    x,
                    sample,
                    targets.for_sample(sample),
                    how.exact,
                    how.lp.as_ref(),
                )
            })
            .collect::<Result<_>>()?;
        for (row, report) in results {
            flat.extend(row);
            if reports {
                samples.push(report);
            }
        }
    }
    let array = Array2::from_shape_vec((n, d), flat).expect("one row of width d per input");
    Ok((array, samples))
}

/// Input relevances of one input, in f64 or computed exactly and rounded once.
fn relevance_row(
    model: &Model,
    dtd: &DtdSettings,
    x: &[f64],
    target: Option<usize>,
    exact: bool,
    lp: Option<&LpRoots>,
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

/// Full-backward relevances of one input: in f64 with every decision about the exact values
/// (rationals where the error bounds leave one in doubt), or computed exactly and rounded
/// once, or with LP roots in f64.
#[allow(clippy::too_many_arguments)]
fn full_backward_row(
    model: &Model,
    dtd: &DtdSettings,
    settings: &FullBackwardSettings,
    x: &[f64],
    sample: usize,
    target: Option<usize>,
    exact: bool,
    lp: Option<&LpRoots>,
) -> Result<(Vec<f64>, SampleReport)> {
    fn rounded<T: Scalar>(
        fb: &FullBackward<T>,
        sample: usize,
        dtd: &DtdSettings,
        decided_by: Decision,
    ) -> (Vec<f64>, SampleReport) {
        let report = SampleReport::new(sample, dtd, fb, decided_by);
        let row = fb.input_relevance().iter().map(Scalar::to_f64).collect();
        (row, report)
    }
    let row = |fb: &FullBackward<f64>, decided_by| rounded(fb, sample, dtd, decided_by);
    let exact_row = |fb: &FullBackward<Rational>, decided_by| rounded(fb, sample, dtd, decided_by);
    if let Some(lp) = lp {
        let net = model.net();
        let k = target.unwrap_or_else(|| argmax(forward(net, x).output()));
        let finder = ValidRoots::new(model, dtd, x, lp.input_box, lp.opts);
        let fb = full_backward(net, x, k, settings, &finder)?;
        return Ok(row(&fb, Decision::Unchecked));
    }
    if exact {
        let fb = full_backward_exact(model, x, target, dtd, settings)?;
        return Ok(exact_row(&fb, Decision::Exact));
    }
    Ok(
        match full_backward_decided(model, x, target, dtd, settings)? {
            Decided::Float(fb) => row(&fb, Decision::Float),
            Decided::Exact(fb) => exact_row(&fb, Decision::ExactFallback),
        },
    )
}

/// The document `explain --full-backward --report` writes.
#[derive(Serialize)]
pub struct FullBackwardReport<'a> {
    /// The writing tool's name, `dtdcert`.
    pub tool: &'static str,
    /// The writing tool's version.
    pub version: &'static str,
    /// The explained model.
    pub model: ReportedModel<'a>,
    /// The inputs file, as given to `--inputs`.
    pub inputs: &'a Path,
    /// The rule string of `--rule` (every layer).
    pub rule: String,
    /// The rule string of layer 1, after `--input-rule` and `--layer-rule 1=`.
    pub input_rule: String,
    /// Whether the run used exact rational arithmetic (`--exact`).
    pub exact: bool,
    /// The rules and their options (`--rule`, `--bias`, `--stabilizer`, ...).
    pub settings: &'a DtdSettings,
    /// `--max-evaluations` and `--face-tolerance`.
    pub full_backward: &'a FullBackwardSettings,
    /// One report per input, in the inputs file's order.
    pub samples: Vec<SampleReport>,
}

/// The model a full-backward report is about.
#[derive(Serialize)]
pub struct ReportedModel<'a> {
    /// The model file, as given to `--model`.
    pub path: &'a Path,
    /// SHA-256 of the architecture and weights.
    pub fingerprint: &'a str,
    /// A short description of the layer widths, such as `10-10-10-2 (ReLU after every
    /// layer)`.
    pub architecture: String,
}

/// One input. `conservation_gap = output − input_relevance − remainder`, the sum of the
/// layers' `taylor_error` (computed exactly with --exact or where `decided_by` is
/// `exact-fallback`, then rounded).
#[derive(Serialize)]
pub struct SampleReport {
    sample: usize,
    explained: usize,
    /// How the recursion's decisions were reached: `float` (f64 error bounds settled them),
    /// `exact-fallback` (a bound left one open: the input was explained in rationals),
    /// `exact` (`--exact`) or `unchecked` (LP roots, in f64 without error bounds).
    decided_by: Decision,
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
    fn new<T: Scalar>(
        sample: usize,
        dtd: &DtdSettings,
        fb: &FullBackward<T>,
        decided_by: Decision,
    ) -> Self {
        let sum = |v: &[T]| v.iter().fold(T::zero(), |acc, x| acc + x.clone()).to_f64();
        Self {
            sample,
            explained: fb.explained,
            decided_by,
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

impl FullBackwardReport<'_> {
    /// Writes the report as pretty JSON to `path`, atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        let mut file = AtomicFile::create(path)?;
        let writer = file.writer();
        serde_json::to_writer_pretty(&mut *writer, self)
            .map_err(|e| Error::write(path, std::io::Error::other(e)))?;
        writer.write_all(b"\n").map_err(|e| Error::write(path, e))?;
        file.commit()
    }
}
