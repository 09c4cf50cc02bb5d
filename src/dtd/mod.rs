//! Deep Taylor Decomposition: rules, root points and the train-free relevance recursion
//! (DESIGN.md §1.3), written once over [`Scalar`] so it runs in f64 and in exact rationals.
//!
//! Explaining output `k`, the top relevance is `R^L = e_k f_k(x)`. Going down, layer `l` has
//! input `a = h_{l-1}` and output relevances `R^l`; each neuron with `R_j != 0` gets a root
//! `ã = a − t_j v` and passes `w_ji t_j v_i` to input `i`. What a neuron does not pass on
//! (no root, a bias or stabiliser term in the denominator, the origin rule's mismatch) is its
//! unresolved remainder, reported rather than dropped.
//!
//! # Files
//!
//! - `settings.rs`: [`DtdSettings`], the rules of each layer and the numerical settings.
//! - [`composite`]: rules by kind of layer ([`KindRule`]) and Zennit's named composites
//!   ([`Composite`]).
//! - `rules.rs`: the [`Rule`]s, [`BiasMode`] and [`InitialRelevance`], as the command line
//!   writes them.
//! - `explanation.rs`: what the recursion returns: [`Explanation`] with its layers and
//!   neurons, each neuron's [`RootOutcome`] (a root, or [`NoRoot`] saying why there is none).
//! - `train_free.rs`: the train-free recursion: [`explain`], [`explain_with`] for other root
//!   finders, and one layer's step ([`layer_step`], [`winner_take_all`] for max-pooling).
//! - `roots.rs`: the root of one neuron under a root rule ([`neuron_root`]), with the
//!   relevance it passes to the neuron's inputs.
//! - [`batched`]: the train-free relevances of a batch of inputs at once in f64, each layer's
//!   step as matrix products.
//! - [`bounded`]: the recursion in f64 with a-priori error bounds on every relevance and root
//!   coordinate (the audit's default verdicts are about the exact roots).
//! - `lrp.rs`: the step of an LRP rule without a root form (ε, αβ, flat).
//! - [`closed_form`]: the LRP rules' closed forms, written apart from the roots for the tests.
//! - [`full_backward`]: full-backward DTD (Algorithm 1), with pluggable root finders.
//!
//! [`Scalar`]: crate::exact::Scalar

pub mod batched;
pub mod bounded;
pub mod closed_form;
pub mod composite;
mod explanation;
pub mod full_backward;
mod lrp;
mod roots;
pub mod rules;
mod settings;
mod train_free;

pub use composite::{Composite, KindRule, KindTarget};
pub use explanation::{Explanation, LayerRelevance, NeuronRelevance, NoRoot, RootOutcome};
pub use roots::{neuron_root, root_on_own_face};
pub(crate) use roots::{root_step, RootRule};
pub use rules::{BiasMode, InitialRelevance, Rule};
pub use settings::{DtdSettings, LayerRule};
pub(crate) use train_free::pass_whole;
pub use train_free::{explain, explain_down_to, explain_with, layer_step, winner_take_all};
