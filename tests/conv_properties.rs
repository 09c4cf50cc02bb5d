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
use dtdcert::model::onnx::load_bytes;
use dtdcert::model::Model;
use onnx_protobuf::tensor_proto::DataType;

use proptest::prelude::*;
use proptest::test_runner::{RngSeed, TestRunner};
use protobuf::Message;
use util::onnx::{attr_int, attr_ints, doubles, model, node, value};
use util::{hyperplane_rules, taylor_exact_at_inside_roots, to_exact, verdicts_agree, weight};

/// The pooling after the convolution's ReLU.
#[derive(Clone, Copy, Debug)]
enum Pool {
    None,
    /// 2x2, stride 1, no padding.
    Average {
        include_pad: bool,
        pad: bool,
    },
    Global,
    /// 2x2, stride 1, padded at the bottom and right when `pad`; before the ReLU when
    /// `before_relu` (the same function: max and ReLU commute, but other layers).
    Max {
        pad: bool,
        before_relu: bool,
    },
}

/// A small convolutional network: its geometry and parameters.
#[derive(Clone, Debug)]
struct ConvNet {
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    /// top, left, bottom, right
    pads: [usize; 4],
    pool: Pool,
    outputs: usize,
    kernel_values: Vec<f64>,
    conv_bias: Vec<f64>,
    dense: Vec<f64>,
    dense_bias: Vec<f64>,
}

impl ConvNet {
    fn conv_out(&self) -> [usize; 2] {
        [
            (self.h + self.pads[0] + self.pads[2] - self.kernel[0]) / self.stride[0] + 1,
            (self.w + self.pads[1] + self.pads[3] - self.kernel[1]) / self.stride[1] + 1,
        ]
    }

    fn pool_out(&self) -> [usize; 2] {
        let [ho, wo] = self.conv_out();
        match self.pool {
            Pool::None => [ho, wo],
            Pool::Average { pad, .. } | Pool::Max { pad, .. } => {
                let p = usize::from(pad);
                [ho + p - 1, wo + p - 1]
            }
            Pool::Global => [1, 1],
        }
    }

    fn flat(&self) -> usize {
        let [a, b] = self.pool_out();
        self.c_out * a * b
    }

    /// The network evaluated directly in rationals, loop by loop.
    fn evaluate(&self, x: &[Rational]) -> Vec<Rational> {
        let [ho, wo] = self.conv_out();
        let at = |c: usize, r: i64, col: i64| -> Option<&Rational> {
            let inside = (0..self.h as i64).contains(&r) && (0..self.w as i64).contains(&col);
            inside.then(|| &x[(c * self.h + r as usize) * self.w + col as usize])
        };
        let mut conv = vec![Rational::from_f64(0.0); self.c_out * ho * wo];
        for o in 0..self.c_out {
            for i in 0..ho {
                for j in 0..wo {
                    let mut acc = Rational::from_f64(self.conv_bias[o]);
                    for c in 0..self.c_in {
                        for u in 0..self.kernel[0] {
                            for v in 0..self.kernel[1] {
                                let r = (i * self.stride[0] + u) as i64 - self.pads[0] as i64;
                                let col = (j * self.stride[1] + v) as i64 - self.pads[1] as i64;
                                if let Some(value) = at(c, r, col) {
                                    let k = ((o * self.c_in + c) * self.kernel[0] + u)
                                        * self.kernel[1]
                                        + v;
                                    acc += Rational::from_f64(self.kernel_values[k]) * value;
                                }
                            }
                        }
                    }
                    let relu = if acc > Rational::from_f64(0.0) {
                        acc
                    } else {
                        Rational::from_f64(0.0)
                    };
                    conv[(o * ho + i) * wo + j] = relu;
                }
            }
        }
        let [po, qo] = self.pool_out();
        let pooled: Vec<Rational> = match self.pool {
            Pool::None => conv,
            Pool::Global => (0..self.c_out)
                .map(|o| {
                    let sum = conv[o * ho * wo..(o + 1) * ho * wo]
                        .iter()
                        .fold(Rational::from_f64(0.0), |s, v| s + v);
                    sum * Rational::from_f64(1.0 / (ho * wo) as f64)
                })
                .collect(),
            Pool::Average { include_pad, pad } => {
                let mut out = Vec::with_capacity(self.c_out * po * qo);
                for o in 0..self.c_out {
                    for i in 0..po {
                        for j in 0..qo {
                            let mut sum = Rational::from_f64(0.0);
                            let mut n = 0;
                            for u in 0..2 {
                                for v in 0..2 {
                                    // Padding, when there is any, is at the bottom and right.
                                    let (r, c) = (i + u, j + v);
                                    if r < ho && c < wo {
                                        sum += &conv[(o * ho + r) * wo + c];
                                        n += 1;
                                    }
                                }
                            }
                            let count = if include_pad || !pad { 4 } else { n };
                            // The reader's weight is the f64 value of 1/count.
                            out.push(sum * Rational::from_f64(1.0 / count as f64));
                        }
                    }
                }
                out
            }
            Pool::Max { .. } => {
                let mut out = Vec::with_capacity(self.c_out * po * qo);
                for o in 0..self.c_out {
                    for i in 0..po {
                        for j in 0..qo {
                            let mut best: Option<&Rational> = None;
                            for u in 0..2 {
                                for v in 0..2 {
                                    let (r, c) = (i + u, j + v);
                                    if r < ho && c < wo {
                                        let value = &conv[(o * ho + r) * wo + c];
                                        if best.is_none_or(|b| value > b) {
                                            best = Some(value);
                                        }
                                    }
                                }
                            }
                            out.push(best.expect("a window covers the image").clone());
                        }
                    }
                }
                out
            }
        };
        (0..self.outputs)
            .map(|k| {
                let mut acc = Rational::from_f64(self.dense_bias[k]);
                for (i, v) in pooled.iter().enumerate() {
                    acc += Rational::from_f64(self.dense[k * pooled.len() + i]) * v;
                }
                acc
            })
            .collect()
    }

    fn onnx(&self) -> Vec<u8> {
        let i = |v: &[usize]| -> Vec<i64> { v.iter().map(|&x| x as i64).collect() };
        let mut nodes = vec![node(
            "Conv",
            "conv",
            &["input", "k", "kb"],
            &["c"],
            vec![
                attr_ints("kernel_shape", &i(&self.kernel)),
                attr_ints("strides", &i(&self.stride)),
                attr_ints("pads", &i(&self.pads)),
            ],
        )];
        if let Pool::Max {
            pad,
            before_relu: true,
        } = self.pool
        {
            let p = i64::from(pad);
            nodes.push(node(
                "MaxPool",
                "pool",
                &["c"],
                &["m"],
                vec![
                    attr_ints("kernel_shape", &[2, 2]),
                    attr_ints("pads", &[0, 0, p, p]),
                ],
            ));
            nodes.push(node("Relu", "relu", &["m"], &["p"], vec![]));
        } else {
            nodes.push(node("Relu", "relu", &["c"], &["r"], vec![]));
        }
        let pooled = match self.pool {
            Pool::None => "r",
            Pool::Max {
                before_relu: true, ..
            } => "p",
            Pool::Max { pad, .. } => {
                let p = i64::from(pad);
                nodes.push(node(
                    "MaxPool",
                    "pool",
                    &["r"],
                    &["p"],
                    vec![
                        attr_ints("kernel_shape", &[2, 2]),
                        attr_ints("pads", &[0, 0, p, p]),
                    ],
                ));
                "p"
            }
            Pool::Average { include_pad, pad } => {
                let p = i64::from(pad);
                nodes.push(node(
                    "AveragePool",
                    "pool",
                    &["r"],
                    &["p"],
                    vec![
                        attr_ints("kernel_shape", &[2, 2]),
                        attr_ints("pads", &[0, 0, p, p]),
                        attr_int("count_include_pad", i64::from(include_pad)),
                    ],
                ));
                "p"
            }
            Pool::Global => {
                nodes.push(node("GlobalAveragePool", "pool", &["r"], &["p"], vec![]));
                "p"
            }
        };
        nodes.push(node(
            "Flatten",
            "flatten",
            &[pooled],
            &["f"],
            vec![attr_int("axis", 1)],
        ));
        nodes.push(node(
            "Gemm",
            "fc",
            &["f", "w", "wb"],
            &["output"],
            vec![attr_int("transB", 1)],
        ));
        let dims =
            |v: &[usize]| -> Vec<Option<i64>> { v.iter().map(|&x| Some(x as i64)).collect() };
        let input = [vec![None], dims(&[self.c_in, self.h, self.w])].concat();
        let kernel = i(&[self.c_out, self.c_in, self.kernel[0], self.kernel[1]]);
        model(
            nodes,
            vec![
                doubles("k", &kernel, &self.kernel_values),
                doubles("kb", &i(&[self.c_out]), &self.conv_bias),
                doubles("w", &i(&[self.outputs, self.flat()]), &self.dense),
                doubles("wb", &i(&[self.outputs]), &self.dense_bias),
            ],
            value("input", &input, DataType::DOUBLE),
            value(
                "output",
                &[None, Some(self.outputs as i64)],
                DataType::DOUBLE,
            ),
        )
        .write_to_bytes()
        .unwrap()
    }
}

fn pool() -> impl Strategy<Value = Pool> {
    prop_oneof![
        Just(Pool::None),
        (any::<bool>(), any::<bool>())
            .prop_map(|(include_pad, pad)| Pool::Average { include_pad, pad }),
        Just(Pool::Global),
        (any::<bool>(), any::<bool>())
            .prop_map(|(pad, before_relu)| Pool::Max { pad, before_relu }),
    ]
}

/// A network and an input for it: geometry first (sizes that give a conv output of at least
/// 2x2), then the parameters and the input.
fn conv_net_and_input() -> impl Strategy<Value = (ConvNet, Vec<f64>)> {
    (
        1usize..=2,
        3usize..=5,
        3usize..=5,
        1usize..=3,
        (1usize..=3, 1usize..=3),
        (1usize..=2, 1usize..=2),
        prop::array::uniform4(0usize..=1),
        pool(),
        1usize..=3,
    )
        .prop_filter_map(
            "a conv output of at least 2x2",
            |(c_in, h, w, c_out, (kh, kw), (sh, sw), pads, pool, outputs)| {
                let net = ConvNet {
                    c_in,
                    h,
                    w,
                    c_out,
                    kernel: [kh, kw],
                    stride: [sh, sw],
                    pads,
                    pool,
                    outputs,
                    kernel_values: Vec::new(),
                    conv_bias: Vec::new(),
                    dense: Vec::new(),
                    dense_bias: Vec::new(),
                };
                let [ho, wo] = net.conv_out();
                (ho >= 2 && wo >= 2).then_some(net)
            },
        )
        .prop_flat_map(|net| {
            let params = (
                prop::collection::vec(
                    weight(),
                    net.c_out * net.c_in * net.kernel[0] * net.kernel[1],
                ),
                prop::collection::vec(weight(), net.c_out),
                prop::collection::vec(weight(), net.outputs * net.flat()),
                prop::collection::vec(weight(), net.outputs),
                prop::collection::vec(
                    prop_oneof![(-8i32..=8).prop_map(|k| k as f64 / 8.0), -1.0f64..1.0],
                    net.c_in * net.h * net.w,
                ),
            );
            (Just(net), params)
        })
        .prop_map(|(mut net, (k, kb, w, wb, x))| {
            net.kernel_values = k;
            net.conv_bias = kb;
            net.dense = w;
            net.dense_bias = wb;
            (net, x)
        })
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 200,
        ..ProptestConfig::default()
    }
}

fn load(net: &ConvNet) -> Model {
    Model::new(load_bytes(&net.onnx(), Path::new("random.onnx")).expect("a valid conv net"))
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
