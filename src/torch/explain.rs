//! Input relevances of many inputs on libtorch (`dtdcert explain --backend torch`): a batch
//! of inputs at a time on the device, in f32 or f64, without error bounds.

use ndarray::Array2;

use super::{default_batch, to_f64, TorchNet};
use crate::audit::spec::Targets;
use crate::dtd::{DtdSettings, InitialRelevance};
use crate::error::Result;
use crate::model::inputs::Inputs;
use crate::model::Model;

/// Input relevances by train-free DTD/LRP on `net` (`model`'s network on the device), one
/// row per input, `batch` inputs at a time (default: [`default_batch`]), and the relevance
/// each explanation started from (the explained output's value as the backend computes it,
/// or 1).
pub fn input_relevances(
    net: &TorchNet,
    model: &Model,
    inputs: &Inputs,
    targets: &Targets,
    dtd: &DtdSettings,
    batch: Option<usize>,
) -> Result<(Array2<f64>, Vec<f64>)> {
    let n = inputs.len();
    let d = model.net().input_dim();
    let batch = batch.unwrap_or_else(|| default_batch(model.net()));
    let mut flat: Vec<f64> = Vec::with_capacity(n * d);
    let mut starts = Vec::with_capacity(n);
    for start in (0..n).step_by(batch) {
        let end = (start + batch).min(n);
        let rows = inputs.batch(start..end)?;
        let wanted: Vec<Option<usize>> = (start..end).map(|i| targets.for_sample(i)).collect();
        let relevances = net.input_relevances(&net.input(&rows, end - start), &wanted, dtd)?;
        flat.extend(to_f64(&relevances.lower[0]));
        let outputs = to_f64(&relevances.output);
        let width = outputs.len() / (end - start);
        starts.extend(relevances.explained.iter().enumerate().map(|(b, &k)| {
            match dtd.initial_relevance {
                InitialRelevance::Output => outputs[b * width + k],
                InitialRelevance::One => 1.0,
            }
        }));
    }
    let relevances = Array2::from_shape_vec((n, d), flat).expect("one row of width d per input");
    Ok((relevances, starts))
}
