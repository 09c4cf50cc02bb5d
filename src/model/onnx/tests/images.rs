//! Image operators: Conv, pooling and batch norm as sparse maps, and the attributes and sizes refused.

use super::*;
use crate::exact::{Rational, Scalar};
use crate::model::forward::output;
use crate::model::ir::Affine;
use crate::model::kind::LayerKind;

/// A residual block on a 1x2x2 image: `r = relu(conv_a(x))`, `s = relu(conv_b(r) + x)`, then a
/// dense layer; `conv_a` scales by `a`, `conv_b` by `b` with bias `c` (1x1 kernels).
pub(crate) fn residual_model(a: f32, b: f32, c: f32) -> ModelProto {
    model(
        vec![
            node("Conv", "ca", &["input", "ka"], &["y"], vec![]),
            node("Relu", "ra", &["y"], &["r"], vec![]),
            node("Conv", "cb", &["r", "kb", "bb"], &["z"], vec![]),
            node("Add", "skip", &["z", "input"], &["t"], vec![]),
            node("Relu", "rb", &["t"], &["s"], vec![]),
            node("Flatten", "flat", &["s"], &["f"], vec![attr_i("axis", 1)]),
            node(
                "Gemm",
                "fc",
                &["f", "w"],
                &["output"],
                vec![attr_i("transB", 1)],
            ),
        ],
        vec![
            floats("ka", &[1, 1, 1, 1], &[a]),
            floats("kb", &[1, 1, 1, 1], &[b]),
            floats("bb", &[1], &[c]),
            floats("w", &[1, 4], &[1.0, 0.5, 0.25, 2.0]),
        ],
        value("input", &[None, Some(1), Some(2), Some(2)]),
        out(1),
    )
}

#[test]
fn layers_keep_the_kind_of_operator_that_made_them_and_the_input_its_shape() {
    let net = load_model(&residual_model(2.0, -1.0, 0.5)).expect("loads");
    // The input is carried past the first ReLU and added in the second convolution's layer.
    assert_eq!(net.widths(), vec![4, 8, 4, 1]);
    assert_eq!(
        net.kinds(),
        &[LayerKind::Conv, LayerKind::Conv, LayerKind::Dense]
    );
    assert_eq!(net.input_shape(), Some(&[1, 2, 2][..]));
    let x = [1.0, -0.5, 0.25, 2.0];
    let s: Vec<f64> = x
        .iter()
        .map(|&v| {
            let r = f64::max(2.0 * v, 0.0);
            f64::max(-r + 0.5 + v, 0.0)
        })
        .collect();
    let want = s[0] + 0.5 * s[1] + 0.25 * s[2] + 2.0 * s[3];
    assert_eq!(output(&net, &x), vec![want]);
}

/// Conv(2 -> 3, 3x2 kernel, stride (2, 1), pads (1, 0, 0, 1)) on a 2x4x3 image, then
/// AveragePool(2x2, stride 1, count_include_pad 0, pads (0, 0, 1, 1)), Flatten, Gemm.
fn conv_model(conv_attrs: Vec<AttributeProto>) -> ModelProto {
    let k: Vec<f32> = (0..36)
        .map(|i| ((i * 7) % 11) as f32 / 4.0 - 1.25)
        .collect();
    let b: Vec<f32> = vec![0.5, -0.25, 0.125];
    let mut attrs = vec![
        attr_is("kernel_shape", &[3, 2]),
        attr_is("strides", &[2, 1]),
        attr_is("pads", &[1, 0, 0, 1]),
    ];
    attrs.extend(conv_attrs);
    // Conv output: h = (4 + 1 - 3) / 2 + 1 = 2, w = (3 + 1 - 2) / 1 + 1 = 3: 3x2x3 = 18.
    // Pool output: (2 + 1 - 2) + 1 = 2, (3 + 1 - 2) + 1 = 3: 3x2x3 = 18.
    let fc: Vec<f32> = (0..36)
        .map(|i| ((i * 5) % 7) as f32 / 8.0 - 0.375)
        .collect();
    model(
        vec![
            node("Conv", "conv", &["input", "k", "kb"], &["c"], attrs),
            node("Relu", "relu", &["c"], &["r"], vec![]),
            node(
                "AveragePool",
                "pool",
                &["r"],
                &["p"],
                vec![
                    attr_is("kernel_shape", &[2, 2]),
                    attr_is("pads", &[0, 0, 1, 1]),
                ],
            ),
            node("Flatten", "flat", &["p"], &["f"], vec![attr_i("axis", 1)]),
            node(
                "Gemm",
                "fc",
                &["f", "w", "wb"],
                &["output"],
                vec![attr_i("transB", 1)],
            ),
        ],
        vec![
            floats("k", &[3, 2, 3, 2], &k),
            floats("kb", &[3], &b),
            floats("w", &[2, 18], &fc),
            floats("wb", &[2], &[0.0, 1.0]),
        ],
        value("input", &[None, Some(2), Some(4), Some(3)]),
        out(2),
    )
}

/// The same network evaluated directly, loop by loop.
fn conv_by_hand(x: &[f64]) -> Vec<f64> {
    let k: Vec<f64> = (0..36)
        .map(|i| ((i * 7) % 11) as f64 / 4.0 - 1.25)
        .collect();
    let kb = [0.5, -0.25, 0.125];
    let px = |c: usize, r: i64, col: i64| -> Option<f64> {
        (0..4)
            .contains(&r)
            .then_some(())
            .filter(|_| (0..3).contains(&col))
            .map(|_| x[(c * 4 + r as usize) * 3 + col as usize])
    };
    let mut conv = [0.0; 18];
    for o in 0..3 {
        for i in 0..2 {
            for j in 0..3 {
                let mut acc = kb[o];
                for c in 0..2 {
                    for u in 0..3 {
                        for v in 0..2 {
                            let r = (i * 2 + u) as i64 - 1;
                            let col = (j + v) as i64;
                            if let Some(val) = px(c, r, col) {
                                acc += k[((o * 2 + c) * 3 + u) * 2 + v] * val;
                            }
                        }
                    }
                }
                conv[(o * 2 + i) * 3 + j] = acc.max(0.0);
            }
        }
    }
    let mut pool = [0.0; 18];
    for c in 0..3 {
        for i in 0..2 {
            for j in 0..3 {
                let (mut sum, mut n) = (0.0, 0.0);
                for u in 0..2 {
                    for v in 0..2 {
                        let (r, col) = (i + u, j + v);
                        if r < 2 && col < 3 {
                            sum += conv[(c * 2 + r) * 3 + col];
                            n += 1.0;
                        }
                    }
                }
                pool[(c * 2 + i) * 3 + j] = sum / n;
            }
        }
    }
    let fc: Vec<f64> = (0..36)
        .map(|i| ((i * 5) % 7) as f64 / 8.0 - 0.375)
        .collect();
    (0..2)
        .map(|o| (0..18).map(|i| fc[o * 18 + i] * pool[i]).sum::<f64>() + [0.0, 1.0][o])
        .collect()
}

#[test]
fn conv_and_average_pool_are_sparse_layers_computing_the_same_function() {
    let net = load_model(&conv_model(vec![])).expect("loads");
    assert_eq!(net.widths(), vec![24, 18, 18, 2]);
    assert_eq!(
        net.kinds(),
        &[LayerKind::Conv, LayerKind::Pool, LayerKind::Dense]
    );
    assert_eq!(net.input_shape(), Some(&[2, 4, 3][..]));
    let relus: Vec<bool> = net.layers().iter().map(|l| l.relu).collect();
    assert_eq!(relus, vec![true, false, false]);
    assert!(net.layers()[..2]
        .iter()
        .all(|l| matches!(l.affine, Affine::Sparse(_))));
    for seed in 0..20u64 {
        let x: Vec<f64> = (0..24)
            .map(|i| (((i as u64 * 31 + seed * 17) % 23) as f64 - 11.0) / 8.0)
            .collect();
        let got = output(&net, &x);
        let want = conv_by_hand(&x);
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= 1e-12 * (1.0 + w.abs()),
                "{got:?} vs {want:?}"
            );
        }
    }
}

#[test]
fn conv_attributes_the_loader_does_not_implement_are_named() {
    for (attr, words) in [
        (attr_i("group", 2), &["conv", "group = 2"][..]),
        (
            attr_is("dilations", &[2, 2]),
            &["conv", "dilations [2, 2]"][..],
        ),
        (
            attr_s("auto_pad", "SAME_UPPER"),
            &["conv", "auto_pad = SAME_UPPER"][..],
        ),
    ] {
        assert_has(&load_err(&conv_model(vec![attr])), words);
    }
}

/// MaxPool alone on a 2x3x3 image (2x2 windows, stride 2, padded at the bottom and
/// right): each output is the largest input its window covers; attributes it does not
/// implement are named.
#[test]
fn max_pool_takes_the_largest_covered_input_and_names_what_it_does_not_read() {
    let pool = |attrs: Vec<AttributeProto>, outputs: &[&str]| {
        let mut all = vec![
            attr_is("kernel_shape", &[2, 2]),
            attr_is("strides", &[2, 2]),
            attr_is("pads", &[0, 0, 1, 1]),
        ];
        all.extend(attrs);
        model(
            vec![node("MaxPool", "mp", &["input"], outputs, all)],
            vec![],
            value("input", &[None, Some(2), Some(3), Some(3)]),
            value("output", &[None, None, None, None]),
        )
    };
    let net = load_model(&pool(vec![], &["output"])).expect("loads");
    assert_eq!(net.widths(), vec![18, 8]);
    assert_eq!(net.layers()[0].max_pool, Some(4));
    for seed in 0..20u64 {
        let x: Vec<f64> = (0..18)
            .map(|i| (((i as u64 * 31 + seed * 17) % 23) as f64 - 11.0) / 8.0)
            .collect();
        let mut want = Vec::new();
        for c in 0..2 {
            for (r0, c0) in [(0, 0), (0, 2), (2, 0), (2, 2)] {
                let mut best = f64::NEG_INFINITY;
                for r in r0..(r0 + 2).min(3) {
                    for col in c0..(c0 + 2).min(3) {
                        best = best.max(x[(c * 3 + r) * 3 + col]);
                    }
                }
                want.push(best);
            }
        }
        assert_eq!(output(&net, &x), want);
    }
    for (attrs, outputs, words) in [
        (
            vec![attr_i("ceil_mode", 1)],
            &["output"][..],
            &["mp", "ceil_mode = 1"][..],
        ),
        (
            vec![attr_is("dilations", &[2, 2])],
            &["output"][..],
            &["mp", "dilations [2, 2]"][..],
        ),
        (
            vec![attr_s("auto_pad", "SAME_UPPER")],
            &["output"][..],
            &["mp", "auto_pad = SAME_UPPER"][..],
        ),
    ] {
        assert_has(&load_err(&pool(attrs, outputs)), words);
    }
    // An Indices output nothing reads changes nothing (storage_order only orders it).
    let with_indices = pool(vec![attr_i("storage_order", 1)], &["output", "indices"]);
    assert_eq!(load_model(&with_indices).expect("loads"), net);
}

#[test]
fn absurd_image_attributes_are_refused_without_overflow_or_allocation() {
    let conv = |attrs: Vec<AttributeProto>, kernel: &[i64], input: &[Option<i64>]| {
        let n: i64 = kernel.iter().product();
        model(
            vec![node("Conv", "c", &["input", "k"], &["output"], attrs)],
            vec![floats("k", kernel, &vec![0.5; n.max(0) as usize])],
            value("input", input),
            value("output", &[None, None, None, None]),
        )
    };
    let image = [None, Some(1), Some(4), Some(4)];
    for (attrs, kernel, input, words) in [
        (
            vec![attr_is("pads", &[i64::MAX, 0, i64::MAX, 0])],
            &[1, 1, 2, 2][..],
            &image[..],
            &["c", "pads", "2^24"][..],
        ),
        (
            vec![attr_is("pads", &[-1, 0, 0, 0])],
            &[1, 1, 2, 2][..],
            &image[..],
            &["c", "pads"][..],
        ),
        (
            vec![attr_is("strides", &[1 << 40, 1])],
            &[1, 1, 2, 2][..],
            &image[..],
            &["c", "strides", "2^24"][..],
        ),
        (
            vec![],
            &[1, 1, 0, 2][..],
            &image[..],
            &["c", "between 1 and 2^24"][..],
        ),
        (
            vec![],
            &[1, 1, 2, 2][..],
            &[None, Some(1), Some(1 << 32), Some(1 << 32)][..],
            &[
                "c",
                "static [channels, height, width] sizes of at most 2^24",
            ][..],
        ),
    ] {
        assert_has(&load_err(&conv(attrs, kernel, input)), words);
    }
    // A huge pooling kernel over a small image: refused at once, not looped over.
    let m = model(
        vec![node(
            "AveragePool",
            "p",
            &["input"],
            &["output"],
            vec![
                attr_is("kernel_shape", &[1 << 24, 1]),
                attr_is("pads", &[1 << 23, 0, 1 << 23, 0]),
            ],
        )],
        vec![],
        value("input", &[None, Some(1), Some(4), Some(4)]),
        value("output", &[None, None, None, None]),
    );
    let started = std::time::Instant::now();
    let _ = load_model(&m);
    assert!(started.elapsed().as_secs_f64() < 5.0);
}

#[test]
fn image_sized_conv_layers_load_sparse_and_larger_ones_as_their_kernel() {
    // 3x128x128 input, Conv 3 -> 16, 3x3, pad 1: 262,144 x 49,152 as a dense matrix, but
    // at most 27 weights per row.
    let kernel: Vec<f32> = (0..432).map(|i| (i % 7) as f32 / 4.0 - 0.75).collect();
    let m = model(
        vec![node(
            "Conv",
            "big",
            &["input", "k"],
            &["output"],
            vec![attr_is("pads", &[1, 1, 1, 1])],
        )],
        vec![floats("k", &[16, 3, 3, 3], &kernel)],
        value("input", &[None, Some(3), Some(128), Some(128)]),
        value("output", &[None, Some(16), Some(128), Some(128)]),
    );
    let net = load_model(&m).expect("loads in sparse form");
    let affine = &net.layers()[0].affine;
    assert!(matches!(affine, Affine::Sparse(_)));
    assert_eq!((affine.in_dim(), affine.out_dim()), (49_152, 262_144));
    // Corners see 2x2 positions of 3 channels, inner positions 3x3.
    assert_eq!(
        affine.stored_weights(),
        16 * (126 * 126 * 27 + 4 * 126 * 18 + 4 * 12)
    );
    // Output (channel 5, row 7, column 9) against the convolution written out.
    let x: Vec<f64> = (0..49_152)
        .map(|i| ((i * 37 % 101) as f64 - 50.0) / 64.0)
        .collect();
    let got = output(&net, &x)[(5 * 128 + 7) * 128 + 9];
    let mut want = 0.0;
    for c in 0..3 {
        for u in 0..3 {
            for v in 0..3 {
                let k = f64::from(kernel[((5 * 3 + c) * 3 + u) * 3 + v]);
                want += k * x[(c * 128 + 6 + u) * 128 + 8 + v];
            }
        }
    }
    assert!((got - want).abs() <= 1e-12, "{got} vs {want}");

    // 64x256x256, Conv 64 -> 64, 3x3: 4,194,304 rows of up to 576 weights, over 2^26 as
    // rows; kept as its kernel of 36,864.
    let m = model(
        vec![node(
            "Conv",
            "huge",
            &["input", "k"],
            &["output"],
            vec![attr_is("pads", &[1, 1, 1, 1])],
        )],
        vec![floats("k", &[64, 64, 3, 3], &vec![0.5; 36_864])],
        value("input", &[None, Some(64), Some(256), Some(256)]),
        value("output", &[None, Some(64), Some(256), Some(256)]),
    );
    let net = load_model(&m).expect("loads as its kernel");
    let affine = &net.layers()[0].affine;
    assert!(matches!(affine, Affine::Conv(_)));
    assert_eq!((affine.in_dim(), affine.out_dim()), (1 << 22, 1 << 22));
    assert_eq!(affine.stored_weights(), 36_864);
    // A corner output reads 2x2 positions of each channel, an inner one 3x3.
    assert_eq!(affine.row(0).connected(), 64 * 4);
    assert_eq!(affine.row(257).connected(), 64 * 9);
}

#[test]
fn batch_norm_folds_into_the_layer_before_it_or_stands_alone() {
    let scale = [2.0f32, 0.5, 1.0];
    let shift = [0.25f32, -1.0, 0.0];
    let mean = [1.0f32, -2.0, 0.5];
    let var = [3.0f32, 0.75, 1.0];
    let bn_inits = || {
        vec![
            floats("s", &[3], &scale),
            floats("t", &[3], &shift),
            floats("m", &[3], &mean),
            floats("v", &[3], &var),
        ]
    };
    let bn = |input: &str, out: &str| {
        node(
            "BatchNormalization",
            "bn",
            &[input, "s", "t", "m", "v"],
            &[out],
            vec![attr_f("epsilon", 0.25)],
        )
    };
    let by_hand = |z: &[f64]| -> Vec<f64> {
        (0..3)
            .map(|c| {
                let s = f64::from(scale[c]) / (f64::from(var[c]) + 0.25).sqrt();
                s * (z[c] - f64::from(mean[c])) + f64::from(shift[c])
            })
            .collect()
    };
    // Gemm 2 -> 3, BN: folded into the Gemm.
    let mut inits = vec![floats("w1", &[3, 2], &W1), floats("b1", &[3], &B1)];
    inits.extend(bn_inits());
    let gemm_bn = model(
        vec![
            node(
                "Gemm",
                "fc",
                &["input", "w1", "b1"],
                &["h"],
                vec![attr_i("transB", 1)],
            ),
            bn("h", "output"),
        ],
        inits.clone(),
        batch(2),
        out(3),
    );
    let folded = load_model(&gemm_bn).expect("loads");
    assert_eq!(folded.widths(), vec![2, 3]);
    // Gemm, Relu, BN: a diagonal layer of its own after the ReLU.
    let alone = load_model(&model(
        vec![
            node(
                "Gemm",
                "fc",
                &["input", "w1", "b1"],
                &["h"],
                vec![attr_i("transB", 1)],
            ),
            node("Relu", "relu", &["h"], &["r"], vec![]),
            bn("r", "output"),
        ],
        inits,
        batch(2),
        out(3),
    ))
    .expect("loads");
    assert_eq!(alone.widths(), vec![2, 3, 3]);
    for x in [[1.0, -2.0], [0.5, 0.25], [-3.0, 1.0]] {
        let z: Vec<f64> = (0..3)
            .map(|j| {
                f64::from(W1[2 * j]) * x[0] + f64::from(W1[2 * j + 1]) * x[1] + f64::from(B1[j])
            })
            .collect();
        let relu: Vec<f64> = z.iter().map(|v| v.max(0.0)).collect();
        for (net, input) in [(&folded, &z), (&alone, &relu)] {
            let got = output(net, &x);
            for (g, w) in got.iter().zip(by_hand(input)) {
                assert!((g - w).abs() <= 1e-14 * (1.0 + w.abs()), "{got:?}");
            }
        }
    }
    // Kept on request: the Gemm, then a diagonal layer; folded, each weight and bias is the
    // kept network's exact composition rounded (weights once, biases twice).
    let bytes = gemm_bn.write_to_bytes().unwrap();
    let kept = load_bytes_with(
        &bytes,
        Path::new("bn.onnx"),
        OnnxOptions {
            keep_batch_norm: true,
            ..OnnxOptions::default()
        },
    )
    .expect("loads");
    assert_eq!(kept.widths(), vec![2, 3, 3]);
    let exact = kept.to_exact();
    let (gemm, diag) = (&exact.layers()[0].affine, &exact.layers()[1].affine);
    let half_ulp =
        |v: f64| Rational::from_f64((v.next_up() - v).abs().max((v - v.next_down()).abs()) / 2.0);
    for j in 0..3 {
        let scale = diag.row(j).dense()[j].clone();
        for (i, w) in gemm.row(j).dense().iter().enumerate() {
            let composed = scale.clone() * w;
            let f = folded.layers()[0].affine.row(j).dense()[i];
            let err = (Rational::from_f64(f) - composed).abs();
            assert!(
                err <= half_ulp(f),
                "weight ({j}, {i}) rounded more than once"
            );
        }
        let composed = scale * gemm.bias(j) + diag.bias(j);
        let f = *folded.layers()[0].affine.bias(j);
        let err = (Rational::from_f64(f) - composed).abs();
        // fl(fl(b·s) + t): one rounding of the product, one of the sum.
        let product = kept.layers()[0].affine.bias(j) * kept.layers()[1].affine.row(j).dense()[j];
        assert!(err <= half_ulp(product) + half_ulp(f), "bias {j}");
    }
    // Training mode is refused.
    let m = model(
        vec![node(
            "BatchNormalization",
            "bn",
            &["input", "s", "t", "m", "v"],
            &["output"],
            vec![attr_i("training_mode", 1)],
        )],
        bn_inits(),
        batch(3),
        out(3),
    );
    assert_has(&load_err(&m), &["bn", "training_mode", "model.eval()"]);
}
