//! Identity neurons (outputs without activation that copy one input with weight exactly 1 and
//! bias exactly 0, beside what their layer computes: values carried for a residual
//! connection) are no neurons: on random small networks with carried copies, under every
//! rule, the exact and the f64 explanation, the bounded f64 one and full-backward DTD pass
//! each identity's relevance whole to the input it copies, leave nothing unresolved there and
//! give it no root, while every other neuron's step is the rule's own; and the audit records
//! identities as neurons without a root, by default and with `--exact` alike.

mod util;

use dtdcert::audit::{audit_sample, AuditSettings};
use dtdcert::dtd::bounded::{explain_bounded, Keep};
use dtdcert::dtd::full_backward::{full_backward, Expansion, FullBackwardSettings, RuleRoots};
use dtdcert::dtd::{explain, layer_step, DtdSettings, NoRoot, RootOutcome, Rule};
use dtdcert::exact::{Rational, Scalar};
use dtdcert::model::forward::forward;
use dtdcert::model::ir::{Affine, Layer, Sparse};
use dtdcert::model::{Model, Network};
use dtdcert::region::trace_with_errors;
use proptest::prelude::*;
use util::verdicts::verdicts;
use util::{mlp_with_tails_and_pools, to_exact, weight, with_copies};

/// A random MLP with carried copies (and dense tails and max pooling) and an input for it.
fn carried_and_input() -> impl Strategy<Value = (Model, Vec<f64>)> {
    mlp_with_tails_and_pools(1..=4, 1..=4, 1..=3, weight).prop_flat_map(|net| {
        let d = net.input_dim();
        (Just(Model::new(net)), prop::collection::vec(weight(), d))
    })
}

fn rules() -> impl Strategy<Value = Rule> {
    prop_oneof![
        Just(Rule::Zero),
        Just(Rule::Z),
        Just(Rule::ZPlus),
        Just(Rule::Gamma(0.25)),
        Just(Rule::WSquare),
        Just(Rule::ZBox { lo: -1.0, hi: 1.0 }),
        Just(Rule::Epsilon(0.01)),
        Just(Rule::AlphaBeta {
            alpha: 1.0,
            beta: 0.0
        }),
        Just(Rule::Flat),
    ]
}

fn settings(rule: Rule) -> DtdSettings {
    DtdSettings {
        rule,
        stabilizer: 1e-6,
        ..DtdSettings::default()
    }
}

/// The layer's step with and without the identities' relevances: the identities of a layer,
/// each passing its relevance whole, account for all of the difference, and each is rootless
/// with nothing unresolved.
fn check_layer<T: Scalar + std::fmt::Debug>(
    layer: &Layer<T>,
    a: &[T],
    upper: &[T],
    rule: Rule,
    settings: &DtdSettings,
    exact: bool,
) -> Result<(), TestCaseError> {
    let identities = layer.identities();
    let step = layer_step(layer, a, upper, rule, settings, true);
    let others: Vec<T> = upper
        .iter()
        .zip(&identities)
        .map(|(r, id)| match id {
            Some(_) => T::zero(),
            None => r.clone(),
        })
        .collect();
    let without = layer_step(layer, a, &others, rule, settings, true);
    let mut expected = without.lower.clone();
    for (j, id) in identities.iter().enumerate() {
        let n = &step.neurons[j];
        match id {
            Some(i) => {
                expected[*i] = expected[*i].clone() + upper[j].clone();
                prop_assert!(n.unresolved.is_zero());
                let why = if upper[j].is_zero() {
                    NoRoot::ZeroRelevance
                } else {
                    NoRoot::NotApplicable
                };
                prop_assert_eq!(&n.outcome, &RootOutcome::None(why));
            }
            None => prop_assert_eq!(n, &without.neurons[j]),
        }
    }
    // In f64 the sums run in another order.
    if exact {
        prop_assert_eq!(step.lower, expected);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// The network's answer for one output (read from what it computed once per layer), the
    /// layer's for one output and the layer's list agree, on the network and its rationals.
    #[test]
    fn every_way_of_asking_names_the_same_identities((model, _x) in carried_and_input()) {
        let net = model.net();
        let exact = net.to_exact();
        for (index, layer) in net.layers().iter().enumerate() {
            let listed = layer.identities();
            for (j, id) in listed.iter().enumerate() {
                prop_assert_eq!(net.identity(index, j), *id);
                prop_assert_eq!(layer.identity(j), *id);
                prop_assert_eq!(exact.identity(index, j), *id);
            }
        }
    }

    /// In rationals and in f64: each identity passes its relevance whole and has no root, the
    /// other neurons are untouched by it, and each layer conserves what it is given exactly
    /// (rationals).
    #[test]
    fn identities_pass_their_relevance_whole((model, x) in carried_and_input(), rule in rules()) {
        let s = settings(rule);
        let exact_net = model.net().to_exact();
        let ex = to_exact(&x);
        let trace = forward(&exact_net, &ex);
        let e = explain(&exact_net, &trace, &s, 0, true);
        let trace64 = forward(model.net(), &x);
        let e64 = explain(model.net(), &trace64, &s, 0, true);
        for (index, layer) in exact_net.layers().iter().enumerate() {
            if layer.max_pool.is_some() {
                continue;
            }
            let l = &e.layers[index];
            check_layer(layer, trace.layer_input(index), &l.upper, rule, &s, true)?;
            prop_assert!(l.conservation_error().is_zero());
            let l64 = &e64.layers[index];
            check_layer(&model.net().layers()[index], trace64.layer_input(index), &l64.upper, rule, &s, false)?;
        }
    }

    /// The bounded f64 explanation is the f64 explanation bit for bit at identities too, and
    /// its bounds enclose the exact relevances the identities pass on.
    #[test]
    fn bounded_explanation_passes_identities_whole((model, x) in carried_and_input(), rule in rules()) {
        let s = settings(rule);
        let (trace, errors, _, _) = trace_with_errors(&model, &x);
        let Some(b) = explain_bounded(&model, &trace, &errors, &s, 0, Keep { roots: true, input_bounds: true }) else {
            return Ok(());
        };
        let e64 = explain(model.net(), &trace, &s, 0, false);
        prop_assert_eq!(&b.explanation, &e64);
        let exact_net = model.net().to_exact();
        let exact = explain(&exact_net, &forward(&exact_net, &to_exact(&x)), &s, 0, false);
        for (index, layer) in model.net().layers().iter().enumerate() {
            for (i, (&v, bound)) in b.explanation.layers[index].lower.iter().zip(&b.bounds[index].lower).enumerate() {
                let err = (Rational::from_f64(v) - exact.layers[index].lower[i].clone()).abs();
                prop_assert!(err <= Rational::from_f64(*bound), "layer {} input {}", index, i);
            }
            for (j, id) in layer.identities().iter().enumerate() {
                if id.is_some() && b.explanation.layers[index].upper[j] != 0.0 {
                    prop_assert_eq!(
                        &b.explanation.layers[index].neurons[j].outcome,
                        &RootOutcome::None(NoRoot::NotApplicable)
                    );
                }
            }
        }
    }

    /// Full-backward DTD with the rule roots: an identity passes its relevance whole (of
    /// either sign), with no remainder, and is not expanded at a root.
    #[test]
    fn full_backward_passes_identities_whole((model, x) in carried_and_input(), rule in prop_oneof![Just(Rule::Z), Just(Rule::ZPlus), Just(Rule::WSquare)]) {
        prop_assume!(!model.net().has_max_pool());
        let s = settings(rule);
        let net = model.net().to_exact();
        let ex = to_exact(&x);
        let finder = RuleRoots::new(&net, &s);
        let fb = full_backward(&net, &ex, 0, &FullBackwardSettings::default(), &finder).unwrap();
        for (index, layer) in net.layers().iter().enumerate() {
            let l = &fb.layers[index];
            let others: Rational = l.neurons.iter().zip(layer.identities()).filter(|(_, id)| id.is_none()).fold(Rational::zero(), |acc, (n, _)| acc + n.passed.clone());
            let mut identity_sum = Rational::zero();
            for (n, id) in l.neurons.iter().zip(layer.identities()) {
                if id.is_some() {
                    prop_assert_eq!(&n.passed, &n.relevance);
                    prop_assert!(n.remainder.is_zero());
                    prop_assert_eq!(&n.expansion, &Expansion::NoRoot(dtdcert::dtd::full_backward::Rootless::NotApplicable));
                    identity_sum += n.relevance.clone();
                }
            }
            let lower: Rational = l.lower.iter().fold(Rational::zero(), |acc, v| acc + v.clone());
            prop_assert_eq!(lower, others + identity_sum);
        }
    }

    /// The default audit (f64 with bounds, exact fallback) and `--exact` agree root for root
    /// on networks with carried copies, and both record each identity with a relevance as a
    /// neuron without a root.
    #[test]
    fn audits_record_identities_without_roots((model, x) in carried_and_input(), rule in prop_oneof![Just(Rule::Z), Just(Rule::ZPlus), Just(Rule::Gamma(0.25)), Just(Rule::WSquare)]) {
        let settings = AuditSettings { dtd: settings(rule), ..AuditSettings::default() };
        let default = audit_sample(&model, &settings, 0, &x, Some(0)).unwrap();
        let exact = audit_sample(&model, &AuditSettings { exact: true, ..settings.clone() }, 0, &x, Some(0)).unwrap();
        prop_assert_eq!(verdicts(&default), verdicts(&exact));
        for (layer, record) in model.net().layers().iter().zip(&default.layers) {
            let identities = layer.identities();
            for n in &record.neurons {
                if identities[n.neuron].is_some() && n.relevance != 0.0 {
                    prop_assert!(n.root.is_none());
                    prop_assert_eq!(n.no_root, Some(NoRoot::NotApplicable));
                }
            }
        }
    }
}

/// What is an identity: one listed weight of exactly 1 and a bias of exactly 0 on an output
/// without activation, beside outputs the layer computes; not a scaled copy, a copy with a
/// bias, a copy under the layer's ReLU, or a layer of copies alone (a reshape or a pooling of
/// windows of one, which takes its rule).
#[test]
fn identities_are_exactly_the_carried_copies() {
    let own = Layer::new(
        Affine::Sparse(
            Sparse::from_rows(
                3,
                vec![vec![(0, 0.5), (1, -1.0)]],
                ndarray::Array1::zeros(1),
            )
            .unwrap(),
        ),
        true,
    );
    let mut layer = with_copies(&own, 3, 0x0102);
    // Rows: own, then copies; make the last two a scaled copy and a copy with a bias.
    let (rows, bias): (Vec<Vec<(u32, f64)>>, Vec<f64>) = (
        vec![
            vec![(0, 0.5), (1, -1.0)],
            vec![(2, 1.0)],
            vec![(1, 2.0)],
            vec![(0, 1.0)],
        ],
        vec![0.0, 0.0, 0.0, 0.25],
    );
    layer.affine = Affine::Sparse(Sparse::from_rows(3, rows, ndarray::Array1::from(bias)).unwrap());
    layer.linear_tail = 3;
    assert_eq!(layer.identities(), vec![None, Some(2), None, None]);
    assert_eq!(layer.identity(1), Some(2));
    assert!(layer.has_identities());
    // Under the ReLU: the same row is a neuron.
    layer.linear_tail = 0;
    assert_eq!(layer.identities(), vec![None; 4]);
    // Without activation, beside the layer's own output: still an identity.
    layer.relu = false;
    assert_eq!(layer.identities(), vec![None, Some(2), None, None]);
    // A layer of copies alone takes its rule.
    let copies = Layer::new(
        Affine::Sparse(
            Sparse::from_rows(
                2,
                vec![vec![(1, 1.0)], vec![(0, 1.0)]],
                ndarray::Array1::zeros(2),
            )
            .unwrap(),
        ),
        false,
    );
    assert_eq!(copies.identities(), vec![None, None]);
    assert_eq!(copies.identity(0), None);
    let net = Network::new(vec![layer.clone()]).unwrap();
    assert_eq!(net.layers()[0].identities(), layer.identities());
}
