//! What the checker derives from the model and a certificate's sample before it looks at the
//! evidence: the activation pattern, the layer input `a = h_{l-1}(x)` in exact arithmetic, and
//! the exact relevances of the explanation a root plane comes from. A [`Memo`] keeps the last
//! sample's exact forward pass and relevances and the last region, so a batch of certificates
//! about one sample (or a certifier's attempts at one question) derives them once; its keys
//! are everything they depend on, compared exactly.

use std::sync::{Arc, Mutex};

use super::certificate::ExplanationRef;
use crate::dtd::{explain_down_to, InitialRelevance};
use crate::exact::dyadic::Dyadic;
use crate::exact::program::Rejection;
use crate::exact::{Rational, Scalar};
use crate::model::forward::forward;
use crate::model::{Model, Trace};
use crate::region::{pattern_from_layer, Centre, Pattern};

fn reject<T>(msg: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection(msg.into()))
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// A model and a network input, bit for bit.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SampleKey {
    fingerprint: String,
    x: Vec<u64>,
}

/// The relevances `R^l` of every layer (`[l]` for 0-based layer `l`) from the layer that the
/// explanation's rules let the recursion reach up, or why there are none.
type Relevances = Result<Arc<Vec<Option<Vec<Rational>>>>, Rejection>;

/// What one sample derives, whatever the layer: its exact forward pass, its pattern and the
/// relevances of the explanations asked about.
#[derive(Debug)]
struct Sample {
    key: SampleKey,
    exact: Trace<Rational>,
    pattern: Pattern,
    relevances: Mutex<Vec<(ExplanationRef, Relevances)>>,
}

/// Everything a region depends on, bit for bit.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Key {
    sample: SampleKey,
    m: usize,
    centre: Option<Vec<u64>>,
}

/// The region one certificate (or question) is about, derived from the model.
#[derive(Debug)]
pub struct Derived {
    /// The activation pattern that defines the region (of the sample, or of the given centre
    /// from the layer up).
    pub pattern: Pattern,
    /// The layer input, exactly: the sample's `h_{l-1}(x)`, or the given centre.
    pub centre: Centre,
    key: Key,
    /// The sample's derivations; `None` at a given centre.
    sample: Option<Arc<Sample>>,
}

/// The last derivations, kept for the next certificate about the same sample and layer.
#[derive(Debug, Default)]
pub struct Memo {
    sample: Mutex<Option<Arc<Sample>>>,
    last: Mutex<Option<Arc<Derived>>>,
}

impl Memo {
    /// The pattern and the exact layer input of 1-based `layer` for the network input `x`
    /// (or, with `centre`, of that point given as the layer's input); rejects values that are
    /// not finite and sizes that do not fit the model.
    pub fn derive(
        &self,
        model: &Model,
        x: &[f64],
        layer: usize,
        centre: Option<&[f64]>,
    ) -> Result<Arc<Derived>, Rejection> {
        let net = model.net();
        if x.len() != net.input_dim() {
            return reject(format!(
                "the sample has {} values, the model takes {}",
                x.len(),
                net.input_dim()
            ));
        }
        if let Some(v) = x.iter().find(|v| !v.is_finite()) {
            return reject(format!("the sample contains {v}"));
        }
        let layers = net.layers().len();
        if layer == 0 || layer > layers {
            return reject(format!(
                "layer {layer} is out of range: the model has layers 1..{layers}"
            ));
        }
        let m = layer - 1;
        if let Some(c) = centre {
            let width = net.layers()[m].affine.in_dim();
            if c.len() != width {
                return reject(format!(
                    "the centre has {} values, layer {layer} has {width} inputs",
                    c.len()
                ));
            }
            if let Some(v) = c.iter().find(|v| !v.is_finite()) {
                return reject(format!("the centre contains {v}"));
            }
        }
        let key = Key {
            sample: SampleKey {
                fingerprint: model.fingerprint().to_string(),
                x: bits(x),
            },
            m,
            centre: centre.map(bits),
        };
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = last.as_ref().filter(|d| d.key == key) {
            return Ok(d.clone());
        }
        let d = match centre {
            Some(c) => Derived {
                pattern: pattern_from_layer(model, m, c).0,
                centre: Centre::from_f64(c).expect("checked finite"),
                key,
                sample: None,
            },
            None => {
                let sample = self.sample(model, x, &key.sample);
                let a = sample
                    .exact
                    .layer_input(m)
                    .iter()
                    .map(Dyadic::from_rational)
                    .collect::<Option<Vec<_>>>();
                let Some(a) = a else {
                    return reject(format!(
                        "the input of layer {layer} is not a dyadic rational (a weight of the \
                         model is not one)"
                    ));
                };
                Derived {
                    pattern: sample.pattern.clone(),
                    centre: Centre::from_exact(a),
                    key,
                    sample: Some(sample),
                }
            }
        };
        let d = Arc::new(d);
        *last = Some(d.clone());
        Ok(d)
    }

    /// The sample's exact forward pass and pattern, from the memo or computed.
    fn sample(&self, model: &Model, x: &[f64], key: &SampleKey) -> Arc<Sample> {
        let mut sample = self.sample.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(s) = sample.as_ref().filter(|s| s.key == *key) {
            return s.clone();
        }
        let net = model.exact();
        let xr: Vec<Rational> = x.iter().map(|&v| Rational::from_f64(v)).collect();
        let exact = forward(net, &xr);
        let s = Arc::new(Sample {
            key: key.clone(),
            pattern: Pattern::from_pre(net, &exact.pre),
            exact,
            relevances: Mutex::new(Vec::new()),
        });
        *sample = Some(s.clone());
        s
    }
}

impl Derived {
    /// 0-based index of the layer whose input the region is seen from.
    pub fn layer_index(&self) -> usize {
        self.key.m
    }

    /// The relevances `R_j` of the layer's neurons (one per output of the layer after
    /// max-pooling: a max-pool window's entries share its relevance) in the explanation of
    /// the sample under `explanation`, exactly: the train-free recursion in rationals, from the
    /// explained output down to this layer. Refused at a given centre (that relevance comes
    /// from full-backward DTD, not from the sample's explanation) and where a layer above uses
    /// the `nearest-valid` rule, whose roots come from linear programs.
    pub fn relevances(
        &self,
        model: &Model,
        explanation: &ExplanationRef,
    ) -> Result<Vec<Rational>, Rejection> {
        let Some(sample) = &self.sample else {
            return reject(
                "a relevance at a given centre cannot come from the sample's explanation",
            );
        };
        let all = {
            let mut cache = sample.relevances.lock().unwrap_or_else(|e| e.into_inner());
            match cache.iter().find(|(e, _)| e == explanation) {
                Some((_, r)) => r.clone(),
                None => {
                    let r = explained_relevances(model, &sample.exact, explanation).map(Arc::new);
                    cache.push((explanation.clone(), r.clone()));
                    r
                }
            }
        }?;
        let m = self.key.m;
        match &all[m] {
            Some(r) => Ok(r.clone()),
            None => {
                let s = &explanation.settings;
                let l = (m + 1..all.len())
                    .find(|&l| s.rule_for(l).needs_lp())
                    .expect("only layers below a nearest-valid layer have none");
                reject(format!(
                    "layer {}'s rule {} finds its roots with linear programs, so the relevance \
                     of layer {} cannot be recomputed exactly",
                    l + 1,
                    s.rule_for(l),
                    m + 1
                ))
            }
        }
    }
}

/// The relevances of every layer in the explanation `e` of the sample traced exactly as
/// `trace` (see [`Derived::relevances`]); `None` for the layers below one whose rule needs
/// linear programs.
fn explained_relevances(
    model: &Model,
    trace: &Trace<Rational>,
    e: &ExplanationRef,
) -> Result<Vec<Option<Vec<Rational>>>, Rejection> {
    let net = model.net();
    let layers = net.layers().len();
    let outputs = net.output_dim();
    if e.output >= outputs {
        return reject(format!(
            "explained output {} is out of range: the model has {outputs} outputs",
            e.output
        ));
    }
    let s = &e.settings;
    for (name, v) in [
        ("stabilizer", s.stabilizer),
        ("denominator_threshold", s.denominator_threshold),
    ] {
        if !v.is_finite() || v < 0.0 {
            return reject(format!("{name} must be a finite number >= 0, not {v}"));
        }
    }
    s.check_layers(layers).map_err(Rejection)?;
    // R^l of layer l comes from the rules of the layers above it: the recursion runs down to
    // the lowest layer above every layer whose rule needs linear programs.
    let lowest = (1..layers)
        .rev()
        .find(|&l| s.rule_for(l).needs_lp())
        .map_or(1, |l| l + 1);
    let mut out: Vec<Option<Vec<Rational>>> = vec![None; layers];
    let mut top = vec![<Rational as Scalar>::zero(); outputs];
    top[e.output] = match s.initial_relevance {
        InitialRelevance::Output => trace.output()[e.output].clone(),
        InitialRelevance::One => <Rational as Scalar>::one(),
    };
    out[layers - 1] = Some(top);
    if lowest < layers {
        let steps = explain_down_to(model.exact(), trace, s, e.output, lowest, false);
        for (k, step) in steps.into_iter().enumerate() {
            // Step of layer `lowest + k` passes R^{lowest + k − 1} down.
            out[lowest + k - 1] = Some(step.lower);
        }
    }
    Ok(out)
}
