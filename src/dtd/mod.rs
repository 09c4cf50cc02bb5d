//! Deep Taylor Decomposition: rules, root points and the train-free relevance recursion
//! (DESIGN.md §1.3), written once over [`Scalar`] so it runs in f64 and in exact rationals.
//!
//! Explaining output `k`, the top relevance is `R^L = e_k f_k(x)`. Going down, layer `l` has
//! input `a = h_{l-1}` and output relevances `R^l`; each neuron with `R_j != 0` gets a root
//! `ã = a − t_j v` and passes `w_ji t_j v_i` to input `i`. What a neuron does not pass on
//! (no root, a bias or stabiliser term in the denominator, the origin rule's mismatch) is its
//! unresolved remainder, reported rather than dropped.

pub mod full_backward;
pub mod rules;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use rules::{BiasMode, InitialRelevance, Rule};

use crate::exact::Scalar;
use crate::model::ir::{Layer, WeightRow};
use crate::model::{Network, Trace};

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
    pub layer: usize,
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

/// Why a neuron has no root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoRoot {
    /// `nearest-valid`: proved (by a checked certificate) that no valid root exists.
    NoValidRoot,
    /// `nearest-valid`: no certified answer (time limit, solver failure).
    Uncertified,
    /// `R_j = 0`: nothing to explain.
    ZeroRelevance,
    /// `|w_j · v| <=` the threshold: no root along the rule's direction.
    SmallDenominator,
    /// An LRP rule without a root form, or a max-pool layer (winner-take-all).
    NotApplicable,
}

/// The root of one neuron, or why there is none.
#[derive(Clone, Debug, PartialEq)]
pub enum RootOutcome<T> {
    Root { point: Vec<T>, t: T },
    None(NoRoot),
}

/// One neuron of one layer.
#[derive(Clone, Debug, PartialEq)]
pub struct NeuronRelevance<T> {
    pub relevance: T,
    pub outcome: RootOutcome<T>,
    /// `R_j −` what the neuron passed to its inputs.
    pub unresolved: T,
}

/// One layer's step of the recursion.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerRelevance<T> {
    pub rule: Rule,
    /// `R^l`: relevances of the layer's neurons.
    pub upper: Vec<T>,
    /// `R^{l-1}`: relevances of the layer's inputs.
    pub lower: Vec<T>,
    pub neurons: Vec<NeuronRelevance<T>>,
}

impl<T: Scalar> LayerRelevance<T> {
    /// `Σ R^l − Σ R^{l-1} − Σ unresolved`: zero up to rounding (exactly zero in rationals).
    pub fn conservation_error(&self) -> T {
        let sum = |v: &mut dyn Iterator<Item = &T>| v.fold(T::zero(), |acc, x| acc + x.clone());
        sum(&mut self.upper.iter())
            - sum(&mut self.lower.iter())
            - sum(&mut self.neurons.iter().map(|n| &n.unresolved))
    }
}

/// A whole explanation: layers in network order (layer 1 first).
#[derive(Clone, Debug, PartialEq)]
pub struct Explanation<T> {
    pub explained: usize,
    pub layers: Vec<LayerRelevance<T>>,
}

impl<T: Scalar> Explanation<T> {
    /// Relevance of the network inputs.
    pub fn input_relevance(&self) -> &[T] {
        &self.layers[0].lower
    }
}

/// Train-free DTD/LRP of output `k` at the traced input. With `keep_roots` false, roots are
/// not materialised (relevances only).
pub fn explain<T: Scalar>(
    net: &Network<T>,
    trace: &Trace<T>,
    settings: &DtdSettings,
    k: usize,
    keep_roots: bool,
) -> Explanation<T> {
    explain_with(
        net,
        trace,
        k,
        settings.initial_relevance,
        |index, a, upper| {
            let rule = settings.rule_for(index);
            let layer = &net.layers()[index];
            if let Some(window) = layer.max_pool {
                return winner_take_all(layer, window, a, upper, rule);
            }
            layer_step(
                &net.layers()[index].affine,
                a,
                upper,
                rule,
                settings,
                keep_roots,
            )
        },
    )
}

/// The train-free recursion from output `k` (starting as `initial` says) down, with each
/// layer's step given by `step(layer index, layer input, upper relevances)`: [`explain`] uses
/// the rule steps; other root finders (the LP-based `nearest-valid`) supply their own for some
/// layers.
pub fn explain_with<T: Scalar>(
    net: &Network<T>,
    trace: &Trace<T>,
    k: usize,
    initial: InitialRelevance,
    mut step: impl FnMut(usize, &[T], &[T]) -> LayerRelevance<T>,
) -> Explanation<T> {
    let layers = net.layers();
    let mut upper: Vec<T> = vec![T::zero(); net.output_dim()];
    upper[k] = match initial {
        InitialRelevance::Output => trace.output()[k].clone(),
        InitialRelevance::One => T::one(),
    };
    let mut out: Vec<LayerRelevance<T>> = Vec::with_capacity(layers.len());
    for index in (0..layers.len()).rev() {
        let step = step(index, trace.layer_input(index), &upper);
        upper.clone_from(&step.lower);
        out.push(step);
    }
    out.reverse();
    Explanation {
        explained: k,
        layers: out,
    }
}

fn positive<T: Scalar>(x: &T) -> T {
    if x.is_positive() {
        x.clone()
    } else {
        T::zero()
    }
}

fn negative<T: Scalar>(x: &T) -> T {
    if x.is_negative() {
        x.clone()
    } else {
        T::zero()
    }
}

/// `d + ε sign(d)`, with `sign(0) = +1`.
fn stabilize<T: Scalar>(d: T, eps: &T) -> T {
    if eps.is_zero() {
        d
    } else if d.is_negative() {
        d - eps.clone()
    } else {
        d + eps.clone()
    }
}

/// A root rule with its parameters converted to the scalar type once per layer.
pub(crate) struct RootRule<T> {
    rule: Rule,
    /// `1 + γ` for the γ rule.
    one_plus_gamma: T,
    gamma: T,
    lo: T,
    hi: T,
}

impl<T: Scalar> RootRule<T> {
    pub(crate) fn new(rule: Rule) -> Self {
        let (gamma, lo, hi) = match rule {
            Rule::Gamma(g) => (g, 0.0, 0.0),
            Rule::ZBox { lo, hi } => (0.0, lo, hi),
            _ => (0.0, 0.0, 0.0),
        };
        Self {
            rule,
            one_plus_gamma: T::one() + T::from_f64(gamma),
            gamma: T::from_f64(gamma),
            lo: T::from_f64(lo),
            hi: T::from_f64(hi),
        }
    }

    /// The rule's bias term of the denominator (zero when the bias is ignored).
    fn beta(&self, b: &T, bias: BiasMode) -> T {
        match bias {
            BiasMode::Ignore => return T::zero(),
            BiasMode::Plain if self.rule != Rule::Zero => return b.clone(),
            _ => {}
        }
        match self.rule {
            Rule::Zero => T::zero(),
            Rule::Z => b.clone(),
            // zB's three passes (`z`, `lo` on the positive part, `hi` on the negative part)
            // carry `b`, `b⁺` and `b⁻`: the bias cancels (as in Zennit's ZBox).
            Rule::ZBox { .. } => T::zero(),
            Rule::ZPlus => positive(b),
            Rule::Gamma(_) => b.clone() + self.gamma.clone() * positive(b),
            Rule::WSquare => b.clone() * b.clone(),
            Rule::Epsilon(_) | Rule::AlphaBeta { .. } | Rule::Flat | Rule::NearestValid(_) => {
                unreachable!("{} has no root direction", self.rule)
            }
        }
    }
}

/// One layer: neuron relevances `upper` → input relevances, with roots.
pub fn layer_step<T: Scalar>(
    affine: &crate::model::Affine<T>,
    a: &[T],
    upper: &[T],
    rule: Rule,
    settings: &DtdSettings,
    keep_roots: bool,
) -> LayerRelevance<T> {
    let n_in = affine.in_dim();
    let mut lower = vec![T::zero(); n_in];
    let mut neurons = Vec::with_capacity(upper.len());
    let threshold = T::from_f64(settings.denominator_threshold);
    let stabilizer = T::from_f64(settings.stabilizer);
    let root_rule = rule.has_root().then(|| RootRule::new(rule));
    for (j, r) in upper.iter().enumerate() {
        if r.is_zero() {
            neurons.push(NeuronRelevance {
                relevance: r.clone(),
                outcome: RootOutcome::None(NoRoot::ZeroRelevance),
                unresolved: T::zero(),
            });
            continue;
        }
        let w = affine.row(j);
        let b = affine.bias(j);
        let mut passed = T::zero();
        let outcome = if let Some(root_rule) = &root_rule {
            root_step(
                root_rule,
                &w,
                a,
                b,
                r,
                settings,
                &threshold,
                &stabilizer,
                keep_roots,
                &mut lower,
                &mut passed,
            )
        } else {
            lrp_step(rule, &w, a, b, r, settings, &mut lower, &mut passed);
            RootOutcome::None(NoRoot::NotApplicable)
        };
        neurons.push(NeuronRelevance {
            relevance: r.clone(),
            unresolved: r.clone() - passed,
            outcome,
        });
    }
    LayerRelevance {
        rule,
        upper: upper.to_vec(),
        lower,
        neurons,
    }
}

/// A max-pool layer: each window's relevance goes whole to the input its winner copies (the
/// first largest entry), so nothing is left unresolved and no neuron has a root. `rule` is
/// only recorded.
pub fn winner_take_all<T: Scalar>(
    layer: &Layer<T>,
    window: usize,
    a: &[T],
    upper: &[T],
    rule: Rule,
) -> LayerRelevance<T> {
    let mut z = Vec::with_capacity(layer.affine.out_dim());
    layer.affine.apply_into(a, &mut z);
    let (_, selected) = crate::model::ir::max_pool(&z, window);
    let mut lower = vec![T::zero(); a.len()];
    let neurons = upper
        .iter()
        .zip(&selected)
        .map(|(r, &s)| {
            let i = layer.gathered(s as usize);
            lower[i] = lower[i].clone() + r.clone();
            NeuronRelevance {
                relevance: r.clone(),
                outcome: RootOutcome::None(if r.is_zero() {
                    NoRoot::ZeroRelevance
                } else {
                    NoRoot::NotApplicable
                }),
                unresolved: T::zero(),
            }
        })
        .collect();
    LayerRelevance {
        rule,
        upper: upper.to_vec(),
        lower,
        neurons,
    }
}

/// The root of neuron `j` of 0-based layer `index` at input `a` with relevance `r`, exactly as
/// [`explain`] with `keep_roots` computes it (the rule is the one the settings give that
/// layer; a rule without roots gives none).
pub fn neuron_root<T: Scalar>(
    net: &Network<T>,
    index: usize,
    j: usize,
    a: &[T],
    r: &T,
    settings: &DtdSettings,
) -> RootOutcome<T> {
    let rule = settings.rule_for(index);
    if !rule.has_root() || r.is_zero() || net.layers()[index].max_pool.is_some() {
        return RootOutcome::None(if r.is_zero() {
            NoRoot::ZeroRelevance
        } else {
            NoRoot::NotApplicable
        });
    }
    let affine = &net.layers()[index].affine;
    let (mut lower, mut passed) = (vec![T::zero(); a.len()], T::zero());
    root_step(
        &RootRule::new(rule),
        &affine.row(j),
        a,
        affine.bias(j),
        r,
        settings,
        &T::from_f64(settings.denominator_threshold),
        &T::from_f64(settings.stabilizer),
        true,
        &mut lower,
        &mut passed,
    )
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn root_step<T: Scalar>(
    rule: &RootRule<T>,
    w: &WeightRow<'_, T>,
    a: &[T],
    b: &T,
    r: &T,
    settings: &DtdSettings,
    threshold: &T,
    stabilizer: &T,
    keep_roots: bool,
    lower: &mut [T],
    passed: &mut T,
) -> RootOutcome<T> {
    // The rule is matched once per neuron, not once per coordinate, so each loop below is a
    // plain arithmetic loop.
    let listed = w.gather(a);
    let step = RootStep {
        w: w.values(),
        a: &listed,
        full: a,
        row: *w,
        r,
        threshold,
        stabilizer,
        keep_roots,
        origin: rule.rule == Rule::Zero,
        beta: rule.beta(b, settings.bias),
    };
    let nonneg = |wi: &T| !wi.is_negative();
    match rule.rule {
        Rule::Zero | Rule::Z => step.run(lower, passed, |_, ai| ai.clone()),
        Rule::ZPlus => step.run(lower, passed, |wi, ai| {
            if nonneg(wi) {
                ai.clone()
            } else {
                T::zero()
            }
        }),
        Rule::Gamma(_) => step.run(lower, passed, |wi, ai| {
            if nonneg(wi) {
                ai.clone() * rule.one_plus_gamma.clone()
            } else {
                ai.clone()
            }
        }),
        Rule::WSquare => step.run(lower, passed, |wi, _| wi.clone()),
        Rule::ZBox { .. } => step.run(lower, passed, |wi, ai| {
            ai.clone()
                - if nonneg(wi) {
                    rule.lo.clone()
                } else {
                    rule.hi.clone()
                }
        }),
        Rule::Epsilon(_) | Rule::AlphaBeta { .. } | Rule::Flat | Rule::NearestValid(_) => {
            unreachable!("{} has no root direction", rule.rule)
        }
    }
}

/// One neuron's root, for a direction given coordinate by coordinate.
struct RootStep<'a, T> {
    /// The listed weights of the neuron's row and the inputs at their positions.
    w: &'a [T],
    a: &'a [T],
    /// The whole input, and the row (for the positions of its listed weights).
    full: &'a [T],
    row: WeightRow<'a, T>,
    r: &'a T,
    threshold: &'a T,
    stabilizer: &'a T,
    keep_roots: bool,
    /// Rule 0: the root is the origin, `ã = a − 1 · a`, whatever the denominator.
    origin: bool,
    beta: T,
}

impl<T: Scalar> RootStep<'_, T> {
    fn run(&self, lower: &mut [T], passed: &mut T, v: impl Fn(&T, &T) -> T) -> RootOutcome<T> {
        // Four partial sums: independent additions keep the f64 pipeline full.
        let mut lanes = [T::zero(), T::zero(), T::zero(), T::zero()];
        let (w4, a4) = (self.w.chunks_exact(4), self.a.chunks_exact(4));
        let (w_rest, a_rest) = (w4.remainder(), a4.remainder());
        for (wc, ac) in w4.zip(a4) {
            for (lane, (wi, ai)) in lanes.iter_mut().zip(wc.iter().zip(ac)) {
                T::mul_add_assign(lane, wi, &v(wi, ai));
            }
        }
        for (wi, ai) in w_rest.iter().zip(a_rest) {
            T::mul_add_assign(&mut lanes[0], wi, &v(wi, ai));
        }
        let [l0, l1, l2, l3] = lanes;
        let wv = (l0 + l1) + (l2 + l3);
        let t = if self.origin {
            T::one()
        } else {
            let d = stabilize(wv.clone() + self.beta.clone(), self.stabilizer);
            if d.abs() <= *self.threshold {
                return RootOutcome::None(NoRoot::SmallDenominator);
            }
            self.r.clone() / d
        };
        let mut point = Vec::new();
        match self.row.is_dense() {
            true if self.keep_roots => {
                point = vec![T::zero(); self.a.len()];
                for (((li, pi), wi), ai) in lower.iter_mut().zip(&mut point).zip(self.w).zip(self.a)
                {
                    let tv = t.clone() * v(wi, ai);
                    *pi = ai.clone() - tv.clone();
                    // Skips zero products itself where that saves work (rationals).
                    T::mul_add_assign(li, wi, &tv);
                }
            }
            true => {
                for ((li, wi), ai) in lower.iter_mut().zip(self.w).zip(self.a) {
                    T::mul_add_assign(li, wi, &(t.clone() * v(wi, ai)));
                }
            }
            false => {
                if self.keep_roots {
                    // An input the row does not list has weight 0, which the rules' sign
                    // tests count as non-negative.
                    let zero = T::zero();
                    point = self
                        .full
                        .iter()
                        .map(|ai| ai.clone() - t.clone() * v(&zero, ai))
                        .collect();
                }
                for (k, (wi, ai)) in self.w.iter().zip(self.a).enumerate() {
                    let i = self.row.position(k);
                    let tv = t.clone() * v(wi, ai);
                    if self.keep_roots {
                        point[i] = ai.clone() - tv.clone();
                    }
                    T::mul_add_assign(&mut lower[i], wi, &tv);
                }
            }
        }
        // Σ_i w_i t v_i = t (w · v); exact in rationals.
        *passed = passed.clone() + t.clone() * wv;
        RootOutcome::Root { point, t }
    }
}

/// One neuron's LRP step over the listed weights of its row (an unlisted input has weight 0
/// and is not connected, so it receives nothing).
#[allow(clippy::too_many_arguments)]
fn lrp_step<T: Scalar>(
    rule: Rule,
    row: &WeightRow<'_, T>,
    a: &[T],
    b: &T,
    r: &T,
    settings: &DtdSettings,
    lower: &mut [T],
    passed: &mut T,
) {
    let include = settings.bias != BiasMode::Ignore;
    let stabilizer = T::from_f64(settings.stabilizer);
    let (w, a) = (row.values(), row.gather(a));
    let mut give = |k: usize, c: T| {
        let i = row.position(k);
        *passed = passed.clone() + c.clone();
        lower[i] = lower[i].clone() + c;
    };
    match rule {
        Rule::Epsilon(e) => {
            let mut z = if include { b.clone() } else { T::zero() };
            for (wi, ai) in w.iter().zip(a.iter()) {
                T::mul_add_assign(&mut z, wi, ai);
            }
            let d = stabilize(z, &T::from_f64(e));
            if d.is_zero() {
                return;
            }
            let scale = r.clone() / d;
            for (i, (wi, ai)) in w.iter().zip(a.iter()).enumerate() {
                give(i, wi.clone() * ai.clone() * scale.clone());
            }
        }
        Rule::AlphaBeta { alpha, beta } => {
            let contributions: Vec<T> = w
                .iter()
                .zip(a.iter())
                .map(|(wi, ai)| wi.clone() * ai.clone())
                .collect();
            let mut pos = if include { positive(b) } else { T::zero() };
            let mut neg = if include { negative(b) } else { T::zero() };
            for c in &contributions {
                pos = pos + positive(c);
                neg = neg + negative(c);
            }
            // Each side's denominator is stabilised on its own (sign(0) = +1).
            let (pos, neg) = (stabilize(pos, &stabilizer), stabilize(neg, &stabilizer));
            let (alpha, beta) = (T::from_f64(alpha), T::from_f64(beta));
            for (i, c) in contributions.iter().enumerate() {
                let mut share = T::zero();
                if c.is_positive() && !pos.is_zero() {
                    share = share + alpha.clone() * c.clone() / pos.clone();
                }
                if c.is_negative() && !neg.is_zero() {
                    share = share - beta.clone() * c.clone() / neg.clone();
                }
                if !share.is_zero() {
                    give(i, share * r.clone());
                }
            }
        }
        // Every input the neuron is connected to gets an equal share (a convolution's
        // window, a dense layer's every input).
        Rule::Flat => {
            let n = stabilize(T::from_f64(row.connected() as f64), &stabilizer);
            // A window that covers only padding has no inputs to share with.
            if n.is_zero() {
                return;
            }
            let share = r.clone() / n;
            (0..w.len()).for_each(|k| give(k, share.clone()));
        }
        // Without the LP path the rule passes nothing; the LP layer supplies its roots.
        Rule::NearestValid(_) => {}
        _ => unreachable!("{rule} is a root rule"),
    }
}

/// The closed-form relevances of standard LRP rules, written independently of the root
/// machinery; tests compare the two.
pub mod closed_form {
    use crate::exact::Scalar;

    /// LRP-α1β0 without bias: `R_i = Σ_j a_i w_ji⁺ / Σ_i' a_i' w_ji'⁺ · R_j` (inputs >= 0).
    pub fn alpha1_beta0<T: Scalar>(w_rows: &[&[T]], a: &[T], upper: &[T]) -> Vec<T> {
        weighted(w_rows, upper, |wi, i| {
            if wi.is_positive() {
                wi.clone() * a[i].clone()
            } else {
                T::zero()
            }
        })
    }

    /// LRP-w²: `R_i = Σ_j w_ji² / Σ_i' w_ji'² · R_j`.
    pub fn w_square<T: Scalar>(w_rows: &[&[T]], upper: &[T]) -> Vec<T> {
        weighted(w_rows, upper, |wi, _| wi.clone() * wi.clone())
    }

    /// LRP-zB: `R_i = Σ_j (a_i w_ji − l w_ji⁺ − h w_ji⁻) / Σ_i' (…) · R_j`.
    pub fn z_box<T: Scalar>(w_rows: &[&[T]], a: &[T], lo: &T, hi: &T, upper: &[T]) -> Vec<T> {
        weighted(w_rows, upper, |wi, i| {
            let pos = if wi.is_positive() {
                wi.clone()
            } else {
                T::zero()
            };
            let neg = if wi.is_negative() {
                wi.clone()
            } else {
                T::zero()
            };
            wi.clone() * a[i].clone() - lo.clone() * pos - hi.clone() * neg
        })
    }

    fn weighted<T: Scalar>(w_rows: &[&[T]], upper: &[T], z: impl Fn(&T, usize) -> T) -> Vec<T> {
        let n = w_rows.first().map_or(0, |r| r.len());
        let mut out = vec![T::zero(); n];
        for (row, r) in w_rows.iter().zip(upper) {
            if r.is_zero() {
                continue;
            }
            let zs: Vec<T> = row.iter().enumerate().map(|(i, wi)| z(wi, i)).collect();
            let total = zs.iter().fold(T::zero(), |acc, v| acc + v.clone());
            if total.is_zero() {
                continue;
            }
            for (o, zi) in out.iter_mut().zip(zs) {
                *o = o.clone() + zi * r.clone() / total.clone();
            }
        }
        out
    }
}
