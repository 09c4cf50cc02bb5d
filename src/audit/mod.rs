//! Audit runs: for every input, explain it, materialise every root of every layer, and decide
//! exactly whether each root lies in the input's linear region and in the domain
//! (DESIGN.md §1.4). Records stream to `records.jsonl`; counts accumulate into a summary.

pub mod explain;
pub mod histogram;
pub mod merge;
pub mod run;
pub mod spec;
pub mod summary;

use ndarray::Array2;
use serde::{Deserialize, Serialize};

pub use run::{OutputOptions, ReportWriter, Runner};
pub use summary::{Summary, SummaryDocument};

use crate::check::{Certificate, Problem};
use crate::dtd::{explain, neuron_root, DtdSettings, NoRoot, RootOutcome};
use crate::error::Result;
use crate::exact::{Rational, Scalar};
use crate::lp::certify::{Answer, Certifier, RegionQuestion};
use crate::lp::nearest_valid::{explain_valid, uses_lp};
use crate::lp::{Backend, SolveOptions};
use crate::model::{forward, Model};
use crate::region::problem::Domain;
use crate::region::{
    membership, membership_batch, membership_filtered, trace_and_pattern, Decision, Membership,
    Pattern,
};

/// Where roots must lie besides the region.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DomainBox {
    /// The smallest value every input coordinate may take (`LO` of `--domain LO:HI`).
    pub lo: f64,
    /// The largest value every input coordinate may take (`HI` of `--domain LO:HI`).
    pub hi: f64,
}

/// Everything that determines an audit's results; serialised into every summary.
/// The default: the default DTD settings, no domain box, f64 with exact fallback, no root
/// coordinates in the records.
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

/// Computes the records of samples outside the exact engine, in floating point without error
/// bounds: the libtorch backend, which the CLI plugs in (`audit` does not know it).
pub trait BatchAuditor {
    /// The records of samples `ids`, with inputs `rows` and targets `targets` (one each), in
    /// order.
    fn records(
        &self,
        model: &Model,
        settings: &AuditSettings,
        ids: &[usize],
        rows: &[Vec<f64>],
        targets: &[Option<usize>],
    ) -> Result<Vec<SampleRecord>>;
}

/// Builds the batch auditor that `--backend torch` settings ask for.
pub type BatchBackend<'a> = &'a dyn Fn(&Model, &TorchSettings) -> Result<Box<dyn BatchAuditor>>;

/// What computes an audit's records: the exact engine (f64 with error bounds and an exact
/// fallback, or rationals), or a batch auditor (the libtorch backend).
pub enum Engine {
    /// `--backend exact`: f64 with rigorous error bounds and an exact fallback, or
    /// rationals throughout with `--exact`.
    Exact,
    /// `--backend torch`: the records come from the batch auditor, in its precision.
    Batched(Box<dyn BatchAuditor>),
}

impl Engine {
    /// The engine `settings` ask for, a batch auditor built by `backend` where they name the
    /// libtorch backend (an error where this build has none, or its device is missing).
    pub fn new(
        model: &Model,
        settings: &AuditSettings,
        backend: Option<BatchBackend>,
    ) -> Result<Self> {
        let Some(torch) = &settings.torch else {
            return Ok(Engine::Exact);
        };
        if settings.exact || uses_lp(&settings.dtd, model.net().layers().len()) {
            return Err(crate::error::Error::Usage(format!(
                "--backend torch computes roots and verdicts in floating point; {} runs on \
                 --backend exact",
                if settings.exact {
                    "--exact"
                } else {
                    "the nearest-valid rule"
                }
            )));
        }
        match backend {
            Some(build) => Ok(Engine::Batched(build(model, torch)?)),
            None => Err(crate::error::Error::Usage(NO_TORCH.into())),
        }
    }

    /// The records (and certificates) of samples `ids`, with inputs `rows` and targets
    /// `targets` (one each), in order.
    pub fn audit(
        &self,
        model: &Model,
        settings: &AuditSettings,
        ids: &[usize],
        rows: &[Vec<f64>],
        targets: &[Option<usize>],
    ) -> Result<Vec<(SampleRecord, Vec<NamedCertificate>)>> {
        use rayon::prelude::*;
        match self {
            Engine::Exact => ids
                .par_iter()
                .zip(rows.par_iter())
                .zip(targets.par_iter())
                .map(|((&i, x), &target)| audit_sample_certified(model, settings, i, x, target))
                .collect(),
            Engine::Batched(auditor) => {
                let records = auditor.records(model, settings, ids, rows, targets)?;
                records
                    .into_par_iter()
                    .zip(rows.par_iter())
                    .map(|(mut record, x)| {
                        let certificates = match &settings.certify {
                            Some(c) => certify_roots(model, settings, c, x, &mut record)?,
                            None => Vec::new(),
                        };
                        Ok((record, certificates))
                    })
                    .collect()
            }
        }
    }
}

/// The error for `--backend torch` in a build without the libtorch backend.
pub const NO_TORCH: &str = "--backend torch: this build has no libtorch backend; build with \
     `cargo build --release --features torch` after `export LIBTORCH=$(scripts/setup_torch.sh)` \
     (docs/src/libtorch.md)";

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

/// `--certify`: which question is asked for which roots, with which LP settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CertifySettings {
    /// exists, nearest-l1 or nearest-linf.
    pub problem: Problem,
    /// Every root, not only those outside their region or domain (`--certify-all`).
    pub all: bool,
}

impl AuditSettings {
    /// The box the input-layer roots must lie in, if any.
    pub fn input_domain(&self) -> Option<DomainBox> {
        self.domain.or(self
            .dtd
            .input_rule_box()
            .map(|(lo, hi)| DomainBox { lo, hi }))
    }
}

/// Domain membership of a root.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum DomainCheck {
    /// `{"status": "in"}`: every coordinate lies in the domain (always so where the layer
    /// has none).
    In,
    /// The first coordinate outside the domain and its value.
    Out {
        /// The coordinate's 0-based index in the layer's input.
        coordinate: usize,
        /// The root's value there, rounded to f64.
        value: f64,
    },
}

/// The verdict on one root.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RootVerdict {
    /// Inside the region and in the domain.
    pub valid: bool,
    /// Whether the root lies in the input's linear region seen from its layer.
    pub region: Membership,
    /// Whether the root lies in its layer's domain.
    pub domain: DomainCheck,
    /// How the region verdict was reached (`float`, `refined`, `exact-fallback`, ...).
    pub decided_by: Decision,
    /// The root's coordinates, rounded to f64 (`--roots` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point: Option<Vec<f64>>,
}

/// One neuron of a layer in `records.jsonl`: its relevance and either why it has no root or
/// the verdict on its root.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NeuronRecord {
    /// The neuron's 0-based index in its layer.
    pub neuron: usize,
    /// `R_j`, the relevance the neuron receives from above, rounded to f64.
    pub relevance: f64,
    /// Why the neuron has no root (`zero-relevance`, `small-denominator`, ...); `None` when
    /// it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_root: Option<NoRoot>,
    /// The verdict on the neuron's root; `None` when it has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root: Option<RootVerdict>,
    /// The certified answer for the neuron (`--certify`, for the roots it asks about).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certified: Option<CertifiedRoot>,
}

/// The certified answer for a root's neuron (`--certify`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CertifiedRoot {
    /// What was proved about the neuron's valid roots.
    pub answer: CertifiedAnswer,
    /// The certified interval of the nearest valid root's distance (nearest problems).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance_lower: Option<f64>,
    /// The distance of the checked nearest valid root, the interval's upper end (nearest
    /// problems).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distance_upper: Option<f64>,
    /// Why there is no certified answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The certificate, relative to the output folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

/// The outcome of a `--certify` question, as the records' `certified.answer` spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CertifiedAnswer {
    /// A valid root of the neuron exists (proved by a checked point).
    ValidRootExists,
    /// No valid root of the neuron exists (proved by a checked Farkas certificate).
    NoValidRoot,
    /// No certified answer (time limit, solver failure, rejected certificate).
    Unknown,
}

/// One layer of a sample in `records.jsonl`: its relevance balance and its neurons.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// 1-based; layer 1 takes the network input.
    pub layer: usize,
    /// The rule the layer's relevance was passed down with.
    pub rule: crate::dtd::Rule,
    /// `Σ R^l` (relevance entering the layer from above).
    pub relevance_in: f64,
    /// `Σ R^{l-1}` (relevance passed to the layer's inputs).
    pub relevance_out: f64,
    /// Relevance not passed on: `no_root_relevance + absorbed`.
    pub unresolved: f64,
    /// Relevance of neurons without a root (small denominator) or under a rule without one
    /// that did not pass it on.
    pub no_root_relevance: f64,
    /// Relevance absorbed by bias or stabiliser terms of denominators (and, for rule 0, the
    /// mismatch between `R_j` and `w_j · a`).
    pub absorbed: f64,
    /// `relevance_in − relevance_out − unresolved` (0 up to rounding; exactly 0 with --exact).
    pub conservation_error: f64,
    /// One record per neuron of the layer, in order.
    pub neurons: Vec<NeuronRecord>,
}

/// One line of `records.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    /// The input's 0-based row in the inputs file.
    pub sample: usize,
    /// The explained output `k`, 0-based (`--explain`, `--targets`, or the top output).
    pub explained: usize,
    /// The network's output `f_k(x)`, rounded to f64.
    pub output: f64,
    /// How the input's activation pattern was decided (`float`, `refined`, ...).
    pub pattern_decided_by: Decision,
    /// One record per layer, layer 1 (the one taking the network input) first.
    pub layers: Vec<LayerRecord>,
}

/// The explained output: a fixed index, or the sample's top output.
pub fn resolve_target(target: Option<usize>, output: &[f64]) -> usize {
    target.unwrap_or_else(|| forward::argmax(output))
}

fn domain_check<T: Scalar, U: Scalar>(
    point: &[T],
    layer_index: usize,
    input_box: Option<DomainBox>,
    net: &crate::model::Network<U>,
) -> DomainCheck {
    // The input box at the network input, `>= 0` above a ReLU, nothing above a layer without.
    let bounds = if layer_index == 0 {
        input_box.map(|b| (Some(T::from_f64(b.lo)), Some(T::from_f64(b.hi))))
    } else if net.output_nonnegative(layer_index - 1) {
        Some((Some(T::zero()), None))
    } else {
        None
    };
    let Some((lo, hi)) = bounds else {
        return DomainCheck::In;
    };
    for (i, v) in point.iter().enumerate() {
        let below = lo.as_ref().is_some_and(|l| v < l);
        let above = hi.as_ref().is_some_and(|h| v > h);
        if below || above {
            return DomainCheck::Out {
                coordinate: i,
                value: v.to_f64(),
            };
        }
    }
    DomainCheck::In
}

/// Audit one input: explain output `target` (or the top output) and decide every root.
/// Fails (naming the sample) when f64 overflows on this input: a value of the forward pass, a
/// relevance or a root that is not finite cannot be judged.
pub fn audit_sample(
    model: &Model,
    settings: &AuditSettings,
    sample: usize,
    x: &[f64],
    target: Option<usize>,
) -> Result<SampleRecord> {
    audit_sample_certified(model, settings, sample, x, target).map(|(r, _)| r)
}

/// A certificate to be written under the output folder, by file name.
pub type NamedCertificate = (String, Certificate);

/// [`audit_sample`], with the certificates of `--certify` (the records name their files,
/// `certificates/s<sample>_l<layer>_n<neuron>.json`).
pub fn audit_sample_certified(
    model: &Model,
    settings: &AuditSettings,
    sample: usize,
    x: &[f64],
    target: Option<usize>,
) -> Result<(SampleRecord, Vec<NamedCertificate>)> {
    let mut record = plain_audit(model, settings, sample, x, target)?;
    let certificates = match &settings.certify {
        Some(c) => certify_roots(model, settings, c, x, &mut record)?,
        None => Vec::new(),
    };
    Ok((record, certificates))
}

fn certify_roots(
    model: &Model,
    settings: &AuditSettings,
    c: &CertifySettings,
    x: &[f64],
    record: &mut SampleRecord,
) -> Result<Vec<NamedCertificate>> {
    let opts = settings.lp.options();
    let certifier = Certifier {
        model,
        opts,
        model_path: None,
        inputs_path: None,
        cache: Default::default(),
    };
    let mut out = Vec::new();
    let input_box = settings.input_domain();
    for lr in &mut record.layers {
        for n in &mut lr.neurons {
            let Some(root) = &n.root else { continue };
            if root.valid && !c.all {
                continue;
            }
            let question = RegionQuestion {
                sample_index: record.sample,
                sample: x.to_vec(),
                layer: lr.layer,
                neuron: Some(n.neuron),
                relevance: Some(n.relevance),
                domain: Domain::of_layer(model.net(), lr.layer, input_box.map(|b| (b.lo, b.hi))),
                problem: c.problem,
                constraint: None,
                centre: None,
            };
            let certified = certifier.answer(&question);
            let name = format!(
                "certificates/s{}_l{}_n{}.json",
                record.sample, lr.layer, n.neuron
            );
            let (answer, lower, upper, reason) = match &certified.answer {
                Answer::Found { lower, upper, .. } => {
                    (CertifiedAnswer::ValidRootExists, *lower, *upper, None)
                }
                Answer::None => (CertifiedAnswer::NoValidRoot, None, None, None),
                Answer::Unknown { reason } => {
                    (CertifiedAnswer::Unknown, None, None, Some(reason.clone()))
                }
                other => unreachable!("a root question gave {other:?}"),
            };
            let certificate = certified.certificate.map(|cert| {
                out.push((name.clone(), cert));
                name
            });
            n.certified = Some(CertifiedRoot {
                answer,
                distance_lower: lower,
                distance_upper: upper,
                reason,
                certificate,
            });
        }
    }
    Ok(out)
}

fn plain_audit(
    model: &Model,
    settings: &AuditSettings,
    sample: usize,
    x: &[f64],
    target: Option<usize>,
) -> Result<SampleRecord> {
    if settings.exact && uses_lp(&settings.dtd, model.net().layers().len()) {
        return Err(crate::error::Error::Usage(
            "the nearest-valid rule finds roots with linear programs and cannot run with --exact"
                .into(),
        ));
    }
    let record = if settings.exact {
        audit_exact(model, settings, sample, x, target)
    } else {
        audit_float(model, settings, sample, x, target)?
    };
    if !record.output.is_finite() {
        return Err(overflow(sample, "the explained output"));
    }
    Ok(record)
}

pub(crate) fn overflow(sample: usize, what: &str) -> crate::error::Error {
    crate::error::invalid(format!(
        "sample {sample}: {what} overflows f64, so its roots cannot be judged"
    ))
}

fn audit_float(
    model: &Model,
    settings: &AuditSettings,
    sample: usize,
    x: &[f64],
    target: Option<usize>,
) -> Result<SampleRecord> {
    let (trace, pattern, pattern_decided_by) = trace_and_pattern(model, x);
    if trace.activations.iter().flatten().any(|v| !v.is_finite()) {
        return Err(overflow(sample, "the forward pass"));
    }
    let k = resolve_target(target, trace.output());
    // Rule roots are not kept by the explanation: they are rebuilt and judged a block at a
    // time below, so a wide image layer never holds all its roots at once.
    let explanation = if uses_lp(&settings.dtd, model.net().layers().len()) {
        let input_box = settings.input_domain().map(|b| (b.lo, b.hi));
        explain_valid(
            model,
            x,
            &trace,
            &settings.dtd,
            k,
            input_box,
            settings.lp.options(),
        )
    } else {
        explain(model.net(), &trace, &settings.dtd, k, false)
    };
    let input_box = settings.input_domain();
    let mut verdicts: Vec<std::vec::IntoIter<Judged>> = Vec::new();
    for (index, step) in explanation.layers.iter().enumerate() {
        let with_root: Vec<usize> = (0..step.neurons.len())
            .filter(|&j| matches!(step.neurons[j].outcome, RootOutcome::Root { .. }))
            .collect();
        let a = trace.layer_input(index);
        let mut judged = Vec::with_capacity(with_root.len());
        for block in with_root.chunks(ROOTS_PER_BLOCK) {
            let mut points: Vec<Vec<f64>> = Vec::with_capacity(block.len());
            for &j in block {
                let n = &step.neurons[j];
                let point = match &n.outcome {
                    // A root the step kept (the LP root finder keeps its points).
                    RootOutcome::Root { point, .. } if !point.is_empty() => point.clone(),
                    _ => match neuron_root(model.net(), index, j, a, &n.relevance, &settings.dtd) {
                        RootOutcome::Root { point, .. } => point,
                        RootOutcome::None(_) => unreachable!("the same step found a root"),
                    },
                };
                if !n.relevance.is_finite() || point.iter().any(|v| !v.is_finite()) {
                    return Err(overflow(
                        sample,
                        &format!("the root of layer {} neuron {j}", index + 1),
                    ));
                }
                points.push(point);
            }
            // All roots of a block are judged together: one matrix product per layer above.
            let regions = match points.len() {
                1 => vec![membership_filtered(model, &pattern, index, &points[0])],
                n => {
                    let d = points[0].len();
                    let batch = Array2::from_shape_vec((n, d), points.concat())
                        .expect("every root has the layer's input width");
                    membership_batch(model, &pattern, index, &batch)
                }
            };
            for ((region, decided_by), point) in regions.into_iter().zip(points) {
                let domain = domain_check(&point, index, input_box, model.net());
                judged.push((
                    region,
                    domain,
                    decided_by,
                    settings.keep_points.then_some(point),
                ));
            }
        }
        verdicts.push(judged.into_iter());
    }
    let layers = assemble(&explanation, |index, _| {
        verdicts[index]
            .next()
            .expect("one verdict per root, in order")
    });
    Ok(SampleRecord {
        sample,
        explained: k,
        output: trace.output()[k],
        pattern_decided_by,
        layers,
    })
}

fn audit_exact(
    model: &Model,
    settings: &AuditSettings,
    sample: usize,
    x: &[f64],
    target: Option<usize>,
) -> SampleRecord {
    let net = model.exact();
    let xr: Vec<Rational> = x.iter().map(|&v| Rational::from_f64(v)).collect();
    let trace = forward::forward(net, &xr);
    let pattern = Pattern::from_pre(net, &trace.pre);
    let out_f64: Vec<f64> = trace.output().iter().map(Scalar::to_f64).collect();
    let k = resolve_target(target, &out_f64);
    let explanation = explain(net, &trace, &settings.dtd, k, true);
    let input_box = settings.input_domain();
    let layers = assemble(&explanation, |index, point| {
        let region = membership(net, &pattern, index, point);
        let domain = domain_check(point, index, input_box, net);
        let coords = settings
            .keep_points
            .then(|| point.iter().map(Scalar::to_f64).collect());
        (region, domain, Decision::Exact, coords)
    });
    SampleRecord {
        sample,
        explained: k,
        output: out_f64[k],
        pattern_decided_by: Decision::Exact,
        layers,
    }
}

type Judged = (Membership, DomainCheck, Decision, Option<Vec<f64>>);

/// Roots rebuilt and judged together: bounds the memory of a wide layer's roots to this many
/// points of the layer's input width.
const ROOTS_PER_BLOCK: usize = 1024;

/// Turn an explanation into records, judging each root with `judge(layer_index, point)`.
fn assemble<T: Scalar>(
    explanation: &crate::dtd::Explanation<T>,
    mut judge: impl FnMut(usize, &[T]) -> Judged,
) -> Vec<LayerRecord> {
    let sum = |v: &[T]| v.iter().fold(T::zero(), |acc, x| acc + x.clone());
    explanation
        .layers
        .iter()
        .enumerate()
        .map(|(index, step)| {
            let neurons = step
                .neurons
                .iter()
                .enumerate()
                .map(|(j, n)| {
                    let (no_root, root) = match &n.outcome {
                        RootOutcome::None(reason) => (Some(*reason), None),
                        RootOutcome::Root { point, .. } => {
                            let (region, domain, decided_by, point) = judge(index, point);
                            let valid = region.is_inside() && domain == DomainCheck::In;
                            (
                                None,
                                Some(RootVerdict {
                                    valid,
                                    region,
                                    domain,
                                    decided_by,
                                    point,
                                }),
                            )
                        }
                    };
                    NeuronRecord {
                        neuron: j,
                        relevance: n.relevance.to_f64(),
                        no_root,
                        root,
                        certified: None,
                    }
                })
                .collect();
            let (mut no_root, mut absorbed) = (T::zero(), T::zero());
            for n in &step.neurons {
                match n.outcome {
                    RootOutcome::Root { .. } => absorbed = absorbed + n.unresolved.clone(),
                    RootOutcome::None(_) => no_root = no_root + n.unresolved.clone(),
                }
            }
            let unresolved = no_root.clone() + absorbed.clone();
            LayerRecord {
                layer: index + 1,
                rule: step.rule,
                relevance_in: sum(&step.upper).to_f64(),
                relevance_out: sum(&step.lower).to_f64(),
                unresolved: unresolved.to_f64(),
                no_root_relevance: no_root.to_f64(),
                absorbed: absorbed.to_f64(),
                conservation_error: step.conservation_error().to_f64(),
                neurons,
            }
        })
        .collect()
}
