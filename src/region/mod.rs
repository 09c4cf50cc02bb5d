//! Activation patterns, the affine map of the network inside a linear region, the region as a
//! polytope, and exact membership of a point in it (DESIGN.md §1.2).
//!
//! With the pattern `s` of an input `x` fixed, layer `k`'s pre-activation is an affine function
//! of the input `a` of any lower layer `m`; the region seen from layer `m` is
//! `P_m(x) = { a : σ_{k,j} z_{k,j}(a) >= 0 for every ReLU neuron of layers k >= m }` with
//! `σ = 2s − 1`; a LeakyRelu or PRelu neuron has the same face at 0, and a Clip neuron
//! `σ (z_{k,j}(a) − c) >= 0` at each bound `c` its piece touches. A max-pool layer adds, for each window, `z_{k,w}(a) − z_{k,o}(a) >= 0` for its
//! winner `w` and every other entry `o`, and passes `z_{k,w}` on. Membership is decided by
//! evaluating the linearised network (each activation replaced by its piece's map: `diag(s)`
//! for ReLU, the slope below 0 of an inactive LeakyRelu or PRelu neuron, a Clip neuron's
//! bound outside them; max-pool by the fixed winners) at the point: in f64 with a rigorous error bound; where it cannot
//! decide, with values rounded once from exact sums (`refined.rs`); and in exact rationals
//! where that cannot decide either. A point's pattern has one more tier before the second: a
//! forward pass in double-double with rigorous bounds (`compensated.rs`).
//!
//! - `pattern.rs`: the activation pattern, and how a point's pattern is decided exactly;
//! - `membership.rs`: whether one point lies in the region, and the signed slack of each
//!   constraint;
//! - `batch.rs`: membership of many points at once (batched screening);
//! - `polytope.rs`: the region as a polytope: affine maps, constraints and their labels, the
//!   step length along a ray;
//! - `filter.rs` and `refined.rs`: the filter's first and second tier, and `Decision`;
//! - `compensated.rs`: the double-double forward pass that decides patterns past the first;
//! - `centre.rs`: the layer input a region's programs are centred on, exact and as f64;
//! - `problem/`: the region questions as linear programs, in the layered form (`pieces.rs`:
//!   the rows of Clip, LeakyRelu and PRelu neurons; `norms.rs`: bounds on the composed rows'
//!   norms);
//! - `composed.rs`: the region's constraints as dense f64 rows around a centre;
//! - `report.rs`: one input's pattern and the size of its region, as `dtdcert region` shows them.

mod batch;
mod centre;
mod compensated;
pub mod composed;
mod filter;
mod membership;
mod pattern;
mod polytope;
pub mod problem;
mod refined;
pub mod report;

pub use batch::{membership_batch, membership_batch_within};
pub use centre::Centre;
pub use filter::Decision;
pub use membership::{
    membership, membership_filtered, membership_within, membership_within_face,
    signed_slacks_bounded, signed_slacks_exact, Membership,
};
pub use pattern::{
    pattern_from_layer, trace_and_pattern, trace_with_errors, trace_with_errors_if, Face, Local,
    Pattern, Piece, Selection,
};
pub use polytope::{affine_maps, constraint_labels, polytope, step_length, AffineMap, Polytope};

#[cfg(test)]
mod tests;
