//! What the checker derives from the model and a certificate's sample before it looks at the
//! evidence: the activation pattern, the layer input `a = h_{l-1}(x)` in exact arithmetic, and
//! the exact relevances of the explanation a root plane comes from. A [`Memo`] keeps the last
//! sample's, so a batch of certificates about one sample (or a certifier's attempts at one
//! question) derives them once; its key is everything they depend on, compared exactly.

use std::sync::{Arc, Mutex};

use super::certificate::ExplanationRef;
use crate::dtd::{explain_down_to, InitialRelevance};
use crate::exact::program::Rejection;
use crate::exact::{Rational, Scalar};
use crate::model::forward::forward;
use crate::model::Model;
use crate::region::{pattern_from_layer, trace_and_pattern, Centre, Pattern};

fn reject<T>(msg: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection(msg.into()))
}

/// Everything a derivation depends on, bit for bit.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Key {
    fingerprint: String,
    x: Vec<u64>,
    m: usize,
    centre: Option<Vec<u64>>,
}

fn bits(v: &[f64]) -> Vec<u64> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// The exact relevances of one explanation, or why there are none.
type Relevances = Result<Arc<Vec<Rational>>, Rejection>;

/// The region one certificate (or question) is about, derived from the model.
#[derive(Debug)]
pub struct Derived {
    /// The activation pattern that defines the region (of the sample, or of the given centre
    /// from the layer up).
    pub pattern: Pattern,
    /// The layer input, exactly: the sample's `h_{l-1}(x)`, or the given centre.
    pub centre: Centre,
    key: Key,
    x: Vec<f64>,
    relevances: Mutex<Vec<(ExplanationRef, Relevances)>>,
}

/// The last derivation, kept for the next certificate about the same sample and layer.
#[derive(Debug, Default)]
pub struct Memo {
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
            fingerprint: model.fingerprint().to_string(),
            x: bits(x),
            m,
            centre: centre.map(bits),
        };
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = last.as_ref().filter(|d| d.key == key) {
            return Ok(d.clone());
        }
        let (pattern, centre) = match centre {
            Some(c) => (
                pattern_from_layer(model, m, c).0,
                Centre::from_f64(c).expect("checked finite"),
            ),
            None => {
                let Some(a) = Centre::of_sample(model, x, m) else {
                    return reject(format!(
                        "the input of layer {layer} is not a dyadic rational (a weight of the \
                         model is not one)"
                    ));
                };
                (trace_and_pattern(model, x).1, a)
            }
        };
        let d = Arc::new(Derived {
            pattern,
            centre,
            key,
            x: x.to_vec(),
            relevances: Mutex::new(Vec::new()),
        });
        *last = Some(d.clone());
        Ok(d)
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
    pub fn relevances(&self, model: &Model, explanation: &ExplanationRef) -> Relevances {
        if self.key.centre.is_some() {
            return reject(
                "a relevance at a given centre cannot come from the sample's explanation",
            );
        }
        let mut cache = self.relevances.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, r)) = cache.iter().find(|(e, _)| e == explanation) {
            return r.clone();
        }
        let r = explained_relevances(model, &self.x, self.key.m, explanation).map(Arc::new);
        cache.push((explanation.clone(), r.clone()));
        r
    }
}

/// See [`Derived::relevances`].
fn explained_relevances(
    model: &Model,
    x: &[f64],
    m: usize,
    e: &ExplanationRef,
) -> Result<Vec<Rational>, Rejection> {
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
    // R^l of layer m comes from the rules of the layers above it.
    if let Some(l) = (m + 1..layers).find(|&l| s.rule_for(l).needs_lp()) {
        return reject(format!(
            "layer {}'s rule {} finds its roots with linear programs, so the relevance of \
             layer {} cannot be recomputed exactly",
            l + 1,
            s.rule_for(l),
            m + 1
        ));
    }
    let exact = model.exact();
    let xr: Vec<Rational> = x.iter().map(|&v| Rational::from_f64(v)).collect();
    let trace = forward(exact, &xr);
    if m + 1 == layers {
        let mut r = vec![<Rational as Scalar>::zero(); outputs];
        r[e.output] = match s.initial_relevance {
            InitialRelevance::Output => trace.output()[e.output].clone(),
            InitialRelevance::One => <Rational as Scalar>::one(),
        };
        return Ok(r);
    }
    let above = explain_down_to(exact, &trace, s, e.output, m + 1, false);
    Ok(above
        .into_iter()
        .next()
        .map(|step| step.lower)
        .expect("a layer above"))
}
