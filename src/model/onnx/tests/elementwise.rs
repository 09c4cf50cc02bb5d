//! Add, Sub, Mul and Div with a constant operand: input normalisation `(x − mean) / std` before
//! a Gemm or a Conv, scaling and shifting after one, and the cases that are refused.

use super::*;
use crate::exact::{Rational, Scalar};
use crate::model::forward::output;
use crate::model::ir::Affine;

/// Inputs whose every value, and every value computed from them below, is exact in f64.
fn samples(width: usize) -> Vec<Vec<f64>> {
    (0..5)
        .map(|s| {
            (0..width)
                .map(|i| ((i * 7 + s * 5) % 13) as f64 / 8.0 - 0.75)
                .collect()
        })
        .collect()
}

const MEAN: [f32; 3] = [0.5, -1.25, 2.0];
const STD: [f32; 3] = [0.5, 2.0, 0.25];
const W: [f32; 6] = [1.0, -0.5, 0.25, 2.0, 0.75, -1.0];
const B: [f32; 2] = [0.125, -2.0];

/// `(x − MEAN) / STD` (per element) before a Gemm 3 → 2, as the network computes it in f64.
fn normalised_gemm(x: &[f64], std: &[f64]) -> Vec<f64> {
    let z: Vec<f64> = (0..3)
        .map(|i| (x[i] - f64::from(MEAN[i])) / std[i])
        .collect();
    (0..2)
        .map(|j| (0..3).map(|i| f64::from(W[3 * j + i]) * z[i]).sum::<f64>() + f64::from(B[j]))
        .collect()
}

fn normalisation_model(std: TensorProto) -> ModelProto {
    model(
        vec![
            node("Sub", "/norm/Sub", &["input", "mean"], &["centred"], vec![]),
            node("Div", "/norm/Div", &["centred", "std"], &["scaled"], vec![]),
            node(
                "Gemm",
                "/fc/Gemm",
                &["scaled", "w", "b"],
                &["output"],
                vec![attr_i("transB", 1)],
            ),
        ],
        vec![
            floats("mean", &[3], &MEAN),
            std,
            floats("w", &[2, 3], &W),
            floats("b", &[2], &B),
        ],
        batch(3),
        out(2),
    )
}

#[test]
fn input_normalisation_before_a_gemm_is_a_diagonal_layer_computing_it_exactly() {
    let net = load_model(&normalisation_model(floats("std", &[3], &STD))).expect("loads");
    // The normalisation is a layer of its own (no ReLU), the Gemm the next.
    assert_eq!(net.widths(), vec![3, 3, 2]);
    assert!(net.layers().iter().all(|l| !l.relu));
    let norm = &net.layers()[0].affine;
    assert!(matches!(norm, Affine::Sparse(_)));
    for i in 0..3 {
        let s = f64::from(STD[i]);
        let entries: Vec<(usize, f64)> = norm.row(i).entries().map(|(k, &v)| (k, v)).collect();
        assert_eq!(entries, vec![(i, 1.0 / s)]);
        assert_eq!(*norm.bias(i), -f64::from(MEAN[i]) / s);
    }
    let std: Vec<f64> = STD.iter().map(|&s| f64::from(s)).collect();
    for x in samples(3) {
        assert_eq!(output(&net, &x), normalised_gemm(&x, &std), "at {x:?}");
    }
}

#[test]
fn div_by_a_constant_that_is_not_a_power_of_two_rounds_each_quotient_once() {
    // 0.3 as an f32: 1/0.3 is not an f64, so the weight is the f64 nearest it.
    let net = load_model(&normalisation_model(floats("std", &[], &[0.3]))).expect("loads");
    let s = f64::from(0.3f32);
    let norm = &net.layers()[0].affine;
    for i in 0..3 {
        assert_eq!(*norm.row(i).dense(), {
            let mut row = vec![0.0; 3];
            row[i] = 1.0 / s;
            row
        });
        assert_eq!(*norm.bias(i), -f64::from(MEAN[i]) / s);
    }
    let product = Rational::from_f64(1.0 / s) * Rational::from_f64(s);
    assert_ne!(
        product,
        Rational::from_f64(1.0),
        "the test needs a quotient that rounds"
    );
    for x in samples(3) {
        let (got, want) = (output(&net, &x), normalised_gemm(&x, &[s; 3]));
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-14 * (1.0 + w.abs()),
                "{got:?} vs {want:?}"
            );
        }
    }
}

#[test]
fn per_channel_normalisation_before_a_conv_computes_it_exactly() {
    // Input 2×3×3; mean and 1/std per channel ([1, 2, 1, 1], as torchvision writes them);
    // Conv 2 → 1, 2×2 kernel: a 2×2 output.
    let mean = [0.25f32, -0.5];
    let inv_std = [2.0f32, 0.5];
    let k: Vec<f32> = (0..8).map(|i| (i as f32 - 3.0) / 4.0).collect();
    let m = model(
        vec![
            node("Sub", "sub", &["input", "mean"], &["c"], vec![]),
            node("Mul", "mul", &["inv_std", "c"], &["n"], vec![]),
            node("Conv", "conv", &["n", "k", "kb"], &["y"], vec![]),
            node("Flatten", "flat", &["y"], &["output"], vec![]),
        ],
        vec![
            floats("mean", &[1, 2, 1, 1], &mean),
            floats("inv_std", &[1, 2, 1, 1], &inv_std),
            floats("k", &[1, 2, 2, 2], &k),
            floats("kb", &[1], &[0.5]),
        ],
        value("input", &[None, Some(2), Some(3), Some(3)]),
        out(4),
    );
    let net = load_model(&m).expect("loads");
    assert_eq!(net.widths(), vec![18, 18, 4]);
    for x in samples(18) {
        let n = |c: usize, r: usize, col: usize| {
            (x[(c * 3 + r) * 3 + col] - f64::from(mean[c])) * f64::from(inv_std[c])
        };
        let want: Vec<f64> = (0..4)
            .map(|o| {
                let (i, j) = (o / 2, o % 2);
                let mut acc = 0.5;
                for c in 0..2 {
                    for u in 0..2 {
                        for v in 0..2 {
                            acc += f64::from(k[(c * 2 + u) * 2 + v]) * n(c, i + u, j + v);
                        }
                    }
                }
                acc
            })
            .collect();
        assert_eq!(output(&net, &x), want, "at {x:?}");
    }
}

#[test]
fn scaling_and_shifting_after_a_gemm_fold_into_it() {
    // relu(1 − 2·(W x + b) · [2, −0.5] + [0.25, 1]) with an exact fold: one layer.
    let m = model(
        vec![
            node(
                "Gemm",
                "fc",
                &["input", "w", "b"],
                &["h"],
                vec![attr_i("transB", 1)],
            ),
            node("Mul", "scale", &["h", "c"], &["s"], vec![]),
            node("Add", "shift", &["d", "s"], &["t"], vec![]),
            node("Sub", "flip", &["one", "t"], &["f"], vec![]),
            node("Relu", "relu", &["f"], &["output"], vec![]),
        ],
        vec![
            floats("w", &[2, 3], &W),
            floats("b", &[2], &B),
            floats("c", &[2], &[2.0, -0.5]),
            floats("d", &[1, 2], &[0.25, 1.0]),
            floats("one", &[], &[1.0]),
        ],
        batch(3),
        out(2),
    );
    let net = load_model(&m).expect("loads");
    assert_eq!(net.widths(), vec![3, 2]);
    assert!(net.layers()[0].relu);
    let (c, d) = ([2.0, -0.5], [0.25, 1.0]);
    for x in samples(3) {
        let want: Vec<f64> = (0..2)
            .map(|j| {
                let h =
                    (0..3).map(|i| f64::from(W[3 * j + i]) * x[i]).sum::<f64>() + f64::from(B[j]);
                (1.0 - (h * c[j] + d[j])).max(0.0)
            })
            .collect();
        assert_eq!(output(&net, &x), want, "at {x:?}");
    }
}

#[test]
fn operands_that_are_not_constants_or_do_not_broadcast_are_refused_naming_the_node() {
    let gemm = |name: &str, out: &str| {
        node(
            "Gemm",
            name,
            &["input", "w", "b"],
            &[out],
            vec![attr_i("transB", 1)],
        )
    };
    let inits = || {
        vec![
            floats("w", &[2, 3], &W),
            floats("b", &[2], &B),
            floats("c", &[2], &[0.0, 4.0]),
            floats("wide", &[2, 2], &[1.0; 4]),
        ]
    };
    // One computed operand (h), or two (h and k).
    let with = |last: NodeProto, both: bool| {
        let mut nodes = vec![gemm("g1", "h")];
        if both {
            nodes.push(gemm("g2", "k"));
        }
        nodes.push(last);
        model(nodes, inits(), batch(3), out(2))
    };
    for (op, inputs, words) in [
        (
            "Mul",
            ["h", "k"],
            &[
                "node 'last' (index 2)",
                "Mul of two computed tensors",
                "constant",
            ][..],
        ),
        (
            "Sub",
            ["h", "k"],
            &[
                "node 'last' (index 2)",
                "Sub of two computed tensors",
                "constant",
            ][..],
        ),
        (
            "Div",
            ["h", "k"],
            &["node 'last' (index 2)", "Div of two computed tensors"][..],
        ),
        (
            "Div",
            ["c", "h"],
            &["node 'last' (index 1)", "constant 'c'", "not affine"][..],
        ),
        (
            "Div",
            ["h", "c"],
            &["node 'last' (index 1)", "Div by 'c'", "0 at element 0"][..],
        ),
        (
            "Add",
            ["h", "wide"],
            &["node 'last' (index 1)", "'wide'", "broadcasts the data"][..],
        ),
    ] {
        let both = inputs == ["h", "k"];
        let m = with(node(op, "last", &inputs, &["output"], vec![]), both);
        assert_has(&load_err(&m), words);
    }
}

/// A row's repeated inputs are merged (their weights summed, refused where the sum rounds),
/// and a row already in increasing order is kept as it is.
#[test]
fn rows_merge_repeated_inputs_and_refuse_sums_that_round() {
    use crate::model::onnx::state::merge_row;
    let merged = merge_row(vec![(3, 1.0), (1, 0.5), (3, 2.0), (0, -1.0), (1, 0.25)]).unwrap();
    assert_eq!(merged, vec![(0, -1.0), (1, 0.75), (3, 3.0)]);
    let increasing = vec![(0, 1.0), (2, -1.0), (5, 0.5)];
    assert_eq!(merge_row(increasing.clone()).unwrap(), increasing);
    assert_eq!(merge_row(Vec::new()).unwrap(), Vec::new());
    let e = merge_row(vec![(4, 1e-30), (2, 0.5), (4, 1.0)]).unwrap_err();
    assert_has(&e, &["reach input 4", "do not sum exactly"]);
}
