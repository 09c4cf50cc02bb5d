//! What calls return besides arrays: an audit held in memory (its summary, records, per-root
//! rows, certificates, and the folder the command line writes) and a certificate.

use std::path::PathBuf;

use dtdcert::audit::{AuditedRun, SampleRecord, SummaryDocument};
use dtdcert::check::{parse_certificate, Certificate, Unchecked};
use dtdcert::report::csv::RootRow;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::IntoPy;

/// An audit held in memory.
#[pyclass(module = "dtdcert._dtdcert", frozen)]
pub struct NativeAudit {
    run: AuditedRun,
}

impl NativeAudit {
    /// Wraps a run.
    pub fn new(run: AuditedRun) -> Self {
        Self { run }
    }
}

#[pymethods]
impl NativeAudit {
    /// summary.json's text as `dtdcert audit` writes it (files held in memory are named by a
    /// placeholder until the run is written).
    fn summary_json(&self) -> String {
        let doc = SummaryDocument::new(&self.run.spec, &self.run.summary);
        serde_json::to_string_pretty(&doc).expect("summaries serialise")
    }

    /// run.json's text (files held in memory named by a placeholder).
    fn run_json(&self) -> String {
        serde_json::to_string_pretty(&self.run.spec).expect("run specs serialise")
    }

    /// The number of records (one per audited input).
    fn __len__(&self) -> usize {
        self.run.lines.len()
    }

    /// Line `i` of records.jsonl.
    fn line(&self, i: usize) -> Option<String> {
        self.run.lines.get(i).cloned()
    }

    /// Every line of records.jsonl.
    fn lines(&self) -> Vec<String> {
        self.run.lines.clone()
    }

    /// The per-root table (roots.csv: one row per neuron of every layer of every sample),
    /// column by column: a dict from column name to list, `None` where a field does not apply.
    fn root_columns<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let lines = &self.run.lines;
        let rows = py.detach(|| -> dtdcert::Result<Vec<RootRow>> {
            let mut rows = Vec::new();
            for (n, line) in lines.iter().enumerate() {
                let record: SampleRecord = serde_json::from_str(line)
                    .map_err(|e| dtdcert::Error::Invalid(format!("record {}: {e}", n + 1)))?;
                rows.extend(RootRow::of_record(&record));
            }
            Ok(rows)
        });
        let rows = rows.py_err(py)?;
        let columns = PyDict::new(py);
        macro_rules! column {
            ($name:ident) => {
                columns.set_item(
                    stringify!($name),
                    rows.iter().map(|r| r.$name).collect::<Vec<_>>(),
                )?;
            };
        }
        column!(sample);
        column!(explained);
        column!(layer);
        column!(neuron);
        column!(relevance);
        column!(has_root);
        column!(no_root);
        column!(valid);
        column!(region);
        column!(violated_layer);
        column!(violated_neuron);
        column!(margin);
        column!(domain);
        column!(domain_coordinate);
        column!(domain_value);
        column!(decided_by);
        column!(on_face);
        column!(judged);
        Ok(columns)
    }

    /// The certificates of `certify=`, by their paths relative to the run's folder.
    fn certificates(&self) -> Vec<(String, NativeCertificate)> {
        self.run
            .certificates
            .iter()
            .map(|(name, cert)| (name.clone(), NativeCertificate::new(cert.clone())))
            .collect()
    }

    /// Writes the run's folder as `dtdcert audit --out DIR` does (`csv`: also roots.csv;
    /// `force`: replace a finished run there) and returns run.json's text as written.
    #[pyo3(signature = (dir, csv=false, force=false))]
    fn write(&self, py: Python<'_>, dir: PathBuf, csv: bool, force: bool) -> PyResult<String> {
        let run = &self.run;
        let spec = py
            .detach(|| crate::model::runner(csv, force).write(run, &dir))
            .py_err(py)?;
        Ok(serde_json::to_string_pretty(&spec).expect("run specs serialise"))
    }
}

/// A certificate: the evidence for one claim about a region, which the exact checker
/// re-checks.
#[pyclass(module = "dtdcert._dtdcert", frozen)]
pub struct NativeCertificate {
    cert: Certificate,
}

impl NativeCertificate {
    /// Wraps a certificate.
    pub fn new(cert: Certificate) -> Self {
        Self { cert }
    }

    /// The certificate.
    pub fn certificate(&self) -> &Certificate {
        &self.cert
    }
}

#[pymethods]
impl NativeCertificate {
    /// Reads a certificate file's text: the certificate, or (a certificate of another format)
    /// the reason its claim is rejected. Raises for text that is no certificate.
    #[staticmethod]
    fn parse(py: Python<'_>, text: &str, name: &str) -> PyResult<(Option<Self>, Option<String>)> {
        match parse_certificate(text) {
            Ok(cert) => Ok((Some(Self { cert }), None)),
            Err(Unchecked::OtherFormat(rejection)) => Ok((None, Some(rejection.0))),
            Err(Unchecked::Malformed(problem)) => Err(crate::errors::to_py(
                py,
                dtdcert::Error::file(name, problem),
            )),
        }
    }

    /// The certificate file's text, as `dtdcert certify --out` writes it.
    fn to_json(&self) -> String {
        serde_json::to_string_pretty(&self.cert).expect("certificates serialise")
    }

    /// Writes the certificate file, atomically.
    fn write(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let text = self.to_json();
        py.detach(|| dtdcert::io::write_atomic(&path, text.as_bytes()))
            .py_err(py)
    }

    /// The claim (`feasible`, `infeasible`, `optimal`, ...).
    #[getter]
    fn claim(&self) -> String {
        crate::model::claim_name(self.cert.claim)
    }

    /// The fingerprint of the model the certificate is about.
    #[getter]
    fn model_fingerprint(&self) -> String {
        self.cert.model.fingerprint.clone()
    }
}
