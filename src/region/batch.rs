//! Membership of many points at once (`membership_batch`): blocks of points in parallel, the
//! points' own layer screened a block of rows at a time (or, for a sparse layer, point by
//! point, row by row), the layers above as one matrix product each, with error bounds from
//! row norms. Points those bounds leave undecided go to the single-point filter.

use std::sync::atomic::{AtomicBool, Ordering};

use ndarray::{Array2, ArrayView2, Axis};
use rayon::prelude::*;

use crate::exact::filter::{norm_upper, norm_upper_iter, ErrorModel};
use crate::model::Model;

use super::filter::Decision;
use super::membership::{
    constraint, membership_filtered, membership_within, window_constraint, Membership, State,
};
use super::pattern::{selected, Pattern};

/// Membership of many points (the rows of `points`, inputs of layer `m`) at once: each layer
/// of the linearised network is one matrix product over all points, with error bounds from
/// row norms; points whose signs those bounds cannot settle go, one by one, to
/// [`membership_filtered`] (per-value bounds, then exact arithmetic). Gives the same verdicts
/// as [`membership_filtered`] on each row.
pub fn membership_batch(
    model: &Model,
    pattern: &Pattern,
    m: usize,
    points: &Array2<f64>,
) -> Vec<(Membership, Decision)> {
    batched(model, pattern, m, points, None, None)
        .into_iter()
        .map(|verdict| verdict.expect("exact points are always decided"))
        .collect()
}

/// [`membership_batch`] for the exact points that the rows of `points` stand for within
/// `errors` (a bound on each coordinate's distance to them, one row per point), as
/// [`membership_within`](super::membership_within) decides one: `None` for a point whose
/// verdict only the exact point can settle. With `until_undecided` (for a caller that cannot
/// compute exact points), the first such point ends the checks: points not decided by then
/// are `None` too.
pub fn membership_batch_within(
    model: &Model,
    pattern: &Pattern,
    m: usize,
    (points, errors): (&Array2<f64>, &Array2<f64>),
    until_undecided: bool,
) -> Vec<Option<(Membership, Decision)>> {
    assert_eq!(points.dim(), errors.dim(), "one error bound per coordinate");
    let undecided = AtomicBool::new(false);
    let stop = until_undecided.then_some(&undecided);
    batched(model, pattern, m, points, Some(errors), stop)
}

fn batched(
    model: &Model,
    pattern: &Pattern,
    m: usize,
    points: &Array2<f64>,
    errors: Option<&Array2<f64>>,
    stop: Option<&AtomicBool>,
) -> Vec<Option<(Membership, Decision)>> {
    // The screens below read ReLU signs and windows only: a layer with another activation
    // has each point checked on its own (in parallel), by the single-point filter.
    let layers = &model.net().layers()[m..];
    if layers.iter().any(|l| l.other_activation().is_some()) {
        let rows: Vec<usize> = (0..points.nrows()).collect();
        return rows
            .into_par_iter()
            .map(|r| {
                let point = points.row(r).to_vec();
                match errors {
                    None => Some(membership_filtered(model, pattern, m, &point)),
                    Some(e) => {
                        within_unless_stopped(model, pattern, m, (&point, &e.row(r).to_vec()), stop)
                    }
                }
            })
            .collect();
    }
    // Wide layers: blocks of roots in parallel (rayon), each its own chain of matrix products.
    if points.nrows() <= ROOT_BLOCK {
        let errors = errors.map(|e| e.view());
        return membership_block(model, pattern, m, points.view(), errors, stop);
    }
    let blocks: Vec<ArrayView2<'_, f64>> = points.axis_chunks_iter(Axis(0), ROOT_BLOCK).collect();
    let error_blocks: Vec<Option<ArrayView2<'_, f64>>> = match errors {
        Some(e) => e.axis_chunks_iter(Axis(0), ROOT_BLOCK).map(Some).collect(),
        None => vec![None; blocks.len()],
    };
    blocks
        .into_par_iter()
        .zip(error_blocks)
        .map(|(block, errs)| membership_block(model, pattern, m, block, errs, stop))
        .collect::<Vec<_>>()
        .into_iter()
        .flatten()
        .collect()
}

/// [`norm_upper`] of a row, read as a slice where it is contiguous.
fn row_norm(row: ndarray::ArrayView1<'_, f64>) -> f64 {
    match row.as_slice() {
        Some(values) => norm_upper(values),
        None => norm_upper_iter(row.iter().copied()),
    }
}

/// Roots checked together in one chain of matrix products; wider layers are split into blocks
/// of this many roots, checked in parallel.
const ROOT_BLOCK: usize = 256;

fn membership_block(
    model: &Model,
    pattern: &Pattern,
    m: usize,
    points: ArrayView2<'_, f64>,
    point_errors: Option<ArrayView2<'_, f64>>,
    stop: Option<&AtomicBool>,
) -> Vec<Option<(Membership, Decision)>> {
    let n = points.nrows();
    let mut state = vec![State::Pending; n];
    let mut slack = vec![f64::INFINITY; n];
    let net = model.net();
    let mut any_constraint = pattern.constrains(m);
    // Layer `m` in the order of its constraints (a sparse layer point by point, row by row; a
    // dense or shared one a block of rows at a time for all points): most roots that leave
    // the region do so at a constraint of their own layer, and the first one found ends their
    // check. The others carry layer `m`'s outputs, with their error bounds, into the batched
    // layers above.
    let width = net.layers()[m].out_dim();
    let mut h = Array2::<f64>::zeros((0, width));
    let mut h_err = Array2::<f64>::zeros((0, width));
    let mut alive: Vec<usize> = Vec::new();
    if let Some(blocks) = row_blocks(&net.layers()[m].affine) {
        let ids: Vec<usize> = (0..n).collect();
        (h, h_err, alive) = screen_in_blocks(
            model,
            pattern,
            m,
            (points, point_errors),
            &ids,
            &blocks,
            &mut state,
            &mut slack,
        );
    } else {
        for (r, point) in points.outer_iter().enumerate() {
            let point = point.as_standard_layout();
            let point_err = point_errors.map(|e| e.row(r).to_vec()).unwrap_or_default();
            match screen(
                model,
                pattern,
                m,
                point.as_slice().expect("standard layout"),
                &point_err,
            ) {
                Err(ended) => state[r] = ended,
                Ok((z, e, least)) => {
                    slack[r] = least;
                    h.push_row(ndarray::ArrayView1::from(&z))
                        .expect("one row of the layer's width");
                    h_err
                        .push_row(ndarray::ArrayView1::from(&e))
                        .expect("one row of the layer's width");
                    alive.push(r);
                }
            }
        }
    }
    let norms = model.row_norms();
    for (k, layer) in net.layers().iter().enumerate().skip(m + 1) {
        if alive.is_empty() {
            break;
        }
        // A shared layer copy by copy: a point leaving at an early copy skips the others.
        if let crate::model::Affine::Shared(_) = &layer.affine {
            any_constraint |= pattern.constrains(k);
            let blocks = row_blocks(&layer.affine).expect("a shared layer has blocks");
            let input = (h.view(), Some(h_err.view()));
            (h, h_err, alive) = screen_in_blocks(
                model, pattern, k, input, &alive, &blocks, &mut state, &mut slack,
            );
            continue;
        }
        let n = alive.len();
        // One product for all points; each value's bound from norms (Cauchy–Schwarz): of the
        // row, of the input and of the input's errors.
        let mut z = layer.affine.apply_rows(h.view());
        for (j, mut column) in z.columns_mut().into_iter().enumerate() {
            column += *layer.affine.bias(j);
        }
        let errors = ErrorModel::new(layer.affine.max_connected());
        let w_norm = &norms[k];
        let mut e = Array2::zeros(z.dim());
        for r in 0..n {
            let x_norm = row_norm(h.row(r));
            let err_norm = row_norm(h_err.row(r));
            for j in 0..layer.affine.out_dim() {
                e[[r, j]] =
                    errors.bound_from_norms(w_norm[j], x_norm, *layer.affine.bias(j), err_norm);
            }
        }
        if let Some(mask) = pattern.layer(k) {
            any_constraint = true;
            for (r, &point) in alive.iter().enumerate() {
                for (j, &active) in mask.iter().enumerate() {
                    if state[point] == State::Pending {
                        match constraint(k + 1, j, active, z[[r, j]], e[[r, j]]) {
                            Ok(signed) => slack[point] = slack[point].min(signed),
                            Err(ended) => state[point] = ended,
                        }
                    }
                    if !active {
                        // Masked to an exact zero: no error carries on.
                        z[[r, j]] = 0.0;
                        e[[r, j]] = 0.0;
                    }
                }
            }
        }
        if let Some(selection) = pattern.selection(k) {
            any_constraint = true;
            for (r, &point) in alive.iter().enumerate() {
                if state[point] != State::Pending {
                    continue;
                }
                let (zr, er) = (z.row(r), e.row(r));
                let (zr, er) = (zr.as_slice().expect("rows"), er.as_slice().expect("rows"));
                for (s, o) in selection.constraints() {
                    match window_constraint(k + 1, zr, er, s, o) {
                        Ok(signed) => slack[point] = slack[point].min(signed),
                        Err(ended) => {
                            state[point] = ended;
                            break;
                        }
                    }
                }
            }
            let winners: Vec<usize> = selection.selected.iter().map(|&s| s as usize).collect();
            z = z.select(Axis(1), &winners);
            e = e.select(Axis(1), &winners);
        }
        let pending: Vec<usize> = (0..n)
            .filter(|&r| state[alive[r]] == State::Pending)
            .collect();
        if pending.len() < n {
            z = z.select(Axis(0), &pending);
            e = e.select(Axis(0), &pending);
            alive = pending.iter().map(|&r| alive[r]).collect();
        }
        h = z;
        h_err = e;
    }
    (0..n)
        .map(|r| {
            // A point's row, and its errors', copied only where a verdict needs another look.
            let point = || points.row(r).to_vec();
            let point_err = || point_errors.map(|e| e.row(r).to_vec());
            match state[r] {
                State::Pending => Some((
                    Membership::Inside {
                        slack: any_constraint.then_some(slack[r]),
                    },
                    Decision::Float,
                )),
                // The batched bounds come from norms; a point they leave undecided is checked
                // again with per-value bounds, which fall back to exact arithmetic in turn
                // (where the point itself is exact).
                State::NeedsExact => match &point_err() {
                    None => Some(membership_filtered(model, pattern, m, &point())),
                    Some(err) => within_unless_stopped(model, pattern, m, (&point(), err), stop),
                },
                State::Outside {
                    layer,
                    neuron,
                    margin,
                } => Some((
                    Membership::Outside {
                        layer,
                        neuron,
                        margin,
                    },
                    Decision::Float,
                )),
            }
        })
        .collect()
}

/// [`membership_within`] of one point, unless `stop` says an earlier point was left undecided
/// (then `None` without a look); a point left undecided sets it.
fn within_unless_stopped(
    model: &Model,
    pattern: &Pattern,
    m: usize,
    (point, error): (&[f64], &[f64]),
    stop: Option<&AtomicBool>,
) -> Option<(Membership, Decision)> {
    if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
        return None;
    }
    let verdict = membership_within(model, pattern, m, point, error);
    if verdict.is_none() {
        if let Some(s) = stop {
            s.store(true, Ordering::Relaxed);
        }
    }
    verdict
}

/// Rows of a dense layer screened together (one matrix product for all pending points).
const SCREEN_CHUNK: usize = 64;

/// A layer cut into blocks of consecutive rows for [`screen_in_blocks`]: each block one matrix
/// (a shared layer's block for each copy, or a chunk of a dense layer's rows), the bias of its
/// rows, the input columns it reads and its first output row.
struct RowBlock<'a> {
    weight: ndarray::ArrayView2<'a, f64>,
    bias: ndarray::ArrayView1<'a, f64>,
    columns: std::ops::Range<usize>,
    first_row: usize,
}

fn row_blocks(affine: &crate::model::Affine) -> Option<Vec<RowBlock<'_>>> {
    match affine {
        crate::model::Affine::Shared(shared) => {
            let (block, bias) = (shared.block().weight(), shared.block().bias());
            let (rows, cols) = block.dim();
            Some(
                (0..shared.copies())
                    .map(|copy| RowBlock {
                        weight: block.view(),
                        bias: bias.view(),
                        columns: copy * cols..(copy + 1) * cols,
                        first_row: copy * rows,
                    })
                    .collect(),
            )
        }
        crate::model::Affine::Dense(dense) => {
            let (w, b) = (dense.weight(), dense.bias());
            let (rows, cols) = w.dim();
            Some(
                (0..rows)
                    .step_by(SCREEN_CHUNK)
                    .map(|r0| {
                        let r1 = (r0 + SCREEN_CHUNK).min(rows);
                        RowBlock {
                            weight: w.slice(ndarray::s![r0..r1, ..]),
                            bias: b.slice(ndarray::s![r0..r1]),
                            columns: 0..cols,
                            first_row: r0,
                        }
                    })
                    .collect(),
            )
        }
        crate::model::Affine::Sparse(_)
        | crate::model::Affine::Conv(_)
        | crate::model::Affine::Blocks(_) => None,
    }
}

/// [`screen`] for a dense or shared layer `k` and a block of points, one block of rows at a
/// time for all points still pending (one matrix product each), each value's bound from norms
/// (Cauchy–Schwarz: of the row, and of the input columns the block reads and of their errors)
/// as in the batched layers. `input` holds the layer inputs of the points `ids` (one row each)
/// and their error bounds (`None`: exact). Returns the outputs and error bounds of the points
/// that pass, and which points they are.
#[allow(clippy::too_many_arguments)]
fn screen_in_blocks(
    model: &Model,
    pattern: &Pattern,
    k: usize,
    input: (ArrayView2<'_, f64>, Option<ArrayView2<'_, f64>>),
    ids: &[usize],
    blocks: &[RowBlock<'_>],
    state: &mut [State],
    slack: &mut [f64],
) -> (Array2<f64>, Array2<f64>, Vec<usize>) {
    let (h, h_err) = input;
    let affine = &model.net().layers()[k].affine;
    let (n, width) = (h.nrows(), affine.out_dim());
    let errors = ErrorModel::new(affine.max_connected());
    let w_norm = &model.row_norms()[k];
    let mask = pattern.layer(k);
    // Norms of the input columns a block reads, per point; consecutive blocks reading the same
    // columns (the chunks of a dense layer) share them.
    let mut norms: Option<(std::ops::Range<usize>, Vec<f64>, Vec<f64>)> = None;
    // Per block: the points pending at it (in increasing order) and their outputs and bounds.
    let mut done: Vec<(Vec<usize>, Array2<f64>, Array2<f64>)> = Vec::new();
    let mut pending: Vec<usize> = (0..n).collect();
    for block in blocks {
        if pending.is_empty() {
            break;
        }
        if norms
            .as_ref()
            .is_none_or(|(cols, _, _)| *cols != block.columns)
        {
            let of = |m: ArrayView2<'_, f64>| -> Vec<f64> {
                let part = m.slice(ndarray::s![.., block.columns.clone()]);
                part.outer_iter().map(row_norm).collect()
            };
            let x = of(h);
            let e = h_err.map_or_else(|| vec![0.0; n], of);
            norms = Some((block.columns.clone(), x, e));
        }
        let (_, x_norm, err_norm) = norms.as_ref().expect("set above");
        let inputs = h.slice(ndarray::s![.., block.columns.clone()]);
        let values = if pending.len() == n {
            inputs.dot(&block.weight.t())
        } else {
            inputs.select(Axis(0), &pending).dot(&block.weight.t())
        };
        let rows = block.weight.nrows();
        let mut z = Array2::<f64>::zeros((pending.len(), rows));
        let mut e = Array2::<f64>::zeros((pending.len(), rows));
        for (i, &row) in pending.iter().enumerate() {
            let r = ids[row];
            for (jr, &v) in values.row(i).iter().enumerate() {
                let j = block.first_row + jr;
                let value = v + block.bias[jr];
                let error =
                    errors.bound_from_norms(w_norm[j], x_norm[row], block.bias[jr], err_norm[row]);
                // Outputs past the mask are carried without ReLU.
                let active = mask.and_then(|mask| mask.get(j).copied());
                if let Some(active) = active {
                    match constraint(k + 1, j, active, value, error) {
                        Ok(signed) => slack[r] = slack[r].min(signed),
                        Err(ended) => {
                            state[r] = ended;
                            break;
                        }
                    }
                }
                // An inactive neuron is masked to an exact zero: no error carries on.
                if active != Some(false) {
                    z[[i, jr]] = value;
                    e[[i, jr]] = error;
                }
            }
        }
        done.push((pending.clone(), z, e));
        pending.retain(|&row| state[ids[row]] == State::Pending);
    }
    // The points that passed every block were pending at each: gather their rows.
    let mut z = Array2::<f64>::zeros((pending.len(), width));
    let mut e = Array2::<f64>::zeros((pending.len(), width));
    for (block, (at, values, errs)) in blocks.iter().zip(&done) {
        let rows = block.first_row..block.first_row + block.weight.nrows();
        for (s, row) in pending.iter().enumerate() {
            let i = at
                .binary_search(row)
                .expect("a passing point was pending at every block");
            z.row_mut(s)
                .slice_mut(ndarray::s![rows.clone()])
                .assign(&values.row(i));
            e.row_mut(s)
                .slice_mut(ndarray::s![rows.clone()])
                .assign(&errs.row(i));
        }
    }
    (z, e, pending.iter().map(|&row| ids[row]).collect())
}

/// Layer `m` of one point, checked row by row: when every constraint holds, its outputs
/// (inactive neurons masked to exact zeros) with their error bounds, and the smallest `σ z`;
/// else the state that ends the point's check. Each value's bound from norms (Cauchy–Schwarz:
/// of the row and of the point) as in the batched layers, so that a point inside costs about
/// what the product would.
fn screen(
    model: &Model,
    pattern: &Pattern,
    m: usize,
    point: &[f64],
    point_err: &[f64],
) -> Result<(Vec<f64>, Vec<f64>, f64), State> {
    let affine = &model.net().layers()[m].affine;
    let mask = pattern.layer(m);
    let out = affine.out_dim();
    let errors = ErrorModel::new(affine.max_connected());
    let w_norm = &model.row_norms()[m];
    let x_norm = norm_upper(point);
    let err_norm = norm_upper(point_err);
    let (mut z, mut e) = (Vec::with_capacity(out), Vec::with_capacity(out));
    let mut least = f64::INFINITY;
    for (j, &norm) in w_norm.iter().enumerate().take(out) {
        let bias = *affine.bias(j);
        let value = affine.row(j).affine_dot(point, &bias);
        let error = errors.bound_from_norms(norm, x_norm, bias, err_norm);
        // Outputs past the mask are carried without ReLU.
        match mask.and_then(|mask| mask.get(j).copied()) {
            None => {
                z.push(value);
                e.push(error);
            }
            Some(active) => {
                least = least.min(constraint(m + 1, j, active, value, error)?);
                // Masked to an exact zero: no error carries on.
                z.push(if active { value } else { 0.0 });
                e.push(if active { error } else { 0.0 });
            }
        }
    }
    if let Some(selection) = pattern.selection(m) {
        for (s, o) in selection.constraints() {
            least = least.min(window_constraint(m + 1, &z, &e, s, o)?);
        }
        (z, e) = (selected(&z, selection), selected(&e, selection));
    }
    Ok((z, e, least))
}

#[cfg(test)]
mod tests;
