//! Claim C6 of Sixt & Landgraf (TMLR 2022): on a small ReLU MLP, train-free DTD puts the roots
//! of a substantial fraction of samples outside the input's linear region.
//!
//! The network is 10 → 10 → 10 → 2 with a ReLU after every layer, initialised as PyTorch does
//! (`W, b ~ U(−1/√fan_in, 1/√fan_in)`) and then given the reference code's *effective*
//! "non-positive bias" treatment: there the scaling ran three times by accident, so positive
//! weights are multiplied by 2.744 (= 1.4³), positive biases become −1.96·b, and everything
//! else is unchanged. Both factors are parameters. Inputs are `|N(0, I)|`, redrawn until
//! `f_0(x) > 0.1`; the explained output is logit 0. The reference notebook ran z+ for every
//! row of its table; here each row runs the rule it names. Verdicts are exact, not sampled.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal, Uniform};
use rayon::prelude::*;
use serde::Serialize;

use crate::audit::{audit_layer, AuditSettings};
use crate::dtd::{DtdSettings, RootOutcome, Rule};
use crate::error::{Error, Result};
use crate::model::forward::output;
use crate::model::ir::dense_layer;
use crate::model::{Model, Network};
use crate::region::Decision;

/// Settings of the generated experiment; serialised into the report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MlpRootsSettings {
    /// Seed of the generated network; the inputs come from a stream derived from it.
    pub seed: u64,
    /// Inputs to draw for the generated network (a user's inputs are all used).
    pub samples: usize,
    /// Multiplier of positive weights (reference code, effective: 1.4³ = 2.744).
    pub positive_weight_factor: f64,
    /// Multiplier of positive biases (reference code, effective: −1.96).
    pub positive_bias_factor: f64,
    /// Inputs are redrawn until the explained output exceeds this.
    pub min_output: f64,
    /// A root "leaves the output unchanged" when `|f_k(ã) − f_k(x)|` is below this.
    pub unchanged_tolerance: f64,
    /// The rules compared, one table row each (the rule of every layer in that row).
    pub rules: Vec<Rule>,
    /// The explained output of the generated experiment (with a user's model the report's
    /// `source.explained` says which output was explained).
    pub explain: usize,
    /// The DTD settings each row starts from: the row's rule replaces `rule`, and
    /// `input_rule` is cleared.
    pub dtd: DtdSettings,
}

impl Default for MlpRootsSettings {
    fn default() -> Self {
        Self {
            seed: 0,
            samples: 1000,
            positive_weight_factor: 1.4 * 1.4 * 1.4,
            positive_bias_factor: -1.96,
            min_output: 0.1,
            unchanged_tolerance: 1e-6,
            rules: vec![Rule::Zero, Rule::ZPlus, Rule::Gamma(1.0), Rule::WSquare],
            explain: 0,
            dtd: DtdSettings::default(),
        }
    }
}

/// The C6 network: PyTorch's default initialisation in f32, then the effective bias treatment.
pub fn c6_network(rng: &mut ChaCha8Rng, weight_factor: f64, bias_factor: f64) -> Result<Network> {
    let widths = [10usize, 10, 10, 2];
    let layers = widths
        .windows(2)
        .map(|w| {
            let (fan_in, fan_out) = (w[0], w[1]);
            let bound = 1.0 / (fan_in as f32).sqrt();
            let u = Uniform::new_inclusive(-bound, bound).expect("a valid range");
            let mut draw = |n: usize| -> Vec<f32> { (0..n).map(|_| u.sample(rng)).collect() };
            let weight: Vec<f64> = draw(fan_out * fan_in)
                .into_iter()
                .map(|v| {
                    if v > 0.0 {
                        (v as f64 * weight_factor) as f32 as f64
                    } else {
                        v as f64
                    }
                })
                .collect();
            let bias: Vec<f64> = draw(fan_out)
                .into_iter()
                .map(|v| {
                    if v > 0.0 {
                        (v as f64 * bias_factor) as f32 as f64
                    } else {
                        v as f64
                    }
                })
                .collect();
            dense_layer(fan_out, fan_in, weight, bias, true).expect("generated shapes agree")
        })
        .collect();
    Network::new(layers).map_err(|e| {
        Error::Usage(format!(
            "the factors {weight_factor} and {bias_factor} give an invalid network: {e}"
        ))
    })
}

/// `x = |N(0, I)|` in f32, redrawn until `f_k(x) > min_output`.
pub fn c6_inputs(
    net: &Network,
    rng: &mut ChaCha8Rng,
    n: usize,
    k: usize,
    min_output: f64,
) -> Result<Vec<Vec<f64>>> {
    let d = net.input_dim();
    let mut out = Vec::with_capacity(n);
    let mut attempts = 0u64;
    let limit = 1_000_000 + 1000 * n as u64;
    while out.len() < n {
        attempts += 1;
        if attempts > limit {
            return Err(Error::Usage(format!(
                "only {} of {n} inputs with f_{k}(x) > {min_output} in {limit} draws: output {k} of the \
                 generated network is almost never above the threshold (check --positive-weight-factor \
                 and --positive-bias-factor)",
                out.len()
            )));
        }
        let x: Vec<f64> = (0..d)
            .map(|_| {
                let v: f64 = StandardNormal.sample(rng);
                (v.abs() as f32) as f64
            })
            .collect();
        if output(net, &x)[k] > min_output {
            out.push(x);
        }
    }
    Ok(out)
}

/// One row of the C6 table.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RuleRow {
    /// The rule of layer 1 by name (`z+`, `gamma:1`, …).
    pub rule: String,
    /// Inputs explained.
    pub samples: u64,
    /// Input-layer roots (neurons of layer 1 with a root).
    pub roots: u64,
    /// Inputs with at least one input-layer root outside their linear region.
    pub samples_with_root_outside: u64,
    /// Input-layer roots outside the input's linear region (all layers' constraints).
    pub roots_outside: u64,
    /// Roots at which the explained output differs from `f_k(x)` by less than the tolerance.
    pub roots_output_unchanged: u64,
    /// Roots with some coordinate below 0.
    pub roots_with_negative_entries: u64,
    /// Layer-1 neurons with relevance but no root (denominator at or below the threshold).
    pub neurons_without_root: u64,
    /// Activation patterns and region verdicts that needed exact rational arithmetic.
    pub exact_fallbacks: u64,
    /// `samples_with_root_outside / samples` (0 without samples).
    pub fraction_samples_with_root_outside: f64,
    /// `roots_outside / roots` (0 without roots).
    pub fraction_roots_outside: f64,
    /// `roots_output_unchanged / roots` (0 without roots).
    pub fraction_roots_output_unchanged: f64,
    /// `roots_with_negative_entries / roots` (0 without roots).
    pub fraction_roots_with_negative_entries: f64,
}

impl RuleRow {
    fn add(&mut self, o: &RuleRow) {
        self.samples += o.samples;
        self.roots += o.roots;
        self.samples_with_root_outside += o.samples_with_root_outside;
        self.roots_outside += o.roots_outside;
        self.roots_output_unchanged += o.roots_output_unchanged;
        self.roots_with_negative_entries += o.roots_with_negative_entries;
        self.neurons_without_root += o.neurons_without_root;
        self.exact_fallbacks += o.exact_fallbacks;
    }

    fn finish(mut self) -> Self {
        let frac = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        self.fraction_samples_with_root_outside =
            frac(self.samples_with_root_outside, self.samples);
        self.fraction_roots_outside = frac(self.roots_outside, self.roots);
        self.fraction_roots_output_unchanged = frac(self.roots_output_unchanged, self.roots);
        self.fraction_roots_with_negative_entries =
            frac(self.roots_with_negative_entries, self.roots);
        self
    }
}

/// The input-layer root statistics of one sample under one rule. Whether a root lies outside
/// the region is the audit's verdict about the exact root ([`audit_layer`], which judges the
/// input layer's roots alone); the paper's other two measures are taken, as the paper takes
/// them, at the f64 root with a tolerance.
fn sample_row(model: &Model, dtd: &DtdSettings, x: &[f64], k: usize, tolerance: f64) -> RuleRow {
    let settings = AuditSettings {
        dtd: dtd.clone(),
        ..AuditSettings::default()
    };
    let roots =
        audit_layer(model, &settings, x, k, 0).expect("the C6 inputs and networks are finite");
    let fx = roots.output;
    let mut row = RuleRow {
        samples: 1,
        exact_fallbacks: u64::from(roots.pattern_decided_by == Decision::ExactFallback),
        ..RuleRow::default()
    };
    for n in &roots.neurons {
        if let Some(root) = &n.verdict {
            row.roots += 1;
            if root.decided_by == Decision::ExactFallback {
                row.exact_fallbacks += 1;
            }
            if !root.region.is_inside() {
                row.roots_outside += 1;
            }
        }
        match &n.outcome {
            RootOutcome::Root { point, .. } => {
                if (output(model.net(), point)[k] - fx).abs() < tolerance {
                    row.roots_output_unchanged += 1;
                }
                if point.iter().any(|&v| v < 0.0) {
                    row.roots_with_negative_entries += 1;
                }
            }
            RootOutcome::None(crate::dtd::NoRoot::SmallDenominator) => {
                row.neurons_without_root += 1
            }
            RootOutcome::None(_) => {}
        }
    }
    row.samples_with_root_outside = u64::from(row.roots_outside > 0);
    row
}

/// The C6 table for one rule over the given inputs.
pub fn rule_row(
    model: &Model,
    dtd: &DtdSettings,
    inputs: &[Vec<f64>],
    k: Option<usize>,
    tolerance: f64,
) -> RuleRow {
    let mut row = inputs
        .par_iter()
        .map(|x| {
            let k = k.unwrap_or_else(|| crate::model::forward::argmax(&output(model.net(), x)));
            sample_row(model, dtd, x, k, tolerance)
        })
        .reduce(RuleRow::default, |mut a, b| {
            a.add(&b);
            a
        });
    row.rule = dtd.rule_for(0).to_string();
    row.finish()
}

/// The generated experiment: network, inputs, and one row per rule.
pub struct Generated {
    /// The C6 network ([`c6_network`]).
    pub model: Model,
    /// The drawn inputs ([`c6_inputs`]), f32 values held as f64.
    pub inputs: Vec<Vec<f64>>,
    /// One row per rule, in the order of the settings' `rules`.
    pub rows: Vec<RuleRow>,
}

/// Runs the whole C6 experiment in memory (no files).
pub fn run_generated(settings: &MlpRootsSettings) -> Result<Generated> {
    let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
    if settings.explain >= 2 {
        return Err(Error::Usage(format!(
            "--explain {} is out of range: the generated network has 2 outputs (0..1)",
            settings.explain
        )));
    }
    let net = c6_network(
        &mut rng,
        settings.positive_weight_factor,
        settings.positive_bias_factor,
    )?;
    // A separate stream for the inputs, so the network does not depend on the sample count.
    let mut input_rng = ChaCha8Rng::seed_from_u64(settings.seed.wrapping_add(rng.random::<u64>()));
    let inputs = c6_inputs(
        &net,
        &mut input_rng,
        settings.samples,
        settings.explain,
        settings.min_output,
    )?;
    let model = Model::new(net);
    let rows = rows_for_rules(&model, &inputs, Some(settings.explain), settings)?;
    Ok(Generated {
        model,
        inputs,
        rows,
    })
}

/// One row per rule of `settings.rules` on a given model and inputs.
pub fn rows_for_rules(
    model: &Model,
    inputs: &[Vec<f64>],
    k: Option<usize>,
    settings: &MlpRootsSettings,
) -> Result<Vec<RuleRow>> {
    Ok(settings
        .rules
        .iter()
        .map(|&rule| {
            let dtd = DtdSettings {
                rule,
                input_rule: None,
                ..settings.dtd.clone()
            };
            rule_row(model, &dtd, inputs, k, settings.unchanged_tolerance)
        })
        .collect())
}

/// The Markdown table of the experiment.
pub fn markdown(title: &str, rows: &[RuleRow]) -> String {
    use std::fmt::Write;
    let mut out = format!("# {title}\n\n");
    out.push_str("| rule | samples | samples with a root outside | roots outside | roots leaving f_k unchanged | roots with negative entries | neurons without root | exact fallbacks |\n");
    out.push_str("|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} % ({}) | {:.1} % ({}/{}) | {:.1} % ({}) | {:.1} % ({}) | {} | {} |",
            r.rule,
            r.samples,
            100.0 * r.fraction_samples_with_root_outside,
            r.samples_with_root_outside,
            100.0 * r.fraction_roots_outside,
            r.roots_outside,
            r.roots,
            100.0 * r.fraction_roots_output_unchanged,
            r.roots_output_unchanged,
            100.0 * r.fraction_roots_with_negative_entries,
            r.roots_with_negative_entries,
            r.neurons_without_root,
            r.exact_fallbacks,
        );
    }
    out.push_str(
        "\nRoots examined: those of layer 1 (its input is the network input); region: the activation \
         pattern of every layer. Verdicts are exact (f64 with rigorous error bounds, rational fallback).\n",
    );
    out
}
