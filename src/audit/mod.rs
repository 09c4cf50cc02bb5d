//! Audit runs: for every input, explain it, materialise every root of every layer, and decide
//! exactly whether each root lies in the input's linear region and in the domain
//! (DESIGN.md §1.4). Records stream to `records.jsonl`; counts accumulate into a summary.
//!
//! - `settings.rs`: [`AuditSettings`] and its parts (domain box, `--certify`, LP options, the
//!   libtorch backend's device and precision).
//! - `engine.rs`: [`Engine`], the exact engine or a [`BatchAuditor`] (the libtorch backend).
//! - `records.rs`: [`SampleRecord`] and the layer, neuron and root records in it, and
//!   [`RecordsKept`] (`--records`).
//! - `sample.rs`: the audit of one input, [`audit_sample`] and [`audit_sample_certified`];
//!   in rationals throughout (`--exact`), and the `nearest-valid` rule's roots.
//! - `float.rs`: the default audit of one input: f64 with error bounds on every root, an
//!   exact fallback; [`audit_layer`], the verdicts of one layer's roots alone.
//! - [`sampling`]: `--roots-per-layer`, the draw of the roots judged, and the Wilson interval
//!   of the fractions it reports.
//! - `checkpoint.rs`: how far a run got, for `--resume` where its records cannot say.
//! - [`explain`], [`histogram`], [`merge`], [`records_file`], [`run`], [`spec`], [`summary`]:
//!   explanations of single inputs, histograms, merging shards, the records file (plain or
//!   zstd), the run loop and its output folder, the run's specification, and the summary.

mod checkpoint;
mod engine;
pub mod explain;
mod float;
pub mod histogram;
pub mod merge;
mod records;
pub mod records_file;
pub mod run;
mod sample;
pub mod sampling;
mod settings;
pub mod spec;
pub mod summary;

pub use engine::{BatchAuditor, BatchBackend, Engine, NO_TORCH};
pub use records::{
    CertifiedAnswer, CertifiedRoot, DomainCheck, LayerRecord, NeuronRecord, RecordsKept,
    RootVerdict, SampleRecord,
};
pub use run::{AuditedRun, InMemoryFiles, OutputOptions, ReportWriter, Runner};
// The libtorch backend reports overflows with the same message.
pub use float::{audit_layer, LayerRoot, LayerRoots};
#[cfg(feature = "torch")]
pub(crate) use sample::overflow;
pub use sample::{audit_sample, audit_sample_certified, resolve_target, NamedCertificate};
pub use sampling::RootSample;
pub use settings::{
    check_exact_size, multiply_adds, AuditSettings, CertifySettings, DeviceChoice, DomainBox,
    LpSettings, Precision, TorchSettings, EXACT_MULTIPLY_ADDS,
};
pub use summary::{Summary, SummaryDocument};
