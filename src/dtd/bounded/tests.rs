use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::step::{product_rounding, up, Direction, TINY};
use super::*;
use crate::dtd::roots::RootRule;
use crate::dtd::rules::BiasMode;
use crate::exact::{Rational, Scalar};
use crate::model::ir::dense_layer;
use crate::model::Affine;

/// `|value − exact| <= bound`, in rationals.
fn encloses(value: f64, bound: f64, exact: &Rational) -> bool {
    bound.is_finite() && (Rational::from_f64(value) - exact).abs() <= Rational::from_f64(bound)
}

fn one_layer(weights: Vec<f64>, bias: f64) -> Affine {
    let n = weights.len();
    dense_layer(1, n, weights, vec![bias], false)
        .unwrap()
        .affine
}

#[test]
fn rounded_up_bounds_grow_and_zeros_are_decided_by_operands() {
    for x in [0.0, TINY, 1e-300, 1.0, 3.5e200] {
        assert!(up(x) > x);
    }
    assert!(up(f64::NAN).is_nan(), "no bound stays no bound");
    assert_eq!(product_rounding(0.0, 3.0, 0.0), 0.0);
    assert!(
        product_rounding(1e-200, 1e-200, 0.0) > 0.0,
        "an underflowed product"
    );
    // An exact 0 input keeps an exact direction; a tiny error on it is not lost to underflow.
    let gamma = Direction::new(&RootRule::<f64>::new(Rule::Gamma(0.1)));
    assert_eq!(gamma.at(1.0, 0.0, 0.0), (0.0, 0.0));
    assert!(gamma.at(1.0, 0.0, 1e-320).1 >= 1e-320);
}

/// Each rule's direction at the ends of an input's interval lies within its bound of the
/// f64 direction, in rationals; `1 + γ` is exact for γ = 1 and rounded for γ = 0.1.
#[test]
fn directions_enclose_the_exact_direction() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let rules = [
        Rule::Z,
        Rule::ZPlus,
        Rule::Gamma(0.1),
        Rule::Gamma(1.0),
        Rule::WSquare,
        Rule::ZBox { lo: -0.3, hi: 0.7 },
    ];
    for rule in rules {
        let root_rule = RootRule::<f64>::new(rule);
        let dir = Direction::new(&root_rule);
        if let Direction::Gamma { c_err, .. } = dir {
            assert_eq!(c_err == 0.0, rule == Rule::Gamma(1.0), "{rule}");
        }
        let exact_rule = RootRule::<Rational>::new(rule);
        let exact_c = match rule {
            Rule::Gamma(g) => Rational::one() + Rational::from_f64(g),
            _ => Rational::one(),
        };
        for _ in 0..200 {
            let w: f64 = rng.random_range(-1.0..1.0);
            let a: f64 = rng.random_range(-2.0..2.0);
            let a_err = [0.0, 1e-12, 0.5][rng.random_range(0..3)];
            let (v, v_err) = dir.at(w, a, a_err);
            for end in [a - a_err, a + a_err] {
                let (wr, ar) = (Rational::from_f64(w), Rational::from_f64(a));
                // The end of the interval, exactly: a ± a_err need not be an f64.
                let exact_a = if end < a {
                    ar.clone() - Rational::from_f64(a_err)
                } else {
                    ar + Rational::from_f64(a_err)
                };
                let nonneg = !wr.is_negative();
                let exact = match rule {
                    Rule::Z => exact_a,
                    Rule::ZPlus if nonneg => exact_a,
                    Rule::ZPlus => Rational::zero(),
                    Rule::Gamma(_) if nonneg => exact_a * exact_c.clone(),
                    Rule::Gamma(_) => exact_a,
                    Rule::WSquare => wr,
                    Rule::ZBox { lo, hi } => {
                        exact_a - Rational::from_f64(if nonneg { lo } else { hi })
                    }
                    _ => unreachable!(),
                };
                assert!(encloses(v, v_err, &exact), "{rule}: {w} {a} ± {a_err}");
            }
        }
        // The bias terms: within their bound of the exact term.
        for bias in [BiasMode::Ignore, BiasMode::Include, BiasMode::Plain] {
            for _ in 0..50 {
                let b: f64 = rng.random_range(-1.0..1.0) * 10f64.powi(rng.random_range(-3..3));
                let beta = root_rule.beta(&b, bias);
                let exact = exact_rule.beta(&Rational::from_f64(b), bias);
                let err = beta_error(&root_rule, b, bias, beta);
                assert!(encloses(beta, err, &exact), "{rule} {bias:?} b = {b}");
            }
        }
    }
}

/// The step of one neuron with input `a ± a_err` and relevance `r`, as the recursion runs it:
/// the outcome with its root, and the root's bounds.
fn step_of(
    affine: &Affine,
    a: &[f64],
    a_err: &[f64],
    r: f64,
    settings: &DtdSettings,
) -> Option<(RootOutcome<f64>, Vec<f64>)> {
    let layer = RootLayer::new(affine, settings.rule, settings);
    let mut lower = vec![0.0; a.len()];
    let mut sums = LowerSums::new(a.len(), affine.out_dim());
    let mut passed = 0.0;
    let (mut point, mut errors) = (Vec::new(), Vec::new());
    let outcome = layer.neuron(
        0,
        (a, a_err),
        (r, 0.0),
        (&mut lower, Some(&mut sums), &mut passed),
        Some((&mut point, &mut errors)),
    )?;
    Some(match outcome {
        RootOutcome::Root { t, .. } => (RootOutcome::Root { point, t }, errors),
        none => (none, errors),
    })
}

/// A denominator whose bound straddles the threshold leaves the branch in doubt; below it
/// by more than its bound, certainly no root; clearly above it, a root.
#[test]
fn a_denominator_at_the_threshold_is_in_doubt() {
    let settings = DtdSettings {
        rule: Rule::Z,
        ..DtdSettings::default()
    };
    let affine = one_layer(vec![1.0, 1.0], 0.0);
    let at = settings.denominator_threshold / 2.0;
    assert_eq!(
        step_of(&affine, &[at, at], &[1e-20, 0.0], 1.0, &settings),
        None
    );
    assert_eq!(
        step_of(&affine, &[at / 2.0, at], &[1e-20, 0.0], 1.0, &settings),
        Some((RootOutcome::None(NoRoot::SmallDenominator), Vec::new()))
    );
    let (outcome, errors) = step_of(&affine, &[0.5, 0.25], &[1e-20, 0.0], 1.0, &settings).unwrap();
    assert!(matches!(outcome, RootOutcome::Root { .. }));
    assert!(errors.iter().all(|&e| e > 0.0 && e < 1e-15), "{errors:?}");
}

/// With a stabiliser, the branch on the sign of the denominator is taken on the exact sign:
/// a sum within its bound of 0 is in doubt.
#[test]
fn the_stabiliser_s_sign_is_the_exact_sign() {
    let settings = DtdSettings {
        rule: Rule::Z,
        stabilizer: 1.0,
        ..DtdSettings::default()
    };
    let affine = one_layer(vec![1.0, -1.0], 0.0);
    assert_eq!(
        step_of(&affine, &[0.5, 0.5], &[1e-20, 0.0], 1.0, &settings),
        None
    );
    // An exact 0 (every product is): the sign is +1, as sign(0) = +1 says, so `d = ε`.
    let (outcome, _) = step_of(&affine, &[0.0, 0.0], &[0.0, 0.0], 1.0, &settings).unwrap();
    let RootOutcome::Root { t, .. } = outcome else {
        panic!("a root: {outcome:?}");
    };
    assert_eq!(t, 1.0);
}
