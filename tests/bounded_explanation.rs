//! The f64 explanation with a-priori error bounds (`dtd::bounded`): its values are the f64
//! explanation's bit for bit, and each value ± its bound encloses the value the recursion
//! computes in exact rationals (as `--exact` does) at the exact layer inputs, for every
//! relevance and root coordinate, on random MLPs (max pooling and carried tails included) and
//! convolutional networks, under every rule with roots, each bias mode, a stabiliser or none,
//! both initial relevances and per-layer rules (an LRP rule among them).

mod util;

use dtdcert::dtd::bounded::{explain_bounded, neuron_root_bounded, BoundedExplanation, Keep};
use dtdcert::dtd::{
    explain, BiasMode, DtdSettings, Explanation, InitialRelevance, LayerRule, RootOutcome, Rule,
};
use dtdcert::exact::{Rational, Scalar};
use dtdcert::model::forward::{argmax, forward};
use dtdcert::model::Model;
use dtdcert::region::{trace_with_errors, Decision};
use proptest::prelude::*;
use util::{mlp_with_tails_and_pools, to_exact};

/// Weights on a dyadic grid (exact ties and zeros), f32 values (exact products, rounded sums)
/// and f64 values (rounded products too).
fn any_weight() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-8i32..=8).prop_map(|k| k as f64 / 4.0),
        (-2.0f64..2.0).prop_map(|v| v as f32 as f64),
        -2.0f64..2.0,
    ]
}

/// A random MLP (sometimes with carried tails and max pooling) and an input for it.
fn mlp_and_input() -> impl Strategy<Value = (Model, Vec<f64>)> {
    mlp_with_tails_and_pools(1..=5, 1..=5, 1..=3, any_weight).prop_flat_map(|net| {
        let d = net.input_dim();
        (
            Just(Model::new(net)),
            prop::collection::vec(any_weight(), d),
        )
    })
}

fn root_rules() -> impl Strategy<Value = Rule> {
    prop_oneof![
        Just(Rule::Zero),
        Just(Rule::Z),
        Just(Rule::ZPlus),
        Just(Rule::Gamma(0.25)),
        Just(Rule::Gamma(0.1)),
        Just(Rule::WSquare),
        Just(Rule::ZBox { lo: -1.0, hi: 1.0 }),
    ]
}

prop_compose! {
    /// A rule everywhere, sometimes another at the input and another (a root rule or ε) at
    /// layer 2; each bias mode; a stabiliser or none; both initial relevances.
    fn dtd_settings()(
        rule in root_rules(),
        input_rule in proptest::option::of(root_rules()),
        layer_two in proptest::option::of(prop_oneof![
            root_rules(),
            Just(Rule::Epsilon(0.01)),
        ]),
        bias in prop_oneof![
            Just(BiasMode::Ignore),
            Just(BiasMode::Include),
            Just(BiasMode::Plain)
        ],
        stabilizer in prop_oneof![Just(0.0), Just(1e-3)],
        one in any::<bool>(),
    ) -> DtdSettings {
        DtdSettings {
            rule,
            input_rule,
            bias,
            stabilizer,
            initial_relevance: if one {
                InitialRelevance::One
            } else {
                InitialRelevance::Output
            },
            layer_rules: layer_two
                .map(|rule| vec![LayerRule { layer: 2, rule }])
                .unwrap_or_default(),
            ..DtdSettings::default()
        }
    }
}

/// `|value − exact| <= bound`, in rationals.
fn encloses(value: f64, bound: f64, exact: &Rational) -> bool {
    bound.is_finite() && (Rational::from_f64(value) - exact).abs() <= Rational::from_f64(bound)
}

/// What the comparison found: whether the bounds settled every branch, and how many values
/// had a bound above zero.
struct Checked {
    settled: bool,
    inexact: usize,
}

/// The bounded explanation of `x` against the f64 one (bit for bit) and the exact one
/// (enclosure), for the top output.
fn check(model: &Model, x: &[f64], settings: &DtdSettings) -> Result<Checked, TestCaseError> {
    let unsettled = Checked {
        settled: false,
        inexact: 0,
    };
    let (trace, errors, _, decided_by) = trace_with_errors(model, x);
    // Past a pattern the f64 bound did not decide, the trace's bounds do not hold.
    if decided_by != Decision::Float || trace.output().iter().any(|v| !v.is_finite()) {
        return Ok(unsettled);
    }
    let k = argmax(trace.output());
    let all = Keep {
        roots: true,
        input_bounds: true,
    };
    let Some(bounded) = explain_bounded(model, &trace, &errors, settings, k, all) else {
        return Ok(unsettled);
    };
    // The relevances of the f64 recursion, and its roots in the rows of the bounds.
    prop_assert_eq!(
        &bounded.explanation,
        &explain(model.net(), &trace, settings, k, false)
    );
    let with_roots = explain(model.net(), &trace, settings, k, true);
    for (step, bounds) in with_roots.layers.iter().zip(&bounded.bounds) {
        let kept: Vec<f64> = step
            .neurons
            .iter()
            .filter_map(|n| match &n.outcome {
                RootOutcome::Root { point, .. } => Some(point.clone()),
                RootOutcome::None(_) => None,
            })
            .flatten()
            .collect();
        prop_assert_eq!(&kept, &bounds.roots);
        prop_assert_eq!(bounds.root_errors.len(), kept.len());
    }
    // Without the roots and the input relevances' bounds, the same relevances and the same
    // bounds of the others.
    let lean = Keep {
        roots: false,
        input_bounds: false,
    };
    let lean = explain_bounded(model, &trace, &errors, settings, k, lean).unwrap();
    prop_assert_eq!(&lean.explanation, &bounded.explanation);
    for (index, (kept, lean)) in bounded.bounds.iter().zip(&lean.bounds).enumerate() {
        prop_assert_eq!(&kept.upper, &lean.upper);
        if index > 0 {
            prop_assert_eq!(&kept.lower, &lean.lower);
        } else {
            prop_assert!(lean.lower.is_empty());
        }
        prop_assert!(lean.roots.is_empty() && lean.root_errors.is_empty());
    }
    let net = model.exact();
    let exact_trace = forward(net, &to_exact(x));
    let exact = explain(net, &exact_trace, settings, k, true);
    let inexact = enclosed(&bounded, &exact)?;
    // A root rebuilt alone is the kept one, with the same bounds.
    for (index, (step, bounds)) in bounded
        .explanation
        .layers
        .iter()
        .zip(&bounded.bounds)
        .enumerate()
    {
        let input = (trace.layer_input(index), &errors[index][..]);
        let width = input.0.len();
        let mut row = 0;
        for (j, n) in step.neurons.iter().enumerate() {
            if let RootOutcome::Root { t, .. } = n.outcome {
                let (alone, alone_errors) = neuron_root_bounded(
                    model,
                    index,
                    j,
                    input,
                    (n.relevance, bounds.upper[j]),
                    settings,
                )
                .unwrap();
                let rows = row * width..(row + 1) * width;
                prop_assert_eq!(
                    alone,
                    RootOutcome::Root {
                        point: bounds.roots[rows.clone()].to_vec(),
                        t
                    }
                );
                prop_assert_eq!(&alone_errors[..], &bounds.root_errors[rows]);
                row += 1;
            }
        }
    }
    Ok(Checked {
        settled: true,
        inexact,
    })
}

/// Every relevance and root coordinate of `bounded` encloses the exact one, and every
/// neuron's outcome (a root, or no root and why) is the exact one's; the number of values
/// whose bound is above zero.
fn enclosed(
    bounded: &BoundedExplanation,
    exact: &Explanation<Rational>,
) -> Result<usize, TestCaseError> {
    let mut inexact = 0;
    let layers = bounded.explanation.layers.iter().zip(&bounded.bounds);
    for (index, ((step, bounds), exact_step)) in layers.zip(&exact.layers).enumerate() {
        let pairs = [
            (&step.upper, &bounds.upper, &exact_step.upper),
            (&step.lower, &bounds.lower, &exact_step.lower),
        ];
        for (values, errors, exact_values) in pairs {
            for ((&v, &e), x) in values.iter().zip(errors).zip(exact_values) {
                prop_assert!(
                    encloses(v, e, x),
                    "layer {index}: relevance {v} ± {e}, exactly {}",
                    x.to_f64()
                );
                inexact += usize::from(e > 0.0);
            }
        }
        let width = exact_step.lower.len();
        let mut row = 0;
        for (j, (n, x)) in step.neurons.iter().zip(&exact_step.neurons).enumerate() {
            match (&n.outcome, &x.outcome) {
                (RootOutcome::Root { .. }, RootOutcome::Root { point: exact, .. }) => {
                    let rows = row * width..(row + 1) * width;
                    let (point, errors) = (&bounds.roots[rows.clone()], &bounds.root_errors[rows]);
                    for ((&v, &e), x) in point.iter().zip(errors).zip(exact) {
                        prop_assert!(
                            encloses(v, e, x),
                            "layer {index} neuron {j}: root {v} ± {e}, exactly {}",
                            x.to_f64()
                        );
                        inexact += usize::from(e > 0.0);
                    }
                    row += 1;
                }
                (RootOutcome::None(a), RootOutcome::None(b)) => prop_assert_eq!(a, b),
                (a, b) => prop_assert!(false, "layer {index} neuron {j}: {a:?} vs exactly {b:?}"),
            }
        }
        prop_assert_eq!(bounds.roots.len(), row * width);
    }
    Ok(inexact)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    /// Random MLPs (sometimes with carried tails and max pooling): every value within its
    /// bound of the exact one.
    #[test]
    fn bounds_enclose_the_exact_explanation(
        (model, x) in mlp_and_input(),
        settings in dtd_settings(),
    ) {
        prop_assume!(settings.check_layers(model.net().layers().len()).is_ok());
        check(&model, &x, &settings)?;
    }

    /// Convolutional networks (rows listing a window of the input: the sparse path).
    #[test]
    fn bounds_enclose_the_exact_explanation_of_conv_nets(
        (net, x) in util::conv::conv_net_and_input(),
        settings in dtd_settings(),
    ) {
        let model = util::conv::load(&net);
        prop_assume!(settings.check_layers(model.net().layers().len()).is_ok());
        check(&model, &x, &settings)?;
    }
}

/// The bounds are not vacuous: on inputs that are not on a grid, most samples are settled by
/// them, and their values carry bounds above zero; and where a layer input is an exact 0 (a
/// ReLU certainly off) the relevance it receives under z+ is an exact 0 with bound 0.
#[test]
fn bounds_settle_most_samples_and_keep_exact_zeros() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let (mut settled, mut inexact, mut zeros) = (0, 0, 0);
    let settings = DtdSettings::default();
    for _ in 0..100 {
        let widths = [6usize, 8, 8, 3];
        let layers = widths
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                let weight = (0..w[0] * w[1])
                    .map(|_| rng.random_range(-1.0..1.0))
                    .collect();
                let bias = (0..w[1]).map(|_| rng.random_range(-0.5..0.5)).collect();
                dtdcert::model::ir::dense_layer(w[1], w[0], weight, bias, i + 2 < widths.len())
                    .unwrap()
            })
            .collect();
        let model = Model::new(dtdcert::model::Network::new(layers).unwrap());
        let x: Vec<f64> = (0..widths[0]).map(|_| rng.random_range(0.0..1.0)).collect();
        let checked = check(&model, &x, &settings).unwrap();
        settled += usize::from(checked.settled);
        inexact += checked.inexact;
        let (trace, errors, _, _) = trace_with_errors(&model, &x);
        let k = argmax(trace.output());
        let keep = Keep {
            roots: true,
            input_bounds: true,
        };
        if let Some(b) = explain_bounded(&model, &trace, &errors, &settings, k, keep) {
            for (index, layer_bounds) in b.bounds.iter().enumerate().skip(1) {
                let a = trace.layer_input(index);
                let lower = &b.explanation.layers[index].lower;
                for (i, (&ai, &ei)) in a.iter().zip(&errors[index]).enumerate() {
                    if ai == 0.0 && ei == 0.0 {
                        assert_eq!((lower[i], layer_bounds.lower[i]), (0.0, 0.0));
                        zeros += 1;
                    }
                }
            }
        }
    }
    assert!(settled >= 90, "{settled} of 100 samples settled");
    assert!(
        inexact > 0 && zeros > 0,
        "{inexact} inexact values, {zeros} exact zeros"
    );
}
