//! The filter's first tier as the region uses it: affine layers evaluated in f64 with a
//! rigorous bound on each value's error, and the difference of two such values; and
//! [`Decision`], which tier settled a verdict. The second tier is `refined.rs`; what neither
//! settles is computed in exact rationals.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::exact::filter::{affine_bounded, Bounded};

/// How a verdict was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// f64 evaluation whose error bound settled every sign involved.
    Float,
    /// The f64 error bound could not settle a sign; a forward pass in double-double (each
    /// value an unevaluated sum of two f64, with its own error bound) did.
    Compensated,
    /// The f64 error bound could not settle a sign; values rounded once from exact sums of
    /// their products, with their own error bounds, did (the filter's second tier).
    Refined,
    /// Neither bound could settle a sign; exact rational arithmetic did.
    ExactFallback,
    /// Computed in exact rational arithmetic from the start (`--exact`).
    Exact,
    /// The sign as computed in the run's float precision, without an error bound (the
    /// torch backend).
    Unchecked,
}

impl Decision {
    /// The name records and reports use (`float`, `compensated`, `refined`,
    /// `exact-fallback`, `exact`, `unchecked`).
    pub fn name(self) -> &'static str {
        match self {
            Decision::Float => "float",
            Decision::Compensated => "compensated",
            Decision::Refined => "refined",
            Decision::ExactFallback => "exact-fallback",
            Decision::Exact => "exact",
            Decision::Unchecked => "unchecked",
        }
    }
}

/// `z[s] − z[o]` with a rigorous error bound, from values with bounds `e`.
pub(super) fn difference(z: &[f64], e: &[f64], s: usize, o: usize) -> Bounded {
    affine_bounded(&[1.0, -1.0], &[z[s], z[o]], Some(&[e[s], e[o]]), 0.0)
}

/// Layers with more rows than this are computed in parallel.
const PARALLEL_ROWS: usize = 4096;

/// One affine layer in f64 with per-output error bounds, from inputs with bounds `errors`
/// (empty: exact inputs).
pub(super) fn bounded_affine_layer(
    affine: &crate::model::Affine,
    input: &[f64],
    errors: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let errs = (!errors.is_empty()).then_some(errors);
    // A sparse row's inputs and their errors, gathered into buffers reused row after row.
    let row = |(x, x_err): &mut (Vec<f64>, Vec<f64>), j: usize| {
        let row = affine.row(j);
        let bias = *affine.bias(j);
        let b = if row.is_dense() {
            affine_bounded(row.values(), input, errs, bias)
        } else {
            x.clear();
            x_err.clear();
            for k in 0..row.connected() {
                let i = row.position(k);
                x.push(input[i]);
                if let Some(e) = errs {
                    x_err.push(e[i]);
                }
            }
            affine_bounded(row.values(), x, errs.map(|_| &x_err[..]), bias)
        };
        (b.value, b.error)
    };
    let out = affine.out_dim();
    if out > PARALLEL_ROWS {
        (0..out)
            .into_par_iter()
            .with_min_len(PARALLEL_ROWS / 16)
            .map_init(|| (Vec::new(), Vec::new()), row)
            .unzip()
    } else {
        let mut buffers = (Vec::new(), Vec::new());
        (0..out).map(|j| row(&mut buffers, j)).unzip()
    }
}

#[cfg(test)]
mod tests {
    use super::Decision::{self, *};

    #[test]
    fn decision_names_are_the_serialised_ones() {
        for d in [Float, Compensated, Refined, ExactFallback, Exact, Unchecked] {
            assert_eq!(serde_json::to_value(d).unwrap(), Decision::name(d));
        }
    }
}
