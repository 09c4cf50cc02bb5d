//! The Python extension module `dtdcert._dtdcert`: the library's calls, with Python objects
//! converted on the way in and out. The package `dtdcert` (python/dtdcert/) wraps it with the
//! public API; neither holds logic of its own.
//!
//! - `errors.rs`: library errors as Python exceptions;
//! - `watch.rs`: long calls on a thread of their own, with progress and Ctrl-C;
//! - `convert.rs`: rules, inputs and targets from Python values to the library's settings;
//! - `model.rs`: a loaded model and the calls on it (explain, audit, region, certify, check);
//! - `results.rs`: an audit held in memory and a certificate.

mod convert;
mod errors;
mod model;
mod results;
mod watch;

use pyo3::prelude::*;

/// The extension module: the classes the package `dtdcert` wraps.
#[pymodule]
fn _dtdcert(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("FORMAT", dtdcert::check::FORMAT)?;
    m.add_class::<model::NativeModel>()?;
    m.add_class::<results::NativeAudit>()?;
    m.add_class::<results::NativeCertificate>()?;
    Ok(())
}
