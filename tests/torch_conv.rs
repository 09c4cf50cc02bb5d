//! The libtorch backend's convolution layouts (feature `torch`) against the same maps as
//! sparse rows, in f64:
//!
//! - a kernel convolution ([`Affine::Conv`]; strides 1–3, pads 0–2 on each side, dilations
//!   1–2, one or two groups or depthwise) runs as `conv2d` and `conv_transpose2d`, and its
//!   products forwards (`a Wᵀ`) and backwards (`t W`) equal the sparse layout's built from
//!   its rows within 1e-12 of the largest sum of absolute products, for `W` and for the maps
//!   the rules take of it (non-negative part, positive and negative parts, square, all ones);
//!   its connection counts, listed at once, equal its rows' lengths (window positions in the
//!   padding are no connections);
//! - the same for a map of parts ([`Affine::Blocks`]): convolutions reading slices of a wider
//!   input and adding into parts of the output, and copied values beside them;
//! - the same for short sparse rows ([`Affine::Sparse`], empty rows among them), which run as
//!   a padded gather, and for a convolution's rows in that layout (the rows at the border,
//!   shorter, padded).

#![cfg(feature = "torch")]

mod util;

use dtdcert::model::blocks::Blocks;
use dtdcert::model::conv::{Conv, ConvShape};
use dtdcert::model::ir::{Affine, Sparse};
use dtdcert::torch::{to_f64, Linear};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tch::{Device, Kind, Tensor};
use util::operator::blocks_of;

/// Kernel weights: f32 values of mixed signs, and zeros (listed weights all the same).
fn weight() -> impl Strategy<Value = f64> {
    prop_oneof![
        1 => Just(0.0),
        6 => (-2.0f64..2.0).prop_map(|v| v as f32 as f64),
    ]
}

/// A random convolution without biases: 1–3 groups of 1–2 input channels (depthwise: one
/// input channel per group and a multiple of it out), a 3–8 × 3–8 image, a kernel up to 3×3,
/// strides 1–3, dilations 1–2 and pads 0–2 on each side.
fn convolution() -> impl Strategy<Value = Conv> {
    (
        (1usize..=3, 1usize..=2, any::<bool>()),
        (3usize..=8, 3usize..=8),
        (1usize..=3, 1usize..=3),
        (1usize..=3, 1usize..=3),
        (1usize..=2, 1usize..=2),
        prop::array::uniform4(0usize..=2),
    )
        .prop_flat_map(
            |((groups, per_group, depthwise), (h, w), kernel, strides, dilations, pads)| {
                let c_in = groups * per_group;
                let (groups, c_out) = match depthwise {
                    true => (c_in, c_in * per_group),
                    false => (groups, groups * (3 - per_group)),
                };
                let shape = ConvShape {
                    input: [c_in, h, w],
                    channels: c_out,
                    kernel: [kernel.0, kernel.1],
                    strides: [strides.0, strides.1],
                    pads,
                    dilations: [dilations.0, dilations.1],
                    groups,
                };
                let len = shape.kernel_len().unwrap();
                (Just(shape), prop::collection::vec(weight(), len))
            },
        )
        .prop_filter_map("the kernel fits the padded input", |(shape, kernel)| {
            Conv::new(shape, kernel, vec![0.0; shape.channels]).ok()
        })
}

/// A random map of parts ([`blocks_of`]) of [`convolution`]s.
fn blocks() -> impl Strategy<Value = Blocks> {
    blocks_of(convolution, weight, 200)
}

/// A sparse map of 1–12 rows of 0–4 entries each over 1–10 inputs.
fn sparse() -> impl Strategy<Value = Sparse> {
    (1usize..=10).prop_flat_map(|in_dim| {
        let row = proptest::sample::subsequence(
            (0..in_dim as u32).collect::<Vec<_>>(),
            0..=in_dim.min(4),
        )
        .prop_flat_map(|inputs| {
            let n = inputs.len();
            (Just(inputs), proptest::collection::vec(weight(), n))
        })
        .prop_map(|(inputs, weights)| inputs.into_iter().zip(weights).collect::<Vec<_>>());
        proptest::collection::vec(row, 1..=12).prop_map(move |rows| {
            let bias = ndarray::Array1::zeros(rows.len());
            Sparse::from_rows(in_dim, rows, bias).unwrap()
        })
    })
}

/// A map of the weights, elementwise.
type WeightMap = fn(&Tensor) -> Tensor;

/// The maps of `W` the rules take, by name.
fn maps() -> Vec<(&'static str, WeightMap)> {
    vec![
        ("W", |w| w.shallow_clone()),
        ("W ⊙ 1[W >= 0]", |w| {
            w.where_self(&w.ge(0.0), &w.zeros_like())
        }),
        ("W⁺", |w| w.clamp_min(0.0)),
        ("W⁻", |w| w.clamp_max(0.0)),
        ("W²", |w| w * w),
        ("ones", |w| w.ones_like()),
    ]
}

/// `got` equals `want` within `1e-12 · scale` (exactly where `scale` is 0).
fn close(got: &Tensor, want: &Tensor, scale: &Tensor, what: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.size(), want.size(), "{}: shapes", what);
    let (got, want) = (to_f64(got), to_f64(want));
    let scale = to_f64(scale).into_iter().fold(0.0f64, f64::max);
    let worst = got
        .iter()
        .zip(&want)
        .fold(0.0f64, |m, (g, w)| m.max((g - w).abs()));
    prop_assert!(
        worst <= 1e-12 * scale,
        "{}: differs by {:e} (scale {:e})",
        what,
        worst,
        scale
    );
    Ok(())
}

/// `affine` in its own layout (`is_own` says which) and as sparse rows give the same products
/// forwards and backwards on a batch of three, for `W` and each of its maps; and `affine`'s
/// connection counts, listed at once, are its rows'.
fn layouts_agree(
    affine: &Affine,
    is_own: fn(&Linear) -> bool,
    seed: u64,
) -> Result<(), TestCaseError> {
    let own = Linear::of(affine, Kind::Double, Device::Cpu);
    prop_assert!(is_own(&own), "the layout of the operator");
    layout_agrees(affine, own, seed)
}

/// `own`, a layout of `affine`, and `affine` as sparse rows give the same products, and the
/// connection counts agree, as [`layouts_agree`] checks.
fn layout_agrees(affine: &Affine, own: Linear, seed: u64) -> Result<(), TestCaseError> {
    let (kind, device) = (Kind::Double, Device::Cpu);
    let rows = Linear::of_rows(affine, kind, device);
    prop_assert!(matches!(rows, Linear::Sparse(_)));
    let (n_in, n_out) = (affine.in_dim() as i64, affine.out_dim() as i64);
    prop_assert_eq!((own.in_dim(), own.out_dim()), (n_in, n_out));
    tch::manual_seed(seed as i64);
    let a = Tensor::randn([3, n_in], (kind, device));
    let t = Tensor::randn([3, n_out], (kind, device));
    for (name, f) in maps() {
        let (mapped, reference) = (own.map(f), rows.map(f));
        let absolute = rows.map(|w| f(w).abs());
        close(
            &mapped.forward(&a),
            &reference.forward(&a),
            &absolute.forward(&a.abs()),
            &format!("{name}, forwards"),
        )?;
        close(
            &mapped.backward(&t),
            &reference.backward(&t),
            &absolute.backward(&t.abs()),
            &format!("{name}, backwards"),
        )?;
    }
    let counts: Vec<usize> = (0..affine.out_dim())
        .map(|j| affine.row(j).connected())
        .collect();
    prop_assert_eq!(affine.connected_counts(), counts);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// A kernel convolution's `conv2d` layout is the map of its rows.
    #[test]
    fn a_convolution_runs_as_the_map_of_its_rows(conv in convolution(), seed in 0u64..1000) {
        layouts_agree(&Affine::Conv(conv), |l| matches!(l, Linear::Conv(_)), seed)?;
    }

    /// A map of parts' layout is the map of its rows.
    #[test]
    fn a_map_of_parts_runs_as_the_map_of_its_rows(blocks in blocks(), seed in 0u64..1000) {
        layouts_agree(&Affine::Blocks(blocks), |l| matches!(l, Linear::Blocks(_)), seed)?;
    }

    /// Short sparse rows run gathered, as the map of their rows.
    #[test]
    fn short_sparse_rows_run_gathered(sparse in sparse(), seed in 0u64..1000) {
        layouts_agree(&Affine::Sparse(sparse), Linear::is_gathered, seed)?;
    }

    /// A convolution's rows gathered (padded where the window leaves the input) are the map
    /// of its rows.
    #[test]
    fn a_convolutions_gathered_rows_are_the_map_of_its_rows(conv in convolution(), seed in 0u64..1000) {
        let affine = Affine::Conv(conv);
        let gathered = Linear::of_gathered_rows(&affine, Kind::Double, Device::Cpu);
        prop_assert!(gathered.is_gathered());
        layout_agrees(&affine, gathered, seed)?;
    }
}

/// Asymmetric pads with strides that leave input rows past the last window: the transposed
/// convolution still gives every input, the rows past the reach included (with nothing).
#[test]
fn asymmetric_pads_and_rows_past_the_last_window() {
    let shape = ConvShape {
        input: [2, 7, 6],
        channels: 3,
        kernel: [2, 3],
        strides: [3, 2],
        pads: [0, 2, 1, 0],
        dilations: [2, 1],
        groups: 1,
    };
    let kernel: Vec<f64> = (0..shape.kernel_len().unwrap())
        .map(|k| (k % 7) as f64 - 3.0)
        .collect();
    let conv = Conv::new(shape, kernel, vec![0.0; 3]).unwrap();
    // Rows: (7 + 1 − 3) / 3 + 1 = 2 windows, the last reaching padded row 5 of 0..8, so
    // input row 6 is read by none; columns: (6 + 2 − 3) / 2 + 1 = 3, reaching all 8.
    assert_eq!(conv.output(), [3, 2, 3]);
    layouts_agree(&Affine::Conv(conv), |l| matches!(l, Linear::Conv(_)), 7).unwrap();
}
