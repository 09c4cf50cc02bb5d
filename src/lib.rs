//! dtdcert: exact audits of the root points of Deep Taylor Decomposition in ReLU networks.
//!
//! The layers of the crate, bottom up: [`exact`] (rational arithmetic and the float filter),
//! [`model`] (the network IR, loaders, forward pass), [`region`] (activation patterns and the
//! local linear region as a polytope), [`dtd`] (rules, roots, relevance, verdicts), [`audit`]
//! (audit runs over many inputs), [`report`] (written summaries), [`repro`] (the paper's
//! experiments) and [`cli`] (the command-line front end).

pub mod error;
pub mod exact;
pub mod model;

pub use error::{Error, Result};
pub mod audit;
pub mod cli;
pub mod dtd;
pub mod lp;
pub mod region;
pub mod report;
pub mod repro;
#[cfg(feature = "torch")]
pub mod torch;
