//! Property tests on random small convolutional networks, written as the ONNX graphs
//! `torch.onnx.export` produces (Conv, Relu, AveragePool, GlobalAveragePool or MaxPool before
//! or after the Relu, Flatten, Gemm)
//! and loaded through the ONNX reader (200 cases per property):
//!
//! - the dense layers the reader writes compute exactly (in rationals) what a direct
//!   evaluation of the convolution, the pooling and the dense layer computes;
//! - the f64 verdicts of every root equal the verdicts computed in rationals;
//! - at every root inside its region, the network above equals its Taylor expansion.

mod util;

use std::cell::Cell;
use std::path::Path;

use dtdcert::dtd::{DtdSettings, Rule};
use dtdcert::exact::{Rational, Scalar as _};
use dtdcert::model::forward::forward;
use dtdcert::model::Model;

use proptest::prelude::*;
use proptest::test_runner::{RngSeed, TestRunner};
use util::conv::{conv_net_and_input, load, ConvNet, Pool};
use util::{hyperplane_rules, taylor_exact_at_inside_roots, to_exact, verdicts_agree};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 200,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// The reader's sparse layers compute, exactly, the direct convolution, pooling and dense
    /// layer.
    #[test]
    fn sparse_layers_compute_the_convolution_exactly((net, x) in conv_net_and_input()) {
        let model = load(&net);
        let exact = to_exact(&x);
        let got = forward(model.exact(), &exact).output().to_vec();
        prop_assert_eq!(got, net.evaluate(&exact));
    }
}

fn runner() -> TestRunner {
    let mut config = config();
    config.failure_persistence = None;
    if config.rng_seed == RngSeed::Random {
        config.rng_seed = RngSeed::Fixed(5);
    }
    TestRunner::new(config)
}

/// The f64 verdict of every root, alone and batched, equals the verdict in rationals; over
/// the run, roots of every rule are compared (not a vacuous pass).
#[test]
fn float_verdict_equals_exact_verdict_on_conv_nets() {
    let compared = Cell::new(0usize);
    runner()
        .run(
            &(conv_net_and_input(), hyperplane_rules()),
            |((net, x), rule)| {
                let settings = DtdSettings {
                    rule,
                    ..DtdSettings::default()
                };
                compared.set(compared.get() + verdicts_agree(&load(&net), &x, &settings)?);
                Ok(())
            },
        )
        .unwrap();
    println!("{} roots compared", compared.get());
    assert!(
        compared.get() >= 200,
        "only {} roots compared",
        compared.get()
    );
}

/// At every root inside its region the network above equals its Taylor expansion; over the
/// run, inside roots occur.
#[test]
fn inside_root_makes_taylor_expansion_exact_on_conv_nets() {
    let checked = Cell::new(0usize);
    runner()
        .run(
            &(conv_net_and_input(), hyperplane_rules()),
            |((net, x), rule)| {
                let settings = DtdSettings {
                    rule,
                    ..DtdSettings::default()
                };
                checked
                    .set(checked.get() + taylor_exact_at_inside_roots(&load(&net), &x, &settings)?);
                Ok(())
            },
        )
        .unwrap();
    println!("{} inside roots checked", checked.get());
    assert!(
        checked.get() >= 50,
        "only {} inside roots checked",
        checked.get()
    );
}

/// Through a max-pool layer relevance passes winner-take-all, in rationals: each window's
/// relevance reaches exactly the input its first largest entry copies, nothing is left
/// unresolved, and no neuron of the layer has a root.
#[test]
fn max_pool_layers_pass_relevance_to_their_winners() {
    let layers = Cell::new(0usize);
    runner()
        .run(
            &(conv_net_and_input(), hyperplane_rules()),
            |((net, x), rule)| {
                let model = load(&net);
                let exact = model.exact();
                let trace = forward(exact, &to_exact(&x));
                let settings = DtdSettings {
                    rule,
                    ..DtdSettings::default()
                };
                let out: Vec<f64> = trace.output().iter().map(|v| v.to_f64()).collect();
                let k = dtdcert::model::forward::argmax(&out);
                let e = dtdcert::dtd::explain(exact, &trace, &settings, k, true);
                for (index, layer) in exact.layers().iter().enumerate() {
                    let Some(window) = layer.max_pool else {
                        continue;
                    };
                    layers.set(layers.get() + 1);
                    let step = &e.layers[index];
                    let z = &trace.pre[index];
                    let mut want = vec![Rational::from_f64(0.0); step.lower.len()];
                    for (g, r) in step.upper.iter().enumerate() {
                        let entries = g * window..(g + 1) * window;
                        let best = entries.clone().map(|o| &z[o]).max().unwrap();
                        let first = entries.clone().find(|&o| &z[o] == best).unwrap();
                        let i = layer.gathered(first);
                        want[i] = want[i].clone() + r.clone();
                        let n = &step.neurons[g];
                        prop_assert!(matches!(n.outcome, dtdcert::dtd::RootOutcome::None(_)));
                        prop_assert_eq!(&n.unresolved, &Rational::from_f64(0.0));
                    }
                    prop_assert_eq!(&step.lower, &want);
                }
                Ok(())
            },
        )
        .unwrap();
    assert!(layers.get() >= 30, "only {} max-pool layers", layers.get());
}

/// A hand-checked case: a 1x3x3 input, a 2x2 kernel of ones, no padding, global pooling.
#[test]
fn a_kernel_of_ones_sums_each_window() {
    let net = ConvNet {
        c_in: 1,
        h: 3,
        w: 3,
        c_out: 1,
        kernel: [2, 2],
        stride: [1, 1],
        pads: [0; 4],
        pool: Pool::Global,
        outputs: 1,
        kernel_values: vec![1.0; 4],
        conv_bias: vec![0.0],
        dense: vec![1.0],
        dense_bias: vec![0.0],
    };
    // Windows of 1..9: 12, 16, 24, 28; their mean is 20.
    let x: Vec<f64> = (1..=9).map(f64::from).collect();
    let model = load(&net);
    assert_eq!(forward(model.net(), &x).output(), &[20.0]);
    assert_eq!(net.evaluate(&to_exact(&x)), vec![Rational::from_f64(20.0)]);
}

/// An audit rebuilds and judges roots in blocks of 1024: on a layer of 2312 neurons (three
/// blocks) its verdicts are those of each root judged on its own.
#[test]
fn audit_verdicts_across_root_blocks_equal_single_root_verdicts() {
    use dtdcert::audit::{audit_sample, AuditSettings};
    use dtdcert::dtd::{explain, RootOutcome};
    use dtdcert::region::{membership_filtered, trace_and_pattern, Membership};
    let (side, c_out) = (34, 2);
    let wave = |i: usize, k: f64| ((i as f64 * k).sin() * 0.75 * 4096.0).round() / 4096.0;
    let net = ConvNet {
        c_in: 1,
        h: side,
        w: side,
        c_out,
        kernel: [3, 3],
        stride: [1, 1],
        pads: [1; 4],
        pool: Pool::None,
        outputs: 2,
        kernel_values: (0..c_out * 9)
            .map(|i| wave(i, 1.7).abs() + 0.0625)
            .collect(),
        // Every neuron active and every dense weight positive: every neuron of layer 1 has
        // relevance, so a root.
        conv_bias: vec![0.125, 0.25],
        dense: (0..2 * c_out * side * side)
            .map(|i| wave(i, 0.37).abs() / 16.0 + 1.0 / 64.0)
            .collect(),
        dense_bias: vec![0.0, 0.5],
    };
    let model = load(&net);
    let x: Vec<f64> = (0..side * side).map(|i| wave(i, 0.11).abs()).collect();
    for rule in [Rule::ZPlus, Rule::WSquare] {
        let settings = AuditSettings {
            dtd: DtdSettings {
                rule,
                ..DtdSettings::default()
            },
            ..AuditSettings::default()
        };
        let record = audit_sample(&model, &settings, 0, &x, Some(1)).unwrap();
        let (trace, pattern, _) = trace_and_pattern(&model, &x);
        let e = explain(model.net(), &trace, &settings.dtd, 1, true);
        let mut compared = 0;
        for (index, step) in e.layers.iter().enumerate() {
            for (n, rec) in step.neurons.iter().zip(&record.layers[index].neurons) {
                match (&n.outcome, &rec.root) {
                    (RootOutcome::Root { point, .. }, Some(verdict)) => {
                        let (region, _) = membership_filtered(&model, &pattern, index, point);
                        // The same verdict; slacks and margins are f64 readings of one value,
                        // summed in another order.
                        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * (1.0 + a.abs());
                        let same = match (&region, &verdict.region) {
                            (
                                Membership::Inside { slack: Some(a) },
                                Membership::Inside { slack: Some(b) },
                            ) => close(*a, *b),
                            (
                                Membership::Outside {
                                    layer: l1,
                                    neuron: n1,
                                    margin: a,
                                },
                                Membership::Outside {
                                    layer: l2,
                                    neuron: n2,
                                    margin: b,
                                },
                            ) => (l1, n1) == (l2, n2) && close(*a, *b),
                            (a, b) => a == b,
                        };
                        assert!(
                            same,
                            "layer {} neuron {}: {region:?} against {:?}",
                            index + 1,
                            rec.neuron,
                            verdict.region
                        );
                        compared += 1;
                    }
                    (RootOutcome::None(_), None) => {}
                    (o, r) => panic!("layer {}: {o:?} against {r:?}", index + 1),
                }
            }
        }
        assert!(compared > 2048, "{rule}: {compared} roots compared");
    }
}

/// Networks PyTorch exported with max-pool layers and residual connections (the fixtures of
/// `tests/data/onnx/`): on their inputs and for several rules, every root's f64 verdict equals
/// the verdict in rationals, and at every root inside its region the network above equals its
/// Taylor expansion. Rationals are slow: the conv nets on one input each, and the Taylor check
/// (whose explanation in rationals divides at every root of seven layers) not on the deeper
/// residual net.
#[test]
fn exported_max_pool_and_residual_networks_get_exact_verdicts_and_taylor_expansions() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/onnx");
    let (mut compared, mut inside) = (0usize, 0usize);
    for (name, samples, rules, taylor) in [
        ("maxpool_coord_2x7x7_opset17", 1, &[Rule::ZPlus][..], true),
        (
            "residual_conv_2x6x6_f64_opset17",
            1,
            &[Rule::ZPlus][..],
            false,
        ),
        (
            "residual_mlp_6_8_3_opset17",
            5,
            &[Rule::ZPlus, Rule::Z, Rule::WSquare][..],
            true,
        ),
    ] {
        let model = Model::load(&dir.join(format!("{name}.onnx"))).unwrap();
        let inputs =
            dtdcert::model::inputs::load_inputs(&dir.join(format!("{name}.inputs.npy")), None)
                .unwrap();
        for &rule in rules {
            let settings = DtdSettings {
                rule,
                ..DtdSettings::default()
            };
            for i in 0..samples {
                let x = inputs.row(i).unwrap();
                compared += verdicts_agree(&model, &x, &settings).unwrap();
                if taylor {
                    inside += taylor_exact_at_inside_roots(&model, &x, &settings).unwrap();
                }
            }
        }
    }
    println!("{compared} roots compared, {inside} inside roots checked");
    assert!(
        compared >= 300 && inside >= 10,
        "{compared} compared, {inside} inside"
    );
}
