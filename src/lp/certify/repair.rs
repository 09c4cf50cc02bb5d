//! Multipliers from a floating-point solver made into multipliers the exact safe bound
//! accepts: signs fixed, and the hair-breadth deficits rounding leaves on reduced costs
//! repaired. Only the checker decides whether the result proves anything.

use crate::exact::dyadic::ExactSum;
use crate::exact::program::{LinearProgram, RowKind};

/// A solver's duals made into multipliers the safe bound accepts, where rounding left them a
/// hair off: signs fixed ([`signed`]), all scaled by `1 − 1e-9` (which makes every reduced cost
/// of a variable with a positive cost strictly positive), then, from the top layer down, each
/// hidden variable's (`h…`) defining equality row adjusted so that its reduced cost is exactly
/// non-negative (that row's multiplier is free and meets no other hidden variable of its
/// block). Last, in L∞ programs, a move `p_i` or `n_i` without an upper bound whose reduced
/// cost is still negative (as the safe bound sees it, after completing the defining rows'
/// multipliers) has its distance row `p_i + n_i − t <= 0` lowered by the deficit:
/// that lifts both reduced costs and takes the same amount off `t`'s, which the scaling left
/// about 1e-9 above zero. Only the checker decides whether the result proves anything.
pub(crate) fn repaired(lp: &LinearProgram, y: Vec<f64>) -> Vec<f64> {
    let mut y: Vec<f64> = signed(lp, y).iter().map(|v| v * (1.0 - 1e-9)).collect();
    let mut columns: Vec<Vec<(usize, f64)>> = vec![Vec::new(); lp.num_vars()];
    for (r, row) in lp.rows.iter().enumerate() {
        for &(i, a) in &row.coeffs {
            columns[i].push((r, a));
        }
    }
    let layer_of =
        |name: &str| -> Option<usize> { name.strip_prefix('h')?.split('_').next()?.parse().ok() };
    let mut hidden: Vec<(usize, usize)> = (0..lp.num_vars())
        .filter(|&i| lp.upper[i] == f64::INFINITY && lp.lower[i].is_finite())
        .filter_map(|i| layer_of(&lp.names[i]).map(|k| (k, i)))
        .collect();
    hidden.sort_unstable_by(|a, b| b.cmp(a));
    for (_, v) in hidden {
        // The row that defines h{k}_{j} is z{k}_{j}, where it has the coefficient −1.
        let def_name = format!("z{}", &lp.names[v][1..]);
        let Some(&(def, _)) = columns[v].iter().find(|&&(r, a)| {
            a == -1.0 && lp.rows[r].kind == RowKind::Eq && lp.rows[r].name == def_name
        }) else {
            continue;
        };
        for _ in 0..4 {
            let mut r = ExactSum::new();
            r.add(lp.cost[v]);
            for &(row, a) in &columns[v] {
                r.add_product(-a, y[row]);
            }
            let Some(r) = r.value() else { break };
            if r.signum() >= 0 {
                break;
            }
            // r grows one-for-one with the defining row's multiplier.
            let lift = (-r.to_f64()).max(f64::MIN_POSITIVE) * (1.0 + 1e-9);
            y[def] = (y[def] + lift).next_up();
        }
    }
    // The reduced costs the bound will see, after it completes the defining rows.
    let Ok(reduced) = lp.reduced_costs(&y, true) else {
        return y;
    };
    for (r, row) in lp.rows.iter().enumerate() {
        if !row.name.starts_with("dist") || row.kind != RowKind::Le {
            continue;
        }
        let moves: Vec<usize> = row
            .coeffs
            .iter()
            .filter(|&&(v, a)| a == 1.0 && lp.upper[v] == f64::INFINITY)
            .map(|&(v, _)| v)
            .collect();
        // Rounded up: f64 rounds towards the nearest, so one step above.
        let deficit = moves
            .iter()
            .filter(|&&v| reduced[v].signum() < 0)
            .map(|&v| (-reduced[v].to_f64()).next_up())
            .fold(0.0f64, f64::max);
        if deficit > 0.0 {
            // Rounded up: the reduced costs then clear zero.
            y[r] = (y[r] - deficit * (1.0 + 1e-9)).next_down();
        }
    }
    y
}

/// Multipliers with the signs their rows require: a solver's value a rounding error on the
/// wrong side of zero becomes zero (any multipliers of the right signs give a valid bound).
pub(super) fn signed(lp: &LinearProgram, mut y: Vec<f64>) -> Vec<f64> {
    for (v, row) in y.iter_mut().zip(&lp.rows) {
        let wrong = match row.kind {
            RowKind::Eq => false,
            RowKind::Ge => *v < 0.0,
            RowKind::Le => *v > 0.0,
        };
        if wrong {
            *v = 0.0;
        }
    }
    y
}
