//! The C6 workload of PAPER.md end to end: generate the 10-10-10-2 network and 1000 inputs,
//! then for each of the rules 0, z+, γ=1, w² compute every root and decide exactly whether
//! each input-layer root lies in the input's region. Run with `cargo bench --bench c6_audit`.

use criterion::{criterion_group, criterion_main, Criterion};
use dtdcert::repro::mlp_roots::{rows_for_rules, run_generated, MlpRootsSettings};

fn c6(c: &mut Criterion) {
    let settings = MlpRootsSettings::default();
    c.bench_function(
        "c6 end to end: 4 rules x 1000 samples, 10-10-10-2, exact verdicts",
        |b| b.iter(|| run_generated(&settings).unwrap()),
    );
    let generated = run_generated(&settings).unwrap();
    c.bench_function("c6 roots and verdicts only: 4 rules x 1000 samples", |b| {
        b.iter(|| rows_for_rules(&generated.model, &generated.inputs, Some(0), &settings).unwrap())
    });
}

criterion_group!(benches, c6);
criterion_main!(benches);
