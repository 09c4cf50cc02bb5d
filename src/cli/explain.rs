//! `dtdcert explain`: input relevances, one row per input.

use std::path::PathBuf;

use clap::Args;
use ndarray::Array2;
use rayon::prelude::*;

use super::{DataArgs, Outcome, RuleArgs, TargetArgs};
use crate::dtd::{explain, DtdSettings};
use crate::error::Result;
use crate::exact::{Rational, Scalar};
use crate::model::forward::{argmax, forward};
use crate::model::inputs::write_npy_f64_atomic;
use crate::model::Model;

/// Compute input relevances with DTD/LRP rules.
#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  dtdcert explain --model examples/c6/model.onnx --inputs examples/c6/inputs.npy \\\n      --rule z+ --explain 0 --out relevance.npy\n\nWrites an f64 .npy with one row of input relevances per input."
)]
pub struct ExplainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub rules: RuleArgs,
    #[command(flatten)]
    pub target: TargetArgs,
    /// Compute in exact rational arithmetic and round the result to f64 once.
    #[arg(long)]
    pub exact: bool,
    /// The output .npy file.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

pub fn run(args: ExplainArgs) -> Result<Outcome> {
    let dtd = args.rules.resolve()?;
    let (model, inputs) = args.data.load()?;
    let targets = args.target.resolve(inputs.len())?;
    targets.validate(model.net().output_dim())?;
    let n = inputs.len();
    let d = model.net().input_dim();
    let mut flat: Vec<f64> = Vec::with_capacity(n * d);
    // Rows are converted a chunk at a time, so the inputs are never held twice.
    for start in (0..n).step_by(CHUNK) {
        let end = (start + CHUNK).min(n);
        let rows: Vec<Vec<f64>> = (start..end).map(|i| inputs.row(i)).collect::<Result<_>>()?;
        let relevances: Vec<Vec<f64>> = rows
            .par_iter()
            .enumerate()
            .map(|(offset, x)| {
                relevance_row(
                    &model,
                    &dtd,
                    x,
                    targets.for_sample(start + offset),
                    args.exact,
                )
            })
            .collect();
        flat.extend(relevances.into_iter().flatten());
    }
    let array = Array2::from_shape_vec((n, d), flat).expect("one row of width d per input");
    write_npy_f64_atomic(&args.out, &array)?;
    Ok(Outcome::Clean)
}

const CHUNK: usize = 1024;

/// Input relevances of one input, in f64 or computed exactly and rounded once.
fn relevance_row(
    model: &Model,
    dtd: &DtdSettings,
    x: &[f64],
    target: Option<usize>,
    exact: bool,
) -> Vec<f64> {
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
