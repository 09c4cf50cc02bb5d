//! A request to stop, from Ctrl-C or SIGTERM: long runs look at it between samples, keep what
//! they have written and stop, so that the run can be continued.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Whether a stop has been requested.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

/// Requests a stop (what the signal handler does; tests call it directly).
pub fn request() {
    REQUESTED.store(true, Ordering::Relaxed);
}

/// Clears a request (for tests that go on after one).
pub fn clear() {
    REQUESTED.store(false, Ordering::Relaxed);
}

/// Makes Ctrl-C and SIGTERM request a stop instead of ending the process; a second one ends
/// it at once (exit code 130). Installed once; later calls do nothing.
pub fn install_handler() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        // Without a handler (another one is installed), a signal ends the process as usual:
        // records are flushed after every chunk, and a damaged last line is redone on resume.
        let _ = ctrlc::set_handler(|| {
            if REQUESTED.swap(true, Ordering::Relaxed) {
                std::process::exit(130);
            }
        });
    });
}
