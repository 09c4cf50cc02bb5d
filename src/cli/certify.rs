//! `dtdcert certify`: one region question for one sample, layer and neuron, answered with a
//! certificate; and `dtdcert check-cert`: re-check certificates without any LP code.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use super::{absolute, check_sample, parse_domain, DataArgs, Outcome, RuleArgs, TargetArgs};
use crate::check::{check_with, parse_certificate, Certificate, Memo, Problem, Unchecked};
use crate::error::{Error, Result};
use crate::exact::Scalar;
use crate::io::output_dir::check_file_target;
use crate::io::write_atomic;
use crate::lp::certify::question::SampleQuestion;
use crate::lp::certify::{Answer, Certifier};
use crate::lp::{Backend, SolveOptions};
use crate::model::inputs::{load_inputs, Inputs};
use crate::model::Model;

/// The questions `certify` answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProblemArg {
    /// How far along the rule root's direction the region extends (closed form, exact).
    Step,
    /// Is there a valid root of the neuron: a point of the region and the domain on its root
    /// hyperplane?
    Exists,
    /// The valid root nearest to the layer input in the L1 norm, with a certified interval.
    NearestL1,
    /// The valid root nearest to the layer input in the L∞ norm, with a certified interval.
    NearestLinf,
    /// The largest Euclidean ball inside the region and the domain (centre and radius).
    Chebyshev,
    /// Whether constraint --constraint L:J bounds the region (a facet) or is redundant.
    Facet,
}

impl From<ProblemArg> for Problem {
    fn from(p: ProblemArg) -> Self {
        match p {
            ProblemArg::Step => unreachable!("step is answered in closed form, without a program"),
            ProblemArg::Exists => Problem::Exists,
            ProblemArg::NearestL1 => Problem::NearestL1,
            ProblemArg::NearestLinf => Problem::NearestLinf,
            ProblemArg::Chebyshev => Problem::Chebyshev,
            ProblemArg::Facet => Problem::Facet,
        }
    }
}

/// LP options shared by the commands that solve programs.
#[derive(Args, Debug, Clone)]
pub struct LpArgs {
    /// Seconds per linear program; a program that runs longer gives Unknown.
    #[arg(long, value_name = "SECONDS", default_value_t = 60.0)]
    pub lp_time_limit: f64,
    /// The LP solver: microlp, or highs in builds with the `highs` feature.
    #[arg(long, value_name = "NAME", default_value = "microlp")]
    pub lp_backend: String,
}

impl LpArgs {
    /// The solver options these flags ask for; a usage error for a time limit that is not a
    /// positive number or a backend this build does not have.
    pub fn resolve(&self) -> Result<SolveOptions> {
        if !self.lp_time_limit.is_finite() || self.lp_time_limit <= 0.0 {
            return Err(Error::Usage(format!(
                "--lp-time-limit must be a positive number of seconds, got {}",
                self.lp_time_limit
            )));
        }
        Ok(SolveOptions {
            backend: Backend::parse(&self.lp_backend)
                .map_err(|e| Error::Usage(format!("--lp-backend: {e}")))?,
            time_limit: Some(self.lp_time_limit),
        })
    }
}

/// Answer one region question with a checked certificate.
#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  dtdcert certify --model examples/c6/model.onnx --inputs examples/c6/inputs.npy \\\n      --sample 3 --layer 1 --neuron 2 --problem nearest-l1 --out cert.json\n\n\
Problems: exists (is there a valid root of the neuron?), nearest-l1 / nearest-linf (the valid\n\
root nearest to the layer input), chebyshev (the largest ball inside the region; no neuron),\n\
facet (is constraint --constraint L:J of the region redundant?), step (the largest t with\n\
a - t (a - root) in the region, for the neuron's rule root; exact closed form, no certificate:\n\
--out holds the answer). An existing --out file is replaced only with --force.\n\
Exit code 0: a certified answer; 1: no certified answer (Unknown, with the reason)."
)]
pub struct CertifyArgs {
    /// `--model`, `--inputs`, `--inputs-key` and how the model is read.
    #[command(flatten)]
    pub data: DataArgs,
    /// `--rule`, `--input-rule`, `--layer-rule` and the rules' numerical options.
    #[command(flatten)]
    pub rules: RuleArgs,
    /// `--explain` or `--targets`: which output is explained for the sample.
    #[command(flatten)]
    pub target: TargetArgs,
    /// `--lp-time-limit` and `--lp-backend`.
    #[command(flatten)]
    pub lp: LpArgs,
    /// The input (row), 0-based.
    #[arg(long, value_name = "I")]
    pub sample: usize,
    /// The layer (1 = the first): the point lives in this layer's input space.
    #[arg(long, value_name = "L", default_value_t = 1)]
    pub layer: usize,
    /// The neuron of the layer whose roots are asked about (root problems).
    #[arg(long, value_name = "J")]
    pub neuron: Option<usize>,
    /// The question to answer.
    #[arg(long, value_enum)]
    pub problem: ProblemArg,
    /// The constraint L:J of a facet question (1-based layer, 0-based neuron).
    #[arg(long, value_name = "L:J")]
    pub constraint: Option<String>,
    /// The input domain box LO:HI (layer 1 only; hidden layers use the non-negative orthant).
    #[arg(long, value_name = "LO:HI", allow_hyphen_values = true)]
    pub domain: Option<String>,
    /// Write the answer's certificate here (JSON; for step, which needs none, the answer),
    /// atomically; an existing file is replaced only with --force.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Replace an existing --out file.
    #[arg(long, requires = "out")]
    pub force: bool,
}

pub use crate::lp::certify::question::check_layer_neuron;

/// Answers the question and prints the answer as JSON (the certificate, if any, goes to
/// `--out`); `Found` when there is no certified answer (Unknown).
pub fn run(args: CertifyArgs) -> Result<Outcome> {
    let mut dtd = args.rules.resolve_with(args.domain.as_deref())?;
    let opts = args.lp.resolve()?;
    if let Some(out) = &args.out {
        check_file_target(out, args.force)?;
    }
    let (model, inputs) = args.data.load()?;
    super::fit_rules(&mut dtd, &model)?;
    check_sample(&args.data.inputs, args.sample, inputs.len())?;
    let x = inputs.row(args.sample)?;
    let targets = args.target.resolve(inputs.len())?;
    targets.validate(model.net().output_dim())?;
    let question = SampleQuestion {
        sample: args.sample,
        x: &x,
        layer: args.layer,
        neuron: args.neuron,
        constraint: args
            .constraint
            .as_deref()
            .map(parse_constraint)
            .transpose()?,
        input_box: args
            .domain
            .as_deref()
            .map(parse_domain)
            .transpose()?
            .map(|b| (b.lo, b.hi)),
        dtd: &dtd,
        target: targets.for_sample(args.sample),
    };
    if args.problem == ProblemArg::Step {
        let report = question.step(&model)?;
        let text = serde_json::to_string_pretty(&report).expect("reports serialise");
        // The answer is exact and needs no certificate: --out holds the answer itself.
        if let Some(path) = &args.out {
            write_atomic(path, format!("{text}\n").as_bytes())?;
        }
        println!("{text}");
        return Ok(Outcome::Clean);
    }
    let certifier = Certifier {
        model: &model,
        opts,
        model_path: Some(absolute(&args.data.model)?.display().to_string()),
        inputs_path: Some(absolute(&args.data.inputs)?.display().to_string()),
        cache: Default::default(),
    };
    let (mut report, certificate) = question.certify(&certifier, args.problem.into())?;
    if let (Some(path), Some(cert)) = (&args.out, &certificate) {
        let text = serde_json::to_string_pretty(cert).expect("certificates serialise");
        write_atomic(path, text.as_bytes())?;
        report.certificate = Some(path.display().to_string());
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&report).expect("reports serialise")
    );
    Ok(match report.answer {
        Answer::Unknown { .. } => Outcome::Found,
        _ => Outcome::Clean,
    })
}

fn parse_constraint(text: &str) -> Result<(usize, usize)> {
    let bad = || Error::Usage(format!("--constraint '{text}': expected L:J, e.g. 2:5"));
    let (l, j) = text.split_once(':').ok_or_else(bad)?;
    Ok((
        l.trim().parse().map_err(|_| bad())?,
        j.trim().parse().map_err(|_| bad())?,
    ))
}

/// Re-check certificates: no LP code runs, every sign is decided exactly.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  dtdcert check-cert run/certificates/*.json\n  \
dtdcert check-cert --model examples/c6/model.onnx --inputs examples/c6/inputs.npy cert.json\n\n\
Each certificate names its model by absolute path and fingerprint; --model reads the model from\n\
another file (a moved one). With --inputs, each certificate's sample must equal its row there.\n\
Exit code 0: every certificate accepted; 1: some certificate rejected (one line each, with the\n\
reason); 2: a certificate or its model could not be read (the others are still checked)."
)]
pub struct CheckCertArgs {
    /// Certificate files.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The model (default: the path recorded in each certificate).
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// The inputs file the certificates' samples come from: each sample's values must equal
    /// its row there.
    #[arg(long, value_name = "FILE")]
    pub inputs: Option<PathBuf>,
    /// The array to use from an .npz with several arrays.
    #[arg(long, value_name = "NAME", requires = "inputs")]
    pub inputs_key: Option<String>,
    /// How the model is read: give the certificates' run's --keep-batch-norm and --question.
    #[command(flatten)]
    pub reading: super::ModelArgs,
}

/// What became of one certificate file.
enum Verdict {
    Accepted(Box<crate::check::Accepted>),
    Rejected(String),
    Unreadable(Error),
}

/// Models read for a batch, by path; a file that cannot be read is remembered as such.
struct Models<'a> {
    args: &'a CheckCertArgs,
    loaded: Vec<(PathBuf, std::result::Result<Model, String>)>,
}

impl Models<'_> {
    fn get(&mut self, path: &Path) -> std::result::Result<&Model, String> {
        let at = match self.loaded.iter().position(|(p, _)| p == path) {
            Some(at) => at,
            None => {
                let model = self.args.reading.load(path).map_err(|e| format!("{e:#}"));
                self.loaded.push((path.to_path_buf(), model));
                self.loaded.len() - 1
            }
        };
        self.loaded[at].1.as_ref().map_err(Clone::clone)
    }
}

/// Re-checks every certificate file and prints accepted or rejected for each (a file that
/// cannot be read gets its error on stderr, and the others are still checked); `Found` when
/// some certificate is rejected, an error when some could not be read.
pub fn run_check(args: CheckCertArgs) -> Result<Outcome> {
    // A model or inputs file named on the command line must be readable.
    if let Some(path) = &args.model {
        args.reading.load(path)?;
    }
    let inputs = match &args.inputs {
        Some(path) => Some((path, load_inputs(path, args.inputs_key.as_deref())?)),
        None => None,
    };
    let mut models = Models {
        args: &args,
        loaded: Vec::new(),
    };
    let memo = Memo::default();
    let read: Vec<std::result::Result<Certificate, Verdict>> =
        args.files.iter().map(|f| read_certificate(f)).collect();
    // Checked in an order that keeps each sample's certificates together (the memo holds one
    // sample's exact forward pass and relevances), printed in the order given.
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<u64>>();
    let mut order: Vec<usize> = (0..read.len()).collect();
    order.sort_by_cached_key(|&i| match &read[i] {
        Ok(c) => Some((
            c.model.fingerprint.clone(),
            bits(&c.sample.values),
            c.layer,
            c.centre.as_deref().map(bits),
        )),
        Err(_) => None,
    });
    let mut verdicts: Vec<Option<Verdict>> = (0..read.len()).map(|_| None).collect();
    let mut read: Vec<Option<_>> = read.into_iter().map(Some).collect();
    for i in order {
        let inputs = inputs.as_ref().map(|(p, i)| (p.as_path(), i));
        verdicts[i] = Some(match read[i].take().expect("each file once") {
            Ok(cert) => check_certificate(&args.files[i], &cert, &mut models, &memo, inputs),
            Err(v) => v,
        });
    }
    let (mut rejected, mut unreadable) = (0usize, 0usize);
    for (file, verdict) in args.files.iter().zip(verdicts) {
        match verdict.expect("every file checked") {
            Verdict::Accepted(acc) => {
                let interval = match (&acc.lower, &acc.upper) {
                    (Some(l), Some(u)) => {
                        format!(" [{:e}, {:e}]", Scalar::to_f64(l), Scalar::to_f64(u))
                    }
                    (Some(l), None) => format!(" [{:e}, -]", Scalar::to_f64(l)),
                    _ => String::new(),
                };
                println!(
                    "{}: accepted ({}){interval}",
                    file.display(),
                    acc.claim.name()
                );
            }
            Verdict::Rejected(reason) => {
                rejected += 1;
                println!("{}: rejected: {reason}", file.display());
            }
            Verdict::Unreadable(e) => {
                unreadable += 1;
                eprintln!("error: {e:#}");
            }
        }
    }
    if unreadable > 0 {
        return Err(Error::Invalid(format!(
            "{unreadable} of {} certificate files could not be checked ({rejected} rejected)",
            args.files.len()
        )));
    }
    Ok(if rejected > 0 {
        Outcome::Found
    } else {
        Outcome::Clean
    })
}

/// Reads one certificate file; what it becomes when it is no certificate of this format.
fn read_certificate(file: &Path) -> std::result::Result<Certificate, Verdict> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Verdict::Unreadable(Error::file(file, format!("cannot read: {e}"))))?;
    parse_certificate(&text).map_err(|u| match u {
        Unchecked::OtherFormat(r) => Verdict::Rejected(r.0),
        Unchecked::Malformed(problem) => Verdict::Unreadable(Error::file(file, problem)),
    })
}

/// Checks one certificate against its model (and its row of the inputs, if given).
fn check_certificate(
    file: &Path,
    cert: &Certificate,
    models: &mut Models,
    memo: &Memo,
    inputs: Option<(&Path, &Inputs)>,
) -> Verdict {
    let unreadable = |problem: String| Verdict::Unreadable(Error::file(file, problem));
    let expected = &cert.model.fingerprint;
    let model = match (&models.args.model, &cert.model.path) {
        (Some(path), _) => match models.get(&path.clone()) {
            Ok(m) => m,
            Err(e) => return Verdict::Unreadable(Error::Invalid(e)),
        },
        (None, Some(path)) => match models.get(Path::new(path)) {
            Ok(m) if m.fingerprint() != expected => {
                return Verdict::Rejected(format!(
                    "the certificate is for model {expected}, but the model at {path} has \
                     fingerprint {}: the file changed since; pass --model with the file whose \
                     fingerprint is {expected}",
                    m.fingerprint()
                ))
            }
            Ok(m) => m,
            Err(e) => {
                return unreadable(format!(
                    "its model ({path}, fingerprint {expected}) cannot be read: {e}; pass \
                     --model with the file whose fingerprint is {expected}"
                ))
            }
        },
        (None, None) => {
            return unreadable(format!(
                "the certificate records no model path; pass --model with the file whose \
                 fingerprint is {expected}"
            ))
        }
    };
    if let Some((path, inputs)) = inputs {
        if let Err(reason) = same_sample(cert, path, inputs) {
            return Verdict::Rejected(reason);
        }
    }
    match check_with(model, memo, cert) {
        Ok(acc) => Verdict::Accepted(Box::new(acc)),
        Err(r) => Verdict::Rejected(r.0),
    }
}

/// Whether the certificate's sample is row `sample.index` of the inputs file, value for value.
fn same_sample(
    cert: &Certificate,
    path: &Path,
    inputs: &Inputs,
) -> std::result::Result<(), String> {
    let index = cert.sample.index;
    if index >= inputs.len() {
        return Err(format!(
            "sample {index} is past the end of {} ({} inputs)",
            path.display(),
            inputs.len()
        ));
    }
    let row = inputs.row(index).map_err(|e| format!("{e:#}"))?;
    let values = &cert.sample.values;
    if row.len() != values.len() {
        return Err(format!(
            "the sample has {} values, row {index} of {} has {}",
            values.len(),
            path.display(),
            row.len()
        ));
    }
    match values.iter().zip(&row).position(|(a, b)| a != b) {
        Some(i) => Err(format!(
            "the sample's value {i} is {}, row {index} of {} holds {}",
            values[i],
            path.display(),
            row[i]
        )),
        None => Ok(()),
    }
}
