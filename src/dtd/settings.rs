//! The settings of one explanation: the rule of each layer (one for all, another for the
//! input layer, rules by kind of layer or a named composite, single layers overridden) and
//! the numbers the rules use.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::composite::{Composite, KindRule, KindTarget};
use super::rules::{BiasMode, InitialRelevance, Rule};
use crate::model::kind::LayerKind;

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
    /// Rules by kind of layer (`--kind-rule`), overriding `composite` and `rule`; an `input`
    /// one overrides the others at layer 1 (the last one given for a kind wins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kind_rules: Vec<KindRule>,
    /// A named composite (`--composite`), overriding `rule`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub composite: Option<Composite>,
    /// The kind of each layer of the model explained, which `kind_rules` and `composite`
    /// read; set from the model ([`DtdSettings::set_layer_kinds`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub layer_kinds: Vec<LayerKind>,
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
            kind_rules: Vec::new(),
            composite: None,
            layer_kinds: Vec::new(),
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

    /// The rule of layer `index` (0-based): its `--layer-rule`, else an `input` kind rule or
    /// `--input-rule` at layer 1, else the kind rule of its kind, else the composite's rule
    /// (its first-layer rule at the first layer of the kinds it names), else `rule`. Without
    /// layer kinds, only `input` kind rules and the composite's first-layer rule (at layer 1)
    /// apply.
    pub fn rule_for(&self, index: usize) -> Rule {
        if let Some(l) = self.layer_rules.iter().rev().find(|l| l.layer == index + 1) {
            return l.rule;
        }
        let kind_rule = |target: KindTarget| {
            self.kind_rules
                .iter()
                .rev()
                .find(|k| k.target == target)
                .map(|k| k.rule)
        };
        if index == 0 {
            if let Some(r) = kind_rule(KindTarget::Input).or(self.input_rule) {
                return r;
            }
        }
        let kind = self.layer_kinds.get(index).copied();
        if let Some(r) = kind.and_then(|k| kind_rule(KindTarget::Kind(k))) {
            return r;
        }
        if let Some(c) = &self.composite {
            if let Some((rule, kinds)) = c.first_rule() {
                let first = match self.layer_kinds.is_empty() {
                    true => Some(0),
                    false => self.layer_kinds.iter().position(|k| kinds.contains(k)),
                };
                if first == Some(index) {
                    return rule;
                }
            }
            if let Some(r) = kind.and_then(|k| c.kind_rule(k)) {
                return r;
            }
        }
        self.rule
    }

    /// The rule of every layer of a network of `layers` layers, first to last.
    pub fn resolved_rules(&self, layers: usize) -> Vec<Rule> {
        (0..layers).map(|i| self.rule_for(i)).collect()
    }

    /// The rule of every layer with its kind, as `1:conv=flat 2:conv=z+ 3:dense=epsilon:0.25`
    /// (the kind left out where it is not known).
    pub fn resolved_text(&self, layers: usize) -> String {
        let parts: Vec<String> = self
            .resolved_rules(layers)
            .iter()
            .enumerate()
            .map(|(i, rule)| match self.layer_kinds.get(i) {
                Some(kind) => format!("{}:{kind}={rule}", i + 1),
                None => format!("{}={rule}", i + 1),
            })
            .collect();
        parts.join(" ")
    }

    /// Records the kind of each layer of the model explained, which kind rules and
    /// composites read.
    pub fn set_layer_kinds(&mut self, kinds: &[LayerKind]) {
        self.layer_kinds = kinds.to_vec();
    }

    /// Every rule the settings name (whether or not a layer uses it).
    pub fn named_rules(&self) -> Vec<Rule> {
        let mut rules = vec![self.rule];
        rules.extend(self.input_rule);
        rules.extend(self.layer_rules.iter().map(|l| l.rule));
        rules.extend(self.kind_rules.iter().map(|k| k.rule));
        if let Some(c) = &self.composite {
            rules.extend(c.first_rule().map(|(r, _)| r));
            rules.extend(LayerKind::ALL.iter().filter_map(|&k| c.kind_rule(k)));
        }
        rules
    }

    /// Refuses per-layer rules for layers the network does not have, and kind rules or a
    /// composite when the kind of each layer is not known.
    pub fn check_layers(&self, layers: usize) -> Result<(), String> {
        if let Some(l) = self
            .layer_rules
            .iter()
            .find(|l| l.layer == 0 || l.layer > layers)
        {
            return Err(format!(
                "--layer-rule {l}: the model has layers 1..{layers}"
            ));
        }
        let by_kind = self.composite.is_some()
            || self
                .kind_rules
                .iter()
                .any(|k| k.target != KindTarget::Input);
        if by_kind && self.layer_kinds.len() != layers {
            return Err(format!(
                "rules by kind of layer need the kind of each of the model's {layers} layers;                  {} are known",
                self.layer_kinds.len()
            ));
        }
        Ok(())
    }

    /// The per-layer rules, kind rules and composite as the command line writes them (empty
    /// when there are none).
    pub fn layer_rules_text(&self) -> String {
        let mut parts: Vec<String> = self.layer_rules.iter().map(ToString::to_string).collect();
        parts.extend(self.kind_rules.iter().map(|k| format!("kind {k}")));
        parts.extend(self.composite.iter().map(|c| format!("composite {c}")));
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_rule(text: &str) -> KindRule {
        text.parse().unwrap()
    }

    /// A conv, pool, conv, dense network's settings with `f` applied.
    fn on_cnn(f: impl FnOnce(&mut DtdSettings)) -> DtdSettings {
        let mut s = DtdSettings {
            rule: Rule::Z,
            ..DtdSettings::default()
        };
        s.set_layer_kinds(&[
            LayerKind::Conv,
            LayerKind::Pool,
            LayerKind::Conv,
            LayerKind::Dense,
        ]);
        f(&mut s);
        s
    }

    #[test]
    fn layer_rules_beat_kind_rules_beat_composites_beat_the_rule() {
        let eps = Rule::Epsilon(1e-6);
        let s = on_cnn(|_| ());
        assert_eq!(s.resolved_rules(4), vec![Rule::Z; 4]);
        let s = on_cnn(|s| s.composite = Some(Composite::EpsilonPlusFlat));
        assert_eq!(s.resolved_rules(4), vec![Rule::Flat, eps, Rule::ZPlus, eps]);
        let s = on_cnn(|s| {
            s.composite = Some(Composite::EpsilonPlusFlat);
            s.kind_rules = vec![kind_rule("conv=w2"), kind_rule("dense=epsilon:0.25")];
        });
        // The composite's first-layer rule is below the kind rules.
        assert_eq!(
            s.resolved_rules(4),
            vec![Rule::WSquare, eps, Rule::WSquare, Rule::Epsilon(0.25)]
        );
        let s = on_cnn(|s| {
            s.composite = Some(Composite::EpsilonPlus);
            s.kind_rules = vec![kind_rule("conv=w2"), kind_rule("input=flat")];
            s.layer_rules = vec![LayerRule {
                layer: 3,
                rule: Rule::Gamma(0.5),
            }];
        });
        assert_eq!(
            s.resolved_rules(4),
            vec![Rule::Flat, eps, Rule::Gamma(0.5), eps]
        );
        assert_eq!(
            s.resolved_text(4),
            "1:conv=flat 2:pool=epsilon:0.000001 3:conv=gamma:0.5 4:dense=epsilon:0.000001"
        );
        // --input-rule is an input kind rule; a later kind rule for a kind wins over an
        // earlier one.
        let s = on_cnn(|s| {
            s.input_rule = Some(Rule::WSquare);
            s.kind_rules = vec![kind_rule("conv=z+"), kind_rule("conv=gamma:0.25")];
        });
        assert_eq!(
            s.resolved_rules(4),
            vec![Rule::WSquare, Rule::Z, Rule::Gamma(0.25), Rule::Z]
        );
    }

    #[test]
    fn composites_give_their_first_layer_rule_to_the_first_layer_of_its_kinds() {
        let gamma_box = Composite::EpsilonGammaBox { lo: 0.0, hi: 1.0 };
        let mut s = DtdSettings {
            composite: Some(gamma_box),
            ..DtdSettings::default()
        };
        // An MLP has no convolution: no zB layer, as in Zennit.
        s.set_layer_kinds(&[LayerKind::Dense; 3]);
        assert_eq!(s.resolved_rules(3), vec![Rule::Epsilon(1e-6); 3]);
        assert_eq!(s.input_rule_box(), None);
        s.set_layer_kinds(&[LayerKind::Other, LayerKind::Conv, LayerKind::Dense]);
        assert_eq!(
            s.resolved_rules(3),
            vec![
                Rule::ZPlus,
                Rule::ZBox { lo: 0.0, hi: 1.0 },
                Rule::Epsilon(1e-6)
            ]
        );
        s.set_layer_kinds(&[LayerKind::Conv, LayerKind::MaxPool, LayerKind::Conv]);
        assert_eq!(s.input_rule_box(), Some((0.0, 1.0)));
        assert_eq!(s.rule_for(2), Rule::Gamma(0.25));
    }

    #[test]
    fn rules_by_kind_need_the_kinds_and_read_back_from_json() {
        let mut s = DtdSettings {
            kind_rules: vec![kind_rule("dense=epsilon:0.25")],
            composite: Some(Composite::EpsilonGammaBox { lo: -1.0, hi: 2.5 }),
            ..DtdSettings::default()
        };
        let e = s.check_layers(2).unwrap_err();
        assert!(e.contains("kind of each of the model's 2 layers"), "{e}");
        s.set_layer_kinds(&[LayerKind::Conv, LayerKind::Dense]);
        assert_eq!(s.check_layers(2), Ok(()));
        let text = serde_json::to_string(&s).unwrap();
        assert!(
            text.contains("\"composite\":\"epsilon-gamma-box:-1:2.5\""),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<DtdSettings>(&text).unwrap(), s);
        // Only an input kind rule needs no kinds.
        let s = DtdSettings {
            kind_rules: vec![kind_rule("input=flat")],
            ..DtdSettings::default()
        };
        assert_eq!(s.check_layers(2), Ok(()));
        assert_eq!(s.rule_for(0), Rule::Flat);
        for (text, words) in [
            ("linear=z", "valid: input, conv, dense, pool"),
            ("conv", "expected KIND=RULE"),
            ("conv=zz", "zz"),
        ] {
            let e = text.parse::<KindRule>().unwrap_err().to_string();
            assert!(e.contains(words), "{text}: {e}");
        }
        let e = Composite::parse("epsilon", None).unwrap_err().to_string();
        assert!(e.contains("valid: epsilon-plus, epsilon-plus-flat"), "{e}");
        let e = Composite::parse("epsilon-gamma-box", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--low and --high"), "{e}");
        assert_eq!(
            Composite::parse("epsilon-gamma-box", Some((0.0, 1.0))).unwrap(),
            Composite::EpsilonGammaBox { lo: 0.0, hi: 1.0 }
        );
    }
}
