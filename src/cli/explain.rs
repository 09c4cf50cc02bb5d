//! `dtdcert explain`: input relevances, one row per input.

use std::path::PathBuf;

use clap::Args;
use ndarray::Array2;
use rayon::prelude::*;

use super::{DataArgs, Outcome, RuleArgs, TargetArgs};
use crate::dtd::explain;
use crate::error::Result;
use crate::exact::{Rational, Scalar};
use crate::model::forward::{argmax, forward};
use crate::model::inputs::write_npy_f64_atomic;

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
    let rows: Vec<Vec<f64>> = (0..n).map(|i| inputs.row(i)).collect::<Result<_>>()?;
    let relevances: Vec<Vec<f64>> = rows
        .par_iter()
        .enumerate()
        .map(|(i, x)| {
            if args.exact {
                let xr: Vec<Rational> = x.iter().map(|&v| Rational::from_f64(v)).collect();
                let trace = forward(model.exact(), &xr);
                let out: Vec<f64> = trace.output().iter().map(Scalar::to_f64).collect();
                let k = targets.for_sample(i).unwrap_or_else(|| argmax(&out));
                explain(model.exact(), &trace, &dtd, k, false)
                    .input_relevance()
                    .iter()
                    .map(Scalar::to_f64)
                    .collect()
            } else {
                let trace = forward(model.net(), x);
                let k = targets
                    .for_sample(i)
                    .unwrap_or_else(|| argmax(trace.output()));
                explain(model.net(), &trace, &dtd, k, false)
                    .input_relevance()
                    .to_vec()
            }
        })
        .collect();
    let flat: Vec<f64> = relevances.into_iter().flatten().collect();
    let array = Array2::from_shape_vec((n, d), flat).expect("one row of width d per input");
    write_npy_f64_atomic(&args.out, &array)?;
    Ok(Outcome::Clean)
}
