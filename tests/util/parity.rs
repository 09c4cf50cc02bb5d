//! The libtorch backend's audits against the exact engine's, over a proptest run
//! ([`compare_audits`] in f64 and f32, totals printed, and a floor on the roots judged).

use std::cell::RefCell;

use dtdcert::audit::AuditSettings;
use dtdcert::model::Model;
use dtdcert::torch::parity::{compare_audits, Parity};
use dtdcert::torch::Precision;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use tch::Device;

/// A runner of `cases` cases from a fixed seed, without a failure file.
pub fn runner(cases: u32, seed: u64) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(seed),
        ..Config::default()
    })
}

/// Over `count` cases of `cases` (seed `seed`): the backend's f64 audit has the engine's root
/// outcomes and verdicts (f64 within 1e-12, f32 within 1e-5 with its float-resolution
/// differences counted), and at least `100 · count / 128` roots were judged in all, so that
/// the run is not vacuous.
pub fn audit_parity<S>(name: &str, cases: S, count: u32, seed: u64)
where
    S: Strategy<Value = (Model, Vec<Vec<f64>>, AuditSettings)>,
{
    let totals = RefCell::new((Parity::default(), Parity::default()));
    runner(count, seed)
        .run(&cases, |(model, xs, settings)| {
            let p64 = compare_audits(
                &model,
                &xs,
                &settings,
                Precision::F64,
                Device::Cpu,
                1e-12,
                true,
            )
            .map_err(|e| TestCaseError::fail(format!("f64: {e} with {settings:?}")))?;
            prop_assert_eq!(p64.outcomes, 0, "f64 root outcomes differ");
            let p32 = compare_audits(
                &model,
                &xs,
                &settings,
                Precision::F32,
                Device::Cpu,
                1e-5,
                false,
            )
            .map_err(|e| TestCaseError::fail(format!("f32: {e} with {settings:?}")))?;
            let mut t = totals.borrow_mut();
            let (t64, t32) = &mut *t;
            for (total, p) in [(t64, p64), (t32, p32)] {
                total.roots += p.roots;
                total.differing += p.differing;
                total.outcomes += p.outcomes;
                total.worst_ratio = total.worst_ratio.max(p.worst_ratio);
                total.worst_relevance = total.worst_relevance.max(p.worst_relevance);
                total.worst_margin = total.worst_margin.max(p.worst_margin);
            }
            Ok(())
        })
        .unwrap();
    let (p64, p32) = totals.into_inner();
    println!("{name}, f64: {p64:?}\n{name}, f32: {p32:?}");
    assert!(
        p64.roots >= 100 * count as usize / 128,
        "{name}: {} roots",
        p64.roots
    );
}
