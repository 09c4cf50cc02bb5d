//! Root questions over one region by constraint generation: the region's constraints enter a
//! reduced program only once a solution violates them.
//!
//! The point nearest to the centre on a root hyperplane usually meets a handful of the
//! region's hundreds of faces. The reduced program keeps the distance variables, the domain
//! bounds and the root row of [`root_program`](crate::region::problem::root_program), and of the
//! region only the rows (in their composed form, [`ComposedRows`]) that some earlier solution
//! violated. Its optimum is a lower bound on the full one, and equal to it once its solution
//! satisfies every row; its duals, carried back through the layers, are multipliers for the
//! full layered program. Nothing here is trusted: the point and the multipliers go to the exact
//! checker like any other, and a failure sends the question to the full program.

use std::time::Instant;

use ndarray::Array2;

use super::{solve_with_duals, SolveOptions, Solved};
use crate::exact::dyadic::Dyadic;
use crate::exact::program::{LinearProgram, RowKind};
use crate::model::ir::WeightRow;
use crate::region::composed::ComposedRows;
use crate::region::problem::{add_root_row, distance_program, Layout, Norm, RegionView, RootPlane};
use crate::region::Local;

/// Rounds of constraint generation before giving up.
const MAX_ROUNDS: usize = 40;
/// Violated rows added per round, at most.
const ROWS_PER_ROUND: usize = 16;

/// A reduced program's solution that satisfies every row of the region (in f64).
#[derive(Clone, Debug)]
pub struct Screened {
    /// The solution `x` of the last reduced program and its point `ã = a + p − n`.
    pub point: Vec<f64>,
    /// The last reduced program's duals (HiGHS) or basis multipliers (microlp), by row.
    pub duals: Option<Vec<f64>>,
    /// The composed rows the last program kept, in its row order after the fixed rows.
    pub kept: Vec<usize>,
    /// The last reduced program (for reading its multipliers).
    pub program: LinearProgram,
    /// The last reduced program's solution `x`, one value per variable of `program`.
    pub solution: Vec<f64>,
}

/// What a screened solve gives.
#[derive(Clone, Debug)]
pub enum ScreenOutcome {
    /// A reduced program's solution satisfies every row of the region.
    Point(Box<Screened>),
    /// The reduced (tightened) program has no solution: proves nothing by itself.
    Infeasible,
    /// The time limit, which holds for all rounds together, ran out.
    TimedOut,
    /// No answer within the rounds, or a solver failure.
    GaveUp(String),
}

/// The fixed part of a reduced program ([`distance_program`] and the root row); then the kept
/// composed rows, each tightened by `margin` times its scale. `None` when a kept row is not
/// finite in f64.
fn reduced_program(
    view: RegionView,
    rows: &ComposedRows,
    plane: &RootPlane,
    norm: Norm,
    margin: f64,
    kept: &[usize],
) -> Option<(LinearProgram, Layout)> {
    let (mut lp, layout) = distance_program(view, norm, margin);
    add_root_row(&mut lp, &layout, view, plane);
    for &i in kept {
        let s = rows.sign[i];
        let rhs = Dyadic::from_f64(margin * rows.scale(i) - s * rows.z0[i])?;
        let signed: Vec<f64> = rows.g.row(i).iter().map(|v| s * v).collect();
        if signed.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let (k, j) = rows.labels[i];
        lp.add_row(
            format!("c{}_{j}", k + 1),
            layout.split(WeightRow::from_dense(&signed)),
            RowKind::Ge,
            rhs,
        );
    }
    Some((lp, layout))
}

/// Solves the root question of `plane` (tightened by `margin`) by constraint generation.
pub fn solve_root(
    view: RegionView,
    rows: &ComposedRows,
    plane: &RootPlane,
    norm: Norm,
    margin: f64,
    opts: &SolveOptions,
) -> ScreenOutcome {
    // The plane's own face is constant on the plane: settled before any program is solved.
    let own = (view.layer, plane.neuron);
    let mut kept: Vec<usize> = Vec::new();
    let mut in_kept = vec![false; rows.len()];
    let started = Instant::now();
    for _ in 0..MAX_ROUNDS {
        // The time limit holds for all rounds together.
        let mut round_opts = *opts;
        if let Some(limit) = opts.time_limit {
            let left = limit - started.elapsed().as_secs_f64();
            if left <= 0.0 {
                return ScreenOutcome::TimedOut;
            }
            round_opts.time_limit = Some(left);
        }
        let Some((lp, layout)) = reduced_program(view, rows, plane, norm, margin, &kept) else {
            return ScreenOutcome::GaveUp("a composed row is not finite in f64".into());
        };
        let (solved, duals) = solve_with_duals(&lp, &round_opts);
        let x = match solved {
            Solved::Optimal { x, .. } => x,
            Solved::Infeasible => return ScreenOutcome::Infeasible,
            Solved::TimedOut => return ScreenOutcome::TimedOut,
            Solved::Unbounded => {
                return ScreenOutcome::GaveUp("a reduced program is unbounded".into())
            }
            Solved::Failed(e) => return ScreenOutcome::GaveUp(format!("the solver failed: {e}")),
        };
        let point = layout.point(view.centre.approx(), &x);
        let delta: Vec<f64> = point
            .iter()
            .zip(view.centre.approx())
            .map(|(p, a)| p - a)
            .collect();
        let slacks = rows.slacks(&delta);
        // Rows short of half their margin: the solution is outside them (or too close).
        let mut violated: Vec<(f64, usize)> = slacks
            .iter()
            .enumerate()
            .filter(|&(i, _)| !in_kept[i] && rows.labels[i] != own)
            .filter_map(|(i, &s)| {
                let scale = rows.scale(i);
                (s < 0.5 * margin * scale).then_some((s / scale, i))
            })
            .collect();
        if violated.is_empty() {
            let duals = duals.or_else(|| basis_multipliers(&lp, &x));
            return ScreenOutcome::Point(Box::new(Screened {
                point,
                duals,
                kept,
                program: lp,
                solution: x,
            }));
        }
        violated.sort_by(|a, b| a.0.total_cmp(&b.0));
        for &(_, i) in violated.iter().take(ROWS_PER_ROUND) {
            in_kept[i] = true;
            kept.push(i);
        }
    }
    ScreenOutcome::GaveUp(format!(
        "constraint generation did not settle in {MAX_ROUNDS} rounds"
    ))
}

/// Multipliers read off an optimal vertex `x` when the solver reports none: with `B` the
/// variables strictly between their bounds and `T` the rows that hold with equality, the
/// least-squares solution of `A_{T,B}ᵀ y_T = c_B` (zero on the other rows). At a
/// non-degenerate optimum this is the dual solution; elsewhere it is a guess the exact
/// check judges.
pub fn basis_multipliers(lp: &LinearProgram, x: &[f64]) -> Option<Vec<f64>> {
    let off =
        |v: f64, bound: f64| !bound.is_finite() || (v - bound).abs() > 1e-9 * (1.0 + bound.abs());
    let basic: Vec<usize> = (0..lp.num_vars())
        .filter(|&i| off(x[i], lp.lower[i]) && off(x[i], lp.upper[i]))
        .collect();
    let tight: Vec<usize> = lp
        .rows
        .iter()
        .enumerate()
        .filter(|(_, row)| {
            let ax: f64 = row.coeffs.iter().map(|&(i, a)| a * x[i]).sum();
            let b = row.rhs.to_f64();
            let scale = 1.0
                + b.abs()
                + row
                    .coeffs
                    .iter()
                    .map(|&(i, a)| (a * x[i]).abs())
                    .sum::<f64>();
            row.kind == RowKind::Eq || (ax - b).abs() <= 1e-9 * scale
        })
        .map(|(r, _)| r)
        .collect();
    let (nt, nb) = (tight.len(), basic.len());

    if nt == 0 {
        return Some(vec![0.0; lp.num_rows()]);
    }
    // Column position of each basic variable.
    let mut pos = vec![usize::MAX; lp.num_vars()];
    for (b, &i) in basic.iter().enumerate() {
        pos[i] = b;
    }
    // A_{T,B} as dense rows (nt × nb).
    let mut a = Array2::<f64>::zeros((nt, nb));
    for (t, &r) in tight.iter().enumerate() {
        for &(i, v) in &lp.rows[r].coeffs {
            if pos[i] != usize::MAX {
                a[[t, pos[i]]] = v;
            }
        }
    }
    let c: Vec<f64> = basic.iter().map(|&i| lp.cost[i]).collect();
    // Normal equations (A Aᵀ + ρ I) y = A c, with a tiny ridge for degenerate vertices.
    let mut m = a.dot(&a.t());
    let trace: f64 = (0..nt).map(|i| m[[i, i]]).sum::<f64>() / nt as f64;
    let ridge = 1e-12 * trace.max(1.0);
    for i in 0..nt {
        m[[i, i]] += ridge;
    }
    let rhs = a.dot(&ndarray::Array1::from(c));
    let y_t = solve_dense(m, rhs.to_vec())?;
    let mut y = vec![0.0; lp.num_rows()];
    for (t, &r) in tight.iter().enumerate() {
        y[r] = y_t[t];
    }
    Some(y)
}

/// Gaussian elimination with partial pivoting; `None` for a singular matrix.
fn solve_dense(mut m: Array2<f64>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let n = b.len();
    for col in 0..n {
        let piv = (col..n).max_by(|&i, &j| m[[i, col]].abs().total_cmp(&m[[j, col]].abs()))?;
        if m[[piv, col]] == 0.0 || !m[[piv, col]].is_finite() {
            return None;
        }
        if piv != col {
            for k in 0..n {
                m.swap([piv, k], [col, k]);
            }
            b.swap(piv, col);
        }
        let d = m[[col, col]];
        for r in col + 1..n {
            let f = m[[r, col]] / d;
            if f != 0.0 {
                for k in col..n {
                    m[[r, k]] -= f * m[[col, k]];
                }
                b[r] -= f * b[col];
            }
        }
    }
    let mut y = vec![0.0; n];
    for r in (0..n).rev() {
        let s: f64 = (r + 1..n).map(|k| m[[r, k]] * y[k]).sum();
        y[r] = (b[r] - s) / m[[r, r]];
    }
    y.iter().all(|v| v.is_finite()).then_some(y)
}

/// Multipliers for the full layered root program (`Tightening::NONE`, rows in the order of
/// [`root_program`](crate::region::problem::root_program): the L∞ rows, then layer by layer
/// from `m` to the last with constraints its rows, then the root row) from a reduced program's
/// multipliers `y` (rows: the L∞ rows, the root row, then the kept composed rows).
///
/// A composed row's multiplier `λ_i` stands for its constraint: a neuron's sign on its own row
/// (`≥` or `≤`, as `σ λ`) or, for an active neuron that feeds the next layer, as the reduced
/// cost of its variable `h_{k,j} >= 0`; a max-pool difference on its own row. Each defining
/// equality (of an active or carried output, or of a window's winner) then carries what the
/// layers above ask of it, `(W_{k+1}ᵀ v_{k+1})_j`, so that every hidden variable's reduced
/// cost is what the composed row says. `v_k` weighs layer `k`'s pre-activations by its rows'
/// multipliers.
pub fn layered_multipliers(
    view: RegionView,
    rows: &ComposedRows,
    norm: Norm,
    kept: &[usize],
    y: &[f64],
) -> Vec<f64> {
    let net = view.net;
    let pattern = view.pattern;
    let layers = net.layers();
    let dim = view.centre.len();
    let n_dist = if norm == Norm::Linf { dim } else { 0 };
    // No region rows above the question's layer (no constraint at or above it): the program
    // is the distance rows and the root row, in the reduced program's order.
    let Some(top) = pattern.last_constraining().filter(|&top| top >= view.layer) else {
        return y.to_vec();
    };
    // σ λ per constraint of P_m.
    let mut lambda = vec![0.0; rows.len()];
    for (t, &i) in kept.iter().enumerate() {
        lambda[i] += rows.sign[i] * y[n_dist + 1 + t];
    }
    // Each layer's constraints: their first index among P_m's.
    let mut first = Vec::with_capacity(top + 1 - view.layer);
    let mut count = 0;
    for k in view.layer..=top {
        first.push(count);
        count += pattern.faces(k).len();
    }
    // Top-down: the row multipliers of layer k (in its program order) and v_k.
    let mut layer_rows: Vec<Vec<f64>> = vec![Vec::new(); top + 1 - view.layer];
    let mut v_above: Vec<f64> = Vec::new();
    for k in (view.layer..=top).rev() {
        let affine = &layers[k].affine;
        // What the layer above asks of each output of this layer: W_{k+1}ᵀ v_{k+1}.
        let mut pass = vec![0.0; layers[k].out_dim()];
        if k < top {
            for (r, &vr) in v_above.iter().enumerate() {
                if vr != 0.0 {
                    for (j, &w) in layers[k + 1].affine.row(r).entries() {
                        pass[j] += vr * w;
                    }
                }
            }
        }
        let own = &lambda[first[k - view.layer]..];
        let mut v = vec![0.0; affine.out_dim()];
        let mut out = Vec::new();
        if let Some(selection) = pattern.selection(k) {
            if k < top {
                for (g, &s) in selection.selected.iter().enumerate() {
                    out.push(pass[g]);
                    v[s as usize] += pass[g];
                }
            }
            for (t, (s, o)) in selection.constraints().enumerate() {
                out.push(own[t]);
                v[s] += own[t];
                v[o] -= own[t];
            }
        } else if layers[k].other_activation().is_some() {
            // Per neuron: the row defining `u = z` (when its output feeds the next layer),
            // its face rows, and the row defining `h = s · u` (a slope below 0).
            let faces = pattern.faces(k);
            let mut f = 0;
            for j in 0..affine.out_dim() {
                let start = f;
                while f < faces.len() && faces[f].label() == j {
                    f += 1;
                }
                if start == f {
                    if k < top {
                        out.push(pass[j]);
                        v[j] = pass[j];
                    }
                    continue;
                }
                let own_sum: f64 = own[start..f].iter().sum();
                let slope = match pattern.local(k, &layers[k], j) {
                    Local::Identity => Some(None),
                    Local::Scale(s) if s != 0.0 => Some(Some(s)),
                    _ => None,
                };
                match slope.filter(|_| k < top) {
                    Some(scale) => {
                        let u = own_sum + pass[j] * scale.unwrap_or(1.0);
                        out.push(u);
                        out.extend_from_slice(&own[start..f]);
                        if scale.is_some() {
                            out.push(pass[j]);
                        }
                        v[j] = u;
                    }
                    None => {
                        out.extend_from_slice(&own[start..f]);
                        v[j] = own_sum;
                    }
                }
            }
        } else {
            let mask = pattern.layer(k);
            for j in 0..affine.out_dim() {
                let u = match mask.and_then(|m| m.get(j).copied()) {
                    // A free output feeds the next layer only below the top.
                    None if k == top => continue,
                    None => pass[j],
                    Some(true) => own[j] + if k < top { pass[j] } else { 0.0 },
                    Some(false) => own[j],
                };
                out.push(u);
                v[j] = u;
            }
        }
        layer_rows[k - view.layer] = out;
        v_above = v;
    }
    let mut out = Vec::with_capacity(y.len() + 1024);
    out.extend_from_slice(&y[..n_dist]);
    for rows in &layer_rows {
        out.extend_from_slice(rows);
    }
    out.push(y[n_dist]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::forward::forward;
    use crate::model::ir::dense_layer;
    use crate::model::Network;
    use crate::region::problem::{root_program, Domain, Tightening};
    use crate::region::Pattern;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn basis_multipliers_are_the_duals_of_a_non_degenerate_vertex() {
        // min x + y  s.t.  x + 2y >= 2,  x, y >= 0: optimum (0, 1), dual 1/2.
        let mut lp = LinearProgram::new();
        let x = lp.add_var("x".into(), 0.0, f64::INFINITY, 1.0);
        let y = lp.add_var("y".into(), 0.0, f64::INFINITY, 1.0);
        lp.add_row(
            "r".into(),
            vec![(x, 1.0), (y, 2.0)],
            RowKind::Ge,
            Dyadic::from_f64(2.0).unwrap(),
        );
        let m = basis_multipliers(&lp, &[0.0, 1.0]).unwrap();
        assert!((m[0] - 0.5).abs() < 1e-9, "{m:?}");
        let bound = crate::exact::Scalar::to_f64(&lp.safe_bound(&m, true).unwrap());
        assert!((bound - 1.0).abs() < 1e-9, "{bound}");
    }

    /// The reduced program's multipliers, carried through the layers and repaired, bound the
    /// full layered program as tightly as they bound the reduced one: at every layer, with
    /// and without a hidden layer without ReLU, a carried tail or a max-pool layer, and for a
    /// layer above the last ReLU.
    #[test]
    fn layered_multipliers_bound_the_full_program() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let widths = [6usize, 8, 7, 5, 2];
        let (mut checked, mut questions) = (0, 0);
        for case in 0..32 {
            // Every fourth network has a hidden layer without ReLU (layer 2); others carry
            // the last 3 outputs of layer 1 past its ReLU, or max-pool them in windows of 2
            // (each output and a copy of another).
            let linear_hidden = case % 4 == 3;
            let (tail, pool) = (case % 8 == 1, case % 8 == 5);
            let mut layers: Vec<crate::model::Layer> = widths
                .windows(2)
                .enumerate()
                .map(|(i, w)| {
                    let weight = (0..w[0] * w[1])
                        .map(|_| rng.random_range(-1.0..1.0))
                        .collect();
                    let bias = (0..w[1]).map(|_| rng.random_range(-0.2..0.2)).collect();
                    let relu = i + 2 < widths.len() && !(linear_hidden && i == 1);
                    dense_layer(w[1], w[0], weight, bias, relu).unwrap()
                })
                .collect();
            if tail {
                layers[0].linear_tail = 3;
            }
            if pool {
                let rows = (0..widths[1])
                    .flat_map(|g| {
                        let other = rng.random_range(0..widths[1]) as u32;
                        [vec![(g as u32, 1.0)], vec![(other, 1.0)]]
                    })
                    .collect();
                let gather = crate::model::ir::Sparse::from_rows(
                    widths[1],
                    rows,
                    ndarray::Array1::zeros(2 * widths[1]),
                )
                .unwrap();
                let max = crate::model::Layer {
                    affine: crate::model::Affine::Sparse(gather),
                    relu: false,
                    activation: crate::model::Activation::Relu,
                    max_pool: Some(2),
                    linear_tail: 0,
                };
                layers.insert(1, max);
            }
            let net = Network::new(layers).unwrap();
            let x: Vec<f64> = (0..widths[0]).map(|_| rng.random_range(0.0..1.0)).collect();
            let trace = forward(&net, &x);
            let pattern = Pattern::from_pre(&net, &trace.pre);
            for m in 0..net.layers().len() {
                let centre = crate::region::Centre::from_f64(trace.layer_input(m)).unwrap();
                let domain = Domain::of_layer(&net, m + 1, Some((0.0, 1.0)));
                let view = RegionView {
                    net: &net,
                    pattern: &pattern,
                    layer: m,
                    centre: &centre,
                    domain,
                };
                let rows = ComposedRows::new(&net, &pattern, m, centre.approx());
                for neuron in 0..net.layers()[m].affine.out_dim() {
                    if net.layers()[m].max_pool.is_some() && neuron % 2 == 1 {
                        continue; // copies: one plane per window is enough
                    }
                    let plane = RootPlane {
                        neuron,
                        relevance: <crate::exact::Rational as crate::exact::Scalar>::from_f64(0.05),
                    };
                    if let Some(&active) = pattern.layer(m).and_then(|mask| mask.get(neuron)) {
                        let z = trace.pre[m][neuron] - 0.05;
                        if active != (z >= 0.0) {
                            continue; // the plane lies outside its own face
                        }
                    }
                    for norm in [Norm::L1, Norm::Linf] {
                        let opts = SolveOptions::default();
                        let ScreenOutcome::Point(s) =
                            solve_root(view, &rows, &plane, norm, 0.0, &opts)
                        else {
                            continue;
                        };
                        questions += 1;
                        let reduced: f64 = s
                            .program
                            .cost
                            .iter()
                            .zip(&s.solution)
                            .map(|(c, v)| c * v)
                            .sum();
                        let y = layered_multipliers(view, &rows, norm, &s.kept, &s.duals.unwrap());
                        let (full, _) = root_program(view, Some(&plane), norm, Tightening::NONE);
                        assert_eq!(y.len(), full.num_rows());
                        let y = crate::lp::certify::repaired(&full, y);
                        // Free hidden variables (a layer without ReLU, a carried output, a
                        // window's winner) get exactly zero reduced costs in the bound.
                        let bound = full.safe_bound(&y, true).unwrap_or_else(|e| {
                            panic!("case {case}, layer {m}, neuron {neuron}, {norm:?}: {e:?}")
                        });
                        let b = crate::exact::Scalar::to_f64(&bound);
                        assert!(
                            (b - reduced).abs() <= 1e-7 * (1.0 + reduced.abs()),
                            "layer {m}, {norm:?}: bound {b} vs reduced optimum {reduced}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(
            checked == questions && questions >= 200,
            "{checked} of {questions} bounds"
        );
    }
}
