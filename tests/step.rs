//! `step`: the largest `t >= 0` with `a − t v` in the region, in closed form, against its LP
//! form and against exact membership on both sides of the step.

mod util;

use dtdcert::exact::{Rational, Scalar};
use dtdcert::lp::{solve, SolveOptions, Solved};
use dtdcert::region::problem::{step_program, Domain, RegionView};
use dtdcert::region::{membership, step_length, trace_and_pattern};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn closed_form_step_matches_exact_membership_and_the_lp(
        (model, x) in util::network_and_input(-2.0, 2.0),
        layer_pick in 0usize..8,
        dir in proptest::collection::vec(-8i32..=8, 1..64),
    ) {
        let (trace, pattern, _) = trace_and_pattern(&model, &x);
        let m = layer_pick % model.net().layers().len();
        let a = trace.layer_input(m).to_vec();
        let v: Vec<f64> = (0..a.len()).map(|i| f64::from(dir[i % dir.len()]) / 4.0).collect();
        let ar: Vec<Rational> = a.iter().map(|&x| Rational::from_f64(x)).collect();
        let vr: Vec<Rational> = v.iter().map(|&x| Rational::from_f64(x)).collect();
        let exact = step_length(model.exact(), &pattern, m, &ar, &vr);
        let at = |t: &Rational| -> Vec<Rational> {
            ar.iter().zip(&vr).map(|(a, v)| a.clone() - t.clone() * v.clone()).collect()
        };
        let inside_at_a = membership(model.exact(), &pattern, m, &ar).is_inside();
        match &exact {
            Some(t) if inside_at_a => {
                // On the step the point is inside; a little beyond, outside.
                prop_assert!(membership(model.exact(), &pattern, m, &at(t)).is_inside());
                let beyond = t.clone() + t.clone() / Rational::from_f64(1e6)
                    + Rational::from_f64(1e-12);
                prop_assert!(!membership(model.exact(), &pattern, m, &at(&beyond)).is_inside());
            }
            None => {
                // The ray never leaves: far along it the point is still inside.
                prop_assert!(inside_at_a);
                prop_assert!(membership(model.exact(), &pattern, m, &at(&Rational::from_f64(1e6)))
                    .is_inside());
            }
            _ => {}
        }
        // f64 closed form agrees with the exact one.
        let float = step_length(model.net(), &pattern, m, &a, &v);
        prop_assert_eq!(float.is_some(), exact.is_some());
        if let (Some(f), Some(e)) = (float, &exact) {
            let e = e.to_f64();
            prop_assert!((f - e).abs() <= 1e-9 * e.abs().max(1e-12), "{} vs {}", f, e);
        }
        // The LP form, where a lies inside its own region.
        if inside_at_a {
            let centre = dtdcert::region::Centre::from_f64(&a).unwrap();
            let view = RegionView {
                net: model.net(),
                pattern: &pattern,
                layer: m,
                centre: &centre,
                domain: Domain::Free,
            };
            let (lp, t) = step_program(view, &v);
            match (solve(&lp, &SolveOptions::default()), &exact) {
                (Solved::Unbounded, None) => {}
                (Solved::Optimal { x, .. }, Some(e)) => {
                    let e = e.to_f64();
                    prop_assert!((x[t] - e).abs() <= 1e-6 * e.abs().max(1e-9), "lp {} vs {}", x[t], e);
                }
                (other, e) => prop_assert!(false, "lp {:?} vs closed form {:?}", other, e),
            }
        }
    }
}

/// `certify --problem step` says the rule root is inside exactly when the audit's exact region
/// verdict does (the region is convex and contains the layer input).
#[test]
fn step_agrees_with_the_audit_verdicts_on_c6() {
    use dtdcert::audit::{audit_sample, AuditSettings};
    use dtdcert::model::inputs::load_inputs;
    use dtdcert::model::Model;
    use std::path::Path;
    let (model_path, inputs_path) = ("examples/c6/model.onnx", "examples/c6/inputs.npy");
    let model = Model::load(Path::new(model_path)).unwrap();
    let inputs = load_inputs(Path::new(inputs_path), None).unwrap();
    let mut checked = 0;
    for sample in [3usize, 7] {
        let x = inputs.row(sample).unwrap();
        let record = audit_sample(&model, &AuditSettings::default(), sample, &x, Some(0)).unwrap();
        for lr in record.layers.iter().take(2) {
            for n in &lr.neurons {
                let Some(root) = &n.root else { continue };
                let out = assert_cmd::Command::cargo_bin("dtdcert")
                    .unwrap()
                    .args(["certify", "--model", model_path, "--inputs", inputs_path])
                    .args([
                        "--sample",
                        &sample.to_string(),
                        "--layer",
                        &lr.layer.to_string(),
                    ])
                    .args(["--neuron", &n.neuron.to_string(), "--problem", "step"])
                    .args(["--explain", "0"])
                    .output()
                    .unwrap();
                assert_eq!(out.status.code(), Some(0));
                let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                assert_eq!(
                    doc["rule_root_inside"].as_bool().unwrap(),
                    root.region.is_inside(),
                    "sample {sample} layer {} neuron {}: {doc}",
                    lr.layer,
                    n.neuron
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 10, "only {checked} roots compared");
}
