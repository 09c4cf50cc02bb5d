//! Where an audit's time goes (`audit --profile FILE`): the wall-clock seconds of each phase of
//! the default engine — the forward pass with its error bounds, the relevances, and per layer
//! the building of the judged roots and their verdicts — summed over the samples this process
//! audited, with the number of roots judged per layer. Timing is off unless [`start`] was
//! called, and then costs two clock reads per phase; the results never depend on it.
//!
//! Phases run on several threads at once (samples in parallel), so the sum of the phases'
//! seconds can exceed the run's wall-clock time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde::Serialize;

static ON: AtomicBool = AtomicBool::new(false);
static TIMES: Mutex<Option<Profile>> = Mutex::new(None);

/// A phase of the audit of one sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The f64 forward pass with its error bounds and the exactly decided pattern.
    Forward,
    /// Every layer's relevances (and the roots the explanation keeps).
    Relevances,
    /// Building the judged roots of a layer (0-based index).
    Roots(usize),
    /// Deciding the judged roots of a layer (0-based index): region, domain, exact fallbacks.
    Verdicts(usize),
    /// A sample computed in rationals throughout.
    Exact,
}

/// The seconds of one layer's phases, summed over samples.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LayerTimes {
    /// The 1-based layer.
    pub layer: usize,
    /// Roots judged in the layer.
    pub roots: u64,
    /// Seconds spent building them.
    pub roots_s: f64,
    /// Seconds spent deciding their verdicts.
    pub verdicts_s: f64,
}

/// The seconds of every phase, summed over samples.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Profile {
    /// Samples audited in the default engine's f64 path.
    pub samples: u64,
    /// Seconds of forward passes.
    pub forward_s: f64,
    /// Seconds of relevance passes.
    pub relevances_s: f64,
    /// Seconds of samples computed in rationals throughout.
    pub exact_s: f64,
    /// One entry per layer, in order.
    pub layers: Vec<LayerTimes>,
}

impl Profile {
    fn layer(&mut self, index: usize) -> &mut LayerTimes {
        while self.layers.len() <= index {
            let layer = self.layers.len() + 1;
            self.layers.push(LayerTimes {
                layer,
                ..Default::default()
            });
        }
        &mut self.layers[index]
    }

    /// Adds `seconds` to `phase` (a forward pass counts a sample).
    pub fn add(&mut self, phase: Phase, seconds: f64) {
        match phase {
            Phase::Forward => {
                self.samples += 1;
                self.forward_s += seconds;
            }
            Phase::Relevances => self.relevances_s += seconds,
            Phase::Exact => self.exact_s += seconds,
            Phase::Roots(i) => self.layer(i).roots_s += seconds,
            Phase::Verdicts(i) => self.layer(i).verdicts_s += seconds,
        }
    }
}

/// Starts timing, from an empty profile.
pub fn start() {
    *TIMES.lock().unwrap_or_else(|e| e.into_inner()) = Some(Profile::default());
    ON.store(true, Ordering::SeqCst);
}

/// Stops timing and returns what was timed since [`start`] (`None` if it was never started).
pub fn finish() -> Option<Profile> {
    ON.store(false, Ordering::SeqCst);
    TIMES.lock().unwrap_or_else(|e| e.into_inner()).take()
}

/// Whether timing is on.
pub fn enabled() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Runs `f`, adding its wall-clock time to `phase` when timing is on.
pub fn timed<R>(phase: Phase, f: impl FnOnce() -> R) -> R {
    if !enabled() {
        return f();
    }
    let started = Instant::now();
    let result = f();
    add(phase, started.elapsed().as_secs_f64());
    result
}

/// Adds `seconds` to `phase`.
pub fn add(phase: Phase, seconds: f64) {
    if !enabled() {
        return;
    }
    if let Some(p) = TIMES.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        p.add(phase, seconds);
    }
}

/// Adds `count` judged roots to layer `index` (0-based).
pub fn count_roots(index: usize, count: usize) {
    if !enabled() {
        return;
    }
    let mut guard = TIMES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = guard.as_mut() {
        p.layer(index).roots += count as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_add_up_per_layer() {
        let mut p = Profile::default();
        p.add(Phase::Forward, 0.5);
        p.add(Phase::Forward, 0.25);
        p.add(Phase::Relevances, 2.0);
        p.add(Phase::Exact, 3.0);
        p.add(Phase::Roots(2), 1.5);
        p.add(Phase::Verdicts(2), 0.5);
        p.add(Phase::Verdicts(0), 0.125);
        p.layer(2).roots += 7;
        assert_eq!((p.samples, p.forward_s), (2, 0.75));
        assert_eq!((p.relevances_s, p.exact_s), (2.0, 3.0));
        let layers: Vec<usize> = p.layers.iter().map(|l| l.layer).collect();
        assert_eq!(layers, [1, 2, 3]);
        assert_eq!(
            p.layers[2],
            LayerTimes {
                layer: 3,
                roots: 7,
                roots_s: 1.5,
                verdicts_s: 0.5
            }
        );
        assert_eq!((p.layers[0].verdicts_s, p.layers[1].roots), (0.125, 0));
    }

    #[test]
    fn timing_off_runs_the_work_and_records_nothing() {
        // Only `audit --profile` starts timing; no test of the library does.
        assert!(!enabled());
        assert_eq!(timed(Phase::Relevances, || 41 + 1), 42);
    }
}
