//! Batched screening against exact membership: shared, max-pool and wide layers, and blocks of
//! points against single points.

use ndarray::{Array1, Array2};

use super::*;
use crate::exact::{Rational, Scalar};
use crate::model::ir::dense_layer;
use crate::model::Network;
use crate::region::tests::tiny;
use crate::region::{membership, polytope, step_length, trace_and_pattern};

/// Judges `points` (inputs of layer `m`) in blocks and asserts each verdict equals exact
/// membership, the first violated (layer, neuron) included; returns the number inside and
/// the violated constraint of each point outside.
fn batched_verdicts_are_exact(
    model: &Model,
    pattern: &Pattern,
    m: usize,
    points: &Array2<f64>,
) -> (usize, Vec<(usize, usize)>) {
    let batched = membership_batch(model, pattern, m, points);
    let (mut inside, mut outside) = (0, Vec::new());
    for (r, (verdict, _)) in batched.iter().enumerate() {
        let exact: Vec<Rational> = points
            .row(r)
            .iter()
            .map(|&v| Rational::from_f64(v))
            .collect();
        match (verdict, membership(model.exact(), pattern, m, &exact)) {
            (Membership::Inside { .. }, Membership::Inside { .. }) => inside += 1,
            (
                Membership::Outside { layer, neuron, .. },
                Membership::Outside {
                    layer: l,
                    neuron: j,
                    ..
                },
            ) => {
                assert_eq!((*layer, *neuron), (l, j), "input of {m}, row {r}");
                outside.push((l, j));
            }
            (v, e) => panic!("input of {m}, row {r}: batched {v:?}, exact {e:?}"),
        }
    }
    (inside, outside)
}

/// The weights of the hand-built test layers: quarters between −1.25 and 1.25.
fn grid(k: usize) -> f64 {
    ((k * 7 + 3) % 11) as f64 / 4.0 - 1.25
}

/// A dense ReLU layer from 2 inputs to `width` outputs, with [`grid`] weights.
fn grid_layer(width: usize) -> crate::model::ir::Layer {
    let weights = (0..2 * width).map(grid).collect();
    let bias = (0..width).map(|k| grid(k + 5) / 2.0).collect();
    dense_layer(width, 2, weights, bias, true).unwrap()
}

/// More than two blocks of points spread around `a`, some equal to it.
fn points_around(a: &[f64]) -> Array2<f64> {
    Array2::from_shape_fn((2 * ROOT_BLOCK + 31, a.len()), |(r, c)| {
        a[c] + (((r * (c + 5)) % 13) as f64 / 4.0 - 1.5) * (r % 4) as f64 / 3.0
    })
}

/// A shared layer (3 copies of a 3×2 block) between dense ones: points judged in blocks,
/// copy by copy, get the exact verdicts, including the first violated constraint.
#[test]
fn shared_layers_screened_copy_by_copy_give_the_exact_verdicts() {
    use crate::model::ir::{Dense, Layer, Shared};
    let w = grid;
    let l1 = grid_layer(6);
    let block = Dense::new(
        Array2::from_shape_fn((3, 2), |(r, c)| w(3 * r + c + 1)),
        Array1::from_shape_fn(3, |r| w(r + 9) / 4.0),
    )
    .unwrap();
    let l2 = Layer {
        affine: crate::model::Affine::Shared(Shared::new(block, 3).unwrap()),
        relu: true,
        activation: crate::model::Activation::Relu,
        max_pool: None,
        linear_tail: 0,
    };
    let l3 = dense_layer(
        2,
        9,
        (0..18).map(|k| w(k + 2)).collect(),
        vec![0.5, -0.5],
        false,
    )
    .unwrap();
    let model = Model::new(Network::new(vec![l1, l2, l3]).unwrap());
    let (trace, pattern, _) = trace_and_pattern(&model, &[0.75, -0.5]);
    // Points around the input of the shared layer (its own constraints come first), and
    // around the network input (the shared layer's inputs then carry error bounds).
    for m in [1, 0] {
        let a = trace.layer_input(m).to_vec();
        let points = points_around(&a);
        let (inside, outside) = batched_verdicts_are_exact(&model, &pattern, m, &points);
        let at_shared = outside.iter().filter(|(l, _)| *l == 2).count();
        let outside = outside.len();
        assert!(
            inside > 10 && outside > 100 && at_shared >= 10,
            "input of {m}: {inside} inside, {outside} outside, {at_shared} at the shared layer"
        );
    }
}

/// A max-pool layer (windows of 3 over a ReLU layer, one input copied twice into a window) between
/// dense ones: points in blocks and one by one get the exact verdicts, including the
/// first losing entry that overtakes its window's winner; the polytope and the step
/// length agree with them; ties go to the first entry.
#[test]
fn max_pool_layers_give_the_exact_verdicts() {
    use crate::model::ir::{Layer, Sparse};
    let l1 = grid_layer(5);
    let picks = [0u32, 1, 2, 3, 4, 3];
    let gather = Sparse::from_rows(
        5,
        picks.iter().map(|&i| vec![(i, 1.0)]).collect(),
        Array1::zeros(6),
    )
    .unwrap();
    let pool = Layer {
        affine: crate::model::Affine::Sparse(gather),
        relu: false,
        activation: crate::model::Activation::Relu,
        max_pool: Some(3),
        linear_tail: 0,
    };
    let l3 = dense_layer(2, 2, vec![1.0, -0.5, 0.25, 1.5], vec![0.5, -0.5], true).unwrap();
    let model = Model::new(Network::new(vec![l1, pool, l3]).unwrap());
    assert_eq!(model.net().widths(), vec![2, 5, 2, 2]);
    let x = [0.75, -0.5];
    let (trace, pattern, _) = trace_and_pattern(&model, &x);
    let selection = pattern.selection(1).expect("a max-pool layer");
    assert_eq!(selection.len(), 4);
    // h_2 is the largest entry of each window, and the pattern names the first one.
    for (g, &s) in selection.selected.iter().enumerate() {
        let window: Vec<f64> = (3 * g..3 * g + 3).map(|o| trace.pre[1][o]).collect();
        let best = window.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        assert_eq!(trace.layer_input(2)[g], best);
        let first = window.iter().position(|&v| v == best).unwrap();
        assert_eq!(s as usize, 3 * g + first);
    }
    let exact = polytope(model.exact(), &pattern, 0);
    for m in [1, 0] {
        let a = trace.layer_input(m).to_vec();
        let points = points_around(&a);
        let n = points.nrows();
        let (inside, outside) = batched_verdicts_are_exact(&model, &pattern, m, &points);
        let at_pool = outside.iter().filter(|(l, _)| *l == 2).count();
        // From the network input, most points leave at layer 1's ReLUs first.
        assert!(
            inside > 10 && outside.len() > 100 && (m == 0 || at_pool >= 10),
            "input of {m}: {inside} inside, {} outside, {at_pool} at the max-pool layer",
            outside.len()
        );
        for r in 0..n {
            let point: Vec<f64> = points.row(r).to_vec();
            let (alone, _) = membership_filtered(&model, &pattern, m, &point);
            let exact_point: Vec<Rational> = point.iter().map(|&v| Rational::from_f64(v)).collect();
            let truth = membership(model.exact(), &pattern, m, &exact_point);
            assert_eq!(alone.is_inside(), truth.is_inside(), "row {r}");
            if m == 0 {
                assert_eq!(exact.contains(&exact_point), truth.is_inside(), "row {r}");
                // From the input towards the point, the step stops where the region ends.
                let x_exact: Vec<Rational> = x.iter().map(|&v| Rational::from_f64(v)).collect();
                let v: Vec<Rational> = x_exact
                    .iter()
                    .zip(&exact_point)
                    .map(|(a, p)| a.clone() - p.clone())
                    .collect();
                let t = step_length(model.exact(), &pattern, 0, &x_exact, &v);
                let reaches = t.as_ref().is_none_or(|t| *t >= Rational::one());
                assert_eq!(reaches, truth.is_inside(), "row {r}: step {t:?}");
            }
        }
    }
    // The second window copies input 3 twice (entries 3 and 5): the copy never wins.
    let h1 = trace.layer_input(1);
    let want = if h1[3] >= h1[4] { 3 } else { 4 };
    assert_eq!(pattern.selection(1).unwrap().selected[1], want);
}

/// A wide layer screened row by row: points leaving at an early row, at a late row, or
/// staying inside all get the exact verdicts.
#[test]
fn wide_layers_screened_row_by_row_give_the_exact_verdicts() {
    const EARLY: usize = 1024;
    let width = EARLY + 500;
    let w = |k: usize| ((k * 7919 + 13) % 23) as f64 / 8.0 - 1.375;
    let x = [0.5, -0.25, 0.75];
    // The first rows have margins of 2 at `x`, the later ones margins of 1e-3: small
    // moves leave the region at a late row, large ones at an early row.
    let bias: Vec<f64> = (0..width)
        .map(|j| {
            let z: f64 = (0..3).map(|c| w(3 * j + c) * x[c]).sum();
            let margin = if j < EARLY { 2.0 } else { 1e-3 };
            let sign = if j % 2 == 0 { 1.0 } else { -1.0 };
            sign * margin - z
        })
        .collect();
    let l1 = dense_layer(width, 3, (0..3 * width).map(w).collect(), bias, true).unwrap();
    let l2 = dense_layer(
        2,
        width,
        (0..2 * width).map(|k| w(k + 1)).collect(),
        vec![0.25, -0.5],
        false,
    )
    .unwrap();
    let model = Model::new(Network::new(vec![l1, l2]).unwrap());
    let (_, pattern, _) = trace_and_pattern(&model, &x);
    let n = 120;
    let points = Array2::from_shape_fn((n, 3), |(r, c)| {
        let size = [1e-6, 1e-2, 10.0][r % 3];
        x[c] + (((r * (c + 3)) % 17) as f64 / 8.0 - 1.0) * size
    });
    let (inside, outside) = batched_verdicts_are_exact(&model, &pattern, 0, &points);
    let early = outside.iter().filter(|(_, j)| *j < EARLY).count();
    let late = outside.len() - early;
    assert!(
        inside >= 10 && early >= 10 && late >= 10,
        "{inside} inside, {early} early, {late} late"
    );
}

#[test]
fn blocks_of_roots_get_the_same_verdicts_as_single_points() {
    let model = tiny();
    let (_, pattern, _) = trace_and_pattern(&model, &[1.0, 0.5]);
    // More rows than one block, on a grid that puts many points on faces.
    let n = 3 * ROOT_BLOCK + 7;
    let points = Array2::from_shape_fn((n, 2), |(r, c)| ((r * (c + 3)) % 17) as f64 / 8.0 - 1.0);
    let batched = membership_batch(&model, &pattern, 0, &points);
    assert_eq!(batched.len(), n);
    for (r, (verdict, _)) in batched.iter().enumerate() {
        let row = points.row(r).to_vec();
        let (single, _) = membership_filtered(&model, &pattern, 0, &row);
        match (verdict, &single) {
            (Membership::Inside { .. }, Membership::Inside { .. }) => {}
            (
                Membership::Outside {
                    layer: a,
                    neuron: b,
                    ..
                },
                Membership::Outside {
                    layer: c,
                    neuron: d,
                    ..
                },
            ) => {
                assert_eq!((a, b), (c, d), "row {r}")
            }
            _ => panic!("row {r}: batched {verdict:?}, single {single:?}"),
        }
    }
}

/// Row 0 is undecidable (its error straddles the face); row 1 is left undecided by the
/// batched norm bound (`‖w‖ ‖e‖ = 10` from an error on an input of weight 0) and decided by
/// the per-value bound (`Σ |w_i| e_i = 0`). With `until_undecided`, row 0 ends the checks and
/// row 1 gets no verdict; without it, row 1 is decided inside.
#[test]
fn the_first_undecided_point_ends_the_checks_when_asked() {
    let layer = dense_layer(1, 2, vec![1.0, 0.0], vec![0.0], true).unwrap();
    let model = Model::new(Network::new(vec![layer]).unwrap());
    let (_, pattern, _) = trace_and_pattern(&model, &[1.0, 0.0]);
    let points = Array2::from_shape_vec((2, 2), vec![0.5, 0.0, 1.0, 0.0]).unwrap();
    let errors = Array2::from_shape_vec((2, 2), vec![1.0, 0.0, 0.0, 10.0]).unwrap();
    let all = membership_batch_within(&model, &pattern, 0, (&points, &errors), false);
    assert_eq!(all[0], None);
    assert!(
        matches!(all[1], Some((Membership::Inside { .. }, _))),
        "{all:?}"
    );
    let until = membership_batch_within(&model, &pattern, 0, (&points, &errors), true);
    assert_eq!(until, vec![None, None]);
}
