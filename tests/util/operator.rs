//! A map kept without rows (a kernel convolution, a map of placed parts) against the same map
//! as sparse rows: products with vectors and matrices, forwards and transposed.

use dtdcert::model::blocks::{Blocks, Part, PartMap};
use dtdcert::model::conv::Conv;
use dtdcert::model::ir::Affine;
use ndarray::Array2;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

/// `op` and `sparse` (the same map as its `rows`) give equal products, bit for bit: `W a`,
/// `Wᵀ v` (`transposed` computes `op`'s, checked against the rows scattered), `W g` and
/// `|W| g` for a matrix, `h Wᵀ` for points as rows and `s W` for values as rows, also with
/// the weights mapped (`W⁺`, `W⁻`, `W²`); the values are drawn from `seed`.
pub fn products_agree(
    op: &Affine,
    sparse: &Affine,
    rows: &[Vec<(u32, f64)>],
    transposed: impl Fn(&[f64], &mut Vec<f64>),
    seed: u64,
) -> Result<(), TestCaseError> {
    let (n_in, n_out) = (sparse.in_dim(), sparse.out_dim());
    let value = |i: usize, salt: u64| ((i as u64 * 37 + seed * 11 + salt) % 17) as f64 / 8.0 - 1.0;
    let a: Vec<f64> = (0..n_in).map(|i| value(i, 0)).collect();
    let (mut got, mut want) = (Vec::new(), Vec::new());
    op.apply_into(&a, &mut got);
    sparse.apply_into(&a, &mut want);
    prop_assert_eq!(&got, &want);

    // Wᵀ v, against the rows scattered.
    let v: Vec<f64> = (0..n_out).map(|j| value(j, 5)).collect();
    let mut by_op = Vec::new();
    transposed(&v, &mut by_op);
    let mut scattered = vec![0.0; n_in];
    for (row, vj) in rows.iter().zip(&v) {
        for &(i, w) in row {
            scattered[i as usize] += w * vj;
        }
    }
    prop_assert_eq!(by_op, scattered);

    let g = Array2::from_shape_fn((n_in, 3), |(i, c)| value(i, c as u64 + 9));
    for absolute in [false, true] {
        prop_assert_eq!(
            op.times(g.view(), absolute),
            sparse.times(g.view(), absolute)
        );
    }
    let points = Array2::from_shape_fn((2, n_in), |(p, i)| value(i, p as u64 + 3));
    prop_assert_eq!(
        op.apply_rows(points.view()),
        sparse.apply_rows(points.view())
    );
    let values = Array2::from_shape_fn((2, n_out), |(p, j)| value(j, p as u64 + 7));
    prop_assert_eq!(
        op.transposed_rows(values.view()),
        sparse.transposed_rows(values.view())
    );
    // The maps the rules multiply by: a copy's weight of 1 is mapped like every other.
    for f in [|w: f64| w.max(0.0), |w: f64| w.min(0.0), |w: f64| w * w] {
        let (mapped, mapped_rows) = (op.map_weights(f), sparse.map_weights(f));
        prop_assert_eq!(
            mapped.apply_rows(points.view()),
            mapped_rows.apply_rows(points.view())
        );
        prop_assert_eq!(
            mapped.transposed_rows(values.view()),
            mapped_rows.transposed_rows(values.view())
        );
    }
    Ok(())
}

/// A random map of parts: convolution `a` (from `conv`) reading inputs from `skip` on into
/// outputs `0 .. a`, convolution `b` reading the inputs after `a`'s into outputs from `b_out`
/// on (when it fits), and `copied` inputs from `copy_in` on into the outputs after `a`'s;
/// biases from `value`, offsets `b_out` and `copy_in` below `offsets`.
pub fn blocks_of<C, V>(
    conv: fn() -> C,
    value: fn() -> V,
    offsets: usize,
) -> impl Strategy<Value = Blocks>
where
    C: Strategy<Value = Conv>,
    V: Strategy<Value = f64>,
{
    (conv(), conv(), 0usize..4, 1usize..6, 0..offsets, 0..offsets)
        .prop_flat_map(move |(a, b, skip, copied, b_out, copy_in)| {
            let in_dim = skip + a.in_dim() + b.in_dim();
            let copied = copied.min(in_dim);
            let out_dim = a.out_dim() + copied;
            let mut parts = vec![
                Part {
                    input: skip,
                    output: 0,
                    map: PartMap::Conv(a.clone()),
                },
                Part {
                    input: copy_in % (in_dim - copied + 1),
                    output: a.out_dim(),
                    map: PartMap::Copy(copied),
                },
            ];
            if b.out_dim() <= out_dim {
                parts.push(Part {
                    input: skip + a.in_dim(),
                    output: b_out % (out_dim - b.out_dim() + 1),
                    map: PartMap::Conv(b),
                });
            }
            (
                Just(in_dim),
                Just(parts),
                prop::collection::vec(value(), out_dim),
            )
        })
        .prop_filter_map(
            "parts adding into an output read disjoint inputs",
            |(n, p, b)| Blocks::new(n, p, b).ok(),
        )
}
