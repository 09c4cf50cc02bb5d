//! The certificate checker: certificates for region questions and the exact check of each.
//!
//! A certificate names the model (its fingerprint and path), the sample (its values), the
//! layer, the neuron, the relevance and the explanation it comes from, and the question, and
//! carries the evidence for one claim:
//! - `feasible`: a point. It is projected exactly (in rationals) onto the root hyperplane and
//!   checked against every constraint of the region and the domain.
//! - `infeasible`: multipliers whose combination of the program's rows is a contradiction,
//!   evaluated exactly with the safe bound over the variables' bounds
//!   ([`crate::exact::program::LinearProgram::safe_bound`]).
//! - `optimal`: a point (an upper bound on the minimum, checked as for `feasible`) and
//!   multipliers (a lower bound), so the optimum lies in a certified interval.
//! - `ball` (Chebyshev): a centre and radius checked to lie inside the region, and
//!   multipliers bounding the largest radius from above.
//! - `facet` / `redundant`: a point that violates only the named constraint, or multipliers
//!   proving that the constraint's pre-activation cannot change sign inside the others.
//!
//! The checker derives the question itself (`derive.rs`): the layer input `a = h_{l-1}(x)` in
//! exact arithmetic from the model and the sample, the activation pattern, and the neuron's
//! relevance `R_j` by the train-free recursion in rationals under the rules the certificate
//! names ([`crate::dtd::explain_down_to`]); the certificate's relevance must equal it. Only at
//! a given centre (full-backward DTD) are the centre and the relevance part of the question.
//! It rebuilds every program from the model ([`crate::region::problem`]); it never reads a
//! program from the certificate, never calls a solver, and has no tolerance: each sign it
//! needs is decided exactly, by f64 evaluation with a rigorous error bound where that settles
//! it and in rational arithmetic where it does not. Values whose f64 reading overflows are
//! rejected with the reason, never a panic.
//!
//! The checker is the part of dtdcert a sceptical reader must trust. It sits above
//! [`crate::region`] (the region's program builders and pattern tracing) and [`crate::dtd`]
//! (the rules) and below every solver: it imports no LP or torch code.

#![forbid(unsafe_code)]

pub mod certificate;
mod checker;
mod derive;

pub use certificate::{
    rational_text, Accepted, Certificate, Claim, ExplanationRef, Interval, ModelRef, Problem,
    RelevanceRef, SampleRef, FORMAT, FORMAT_1,
};
pub use checker::{check, check_with, format_rejection, parse_certificate, Unchecked};
pub use derive::{Derived, Memo};
