//! Unit tests of full-backward DTD: agreement with train-free DTD on one layer, f64 against
//! exact rationals, the side of a face, remainders, the cost limit and pluggable root finders.

use super::*;
use crate::dtd::{explain, BiasMode, DtdSettings, Rule};
use crate::error::{invalid, Error, Result};
use crate::exact::scalar::dot;
use crate::exact::{Rational, Scalar};
use crate::model::forward::forward;
use crate::model::ir::dense_layer;
use crate::model::{Model, Network};

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
    // With a ReLU on the output, the explained output's rule root lies exactly on its face
    // (z+ with the bias ignored: z_0(ã) = z_0(a) − R_0 = 0). f64 computes that zero exactly
    // too, from the root plane rather than from the rounded point, so both take the active
    // side facing x without any tolerance.
    let mut layers = three_layers().layers().to_vec();
    layers[2].relu = true;
    let net = Network::new(layers).unwrap();
    let x = [0.7, 0.3, 1.1];
    let s = settings(Rule::ZPlus);
    let opts = FullBackwardSettings::default();
    let fb = full_backward(&net, &x, 0, &opts, &RuleRoots::new(&net, &s)).unwrap();
    let ex = net.to_exact();
    let fe = full_backward(&ex, &exact(&x), 0, &opts, &RuleRoots::new(&ex, &s)).unwrap();
    assert!(fb.output > 0.0);
    let top = &fb.layers[2].neurons[0];
    let Expansion::Root { gradient, .. } = &top.expansion else {
        panic!("the explained output is expanded: {top:?}");
    };
    assert_eq!(*gradient, *net.layers()[2].affine.row(0).dense());
    // Exactly on the face: nothing is left at the root.
    assert_eq!(top.remainder, 0.0);
    assert!(fe.layers[2].neurons[0].remainder.is_zero());
    for (a, b) in fb.input_relevance().iter().zip(fe.input_relevance()) {
        assert!(
            (a - b.to_f64()).abs() <= 1e-12 * (1.0 + a.abs()),
            "{a} vs {b}"
        );
    }
    assert_eq!(fb.evaluations, fe.evaluations);
    // The error bounds settle every decision: the f64 explanation, bit for bit.
    let model = Model::new(net);
    match full_backward_decided(&model, &x, Some(0), &s, &opts).unwrap() {
        Decided::Float(d) => assert_eq!(d, fb),
        other => panic!("fell back to rationals: {other:?}"),
    }
}

/// z+ with the layer's bias in the denominator as it is (`--bias plain`) puts the root of a
/// neuron with a negative bias past its face: for `w = (1, −1)`, `b = −4e-10` at `x = (2, 1)`,
/// `z(ã) = b (1 + b) / (2 + b) ≈ −2e-10` while `Σ|w ã| + |b| ≈ 2`, so the root lies
/// genuinely 1e-10 (relative) off its face, on the inactive side. A tolerance of 1e-9 would
/// count it as on the face; by default it is off the face, in every arithmetic.
#[test]
fn a_root_just_off_its_face_is_off_it() {
    let b = -4e-10;
    let net = Network::new(vec![
        dense_layer(1, 2, vec![1.0, -1.0], vec![b], true).unwrap()
    ])
    .unwrap();
    let x = [2.0, 1.0];
    let mut s = settings(Rule::ZPlus);
    s.bias = BiasMode::Plain;
    let exact_faces = FullBackwardSettings::default();
    let loose = FullBackwardSettings {
        face_tolerance: Some(1e-9),
        ..FullBackwardSettings::default()
    };
    let ex = net.to_exact();
    let xr = exact(&x);
    let w = ex.layers()[0].affine.row(0).dense();
    let expanded = |fb: &FullBackward<Rational>| match &fb.layers[0].neurons[0].expansion {
        Expansion::Root {
            point, gradient, ..
        } => (point.clone(), gradient.clone()),
        other => panic!("the output is expanded: {other:?}"),
    };

    let fe = full_backward(&ex, &xr, 0, &exact_faces, &RuleRoots::new(&ex, &s)).unwrap();
    let (point, gradient) = expanded(&fe);
    let br = Rational::from_f64(b);
    let z = dot(&w, &point) + br.clone();
    let scale = w
        .iter()
        .zip(&point)
        .fold(Scalar::abs(&br), |acc, (wi, pi)| {
            acc + Scalar::abs(&(wi * pi))
        });
    let off = (z / scale).to_f64();
    assert!((-2e-10..-0.5e-10).contains(&off), "{off}");
    // Off the face, inactive: no gradient, nothing passed, nothing left at the root.
    assert!(gradient.iter().all(Scalar::is_zero));
    assert!(fe.input_relevance().iter().all(Scalar::is_zero));
    assert!(fe.remainder().is_zero());
    // With the tolerance, on the face: the active side facing x, gradient w.
    let (_, gradient) =
        expanded(&full_backward(&ex, &xr, 0, &loose, &RuleRoots::new(&ex, &s)).unwrap());
    assert_eq!(gradient, *w);

    // f64 (the sign of the computed point's exact pre-activation) and the error-bounded run
    // (whose bounds settle it: no fallback) take the same sides.
    let model = Model::new(net.clone());
    let f64_gradient = |opts: &FullBackwardSettings| {
        let fb = full_backward(&net, &x, 0, opts, &RuleRoots::new(&net, &s)).unwrap();
        let Decided::Float(fd) = full_backward_decided(&model, &x, Some(0), &s, opts).unwrap()
        else {
            panic!("the bounds settle a root 1e-10 off its face");
        };
        assert_eq!(fd, fb);
        match &fb.layers[0].neurons[0].expansion {
            Expansion::Root { gradient, .. } => gradient.clone(),
            other => panic!("the output is expanded: {other:?}"),
        }
    };
    assert_eq!(f64_gradient(&exact_faces), vec![0.0, 0.0]);
    assert_eq!(f64_gradient(&loose), vec![1.0, -1.0]);
}

#[test]
fn rule_roots_give_their_step_and_whether_they_lie_on_the_root_plane() {
    let net = three_layers().to_exact();
    let a = exact(&[0.7, 0.3, 1.1]);
    let r = Rational::from_f64(0.375);
    // Neuron 0 of layer 1 has the bias 0.125.
    let w = net.layers()[0].affine.row(0).dense();
    for (rule, bias, stabilizer, on_plane) in [
        (Rule::Z, BiasMode::Ignore, 0.0, true),
        (Rule::ZPlus, BiasMode::Ignore, 0.0, true),
        (Rule::Gamma(0.5), BiasMode::Ignore, 0.0, true),
        (Rule::WSquare, BiasMode::Ignore, 0.0, true),
        (
            Rule::ZBox { lo: -1.0, hi: 1.0 },
            BiasMode::Include,
            0.0,
            true,
        ),
        (Rule::Z, BiasMode::Include, 0.0, false),
        (Rule::ZPlus, BiasMode::Plain, 0.0, false),
        (Rule::ZPlus, BiasMode::Ignore, 0.01, false),
        (Rule::Zero, BiasMode::Ignore, 0.0, false),
    ] {
        let mut s = settings(rule);
        s.bias = bias;
        s.stabilizer = stabilizer;
        let found = RuleRoots::new(&net, &s)
            .found(0, 0, &a, r.clone())
            .unwrap()
            .unwrap();
        let what = format!("{rule} {bias:?} {stabilizer}");
        let step: Vec<Rational> = a.iter().zip(&found.point).map(|(ai, pi)| ai - pi).collect();
        assert_eq!(found.step.as_ref(), Some(&step), "{what}");
        assert_eq!(found.on_root_plane, on_plane, "{what}");
        assert_eq!(
            dot(&w, &found.point) == dot(&w, &a) - r.clone(),
            on_plane,
            "{what}"
        );
    }
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
    let opts = FullBackwardSettings::default();
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
