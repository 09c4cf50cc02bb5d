//! Linear programs and certificates of networks with Clip, LeakyRelu and PRelu activations.
//!
//! - every certificate of a certified audit is accepted by the checker, and agrees with the
//!   audit's verdicts: a rule root judged valid is never certified to have no valid root; over
//!   the run both kinds (a valid root, none) are written; on a fixed network whose root planes
//!   are points, the certified answer is the audit's verdict, with a valid root at its known
//!   distance and an infeasibility certificate;
//! - the rows of a region's program are the region: with the program's variables set from a
//!   point (its moves from the centre, each neuron's pre-activation and its output on the
//!   centre's pieces), every row and bound holds exactly if and only if the point is in the
//!   region by exact membership; the centre itself, points that keep its pattern and points
//!   that change it are tried;
//! - constraint generation and the full layered programs agree: the same root questions get
//!   the same answer (a valid root or none), and overlapping distance intervals, and most
//!   questions are decided by both;
//! - facet and Chebyshev questions: every certificate is accepted; a facet witness lies in
//!   the region of every other constraint but outside the named one, by exact membership; a
//!   Clip neuron between two bounds (two constraints) gets no facet answer; over the run
//!   one-face questions mostly get a certificate, and on a fixed region every facet and the
//!   one redundant constraint get theirs;
//! - a certificate checked against a model with one slope or one Clip bound changed (and the
//!   certificate's fingerprint changed to match) is refused where its evidence no longer
//!   holds: a point that left the region, multipliers whose rows changed.

mod util;

use dtdcert::audit::{
    audit_sample_certified, AuditSettings, CertifiedAnswer, CertifySettings, DomainBox,
};
use dtdcert::check::{check, Claim, Problem};
use dtdcert::dtd::{DtdSettings, Rule};
use dtdcert::exact::dyadic::Dyadic;
use dtdcert::exact::program::{LinearProgram, RowKind};
use dtdcert::exact::{Rational, Scalar};
use dtdcert::lp::certify::{Answer, Certifier, QuestionRelevance, RegionCache, RegionQuestion};
use dtdcert::lp::lpfile::{parse_lp, to_lp_string};
use dtdcert::model::forward::forward;
use dtdcert::model::ir::dense_layer;
use dtdcert::model::{Activation, Layer, Model, Network};
use dtdcert::region::problem::{root_program, Domain, Norm, RegionView, Tightening};
use dtdcert::region::{
    constraint_labels, membership, signed_slacks_exact, trace_and_pattern, Centre, Membership,
    Pattern,
};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use std::cell::Cell;
use util::activations::{mixed_network_and_input, weight, WIDTHS};

/// A runner of `cases` cases, for properties counted over the whole run.
fn runner(cases: u32) -> TestRunner {
    TestRunner::new(ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    })
}

fn certify_all(problem: Problem) -> Option<CertifySettings> {
    Some(CertifySettings {
        problem,
        all: true,
        model_path: None,
        inputs_path: None,
    })
}

fn exact(v: &[f64]) -> Vec<Rational> {
    v.iter().map(|&x| Rational::from_f64(x)).collect()
}

/// The value of every variable of the region's program (seen from 0-based layer `m`,
/// centred on `a`) at the point `y`: `p` and `n` from `y − a`, and each named hidden variable
/// from the network linearised on the centre's pattern (`u`: a pre-activation, `h`: an
/// output).
fn assignment(
    model: &Model,
    pattern: &Pattern,
    lp: &LinearProgram,
    m: usize,
    a: &[Rational],
    y: &[Rational],
) -> Vec<Rational> {
    let net = model.exact();
    let layers = net.layers().len();
    let (mut pre, mut post) = (vec![Vec::new(); layers], vec![Vec::new(); layers]);
    let mut h = y.to_vec();
    let mut z = Vec::new();
    for (k, layer) in net.layers().iter().enumerate().skip(m) {
        layer.affine.apply_into(&h, &mut z);
        pre[k] = z.clone();
        h = pattern.pass(k, layer, z.clone());
        post[k] = h.clone();
    }
    let at = |name: &str, from: &[Vec<Rational>]| -> Rational {
        let (k, j) = name[1..].split_once('_').unwrap();
        let (k, j): (usize, usize) = (k.parse().unwrap(), j.parse().unwrap());
        from[k - 1][j].clone()
    };
    lp.names
        .iter()
        .map(|name| {
            let i = || name[1..].parse::<usize>().unwrap();
            match &name[..1] {
                "p" => std::cmp::max(&y[i()] - &a[i()], Rational::zero()),
                "n" => std::cmp::max(&a[i()] - &y[i()], Rational::zero()),
                "u" => at(name, &pre),
                "h" => at(name, &post),
                _ => panic!("unexpected variable {name}"),
            }
        })
        .collect()
}

/// Whether every row and bound of `lp` holds at `values`, exactly.
fn satisfies(lp: &LinearProgram, values: &[Rational]) -> bool {
    let bounds = values.iter().enumerate().all(|(v, value)| {
        (lp.lower[v] == f64::NEG_INFINITY || *value >= Rational::from_f64(lp.lower[v]))
            && (lp.upper[v] == f64::INFINITY || *value <= Rational::from_f64(lp.upper[v]))
    });
    bounds
        && lp.rows.iter().all(|row| {
            let lhs = row.coeffs.iter().fold(Rational::zero(), |s, &(v, c)| {
                s + Rational::from_f64(c) * values[v].clone()
            });
            let rhs = row.rhs.to_rational();
            match row.kind {
                RowKind::Eq => lhs == rhs,
                RowKind::Ge => lhs >= rhs,
                RowKind::Le => lhs <= rhs,
            }
        })
}

/// Every certificate of a certified audit (every root, `exists` or nearest) is accepted, and
/// none says that no valid root exists where the audit judged the rule root valid. Over the
/// run, certificates of a valid root and of none are both written and checked.
#[test]
fn certificates_check_and_agree_with_the_audit() {
    let mut runner = runner(48);
    let (found, infeasible) = (Cell::new(0usize), Cell::new(0usize));
    let strategy = (
        mixed_network_and_input(),
        prop_oneof![Just(Rule::ZPlus), Just(Rule::WSquare), Just(Rule::Z)],
        prop_oneof![Just(Problem::Exists), Just(Problem::NearestL1)],
        any::<bool>(),
    );
    runner
        .run(&strategy, |((model, x), rule, problem, boxed)| {
            let settings = AuditSettings {
                dtd: DtdSettings {
                    rule,
                    ..DtdSettings::default()
                },
                certify: certify_all(problem),
                domain: boxed.then_some(DomainBox { lo: -0.5, hi: 0.5 }),
                ..AuditSettings::default()
            };
            let (record, certificates) =
                audit_sample_certified(&model, &settings, 0, &x, None).unwrap();
            for (name, cert) in &certificates {
                let back = serde_json::from_str(&serde_json::to_string(cert).unwrap()).unwrap();
                let acc = check(&model, &back);
                prop_assert!(acc.is_ok(), "{name}: {:?}", acc);
                match cert.claim {
                    Claim::Infeasible => infeasible.set(infeasible.get() + 1),
                    _ => found.set(found.get() + 1),
                }
            }
            for lr in &record.layers {
                for n in &lr.neurons {
                    let (Some(root), Some(c)) = (&n.root, &n.certified) else {
                        continue;
                    };
                    if root.valid {
                        prop_assert!(
                            !matches!(c.answer, CertifiedAnswer::NoValidRoot),
                            "layer {} neuron {}: a valid rule root, certified to have none",
                            lr.layer,
                            n.neuron
                        );
                    }
                    if let Some(file) = &c.certificate {
                        let cert = &certificates.iter().find(|(f, _)| f == file).unwrap().1;
                        let expected = match c.answer {
                            CertifiedAnswer::NoValidRoot => Claim::Infeasible,
                            _ if problem == Problem::Exists => Claim::Feasible,
                            _ => Claim::Optimal,
                        };
                        prop_assert_eq!(cert.claim, expected);
                    }
                }
            }
            Ok(())
        })
        .unwrap();
    eprintln!(
        "certificates: {} of a valid root, {} of none",
        found.get(),
        infeasible.get()
    );
    assert!(found.get() > 0 && infeasible.get() > 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// The region's program seen from each layer, at points of the region and off it: its
    /// rows hold exactly where exact membership says the point is inside.
    #[test]
    fn the_program_rows_hold_exactly_inside_the_region(
        (model, x) in mixed_network_and_input(),
        m in 0usize..2,
        moves in prop::collection::vec(prop::collection::vec(weight(), WIDTHS[1]), 1..6),
        scales in prop::collection::vec(0u32..16, 6),
    ) {
        let net = model.net();
        let trace = forward(model.exact(), &exact(&x));
        let pattern = Pattern::from_pre(model.exact(), &trace.pre);
        let a = trace.activations[m].clone();
        let Some(centre) = a.iter().map(Dyadic::from_rational).collect::<Option<Vec<_>>>() else {
            return Ok(());
        };
        let centre = Centre::from_exact(centre);
        let view = RegionView { net, pattern: &pattern, layer: m, centre: &centre, domain: Domain::Free };
        let (lp, _) = root_program(view, None, Norm::L1, Tightening::NONE);
        // The centre is inside.
        prop_assert!(satisfies(&lp, &assignment(&model, &pattern, &lp, m, &a, &a)));
        // The LP file states the same rows: names, coefficients and senses read back.
        let back = parse_lp(&to_lp_string(&lp, &[]).unwrap()).unwrap();
        prop_assert_eq!(&back.names, &lp.names);
        prop_assert_eq!(back.rows.len(), lp.rows.len());
        for (b, r) in back.rows.iter().zip(&lp.rows) {
            prop_assert_eq!(&b.name, &r.name);
            prop_assert_eq!(b.kind, r.kind);
            if !r.coeffs.is_empty() {
                prop_assert_eq!(&b.coeffs, &r.coeffs);
            }
        }
        for (d, &s) in moves.iter().zip(&scales) {
            // Moves from 2^-11 to 16 times a weight: small ones keep the pattern, large ones
            // change it.
            let t = Rational::from_f64(f64::powi(2.0, s as i32 - 11));
            let y: Vec<Rational> = a
                .iter()
                .zip(d)
                .map(|(c, &v)| c.clone() + t.clone() * Rational::from_f64(v))
                .collect();
            let inside = matches!(membership(model.exact(), &pattern, m, &y), Membership::Inside { .. });
            let holds = satisfies(&lp, &assignment(&model, &pattern, &lp, m, &a, &y));
            prop_assert_eq!(holds, inside, "layer {}, move {:?} × {}", m + 1, d, t.to_f64());
        }
    }
}

/// The facet question of constraint `(layer, neuron)` and the Chebyshev question, seen from
/// layer 1 in the box [−4, 4].
fn region_question(
    x: &[f64],
    problem: Problem,
    constraint: Option<(usize, usize)>,
) -> RegionQuestion {
    RegionQuestion {
        sample_index: 0,
        sample: x.to_vec(),
        layer: 1,
        neuron: None,
        relevance: None,
        domain: Domain::Box { lo: -4.0, hi: 4.0 },
        problem,
        constraint,
        centre: None,
    }
}

/// Over the run, facet questions with one face get a checked certificate (a facet or a
/// redundancy), not only refusals.
#[test]
fn facet_and_ball_certificates_check_and_witnesses_cross_only_their_face() {
    let mut runner = runner(24);
    let (certified, skipped) = (Cell::new(0usize), Cell::new(0usize));
    runner
        .run(&mixed_network_and_input(), |(model, x)| {
            let certifier = Certifier {
                model: &model,
                opts: Default::default(),
                model_path: None,
                inputs_path: None,
                cache: Default::default(),
            };
            let (_, pattern, _) = trace_and_pattern(&model, &x);
            let labels = constraint_labels(&pattern, 0);
            let ball = certifier.answer(&region_question(&x, Problem::Chebyshev, None));
            if let Some(cert) = &ball.certificate {
                prop_assert!(check(&model, cert).is_ok());
            }
            for (i, &(layer, neuron)) in labels.iter().enumerate() {
                let faces = labels.iter().filter(|&&l| l == (layer, neuron)).count();
                let facet = certifier.answer(&region_question(&x, Problem::Facet, Some((layer, neuron))));
                let Some(cert) = facet.certificate else {
                    if faces > 1 {
                        let is_refused = matches!(&facet.answer, Answer::Unknown { reason } if reason.contains("two constraints"));
                        prop_assert!(is_refused, "{:?}", facet.answer);
                    } else {
                        skipped.set(skipped.get() + 1);
                    }
                    continue;
                };
                prop_assert_eq!(faces, 1, "a facet answer for one of two faces");
                prop_assert!(check(&model, &cert).is_ok());
                certified.set(certified.get() + 1);
                if cert.claim == Claim::Facet {
                    let witness = exact(cert.point.as_ref().unwrap());
                    let slacks = signed_slacks_exact(model.exact(), &pattern, 0, &witness);
                    for (t, s) in slacks.iter().enumerate() {
                        prop_assert_eq!(s.is_negative(), t == i, "constraint {} of {:?}", t, labels);
                    }
                }
            }
            Ok(())
        })
        .unwrap();
    eprintln!(
        "one-face questions: {} certified, {} without a certificate",
        certified.get(),
        skipped.get()
    );
    // Without a certificate only where a solver fails: the exception.
    assert!(certified.get() > skipped.get());
}

/// The screened and the full programs answer the same root questions alike; over the run,
/// both decide (a root or none) on some questions, so the comparison is not only of two
/// unknowns.
#[test]
fn constraint_generation_agrees_with_the_full_programs() {
    let mut runner = runner(24);
    let (decided, unknown) = (Cell::new(0usize), Cell::new(0usize));
    let strategy = (
        mixed_network_and_input(),
        prop::collection::vec(weight(), WIDTHS[1]),
    );
    runner
        .run(&strategy, |((model, x), relevances)| {
            let certifier = |cache| Certifier {
                model: &model,
                opts: Default::default(),
                model_path: None,
                inputs_path: None,
                cache,
            };
            let (screened, full) = (
                certifier(RegionCache::default()),
                certifier(RegionCache::full_programs()),
            );
            let a = forward(model.net(), &x).activations[1].clone();
            for (j, r) in relevances.iter().enumerate() {
                let question = RegionQuestion {
                    sample_index: 0,
                    sample: x.clone(),
                    layer: 2,
                    neuron: Some(j % WIDTHS[2]),
                    relevance: Some(QuestionRelevance::Given(Rational::from_f64(*r))),
                    domain: Domain::of_layer(model.net(), 2, None),
                    problem: Problem::NearestL1,
                    constraint: None,
                    centre: Some(a.clone()),
                };
                let (s, f) = (screened.answer(&question), full.answer(&question));
                for c in [&s, &f] {
                    if let Some(cert) = &c.certificate {
                        prop_assert!(check(&model, cert).is_ok());
                    }
                }
                match (&s.answer, &f.answer) {
                    (
                        Answer::Found {
                            lower: Some(l1),
                            upper: Some(u1),
                            ..
                        },
                        Answer::Found {
                            lower: Some(l2),
                            upper: Some(u2),
                            ..
                        },
                    ) => {
                        prop_assert!(l1 <= u2 && l2 <= u1, "[{l1}, {u1}] and [{l2}, {u2}]");
                        decided.set(decided.get() + 1);
                    }
                    (Answer::None, Answer::None) => decided.set(decided.get() + 1),
                    (Answer::None, Answer::Found { .. }) | (Answer::Found { .. }, Answer::None) => {
                        prop_assert!(false, "{:?} and {:?}", s.answer, f.answer);
                    }
                    _ => unknown.set(unknown.get() + 1),
                }
            }
            Ok(())
        })
        .unwrap();
    eprintln!(
        "root questions: {} decided by both, {} not",
        decided.get(),
        unknown.get()
    );
    // Unknown only where a solver fails or a time limit passes: the exception.
    assert!(decided.get() > unknown.get());
}

/// `x ↦ LeakyRelu(α)(x)`, then `Clip(0, hi)(h + 1)`, then the identity: one neuron per layer.
fn leaky_then_clip(alpha: f64, hi: f64) -> Model {
    leaky_then_clip_from(alpha, 0.0, hi)
}

/// `x ↦ LeakyRelu(α)(x)`, then `Clip(lo, hi)(h + 1)`, then the identity.
fn leaky_then_clip_from(alpha: f64, lo: f64, hi: f64) -> Model {
    let layer = |bias: f64, relu: bool, activation: Activation| Layer {
        activation,
        ..dense_layer(1, 1, vec![1.0], vec![bias], relu).unwrap()
    };
    Model::new(
        Network::new(vec![
            layer(0.0, true, Activation::LeakyRelu { alpha }),
            layer(
                1.0,
                true,
                Activation::Clip {
                    lo: Some(lo),
                    hi: Some(hi),
                },
            ),
            layer(0.0, false, Activation::Relu),
        ])
        .unwrap(),
    )
}

/// The certified answer of the root question of layer 1's neuron at centre −1 with
/// relevance `r`, in the box [−4, 4]: the plane is the single point `−1 − r`.
fn answer_at(model: &Model, r: f64) -> (Answer, Option<dtdcert::check::Certificate>) {
    let certifier = Certifier {
        model,
        opts: Default::default(),
        model_path: None,
        inputs_path: None,
        cache: Default::default(),
    };
    let question = RegionQuestion {
        sample_index: 0,
        sample: vec![-1.0],
        layer: 1,
        neuron: Some(0),
        relevance: Some(QuestionRelevance::Given(Rational::from_f64(r))),
        domain: Domain::Box { lo: -4.0, hi: 4.0 },
        problem: Problem::Exists,
        constraint: None,
        centre: Some(vec![-1.0]),
    };
    let certified = certifier.answer(&question);
    (certified.answer, certified.certificate)
}

/// At the centre −1 the first neuron is below 0 (output `−α`) and the second between 0 and
/// `hi` (`1 − α`). With α = 1/2 the root −3/2 gives the second neuron 1/4, inside; the root
/// −5/2 gives −1/4, outside. A certificate checked against the same network with α = 3/4
/// (the root −3/2 gives −1/8), with `hi` = 3/8 (the centre's second neuron, 1/2, is then
/// above `hi`: its piece flips) or with α = 1/4 (the root −5/2 gives 3/8, inside) no longer
/// holds, and is refused once its fingerprint names that network.
#[test]
fn certificates_are_refused_for_a_changed_slope_or_a_flipped_piece() {
    let model = leaky_then_clip(0.5, 6.0);
    let tampered = |cert: &dtdcert::check::Certificate, other: &Model| {
        let mut cert = cert.clone();
        cert.model.fingerprint = other.fingerprint().to_string();
        check(other, &cert)
    };
    let (answer, feasible) = answer_at(&model, 0.5);
    assert!(matches!(answer, Answer::Found { .. }), "{answer:?}");
    let feasible = feasible.unwrap();
    assert_eq!(feasible.claim, Claim::Feasible);
    assert!(check(&model, &feasible).is_ok());
    for other in [leaky_then_clip(0.75, 6.0), leaky_then_clip(0.5, 0.375)] {
        assert!(
            tampered(&feasible, &other).is_err(),
            "{}",
            other.net().describe()
        );
        // The checker is right to refuse: there the plane holds no valid root.
        let (answer, cert) = answer_at(&other, 0.5);
        assert!(matches!(answer, Answer::None), "{answer:?}");
        assert!(check(&other, &cert.unwrap()).is_ok());
    }
    let (answer, infeasible) = answer_at(&model, 1.5);
    assert!(matches!(answer, Answer::None), "{answer:?}");
    let infeasible = infeasible.unwrap();
    assert_eq!(infeasible.claim, Claim::Infeasible);
    assert!(check(&model, &infeasible).is_ok());
    let other = leaky_then_clip(0.25, 6.0);
    assert!(tampered(&infeasible, &other).is_err());
    assert!(matches!(answer_at(&other, 1.5).0, Answer::Found { .. }));
}

/// The certified audit of `leaky_then_clip_from(1/2, −1, 4)` at x = 1/2 under z+, in the box
/// [−4, 4]: every value is positive and every weight 1, so z+ passes each relevance whole to
/// the one input, and every neuron's relevance is the output, 3/2. Each layer input is one
/// number, so each root plane is one point, the rule root: layer 1's at 1/2 − 3/2 = −1, on
/// the other side of the LeakyRelu from the sample (no valid root: an infeasibility
/// certificate); layer 2's at h₁ = −1, where the Clip's pre-activation is 0, strictly between
/// −1 and 4, with no domain above layer 1 (a valid root, at distance exactly 3/2 from
/// h₁ = 1/2). So the certified answer is the audit's verdict, neuron for neuron.
#[test]
fn a_fixed_network_gets_a_valid_root_and_an_infeasibility_certificate() {
    let model = leaky_then_clip_from(0.5, -1.0, 4.0);
    for problem in [Problem::Exists, Problem::NearestL1] {
        let settings = AuditSettings {
            dtd: DtdSettings {
                rule: Rule::ZPlus,
                ..DtdSettings::default()
            },
            certify: certify_all(problem),
            domain: Some(DomainBox { lo: -4.0, hi: 4.0 }),
            ..AuditSettings::default()
        };
        let (record, certificates) =
            audit_sample_certified(&model, &settings, 0, &[0.5], None).unwrap();
        for (name, cert) in &certificates {
            assert!(check(&model, cert).is_ok(), "{name}");
        }
        let neuron = |layer: usize| {
            let n = &record.layers[layer - 1].neurons[0];
            let cert = n
                .certified
                .as_ref()
                .unwrap_or_else(|| panic!("layer {layer}: {n:?}"));
            let file = cert.certificate.as_ref().unwrap();
            let claim = certificates
                .iter()
                .find(|(f, _)| f == file)
                .unwrap()
                .1
                .claim;
            (n, cert, claim)
        };
        let (n, cert, claim) = neuron(1);
        assert!(!n.root.as_ref().unwrap().valid, "{n:?}");
        assert_eq!(cert.answer, CertifiedAnswer::NoValidRoot);
        assert_eq!(claim, Claim::Infeasible);
        let (n, cert, claim) = neuron(2);
        assert!(n.root.as_ref().unwrap().valid, "{n:?}");
        assert_eq!(cert.answer, CertifiedAnswer::ValidRootExists);
        if problem == Problem::Exists {
            assert_eq!(claim, Claim::Feasible);
        } else {
            assert_eq!(claim, Claim::Optimal);
            let (lower, upper) = (cert.distance_lower.unwrap(), cert.distance_upper.unwrap());
            // The multipliers' safe bound may fall short of the optimum by the margins the
            // certifier moves the dual rows by (at most 1e-5 each, one row here).
            assert!((1.5 - 1e-4..=1.5).contains(&lower), "[{lower}, {upper}]");
            assert_eq!(upper, 1.5);
        }
        for lr in &record.layers {
            for n in &lr.neurons {
                if let (Some(root), Some(c)) = (&n.root, &n.certified) {
                    let found = c.answer == CertifiedAnswer::ValidRootExists;
                    assert_eq!(found, root.valid, "layer {} {c:?}", lr.layer);
                }
            }
        }
    }
}

/// `(x₁, x₂) ↦ LeakyRelu(1/4)(x)`, then `Clip(−1, hi)` of `x₁ + x₂` and `x₁ − x₂`, then their
/// sum.
fn two_faces(hi: Option<f64>) -> Model {
    let dense = |rows, cols, w: Vec<f64>, relu, activation| Layer {
        activation,
        ..dense_layer(rows, cols, w, vec![0.0; rows], relu).unwrap()
    };
    Model::new(
        Network::new(vec![
            dense(
                2,
                2,
                vec![1.0, 0.0, 0.0, 1.0],
                true,
                Activation::LeakyRelu { alpha: 0.25 },
            ),
            dense(
                2,
                2,
                vec![1.0, 1.0, 1.0, -1.0],
                true,
                Activation::Clip { lo: Some(-1.0), hi },
            ),
            dense(1, 2, vec![1.0, 1.0], false, Activation::Relu),
        ])
        .unwrap(),
    )
}

/// The region of x = (1/2, 1/2) seen from layer 1 in the box [−4, 4]: x₁ ≥ 0, x₂ ≥ 0,
/// x₁ + x₂ ≥ −1 and x₁ − x₂ ≥ −1 (the LeakyRelu on its positive piece is the identity).
/// x₁ + x₂ ≥ −1 follows from the first two (a redundancy certificate); each other one is a
/// facet, violated alone at (−1/2, 0), (0, −1/2) and (0, 2) (a witness that crosses only
/// its face). With an upper bound 4 on the Clip, its neurons have two constraints each and
/// no facet answer.
#[test]
fn a_fixed_region_gets_facet_and_redundancy_certificates() {
    let x = [0.5, 0.5];
    let model = two_faces(None);
    let certifier = Certifier {
        model: &model,
        opts: Default::default(),
        model_path: None,
        inputs_path: None,
        cache: Default::default(),
    };
    let (_, pattern, _) = trace_and_pattern(&model, &x);
    let labels = constraint_labels(&pattern, 0);
    assert_eq!(labels, vec![(1, 0), (1, 1), (2, 0), (2, 1)]);
    let ball = certifier.answer(&region_question(&x, Problem::Chebyshev, None));
    assert!(
        matches!(ball.answer, Answer::Ball { .. }),
        "{:?}",
        ball.answer
    );
    assert!(check(&model, &ball.certificate.unwrap()).is_ok());
    for (i, &label) in labels.iter().enumerate() {
        let facet = certifier.answer(&region_question(&x, Problem::Facet, Some(label)));
        let redundant = label == (2, 0);
        assert!(
            matches!(facet.answer, Answer::Facet { redundant: r } if r == redundant),
            "{label:?}: {:?}",
            facet.answer
        );
        let cert = facet.certificate.unwrap();
        assert!(check(&model, &cert).is_ok(), "{label:?}");
        if redundant {
            assert_eq!(cert.claim, Claim::Redundant);
            continue;
        }
        assert_eq!(cert.claim, Claim::Facet);
        let witness = exact(cert.point.as_ref().unwrap());
        let slacks = signed_slacks_exact(model.exact(), &pattern, 0, &witness);
        for (t, s) in slacks.iter().enumerate() {
            assert_eq!(s.is_negative(), t == i, "constraint {t} at {witness:?}");
        }
    }
    let model = two_faces(Some(4.0));
    let certifier = Certifier {
        model: &model,
        ..certifier
    };
    for label in [(2, 0), (2, 1)] {
        let facet = certifier.answer(&region_question(&x, Problem::Facet, Some(label)));
        assert!(
            matches!(&facet.answer, Answer::Unknown { reason } if reason.contains("two constraints")),
            "{:?}",
            facet.answer
        );
    }
}
