//! Long calls: the work runs on a thread of its own, without the GIL, while the calling
//! thread wakes every tenth of a second to report progress and to let Python look for
//! signals. On Ctrl-C it requests a stop through the library's stop flag
//! (`dtdcert::io::interrupt`, which audits and explanations check between inputs), waits for
//! the work to end and raises `KeyboardInterrupt`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::errors::to_py;

/// How often the calling thread wakes while the work runs.
const TICK: Duration = Duration::from_millis(100);

/// Runs `work` (which adds finished items to the counter it is given) and returns its
/// result; `progress`, when given, is called with `(done, total)` at every wake and once at
/// the end. An exception from `progress` or from a signal handler stops the work and is
/// raised once it has ended.
pub fn run<T: Send>(
    py: Python<'_>,
    progress: Option<&Bound<'_, PyAny>>,
    total: u64,
    work: impl FnOnce(&AtomicU64) -> dtdcert::Result<T> + Send,
) -> PyResult<T> {
    let done = AtomicU64::new(0);
    let caller = std::thread::current();
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| {
            let result = work(&done);
            caller.unpark();
            result
        });
        let mut raised: Option<PyErr> = None;
        loop {
            py.detach(|| std::thread::park_timeout(TICK));
            let finished = worker.is_finished();
            if let Some(progress) = progress {
                if let Err(e) = progress.call1((done.load(Ordering::Relaxed), total)) {
                    raised = Some(e);
                }
            }
            if raised.is_none() {
                if let Err(e) = py.check_signals() {
                    raised = Some(e);
                }
            }
            if finished || raised.is_some() {
                break;
            }
        }
        if raised.is_some() {
            dtdcert::io::interrupt::request();
        }
        let result = py.detach(|| worker.join());
        if let Some(e) = raised {
            dtdcert::io::interrupt::clear();
            return Err(e);
        }
        match result {
            Ok(result) => result.map_err(|e| to_py(py, e)),
            Err(_) => Err(PyRuntimeError::new_err(
                "dtdcert: the computation panicked (a bug: please report it with the input)",
            )),
        }
    })
}
