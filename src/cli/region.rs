//! `dtdcert region`: the activation pattern of one input and the size of its linear region.

use clap::Args;
use serde::Serialize;

use super::{check_sample, DataArgs, Outcome};
use crate::error::{Error, Result};
use crate::region::{trace_and_pattern, Decision};

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

#[derive(Serialize)]
struct LayerPattern {
    layer: usize,
    width: usize,
    relu: bool,
    /// The window of a max-pool layer; its pattern is each window's winner.
    #[serde(skip_serializing_if = "Option::is_none")]
    max_pool: Option<usize>,
    /// Outputs carried past the ReLU (the last ones of the layer); no constraints.
    #[serde(skip_serializing_if = "is_zero")]
    linear_tail: usize,
    active: Option<usize>,
    pattern: String,
}

#[derive(Serialize)]
struct RegionReport {
    sample: usize,
    layer: usize,
    /// The polytope's dimension: the width of the layer's input.
    dimension: usize,
    /// One constraint per ReLU neuron of the layers from `layer` up, and per max-pool entry
    /// that is not its window's winner.
    constraints: usize,
    pattern_decided_by: Decision,
    layers: Vec<LayerPattern>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Prints the sample's activation pattern and the size of P_L(x), as text or with `--json`
/// as JSON; always `Clean` when it succeeds.
pub fn run(args: RegionArgs) -> Result<Outcome> {
    let (model, inputs) = args.data.load()?;
    check_sample(&args.data.inputs, args.sample, inputs.len())?;
    let num_layers = model.net().layers().len();
    if args.layer == 0 || args.layer > num_layers {
        return Err(Error::Usage(format!(
            "--layer {} is out of range: the model has layers 1..{num_layers}",
            args.layer
        )));
    }
    let x = inputs.row(args.sample)?;
    let (_, pattern, decided_by) = trace_and_pattern(&model, &x);
    let m = args.layer - 1;
    let bits = pattern.bit_strings();
    let counts = pattern.active_counts();
    let report = RegionReport {
        sample: args.sample,
        layer: args.layer,
        dimension: model.net().layers()[m].affine.in_dim(),
        constraints: pattern.constraints_from(m),
        pattern_decided_by: decided_by,
        layers: model
            .net()
            .layers()
            .iter()
            .enumerate()
            .map(|(k, l)| LayerPattern {
                layer: k + 1,
                width: l.out_dim(),
                relu: l.relu,
                max_pool: l.max_pool,
                linear_tail: l.linear_tail,
                active: counts[k],
                pattern: bits[k].clone(),
            })
            .collect(),
    };
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
