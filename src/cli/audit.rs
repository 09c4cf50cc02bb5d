//! `dtdcert audit`: every root of every layer, decided exactly, for every input.

use std::path::{Path, PathBuf};

use clap::Args;

use super::{absolute, parse_domain, DataArgs, ModelArgs, Outcome, RuleArgs, TargetArgs};
use crate::audit::spec::{RunSpec, Shard, Targets};
use crate::audit::{AuditSettings, CertifySettings, LpSettings, RecordsKept, RootSample};
use crate::audit::{OutputOptions, Runner};
use crate::error::{Error, Result};
use crate::model::inputs::{load_inputs, Inputs};
use crate::model::targets::load_targets;

/// Audit DTD roots: are they in the input's linear region and in the domain?
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  dtdcert audit --model examples/c6/model.onnx --inputs examples/c6/inputs.npy \\\n      --rule z+ --explain 0 --out audit-c6\n  \
dtdcert audit ... --out audit-c6 --shard 2/8        one of 8 shards; combine with `dtdcert merge`\n  \
dtdcert audit --resume audit-c6                      continue an interrupted run\n  \
dtdcert audit ... --records outside --compress      only invalid roots' records, zstd-compressed\n  \
dtdcert audit ... --roots-per-layer 64 --seed 1     judge 64 drawn roots per layer and sample\n\n\
Writes OUT/run.json at once and OUT/records.jsonl as samples finish (one line per input: per layer \
and neuron the relevance, the root verdict, the first violated neuron and its margin; --records \
outside or none keeps fewer neuron records, --compress writes OUT/records.jsonl.zst); at the end \
OUT/summary.json, OUT/summary.md, OUT/summary.html (and OUT/roots.csv with --csv).\n\
Exit code 1 with --fail-on-invalid when some root is outside its region or domain."
)]
#[command(group(clap::ArgGroup::new("destination").required(true).args(["out", "resume"])))]
pub struct AuditArgs {
    /// The network: an .onnx file, or a .json description with safetensors weights (with
    /// --resume alone: the one run.json names).
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "resume",
        requires = "inputs"
    )]
    pub model: Option<PathBuf>,
    /// The inputs: .npy or .npz (f32 or f64), one row per input.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "resume",
        requires = "model"
    )]
    pub inputs: Option<PathBuf>,
    /// The array to use from an .npz with several arrays.
    #[arg(long, value_name = "NAME", requires = "inputs")]
    pub inputs_key: Option<String>,
    /// How the model file is read (`--keep-batch-norm`, `--question`, `--question-text`).
    #[command(flatten)]
    pub reading: ModelArgs,
    /// `--rule`, `--input-rule`, `--layer-rule` and the rules' numerical options.
    #[command(flatten)]
    pub rules: RuleArgs,
    /// `--explain` or `--targets`: which output is explained for each input.
    #[command(flatten)]
    pub target: TargetArgs,
    /// The input domain box LO:HI (default: unbounded, or the zB rule's box).
    #[arg(long, value_name = "LO:HI", allow_hyphen_values = true)]
    pub domain: Option<String>,
    /// Compute roots and verdicts in exact rational arithmetic (small networks).
    #[arg(long)]
    pub exact: bool,
    /// Write the coordinates of every root into the records.
    #[arg(long)]
    pub roots: bool,
    /// Audit only shard K of N (1-based): the samples i with i mod N = K − 1.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,
    /// Judge a uniform random draw of K roots in every layer of every sample (all of a
    /// layer's roots where it has fewer) instead of every root; the summary gives each
    /// layer's fraction outside with its 95 % Wilson interval.
    #[arg(long, value_name = "K", allow_hyphen_values = true)]
    pub roots_per_layer: Option<String>,
    /// Seeds the draw of --roots-per-layer: sample i's roots come from stream 1 + i (ChaCha8)
    /// [default: 0].
    #[arg(long, value_name = "S", allow_hyphen_values = true)]
    pub seed: Option<String>,
    /// Also write OUT/roots.csv, one row per neuron record of every layer and sample.
    #[arg(long)]
    pub csv: bool,
    /// Which neuron records go into the records: all; outside (roots outside their region or
    /// domain, and certified neurons); none (each sample's line with its layers' relevance
    /// balance only). The summary counts every root whatever this says.
    /// [default: all]
    #[arg(long, value_name = "WHICH", value_parser = ["all", "outside", "none"])]
    pub records: Option<String>,
    /// Write the records zstd-compressed, to OUT/records.jsonl.zst.
    #[arg(long)]
    pub compress: bool,
    /// Exit with code 1 when some root is outside its region or domain.
    #[arg(long)]
    pub fail_on_invalid: bool,
    /// For roots outside their region or domain, certify whether the neuron has any valid
    /// root (exists) or how far the nearest one is (nearest = nearest-l1, nearest-linf);
    /// certificates go to OUT/certificates/.
    #[arg(long, value_name = "PROBLEM", value_parser = ["exists", "nearest", "nearest-l1", "nearest-linf"])]
    pub certify: Option<String>,
    /// With --certify: certify every root, valid ones included.
    #[arg(long, requires = "certify")]
    pub certify_all: bool,
    /// `--lp-time-limit` and `--lp-backend`, for `--certify` and the nearest-valid rule.
    #[command(flatten)]
    pub lp: super::certify::LpArgs,
    /// `--backend`, `--device` and `--precision`.
    #[command(flatten)]
    pub backend: super::BackendArgs,
    /// Also write FILE (JSON, outside the results): the seconds of the forward passes, the
    /// relevances and, per layer, building and deciding the judged roots, summed over the
    /// samples audited by this process (the default engine only).
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// No progress bar on stderr (the result line is still printed, on stdout).
    #[arg(long, short)]
    pub quiet: bool,
    /// The results folder (created; a finished earlier run there is replaced only with
    /// --force).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Replace a finished run in --out.
    #[arg(long, requires = "out")]
    pub force: bool,
    /// Continue the interrupted run in DIR: alone, with the model, inputs and settings its
    /// run.json records; arguments given beside it must agree with them.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
}

/// Runs (or with `--resume` continues) an audit into the results folder; `Found` when
/// `--fail-on-invalid` is given and some root is outside its region or domain.
pub fn run(args: AuditArgs) -> Result<Outcome> {
    let (model, inputs, spec) = match (&args.model, &args.inputs, &args.resume) {
        (Some(model), Some(inputs), _) => from_arguments(&args, model, inputs)?,
        (_, _, Some(dir)) => from_run(&args, dir)?,
        _ => unreachable!("clap requires --model and --inputs, or --resume"),
    };
    if args.csv && spec.settings.records == RecordsKept::None {
        return Err(Error::Usage(
            "--csv writes a row per neuron record, and this run keeps none (--records none)".into(),
        ));
    }
    let runner = Runner {
        backend: super::batch_backend(),
        reports: &crate::report::Reports,
        options: OutputOptions {
            progress: !args.quiet,
            csv: args.csv,
            force: args.force,
        },
    };
    // Ctrl-C and SIGTERM stop the run between samples, its records kept for --resume.
    crate::io::interrupt::install_handler();
    if args.profile.is_some() {
        if spec.settings.torch.is_some() {
            return Err(Error::Usage(
                "--profile times the default engine's phases; drop it or --backend torch".into(),
            ));
        }
        crate::io::profile::start();
    }
    let started = std::time::Instant::now();
    let ran = match (&args.out, &args.resume) {
        (_, Some(dir)) => runner.resume(&model, &inputs, &spec, dir).map(|s| (s, dir)),
        (Some(out), None) => runner.run(&model, &inputs, &spec, out).map(|s| (s, out)),
        (None, None) => unreachable!("clap requires --out or --resume"),
    };
    let (summary, dir) = match (ran, &args.profile) {
        (Ok(done), _) => done,
        // A run that computed something before its error keeps the profile of what it did.
        (Err(e), Some(path)) => {
            write_failed_profile(path, started.elapsed().as_secs_f64(), &e)?;
            return Err(e);
        }
        (Err(e), None) => return Err(e),
    };
    if let Some(path) = &args.profile {
        write_profile(path, started.elapsed().as_secs_f64(), summary.samples)?;
    }
    let t = &summary.total;
    // The result on stdout, whatever --quiet (which hides the progress bar).
    let judged = match spec.settings.root_sample {
        Some(draw) => format!(
            "{} roots judged of {} (up to {} per layer, seed {})",
            t.roots,
            t.roots + t.roots_not_judged,
            draw.roots_per_layer,
            draw.seed
        ),
        None => format!("{} roots", t.roots),
    };
    println!(
        "{} samples, {judged}: {} outside the region, {} out of the domain, {} valid; results in {}",
        summary.samples,
        t.roots_outside,
        t.roots_out_of_domain,
        t.roots_valid,
        dir.display()
    );
    let invalid = t.roots - t.roots_valid;
    Ok(if args.fail_on_invalid && invalid > 0 {
        Outcome::Found
    } else {
        Outcome::Clean
    })
}

/// Writes `--profile`: the run's wall-clock seconds and samples beside the phases' sums.
fn write_profile(path: &Path, wall_s: f64, samples: u64) -> Result<()> {
    let timed = crate::io::profile::finish().unwrap_or_default();
    let roots: u64 = timed.layers.iter().map(|l| l.roots).sum();
    let doc = serde_json::json!({
        "wall_s": wall_s,
        "samples_in_run": samples,
        "roots_judged": roots,
        "roots_per_s": roots as f64 / wall_s.max(f64::MIN_POSITIVE),
        "phases_summed_over_samples": timed,
    });
    crate::io::write_json_atomic(path, &doc)
}

/// Writes `--profile` for a run that ended with `error`, when it had timed some sample's
/// work (a run refused before computing anything writes nothing): the phases so far, and the
/// error's message.
fn write_failed_profile(path: &Path, wall_s: f64, error: &Error) -> Result<()> {
    let timed = crate::io::profile::finish().unwrap_or_default();
    if timed.samples == 0 {
        return Ok(());
    }
    let doc = serde_json::json!({
        "wall_s": wall_s,
        "error": error.to_string(),
        "phases_summed_over_samples": timed,
    });
    crate::io::write_json_atomic(path, &doc)
}

/// The settings the arguments give (every one, defaults included).
fn settings_of(args: &AuditArgs) -> Result<AuditSettings> {
    let dtd = args.rules.resolve_with(args.domain.as_deref())?;
    let torch = args.backend.resolve(&[("--exact", args.exact)], &[])?;
    let lp = args.lp.resolve()?;
    Ok(AuditSettings {
        dtd,
        domain: args.domain.as_deref().map(parse_domain).transpose()?,
        exact: args.exact,
        keep_points: args.roots,
        records: args.records.as_deref().map_or(RecordsKept::All, |name| {
            RecordsKept::parse(name).expect("clap checks the names")
        }),
        compress: args.compress,
        certify: args
            .certify
            .as_deref()
            .map(|name| -> Result<CertifySettings> {
                Ok(CertifySettings {
                    problem: CertifySettings::problem_named(name)?,
                    all: args.certify_all,
                    // Set where the files are known (from the arguments or the run).
                    model_path: None,
                    inputs_path: None,
                })
            })
            .transpose()?,
        lp: LpSettings {
            time_limit: lp.time_limit.expect("resolve sets a limit"),
            backend: lp.backend,
        },
        torch,
        root_sample: root_sample(args)?,
    })
}

/// `--roots-per-layer K [--seed S]`: K at least 1, S a whole number from 0 to 2^64 − 1, and
/// no seed without a draw.
fn root_sample(args: &AuditArgs) -> Result<Option<RootSample>> {
    let seed = match &args.seed {
        None => 0,
        Some(text) => text.trim().parse::<u64>().map_err(|_| {
            Error::Usage(format!(
                "--seed '{text}': expected a whole number from 0 to {}",
                u64::MAX
            ))
        })?,
    };
    let Some(text) = &args.roots_per_layer else {
        return match args.seed {
            Some(_) => Err(Error::Usage(
                "--seed seeds the draw of --roots-per-layer; give --roots-per-layer K with it"
                    .into(),
            )),
            None => Ok(None),
        };
    };
    match text.trim().parse::<usize>() {
        Ok(k) if k >= 1 => Ok(Some(RootSample {
            roots_per_layer: k,
            seed,
        })),
        _ => Err(Error::Usage(format!(
            "--roots-per-layer '{text}': expected a whole number of roots, at least 1"
        ))),
    }
}

/// A run as the arguments describe it.
fn from_arguments(
    args: &AuditArgs,
    model_path: &Path,
    inputs_path: &Path,
) -> Result<(crate::model::Model, Inputs, RunSpec)> {
    let shard = args.shard.as_deref().map(str::parse::<Shard>).transpose()?;
    let settings = settings_of(args)?;
    let data = DataArgs {
        model: model_path.to_path_buf(),
        inputs: inputs_path.to_path_buf(),
        inputs_key: args.inputs_key.clone(),
        reading: args.reading.clone(),
    };
    let (model, inputs) = data.load()?;
    let mut settings = settings;
    if let Some(certify) = settings.certify.as_mut() {
        certify.model_path = Some(absolute(model_path)?);
        certify.inputs_path = Some(absolute(inputs_path)?);
    }
    settings.dtd.set_layer_kinds(model.net().kinds());
    settings.check(&model)?;
    let targets = args.target.resolve(inputs.len())?;
    let mut spec = RunSpec::new(
        &model,
        model_path,
        &inputs,
        inputs_path,
        targets,
        settings,
        shard,
    )?;
    spec.model.question = args.reading.question(model_path)?;
    spec.model
        .question_text
        .clone_from(&args.reading.question_text);
    spec.model.keep_batch_norm = args.reading.keep_batch_norm;
    spec.model.strip_softmax = args.reading.strip_softmax;
    spec.model.split_residual = args.reading.split_residual;
    spec.inputs.key.clone_from(&args.inputs_key);
    Ok((model, inputs, spec))
}

/// The run recorded in `dir/run.json` (`--resume DIR` without `--model`): its model, inputs
/// and settings, but where an argument beside `--resume` says otherwise (the resumed run then
/// refuses the difference, naming the field).
fn from_run(args: &AuditArgs, dir: &Path) -> Result<(crate::model::Model, Inputs, RunSpec)> {
    let run_json = dir.join("run.json");
    let text = std::fs::read_to_string(&run_json).map_err(|e| {
        Error::Usage(format!(
            "--resume {}: no run to continue ({}: {e})",
            dir.display(),
            run_json.display()
        ))
    })?;
    let stored: RunSpec = serde_json::from_str(&text)
        .map_err(|e| Error::file(&run_json, format!("not a run description: {e}")))?;
    let recorded = |what: &str, path: &Path, e: Error| {
        Error::Usage(format!(
            "--resume {}: the run's {what} {} cannot be read ({e}); give --model and --inputs",
            dir.display(),
            path.display()
        ))
    };
    let reading = ModelArgs {
        keep_batch_norm: stored.model.keep_batch_norm,
        split_residual: stored.model.split_residual,
        question: stored.model.question.clone(),
        question_text: None,
        strip_softmax: stored.model.strip_softmax,
        max_memory: args.reading.max_memory,
    };
    let model = reading
        .load(&stored.model.path)
        .map_err(|e| recorded("model", &stored.model.path, e))?;
    if model.fingerprint() != stored.model.fingerprint {
        return Err(Error::Usage(format!(
            "--resume {}: {} is no longer the run's model (fingerprint {}, the run's is {}); \
             give --model and --inputs with the run's files",
            dir.display(),
            stored.model.path.display(),
            model.fingerprint(),
            stored.model.fingerprint
        )));
    }
    let inputs = load_inputs(&stored.inputs.path, stored.inputs.key.as_deref())
        .map_err(|e| recorded("inputs", &stored.inputs.path, e))?;
    inputs.check_width(&stored.inputs.path, model.net().input_dim())?;
    // What the arguments change from their defaults replaces the recorded value, so that the
    // comparison with run.json names it when it differs.
    let defaults = default_arguments();
    let given =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    let from_args = settings_of(args)?;
    let mut settings = stored.settings.clone();
    if given(&args.rules, &defaults.rules) {
        settings.dtd = from_args.dtd;
    }
    if given(&args.domain, &defaults.domain) {
        settings.domain = from_args.domain;
    }
    if args.exact {
        settings.exact = true;
    }
    if args.roots {
        settings.keep_points = true;
    }
    if args.records.is_some() {
        settings.records = from_args.records;
    }
    if args.compress {
        settings.compress = true;
    }
    if given(
        &(&args.certify, args.certify_all),
        &(&defaults.certify, defaults.certify_all),
    ) {
        settings.certify = from_args.certify;
    }
    if given(&args.lp, &defaults.lp) {
        settings.lp = from_args.lp;
    }
    if given(&args.backend, &defaults.backend) {
        settings.torch = from_args.torch;
    }
    if args.roots_per_layer.is_some() {
        settings.root_sample = from_args.root_sample;
    }
    if let Some(certify) = settings.certify.as_mut() {
        certify.model_path = Some(stored.model.path.clone());
        certify.inputs_path = Some(stored.inputs.path.clone());
    }
    settings.dtd.set_layer_kinds(model.net().kinds());
    settings.check(&model)?;
    let targets = match (given(&args.target, &defaults.target), &stored.targets) {
        (true, _) => args.target.resolve(inputs.len())?,
        (false, Targets::File { path, .. }) => {
            Targets::from_file(path.clone(), load_targets(path, inputs.len())?)
        }
        (false, recorded) => recorded.clone(),
    };
    let shard = match &args.shard {
        Some(text) => Some(text.parse::<Shard>()?),
        None => stored.shard,
    };
    let mut spec = RunSpec::new(
        &model,
        &stored.model.path,
        &inputs,
        &stored.inputs.path,
        targets,
        settings,
        shard,
    )?;
    spec.model.question = stored.model.question;
    spec.model.question_text = stored.model.question_text;
    spec.model.keep_batch_norm = stored.model.keep_batch_norm;
    spec.model.strip_softmax = stored.model.strip_softmax;
    spec.model.split_residual = stored.model.split_residual;
    spec.inputs.key = stored.inputs.key;
    Ok((model, inputs, spec))
}

/// The arguments of `audit --resume DIR` alone: every option at its default.
fn default_arguments() -> AuditArgs {
    use clap::FromArgMatches;
    let matches = <AuditArgs as clap::Args>::augment_args(clap::Command::new("audit"))
        .try_get_matches_from(["audit", "--resume", "."])
        .expect("--resume alone parses");
    AuditArgs::from_arg_matches(&matches).expect("--resume alone parses")
}
