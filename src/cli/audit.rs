//! `dtdcert audit`: every root of every layer, decided exactly, for every input.

use std::path::PathBuf;

use clap::Args;

use super::{parse_domain, DataArgs, Outcome, RuleArgs, TargetArgs};
use crate::audit::run::{run as run_audit, RunIdentity};
use crate::audit::AuditSettings;
use crate::error::Result;

/// Audit DTD roots: are they in the input's linear region and in the domain?
#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  dtdcert audit --model examples/c6/model.onnx --inputs examples/c6/inputs.npy \\\n      --rule z+ --explain 0 --out audit-c6\n\nWrites OUT/records.jsonl (one line per input: per layer and neuron the relevance, the root \
verdict, the first violated neuron and its margin), OUT/summary.json and OUT/summary.md.\n\
Exit code 1 with --fail-on-invalid when some root is outside its region or domain."
)]
pub struct AuditArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub rules: RuleArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    /// The input domain box LO:HI (default: unbounded, or the zB rule's box).
    #[arg(long, value_name = "LO:HI")]
    pub domain: Option<String>,
    /// Compute roots and verdicts in exact rational arithmetic (small networks).
    #[arg(long)]
    pub exact: bool,
    /// Write the coordinates of every root into the records.
    #[arg(long)]
    pub roots: bool,
    /// Exit with code 1 when some root is outside its region or domain.
    #[arg(long)]
    pub fail_on_invalid: bool,
    /// No progress line on stderr.
    #[arg(long, short)]
    pub quiet: bool,
    /// The results folder (created; an earlier run there is replaced).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

pub fn run(args: AuditArgs) -> Result<Outcome> {
    let dtd = args.rules.resolve()?;
    let domain = args.domain.as_deref().map(parse_domain).transpose()?;
    let (model, inputs) = args.data.load()?;
    let targets = args.target.resolve(inputs.len())?;
    let settings = AuditSettings {
        dtd,
        domain,
        exact: args.exact,
        keep_points: args.roots,
    };
    let identity = RunIdentity {
        model_path: args.data.model.clone(),
        inputs_path: args.data.inputs.clone(),
    };
    let summary = run_audit(
        &model,
        &inputs,
        &identity,
        &targets,
        &settings,
        &args.out,
        !args.quiet,
    )?;
    let t = &summary.total;
    if !args.quiet {
        eprintln!(
            "{} samples, {} roots: {} outside the region, {} out of the domain, {} valid; results in {}",
            summary.samples,
            t.roots,
            t.roots_outside,
            t.roots_out_of_domain,
            t.roots_valid,
            args.out.display()
        );
    }
    let invalid = t.roots - t.roots_valid;
    Ok(if args.fail_on_invalid && invalid > 0 {
        Outcome::Found
    } else {
        Outcome::Clean
    })
}
