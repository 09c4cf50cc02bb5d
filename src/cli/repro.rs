//! `dtdcert repro`: the paper's experiments.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use ndarray::Array2;
use serde::Serialize;

use super::{DataArgs, ModelArgs, Outcome};
use crate::dtd::Rule;
use crate::error::{Error, Result};
use crate::io::write_npy_f64_atomic;
use crate::io::OutputDir;
use crate::model::safetensors_json;
use crate::repro::mlp_roots::{self, MlpRootsSettings, RuleRow};

/// The subcommands of `dtdcert repro`.
#[derive(Subcommand, Debug)]
#[allow(missing_docs)] // each takes its description from its argument struct
pub enum ReproCommand {
    MlpRoots(MlpRootsArgs),
}

/// Claim C6: the fraction of train-free DTD roots outside the input's linear region.
#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  dtdcert repro mlp-roots --seed 0 --samples 1000 --out c6\n  dtdcert repro mlp-roots --model M.onnx --inputs X.npy --explain 0 --out c6-mine\n\n\
Writes OUT/mlp_roots.json and OUT/mlp_roots.md; for the generated network also \
OUT/model.json + OUT/model.safetensors and OUT/inputs.npy, so the run can be audited again."
)]
pub struct MlpRootsArgs {
    /// Seed of the generated network and inputs.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Inputs to draw (generated network only).
    #[arg(long, default_value_t = 1000)]
    pub samples: usize,
    /// Multiplier of positive weights (the reference code's effective 1.4³).
    #[arg(long, default_value_t = 2.744, allow_hyphen_values = true)]
    pub positive_weight_factor: f64,
    /// Multiplier of positive biases (the reference code's effective −1.96).
    #[arg(long, default_value_t = -1.96, allow_hyphen_values = true)]
    pub positive_bias_factor: f64,
    /// Comma-separated rules, one table row each.
    #[arg(long, default_value = "0,z+,gamma:1,w2", value_delimiter = ',')]
    pub rules: Vec<String>,
    /// Your own model (with --inputs) instead of the generated one.
    #[arg(long, value_name = "FILE", requires = "inputs")]
    pub model: Option<PathBuf>,
    /// Your own inputs (with --model).
    #[arg(long, value_name = "FILE", requires = "model")]
    pub inputs: Option<PathBuf>,
    /// The output to explain with --model (default: each input's top output).
    #[arg(long, value_name = "K")]
    pub explain: Option<usize>,
    /// The results folder (absent or empty; an earlier run only with --force).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace a finished run in --out.
    #[arg(long)]
    pub force: bool,
}

#[derive(Serialize)]
struct Report<'a> {
    tool: &'static str,
    version: &'static str,
    experiment: &'static str,
    source: serde_json::Value,
    settings: &'a MlpRootsSettings,
    rows: &'a [RuleRow],
}

/// Runs one experiment, writes its files into the results folder and prints its Markdown
/// table; always `Clean` when it succeeds.
pub fn run(command: ReproCommand) -> Result<Outcome> {
    match command {
        ReproCommand::MlpRoots(args) => mlp_roots_cmd(args),
    }
}

fn mlp_roots_cmd(args: MlpRootsArgs) -> Result<Outcome> {
    let rules = args
        .rules
        .iter()
        .map(|r| r.parse::<Rule>())
        .collect::<Result<Vec<_>>>()?;
    if let Some(r) = rules.iter().find(|r| !r.has_root()) {
        return Err(Error::Usage(format!(
            "--rules: {r} has no root form; use 0, z, z+, w2, gamma:G or zb:LO:HI"
        )));
    }
    for (name, v) in [
        ("--positive-weight-factor", args.positive_weight_factor),
        ("--positive-bias-factor", args.positive_bias_factor),
    ] {
        if !v.is_finite() {
            return Err(Error::Usage(format!("{name} must be finite")));
        }
    }
    let settings = MlpRootsSettings {
        seed: args.seed,
        samples: args.samples,
        positive_weight_factor: args.positive_weight_factor,
        positive_bias_factor: args.positive_bias_factor,
        rules,
        explain: args.explain.unwrap_or(0),
        ..MlpRootsSettings::default()
    };
    let dir = OutputDir::prepare(&args.out, "repro mlp-roots", args.force)?;
    let (rows, source, title) = match (&args.model, &args.inputs) {
        (Some(model_path), Some(inputs_path)) => {
            let data = DataArgs {
                model: model_path.clone(),
                inputs: inputs_path.clone(),
                inputs_key: None,
                reading: ModelArgs::default(),
            };
            let (model, inputs) = data.load()?;
            super::require_relu(&model, model_path, "repro")?;
            if let Some(k) = args.explain {
                crate::audit::spec::Targets::Index { index: k }
                    .validate(model.net().output_dim())?;
            }
            let rows_in: Vec<Vec<f64>> = (0..inputs.len())
                .map(|i| inputs.row(i))
                .collect::<Result<_>>()?;
            let rows = mlp_roots::rows_for_rules(&model, &rows_in, args.explain, &settings)?;
            let source = serde_json::json!({
                "model": model_path, "fingerprint": model.fingerprint(),
                "architecture": model.net().describe(), "inputs": inputs_path, "samples": inputs.len(),
                "explained": args.explain.map_or("each input's top output".to_string(), |k| format!("output {k}")),
            });
            (
                rows,
                source,
                format!(
                    "DTD roots outside the linear region: {}",
                    model_path.display()
                ),
            )
        }
        _ => {
            if args.samples == 0 {
                return Err(Error::Usage("--samples must be at least 1".into()));
            }
            let generated = mlp_roots::run_generated(&settings)?;
            safetensors_json::save(generated.model.net(), &dir.file("model.json"))?;
            let d = generated.model.net().input_dim();
            let flat: Vec<f64> = generated.inputs.iter().flatten().copied().collect();
            let array =
                Array2::from_shape_vec((generated.inputs.len(), d), flat).expect("rows of width d");
            write_npy_f64_atomic(&dir.file("inputs.npy"), &array)?;
            let source = serde_json::json!({
                "generated": "10-10-10-2 MLP, PyTorch default init, effective non-positive-bias treatment",
                "fingerprint": generated.model.fingerprint(), "model": "model.json", "inputs": "inputs.npy",
            });
            (
                generated.rows,
                source,
                "DTD roots outside the linear region (claim C6, 10-10-10-2 MLP)".to_string(),
            )
        }
    };
    let report = Report {
        tool: "dtdcert",
        version: env!("CARGO_PKG_VERSION"),
        experiment: "mlp-roots",
        source,
        settings: &settings,
        rows: &rows,
    };
    let json = serde_json::to_string_pretty(&report).expect("reports serialise");
    std::fs::write(dir.file("mlp_roots.json"), format!("{json}\n"))
        .map_err(|e| Error::write(dir.file("mlp_roots.json"), e))?;
    let md = mlp_roots::markdown(&title, &rows);
    std::fs::write(dir.file("mlp_roots.md"), &md)
        .map_err(|e| Error::write(dir.file("mlp_roots.md"), e))?;
    dir.commit("repro mlp-roots")?;
    print!("{md}");
    Ok(Outcome::Clean)
}
