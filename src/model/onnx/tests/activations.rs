//! Clip, LeakyRelu and PRelu: each loads as a layer's activation whose forward pass (f64 and
//! exact) equals the operator computed directly, the shorthands that are a ReLU or no
//! activation at all, and the constants refused.

use super::*;
use crate::exact::{Rational, Scalar};
use crate::model::forward::forward;
use crate::model::ir::Activation;

/// Inputs at which every value of the reference network is exact in f64.
fn points() -> Vec<[f64; 2]> {
    let mut out = Vec::new();
    for a in -6..=6 {
        for b in -4..=4 {
            out.push([f64::from(a) * 0.75, f64::from(b) * 1.25]);
        }
    }
    out
}

/// Gemm(W1, B1), `act` (its nodes, reading `h`, writing `r`), Gemm(W2, B2).
fn with_activation(act: Vec<NodeProto>, extra: Vec<TensorProto>, opset: i64) -> ModelProto {
    let mut nodes = vec![node(
        "Gemm",
        "/fc1/Gemm",
        &["input", "w1", "b1"],
        &["h"],
        vec![attr_i("transB", 1)],
    )];
    nodes.extend(act);
    nodes.push(node(
        "Gemm",
        "/fc2/Gemm",
        &["r", "w2", "b2"],
        &["output"],
        vec![attr_i("transB", 1)],
    ));
    let mut inits = vec![
        floats("w1", &[3, 2], &W1),
        floats("b1", &[3], &B1),
        floats("w2", &[1, 3], &W2),
        floats("b2", &[1], &B2),
    ];
    inits.extend(extra);
    let mut m = model(nodes, inits, batch(2), out(1));
    m.opset_import[0].version = opset;
    m
}

/// The reference network with `act(j, z_j)` in place of the ReLU, computed directly.
fn by_hand(x: [f64; 2], act: impl Fn(usize, f64) -> f64) -> f64 {
    let w1 = W1.map(f64::from);
    let b1 = B1.map(f64::from);
    let h: Vec<f64> = (0..3)
        .map(|j| act(j, w1[2 * j] * x[0] + w1[2 * j + 1] * x[1] + b1[j]))
        .collect();
    (0..3).map(|j| f64::from(W2[j]) * h[j]).sum::<f64>() + f64::from(B2[0])
}

/// Loads `m`, checks that its first layer applies `expected`, and that the forward pass in
/// f64 and in exact rationals equals `act` computed directly at every point.
fn assert_computes(m: &ModelProto, expected: &Activation, act: impl Fn(usize, f64) -> f64) {
    let net = load_model(m).expect("loads");
    assert_eq!(net.widths(), vec![2, 3, 1]);
    let layer = &net.layers()[0];
    assert!(layer.relu);
    assert_eq!(&layer.activation, expected);
    let exact = net.to_exact();
    for x in points() {
        let want = by_hand(x, &act);
        assert_eq!(output(&net, &x), vec![want], "at {x:?}");
        let xr: Vec<Rational> = x.iter().map(|&v| Rational::from_f64(v)).collect();
        let trace = forward(&exact, &xr);
        assert_eq!(trace.output(), &[Rational::from_f64(want)], "at {x:?}");
        // The pre-activations are kept as they are; the activations are act(z).
        for (j, z) in trace.pre[0].iter().enumerate() {
            assert_eq!(trace.activations[1][j].to_f64(), act(j, z.to_f64()));
        }
    }
}

/// `m` loads without any activation and computes the reference network without one.
fn assert_passes_through(m: &ModelProto) {
    let net = load_model(m).expect("loads");
    assert!(net.layers().iter().all(|l| !l.relu), "{}", net.describe());
    for x in points() {
        assert_eq!(output(&net, &x), vec![by_hand(x, |_, z| z)], "at {x:?}");
    }
}

#[test]
fn clip_with_input_bounds_is_relu6_and_hardtanh() {
    for (lo, hi) in [(0.0f32, 6.0f32), (-1.0, 1.0), (-2.5, 0.5)] {
        let m = with_activation(
            vec![node(
                "Clip",
                "/act/Clip",
                &["h", "lo", "hi"],
                &["r"],
                vec![],
            )],
            vec![floats("lo", &[], &[lo]), floats("hi", &[], &[hi])],
            17,
        );
        let (lo, hi) = (f64::from(lo), f64::from(hi));
        let expected = Activation::Clip {
            lo: Some(lo),
            hi: Some(hi),
        };
        assert_computes(&m, &expected, |_, z| z.clamp(lo, hi));
    }
}

#[test]
fn clip_before_opset_11_takes_its_bounds_as_attributes() {
    let m = with_activation(
        vec![node(
            "Clip",
            "/act/Clip",
            &["h"],
            &["r"],
            vec![attr_f("min", -1.0), attr_f("max", 2.0)],
        )],
        vec![],
        10,
    );
    let expected = Activation::Clip {
        lo: Some(-1.0),
        hi: Some(2.0),
    };
    assert_computes(&m, &expected, |_, z| z.clamp(-1.0, 2.0));
    // The default of an absent bound is the largest f32, which is no bound.
    let m = with_activation(
        vec![node(
            "Clip",
            "/act/Clip",
            &["h"],
            &["r"],
            vec![attr_f("min", -f32::MAX), attr_f("max", 0.5)],
        )],
        vec![],
        7,
    );
    let expected = Activation::Clip {
        lo: None,
        hi: Some(0.5),
    };
    assert_computes(&m, &expected, |_, z| z.min(0.5));
}

#[test]
fn clip_with_one_bound_is_a_shifted_relu_and_with_min_0_a_relu() {
    let one = |lo: Option<f32>, hi: Option<f32>| {
        let mut extra = Vec::new();
        let inputs = [
            "h",
            if lo.is_some() { "lo" } else { "" },
            if hi.is_some() { "hi" } else { "" },
        ];
        if let Some(v) = lo {
            extra.push(floats("lo", &[1], &[v]));
        }
        if let Some(v) = hi {
            extra.push(floats("hi", &[1], &[v]));
        }
        let inputs = if hi.is_none() {
            &inputs[..2]
        } else {
            &inputs[..]
        };
        with_activation(
            vec![node("Clip", "/act/Clip", inputs, &["r"], vec![])],
            extra,
            13,
        )
    };
    assert_computes(&one(Some(0.0), None), &Activation::Relu, |_, z| z.max(0.0));
    let shifted = Activation::Clip {
        lo: Some(-1.5),
        hi: None,
    };
    assert_computes(&one(Some(-1.5), None), &shifted, |_, z| z.max(-1.5));
    let capped = Activation::Clip {
        lo: None,
        hi: Some(1.0),
    };
    assert_computes(&one(None, Some(1.0)), &capped, |_, z| z.min(1.0));
    // Neither bound: the input passes through, to the second Gemm without activation.
    assert_passes_through(&one(None, None));
}

#[test]
fn leaky_relu_uses_alpha_below_zero() {
    let leaky = |attrs| {
        with_activation(
            vec![node("LeakyRelu", "/act/LeakyRelu", &["h"], &["r"], attrs)],
            vec![],
            17,
        )
    };
    let m = leaky(vec![attr_f("alpha", 0.25)]);
    let expected = Activation::LeakyRelu { alpha: 0.25 };
    assert_computes(&m, &expected, |_, z| if z > 0.0 { z } else { 0.25 * z });
    // The default alpha is the f32 nearest 0.01.
    let alpha = f64::from(0.01f32);
    let net = load_model(&leaky(vec![])).expect("loads");
    assert_eq!(net.layers()[0].activation, Activation::LeakyRelu { alpha });
    assert_computes(
        &leaky(vec![attr_f("alpha", 0.0)]),
        &Activation::Relu,
        |_, z| z.max(0.0),
    );
    assert_passes_through(&leaky(vec![attr_f("alpha", 1.0)]));
}

#[test]
fn prelu_broadcasts_its_slope_over_the_data() {
    let prelu = |dims: &[i64], slope: &[f32]| {
        with_activation(
            vec![node("PRelu", "/act/PRelu", &["h", "slope"], &["r"], vec![])],
            vec![floats("slope", dims, slope)],
            17,
        )
    };
    let slopes = [0.5, -0.25, 2.0];
    let expected = Activation::PRelu {
        slopes: slopes.to_vec(),
    };
    assert_computes(
        &prelu(&[3], &slopes.map(|s| s as f32)),
        &expected,
        |j, z| {
            if z > 0.0 {
                z
            } else {
                slopes[j] * z
            }
        },
    );
    let shared = Activation::PRelu {
        slopes: vec![0.125; 3],
    };
    assert_computes(&prelu(&[1], &[0.125]), &shared, |_, z| {
        if z > 0.0 {
            z
        } else {
            0.125 * z
        }
    });
    assert_computes(&prelu(&[3], &[0.0; 3]), &Activation::Relu, |_, z| {
        z.max(0.0)
    });
    let e = load_err(&prelu(&[2], &[0.5, 0.5]));
    assert_has(&e, &["/act/PRelu", "slope 'slope'", "does not broadcast"]);
}

/// Conv 1×1 on a 2-channel 1×2 image, PRelu with a `[C, 1, 1]` slope, Flatten, Gemm: one
/// slope per channel, each for both pixels of its channel.
#[test]
fn prelu_on_an_image_takes_one_slope_per_channel() {
    let m = model(
        vec![
            node(
                "Conv",
                "conv",
                &["input", "k"],
                &["c"],
                vec![attr_is("kernel_shape", &[1, 1])],
            ),
            node("PRelu", "prelu", &["c", "slope"], &["r"], vec![]),
            node("Flatten", "flat", &["r"], &["f"], vec![attr_i("axis", 1)]),
            node(
                "Gemm",
                "fc",
                &["f", "w"],
                &["output"],
                vec![attr_i("transB", 1)],
            ),
        ],
        vec![
            floats("k", &[2, 2, 1, 1], &[1.0, -1.0, 0.5, 2.0]),
            floats("slope", &[2, 1, 1], &[0.25, -0.5]),
            floats("w", &[1, 4], &[1.0, 2.0, -1.0, 0.5]),
        ],
        value("input", &[None, Some(2), Some(1), Some(2)]),
        out(1),
    );
    let net = load_model(&m).expect("loads");
    assert_eq!(
        net.layers()[0].activation,
        Activation::PRelu {
            slopes: vec![0.25, 0.25, -0.5, -0.5]
        }
    );
    for x in [[1.0, -2.0, 3.0, 0.5], [-1.0, 2.0, -3.0, -0.5], [0.0; 4]] {
        let conv = [
            x[0] - x[2],
            x[1] - x[3],
            0.5 * x[0] + 2.0 * x[2],
            0.5 * x[1] + 2.0 * x[3],
        ];
        let slope = [0.25, 0.25, -0.5, -0.5];
        let h: Vec<f64> = (0..4)
            .map(|p| {
                if conv[p] > 0.0 {
                    conv[p]
                } else {
                    slope[p] * conv[p]
                }
            })
            .collect();
        let want = h[0] + 2.0 * h[1] - h[2] + 0.5 * h[3];
        assert_eq!(output(&net, &x), vec![want], "at {x:?}");
    }
}

#[test]
fn constants_that_are_no_piecewise_linear_activation_are_refused() {
    let clip = |lo: f32, hi: f32| {
        with_activation(
            vec![node(
                "Clip",
                "/act/Clip",
                &["h", "lo", "hi"],
                &["r"],
                vec![],
            )],
            vec![floats("lo", &[], &[lo]), floats("hi", &[], &[hi])],
            17,
        )
    };
    assert_has(&load_err(&clip(6.0, 6.0)), &["/act/Clip", "not below max"]);
    assert_has(&load_err(&clip(1.0, -1.0)), &["/act/Clip", "not below max"]);
    let two = with_activation(
        vec![node("Clip", "/act/Clip", &["h", "lo"], &["r"], vec![])],
        vec![floats("lo", &[2], &[0.0, 1.0])],
        17,
    );
    assert_has(&load_err(&two), &["/act/Clip", "holds 2 values"]);
    let attribute = with_activation(
        vec![node(
            "Clip",
            "/act/Clip",
            &["h"],
            &["r"],
            vec![attr_f("min", 0.0)],
        )],
        vec![],
        17,
    );
    assert_has(&load_err(&attribute), &["/act/Clip", "before opset 11"]);
    let computed = with_activation(
        vec![node("PRelu", "/act/PRelu", &["h", "h"], &["r"], vec![])],
        vec![],
        17,
    );
    assert_has(&load_err(&computed), &["/act/PRelu"]);
    // A smooth activation keeps the error that names the node and the operator.
    let sigmoid = with_activation(
        vec![node("Sigmoid", "/act/Sigmoid", &["h"], &["r"], vec![])],
        vec![],
        17,
    );
    assert_has(&load_err(&sigmoid), &["/act/Sigmoid", "Sigmoid"]);
}

#[test]
fn the_activation_is_part_of_the_fingerprint_and_the_audit_refuses_it() {
    let relu = load_model(&matmul_add_model(false)).expect("loads");
    let relu6 = with_activation(
        vec![node(
            "Clip",
            "/act/Clip",
            &["h", "lo", "hi"],
            &["r"],
            vec![],
        )],
        vec![floats("lo", &[], &[0.0]), floats("hi", &[], &[6.0])],
        17,
    );
    let bytes = relu6.write_to_bytes().expect("serialise");
    let (_dir, path) = write_bytes(&bytes);
    let net = load(&path).expect("loads");
    assert_ne!(net.fingerprint(), relu.fingerprint());
    assert!(
        net.describe().contains("Clip at layer 1"),
        "{}",
        net.describe()
    );
    let model = crate::model::Model::load(&path).expect("audited and explained");
    let e = model.net().require_relu("certify").unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert_has(
        &e.in_file(&path).to_string(),
        &[
            "model.onnx",
            "layer 1 applies Clip",
            "certify reads ReLU networks only",
        ],
    );
}
