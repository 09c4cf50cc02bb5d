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
//! computes its roots — and a search or LP root finder has no useful derivative at all.
//! dtdcert holds fixed, while differentiating at `ã_j`, everything the evaluation at `ã_j`
//! chose: the roots of every upper layer, their gradients, and which upper neurons were
//! expanded. (The reference implementation differentiated the recursion with autograd, so
//! what moved with the point depended on how its root finder computed roots.) With those
//! fixed, the relevance that layer `l+1` passes down is affine in its input `h`,
//!
//! ```text
//! relevance(l+1, h) = Σ_i g_i ⊙ (h − ã_i) = c ⊙ h − o,
//!     where c = Σ_i g_i,  o = Σ_i g_i ⊙ ã_i
//! ```
//!
//! (at the top, `c = e_k` and `o = 0`), so the frozen upper relevance function of neuron `j`
//! is `R̂_j(p) = c_j h_j(p) − o_j` with `h_j(p) = relu(w_j · p + b_j)` — piecewise linear,
//! and its gradient is exact: `g_j = c_j s_j w_j`, where `s_j` is the activation of neuron
//! `j` at the root (1 for a layer without ReLU). `c` and `o` come out of the same recursion
//! that evaluates `R(ã_j)`, so no derivative is ever approximated (no finite differences, no
//! noise).
//!
//! A root often lies on the face of its own neuron: with the bias ignored, every rule root of
//! the explained output satisfies `z_k(ã) = z_k(a) − R_k = 0`. There `s_j` is the activation
//! on the side facing `a`, i.e. of the points `ã_j + ε (a − ã_j)` for small `ε > 0`: active
//! when `w_j · (a − ã_j) > 0`. A root is on its face when its pre-activation is exactly 0
//! (with [`FullBackwardSettings::face_tolerance`] set, also when it is within that fraction of
//! `Σ_i |w_ji ã_ji| + |b_j|`); off the face, the pre-activation's sign decides. Where the root
//! finder knows that its root lies on the root plane `w_j · ã = w_j · a − R_j`
//! ([`FoundRoot::on_root_plane`]: the rule roots without a bias term or stabiliser in their
//! denominator), the recursion computes that pre-activation as `z_j(a) − R_j`, with `R_j =
//! c_j h_j − o_j` written out from the level above, so the explained output's root is exactly
//! on its face in f64 too, not a rounding error away; elsewhere the sign is that of `w_j · ã +
//! b_j` for the point as it is (in f64 the exact value at the f64 point, by
//! [`Scalar::affine_sign`]).
//!
//! Consequently, whenever neuron `j` has the same activation along the segment from `ã_j` to
//! `a` (in particular when `ã_j` lies in `a`'s linear region `P_l`), the expansion of the
//! frozen function is exact: `R̂_j(a) = R_j(ã_j) + g_j · (a − ã_j)`. The rest of the Taylor
//! error, `R_j(a) − R̂_j(a)`, comes from what the evaluation at `a` chose differently: other
//! upper roots, other gradients there, other expanded neurons.
//!
//! In rationals every decision of the recursion is exact. In f64 rounding can still carry a
//! value across zero, so [`full_backward_decided`] runs the recursion in midpoint-radius
//! arithmetic, whose bounds settle each decision (the sides of faces, the signs of
//! relevances, denominators against the threshold, the top output) or leave it in doubt, and
//! explains an input with a decision in doubt again in rationals: its decisions are those of
//! exact arithmetic, as the audit's verdicts are.
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
//!
//! # Files
//!
//! - `settings.rs`: [`FullBackwardSettings`] and the worst-case cost its `max_evaluations`
//!   bounds ([`worst_case_evaluations`]).
//! - `finder.rs`: where roots come from: the [`RootFinder`] trait, the [`FoundRoot`] it
//!   returns, [`Rootless`] (why a neuron got none) and [`RuleRoots`], the rule roots of
//!   train-free DTD.
//! - `result.rs`: what an explanation returns: [`FullBackward`] with its layers and neurons,
//!   their remainders, Taylor errors and conservation gap, and [`UpperRelevance`].
//! - `recursion.rs`: Algorithm 1 itself: [`full_backward`] and [`upper_relevance`], which
//!   re-evaluate the upper relevance function at each root and take its frozen gradient there.
//! - `decided.rs`: [`full_backward_decided`], an f64 input explained with every decision
//!   about the exact values.
//!
//! [`Scalar`]: crate::exact::Scalar
//! [`Scalar::affine_sign`]: crate::exact::Scalar::affine_sign

mod decided;
mod finder;
mod recursion;
mod result;
mod settings;

pub use decided::{full_backward_decided, full_backward_exact, Decided};
pub use finder::{FoundRoot, RootFinder, Rootless, RuleRoots};
pub use recursion::{full_backward, upper_relevance};
pub use result::{Expansion, FullBackward, FullBackwardLayer, FullBackwardNeuron, UpperRelevance};
pub use settings::{worst_case_evaluations, FullBackwardSettings};

#[cfg(test)]
mod tests;
