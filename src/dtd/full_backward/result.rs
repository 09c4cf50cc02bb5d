//! What a full-backward explanation returns: each neuron's expansion, what it passed down and
//! its remainder, each layer's sums, and the whole explanation's remainder and conservation
//! gap; and the upper relevance function of one layer at one point.

use super::finder::Rootless;
use crate::exact::Scalar;

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
        /// `ã_j`, one value per input of the layer.
        point: Vec<T>,
        /// `g_j = c_j s_j w_j`, one value per input of the layer (all zero when the neuron
        /// is inactive at the root or `c_j = 0`).
        gradient: Vec<T>,
        /// `R̂_j(a)` (the report's `frozen_relevance`): `remainder + passed` when the root
        /// lies in the input's linear region.
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
    /// Whether and where the neuron was expanded (the report's `status`).
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
    /// One per neuron of the layer, in order.
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
    /// The explained output `k` (0-based).
    pub explained: usize,
    /// `f_k(x)`.
    pub output: T,
    /// Layers in network order (layer 1 first).
    pub layers: Vec<FullBackwardLayer<T>>,
    /// Evaluations of the recursion this explanation took.
    pub evaluations: u64,
}

impl<T: Scalar> FullBackwardNeuron<T> {
    fn to_f64(&self) -> FullBackwardNeuron<f64> {
        let round = |v: &[T]| v.iter().map(Scalar::to_f64).collect();
        FullBackwardNeuron {
            relevance: self.relevance.to_f64(),
            passed: self.passed.to_f64(),
            remainder: self.remainder.to_f64(),
            expansion: match &self.expansion {
                Expansion::NotPositive => Expansion::NotPositive,
                Expansion::NoRoot(why) => Expansion::NoRoot(*why),
                Expansion::Root {
                    point,
                    gradient,
                    frozen,
                } => Expansion::Root {
                    point: round(point),
                    gradient: round(gradient),
                    frozen: frozen.to_f64(),
                },
            },
        }
    }
}

impl<T: Scalar> FullBackward<T> {
    /// Every value rounded to the nearest f64 (the f64 midpoints of balls).
    pub fn to_f64(&self) -> FullBackward<f64> {
        let round = |v: &[T]| v.iter().map(Scalar::to_f64).collect();
        FullBackward {
            explained: self.explained,
            output: self.output.to_f64(),
            layers: self
                .layers
                .iter()
                .map(|l| FullBackwardLayer {
                    upper: round(&l.upper),
                    lower: round(&l.lower),
                    neurons: l.neurons.iter().map(FullBackwardNeuron::to_f64).collect(),
                })
                .collect(),
            evaluations: self.evaluations,
        }
    }

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
///
/// [`upper_relevance`]: super::upper_relevance()
#[derive(Clone, Debug, PartialEq)]
pub struct UpperRelevance<T> {
    /// `R(a)`: the relevance of each neuron of the layer.
    pub relevance: Vec<T>,
    /// With everything this evaluation chose held fixed, `R_j(p) = slope_j h_j(p) − offset_j`
    /// for the layer's outputs `h(p)`; `relevance = slope ⊙ h(a) − offset`.
    pub slope: Vec<T>,
    /// `offset_j`, one per neuron of the layer (see `slope`).
    pub offset: Vec<T>,
    /// Evaluations of the recursion this call took.
    pub evaluations: u64,
}
