//! The C6 table that the README reports (seed 0, 1000 samples) is what `repro mlp-roots`
//! computes: a regression test for the published figures.

use dtdcert::repro::mlp_roots::{run_generated, MlpRootsSettings};

#[test]
fn readme_c6_table_is_reproduced() {
    let generated = run_generated(&MlpRootsSettings::default()).unwrap();
    let rows: Vec<(String, u64, u64, u64, u64)> = generated
        .rows
        .iter()
        .map(|r| {
            (
                r.rule.clone(),
                r.samples_with_root_outside,
                r.roots_outside,
                r.roots,
                r.roots_with_negative_entries,
            )
        })
        .collect();
    let expected = [
        ("0", 1000, 8794, 8794, 0),
        ("z+", 846, 2930, 8763, 0),
        ("gamma:1", 823, 2899, 8794, 0),
        ("w2", 976, 4163, 10000, 2956),
    ];
    assert_eq!(rows.len(), expected.len());
    for (row, (rule, samples_outside, outside, roots, negative)) in rows.iter().zip(expected) {
        assert_eq!(
            row,
            &(rule.to_string(), samples_outside, outside, roots, negative)
        );
    }
    assert!(generated.rows.iter().all(|r| r.samples == 1000));
    let readme = std::fs::read_to_string("README.md").unwrap();
    for needle in [
        "84.6 %",
        "33.4 % (2930/8763)",
        "41.6 % (4163/10000)",
        "29.6 %",
    ] {
        assert!(readme.contains(needle), "README no longer shows {needle}");
    }
}
