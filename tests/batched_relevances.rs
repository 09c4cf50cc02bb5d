//! The batched train-free relevances ([`Batched`]) are the per-neuron engine's
//! ([`explain`]) up to the order of the additions, within 1e-10 of the largest relevance,
//! wherever the explanation is not on a branch the rounding decides (a max-pool tie, a value
//! within rounding of a ReLU's or ε's sign change or of the denominator threshold: inputs whose
//! relevances jump when each coordinate moves by 1e-13 are left out, and a max-pool winner may
//! differ only where the two values are within 1e-12 of each other):
//!
//! - on random networks with carried tails, identity neurons and max-pool layers, for every
//!   rule with a batched step, a different rule on layer 1, each bias mode, both initial
//!   relevances and with or without a stabiliser;
//! - on random networks with Clip, LeakyRelu and PRelu activations;
//! - on random convolutional networks as the ONNX reader loads them (average, global and
//!   max pooling), the convolution as its kernel and as rows;
//! - on the shipped small VGG-16, ResNet-50 (residual blocks kept as maps of parts, their sums
//!   read together and apart) and MobileNetV2 (depthwise convolutions, Clip), under Zennit's
//!   composites;
//!
//! and `explain` takes the batched path for f64 with rule roots, not for exact arithmetic.

mod util;

use std::path::{Path, PathBuf};

use dtdcert::audit::explain::{explain_path, Arithmetic, ExplainPath};
use dtdcert::dtd::batched::{covers, Batched};
use dtdcert::dtd::{explain, BiasMode, Composite, DtdSettings, InitialRelevance, Rule};
use dtdcert::lp::SolveOptions;
use dtdcert::model::forward::{argmax, forward, layer_rows};
use dtdcert::model::ir::max_pool;
use dtdcert::model::onnx::{load_bytes_with, OnnxOptions};
use dtdcert::model::{Model, Network};
use ndarray::Array2;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// Weights and inputs off any grid, so that no sum is exactly 0 in one order of additions
/// and not in another.
fn continuous() -> impl Strategy<Value = f64> {
    (-2.0f64..2.0).prop_map(|v| v as f32 as f64)
}

/// Every rule with a batched step.
fn rule() -> impl Strategy<Value = Rule> {
    prop_oneof![
        9 => util::train_free_rules(2.0, (2.0, 1.0)),
        1 => Just(Rule::Epsilon(0.0)),
    ]
}

/// Settings with `rule` on every layer but the first, `input` there, and the other options
/// drawn.
fn settings() -> impl Strategy<Value = DtdSettings> {
    (
        rule(),
        rule(),
        prop_oneof![
            Just(BiasMode::Ignore),
            Just(BiasMode::Include),
            Just(BiasMode::Plain)
        ],
        any::<bool>(),
        prop_oneof![Just(0.0), Just(0.01)],
    )
        .prop_map(|(rule, input, bias, one, stabilizer)| DtdSettings {
            rule,
            input_rule: Some(input),
            bias,
            stabilizer,
            initial_relevance: match one {
                true => InitialRelevance::One,
                false => InitialRelevance::Output,
            },
            ..DtdSettings::default()
        })
}

/// The batched relevances of `inputs` (one a row) against [`explain`] input by input, each
/// input explaining its largest output, or output 0 for the first input.
fn agree(net: &Network, settings: &DtdSettings, inputs: &Array2<f64>) -> Result<(), TestCaseError> {
    prop_assert!(covers(net, settings));
    let batched = Batched::new(net, settings).expect("covered");
    let mut targets = vec![None; inputs.nrows()];
    targets[0] = Some(0);
    let got = batched.input_relevances(inputs.view(), &targets);
    let pooled = rounding_ties(net, inputs)?;
    for (p, x) in inputs.rows().into_iter().enumerate() {
        let trace = forward(net, x.as_slice().expect("a standard-layout row"));
        if pooled[p] {
            // A window whose winner the order of the additions decides: either is the f64
            // explanation of a tie, and the relevance it passes differs.
            continue;
        }
        let k = targets[p].unwrap_or_else(|| argmax(trace.output()));
        let relevances = |x: &[f64]| explain(net, &forward(net, x), settings, k, false);
        let x = x.to_vec();
        let explained = relevances(&x);
        let want = explained.input_relevance();
        // The scale: the largest input relevance or the explained output's own.
        let top = explained.layers.last().map_or(0.0, |l| l.upper[k].abs());
        let scale = want.iter().fold(top, |m, v| m.max(v.abs()));
        let largest = |a: &[f64], b: &[f64]| {
            a.iter()
                .zip(b)
                .fold(0.0f64, |m, (u, v)| m.max((u - v).abs()))
        };
        // Where moving the input by 1e-13 of each coordinate (in two opposite directions that
        // change every neuron's value) moves the relevances by more than 1e-6 of the scale,
        // the explanation sits on a branch the rounding decides (a ReLU, a sign of ε, a
        // denominator at the threshold): the order of the additions may take either side.
        let moved = |sign: f64| -> Vec<f64> {
            let y: Vec<f64> = x
                .iter()
                .enumerate()
                .map(|(i, v)| v + sign * 1e-13 * v.abs().max(1.0) * [1.0, -1.0][i % 2])
                .collect();
            relevances(&y).input_relevance().to_vec()
        };
        if largest(&moved(1.0), want) > 1e-6 * scale || largest(&moved(-1.0), want) > 1e-6 * scale {
            continue;
        }
        let gap = largest(got.row(p).as_slice().expect("a standard-layout row"), want);
        prop_assert!(
            gap <= 1e-10 * scale.max(f64::MIN_POSITIVE),
            "input {p}: gap {gap} against {scale} ({:?})",
            settings
        );
    }
    Ok(())
}

/// Per input, whether a max-pool window picks another winner in the batched forward pass
/// ([`layer_rows`]) than in the per-neuron one: allowed only where the two winners' values,
/// computed in either order, are within rounding of each other (a tie in exact arithmetic).
fn rounding_ties(net: &Network, inputs: &Array2<f64>) -> Result<Vec<bool>, TestCaseError> {
    let mut differs = vec![false; inputs.nrows()];
    let mut h = inputs.clone();
    for (index, layer) in net.layers().iter().enumerate() {
        let (next, won) = layer_rows(layer, h.view());
        if let (Some(won), Some(window)) = (won, layer.max_pool) {
            for (p, x) in inputs.rows().into_iter().enumerate() {
                let trace = forward(net, x.as_slice().expect("a standard-layout row"));
                let z = &trace.pre[index];
                let (_, selected) = max_pool(z, window);
                for (g, &s) in selected.iter().enumerate() {
                    let b = won[[p, g]];
                    if b != s as usize {
                        let scale = z[g * window..(g + 1) * window]
                            .iter()
                            .fold(0.0f64, |m, v| m.max(v.abs()));
                        prop_assert!(
                            (z[b] - z[s as usize]).abs() <= 1e-12 * scale,
                            "layer {}: window {g} of input {p} picks {b} against {s} with \
                             values {} and {}",
                            index + 1,
                            z[b],
                            z[s as usize]
                        );
                        differs[p] = true;
                    }
                }
            }
        }
        h = next;
    }
    Ok(differs)
}

/// Three inputs of width `d` drawn with [`continuous`].
fn inputs(d: usize) -> impl Strategy<Value = Array2<f64>> {
    prop::collection::vec(continuous(), 3 * d)
        .prop_map(move |v| Array2::from_shape_vec((3, d), v).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn batched_relevances_are_the_engines_on_networks_with_tails_copies_and_pools(
        (net, x) in util::mlp_with_tails_and_pools(1..=5, 1..=5, 1..=3, continuous)
            .prop_flat_map(|net| { let d = net.input_dim(); (Just(net), inputs(d)) }),
        settings in settings(),
    ) {
        agree(&net, &settings, &x)?;
    }

    #[test]
    fn batched_relevances_are_the_engines_with_other_activations(
        (model, x) in util::activations::mixed_network_and_input(),
        more in inputs(util::activations::WIDTHS[0]),
        settings in settings(),
    ) {
        let mut rows = more;
        rows.row_mut(0).assign(&ndarray::Array1::from(x));
        agree(model.net(), &settings, &rows)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn batched_relevances_are_the_engines_on_convolutional_networks(
        (net, x) in util::conv::conv_net_and_input(),
        seed in 0u64..1000,
        settings in settings(),
    ) {
        let options = OnnxOptions {
            conv_rows_up_to: Some(0),
            ..OnnxOptions::default()
        };
        let kernels = load_bytes_with(&net.onnx(), Path::new("random.onnx"), options).unwrap();
        let d = kernels.input_dim();
        let rows = Array2::from_shape_fn((2, d), |(p, i)| match p {
            0 => x[i],
            _ => (((i as u64 * 7 + seed) % 13) as f64 / 6.0 - 1.0) * 0.9,
        });
        agree(&kernels, &settings, &rows)?;
        agree(util::conv::load(&net).net(), &settings, &rows)?;
    }
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/conformance_cnn")
        .join(name)
}

/// The shipped small network `name`, with its convolutions kept as kernels (and a residual
/// network's blocks as maps of parts, their sums read apart with `split_residual`), under
/// each of Zennit's composites and z+ with biases.
fn fixture_agrees(name: &str, split_residual: bool) {
    let bytes = std::fs::read(fixture(name)).unwrap();
    let options = OnnxOptions {
        conv_rows_up_to: Some(0),
        split_residual,
        ..OnnxOptions::default()
    };
    let net = load_bytes_with(&bytes, Path::new(name), options).unwrap();
    let d = net.input_dim();
    let x = Array2::from_shape_fn((2, d), |(p, i)| ((i * 31 + p * 7) % 23) as f64 / 11.0 - 1.0);
    let composites = [
        Some(Composite::EpsilonPlusFlat),
        Some(Composite::EpsilonGammaBox { lo: -1.0, hi: 1.0 }),
        None,
    ];
    for composite in composites {
        let mut settings = DtdSettings {
            composite,
            bias: BiasMode::Include,
            ..DtdSettings::default()
        };
        settings.set_layer_kinds(net.kinds());
        agree(&net, &settings, &x).unwrap();
    }
}

#[test]
fn batched_relevances_are_the_engines_on_the_small_vgg16() {
    fixture_agrees("vgg16_small.onnx", false);
}

#[test]
fn batched_relevances_are_the_engines_on_the_small_resnet50_as_maps_of_parts() {
    fixture_agrees("resnet50_small.onnx", false);
    fixture_agrees("resnet50_small.onnx", true);
}

#[test]
fn batched_relevances_are_the_engines_on_the_small_mobilenet_v2() {
    fixture_agrees("mobilenet_v2_small.onnx", true);
}

#[test]
fn explain_takes_the_batched_path_for_f64_rule_roots_only() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/c6");
    let model = Model::load(&dir.join("model.onnx")).unwrap();
    let zplus = DtdSettings::default();
    let how = |exact| Arithmetic::new(&zplus, exact, None, SolveOptions::default()).unwrap();
    assert_eq!(
        explain_path(&model, &zplus, how(false)),
        ExplainPath::Batched
    );
    assert_eq!(
        explain_path(&model, &zplus, how(true)),
        ExplainPath::PerInput
    );
    let valid = DtdSettings {
        input_rule: Some("nearest-valid:l1".parse().unwrap()),
        ..DtdSettings::default()
    };
    assert!(!covers(model.net(), &valid));
    let lp = Arithmetic::new(&valid, false, Some((0.0, 1.0)), SolveOptions::default()).unwrap();
    assert_eq!(explain_path(&model, &valid, lp), ExplainPath::PerInput);
}
