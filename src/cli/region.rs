//! `dtdcert region`: the activation pattern of one input and the size of its linear region.

use clap::Args;

use super::{check_sample, DataArgs, Outcome};
use crate::error::Result;
use crate::region::report::{LayerPattern, RegionReport};

/// Show the activation pattern of one input and the polytope P_L(x) seen from layer L.
#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  dtdcert region --model examples/c6/model.onnx --inputs examples/c6/inputs.npy --sample 3 --layer 1 --json"
)]
pub struct RegionArgs {
    /// `--model`, `--inputs`, `--inputs-key` and how the model is read.
    #[command(flatten)]
    pub data: DataArgs,
    /// The input (row) to examine, 0-based.
    #[arg(long, value_name = "I")]
    pub sample: usize,
    /// The layer the region is seen from (1 = the network input).
    #[arg(long, value_name = "L", default_value_t = 1)]
    pub layer: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Prints the sample's activation pattern and the size of P_L(x), as text or with `--json`
/// as JSON; always `Clean` when it succeeds.
pub fn run(args: RegionArgs) -> Result<Outcome> {
    let (model, inputs) = args.data.load()?;
    check_sample(&args.data.inputs, args.sample, inputs.len())?;
    let x = inputs.row(args.sample)?;
    let report = RegionReport::new(&model, args.sample, &x, args.layer)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("reports serialise")
        );
    } else {
        println!(
            "sample {}: region P_{}(x) is a polytope in {} dimensions with {} constraints (pattern decided by {})",
            report.sample, report.layer, report.dimension, report.constraints, report.pattern_decided_by.name()
        );
        for l in &report.layers {
            if let Some(line) = piece_line(l) {
                println!("{line}");
                continue;
            }
            match (l.active, l.max_pool) {
                (Some(a), _) if l.linear_tail > 0 => println!(
                    "  layer {}: {a}/{} active, {} carried without ReLU  {}",
                    l.layer,
                    l.width - l.linear_tail,
                    l.linear_tail,
                    l.pattern
                ),
                (Some(a), _) => {
                    println!("  layer {}: {a}/{} active  {}", l.layer, l.width, l.pattern)
                }
                (None, Some(w)) => println!(
                    "  layer {}: {} max-pool windows of {w}, winners  {}",
                    l.layer, l.width, l.pattern
                ),
                (None, None) => println!("  layer {}: {} outputs, no ReLU", l.layer, l.width),
            }
        }
    }
    Ok(Outcome::Clean)
}

/// The line of a layer under Clip, LeakyRelu or PRelu: how many neurons are on each piece, and
/// the pattern (`0` below, `1` between, `2` above the bounds for Clip; `1` above 0 and `0`
/// below for LeakyRelu and PRelu); `None` for other layers.
fn piece_line(l: &LayerPattern) -> Option<String> {
    let op = l.activation?;
    let carried = if l.linear_tail > 0 {
        format!(", {} carried without activation", l.linear_tail)
    } else {
        String::new()
    };
    let counts = match l.pieces {
        Some([below, between, above]) => {
            format!("{below} below min, {between} between, {above} above max")
        }
        None => {
            let active = l.active.unwrap_or(0);
            let width = l.width - l.linear_tail;
            format!(
                "{active} above 0 (slope 1), {} below (own slope)",
                width - active
            )
        }
    };
    Some(format!(
        "  layer {} ({op}): {counts}{carried}  {}",
        l.layer, l.pattern
    ))
}
