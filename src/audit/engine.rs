//! What computes an audit's records: the exact engine, or a batch auditor (the libtorch
//! backend, which the CLI plugs in) followed by `--certify` on the exact side.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};
use crate::lp::nearest_valid::uses_lp;
use crate::model::Model;

use super::records::SampleRecord;
use super::sample::{audit_sample_certified, certify_roots, NamedCertificate};
use super::settings::{AuditSettings, TorchSettings};

/// Computes the records of samples outside the exact engine, in floating point without error
/// bounds: the libtorch backend, which the CLI plugs in (`audit` does not know it).
pub trait BatchAuditor {
    /// The records of samples `ids`, with inputs `rows` and targets `targets` (one each), in
    /// order.
    fn records(
        &self,
        model: &Model,
        settings: &AuditSettings,
        ids: &[usize],
        rows: &[Vec<f64>],
        targets: &[Option<usize>],
    ) -> Result<Vec<SampleRecord>>;
}

/// Builds the batch auditor that `--backend torch` settings ask for.
pub type BatchBackend<'a> = &'a dyn Fn(&Model, &TorchSettings) -> Result<Box<dyn BatchAuditor>>;

/// What computes an audit's records: the exact engine (f64 with error bounds and an exact
/// fallback, or rationals), or a batch auditor (the libtorch backend).
pub enum Engine {
    /// `--backend exact`: f64 with rigorous error bounds and an exact fallback, or
    /// rationals throughout with `--exact`.
    Exact,
    /// `--backend torch`: the records come from the batch auditor, in its precision.
    Batched(Box<dyn BatchAuditor>),
}

impl Engine {
    /// The engine `settings` ask for, a batch auditor built by `backend` where they name the
    /// libtorch backend (an error where this build has none, or its device is missing).
    pub fn new(
        model: &Model,
        settings: &AuditSettings,
        backend: Option<BatchBackend>,
    ) -> Result<Self> {
        let Some(torch) = &settings.torch else {
            return Ok(Engine::Exact);
        };
        if settings.exact || uses_lp(&settings.dtd, model.net().layers().len()) {
            return Err(crate::error::Error::Usage(format!(
                "--backend torch computes roots and verdicts in floating point; {} runs on \
                 --backend exact",
                if settings.exact {
                    "--exact"
                } else {
                    "the nearest-valid rule"
                }
            )));
        }
        match backend {
            Some(build) => Ok(Engine::Batched(build(model, torch)?)),
            None => Err(crate::error::Error::Usage(NO_TORCH.into())),
        }
    }

    /// The records (and certificates) of samples `ids`, with inputs `rows` and targets
    /// `targets` (one each), in order.
    pub fn audit(
        &self,
        model: &Model,
        settings: &AuditSettings,
        ids: &[usize],
        rows: &[Vec<f64>],
        targets: &[Option<usize>],
    ) -> Result<Vec<(SampleRecord, Vec<NamedCertificate>)>> {
        self.audit_counted(model, settings, ids, rows, targets, &AtomicU64::new(0))
    }

    /// [`Engine::audit`], adding to `done` as samples finish (another thread may read it to
    /// show progress).
    pub fn audit_counted(
        &self,
        model: &Model,
        settings: &AuditSettings,
        ids: &[usize],
        rows: &[Vec<f64>],
        targets: &[Option<usize>],
        done: &AtomicU64,
    ) -> Result<Vec<(SampleRecord, Vec<NamedCertificate>)>> {
        use rayon::prelude::*;
        match self {
            // A stop request ends the chunk at the next sample; the caller names the folder.
            Engine::Exact => ids
                .par_iter()
                .zip(rows.par_iter())
                .zip(targets.par_iter())
                .map(
                    |((&i, x), &target)| match crate::io::interrupt::requested() {
                        true => Err(Error::Interrupted {
                            dir: Default::default(),
                        }),
                        false => {
                            let audited = audit_sample_certified(model, settings, i, x, target);
                            done.fetch_add(1, Ordering::Relaxed);
                            audited
                        }
                    },
                )
                .collect(),
            Engine::Batched(auditor) => {
                let records = auditor.records(model, settings, ids, rows, targets)?;
                let audited = records
                    .into_par_iter()
                    .zip(rows.par_iter())
                    .map(|(mut record, x)| {
                        let certificates = match &settings.certify {
                            Some(c) => certify_roots(model, settings, c, x, &mut record)?,
                            None => Vec::new(),
                        };
                        Ok((record, certificates))
                    })
                    .collect();
                done.fetch_add(ids.len() as u64, Ordering::Relaxed);
                audited
            }
        }
    }
}

/// The error for `--backend torch` in a build without the libtorch backend.
pub const NO_TORCH: &str = "--backend torch: this build has no libtorch backend; build with \
     `cargo build --release --features torch` after `export LIBTORCH=$(scripts/setup_torch.sh)` \
     (docs/src/libtorch.md)";
