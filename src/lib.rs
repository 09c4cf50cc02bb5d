//! dtdcert: exact audits of the root points of Deep Taylor Decomposition in ReLU networks.
//!
//! The crate's folders are layers, listed here bottom up; a module imports only from layers
//! below its own (`tests/layers.rs` checks it):
//!
//! | layer | what it holds |
//! |---|---|
//! | [`error`] | the library's error type and its exit codes |
//! | [`io`] | files and folders written atomically, progress bars |
//! | [`exact`] | rational arithmetic, the float filter, linear programs as exact data |
//! | [`model`] | the network IR, its loaders, the forward pass |
//! | [`region`] | activation patterns and the local linear region as a polytope |
//! | [`check`] | the certificate checker (no LP or torch code) |
//! | [`dtd`] | rules, roots, relevance (train-free and full-backward) |
//! | [`lp`] | LP problems, certified answers, LP files |
//! | [`audit`] | audit runs: records, resume, shards, merge, summaries |
//! | [`report`] | Markdown, HTML and CSV reports |
//! | [`repro`] | the paper's experiments |
//! | `torch` | the libtorch backend (feature `torch`) |
//! | [`cli`] | the command line: arguments to settings, settings to library calls |
//!
//! # Example
//!
//! Audit the first ten inputs of the shipped C6 example, explaining output 0 with z+ (the
//! default rule), and read the counts an audit's summary reports:
//!
//! ```
//! use std::path::Path;
//!
//! use dtdcert::audit::{audit_sample, AuditSettings, Summary};
//! use dtdcert::model::inputs::load_inputs;
//! use dtdcert::model::Model;
//!
//! let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/c6");
//! let model = Model::load(&dir.join("model.onnx"))?;
//! let inputs = load_inputs(&dir.join("inputs.npy"), None)?;
//! let settings = AuditSettings::default();
//! let mut summary = Summary::new(model.net().layers().len());
//! for i in 0..10 {
//!     let record = audit_sample(&model, &settings, i, &inputs.row(i)?, Some(0))?;
//!     summary.add(&record);
//! }
//! let total = &summary.total;
//! println!("{} roots, {} outside their region", total.roots, total.roots_outside);
//! // Every root is valid, or outside its region, or out of the domain (or both).
//! assert!(total.roots_valid + total.roots_outside <= total.roots);
//! assert_eq!(summary.samples, 10);
//! # Ok::<(), dtdcert::Error>(())
//! ```

#![warn(missing_docs)]

pub mod audit;
pub mod check;
pub mod cli;
pub mod dtd;
pub mod error;
pub mod exact;
pub mod io;
pub mod lp;
pub mod model;
pub mod region;
pub mod report;
pub mod repro;
#[cfg(feature = "torch")]
pub mod torch;

pub use error::{Error, Result};
