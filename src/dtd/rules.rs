//! DTD root rules and the LRP rules without a root form, and their string syntax.
//!
//! For a neuron `j` with weights `w_j` and input `a`, a root rule picks a search
//! direction `v`; the root is `ã = a − t v` with `t = R_j / (w_j · v)`, so that
//! `w_j · ã = w_j · a − R_j`, and the neuron passes `w_ji (a_i − ã_i) = w_ji t v_i` to
//! input `i` (Montavon et al. 2017; Sixt & Landgraf 2022). `1[w >= 0]` counts zero
//! weights as positive; `w⁺ = max(w, 0)`, `w⁻ = min(w, 0)`. `β` is the rule's bias term
//! of the denominator, `t = R_j / (w_j · v + β)`, used with `--bias include`
//! ([`BiasMode`]; `--bias plain` uses `b` itself).
//!
//! No rule acts on an identity neuron ([`Layer::identity`]: an output without activation that
//! copies one input with weight exactly 1 and bias exactly 0, a value carried past its layer
//! beside what the layer computes, as the input of a residual connection): it passes its
//! relevance whole to the input it copies and has no root, in every engine, as a max-pool
//! layer passes each window's relevance to its winner. The network it stands for has no
//! neuron there (Zennit's identity passes the relevance whole too).
//!
//! [`Layer::identity`]: crate::model::ir::Layer::identity
//!
//! References:
//! - Montavon et al. 2017: "Explaining Nonlinear Classification Decisions with Deep
//!   Taylor Decomposition", Pattern Recognition 65 (DTD; the z+, w² and zB rules).
//! - Bach et al. 2015: "On Pixel-Wise Explanations for Non-Linear Classifier Decisions
//!   by Layer-Wise Relevance Propagation", PLOS ONE 10(7) (LRP; the z, ε and αβ rules).
//! - Montavon et al. 2019: "Layer-Wise Relevance Propagation: An Overview", in
//!   Explainable AI, LNCS 11700 (LRP-γ, and the names and conventions of LRP-0, LRP-ε,
//!   LRP-αβ, flat and w²).
//! - Sixt & Landgraf 2022: "A Rigorous Study of the Deep Taylor Decomposition", TMLR
//!   (the paper dtdcert checks).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::region::problem::Norm;

/// A relevance rule for one layer, as `--rule`, `--input-rule` and `--layer-rule` write it
/// (each variant's doc opens with its string; aliases in parentheses).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rule {
    /// `0` (or `zero`): `v = a` with `t = 1`, so the root is the origin, `ã = 0`, and
    /// `R_i = w_ji a_i` whatever `R_j`; `R_j − w_j · a` stays unresolved. Not conservative;
    /// kept for parity with Sixt & Landgraf 2022. No `β`, no denominator threshold.
    Zero,
    /// `z` (or `x`): `v = a`, so `R_i = a_i w_ji / (w_j · a + β) · R_j` with `β = b`:
    /// LRP-0 (Bach et al. 2015's z-rule; Montavon et al. 2019), without bias by default.
    Z,
    /// `z+` (or `zplus`): `v = a ⊙ 1[w >= 0]`, so
    /// `R_i = a_i w_ji⁺ / (Σ_i' a_i' w_ji'⁺ + β) · R_j` with `β = max(b, 0)`: DTD's z+ rule
    /// for ReLU layers, whose inputs are `>= 0` (Montavon et al. 2017); relevance equals
    /// LRP-α1β0 (Bach et al. 2015) with the bias ignored.
    ZPlus,
    /// `gamma:G`: `v = a ⊙ (1 + G 1[w >= 0])`, `G >= 0`, so
    /// `R_i = a_i (w_ji + G w_ji⁺) / (Σ_i' a_i' (w_ji' + G w_ji'⁺) + β) · R_j` with
    /// `β = b + G max(b, 0)`: LRP-γ (Montavon et al. 2019); `G = 0` is `z`.
    Gamma(f64),
    /// `w2` (or `w^2`, `wsquare`): `v = w_j`, so `R_i = w_ji² / (Σ_i' w_ji'² + β) · R_j`
    /// with `β = b²`: DTD's w² rule for an unbounded input domain (Montavon et al. 2017),
    /// LRP-w² (Montavon et al. 2019).
    WSquare,
    /// `zb:LO:HI` (or `zbox`): `v = a − lo 1[w >= 0] − hi 1[w < 0]`, so
    /// `R_i = (a_i w_ji − lo w_ji⁺ − hi w_ji⁻) / Σ_i' (…) · R_j`: DTD's zB rule for
    /// inputs in the box `[lo, hi]` (Montavon et al. 2017), LRP-zB. `β = 0`: the bias
    /// cancels.
    ZBox {
        /// `LO`: the lower bound of every input coordinate (finite).
        lo: f64,
        /// `HI`: the upper bound of every input coordinate (finite, `>= lo`).
        hi: f64,
    },
    /// `epsilon:E` (or `eps`): LRP-ε, `R_i = a_i w_ji / (z_j + E sign(z_j)) · R_j` with
    /// `z_j = w_j · a` (`+ b` unless the bias is ignored), `E >= 0`, `sign(0) = +1`
    /// (Bach et al. 2015; Montavon et al. 2019). No root form; `--stabilizer` does not
    /// apply (`E` is its own).
    Epsilon(f64),
    /// `alphabeta:A:B` (or `ab`): LRP-αβ,
    /// `R_i = (A (a_i w_ji)⁺ / z_j⁺ − B (a_i w_ji)⁻ / z_j⁻) · R_j` with
    /// `z_j^± = Σ_i (a_i w_ji)^±` (`+ b^±` unless the bias is ignored), each side
    /// stabilised on its own by `--stabilizer` (Bach et al. 2015; Montavon et al. 2019).
    /// No root form. Any `A, B >= 0` are accepted (Bach et al. require `A − B = 1`).
    AlphaBeta {
        /// `A >= 0`: the weight of the positive contributions.
        alpha: f64,
        /// `B >= 0`: the weight of the negative contributions.
        beta: f64,
    },
    /// `flat`: `R_i = R_j / n` over the `n` inputs neuron `j` is connected to (every input
    /// of a dense layer, a convolution's window), `n` stabilised by `--stabilizer`
    /// (Montavon et al. 2019). No root form.
    Flat,
    /// `nearest-valid:l1|linf`: the root is the valid root (in the input's region and the
    /// domain, on the neuron's root hyperplane) nearest to `a` in the L1 or L∞ norm, from a
    /// certified linear program; `R_i = w_ji (a_i − ã_i)`. Not from a paper: dtdcert's
    /// root finder that is valid by construction, for the validity Sixt & Landgraf 2022
    /// ask of roots. Needs the LP path (the `lp` layer above this one finds the roots;
    /// without it the rule passes nothing).
    NearestValid(Norm),
}

impl Rule {
    /// Whether the rule's root follows from a search direction (the DTD rules): false for
    /// the LRP rules without a root form and for `nearest-valid`, whose roots come from
    /// linear programs ([`Rule::needs_lp`]).
    pub fn has_root(&self) -> bool {
        !matches!(self, Rule::Epsilon(_) | Rule::AlphaBeta { .. } | Rule::Flat) && !self.needs_lp()
    }

    /// Whether the rule's roots come from linear programs (not from a root direction).
    pub fn needs_lp(&self) -> bool {
        matches!(self, Rule::NearestValid(_))
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::Zero => write!(f, "0"),
            Rule::Z => write!(f, "z"),
            Rule::ZPlus => write!(f, "z+"),
            Rule::Gamma(g) => write!(f, "gamma:{g}"),
            Rule::WSquare => write!(f, "w2"),
            Rule::ZBox { lo, hi } => write!(f, "zb:{lo}:{hi}"),
            Rule::Epsilon(e) => write!(f, "epsilon:{e}"),
            Rule::AlphaBeta { alpha, beta } => write!(f, "alphabeta:{alpha}:{beta}"),
            Rule::Flat => write!(f, "flat"),
            Rule::NearestValid(Norm::L1) => write!(f, "nearest-valid:l1"),
            Rule::NearestValid(Norm::Linf) => write!(f, "nearest-valid:linf"),
        }
    }
}

impl Serialize for Rule {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

const RULE_SYNTAX: &str = "expected one of 0, z, z+, w2, gamma:G, zb:LO:HI, epsilon:E, \
     alphabeta:A:B, flat, nearest-valid:l1, nearest-valid:linf";

fn number(text: &str, what: &str, rule: &str) -> Result<f64> {
    let v: f64 = text
        .parse()
        .map_err(|_| Error::Usage(format!("rule '{rule}': {what} '{text}' is not a number")))?;
    if !v.is_finite() {
        return Err(Error::Usage(format!(
            "rule '{rule}': {what} must be finite"
        )));
    }
    Ok(v)
}

impl FromStr for Rule {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.trim().split(':').collect();
        let name = parts[0].to_ascii_lowercase();
        let args = &parts[1..];
        let want = |n: usize| -> Result<()> {
            if args.len() == n {
                Ok(())
            } else {
                Err(Error::Usage(format!(
                    "rule '{s}': '{name}' takes {n} parameter(s), got {}; {RULE_SYNTAX}",
                    args.len()
                )))
            }
        };
        let rule = match name.as_str() {
            "0" | "zero" => {
                want(0)?;
                Rule::Zero
            }
            "z" | "x" => {
                want(0)?;
                Rule::Z
            }
            "z+" | "zplus" => {
                want(0)?;
                Rule::ZPlus
            }
            "w2" | "w^2" | "wsquare" => {
                want(0)?;
                Rule::WSquare
            }
            "flat" => {
                want(0)?;
                Rule::Flat
            }
            "gamma" => {
                want(1)?;
                let g = number(args[0], "gamma", s)?;
                if g < 0.0 {
                    return Err(Error::Usage(format!("rule '{s}': gamma must be >= 0")));
                }
                Rule::Gamma(g)
            }
            "zb" | "zbox" => {
                want(2)?;
                let lo = number(args[0], "LO", s)?;
                let hi = number(args[1], "HI", s)?;
                if lo > hi {
                    return Err(Error::Usage(format!("rule '{s}': LO must not exceed HI")));
                }
                Rule::ZBox { lo, hi }
            }
            "epsilon" | "eps" => {
                want(1)?;
                let e = number(args[0], "epsilon", s)?;
                if e < 0.0 {
                    return Err(Error::Usage(format!("rule '{s}': epsilon must be >= 0")));
                }
                Rule::Epsilon(e)
            }
            "alphabeta" | "ab" => {
                want(2)?;
                let alpha = number(args[0], "alpha", s)?;
                let beta = number(args[1], "beta", s)?;
                if alpha < 0.0 || beta < 0.0 {
                    return Err(Error::Usage(format!(
                        "rule '{s}': alpha and beta must be >= 0"
                    )));
                }
                Rule::AlphaBeta { alpha, beta }
            }
            "nearest-valid" => {
                want(1)?;
                match args[0].to_ascii_lowercase().as_str() {
                    "l1" => Rule::NearestValid(Norm::L1),
                    "linf" => Rule::NearestValid(Norm::Linf),
                    other => {
                        return Err(Error::Usage(format!(
                            "rule '{s}': norm '{other}' is not l1 or linf"
                        )))
                    }
                }
            }
            _ => return Err(Error::Usage(format!("unknown rule '{s}': {RULE_SYNTAX}"))),
        };
        Ok(rule)
    }
}

/// The relevance the explained output starts the recursion with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum InitialRelevance {
    /// `R_k = f_k(x)`, the output's value: DTD's convention and Captum's.
    #[default]
    Output,
    /// `R_k = 1`: the one-hot start that Zennit's usual `attr_output` gives.
    One,
}

/// Whether rules take the layer's bias into their denominators.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum BiasMode {
    /// DTD's z+ and the paper ignore biases: relevance is conserved exactly.
    #[default]
    Ignore,
    /// The bias (its rule-specific part) enters the denominator and absorbs relevance.
    Include,
    /// The layer's bias as it is enters the denominator, whatever the rule does to the weights
    /// (Captum's γ and α1β0 rules with their bias kept). For ε and α-β the same as `include`.
    Plain,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_rule_and_prints_it_back() {
        for text in [
            "0",
            "z",
            "z+",
            "w2",
            "gamma:0.25",
            "zb:-1:1",
            "epsilon:0.01",
            "alphabeta:2:1",
            "flat",
            "nearest-valid:l1",
            "nearest-valid:linf",
        ] {
            let rule: Rule = text.parse().unwrap();
            assert_eq!(rule.to_string(), text);
            assert_eq!(rule.to_string().parse::<Rule>().unwrap(), rule);
        }
        assert_eq!("x".parse::<Rule>().unwrap(), Rule::Z);
    }

    #[test]
    fn rejects_bad_rules_with_the_reason() {
        for (text, needle) in [
            ("gamma", "takes 1 parameter"),
            ("gamma:abc", "not a number"),
            ("gamma:-1", ">= 0"),
            ("zb:1:0", "LO must not exceed HI"),
            ("zb:0:inf", "finite"),
            ("lrp", "unknown rule"),
            ("z+:1", "takes 0 parameter"),
            ("nearest-valid:l2", "not l1 or linf"),
        ] {
            let err = text.parse::<Rule>().unwrap_err().to_string();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
}
