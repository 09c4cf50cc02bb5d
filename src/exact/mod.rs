//! Exact arithmetic: the scalar trait that lets numeric code run in f64 and in rationals from
//! one source, and the rigorous error bounds that decide when f64 results can be trusted.
//!
//! Nothing here depends on the LP or torch code.

#![forbid(unsafe_code)]

pub mod ball;
pub mod compensated;
pub mod dyadic;
pub mod filter;
pub mod fraction;
pub mod program;
pub mod scalar;

pub use filter::Bounded;
pub use scalar::{Rational, Scalar};
