//! Identity neurons (outputs without activation that copy one input with weight exactly 1 and
//! bias exactly 0, beside what their layer computes: values carried for a residual
//! connection) are no neurons: on random small networks with carried copies, under every
//! rule, the exact and the f64 explanation, the bounded f64 one and full-backward DTD pass
//! each identity's relevance whole to the input it copies, leave nothing unresolved there and
//! give it no root, while every other neuron's step is the rule's own; and the audit records
//! identities as neurons without a root, by default and with `--exact` alike. What is an
//! identity, for each kind of affine map: a sparse row, a copy part of a map of parts beside
//! a convolution part, a depthwise 1×1 convolution's channel of weight 1 and bias 0 beside a
//! computed channel; a layer of copies alone has none; and the copies the test networks add
//! name the inputs they were built to copy.

mod util;

use dtdcert::audit::{audit_sample, AuditSettings};
use dtdcert::dtd::bounded::{explain_bounded, Keep};
use dtdcert::dtd::full_backward::{full_backward, Expansion, FullBackwardSettings, RuleRoots};
use dtdcert::dtd::{explain, layer_step, DtdSettings, NoRoot, RootOutcome, Rule};
use dtdcert::exact::{Rational, Scalar};
use dtdcert::model::blocks::{Blocks, Part, PartMap};
use dtdcert::model::conv::{Conv, ConvShape};
use dtdcert::model::forward::forward;
use dtdcert::model::ir::{dense_layer, Affine, Layer, Sparse};
use dtdcert::model::{Model, Network};
use dtdcert::region::trace_with_errors;
use proptest::prelude::*;
use util::verdicts::verdicts;
use util::{
    mlp_with_tails_and_pools, to_exact, train_free_rules, weight, with_copies, with_copies_of,
};

/// A random MLP with carried copies (and dense tails and max pooling) and an input for it.
fn carried_and_input() -> impl Strategy<Value = (Model, Vec<f64>)> {
    mlp_with_tails_and_pools(1..=4, 1..=4, 1..=3, weight).prop_flat_map(|net| {
        let d = net.input_dim();
        (Just(Model::new(net)), prop::collection::vec(weight(), d))
    })
}

fn rules() -> impl Strategy<Value = Rule> {
    train_free_rules(1.0, (1.0, 0.0))
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
            let affine = &layer.affine;
            let outputs = 0..affine.out_dim();
            let copies: Vec<_> = outputs.clone().map(|j| affine.copied_input(j)).collect();
            prop_assert_eq!(affine.copied_inputs(), copies);
            let counts: Vec<usize> = outputs.clone().map(|j| affine.row(j).connected()).collect();
            prop_assert_eq!(affine.connected_counts(), counts);
            let biases: Vec<f64> = outputs.map(|j| *affine.bias(j)).collect();
            prop_assert_eq!(affine.biases().to_vec(), biases);
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

/// The layer's identities asked every way: the list, the layer per output, and the network
/// (one layer) per output; and its affine map's copies, connection counts and biases listed
/// at once equal them asked output by output.
fn identities_every_way(layer: &Layer) -> Vec<Option<usize>> {
    let listed = layer.identities();
    let net = Network::new(vec![layer.clone()]).unwrap();
    for (j, id) in listed.iter().enumerate() {
        assert_eq!(layer.identity(j), *id, "output {j}");
        assert_eq!(net.identity(0, j), *id, "output {j}");
    }
    let affine = &layer.affine;
    let outputs = 0..affine.out_dim();
    let copies: Vec<Option<usize>> = outputs.clone().map(|j| affine.copied_input(j)).collect();
    assert_eq!(affine.copied_inputs(), copies);
    let counts: Vec<usize> = outputs.clone().map(|j| affine.row(j).connected()).collect();
    assert_eq!(affine.connected_counts(), counts);
    let biases: Vec<f64> = outputs.map(|j| *affine.bias(j)).collect();
    assert_eq!(affine.biases().to_vec(), biases);
    listed
}

/// A convolution of a `[c, h, w]` input into `channels` channels with a `kernel` window,
/// stride 1, no padding, in `groups` groups.
fn conv(
    input: [usize; 3],
    channels: usize,
    kernel: [usize; 2],
    groups: usize,
    k: Vec<f64>,
    bias: Vec<f64>,
) -> Conv {
    let shape = ConvShape {
        input,
        channels,
        kernel,
        strides: [1, 1],
        pads: [0; 4],
        dilations: [1, 1],
        groups,
    };
    Conv::new(shape, k, bias).unwrap()
}

/// A map of parts: a 1×2 convolution of a 1×2×3 input (inputs 0..6) into outputs 0..4, each
/// reading two inputs with weight 1 (a sum, not a copy), and a copy of inputs 6..9 into
/// outputs 4..7. The copies are the identities, naming inputs 6, 7, 8; with a bias on one of
/// them it is none; under a ReLU with the copies as the linear tail they stay identities.
#[test]
fn a_map_of_parts_names_its_copies_and_not_its_convolution() {
    let parts = |bias: Vec<f64>| {
        let parts = vec![
            Part {
                input: 0,
                output: 0,
                map: PartMap::Conv(conv([1, 2, 3], 1, [1, 2], 1, vec![1.0, 1.0], vec![0.0])),
            },
            Part {
                input: 6,
                output: 4,
                map: PartMap::Copy(3),
            },
        ];
        Affine::Blocks(Blocks::new(9, parts, bias).unwrap())
    };
    let mut layer = Layer::new(parts(vec![0.0; 7]), false);
    let expected = vec![None, None, None, None, Some(6), Some(7), Some(8)];
    assert_eq!(identities_every_way(&layer), expected);
    for (j, id) in expected.iter().enumerate() {
        assert_eq!(layer.affine.copied_input(j), *id, "output {j}");
    }
    // The ReLU on the convolution's outputs, the copies carried past it.
    layer.relu = true;
    layer.linear_tail = 3;
    assert_eq!(identities_every_way(&layer), expected);
    // All under the ReLU: neurons.
    layer.linear_tail = 0;
    assert_eq!(identities_every_way(&layer), vec![None; 7]);
    // A bias on output 5: not a copy.
    let mut bias = vec![0.0; 7];
    bias[5] = 0.25;
    let layer = Layer::new(parts(bias), false);
    assert_eq!(
        identities_every_way(&layer),
        vec![None, None, None, None, Some(6), None, Some(8)]
    );
}

/// A depthwise 1×1 convolution of a 2×2×2 input: channel 0 with weight 1 and bias 0 copies
/// input `p` into output `p` (positions 0..4), beside channel 1 that computes (a weight of
/// 1/2, or a weight of 1 with a bias of 1/4). With both channels copies (weights 1, biases
/// 0) the layer is made of copies alone: an operation of the network, no identities; so is
/// that convolution kept as a part beside a copy part, and a map of copy parts alone.
#[test]
fn a_depthwise_convolution_of_ones_copies_its_channel() {
    let depthwise = |k: Vec<f64>, bias: Vec<f64>| conv([2, 2, 2], 2, [1, 1], 2, k, bias);
    let channel_0 = vec![Some(0), Some(1), Some(2), Some(3), None, None, None, None];
    for (k, bias) in [
        (vec![1.0, 0.5], vec![0.0, 0.0]),
        (vec![1.0, 1.0], vec![0.0, 0.25]),
    ] {
        let layer = Layer::new(Affine::Conv(depthwise(k.clone(), bias)), false);
        assert_eq!(identities_every_way(&layer), channel_0, "kernel {k:?}");
    }
    let ones = depthwise(vec![1.0, 1.0], vec![0.0, 0.0]);
    let layer = Layer::new(Affine::Conv(ones.clone()), false);
    for j in 0..8 {
        assert_eq!(layer.affine.copied_input(j), Some(j));
    }
    assert_eq!(identities_every_way(&layer), vec![None; 8]);
    assert!(!layer.has_identities());
    // The same convolution as a part, beside a copy of two more inputs.
    let parts = vec![
        Part {
            input: 0,
            output: 0,
            map: PartMap::Conv(ones),
        },
        Part {
            input: 8,
            output: 8,
            map: PartMap::Copy(2),
        },
    ];
    let layer = Layer::new(
        Affine::Blocks(Blocks::new(10, parts, vec![0.0; 10]).unwrap()),
        false,
    );
    assert!((0..10).all(|j| layer.affine.copied_input(j) == Some(j)));
    assert_eq!(identities_every_way(&layer), vec![None; 10]);
    // Two copies of two inputs each, the first written at `first`, the second at 0.
    let two_copies = |first: usize, outputs: usize| {
        let copy = |input, output| Part {
            input,
            output,
            map: PartMap::Copy(2),
        };
        let parts = vec![copy(0, first), copy(2, 0)];
        Layer::new(
            Affine::Blocks(Blocks::new(4, parts, vec![0.0; outputs]).unwrap()),
            false,
        )
    };
    // Copies alone, crossed over.
    let layer = two_copies(2, 4);
    assert_eq!(
        (0..4)
            .map(|j| layer.affine.copied_input(j))
            .collect::<Vec<_>>(),
        vec![Some(2), Some(3), Some(0), Some(1)]
    );
    assert_eq!(identities_every_way(&layer), vec![None; 4]);
    // Two copies adding into the same outputs: sums, not copies.
    let layer = two_copies(0, 2);
    assert_eq!(identities_every_way(&layer), vec![None; 2]);
    assert_eq!(layer.affine.copied_inputs(), vec![None; 2]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// The copies [`with_copies_of`] adds to a dense layer are identities naming the inputs
    /// it says they copy: as the linear tail of a ReLU layer (whose own outputs are then
    /// neurons), and in a layer without activation unless its own rows are copies too (one
    /// input, each weight 1 and bias 0: a layer of copies alone).
    #[test]
    fn generated_copies_name_the_inputs_they_copy(
        (rows, cols, w, b) in (1usize..=4, 1usize..=4).prop_flat_map(|(r, c)| {
            (Just(r), Just(c), prop::collection::vec(weight(), r * c), prop::collection::vec(weight(), r))
        }),
        copies in 1usize..=4,
        seed in any::<u64>(),
        tail in any::<bool>(),
    ) {
        let own = dense_layer(rows, cols, w.clone(), b.clone(), true).unwrap();
        let (mut layer, copied) = with_copies_of(&own, copies, seed);
        prop_assert_eq!(copied.len(), copies);
        let own_are_copies = cols == 1 && w.iter().zip(&b).all(|(&w, &b)| w == 1.0 && b == 0.0);
        if tail {
            layer.linear_tail = copies;
        } else {
            layer.relu = false;
        }
        let ids = layer.identities();
        let net = Network::new(vec![layer.clone()]).unwrap();
        for (c, &i) in copied.iter().enumerate() {
            let j = rows + c;
            let expected = (tail || !own_are_copies).then_some(i);
            prop_assert_eq!(ids[j], expected, "copy {} of input {}", c, i);
            prop_assert_eq!(layer.identity(j), expected);
            prop_assert_eq!(net.identity(0, j), expected);
        }
        if tail {
            prop_assert!(ids[..rows].iter().all(Option::is_none));
        }
    }
}
