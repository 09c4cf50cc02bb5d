//! Rules chosen by kind of layer: `--kind-rule KIND=RULE`, and the named composites of Zennit
//! (`--composite`), which map each kind of layer to a rule and give the first layer its own.
//!
//! Zennit's composites (`zennit/composites.py`) as dtdcert reads them, with Zennit's default
//! parameters (ε = 1e-6, γ = 0.25):
//!
//! | composite | first layer | conv | dense | pool, add, batchnorm |
//! |---|---|---|---|---|
//! | `epsilon-plus` | (as its kind) | `z+` | `epsilon:1e-6` | `epsilon:1e-6` |
//! | `epsilon-plus-flat` | `flat` (first conv or dense) | `z+` | `epsilon:1e-6` | `epsilon:1e-6` |
//! | `epsilon-gamma-box:LO:HI` | `zb:LO:HI` (first conv) | `gamma:0.25` | `epsilon:1e-6` | `epsilon:1e-6` |
//!
//! Zennit gives average pooling and the residual sum its `Norm` rule, which splits relevance in
//! proportion to each input's contribution, the denominator stabilised by 1e-6: the ε rule
//! with ε = 1e-6 on a layer without bias. Batch norm, which Zennit merges into the layer
//! before it, passes relevance the same way when it is a layer of its own. Max-pool layers
//! pass relevance to each window's winner whatever the rule; layers of copies (`other`) keep
//! `--rule`. A composite's first-layer rule goes to the first layer of the kinds it names, as
//! Zennit's `first_map` does: an MLP has no convolution, so `epsilon-gamma-box` gives it no zB
//! layer.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::rules::Rule;
use crate::error::{Error, Result};
use crate::model::kind::LayerKind;

/// Which layers a `--kind-rule` applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KindTarget {
    /// `input`: layer 1, the layer whose input is the network input.
    Input,
    /// Every layer of this kind.
    Kind(LayerKind),
}

impl KindTarget {
    /// Every valid name, comma-separated (for error messages).
    pub fn names() -> String {
        format!("input, {}", LayerKind::names())
    }
}

impl fmt::Display for KindTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KindTarget::Input => f.write_str("input"),
            KindTarget::Kind(k) => write!(f, "{k}"),
        }
    }
}

impl FromStr for KindTarget {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if s.trim().eq_ignore_ascii_case("input") {
            return Ok(KindTarget::Input);
        }
        s.parse().map(KindTarget::Kind).map_err(|_| {
            Error::Usage(format!(
                "unknown layer kind '{s}' (valid: {})",
                KindTarget::names()
            ))
        })
    }
}

/// `--kind-rule KIND=RULE`: the rule of every layer of a kind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KindRule {
    /// `KIND`: the layers it applies to.
    pub target: KindTarget,
    /// `RULE`: their rule.
    pub rule: Rule,
}

impl fmt::Display for KindRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.target, self.rule)
    }
}

impl FromStr for KindRule {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self> {
        let (kind, rule) = text.split_once('=').ok_or_else(|| {
            Error::Usage(format!(
                "--kind-rule '{text}': expected KIND=RULE with KIND one of {}",
                KindTarget::names()
            ))
        })?;
        Ok(KindRule {
            target: kind.parse()?,
            rule: rule.trim().parse()?,
        })
    }
}

impl Serialize for KindRule {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for KindRule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A named composite: a rule per kind of layer and one for the first layer, as Zennit's
/// composites of the same names (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Composite {
    /// `epsilon-plus`: z+ on convolutions, ε = 1e-6 on dense layers.
    EpsilonPlus,
    /// `epsilon-plus-flat`: `epsilon-plus`, with flat on the first convolution or dense layer.
    EpsilonPlusFlat,
    /// `epsilon-gamma-box:LO:HI`: γ = 0.25 on convolutions, ε = 1e-6 on dense layers, zB with
    /// the box `[LO, HI]` on the first convolution.
    EpsilonGammaBox {
        /// The lowest input value.
        lo: f64,
        /// The highest input value.
        hi: f64,
    },
}

/// Zennit's default ε of its composites.
pub const COMPOSITE_EPSILON: f64 = 1e-6;
/// Zennit's default γ of `epsilon-gamma-box`.
pub const COMPOSITE_GAMMA: f64 = 0.25;

impl Composite {
    /// The names `--composite` accepts.
    pub const NAMES: &'static str = "epsilon-plus, epsilon-plus-flat, epsilon-gamma-box";

    /// The composite's rule for a layer of `kind` that is not its first layer; `None` where
    /// it leaves the layer to `--rule`.
    pub fn kind_rule(&self, kind: LayerKind) -> Option<Rule> {
        match kind {
            LayerKind::Conv => Some(match self {
                Composite::EpsilonPlus | Composite::EpsilonPlusFlat => Rule::ZPlus,
                Composite::EpsilonGammaBox { .. } => Rule::Gamma(COMPOSITE_GAMMA),
            }),
            LayerKind::Dense => Some(Rule::Epsilon(COMPOSITE_EPSILON)),
            LayerKind::Pool | LayerKind::Add | LayerKind::BatchNorm => {
                Some(Rule::Epsilon(COMPOSITE_EPSILON))
            }
            LayerKind::MaxPool | LayerKind::Other => None,
        }
    }

    /// The first layer's rule and the kinds that layer may have (the first layer of one of
    /// these kinds gets it); `None` when the composite has no first-layer rule.
    pub fn first_rule(&self) -> Option<(Rule, &'static [LayerKind])> {
        match self {
            Composite::EpsilonPlus => None,
            Composite::EpsilonPlusFlat => Some((Rule::Flat, &[LayerKind::Conv, LayerKind::Dense])),
            Composite::EpsilonGammaBox { lo, hi } => {
                Some((Rule::ZBox { lo: *lo, hi: *hi }, &[LayerKind::Conv]))
            }
        }
    }

    /// Parses a composite's name; `epsilon-gamma-box` takes its box from `LO:HI` after the
    /// name, or else from `domain` (the `--low`/`--high` or `--domain` options).
    pub fn parse(text: &str, domain: Option<(f64, f64)>) -> Result<Self> {
        let (name, rest) = match text.split_once(':') {
            Some((name, rest)) => (name.trim(), Some(rest)),
            None => (text.trim(), None),
        };
        let unknown = || {
            Error::Usage(format!(
                "unknown composite '{text}' (valid: {})",
                Self::NAMES
            ))
        };
        match (name.to_ascii_lowercase().as_str(), rest) {
            ("epsilon-plus", None) => Ok(Composite::EpsilonPlus),
            ("epsilon-plus-flat", None) => Ok(Composite::EpsilonPlusFlat),
            ("epsilon-gamma-box", rest) => {
                let (lo, hi) = match rest {
                    Some(rest) => parse_box(text, rest)?,
                    None => domain.ok_or_else(|| {
                        Error::Usage(format!(
                            "--composite {text}: give the input box with --low and --high (or \
                             --domain LO:HI, or epsilon-gamma-box:LO:HI)"
                        ))
                    })?,
                };
                Ok(Composite::EpsilonGammaBox { lo, hi })
            }
            _ => Err(unknown()),
        }
    }
}

/// `LO:HI` of `epsilon-gamma-box:LO:HI`: finite, `LO <= HI`.
fn parse_box(text: &str, rest: &str) -> Result<(f64, f64)> {
    let bad = || {
        Error::Usage(format!(
            "--composite {text}: expected epsilon-gamma-box:LO:HI with finite numbers, LO <= HI"
        ))
    };
    let (lo, hi) = rest.split_once(':').ok_or_else(bad)?;
    let lo: f64 = lo.trim().parse().map_err(|_| bad())?;
    let hi: f64 = hi.trim().parse().map_err(|_| bad())?;
    if !lo.is_finite() || !hi.is_finite() || lo > hi {
        return Err(bad());
    }
    Ok((lo, hi))
}

impl fmt::Display for Composite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Composite::EpsilonPlus => f.write_str("epsilon-plus"),
            Composite::EpsilonPlusFlat => f.write_str("epsilon-plus-flat"),
            Composite::EpsilonGammaBox { lo, hi } => write!(f, "epsilon-gamma-box:{lo}:{hi}"),
        }
    }
}

impl Serialize for Composite {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Composite {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Composite::parse(&s, None).map_err(serde::de::Error::custom)
    }
}
