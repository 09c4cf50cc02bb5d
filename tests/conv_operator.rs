//! A convolution kept as its kernel ([`Conv`]) is the same map as its sparse rows:
//!
//! - on random small convolutions (strides, pads, dilations, groups, depthwise), its rows
//!   equal the rows written from the definition (and, for one group and no dilation, those
//!   the loaders have always built), and its forward, transposed and whole-layer
//!   applications equal the sparse layer's;
//! - an ONNX convolution above the size kept as rows loads as its kernel and gives the forward
//!   values and train-free relevances of the same network with the convolution as rows;
//! - `--max-memory` refuses a model larger than it in one line, naming the layer.

mod util;

use std::path::Path;

use dtdcert::dtd::{explain, DtdSettings, Rule};
use dtdcert::model::conv::{Conv, ConvShape};
use dtdcert::model::forward::forward;
use dtdcert::model::image::{conv_rows, Window};
use dtdcert::model::ir::{Affine, Layer, Network, Sparse};
use dtdcert::model::onnx::load_bytes;
use ndarray::Array1;
use proptest::prelude::*;
use util::conv::{ConvNet, Pool};

/// A random convolution: its shape, kernel and biases (quarters, so every sum below is
/// exact in f64 whatever its order).
fn convolution() -> impl Strategy<Value = Conv> {
    (
        1usize..4,
        1usize..4,
        prop::bool::ANY,
        (1usize..7, 1usize..7),
        (1usize..4, 1usize..4),
        (1usize..3, 1usize..3),
        (1usize..3, 1usize..3),
        prop::array::uniform4(0usize..3),
    )
        .prop_flat_map(
            |(groups, per_group, depthwise, (h, w), kernel, strides, dilations, pads)| {
                let c_in = groups * per_group;
                // Depthwise: one input channel per group, a multiple of them out.
                let (groups, c_out) = if depthwise {
                    (c_in, c_in * per_group)
                } else {
                    (groups, groups * (per_group % 3 + 1))
                };
                let shape = ConvShape {
                    input: [c_in, h + 2, w + 2],
                    channels: c_out,
                    kernel: [kernel.0, kernel.1],
                    strides: [strides.0, strides.1],
                    pads,
                    dilations: [dilations.0, dilations.1],
                    groups,
                };
                let len = shape.kernel_len().unwrap();
                let quarter = (-8i32..9).prop_map(|v| f64::from(v) / 4.0);
                (
                    Just(shape),
                    prop::collection::vec(quarter.clone(), len),
                    prop::collection::vec(quarter, c_out),
                )
            },
        )
        .prop_filter_map("the kernel fits the padded input", |(shape, k, b)| {
            Conv::new(shape, k, b).ok()
        })
}

/// The rows of `conv` from the definition: output `(o, y, x)` reads input `(c, r, s)` with
/// `r = y·stride + u·dilation − pad` for each kernel tap `(c, u, v)` of its group that lands
/// inside the image, listed by increasing input.
fn rows_by_definition(conv: &Conv) -> Vec<Vec<(u32, f64)>> {
    let s = *conv.shape();
    let [c_in, h, w] = s.input;
    let [c_out, ho, wo] = conv.output();
    let (per_in, per_out) = (c_in / s.groups, c_out / s.groups);
    let mut rows = Vec::new();
    for o in 0..c_out {
        for y in 0..ho {
            for x in 0..wo {
                let mut row = Vec::new();
                for c in 0..per_in {
                    let channel = (o / per_out) * per_in + c;
                    for u in 0..s.kernel[0] {
                        for v in 0..s.kernel[1] {
                            let r =
                                (y * s.strides[0] + u * s.dilations[0]) as i64 - s.pads[0] as i64;
                            let q =
                                (x * s.strides[1] + v * s.dilations[1]) as i64 - s.pads[1] as i64;
                            if r < 0 || q < 0 || r >= h as i64 || q >= w as i64 {
                                continue;
                            }
                            let input = (channel * h + r as usize) * w + q as usize;
                            let k = ((o * per_in + c) * s.kernel[0] + u) * s.kernel[1] + v;
                            row.push((input as u32, conv.kernel()[k]));
                        }
                    }
                }
                row.sort_by_key(|&(i, _)| i);
                rows.push(row);
            }
        }
    }
    rows
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// The operator's rows, forward, transposed and whole-layer applications equal the
    /// sparse rows'.
    #[test]
    fn a_convolution_is_the_map_of_its_rows(conv in convolution(), seed in 0u64..1000) {
        let rows = rows_by_definition(&conv);
        let shape = *conv.shape();
        if shape.groups == 1 && shape.dilations == [1, 1] {
            let window = Window { kernel: shape.kernel, strides: shape.strides, pads: shape.pads };
            let old = conv_rows(conv.kernel(), [shape.channels, shape.input[0]], [shape.input[1], shape.input[2]], &window);
            prop_assert_eq!(&old, &rows);
        }
        let bias: Array1<f64> = (0..conv.out_dim()).map(|j| *conv.bias(j)).collect();
        let (n_in, n_out) = (conv.in_dim(), conv.out_dim());
        let sparse = Affine::Sparse(Sparse::from_rows(n_in, rows.clone(), bias).unwrap());
        let op = Affine::Conv(conv.clone());
        prop_assert_eq!((op.in_dim(), op.out_dim()), (sparse.in_dim(), sparse.out_dim()));
        for j in 0..n_out {
            let (a, b) = (op.row(j), sparse.row(j));
            prop_assert_eq!(a.entries().collect::<Vec<_>>(), b.entries().collect::<Vec<_>>());
            prop_assert_eq!(a.len(), b.len());
            prop_assert_eq!(op.bias(j), sparse.bias(j));
        }
        prop_assert_eq!(op.max_connected(), sparse.max_connected());
        let mut counts = vec![1; n_out];
        conv.add_connected(&mut counts);
        let lengths: Vec<usize> = (0..n_out).map(|j| 1 + sparse.row(j).connected()).collect();
        prop_assert_eq!(counts, lengths);
        prop_assert_eq!(conv.row_weights(), sparse.stored_weights());
        prop_assert_eq!(op.stored_weights(), shape.kernel_len().unwrap());
        prop_assert_eq!(op.dense_matrix(usize::MAX), sparse.dense_matrix(usize::MAX));

        util::operator::products_agree(
            &op,
            &sparse,
            &rows,
            |v, out| conv.apply_transposed_into(v, out),
            seed,
        )?;
    }
}

/// The same network with every convolution kept as its kernel written as sparse rows.
fn as_rows(net: &Network) -> Network {
    let layers = net
        .layers()
        .iter()
        .map(|l| match &l.affine {
            Affine::Conv(c) => {
                let rows = (0..c.out_dim())
                    .map(|j| {
                        let row = l.affine.row(j);
                        row.entries().map(|(i, &w)| (i as u32, w)).collect()
                    })
                    .collect();
                let bias = (0..c.out_dim()).map(|j| *c.bias(j)).collect();
                Layer {
                    affine: Affine::Sparse(Sparse::from_rows(c.in_dim(), rows, bias).unwrap()),
                    ..l.clone()
                }
            }
            _ => l.clone(),
        })
        .collect();
    Network::new(layers).unwrap()
}

/// A 3x96x96 input, Conv 3 -> 40, 3x3, pad 1, stride 1: 40·3·(94·3 + 2·2)^2 ≈ 9.8 million
/// listed weights, above the 2^23 kept as rows; then ReLU, global average pool and a dense
/// layer of 3 outputs.
fn large_conv_net() -> ConvNet {
    let (c_in, side, c_out, outputs) = (3, 96, 40, 3);
    let quarter = |i: usize, m: usize| ((i * 7 + m) % 13) as f64 / 8.0 - 0.75;
    ConvNet {
        c_in,
        h: side,
        w: side,
        c_out,
        kernel: [3, 3],
        stride: [1, 1],
        pads: [1, 1, 1, 1],
        pool: Pool::Global,
        outputs,
        kernel_values: (0..c_out * c_in * 9).map(|i| quarter(i, 1)).collect(),
        conv_bias: (0..c_out).map(|i| quarter(i, 3) / 4.0).collect(),
        dense: (0..outputs * c_out).map(|i| quarter(i, 5)).collect(),
        dense_bias: (0..outputs).map(|i| quarter(i, 2)).collect(),
    }
}

#[test]
fn a_large_onnx_convolution_loads_as_its_kernel_and_explains_as_its_rows() {
    let net = large_conv_net();
    let (c_in, side, outputs) = (net.c_in, net.h, net.outputs);
    let loaded = load_bytes(&net.onnx(), Path::new("large.onnx")).unwrap();
    assert!(matches!(loaded.layers()[0].affine, Affine::Conv(_)));
    let rows = as_rows(&loaded);
    assert!(matches!(rows.layers()[0].affine, Affine::Sparse(_)));

    let x: Vec<f64> = (0..c_in * side * side)
        .map(|i| ((i * 29) % 31) as f64 / 16.0 - 0.5)
        .collect();
    let (a, b) = (forward(&loaded, &x), forward(&rows, &x));
    assert_eq!(a.output(), b.output());
    for rule in [Rule::ZPlus, Rule::Epsilon(0.25)] {
        let settings = DtdSettings {
            rule,
            ..DtdSettings::default()
        };
        for k in 0..outputs {
            let (ea, eb) = (
                explain(&loaded, &a, &settings, k, false),
                explain(&rows, &b, &settings, k, false),
            );
            assert_eq!(
                ea.input_relevance(),
                eb.input_relevance(),
                "output {k}, {rule}"
            );
        }
    }
}

#[test]
fn max_memory_refuses_a_larger_model_in_one_line() {
    let dir = tempfile::TempDir::new().unwrap();
    let net = large_conv_net();
    let model = dir.path().join("large.onnx");
    std::fs::write(&model, net.onnx()).unwrap();
    let inputs = dir.path().join("inputs.npy");
    let x = ndarray::Array2::<f32>::zeros((1, net.c_in * net.h * net.w));
    ndarray_npy::write_npy(&inputs, &x).unwrap();
    let run = |limit: &str| {
        assert_cmd::Command::cargo_bin("dtdcert")
            .unwrap()
            .args(["explain", "--rule", "z+", "--max-memory", limit])
            .arg("--model")
            .arg(&model)
            .arg("--inputs")
            .arg(&inputs)
            .arg("--out")
            .arg(dir.path().join("out.npy"))
            .output()
            .unwrap()
    };
    // One sample's activations of the convolution alone are 40·96·96·8 bytes, 2.8 MiB.
    let refused = run("1M");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    for words in ["large.onnx", "node 'conv'", "--max-memory", "1.0 MiB"] {
        assert!(stderr.contains(words), "{words}: {stderr}");
    }
    let loaded = run("1G");
    assert!(
        loaded.status.success(),
        "{}",
        String::from_utf8_lossy(&loaded.stderr)
    );
}
