//! The certificate checker: certificates for region questions and the exact check of each.
//!
//! A certificate names the model (its fingerprint), the sample (its values), the layer, the
//! neuron and the question, and carries the evidence for one claim:
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
//! The checker rebuilds every program from the model itself ([`crate::region::problem`]);
//! it never reads a program from the certificate, never calls a solver, and has no
//! tolerance: each sign it needs is decided exactly, by f64 evaluation with a rigorous error
//! bound where that settles it and in rational arithmetic where it does not.
//!
//! The checker is the part of dtdcert a sceptical reader must trust. It sits above [`crate::region`]
//! (the region's program builders and pattern tracing) and below every solver: it imports no
//! LP or torch code.

#![forbid(unsafe_code)]

pub mod certificate;
mod checker;

pub use certificate::{
    rational_text, Accepted, Certificate, Claim, Interval, ModelRef, Problem, SampleRef, FORMAT,
};
pub use checker::check;
