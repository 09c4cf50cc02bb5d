//! Unit tests of full-backward DTD: agreement with train-free DTD on one layer, f64 against
//! exact rationals, remainders, the cost limit and pluggable root finders.

use super::*;
use crate::dtd::{explain, BiasMode, DtdSettings, Rule};
use crate::error::{invalid, Error, Result};
use crate::exact::{Rational, Scalar};
use crate::model::forward::forward;
use crate::model::ir::dense_layer;
use crate::model::Network;

fn settings(rule: Rule) -> DtdSettings {
    DtdSettings {
        rule,
        input_rule: None,
        bias: BiasMode::Ignore,
        stabilizer: 0.0,
        denominator_threshold: 1e-5,
        ..DtdSettings::default()
    }
}

fn exact(v: &[f64]) -> Vec<Rational> {
    v.iter().map(|&x| Rational::from_f64(x)).collect()
}

/// 3 -> 4 (ReLU) -> 3 (ReLU) -> 2, with mixed signs and biases.
fn three_layers() -> Network {
    Network::new(vec![
        dense_layer(
            4,
            3,
            vec![
                0.5, -0.25, 1.0, 0.75, 0.5, -0.5, -1.0, 0.25, 0.5, 0.125, 1.5, 0.25,
            ],
            vec![0.125, -0.25, 0.0, 0.5],
            true,
        )
        .unwrap(),
        dense_layer(
            3,
            4,
            vec![
                1.0, -0.5, 0.25, 0.5, 0.5, 0.75, -0.25, 1.0, -0.5, 0.25, 1.0, 0.5,
            ],
            vec![-0.125, 0.25, 0.0],
            true,
        )
        .unwrap(),
        dense_layer(
            2,
            3,
            vec![0.75, -0.5, 1.0, 0.25, 1.0, -0.75],
            vec![0.5, 0.0],
            false,
        )
        .unwrap(),
    ])
    .unwrap()
}

#[test]
fn one_layer_equals_train_free() {
    let net = Network::new(vec![dense_layer(
        2,
        3,
        vec![1.0, -0.5, 0.25, -0.75, 0.5, 1.5],
        vec![0.3, -0.2],
        true,
    )
    .unwrap()])
    .unwrap()
    .to_exact();
    let x = exact(&[0.5, 0.25, 2.0]);
    let trace = forward(&net, &x);
    for rule in [Rule::Z, Rule::ZPlus, Rule::Gamma(0.5), Rule::WSquare] {
        for k in 0..2 {
            assert!(trace.output()[k].is_positive());
            let s = settings(rule);
            let tf = explain(&net, &trace, &s, k, false);
            let fb = full_backward(
                &net,
                &x,
                k,
                &FullBackwardSettings::default(),
                &RuleRoots::new(&net, &s),
            )
            .unwrap();
            assert_eq!(fb.input_relevance(), tf.input_relevance(), "{rule}, k={k}");
            // The root lies on the output's face; the side facing x is active, so nothing
            // is left over.
            assert!(fb.remainder().is_zero());
            assert!(fb.conservation_gap().is_zero());
            assert_eq!(fb.evaluations, 3);
        }
    }
}

#[test]
fn f64_takes_the_same_side_of_a_face_as_exact() {
    // The explained output's rule root is on its face: exactly in rationals, within
    // rounding in f64. Both must see the active side.
    let net = three_layers();
    let x = [0.7, 0.3, 1.1];
    let s = settings(Rule::ZPlus);
    let fb = full_backward(
        &net,
        &x,
        0,
        &FullBackwardSettings::default(),
        &RuleRoots::new(&net, &s),
    )
    .unwrap();
    let ex = net.to_exact();
    let fe = full_backward(
        &ex,
        &exact(&x),
        0,
        &FullBackwardSettings::default(),
        &RuleRoots::new(&ex, &s),
    )
    .unwrap();
    let top = fb.layers.last().unwrap();
    let Expansion::Root { gradient, .. } = &top.neurons[0].expansion else {
        panic!("the explained output is expanded: {:?}", top.neurons[0]);
    };
    assert_eq!(*gradient, *net.layers()[2].affine.row(0).dense());
    for (a, b) in fb.input_relevance().iter().zip(fe.input_relevance()) {
        assert!(
            (a - b.to_f64()).abs() <= 1e-12 * (1.0 + a.abs()),
            "{a} vs {b}"
        );
    }
    assert_eq!(fb.evaluations, fe.evaluations);
}

#[test]
fn nothing_positive_passes_nothing_and_reports_it_as_remainder() {
    // No ReLU on the output and a negative output: nothing is expanded anywhere.
    let net = Network::new(vec![
        dense_layer(2, 2, vec![1.0, 0.5, 0.25, 1.0], vec![0.0, 0.0], true).unwrap(),
        dense_layer(1, 2, vec![-1.0, -0.5], vec![0.25], false).unwrap(),
    ])
    .unwrap()
    .to_exact();
    let x = exact(&[1.0, 2.0]);
    let s = settings(Rule::ZPlus);
    let fb = full_backward(
        &net,
        &x,
        0,
        &FullBackwardSettings::default(),
        &RuleRoots::new(&net, &s),
    )
    .unwrap();
    let f = forward(&net, &x).output()[0].clone();
    assert!(f.is_negative());
    assert_eq!(fb.output, f);
    assert!(fb.input_relevance().iter().all(Scalar::is_zero));
    assert_eq!(fb.layers[1].neurons[0].expansion, Expansion::NotPositive);
    assert_eq!(fb.layers[1].remainder(), f);
    assert_eq!(fb.remainder(), f);
    assert!(fb.conservation_gap().is_zero());
    // One evaluation per layer plus the output: no root was ever evaluated.
    assert_eq!(fb.evaluations, 3);
}

#[test]
fn lrp_rules_and_small_denominators_leave_their_relevance_unresolved() {
    let net = three_layers().to_exact();
    let x = exact(&[0.7, 0.3, 1.1]);
    let s = settings(Rule::Epsilon(0.01));
    let fb = full_backward(
        &net,
        &x,
        0,
        &FullBackwardSettings::default(),
        &RuleRoots::new(&net, &s),
    )
    .unwrap();
    let top = &fb.layers[2].neurons[0];
    assert_eq!(top.expansion, Expansion::NoRoot(Rootless::NotApplicable));
    assert_eq!(top.remainder, fb.output);
    assert!(fb.conservation_gap().is_zero());

    let mut s = settings(Rule::ZPlus);
    s.denominator_threshold = 1e6;
    let fb = full_backward(
        &net,
        &x,
        0,
        &FullBackwardSettings::default(),
        &RuleRoots::new(&net, &s),
    )
    .unwrap();
    assert_eq!(
        fb.layers[2].neurons[0].expansion,
        Expansion::NoRoot(Rootless::SmallDenominator)
    );
}

#[test]
fn worst_case_follows_the_recurrence() {
    let net = three_layers();
    // C(3) = 1, C(2) = 1 + 2·1, C(1) = 1 + 4·3, C(0) = 1 + 5·13.
    assert_eq!(worst_case_evaluations(&net, 3), 1);
    assert_eq!(worst_case_evaluations(&net, 2), 3);
    assert_eq!(worst_case_evaluations(&net, 1), 1 + (3 + 1) * 3);
    assert_eq!(
        worst_case_evaluations(&net, 0),
        1 + (4 + 1) * (1 + (3 + 1) * 3)
    );
    let s = settings(Rule::ZPlus);
    let fb = full_backward(
        &net,
        &[0.7, 0.3, 1.1],
        0,
        &FullBackwardSettings::default(),
        &RuleRoots::new(&net, &s),
    )
    .unwrap();
    assert!(fb.evaluations <= worst_case_evaluations(&net, 0));
    assert!(fb.evaluations > 3, "some hidden neuron was expanded");
    // The figures the documentation quotes.
    let zeros = |widths: &[usize]| {
        let layers = widths
            .windows(2)
            .map(|w| dense_layer(w[1], w[0], vec![0.0; w[0] * w[1]], vec![0.0; w[1]], true))
            .collect::<Result<Vec<_>>>()
            .unwrap();
        Network::new(layers).unwrap()
    };
    assert_eq!(worst_case_evaluations(&zeros(&[10, 10, 10, 2]), 0), 375);
    let wide = worst_case_evaluations(&zeros(&[784, 256, 256, 128, 10]), 0);
    assert_eq!(wide, 1 + 257 * (1 + 257 * (1 + 129 * 3)));
    assert!((2.5e7..2.7e7).contains(&(wide as f64)));
}

#[test]
fn a_network_over_the_limit_is_refused() {
    let net = three_layers();
    let s = settings(Rule::ZPlus);
    let limit = FullBackwardSettings {
        max_evaluations: worst_case_evaluations(&net, 0) - 1,
        ..FullBackwardSettings::default()
    };
    let err =
        full_backward(&net, &[0.7, 0.3, 1.1], 0, &limit, &RuleRoots::new(&net, &s)).unwrap_err();
    assert!(matches!(err, Error::Usage(_)), "{err}");
    let text = err.to_string();
    assert!(text.contains("66") && text.contains("65"), "{text}");
    // The upper relevance function of the top layer needs only the output.
    let up = upper_relevance(
        &net,
        2,
        &[1.0, 0.0, 0.5],
        0,
        &limit,
        &RuleRoots::new(&net, &s),
    )
    .unwrap();
    assert_eq!(up.evaluations, 1);
}

struct Failing;
impl RootFinder<f64> for Failing {
    fn root(&self, layer: usize, _: usize, _: &[f64], _: f64) -> Result<Option<Vec<f64>>> {
        Err(invalid(format!("no solver for layer {layer}")))
    }
}

struct Narrow;
impl RootFinder for Narrow {
    fn root(&self, _: usize, _: usize, _: &[f64], _: f64) -> Result<Option<Vec<f64>>> {
        Ok(Some(vec![0.0]))
    }
}

struct Origin;
impl RootFinder<Rational> for Origin {
    fn root(
        &self,
        _: usize,
        _: usize,
        a: &[Rational],
        _: Rational,
    ) -> Result<Option<Vec<Rational>>> {
        Ok(Some(vec![Rational::zero(); a.len()]))
    }
}

#[test]
fn root_finders_are_pluggable() {
    let net = three_layers();
    let x = [0.7, 0.3, 1.1];
    let opts = FullBackwardSettings::default();
    let err = full_backward(&net, &x, 0, &opts, &Failing).unwrap_err();
    assert_eq!(err.to_string(), "no solver for layer 2");
    let err = full_backward(&net, &x, 0, &opts, &Narrow).unwrap_err();
    assert!(err.to_string().contains("1 values"), "{err}");

    // A finder object-safe behind a reference, in exact arithmetic: the origin as every
    // root equals rule 0.
    let ex = net.to_exact();
    let xr = exact(&x);
    let finder: &dyn RootFinder<Rational> = &Origin;
    let a = full_backward(&ex, &xr, 0, &opts, finder).unwrap();
    let b = full_backward(
        &ex,
        &xr,
        0,
        &opts,
        &RuleRoots::new(&ex, &settings(Rule::Zero)),
    )
    .unwrap();
    assert_eq!(a, b);
}

#[test]
fn gradient_is_the_upper_slope_times_the_weights() {
    // For every expanded neuron, g_j = c_j w_j with c_j the slope of the upper relevance
    // at the root's image (or 0 when the neuron is inactive there), and the frozen
    // function at the root is the remainder.
    let net = three_layers().to_exact();
    let x = exact(&[0.7, 0.3, 1.1]);
    let s = settings(Rule::Gamma(0.5));
    let finder = RuleRoots::new(&net, &s);
    let opts = FullBackwardSettings {
        face_tolerance: 0.0,
        ..FullBackwardSettings::default()
    };
    let fb = full_backward(&net, &x, 1, &opts, &finder).unwrap();
    let mut expanded = 0;
    for (index, layer) in fb.layers.iter().enumerate() {
        for (j, n) in layer.neurons.iter().enumerate() {
            let Expansion::Root {
                point, gradient, ..
            } = &n.expansion
            else {
                continue;
            };
            expanded += 1;
            let up = upper_relevance(&net, index, point, 1, &opts, &finder).unwrap();
            assert_eq!(up.relevance[j], n.remainder);
            let w = net.layers()[index].affine.row(j).dense();
            let ratio_ok = gradient.iter().all(Scalar::is_zero)
                || gradient
                    .iter()
                    .zip(w.iter())
                    .all(|(g, wi)| *g == up.slope[j].clone() * wi.clone());
            assert!(ratio_ok, "layer {index} neuron {j}");
        }
    }
    assert!(expanded >= 3, "{expanded}");
}
