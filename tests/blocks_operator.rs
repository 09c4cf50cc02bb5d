//! A map of placed parts ([`Blocks`]) is the same map as its sparse rows:
//!
//! - on random small maps (a convolution reading a slice of a wider input, a second one adding
//!   into part of its outputs from other inputs, copied values beside them), its rows equal
//!   the rows written from its parts, and its forward, transposed and whole-layer applications
//!   equal the sparse layer's; parts adding into a common output from common inputs are
//!   refused;
//! - a small ResNet-50 loaded with every convolution kept as its kernel (its residual blocks
//!   then become such maps) gives the forward values and z+ relevances of the same network
//!   loaded as rows, and so does it with each residual addition split apart
//!   (`split_residual`), its summands then side by side as one such map (the sum itself is one
//!   too, two copies adding into the same outputs, however the convolutions are kept).

mod util;

use std::path::{Path, PathBuf};

use dtdcert::dtd::{explain, DtdSettings, Rule};
use dtdcert::exact::{Rational, Scalar};
use dtdcert::model::blocks::{parts_inside, Blocks, Part, PartMap};
use dtdcert::model::conv::{Conv, ConvShape};
use dtdcert::model::forward::forward;
use dtdcert::model::inputs::load_inputs;
use dtdcert::model::ir::{Affine, Sparse};
use dtdcert::model::onnx::{load_bytes_with, OnnxOptions};
use ndarray::Array1;
use proptest::prelude::*;
use util::operator::blocks_of;

fn quarter() -> impl Strategy<Value = f64> {
    (-8i32..9).prop_map(|v| f64::from(v) / 4.0)
}

/// A random convolution without biases (quarters, so every sum below is exact in f64).
fn convolution() -> impl Strategy<Value = Conv> {
    (
        1usize..3,
        1usize..4,
        (1usize..6, 1usize..6),
        (1usize..4, 1usize..4),
        (1usize..3, 1usize..3),
        prop::array::uniform4(0usize..2),
    )
        .prop_flat_map(|(c_in, c_out, (h, w), kernel, strides, pads)| {
            let shape = ConvShape {
                input: [c_in, h + 1, w + 1],
                channels: c_out,
                kernel: [kernel.0, kernel.1],
                strides: [strides.0, strides.1],
                pads,
                dilations: [1, 1],
                groups: 1,
            };
            let len = shape.kernel_len().unwrap();
            (Just(shape), prop::collection::vec(quarter(), len))
        })
        .prop_filter_map("the kernel fits the padded input", |(shape, k)| {
            Conv::new(shape, k, vec![0.0; shape.channels]).ok()
        })
}

/// A random map of parts ([`blocks_of`]) of [`convolution`]s.
fn blocks() -> impl Strategy<Value = Blocks> {
    blocks_of(convolution, quarter, 40)
}

/// The rows of `blocks` from its parts: each part's rows (a convolution's from
/// [`Conv::row`], a copy's weight 1) moved to its place, merged by input.
fn rows_from_parts(blocks: &Blocks) -> Vec<Vec<(u32, f64)>> {
    let mut rows = vec![Vec::new(); blocks.out_dim()];
    for p in blocks.parts() {
        match &p.map {
            PartMap::Conv(c) => {
                for j in 0..c.out_dim() {
                    let (inputs, values) = c.row(j);
                    let placed = inputs.iter().map(|&i| i + p.input as u32).zip(values);
                    rows[p.output + j].extend(placed);
                }
            }
            PartMap::Copy(n) => {
                for j in 0..*n {
                    rows[p.output + j].push(((p.input + j) as u32, 1.0));
                }
            }
        }
    }
    for row in &mut rows {
        row.sort_by_key(|&(i, _)| i);
    }
    rows
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// The map's rows, forward, transposed and whole-layer applications equal the sparse
    /// rows'.
    #[test]
    fn a_map_of_parts_is_the_map_of_its_rows(blocks in blocks(), seed in 0u64..1000) {
        let rows = rows_from_parts(&blocks);
        for row in &rows {
            prop_assert!(row.windows(2).all(|p| p[0].0 < p[1].0), "an input listed twice");
        }
        let bias: Array1<f64> = blocks.biases().iter().copied().collect();
        let (n_in, n_out) = (blocks.in_dim(), blocks.out_dim());
        let sparse = Affine::Sparse(Sparse::from_rows(n_in, rows.clone(), bias).unwrap());
        let op = Affine::Blocks(blocks.clone());
        prop_assert_eq!((op.in_dim(), op.out_dim()), (sparse.in_dim(), sparse.out_dim()));
        for j in 0..n_out {
            let (a, b) = (op.row(j), sparse.row(j));
            prop_assert_eq!(a.entries().collect::<Vec<_>>(), b.entries().collect::<Vec<_>>());
            prop_assert_eq!(a.len(), b.len());
            prop_assert_eq!(op.bias(j), sparse.bias(j));
        }
        prop_assert_eq!(op.max_connected(), sparse.max_connected());
        let kernels: usize = blocks.parts().iter().map(|p| match &p.map {
            PartMap::Conv(c) => c.kernel().len(),
            PartMap::Copy(_) => 0,
        }).sum();
        prop_assert_eq!(op.stored_weights(), kernels);
        prop_assert_eq!(op.dense_matrix(usize::MAX), sparse.dense_matrix(usize::MAX));

        util::operator::products_agree(
            &op,
            &sparse,
            &rows,
            |v, out| blocks.apply_transposed_into(v, out),
            seed,
        )?;
        let a: Vec<f64> = (0..n_in)
            .map(|i| ((i as u64 * 37 + seed * 11) % 17) as f64 / 8.0 - 1.0)
            .collect();
        let mut want = Vec::new();
        sparse.apply_into(&a, &mut want);

        // The same map in exact arithmetic: the f64 values, exactly.
        let exact = blocks.map(|&w| Rational::from_f64(w));
        let exact_a: Vec<_> = a.iter().map(|&x| Rational::from_f64(x)).collect();
        let mut exact_out = Vec::new();
        exact.apply_into(&exact_a, &mut exact_out);
        let as_f64: Vec<f64> = exact_out.iter().map(|x| x.to_f64()).collect();
        prop_assert_eq!(as_f64, want);
    }
}

#[test]
fn parts_adding_into_an_output_from_a_common_input_are_refused() {
    let conv = |c_out| {
        let shape = ConvShape {
            input: [1, 3, 3],
            channels: c_out,
            kernel: [2, 2],
            strides: [1, 1],
            pads: [0; 4],
            dilations: [1, 1],
            groups: 1,
        };
        Conv::new(shape, vec![0.5; 4 * c_out], vec![0.0; c_out]).unwrap()
    };
    let part = |input, output| Part {
        input,
        output,
        map: PartMap::Conv(conv(1)),
    };
    // Outputs 0..4 both times; inputs 0..9 and 8..17 share input 8.
    let err = Blocks::new(17, vec![part(0, 0), part(8, 0)], vec![0.0; 4]).unwrap_err();
    assert!(err.to_string().contains("both read inputs"), "{err}");
    // Inputs 9..18 are the next nine: the sum is one map.
    assert!(Blocks::new(18, vec![part(0, 0), part(9, 0)], vec![0.0; 4]).is_ok());
    // A convolution's own biases belong to the map.
    let biased = Part {
        input: 0,
        output: 0,
        map: PartMap::Conv(Conv::new(*conv(1).shape(), vec![0.5; 4], vec![1.0]).unwrap()),
    };
    let err = Blocks::new(9, vec![biased], vec![0.0; 4]).unwrap_err();
    assert!(err.to_string().contains("biases of its own"), "{err}");
}

/// The map of a range of outputs keeps the parts inside it, renumbered from its start, with
/// their biases; a range that cuts a part has none.
#[test]
fn a_range_of_outputs_keeps_the_parts_inside_it() {
    let ranges = [(0, 4), (4, 3)];
    for ((start, end), inside) in [
        ((0, 4), Some(vec![0])),
        ((4, 7), Some(vec![1])),
        ((0, 7), Some(vec![0, 1])),
        ((7, 7), Some(vec![])),
        ((2, 7), None),
        ((0, 5), None),
    ] {
        assert_eq!(parts_inside(ranges, start, end), inside, "{start}..{end}");
    }
    let shape = ConvShape {
        input: [1, 3, 3],
        channels: 1,
        kernel: [2, 2],
        strides: [1, 1],
        pads: [0; 4],
        dilations: [1, 1],
        groups: 1,
    };
    let conv = Conv::new(shape, vec![0.5; 4], vec![0.0]).unwrap();
    let parts = vec![
        Part {
            input: 0,
            output: 0,
            map: PartMap::Conv(conv.clone()),
        },
        Part {
            input: 9,
            output: 4,
            map: PartMap::Copy(3),
        },
    ];
    let bias: Vec<f64> = (0..7).map(f64::from).collect();
    let blocks = Blocks::new(12, parts, bias).unwrap();
    let copies = blocks.outputs(4, 7).unwrap();
    assert_eq!(copies.biases(), &[4.0, 5.0, 6.0]);
    assert_eq!(copies.in_dim(), 12);
    assert_eq!(
        copies.parts(),
        &[Part {
            input: 9,
            output: 0,
            map: PartMap::Copy(3)
        }]
    );
    let convolved = blocks.outputs(0, 4).unwrap();
    assert_eq!(convolved.parts()[0].map, PartMap::Conv(conv));
    assert!(blocks.outputs(2, 7).is_none());
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/conformance_cnn")
        .join(name)
}

#[test]
fn a_residual_network_kept_as_kernels_explains_as_its_rows() {
    let bytes = std::fs::read(fixture("resnet50_small.onnx")).unwrap();
    let path = Path::new("resnet50_small.onnx");
    let rows = load_bytes_with(&bytes, path, OnnxOptions::default()).unwrap();
    let kernels = OnnxOptions {
        conv_rows_up_to: Some(0),
        ..OnnxOptions::default()
    };
    let parts = load_bytes_with(&bytes, path, kernels).unwrap();
    let count = |net: &dtdcert::model::Network, f: fn(&Affine) -> bool| {
        net.layers().iter().filter(|l| f(&l.affine)).count()
    };
    assert_eq!(
        count(&rows, |a| matches!(a, Affine::Blocks(_) | Affine::Conv(_))),
        0
    );
    // Each of the 16 Bottlenecks: its first convolution carrying the block input, its second
    // reading a slice and carrying it, its end the sum of two parts.
    assert_eq!(count(&parts, |a| matches!(a, Affine::Blocks(_))), 3 * 16);
    assert_eq!(parts.widths(), rows.widths());
    explains_alike(&parts, &rows);
}

#[test]
fn a_residual_network_split_apart_and_kept_as_kernels_explains_as_its_rows() {
    let bytes = std::fs::read(fixture("resnet50_small.onnx")).unwrap();
    let path = Path::new("resnet50_small.onnx");
    let split = OnnxOptions {
        split_residual: true,
        ..OnnxOptions::default()
    };
    let rows = load_bytes_with(&bytes, path, split.clone()).unwrap();
    let kernels = OnnxOptions {
        conv_rows_up_to: Some(0),
        ..split
    };
    let parts = load_bytes_with(&bytes, path, kernels).unwrap();
    let blocks = |net: &dtdcert::model::Network| {
        net.layers()
            .iter()
            .filter(|l| matches!(l.affine, Affine::Blocks(_)))
            .count()
    };
    // Each of the 16 Bottlenecks' sums: two copies adding into the same outputs.
    assert_eq!(blocks(&rows), 16);
    // Besides, each Bottleneck's first two convolutions carrying the block input, then its
    // two summands side by side as one map of parts.
    assert_eq!(blocks(&parts), 4 * 16);
    assert_eq!(parts.widths(), rows.widths());
    explains_alike(&parts, &rows);
}

/// The same layers (activations), forward values and z+ relevances of the top two outputs.
fn explains_alike(parts: &dtdcert::model::Network, rows: &dtdcert::model::Network) {
    for (a, b) in parts.layers().iter().zip(rows.layers()) {
        assert_eq!(
            (a.relu, a.linear_tail, a.max_pool),
            (b.relu, b.linear_tail, b.max_pool)
        );
    }

    let inputs = load_inputs(&fixture("resnet50_small.inputs.npy"), None).unwrap();
    let x = inputs.row(0).unwrap();
    let (a, b) = (forward(parts, &x), forward(rows, &x));
    assert_eq!(a.output(), b.output());
    let settings = DtdSettings {
        rule: Rule::ZPlus,
        ..DtdSettings::default()
    };
    let top = (0..rows.output_dim())
        .max_by(|&i, &j| b.output()[i].total_cmp(&b.output()[j]))
        .unwrap();
    for k in [top, (top + 1) % rows.output_dim()] {
        let (ea, eb) = (
            explain(parts, &a, &settings, k, false),
            explain(rows, &b, &settings, k, false),
        );
        assert_eq!(ea.input_relevance(), eb.input_relevance(), "output {k}");
    }
}
