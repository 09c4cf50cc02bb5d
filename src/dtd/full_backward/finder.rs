//! Where full-backward DTD's roots come from: the [`RootFinder`] trait the recursion asks, the
//! root it returns ([`FoundRoot`]), why a neuron got no root ([`Rootless`]), and the rule roots
//! of train-free DTD ([`RuleRoots`]).

use serde::{Deserialize, Serialize};

use crate::dtd::{root_step, DtdSettings, RootOutcome, RootRule};
use crate::error::Result;
use crate::exact::Scalar;
use crate::model::Network;

/// Why a neuron with positive relevance got no root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Rootless {
    /// `|w_j · v| <=` the threshold: no root along the rule's direction.
    SmallDenominator,
    /// The layer's rule has no root form (an LRP rule), or the neuron is an identity (a
    /// value carried past the layer, [`Layer::identity`]), which passes its relevance whole.
    ///
    /// [`Layer::identity`]: crate::model::ir::Layer::identity
    NotApplicable,
    /// The root finder found none.
    NotFound,
}

/// A root as [`RootFinder::found`] returns it: the point, and what the finder knows about it
/// that the point alone does not say exactly.
#[derive(Clone, Debug, PartialEq)]
pub struct FoundRoot<T> {
    /// `ã`, of the width of the layer input.
    pub point: Vec<T>,
    /// `a − ã` as the finder computed it (a rule root's `t v`, exactly 0 wherever `v` is), or
    /// `None`: the recursion subtracts the point from `a`.
    pub step: Option<Vec<T>>,
    /// Whether `ã` lies exactly (in exact arithmetic) on the neuron's root plane
    /// `w_j · ã = w_j · a − R_j`, so that its pre-activation is `z_j(a) − R_j`: the
    /// recursion then computes it that way, which puts a root exactly on its face (the
    /// explained output's under the rules with the bias ignored) exactly at 0 in every
    /// arithmetic.
    pub on_root_plane: bool,
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
///
/// [`full_backward`]: super::full_backward()
pub trait RootFinder<T = f64> {
    /// The root of `neuron` of `layer` at the layer input `a`, whose upper relevance is
    /// `relevance > 0`; `None` when it has none (see the trait's documentation).
    fn root(&self, layer: usize, neuron: usize, a: &[T], relevance: T) -> Result<Option<Vec<T>>>;

    /// [`RootFinder::root`], with the step and the root plane where the finder knows them
    /// ([`FoundRoot`]); what [`full_backward`] calls. By default the point alone.
    ///
    /// [`full_backward`]: super::full_backward()
    fn found(
        &self,
        layer: usize,
        neuron: usize,
        a: &[T],
        relevance: T,
    ) -> Result<Option<FoundRoot<T>>> {
        Ok(self
            .root(layer, neuron, a, relevance)?
            .map(|point| FoundRoot {
                point,
                step: None,
                on_root_plane: false,
            }))
    }

    /// Why [`RootFinder::root`] returned `None` for this neuron, for reports.
    fn rootless(&self, _layer: usize, _neuron: usize) -> Rootless {
        Rootless::NotFound
    }
}

/// The rule roots of train-free DTD: each layer's [`Rule`] from [`DtdSettings`], with its bias
/// mode, stabiliser and denominator threshold, exactly as [`explain`] computes them, but from
/// the relevance the full-backward recursion hands it.
///
/// [`Rule`]: crate::dtd::Rule
/// [`explain`]: crate::dtd::explain
pub struct RuleRoots<'a, T> {
    net: &'a Network<T>,
    settings: DtdSettings,
    /// Per layer; `None` for a rule without a root form.
    rules: Vec<Option<RootRule<T>>>,
    threshold: T,
    stabilizer: T,
}

impl<'a, T: Scalar> RuleRoots<'a, T> {
    /// The rule roots of `net` under `settings` (each layer's rule from
    /// [`DtdSettings::rule_for`]); the settings are copied.
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
        Ok(self
            .found(layer, neuron, a, relevance)?
            .map(|found| found.point))
    }

    fn found(
        &self,
        layer: usize,
        neuron: usize,
        a: &[T],
        relevance: T,
    ) -> Result<Option<FoundRoot<T>>> {
        let Some(rule) = &self.rules[layer] else {
            return Ok(None);
        };
        let affine = &self.net.layers()[layer].affine;
        let bias = affine.bias(neuron);
        // root_step also accumulates what the neuron passes on; only the point and the step
        // are wanted here.
        let mut lower = vec![T::zero(); a.len()];
        let mut passed = T::zero();
        let mut step = Vec::with_capacity(a.len());
        let outcome = root_step(
            rule,
            &affine.row(neuron),
            a,
            bias,
            &relevance,
            &self.settings,
            &self.threshold,
            &self.stabilizer,
            true,
            &mut lower,
            &mut passed,
            Some(&mut step),
        );
        Ok(match outcome {
            RootOutcome::Root { point, .. } => Some(FoundRoot {
                point,
                step: Some(step),
                on_root_plane: rule.on_root_plane(bias, &self.settings),
            }),
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
