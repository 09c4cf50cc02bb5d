//! The settings of one explanation: the rule of each layer (one for all, another for the
//! input layer, single layers overridden) and the numbers the rules use.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::rules::{BiasMode, InitialRelevance, Rule};

/// Rules and numerical settings of one explanation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DtdSettings {
    /// The rule of every layer except the first.
    pub rule: Rule,
    /// The rule of the first layer (the one whose input is the network input); `None`: `rule`.
    pub input_rule: Option<Rule>,
    /// Whether denominators include the (rule-specific) bias. Default: ignore.
    pub bias: BiasMode,
    /// `ε` added as `ε · sign(d)` to the denominator `d` of every rule but ε (which has its
    /// own); 0 disables it.
    pub stabilizer: f64,
    /// A neuron whose `|denominator|` is at or below this gets no root. Default 1e-5.
    pub denominator_threshold: f64,
    /// What the explained output's relevance starts as (train-free recursion).
    #[serde(default)]
    pub initial_relevance: InitialRelevance,
    /// Rules of single layers, overriding `rule` and `input_rule` (the last one given for a
    /// layer wins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layer_rules: Vec<LayerRule>,
}

/// The rule of one layer, 1-based as the command line counts layers.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerRule {
    /// `L` of `--layer-rule L=RULE`: the layer, from 1 (the layer taking the network
    /// input); a convolutional network's pooling and batch-norm layers count.
    pub layer: usize,
    /// `RULE`: the layer's rule, overriding `--rule` and `--input-rule` there.
    pub rule: Rule,
}

impl fmt::Display for LayerRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.layer, self.rule)
    }
}

impl Default for DtdSettings {
    fn default() -> Self {
        Self {
            rule: Rule::ZPlus,
            input_rule: None,
            bias: BiasMode::Ignore,
            stabilizer: 0.0,
            denominator_threshold: 1e-5,
            initial_relevance: InitialRelevance::Output,
            layer_rules: Vec::new(),
        }
    }
}

impl DtdSettings {
    /// The input box `[lo, hi]` of a zB rule at the first layer, if that is the input rule.
    pub fn input_rule_box(&self) -> Option<(f64, f64)> {
        match self.rule_for(0) {
            Rule::ZBox { lo, hi } => Some((lo, hi)),
            _ => None,
        }
    }

    /// The rule of layer `index` (0-based).
    pub fn rule_for(&self, index: usize) -> Rule {
        if let Some(l) = self.layer_rules.iter().rev().find(|l| l.layer == index + 1) {
            return l.rule;
        }
        match (index, self.input_rule) {
            (0, Some(r)) => r,
            _ => self.rule,
        }
    }

    /// Every rule the settings name (whether or not a layer uses it).
    pub fn named_rules(&self) -> Vec<Rule> {
        let mut rules = vec![self.rule];
        rules.extend(self.input_rule);
        rules.extend(self.layer_rules.iter().map(|l| l.rule));
        rules
    }

    /// Refuses per-layer rules for layers the network does not have.
    pub fn check_layers(&self, layers: usize) -> Result<(), String> {
        match self
            .layer_rules
            .iter()
            .find(|l| l.layer == 0 || l.layer > layers)
        {
            Some(l) => Err(format!(
                "--layer-rule {l}: the model has layers 1..{layers}"
            )),
            None => Ok(()),
        }
    }

    /// The per-layer rules as the command line writes them (empty when there are none).
    pub fn layer_rules_text(&self) -> String {
        let parts: Vec<String> = self.layer_rules.iter().map(ToString::to_string).collect();
        parts.join(" ")
    }
}
