//! Counts over an audit run, per layer and in total (DESIGN.md §1.4): what `summary.json`
//! holds.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::histogram::{LogHistogram, ShareHistogram};
use super::sampling::SampledSummary;
use super::spec::{InputsInfo, ModelInfo, RunSpec, Shard, Targets};
use super::{AuditSettings, CertifiedAnswer, DomainCheck, SampleRecord};
use crate::region::Decision;

/// Counts for one layer (or, in `total`, over all layers).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Neurons that have a root (non-zero relevance, denominator above the threshold) and
    /// whose root was judged: every one, or with `--roots-per-layer` the drawn ones.
    pub roots: u64,
    /// `--roots-per-layer`: neurons that have a root the draw left out (not judged, and in no
    /// other count); absent where there are none.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub roots_not_judged: u64,
    /// Roots outside the region `P_l(x)`, whatever their domain status.
    pub roots_outside: u64,
    /// Roots outside the domain (negative hidden coordinates; outside the input box).
    pub roots_out_of_domain: u64,
    /// Roots inside the region and the domain.
    pub roots_valid: u64,
    /// Roots inside the region and on one of its faces: some constraint holds with equality
    /// (regions are closed, so these are inside). Decided exactly, like every verdict.
    #[serde(default)]
    pub roots_on_face: u64,
    /// Samples with at least one root outside the region (in this layer; in any layer for
    /// `total`).
    pub samples_with_root_outside: u64,
    /// Samples with at least one root outside the domain (in this layer; in any layer for
    /// `total`).
    pub samples_with_root_out_of_domain: u64,
    /// Neurons without a root because `R_j = 0`.
    pub no_root_zero_relevance: u64,
    /// Neurons without a root because `|w_j · v|` is at most `--denominator-threshold`.
    pub no_root_small_denominator: u64,
    /// Neurons with relevance under an LRP rule that has no root form.
    pub not_applicable: u64,
    /// `nearest-valid`: neurons proved to have no valid root.
    #[serde(default)]
    pub no_root_no_valid_root: u64,
    /// `nearest-valid`: neurons whose root question got no certified answer.
    #[serde(default)]
    pub no_root_uncertified: u64,
    /// Root verdicts the f64 error bound could not decide, settled in exact arithmetic.
    pub exact_fallbacks: u64,
    /// The largest `|Σ R^l − Σ R^{l-1} − unresolved|` over samples (rounding only).
    pub max_conservation_error: f64,
    /// `|σ z|` at the first violated constraint of every root outside its region.
    pub margin_histogram: LogHistogram,
    /// `|Σ R^l − Σ R^{l-1} − unresolved|` per sample (and layer).
    pub conservation_error_histogram: LogHistogram,
    /// `--certify`: invalid roots whose neuron has a valid root (proved by a checked point).
    #[serde(default)]
    pub invalid_with_valid_alternative: u64,
    /// `--certify`: invalid roots whose neuron has no valid root at all (proved).
    #[serde(default)]
    pub invalid_without_valid_root: u64,
    /// `--certify`: certified questions without a certified answer.
    #[serde(default)]
    pub certify_unknown: u64,
    /// `--certify nearest`: the certified distance (upper end of the interval) from the
    /// layer input to the nearest valid root, for invalid roots.
    #[serde(default)]
    pub certified_distance_histogram: LogHistogram,
    /// Samples by the number of their roots outside the region (in this layer; in all layers
    /// for `total`): `{"0": 4, "2": 17, ...}`; numbers no sample has are left out.
    #[serde(default, deserialize_with = "numbered")]
    pub samples_by_roots_outside: BTreeMap<u64, u64>,
    /// For every sample, the share of the layer's |relevance| (`Σ |R_j|` over its neurons)
    /// that the neurons whose root lies outside the region carry, counted in tenths; `total`
    /// counts every layer of every sample.
    #[serde(default)]
    pub outside_relevance_share: ShareHistogram,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A map whose keys JSON writes as strings (`{"3": 17}`), read back through `flatten`,
/// which hands keys over as strings only.
fn numbered<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<u64, u64>, D::Error> {
    let text: BTreeMap<String, u64> = Deserialize::deserialize(d)?;
    text.into_iter()
        .map(|(k, v)| {
            k.parse()
                .map(|k| (k, v))
                .map_err(|_| serde::de::Error::custom(format!("\"{k}\" is not a count")))
        })
        .collect()
}

/// One entry of summary.json's `layers`: a layer's number and its counts, side by side.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerCounts {
    /// 1-based; layer 1 takes the network input.
    pub layer: usize,
    /// The layer's counts over all samples.
    #[serde(flatten)]
    pub counts: Counts,
}

/// Everything summary.json reports besides the run's identity and settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The number of samples counted.
    pub samples: u64,
    /// Samples whose activation pattern needed exact arithmetic to decide.
    pub pattern_exact_fallbacks: u64,
    /// One entry per layer, layer 1 first.
    pub layers: Vec<LayerCounts>,
    /// The counts over all layers.
    pub total: Counts,
}

impl Summary {
    /// Empty counts for a network of `num_layers` layers.
    pub fn new(num_layers: usize) -> Self {
        Self {
            samples: 0,
            pattern_exact_fallbacks: 0,
            layers: (1..=num_layers)
                .map(|layer| LayerCounts {
                    layer,
                    counts: Counts::default(),
                })
                .collect(),
            total: Counts::default(),
        }
    }

    /// Counts one sample's record.
    pub fn add(&mut self, record: &SampleRecord) {
        self.samples += 1;
        if record.pattern_decided_by == Decision::ExactFallback {
            self.pattern_exact_fallbacks += 1;
        }
        let mut any_outside = false;
        let mut any_out_of_domain = false;
        let mut step_total = Counts::default();
        for (lc, lr) in self.layers.iter_mut().zip(&record.layers) {
            let mut c = Counts {
                max_conservation_error: lr.conservation_error.abs(),
                ..Counts::default()
            };
            c.conservation_error_histogram.add(lr.conservation_error);
            let (mut relevance_all, mut relevance_outside) = (0.0f64, 0.0f64);
            for n in &lr.neurons {
                relevance_all += n.relevance.abs();
                if n.not_judged {
                    c.roots_not_judged += 1;
                    continue;
                }
                match (&n.no_root, &n.root) {
                    (Some(crate::dtd::NoRoot::ZeroRelevance), _) => c.no_root_zero_relevance += 1,
                    (Some(crate::dtd::NoRoot::SmallDenominator), _) => {
                        c.no_root_small_denominator += 1
                    }
                    (Some(crate::dtd::NoRoot::NotApplicable), _) => c.not_applicable += 1,
                    (Some(crate::dtd::NoRoot::NoValidRoot), _) => c.no_root_no_valid_root += 1,
                    (Some(crate::dtd::NoRoot::Uncertified), _) => c.no_root_uncertified += 1,
                    (None, Some(v)) => {
                        c.roots += 1;
                        if let crate::region::Membership::Outside { margin, .. } = v.region {
                            c.roots_outside += 1;
                            c.margin_histogram.add(margin);
                            relevance_outside += n.relevance.abs();
                        }
                        if v.domain != DomainCheck::In {
                            c.roots_out_of_domain += 1;
                        }
                        if v.valid {
                            c.roots_valid += 1;
                        }
                        if v.region.on_face() {
                            c.roots_on_face += 1;
                        }
                        if v.decided_by == Decision::ExactFallback {
                            c.exact_fallbacks += 1;
                        }
                        if let Some(cert) = &n.certified {
                            match cert.answer {
                                CertifiedAnswer::Unknown => c.certify_unknown += 1,
                                _ if v.valid => {}
                                CertifiedAnswer::ValidRootExists => {
                                    c.invalid_with_valid_alternative += 1;
                                    if let Some(d) = cert.distance_upper {
                                        c.certified_distance_histogram.add(d);
                                    }
                                }
                                CertifiedAnswer::NoValidRoot => c.invalid_without_valid_root += 1,
                            }
                        }
                    }
                    (None, None) => unreachable!("a neuron record has a root or a reason for none"),
                }
            }
            c.samples_by_roots_outside.insert(c.roots_outside, 1);
            c.outside_relevance_share
                .add(relevance_outside, relevance_all);
            c.samples_with_root_outside = u64::from(c.roots_outside > 0);
            c.samples_with_root_out_of_domain = u64::from(c.roots_out_of_domain > 0);
            any_outside |= c.roots_outside > 0;
            any_out_of_domain |= c.roots_out_of_domain > 0;
            step_total.accumulate(&c);
            lc.counts.accumulate(&c);
        }
        step_total.samples_by_roots_outside = BTreeMap::from([(step_total.roots_outside, 1)]);
        step_total.samples_with_root_outside = u64::from(any_outside);
        step_total.samples_with_root_out_of_domain = u64::from(any_out_of_domain);
        self.total.accumulate(&step_total);
    }

    /// Adds the counts of `other`, a summary of other samples of the same network (another
    /// shard): the result is the summary of both sets of samples, exactly.
    pub fn merge(&mut self, other: &Summary) {
        debug_assert_eq!(self.layers.len(), other.layers.len());
        self.samples += other.samples;
        self.pattern_exact_fallbacks += other.pattern_exact_fallbacks;
        for (a, b) in self.layers.iter_mut().zip(&other.layers) {
            a.counts.accumulate(&b.counts);
        }
        self.total.accumulate(&other.total);
    }
}

impl Counts {
    fn accumulate(&mut self, o: &Counts) {
        self.roots += o.roots;
        self.roots_not_judged += o.roots_not_judged;
        self.roots_outside += o.roots_outside;
        self.roots_out_of_domain += o.roots_out_of_domain;
        self.roots_valid += o.roots_valid;
        self.roots_on_face += o.roots_on_face;
        self.samples_with_root_outside += o.samples_with_root_outside;
        self.samples_with_root_out_of_domain += o.samples_with_root_out_of_domain;
        self.no_root_zero_relevance += o.no_root_zero_relevance;
        self.no_root_small_denominator += o.no_root_small_denominator;
        self.not_applicable += o.not_applicable;
        self.no_root_no_valid_root += o.no_root_no_valid_root;
        self.no_root_uncertified += o.no_root_uncertified;
        self.exact_fallbacks += o.exact_fallbacks;
        self.max_conservation_error = self.max_conservation_error.max(o.max_conservation_error);
        self.margin_histogram.merge(&o.margin_histogram);
        self.invalid_with_valid_alternative += o.invalid_with_valid_alternative;
        self.invalid_without_valid_root += o.invalid_without_valid_root;
        self.certify_unknown += o.certify_unknown;
        self.certified_distance_histogram
            .merge(&o.certified_distance_histogram);
        self.conservation_error_histogram
            .merge(&o.conservation_error_histogram);
        for (&k, &n) in &o.samples_by_roots_outside {
            *self.samples_by_roots_outside.entry(k).or_default() += n;
        }
        self.outside_relevance_share
            .merge(&o.outside_relevance_share);
    }

    /// Fraction of roots outside the region (0 without roots).
    pub fn fraction_outside(&self) -> f64 {
        if self.roots == 0 {
            0.0
        } else {
            self.roots_outside as f64 / self.roots as f64
        }
    }
}

/// The document written to summary.json: the run's identity, its settings, and the counts.
#[derive(Serialize)]
pub struct SummaryDocument<'a> {
    /// The writing tool's name, `dtdcert`.
    pub tool: &'static str,
    /// The tool version recorded in `run.json`.
    pub version: &'a str,
    /// Model path, fingerprint and architecture.
    pub model: &'a ModelInfo,
    /// The inputs file, its size and fingerprint.
    pub inputs: &'a InputsInfo,
    /// The rule string of `--rule` (every layer).
    pub rule: String,
    /// The rule string of layer 1, after `--input-rule` and `--layer-rule 1=`.
    pub input_rule: String,
    /// The rule that ran at each layer, with the layer's kind: `1:conv=flat 2:conv=z+ …`
    /// (after `--layer-rule`, `--kind-rule`, `--composite`, `--input-rule` and `--rule`).
    pub layer_rules: String,
    /// Which output each sample explains.
    pub targets: &'a Targets,
    /// All settings of the run.
    pub settings: &'a AuditSettings,
    /// The shard the counts cover; absent for a whole run or a merge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// `--roots-per-layer`: the fractions of judged roots outside their region and not valid,
    /// per layer and in total, with their 95 % Wilson intervals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub root_sample: Option<SampledSummary>,
    /// The counts, written at the top level.
    #[serde(flatten)]
    pub summary: &'a Summary,
}

impl<'a> SummaryDocument<'a> {
    /// The document of the run `spec` with the counts `summary`.
    pub fn new(spec: &'a RunSpec, summary: &'a Summary) -> Self {
        Self {
            tool: "dtdcert",
            version: &spec.version,
            model: &spec.model,
            inputs: &spec.inputs,
            rule: spec.settings.dtd.rule.to_string(),
            input_rule: spec.settings.dtd.rule_for(0).to_string(),
            layer_rules: spec
                .settings
                .dtd
                .resolved_text(spec.settings.dtd.layer_kinds.len()),
            targets: &spec.targets,
            settings: &spec.settings,
            shard: spec.shard,
            root_sample: spec
                .settings
                .root_sample
                .map(|draw| SampledSummary::new(draw, summary)),
            summary,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sample whose layer 1 has neurons of relevance 1, 2, 3, 4 (roots outside where
    /// `outside` says) and a neuron without a root, and whose layer 2 has one inside root.
    fn record(sample: usize, outside: [bool; 4]) -> SampleRecord {
        let root = |out: bool| {
            if out {
                serde_json::json!({"valid": false, "region": {"status": "outside", "layer": 1,
                    "neuron": 0, "margin": -0.5}, "domain": {"status": "in"}, "decided_by": "float"})
            } else {
                serde_json::json!({"valid": true, "region": {"status": "inside", "slack": 0.5},
                    "domain": {"status": "in"}, "decided_by": "float"})
            }
        };
        let mut neurons: Vec<_> = (0..4)
            .map(|j| serde_json::json!({"neuron": j, "relevance": (j + 1) as f64, "root": root(outside[j])}))
            .collect();
        neurons
            .push(serde_json::json!({"neuron": 4, "relevance": 0.0, "no_root": "zero-relevance"}));
        let layer = |l: usize, neurons: Vec<serde_json::Value>| {
            serde_json::json!({"layer": l, "rule": "z+", "relevance_in": 10.0, "relevance_out": 10.0,
                "unresolved": 0.0, "no_root_relevance": 0.0, "absorbed": 0.0,
                "conservation_error": 0.0, "neurons": neurons})
        };
        let inside = vec![serde_json::json!({"neuron": 0, "relevance": 10.0, "root": root(false)})];
        serde_json::from_value(
            serde_json::json!({"sample": sample, "explained": 0, "output": 10.0,
            "pattern_decided_by": "float", "layers": [layer(1, neurons), layer(2, inside)]}),
        )
        .unwrap()
    }

    fn records() -> Vec<SampleRecord> {
        [
            [false; 4],
            [true, false, false, false],
            [false, false, false, true],
            [true, true, true, true],
            [false, true, true, false],
        ]
        .into_iter()
        .enumerate()
        .map(|(i, o)| record(i, o))
        .collect()
    }

    #[test]
    fn roots_outside_per_sample_and_their_share_of_relevance() {
        let mut s = Summary::new(2);
        for r in records() {
            s.add(&r);
        }
        let by_count: Vec<(u64, u64)> = s
            .total
            .samples_by_roots_outside
            .iter()
            .map(|(&k, &n)| (k, n))
            .collect();
        assert_eq!(by_count, [(0, 1), (1, 2), (2, 1), (4, 1)]);
        assert_eq!(
            s.layers[0].counts.samples_by_roots_outside,
            s.total.samples_by_roots_outside
        );
        assert_eq!(
            s.layers[1].counts.samples_by_roots_outside,
            BTreeMap::from([(0, 5)])
        );
        // Layer 1 carries 10: shares 0, 1/10, 4/10, 10/10 and 5/10.
        let h = &s.layers[0].counts.outside_relevance_share;
        assert_eq!((h.undefined, h.zero), (0, 1));
        assert_eq!(h.tenths, [1, 0, 0, 1, 1, 0, 0, 0, 0, 1]);
        assert_eq!(s.layers[1].counts.outside_relevance_share.zero, 5);
        assert_eq!(s.total.outside_relevance_share.defined(), 10);
    }

    /// A summary survives JSON (as a checkpoint and summary.json hold it), and the summaries of
    /// two sets of samples merge into the summary of both.
    #[test]
    fn summaries_round_trip_and_merge_exactly() {
        let all = records();
        let mut whole = Summary::new(2);
        let (mut even, mut odd) = (Summary::new(2), Summary::new(2));
        for r in &all {
            whole.add(r);
            if r.sample % 2 == 0 {
                &mut even
            } else {
                &mut odd
            }
            .add(r);
        }
        let text = serde_json::to_string(&whole).unwrap();
        let back: Summary = serde_json::from_str(&text).unwrap();
        assert_eq!(back, whole);
        let mut merged = odd.clone();
        merged.merge(&even);
        assert_eq!(merged, whole);
    }
}
