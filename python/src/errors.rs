//! Library errors as Python exceptions, with the message the command line prints: a file
//! that does not exist gives `MissingFileError` (a `FileNotFoundError`), a failed write
//! `WriteError` (an `OSError`), every other error `InvalidInputError` (a `ValueError`) — the
//! three classes of `dtdcert._errors`, each a `DtdcertError` — and an interrupted call
//! `KeyboardInterrupt`.

use std::path::Path;

use dtdcert::error::Error;
use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;

/// The Python exception for a library error.
pub fn to_py(py: Python<'_>, err: Error) -> PyErr {
    let (class, path) = match &err {
        Error::Interrupted { .. } => return PyKeyboardInterrupt::new_err("interrupted"),
        Error::File { path, .. } if missing(path) => ("MissingFileError", Some(path)),
        Error::File { path, .. } => ("InvalidInputError", Some(path)),
        Error::Write { path, .. } => ("WriteError", Some(path)),
        Error::Invalid(_) | Error::Usage(_) => ("InvalidInputError", None),
    };
    let message = format!("{err:#}");
    let raised = || -> PyResult<PyErr> {
        let value = py
            .import("dtdcert._errors")?
            .getattr(class)?
            .call1((message.clone(),))?;
        if let Some(path) = path {
            value.setattr("filename", path.display().to_string())?;
        }
        Ok(PyErr::from_value(value))
    };
    raised().unwrap_or_else(|e| e)
}

/// Whether `path` names a file that is not there (names in angle brackets stand for data
/// held in memory).
fn missing(path: &Path) -> bool {
    !path.to_string_lossy().starts_with('<') && !path.exists()
}

/// A library result as a Python one.
pub trait IntoPy<T> {
    /// The value, or the error as a Python exception.
    fn py_err(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPy<T> for dtdcert::Result<T> {
    fn py_err(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, e))
    }
}
