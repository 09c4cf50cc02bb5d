//! Property tests on random small MLPs (1,000 cases per property).

mod util;

use dtdcert::dtd::{closed_form, explain, BiasMode, DtdSettings, RootOutcome, Rule};
use dtdcert::exact::{Rational, Scalar};
use dtdcert::model::forward::forward;
use dtdcert::region::{membership, membership_filtered, polytope, trace_and_pattern, Pattern};
use proptest::prelude::*;
use util::{network_and_input, taylor_exact_at_inside_roots, to_exact, verdicts_agree};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 1000,
        ..ProptestConfig::default()
    }
}

fn root_rules() -> impl Strategy<Value = Rule> {
    prop_oneof![
        Just(Rule::Z),
        Just(Rule::ZPlus),
        Just(Rule::Gamma(0.25)),
        Just(Rule::Gamma(1.0)),
        Just(Rule::WSquare),
        Just(Rule::ZBox { lo: -1.0, hi: 1.0 }),
    ]
}

fn settings(rule: Rule, threshold: f64) -> DtdSettings {
    DtdSettings {
        rule,
        input_rule: None,
        bias: BiasMode::Ignore,
        stabilizer: 0.0,
        denominator_threshold: threshold,
        ..DtdSettings::default()
    }
}

fn explained_output(out: &[Rational]) -> usize {
    dtdcert::model::forward::argmax(&out.iter().map(Scalar::to_f64).collect::<Vec<_>>())
}

proptest! {
    #![proptest_config(config())]

    /// Every root of every layer satisfies w_j · ã = w_j · a − R_j: exactly in rationals, and
    /// up to a rounding bound in f64.
    #[test]
    fn root_lies_on_its_hyperplane((model, x) in network_and_input(-1.0, 1.0), rule in root_rules()) {
        let net = model.exact();
        let trace = forward(net, &to_exact(&x));
        let k = explained_output(trace.output());
        let e = explain(net, &trace, &settings(rule, 1e-5), k, true);
        for (index, step) in e.layers.iter().enumerate() {
            let a = trace.layer_input(index);
            for (j, n) in step.neurons.iter().enumerate() {
                if let RootOutcome::Root { point, .. } = &n.outcome {
                    let w = net.layers()[index].affine.row(j).dense();
                    let lhs = dtdcert::exact::scalar::dot(&w, point);
                    let rhs = dtdcert::exact::scalar::dot(&w, a) - n.relevance.clone();
                    prop_assert_eq!(lhs, rhs);
                }
            }
        }
        let ftrace = forward(model.net(), &x);
        let k = dtdcert::model::forward::argmax(ftrace.output());
        let fe = explain(model.net(), &ftrace, &settings(rule, 1e-5), k, true);
        for (index, step) in fe.layers.iter().enumerate() {
            let a = ftrace.layer_input(index);
            for (j, n) in step.neurons.iter().enumerate() {
                if let RootOutcome::Root { point, .. } = &n.outcome {
                    let w = model.net().layers()[index].affine.row(j).dense();
                    let scale: f64 = w.iter().zip(a).zip(point).map(|((wi, ai), pi)| wi.abs() * (ai.abs() + pi.abs())).sum::<f64>() + n.relevance.abs();
                    let gap = dtdcert::exact::scalar::dot(&w, point) - (dtdcert::exact::scalar::dot(&w, a) - n.relevance);
                    prop_assert!(gap.abs() <= 1e-12 * scale.max(1.0), "gap {gap} at layer {index} neuron {j}");
                }
            }
        }
    }

    /// With z+ and the bias ignored, each layer passes on exactly the relevance of the neurons
    /// that have a root (in rationals).
    #[test]
    fn zplus_conserves_relevance_exactly((model, x) in network_and_input(0.0, 2.0)) {
        let net = model.exact();
        let trace = forward(net, &to_exact(&x));
        let k = explained_output(trace.output());
        let e = explain(net, &trace, &settings(Rule::ZPlus, 1e-5), k, false);
        for step in &e.layers {
            prop_assert!(Scalar::is_zero(&step.conservation_error()));
            let passed = step.lower.iter().fold(Rational::zero(), |acc, v| acc + v);
            let with_root = step
                .neurons
                .iter()
                .filter(|n| matches!(n.outcome, RootOutcome::Root { .. }))
                .fold(Rational::zero(), |acc, n| acc + &n.relevance);
            prop_assert_eq!(passed, with_root);
            for n in &step.neurons {
                if matches!(n.outcome, RootOutcome::Root { .. }) {
                    prop_assert!(Scalar::is_zero(&n.unresolved));
                }
            }
        }
    }

    /// x lies in its own region seen from every layer: by the filtered check, by the exact
    /// check, and in the materialised polytope.
    #[test]
    fn input_lies_in_its_own_region((model, x) in network_and_input(-2.0, 2.0)) {
        let (trace, pattern, _) = trace_and_pattern(&model, &x);
        let exact_trace = forward(model.exact(), &to_exact(&x));
        prop_assert_eq!(&pattern, &Pattern::from_pre(model.exact(), &exact_trace.pre));
        for m in 0..model.net().layers().len() {
            let (verdict, _) = membership_filtered(&model, &pattern, m, trace.layer_input(m));
            if m == 0 {
                prop_assert!(verdict.is_inside(), "{:?}", verdict);
            }
            prop_assert!(membership(model.exact(), &pattern, m, exact_trace.layer_input(m)).is_inside());
            prop_assert!(polytope(model.exact(), &pattern, m).contains(exact_trace.layer_input(m)));
        }
    }

    /// The f64 verdict with its exact fallback, one root at a time and batched per layer,
    /// equals the verdict computed purely in rationals.
    #[test]
    fn float_verdict_equals_exact_verdict((model, x) in network_and_input(-1.0, 1.0), rule in root_rules()) {
        verdicts_agree(&model, &x, &settings(rule, 1e-5))?;
    }

    /// At a root inside P_l(x), the network above layer l equals its first-order Taylor
    /// expansion at a (checked in rationals with the real ReLUs).
    #[test]
    fn inside_root_makes_taylor_expansion_exact((model, x) in network_and_input(-1.0, 1.0), rule in root_rules()) {
        taylor_exact_at_inside_roots(&model, &x, &settings(rule, 1e-5))?;
    }

    /// z+ (bias ignored) equals LRP-α1β0 without bias, w² equals LRP-w², and zB at the input
    /// equals LRP-zB, layer by layer, exactly.
    #[test]
    fn rules_equal_their_lrp_closed_forms((model, x) in network_and_input(0.0, 1.0)) {
        let net = model.exact();
        let trace = forward(net, &to_exact(&x));
        let k = explained_output(trace.output());
        for rule in [Rule::ZPlus, Rule::WSquare] {
            let e = explain(net, &trace, &settings(rule, 0.0), k, false);
            for (index, step) in e.layers.iter().enumerate() {
                let layer = &net.layers()[index].affine;
                let owned: Vec<Vec<Rational>> = (0..layer.out_dim()).map(|j| layer.row(j).dense().into_owned()).collect();
                let rows: Vec<&[Rational]> = owned.iter().map(Vec::as_slice).collect();
                let expect = match rule {
                    Rule::ZPlus => closed_form::alpha1_beta0(&rows, trace.layer_input(index), &step.upper),
                    _ => closed_form::w_square(&rows, &step.upper),
                };
                prop_assert_eq!(&step.lower, &expect, "{} at layer {}", rule, index + 1);
            }
        }
        let zb = DtdSettings { input_rule: Some(Rule::ZBox { lo: 0.0, hi: 1.0 }), ..settings(Rule::ZPlus, 0.0) };
        let e = explain(net, &trace, &zb, k, false);
        let layer = &net.layers()[0].affine;
        let owned: Vec<Vec<Rational>> = (0..layer.out_dim()).map(|j| layer.row(j).dense().into_owned()).collect();
                let rows: Vec<&[Rational]> = owned.iter().map(Vec::as_slice).collect();
        let expect = closed_form::z_box(&rows, trace.layer_input(0), &Rational::from_f64(0.0), &Rational::from_f64(1.0), &e.layers[0].upper);
        prop_assert_eq!(&e.layers[0].lower, &expect);
    }
}
