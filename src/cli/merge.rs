//! `dtdcert merge`: combine the shards of one audit run.

use std::path::PathBuf;

use clap::Args;

use super::Outcome;
use crate::audit::merge::merge;
use crate::error::Result;

/// Combine the complete shard folders of one audit run into one results folder.
#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  for k in 1 2 3 4; do dtdcert audit --model M.onnx --inputs X.npy --shard $k/4 --out part-$k; done\n  \
dtdcert merge part-1 part-2 part-3 part-4 --out audit\n\n\
The merged folder is identical to what one run over all inputs writes. Shards of different \
runs (another model, inputs, rule or setting), a missing or doubled shard, or an unfinished \
shard are refused."
)]
pub struct MergeArgs {
    /// The shard folders, in any order.
    #[arg(required = true, value_name = "DIR")]
    pub shards: Vec<PathBuf>,
    /// Also write OUT/roots.csv.
    #[arg(long)]
    pub csv: bool,
    /// The merged results folder (not one of the shards).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace a finished audit run in --out.
    #[arg(long)]
    pub force: bool,
}

/// Merges the shard folders into `--out` (also `roots.csv` with `--csv`) and prints the
/// totals on stdout; fails for shards of different runs, or a missing, doubled or unfinished
/// shard.
pub fn run(args: MergeArgs) -> Result<Outcome> {
    let summary = merge(
        &args.shards,
        &args.out,
        args.csv,
        args.force,
        &crate::report::Reports,
    )?;
    println!(
        "merged {} shards: {} samples, {} roots, {} outside the region; results in {}",
        args.shards.len(),
        summary.samples,
        summary.total.roots,
        summary.total.roots_outside,
        args.out.display()
    );
    Ok(Outcome::Clean)
}
