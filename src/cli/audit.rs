//! `dtdcert audit`: every root of every layer, decided exactly, for every input.

use std::path::PathBuf;

use clap::Args;

use super::{absolute, parse_domain, DataArgs, Outcome, RuleArgs, TargetArgs};
use crate::audit::spec::{RunSpec, Shard};
use crate::audit::{AuditSettings, CertifySettings, LpSettings};
use crate::audit::{OutputOptions, Runner};
use crate::check::Problem;
use crate::error::Result;

/// Audit DTD roots: are they in the input's linear region and in the domain?
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  dtdcert audit --model examples/c6/model.onnx --inputs examples/c6/inputs.npy \\\n      --rule z+ --explain 0 --out audit-c6\n  \
dtdcert audit ... --out audit-c6 --shard 2/8        one of 8 shards; combine with `dtdcert merge`\n  \
dtdcert audit ... --resume audit-c6                  continue an interrupted run (same arguments)\n\n\
Writes OUT/run.json at once and OUT/records.jsonl as samples finish (one line per input: per layer \
and neuron the relevance, the root verdict, the first violated neuron and its margin); at the end \
OUT/summary.json, OUT/summary.md, OUT/summary.html (and OUT/roots.csv with --csv).\n\
Exit code 1 with --fail-on-invalid when some root is outside its region or domain."
)]
#[command(group(clap::ArgGroup::new("destination").required(true).args(["out", "resume"])))]
pub struct AuditArgs {
    /// `--model`, `--inputs`, `--inputs-key` and how the model is read.
    #[command(flatten)]
    pub data: DataArgs,
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
    /// Also write OUT/roots.csv, one row per neuron of every layer and sample.
    #[arg(long)]
    pub csv: bool,
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
    /// No progress bar on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// The results folder (created; a complete earlier run there is replaced).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue the interrupted run in DIR; give the same arguments as when it started.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
}

/// Runs (or with `--resume` continues) an audit into the results folder; `Found` when
/// `--fail-on-invalid` is given and some root is outside its region or domain.
pub fn run(args: AuditArgs) -> Result<Outcome> {
    let dtd = args.rules.resolve()?;
    let domain = args.domain.as_deref().map(parse_domain).transpose()?;
    let shard = args.shard.as_deref().map(str::parse::<Shard>).transpose()?;
    let torch = args.backend.resolve(&[("--exact", args.exact)], &[])?;
    if args.exact && dtd.named_rules().iter().any(|r| r.needs_lp()) {
        return Err(crate::error::Error::Usage(
            "the nearest-valid rule finds roots with linear programs and cannot run with --exact"
                .into(),
        ));
    }
    let (model, inputs) = args.data.load()?;
    super::check_layer_rules(&dtd, &model)?;
    let targets = args.target.resolve(inputs.len())?;
    let settings = AuditSettings {
        dtd,
        domain,
        exact: args.exact,
        keep_points: args.roots,
        certify: match args.certify.as_deref() {
            None => None,
            Some(name) => Some(CertifySettings {
                problem: match name {
                    "exists" => Problem::Exists,
                    "nearest-linf" => Problem::NearestLinf,
                    _ => Problem::NearestL1,
                },
                all: args.certify_all,
                model_path: Some(absolute(&args.data.model)?),
                inputs_path: Some(absolute(&args.data.inputs)?),
            }),
        },
        lp: {
            let opts = args.lp.resolve()?;
            LpSettings {
                time_limit: opts.time_limit.expect("resolve sets a limit"),
                backend: opts.backend,
            }
        },
        torch,
    };
    let mut spec = RunSpec::new(
        &model,
        &args.data.model,
        &inputs,
        &args.data.inputs,
        targets,
        settings,
        shard,
    )?;
    spec.model.question = args.data.reading.question(&args.data.model)?;
    spec.model
        .question_text
        .clone_from(&args.data.reading.question_text);
    let runner = Runner {
        backend: super::batch_backend(),
        reports: &crate::report::Reports,
        options: OutputOptions {
            progress: !args.quiet,
            csv: args.csv,
        },
    };
    let (summary, dir) = match (&args.out, &args.resume) {
        (_, Some(dir)) => (runner.resume(&model, &inputs, &spec, dir)?, dir),
        (Some(out), None) => (runner.run(&model, &inputs, &spec, out)?, out),
        (None, None) => unreachable!("clap requires --out or --resume"),
    };
    let t = &summary.total;
    if !args.quiet {
        eprintln!(
            "{} samples, {} roots: {} outside the region, {} out of the domain, {} valid; results in {}",
            summary.samples,
            t.roots,
            t.roots_outside,
            t.roots_out_of_domain,
            t.roots_valid,
            dir.display()
        );
    }
    let invalid = t.roots - t.roots_valid;
    Ok(if args.fail_on_invalid && invalid > 0 {
        Outcome::Found
    } else {
        Outcome::Clean
    })
}
