//! Full-backward DTD: the paper's Algorithm 1 (DESIGN.md §1.3), written once over [`Scalar`] so
//! it runs in f64 and in exact rationals.
//!
//! Train-free DTD takes the relevance of a layer's neurons as given and expands it at roots of
//! the layer's own pre-activation. Full-backward DTD instead re-evaluates the *upper relevance
//! function* at each root and expands that:
//!
//! ```text
//! relevance(l, a):  if l > L return e_k a_k                   (here a is the network output)
//!   R(.) := relevance(l+1, layer_l(.))                       the upper relevance function
//!   for each neuron j of layer l with R_j(a) > 0:
//!     ã_j := root(l, j, a, R_j(a))                            a rule root, or any RootFinder
//!     g_j := gradient of R_j(.) at ã_j                        (what is held fixed: see below)
//!     r_j := g_j ⊙ (a − ã_j)
//!   return Σ_j r_j
//! ```
//!
//! `R_j(ã_j)`, the relevance still left at the root, is neuron `j`'s *remainder*. A neuron that
//! is not expanded (`R_j(a) <= 0`, or no root) passes nothing down and its whole `R_j(a)` is its
//! remainder, so a layer where no upper relevance is positive passes nothing and reports all
//! of it. Per neuron, `R_j(a) = Σ_i r_ji + remainder + taylor error`, where the Taylor error
//! is what the first-order expansion misses; summed over the layers,
//! `f_k(x) = Σ input relevance + Σ remainders + Σ Taylor errors`. Full-backward DTD is not
//! conservative: the remainders and Taylor errors do not vanish in general (with the paper's
//! reference implementation, Σ input relevance / f_k(x) ranged from 0.23 to 27 over 100
//! inputs of its small MLP). [`FullBackward`] reports every term; nothing is dropped.
//!
//! # The gradient, and what is held fixed
//!
//! `R_j(p)` re-runs the whole recursion above layer `l` at `p`, finding new roots for every
//! upper neuron. Differentiated with those roots moving, `R_j` is a piecewise rational function
//! of `p` (a rule root divides by `w · v(p)`) whose derivative depends on how a root finder
//! computes its roots — and a search or LP root finder has no useful derivative at all. dtdcert holds
//! fixed, while differentiating at `ã_j`, everything the evaluation at `ã_j` chose: the roots
//! of every upper layer, their gradients, and which upper neurons were expanded. (The
//! reference implementation differentiated the recursion with autograd, so what moved with
//! the point depended on how its root finder computed roots.) With those fixed, the relevance
//! that layer `l+1` passes down is affine in its input `h`,
//!
//! ```text
//! relevance(l+1, h) = Σ_i g_i ⊙ (h − ã_i) = c ⊙ h − o,    c = Σ_i g_i,  o = Σ_i g_i ⊙ ã_i
//! ```
//!
//! (at the top, `c = e_k` and `o = 0`), so the frozen upper relevance function of neuron `j` is
//! `R̂_j(p) = c_j h_j(p) − o_j` with `h_j(p) = relu(w_j · p + b_j)` — piecewise linear, and its
//! gradient is exact: `g_j = c_j s_j w_j`, where `s_j` is the activation of neuron `j` at the
//! root (1 for a layer without ReLU). `c` and `o` come out of the same recursion that evaluates
//! `R(ã_j)`, so no derivative is ever approximated (no finite differences, no noise).
//!
//! A root often lies on the face of its own neuron: with the bias ignored, every rule root of
//! the explained output satisfies `z_k(ã) = z_k(a) − R_k = 0`. There `s_j` is the activation
//! on the side facing `a`, i.e. of the points `ã_j + ε (a − ã_j)` for small `ε > 0`: active
//! when `w_j · (a − ã_j) > 0`. A pre-activation within `face_tolerance · (Σ_i |w_ji ã_ji| +
//! |b_j|)` of zero counts as on the face, so that an f64 root that rounding put a hair inside
//! or outside gets the same gradient as the exact root (tolerance 0: only an exact zero).
//! Consequently, whenever neuron `j` has the same activation along the segment from `ã_j` to
//! `a` (in particular when `ã_j` lies in `a`'s linear region `P_l`), the expansion of the
//! frozen function is exact: `R̂_j(a) = R_j(ã_j) + g_j · (a − ã_j)`. The rest of the Taylor
//! error, `R_j(a) − R̂_j(a)`, comes from what the evaluation at `a` chose differently: other
//! upper roots, other gradients there, other expanded neurons.
//!
//! # Cost
//!
//! Every expanded neuron re-evaluates the recursion above it at its root, so the work grows
//! exponentially with depth. One *evaluation* is one call of `relevance(l, ·)`: one pass
//! through layer `l` and the root finder's work for each of its expanded neurons. From layer
//! `l` (0-based, `L` layers) at most `C(l)` evaluations happen, with `C(L) = 1`,
//! `C(L−1) = 3` (only the explained output carries relevance) and
//! `C(l) = 1 + (1 + n_l) C(l+1)` for a layer of `n_l` neurons: about `Π (n_l + 1)` over the
//! hidden layers (375 for the paper's 10-10-10-2 MLP; about 2.6·10^7 for 784-256-256-128-10).
//! A network whose worst case exceeds [`FullBackwardSettings::max_evaluations`] is refused
//! before any work starts.

use std::cell::Cell;

use serde::{Deserialize, Serialize};

use super::{root_step, DtdSettings, RootOutcome, RootRule};
use crate::error::{invalid, Error, Result};
use crate::exact::Scalar;
use crate::model::{Layer, Network};

/// Settings of full-backward DTD (the rules live in [`DtdSettings`], used by [`RuleRoots`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FullBackwardSettings {
    /// Networks whose worst-case number of evaluations per input exceeds this are refused.
    /// Default 1,000,000.
    pub max_evaluations: u64,
    /// A root whose pre-activation is within this fraction of `Σ_i |w_ji ã_ji| + |b_j|` of zero
    /// counts as on its neuron's face, and takes the activation of the side facing the input.
    /// Default 1e-9; 0 counts only an exact zero.
    pub face_tolerance: f64,
}

impl Default for FullBackwardSettings {
    fn default() -> Self {
        Self {
            max_evaluations: 1_000_000,
            face_tolerance: 1e-9,
        }
    }
}

impl FullBackwardSettings {
    pub fn validate(&self) -> Result<()> {
        if !self.face_tolerance.is_finite() || self.face_tolerance < 0.0 {
            return Err(Error::Usage(format!(
                "the face tolerance must be a finite number >= 0, got {}",
                self.face_tolerance
            )));
        }
        Ok(())
    }

    /// Refuses a network whose worst-case number of evaluations per input exceeds
    /// `max_evaluations` (what [`full_backward`] checks first), so that a caller can refuse it
    /// before explaining any input.
    pub fn check_network<T: Scalar>(&self, net: &Network<T>) -> Result<()> {
        self.validate()?;
        check_cost(net, 0, self)
    }
}

/// Why a neuron with positive relevance got no root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rootless {
    /// `|w_j · v| <=` the threshold: no root along the rule's direction.
    SmallDenominator,
    /// The layer's rule has no root form (an LRP rule).
    NotApplicable,
    /// The root finder found none.
    NotFound,
}

/// Finds the root of one neuron, for [`full_backward`].
///
/// `layer` is the 0-based index of the layer (0 takes the network input), `neuron` the neuron
/// of that layer, `a` the input of that layer at the point being expanded and `relevance` its
/// upper relevance `R_j(a) > 0`. The recursion calls the finder not only at the activations of
/// the explained input but also at the images of other neurons' roots, so `a` is any point of
/// the layer's input space. Return a point of the same width as `a`, or `None` when this
/// neuron has no root (its relevance is then reported as its remainder); an error aborts the
/// explanation. Nothing is required of the point: the remainder `R_j(ã)` that
/// [`full_backward`] reports measures how far it is from a root of the upper relevance
/// function.
///
/// The trait is object safe (`&dyn RootFinder<T>`); `T` defaults to `f64`, so an f64-only
/// finder implements `RootFinder`. [`RuleRoots`] is the rule-based finder of train-free DTD.
pub trait RootFinder<T = f64> {
    fn root(&self, layer: usize, neuron: usize, a: &[T], relevance: T) -> Result<Option<Vec<T>>>;

    /// Why [`RootFinder::root`] returned `None` for this neuron, for reports.
    fn rootless(&self, _layer: usize, _neuron: usize) -> Rootless {
        Rootless::NotFound
    }
}

/// The rule roots of train-free DTD: each layer's [`super::Rule`] from [`DtdSettings`], with
/// its bias mode, stabiliser and denominator threshold, exactly as [`super::explain`] computes
/// them, but from the relevance the full-backward recursion hands it.
pub struct RuleRoots<'a, T> {
    net: &'a Network<T>,
    settings: DtdSettings,
    /// Per layer; `None` for a rule without a root form.
    rules: Vec<Option<RootRule<T>>>,
    threshold: T,
    stabilizer: T,
}

impl<'a, T: Scalar> RuleRoots<'a, T> {
    pub fn new(net: &'a Network<T>, settings: &DtdSettings) -> Self {
        let rules = (0..net.layers().len())
            .map(|index| {
                let rule = settings.rule_for(index);
                rule.has_root().then(|| RootRule::new(rule))
            })
            .collect();
        Self {
            net,
            settings: settings.clone(),
            rules,
            threshold: T::from_f64(settings.denominator_threshold),
            stabilizer: T::from_f64(settings.stabilizer),
        }
    }
}

impl<T: Scalar> RootFinder<T> for RuleRoots<'_, T> {
    fn root(&self, layer: usize, neuron: usize, a: &[T], relevance: T) -> Result<Option<Vec<T>>> {
        let Some(rule) = &self.rules[layer] else {
            return Ok(None);
        };
        let affine = &self.net.layers()[layer].affine;
        // root_step also accumulates what the neuron passes on; only the point is wanted here.
        let mut lower = vec![T::zero(); a.len()];
        let mut passed = T::zero();
        let outcome = root_step(
            rule,
            &affine.row(neuron),
            a,
            affine.bias(neuron),
            &relevance,
            &self.settings,
            &self.threshold,
            &self.stabilizer,
            true,
            &mut lower,
            &mut passed,
        );
        Ok(match outcome {
            RootOutcome::Root { point, .. } => Some(point),
            RootOutcome::None(_) => None,
        })
    }

    fn rootless(&self, layer: usize, _neuron: usize) -> Rootless {
        // The recursion asks only for positive relevance, so a root rule fails only on its
        // denominator.
        if self.rules[layer].is_some() {
            Rootless::SmallDenominator
        } else {
            Rootless::NotApplicable
        }
    }
}

/// What happened to one neuron.
#[derive(Clone, Debug, PartialEq)]
pub enum Expansion<T> {
    /// `R_j(a) <= 0`: not expanded.
    NotPositive,
    /// Positive relevance but no root.
    NoRoot(Rootless),
    /// Expanded at `point` with `gradient` `g_j`; `frozen` is `R̂_j(a)`, the upper relevance
    /// function with everything the evaluation at the root chose held fixed, evaluated at `a`.
    Root {
        point: Vec<T>,
        gradient: Vec<T>,
        frozen: T,
    },
}

/// One neuron of one layer, at the explained input.
#[derive(Clone, Debug, PartialEq)]
pub struct FullBackwardNeuron<T> {
    /// `R_j(a)`.
    pub relevance: T,
    /// `g_j · (a − ã_j)`: what the neuron passed to the layer's inputs (0 if not expanded).
    pub passed: T,
    /// `R_j(ã_j)` for an expanded neuron; `R_j(a)` for one that was not expanded.
    pub remainder: T,
    pub expansion: Expansion<T>,
}

impl<T: Scalar> FullBackwardNeuron<T> {
    /// `R_j(a) − passed − remainder`: what the first-order expansion misses (0 when not
    /// expanded).
    pub fn taylor_error(&self) -> T {
        self.relevance.clone() - self.passed.clone() - self.remainder.clone()
    }
}

/// One layer at the explained input.
#[derive(Clone, Debug, PartialEq)]
pub struct FullBackwardLayer<T> {
    /// `R^l`: the relevances of the layer's neurons, `R(a)`.
    pub upper: Vec<T>,
    /// `Σ_j r_j`: the relevances of the layer's inputs.
    pub lower: Vec<T>,
    pub neurons: Vec<FullBackwardNeuron<T>>,
}

fn sum<'a, T: Scalar>(values: impl IntoIterator<Item = &'a T>) -> T {
    values.into_iter().fold(T::zero(), |acc, v| acc + v.clone())
}

impl<T: Scalar> FullBackwardLayer<T> {
    /// `Σ_j` remainder.
    pub fn remainder(&self) -> T {
        sum(self.neurons.iter().map(|n| &n.remainder))
    }

    /// `Σ R^l − Σ R^{l-1} − Σ remainders`: the layer's Taylor error.
    pub fn taylor_error(&self) -> T {
        sum(&self.upper) - sum(&self.lower) - self.remainder()
    }
}

/// A full-backward explanation of output `explained` at one input.
#[derive(Clone, Debug, PartialEq)]
pub struct FullBackward<T> {
    pub explained: usize,
    /// `f_k(x)`.
    pub output: T,
    /// Layers in network order (layer 1 first).
    pub layers: Vec<FullBackwardLayer<T>>,
    /// Evaluations of the recursion this explanation took.
    pub evaluations: u64,
}

impl<T: Scalar> FullBackward<T> {
    /// Relevance of the network inputs.
    pub fn input_relevance(&self) -> &[T] {
        &self.layers[0].lower
    }

    /// The remainders of every neuron of every layer.
    pub fn remainder(&self) -> T {
        self.layers
            .iter()
            .fold(T::zero(), |acc, l| acc + l.remainder())
    }

    /// `f_k(x) − Σ input relevance − Σ remainders`: the sum of the layers' Taylor errors
    /// (exactly, in rationals). Zero means conservative.
    pub fn conservation_gap(&self) -> T {
        self.output.clone() - sum(self.input_relevance()) - self.remainder()
    }
}

/// The upper relevance function of a layer at one point, from [`upper_relevance`].
#[derive(Clone, Debug, PartialEq)]
pub struct UpperRelevance<T> {
    /// `R(a)`: the relevance of each neuron of the layer.
    pub relevance: Vec<T>,
    /// With everything this evaluation chose held fixed, `R_j(p) = slope_j h_j(p) − offset_j`
    /// for the layer's outputs `h(p)`; `relevance = slope ⊙ h(a) − offset`.
    pub slope: Vec<T>,
    pub offset: Vec<T>,
    pub evaluations: u64,
}

/// The most evaluations of the recursion that explaining one input from layer `from` (0-based;
/// 0 for a whole explanation) can take: see the module documentation.
pub fn worst_case_evaluations<T: Scalar>(net: &Network<T>, from: usize) -> u64 {
    let layers = net.layers();
    let mut count: u64 = 1;
    for index in (from..layers.len()).rev() {
        let expanded = if index + 1 == layers.len() {
            1
        } else {
            layers[index].affine.out_dim() as u64
        };
        count = expanded
            .saturating_add(1)
            .saturating_mul(count)
            .saturating_add(1);
    }
    count
}

fn check_cost<T: Scalar>(
    net: &Network<T>,
    from: usize,
    settings: &FullBackwardSettings,
) -> Result<()> {
    if let Some(k) = net.layers().iter().position(|l| l.max_pool.is_some()) {
        return Err(Error::Usage(format!(
            "full-backward DTD differentiates relevance functions of ReLU layers, and layer {} \
             max-pools (the train-free recursion passes its relevance winner-take-all)",
            k + 1
        )));
    }
    let worst = worst_case_evaluations(net, from);
    if worst > settings.max_evaluations {
        return Err(Error::Usage(format!(
            "full-backward DTD of the {} network may take {worst} evaluations of the relevance \
             recursion per input (every root re-evaluates all layers above it), more than the \
             limit of {} (--max-evaluations); raise the limit or use train-free DTD",
            net.describe(),
            settings.max_evaluations
        )));
    }
    Ok(())
}

/// Full-backward DTD of output `k` at the network input `x`, with roots from `finder`.
///
/// Fails before any work when the network's worst case exceeds `max_evaluations`, when `x` or
/// `k` does not fit the network, or when the finder fails or returns a point of the wrong
/// width.
pub fn full_backward<T: Scalar>(
    net: &Network<T>,
    x: &[T],
    k: usize,
    settings: &FullBackwardSettings,
    finder: &dyn RootFinder<T>,
) -> Result<FullBackward<T>> {
    settings.validate()?;
    check_explained(net, k)?;
    check_width(net, 0, x)?;
    check_cost(net, 0, settings)?;
    let recursion = Recursion::new(net, k, settings, finder);
    let mut layers = Vec::with_capacity(net.layers().len());
    recursion.eval(0, x, Some(&mut layers))?;
    layers.reverse();
    let output = layers
        .last()
        .expect("a network has at least one layer")
        .upper[k]
        .clone();
    Ok(FullBackward {
        explained: k,
        output,
        layers,
        evaluations: recursion.evaluations.get(),
    })
}

/// The upper relevance function `R(.) = relevance(layer + 1, layer_layer(.))` of layer `layer`
/// (0-based) at the layer input `a`, explaining output `k`: the relevance of each of the
/// layer's neurons, and its affine form with everything the evaluation chose held fixed.
pub fn upper_relevance<T: Scalar>(
    net: &Network<T>,
    layer: usize,
    a: &[T],
    k: usize,
    settings: &FullBackwardSettings,
    finder: &dyn RootFinder<T>,
) -> Result<UpperRelevance<T>> {
    settings.validate()?;
    check_explained(net, k)?;
    let layers = net.layers();
    if layer >= layers.len() {
        return Err(invalid(format!(
            "layer index {layer} is out of range: the network has {} layers",
            layers.len()
        )));
    }
    check_width(net, layer, a)?;
    check_cost(net, layer + 1, settings)?;
    let recursion = Recursion::new(net, k, settings, finder);
    let (_, h) = apply(&layers[layer], a);
    let level = recursion.eval(layer + 1, &h, None)?;
    Ok(UpperRelevance {
        relevance: level.relevance,
        slope: level.slope,
        offset: level.offset,
        evaluations: recursion.evaluations.get(),
    })
}

fn check_explained<T: Scalar>(net: &Network<T>, k: usize) -> Result<()> {
    if k >= net.output_dim() {
        return Err(Error::Usage(format!(
            "explained output {k} is out of range: the network has {} outputs",
            net.output_dim()
        )));
    }
    Ok(())
}

fn check_width<T: Scalar>(net: &Network<T>, layer: usize, a: &[T]) -> Result<()> {
    let want = net.layers()[layer].affine.in_dim();
    if a.len() != want {
        return Err(invalid(format!(
            "layer {} takes {want} inputs, got {}",
            layer + 1,
            a.len()
        )));
    }
    Ok(())
}

/// Pre-activations and outputs of one layer.
fn apply<T: Scalar>(layer: &Layer<T>, a: &[T]) -> (Vec<T>, Vec<T>) {
    let mut z = Vec::with_capacity(layer.affine.out_dim());
    layer.affine.apply_into(a, &mut z);
    let h = crate::model::forward::activate(layer, &z);
    (z, h)
}

/// What one call of the recursion returns about the input `h` of its layer: the relevance of
/// each coordinate, and its affine form with the call's roots and choices fixed,
/// `relevance = slope ⊙ h − offset`. The Jacobian of that form is diagonal, so `slope` is all
/// of it.
struct Level<T> {
    relevance: Vec<T>,
    slope: Vec<T>,
    offset: Vec<T>,
}

struct Recursion<'a, T> {
    net: &'a Network<T>,
    k: usize,
    finder: &'a dyn RootFinder<T>,
    face_tolerance: T,
    evaluations: Cell<u64>,
}

impl<'a, T: Scalar> Recursion<'a, T> {
    fn new(
        net: &'a Network<T>,
        k: usize,
        settings: &FullBackwardSettings,
        finder: &'a dyn RootFinder<T>,
    ) -> Self {
        Self {
            net,
            k,
            finder,
            face_tolerance: T::from_f64(settings.face_tolerance),
            evaluations: Cell::new(0),
        }
    }

    /// `relevance(index, h)` for the input `h` of layer `index` (0-based; `L`: the network
    /// output). With `record`, the layers from `index` up are appended to it, top first, as
    /// seen at `h` and at the activations above it.
    fn eval(
        &self,
        index: usize,
        h: &[T],
        mut record: Option<&mut Vec<FullBackwardLayer<T>>>,
    ) -> Result<Level<T>> {
        self.evaluations.set(self.evaluations.get() + 1);
        let layers = self.net.layers();
        let n_in = h.len();
        let mut slope = vec![T::zero(); n_in];
        let mut offset = vec![T::zero(); n_in];
        if index == layers.len() {
            let mut relevance = vec![T::zero(); n_in];
            relevance[self.k] = h[self.k].clone();
            slope[self.k] = T::one();
            return Ok(Level {
                relevance,
                slope,
                offset,
            });
        }
        let layer = &layers[index];
        let (_, out) = apply(layer, h);
        let upper = self.eval(index + 1, &out, record.as_deref_mut())?;
        let mut lower = vec![T::zero(); n_in];
        let mut neurons = Vec::new();
        let mut diff = vec![T::zero(); n_in];
        for (j, r) in upper.relevance.iter().enumerate() {
            let unexpanded = |expansion| FullBackwardNeuron {
                relevance: r.clone(),
                passed: T::zero(),
                remainder: r.clone(),
                expansion,
            };
            if !r.is_positive() {
                if record.is_some() {
                    neurons.push(unexpanded(Expansion::NotPositive));
                }
                continue;
            }
            let Some(root) = self.finder.root(index, j, h, r.clone())? else {
                if record.is_some() {
                    neurons.push(unexpanded(Expansion::NoRoot(
                        self.finder.rootless(index, j),
                    )));
                }
                continue;
            };
            if root.len() != n_in {
                return Err(invalid(format!(
                    "the root finder returned a root of {} values for neuron {j} of layer {}, \
                     whose input has {n_in}",
                    root.len(),
                    index + 1
                )));
            }
            let (z_root, out_root) = apply(layer, &root);
            let at_root = self.eval(index + 1, &out_root, None)?;
            // The gradient is recorded over every input, so the row is taken whole.
            let w = layer.affine.row(j).dense();
            // A neuron of a carried tail has no ReLU.
            let active = j >= layer.relu_count()
                || self.active_toward(&z_root[j], &w, layer.affine.bias(j), &root, h);
            let c = &at_root.slope[j];
            let mut passed = T::zero();
            let mut gradient = Vec::new();
            if active && !c.is_zero() {
                for (d, (ai, pi)) in diff.iter_mut().zip(h.iter().zip(&root)) {
                    *d = ai.clone() - pi.clone();
                }
                for i in 0..n_in {
                    let g = c.clone() * w[i].clone();
                    let ri = g.clone() * diff[i].clone();
                    lower[i] = lower[i].clone() + ri.clone();
                    passed = passed + ri;
                    T::mul_add_assign(&mut offset[i], &g, &root[i]);
                    slope[i] = slope[i].clone() + g.clone();
                    if record.is_some() {
                        gradient.push(g);
                    }
                }
            } else if record.is_some() {
                gradient = vec![T::zero(); n_in];
            }
            if record.is_some() {
                let frozen = c.clone() * out[j].clone() - at_root.offset[j].clone();
                neurons.push(FullBackwardNeuron {
                    relevance: r.clone(),
                    passed,
                    remainder: at_root.relevance[j].clone(),
                    expansion: Expansion::Root {
                        point: root,
                        gradient,
                        frozen,
                    },
                });
            }
        }
        if let Some(record) = record {
            record.push(FullBackwardLayer {
                upper: upper.relevance,
                lower: lower.clone(),
                neurons,
            });
        }
        Ok(Level {
            relevance: lower,
            slope,
            offset,
        })
    }

    /// The activation of a neuron with pre-activation `z` at `root`, on the side facing `a`
    /// when the root is on the neuron's face (within the tolerance).
    fn active_toward(&self, z: &T, w: &[T], b: &T, root: &[T], a: &[T]) -> bool {
        let scale = w.iter().zip(root).fold(b.abs(), |acc, (wi, pi)| {
            acc + (wi.clone() * pi.clone()).abs()
        });
        if z.abs() <= self.face_tolerance.clone() * scale {
            let mut toward = T::zero();
            for ((wi, ai), pi) in w.iter().zip(a).zip(root) {
                T::mul_add_assign(&mut toward, wi, &(ai.clone() - pi.clone()));
            }
            toward.is_positive()
        } else {
            z.is_positive()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dtd::{explain, BiasMode, Rule};
    use crate::exact::Rational;
    use crate::model::forward::forward;
    use crate::model::ir::dense_layer;

    fn settings(rule: Rule) -> DtdSettings {
        DtdSettings {
            rule,
            input_rule: None,
            bias: BiasMode::Ignore,
            stabilizer: 0.0,
            denominator_threshold: 1e-5,
            ..DtdSettings::default()
        }
    }

    fn exact(v: &[f64]) -> Vec<Rational> {
        v.iter().map(|&x| Rational::from_f64(x)).collect()
    }

    /// 3 -> 4 (ReLU) -> 3 (ReLU) -> 2, with mixed signs and biases.
    fn three_layers() -> Network {
        Network::new(vec![
            dense_layer(
                4,
                3,
                vec![
                    0.5, -0.25, 1.0, 0.75, 0.5, -0.5, -1.0, 0.25, 0.5, 0.125, 1.5, 0.25,
                ],
                vec![0.125, -0.25, 0.0, 0.5],
                true,
            )
            .unwrap(),
            dense_layer(
                3,
                4,
                vec![
                    1.0, -0.5, 0.25, 0.5, 0.5, 0.75, -0.25, 1.0, -0.5, 0.25, 1.0, 0.5,
                ],
                vec![-0.125, 0.25, 0.0],
                true,
            )
            .unwrap(),
            dense_layer(
                2,
                3,
                vec![0.75, -0.5, 1.0, 0.25, 1.0, -0.75],
                vec![0.5, 0.0],
                false,
            )
            .unwrap(),
        ])
        .unwrap()
    }

    #[test]
    fn one_layer_equals_train_free() {
        let net = Network::new(vec![dense_layer(
            2,
            3,
            vec![1.0, -0.5, 0.25, -0.75, 0.5, 1.5],
            vec![0.3, -0.2],
            true,
        )
        .unwrap()])
        .unwrap()
        .to_exact();
        let x = exact(&[0.5, 0.25, 2.0]);
        let trace = forward(&net, &x);
        for rule in [Rule::Z, Rule::ZPlus, Rule::Gamma(0.5), Rule::WSquare] {
            for k in 0..2 {
                assert!(trace.output()[k].is_positive());
                let s = settings(rule);
                let tf = explain(&net, &trace, &s, k, false);
                let fb = full_backward(
                    &net,
                    &x,
                    k,
                    &FullBackwardSettings::default(),
                    &RuleRoots::new(&net, &s),
                )
                .unwrap();
                assert_eq!(fb.input_relevance(), tf.input_relevance(), "{rule}, k={k}");
                // The root lies on the output's face; the side facing x is active, so nothing
                // is left over.
                assert!(fb.remainder().is_zero());
                assert!(fb.conservation_gap().is_zero());
                assert_eq!(fb.evaluations, 3);
            }
        }
    }

    #[test]
    fn f64_takes_the_same_side_of_a_face_as_exact() {
        // The explained output's rule root is on its face: exactly in rationals, within
        // rounding in f64. Both must see the active side.
        let net = three_layers();
        let x = [0.7, 0.3, 1.1];
        let s = settings(Rule::ZPlus);
        let fb = full_backward(
            &net,
            &x,
            0,
            &FullBackwardSettings::default(),
            &RuleRoots::new(&net, &s),
        )
        .unwrap();
        let ex = net.to_exact();
        let fe = full_backward(
            &ex,
            &exact(&x),
            0,
            &FullBackwardSettings::default(),
            &RuleRoots::new(&ex, &s),
        )
        .unwrap();
        let top = fb.layers.last().unwrap();
        let Expansion::Root { gradient, .. } = &top.neurons[0].expansion else {
            panic!("the explained output is expanded: {:?}", top.neurons[0]);
        };
        assert_eq!(*gradient, *net.layers()[2].affine.row(0).dense());
        for (a, b) in fb.input_relevance().iter().zip(fe.input_relevance()) {
            assert!(
                (a - b.to_f64()).abs() <= 1e-12 * (1.0 + a.abs()),
                "{a} vs {b}"
            );
        }
        assert_eq!(fb.evaluations, fe.evaluations);
    }

    #[test]
    fn nothing_positive_passes_nothing_and_reports_it_as_remainder() {
        // No ReLU on the output and a negative output: nothing is expanded anywhere.
        let net = Network::new(vec![
            dense_layer(2, 2, vec![1.0, 0.5, 0.25, 1.0], vec![0.0, 0.0], true).unwrap(),
            dense_layer(1, 2, vec![-1.0, -0.5], vec![0.25], false).unwrap(),
        ])
        .unwrap()
        .to_exact();
        let x = exact(&[1.0, 2.0]);
        let s = settings(Rule::ZPlus);
        let fb = full_backward(
            &net,
            &x,
            0,
            &FullBackwardSettings::default(),
            &RuleRoots::new(&net, &s),
        )
        .unwrap();
        let f = forward(&net, &x).output()[0].clone();
        assert!(f.is_negative());
        assert_eq!(fb.output, f);
        assert!(fb.input_relevance().iter().all(Scalar::is_zero));
        assert_eq!(fb.layers[1].neurons[0].expansion, Expansion::NotPositive);
        assert_eq!(fb.layers[1].remainder(), f);
        assert_eq!(fb.remainder(), f);
        assert!(fb.conservation_gap().is_zero());
        // One evaluation per layer plus the output: no root was ever evaluated.
        assert_eq!(fb.evaluations, 3);
    }

    #[test]
    fn lrp_rules_and_small_denominators_leave_their_relevance_unresolved() {
        let net = three_layers().to_exact();
        let x = exact(&[0.7, 0.3, 1.1]);
        let s = settings(Rule::Epsilon(0.01));
        let fb = full_backward(
            &net,
            &x,
            0,
            &FullBackwardSettings::default(),
            &RuleRoots::new(&net, &s),
        )
        .unwrap();
        let top = &fb.layers[2].neurons[0];
        assert_eq!(top.expansion, Expansion::NoRoot(Rootless::NotApplicable));
        assert_eq!(top.remainder, fb.output);
        assert!(fb.conservation_gap().is_zero());

        let mut s = settings(Rule::ZPlus);
        s.denominator_threshold = 1e6;
        let fb = full_backward(
            &net,
            &x,
            0,
            &FullBackwardSettings::default(),
            &RuleRoots::new(&net, &s),
        )
        .unwrap();
        assert_eq!(
            fb.layers[2].neurons[0].expansion,
            Expansion::NoRoot(Rootless::SmallDenominator)
        );
    }

    #[test]
    fn worst_case_follows_the_recurrence() {
        let net = three_layers();
        // C(3) = 1, C(2) = 1 + 2·1, C(1) = 1 + 4·3, C(0) = 1 + 5·13.
        assert_eq!(worst_case_evaluations(&net, 3), 1);
        assert_eq!(worst_case_evaluations(&net, 2), 3);
        assert_eq!(worst_case_evaluations(&net, 1), 1 + (3 + 1) * 3);
        assert_eq!(
            worst_case_evaluations(&net, 0),
            1 + (4 + 1) * (1 + (3 + 1) * 3)
        );
        let s = settings(Rule::ZPlus);
        let fb = full_backward(
            &net,
            &[0.7, 0.3, 1.1],
            0,
            &FullBackwardSettings::default(),
            &RuleRoots::new(&net, &s),
        )
        .unwrap();
        assert!(fb.evaluations <= worst_case_evaluations(&net, 0));
        assert!(fb.evaluations > 3, "some hidden neuron was expanded");
        // The figures the documentation quotes.
        let zeros = |widths: &[usize]| {
            let layers = widths
                .windows(2)
                .map(|w| dense_layer(w[1], w[0], vec![0.0; w[0] * w[1]], vec![0.0; w[1]], true))
                .collect::<Result<Vec<_>>>()
                .unwrap();
            Network::new(layers).unwrap()
        };
        assert_eq!(worst_case_evaluations(&zeros(&[10, 10, 10, 2]), 0), 375);
        let wide = worst_case_evaluations(&zeros(&[784, 256, 256, 128, 10]), 0);
        assert_eq!(wide, 1 + 257 * (1 + 257 * (1 + 129 * 3)));
        assert!((2.5e7..2.7e7).contains(&(wide as f64)));
    }

    #[test]
    fn a_network_over_the_limit_is_refused() {
        let net = three_layers();
        let s = settings(Rule::ZPlus);
        let limit = FullBackwardSettings {
            max_evaluations: worst_case_evaluations(&net, 0) - 1,
            ..FullBackwardSettings::default()
        };
        let err = full_backward(&net, &[0.7, 0.3, 1.1], 0, &limit, &RuleRoots::new(&net, &s))
            .unwrap_err();
        assert!(matches!(err, Error::Usage(_)), "{err}");
        let text = err.to_string();
        assert!(text.contains("66") && text.contains("65"), "{text}");
        // The upper relevance function of the top layer needs only the output.
        let up = upper_relevance(
            &net,
            2,
            &[1.0, 0.0, 0.5],
            0,
            &limit,
            &RuleRoots::new(&net, &s),
        )
        .unwrap();
        assert_eq!(up.evaluations, 1);
    }

    struct Failing;
    impl RootFinder<f64> for Failing {
        fn root(&self, layer: usize, _: usize, _: &[f64], _: f64) -> Result<Option<Vec<f64>>> {
            Err(invalid(format!("no solver for layer {layer}")))
        }
    }

    struct Narrow;
    impl RootFinder for Narrow {
        fn root(&self, _: usize, _: usize, _: &[f64], _: f64) -> Result<Option<Vec<f64>>> {
            Ok(Some(vec![0.0]))
        }
    }

    struct Origin;
    impl RootFinder<Rational> for Origin {
        fn root(
            &self,
            _: usize,
            _: usize,
            a: &[Rational],
            _: Rational,
        ) -> Result<Option<Vec<Rational>>> {
            Ok(Some(vec![Rational::zero(); a.len()]))
        }
    }

    #[test]
    fn root_finders_are_pluggable() {
        let net = three_layers();
        let x = [0.7, 0.3, 1.1];
        let opts = FullBackwardSettings::default();
        let err = full_backward(&net, &x, 0, &opts, &Failing).unwrap_err();
        assert_eq!(err.to_string(), "no solver for layer 2");
        let err = full_backward(&net, &x, 0, &opts, &Narrow).unwrap_err();
        assert!(err.to_string().contains("1 values"), "{err}");

        // A finder object-safe behind a reference, in exact arithmetic: the origin as every
        // root equals rule 0.
        let ex = net.to_exact();
        let xr = exact(&x);
        let finder: &dyn RootFinder<Rational> = &Origin;
        let a = full_backward(&ex, &xr, 0, &opts, finder).unwrap();
        let b = full_backward(
            &ex,
            &xr,
            0,
            &opts,
            &RuleRoots::new(&ex, &settings(Rule::Zero)),
        )
        .unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn gradient_is_the_upper_slope_times_the_weights() {
        // For every expanded neuron, g_j = c_j w_j with c_j the slope of the upper relevance
        // at the root's image (or 0 when the neuron is inactive there), and the frozen
        // function at the root is the remainder.
        let net = three_layers().to_exact();
        let x = exact(&[0.7, 0.3, 1.1]);
        let s = settings(Rule::Gamma(0.5));
        let finder = RuleRoots::new(&net, &s);
        let opts = FullBackwardSettings {
            face_tolerance: 0.0,
            ..FullBackwardSettings::default()
        };
        let fb = full_backward(&net, &x, 1, &opts, &finder).unwrap();
        let mut expanded = 0;
        for (index, layer) in fb.layers.iter().enumerate() {
            for (j, n) in layer.neurons.iter().enumerate() {
                let Expansion::Root {
                    point, gradient, ..
                } = &n.expansion
                else {
                    continue;
                };
                expanded += 1;
                let up = upper_relevance(&net, index, point, 1, &opts, &finder).unwrap();
                assert_eq!(up.relevance[j], n.remainder);
                let w = net.layers()[index].affine.row(j).dense();
                let ratio_ok = gradient.iter().all(Scalar::is_zero)
                    || gradient
                        .iter()
                        .zip(w.iter())
                        .all(|(g, wi)| *g == up.slope[j].clone() * wi.clone());
                assert!(ratio_ok, "layer {index} neuron {j}");
            }
        }
        assert!(expanded >= 3, "{expanded}");
    }
}
