//! Linear programs on good_lp: solving a [`LinearProgram`] with microlp (default) or HiGHS
//! (feature `highs`), building the dual programs whose solutions become certificates, and
//! LP files. Only this module imports good_lp; no answer leaves it uncertified (see
//! [`certify`]).

pub mod certify;
pub mod lpfile;
pub mod nearest_valid;
pub mod screened;

use std::time::Instant;

use good_lp::{
    variable, Constraint, Expression, ProblemVariables, ResolutionError, Solution, SolutionStatus,
    SolverModel, Variable, WithTimeLimit,
};

use crate::exact::dyadic::Dyadic;
use crate::exact::program::{ConstraintRow, LinearProgram, RowKind};

/// Which solver runs the programs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backend {
    /// microlp: pure Rust, the default.
    #[default]
    Microlp,
    /// HiGHS (cargo feature `highs`).
    #[cfg(feature = "highs")]
    Highs,
}

impl Backend {
    /// The name as `--lp-backend` takes it and run.json records it (`microlp`, `highs`).
    pub fn name(self) -> &'static str {
        match self {
            Backend::Microlp => "microlp",
            #[cfg(feature = "highs")]
            Backend::Highs => "highs",
        }
    }

    /// Parses `microlp` or `highs` (the latter only in builds with the feature).
    pub fn parse(text: &str) -> Result<Self, String> {
        match text {
            "microlp" => Ok(Backend::Microlp),
            #[cfg(feature = "highs")]
            "highs" => Ok(Backend::Highs),
            #[cfg(not(feature = "highs"))]
            "highs" => Err(
                "the HiGHS backend is not in this build; build with `cargo build --release --features highs`"
                    .into(),
            ),
            other => Err(format!("unknown LP backend '{other}' (expected microlp or highs)")),
        }
    }
}

/// Written by name (`"microlp"`, `"highs"`), as run.json and summaries record it.
impl serde::Serialize for Backend {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Backend {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Backend::parse(&name).map_err(serde::de::Error::custom)
    }
}

/// How programs are solved.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SolveOptions {
    /// The solver (`--lp-backend`).
    pub backend: Backend,
    /// Seconds per solve; `None`: no limit.
    pub time_limit: Option<f64>,
}

/// What the solver says (in floating point: not yet an answer).
#[derive(Clone, Debug, PartialEq)]
pub enum Solved {
    /// The solver reports an optimum.
    Optimal {
        /// The solver's point, one value per variable of the program.
        x: Vec<f64>,
        /// `c·x` at that point, summed in f64.
        objective: f64,
    },
    /// The solver reports that no point satisfies the rows and bounds.
    Infeasible,
    /// The solver reports that the objective has no lower bound.
    Unbounded,
    /// The time limit ran out, or the solver stopped without an optimum.
    TimedOut,
    /// Any other solver error, with its message.
    Failed(String),
}

/// Solves `lp` with the chosen backend.
pub fn solve(lp: &LinearProgram, opts: &SolveOptions) -> Solved {
    let (vars, handles, objective) = variables_of(lp);
    let started = Instant::now();
    let result = match opts.backend {
        Backend::Microlp => {
            let mut model = vars.minimise(objective).using(good_lp::microlp);
            if let Some(t) = opts.time_limit {
                model = model.with_time_limit(t);
            }
            run(model, lp, &handles)
        }
        #[cfg(feature = "highs")]
        Backend::Highs => {
            let mut model = vars.minimise(objective).using(good_lp::highs);
            if let Some(t) = opts.time_limit {
                model = model.with_time_limit(t);
            }
            run(model.set_option("presolve", "off"), lp, &handles)
        }
    };
    // A solver that stopped by itself after the limit also counts as timed out.
    match (result, opts.time_limit) {
        (Solved::Failed(_), Some(t)) if started.elapsed().as_secs_f64() >= t => Solved::TimedOut,
        (r, _) => r,
    }
}

/// [`solve`], and the row duals where the backend reports them (HiGHS; microlp reports none).
/// Duals are multipliers for [`LinearProgram::safe_bound`] of any program with the same rows,
/// senses, costs and bound pattern: they feed the checker, which decides whether they prove
/// anything.
pub fn solve_with_duals(lp: &LinearProgram, opts: &SolveOptions) -> (Solved, Option<Vec<f64>>) {
    match opts.backend {
        Backend::Microlp => (solve(lp, opts), None),
        #[cfg(feature = "highs")]
        Backend::Highs => highs_with_duals(lp, opts),
    }
}

#[cfg(feature = "highs")]
fn highs_with_duals(lp: &LinearProgram, opts: &SolveOptions) -> (Solved, Option<Vec<f64>>) {
    use good_lp::{DualValues, SolutionWithDual};
    let (vars, handles, objective) = variables_of(lp);
    let mut model = vars
        .minimise(objective)
        .using(good_lp::highs)
        .set_option("presolve", "off");
    if let Some(t) = opts.time_limit {
        model = model.with_time_limit(t);
    }
    let refs: Vec<_> = lp
        .rows
        .iter()
        .map(|row| model.add_constraint(constraint(row, &handles)))
        .collect();
    match model.solve() {
        Ok(mut solution) => {
            if !matches!(solution.status(), SolutionStatus::Optimal) {
                return (Solved::TimedOut, None);
            }
            let x: Vec<f64> = handles.iter().map(|&v| solution.value(v)).collect();
            let objective = lp.cost.iter().zip(&x).map(|(c, v)| c * v).sum();
            let duals = solution.compute_dual();
            let y: Vec<f64> = refs.iter().map(|r| duals.dual(r.clone())).collect();
            (Solved::Optimal { x, objective }, Some(y))
        }
        Err(ResolutionError::Infeasible) => (Solved::Infeasible, None),
        Err(ResolutionError::Unbounded) => (Solved::Unbounded, None),
        Err(e) => (Solved::Failed(e.to_string()), None),
    }
}

fn variables_of(lp: &LinearProgram) -> (ProblemVariables, Vec<Variable>, Expression) {
    let mut vars = ProblemVariables::new();
    let handles: Vec<Variable> = (0..lp.num_vars())
        .map(|i| {
            let mut v = variable();
            if lp.lower[i].is_finite() {
                v = v.min(lp.lower[i]);
            }
            if lp.upper[i].is_finite() {
                v = v.max(lp.upper[i]);
            }
            vars.add(v)
        })
        .collect();
    let mut objective = Expression::with_capacity(lp.num_vars());
    for (i, &c) in lp.cost.iter().enumerate() {
        if c != 0.0 {
            objective.add_mul(c, handles[i]);
        }
    }
    (vars, handles, objective)
}

/// One row as a good_lp constraint (its right-hand side rounded to f64).
fn constraint(row: &ConstraintRow, handles: &[Variable]) -> Constraint {
    let mut e = Expression::with_capacity(row.coeffs.len());
    for &(i, a) in &row.coeffs {
        e.add_mul(a, handles[i]);
    }
    let rhs = row.rhs.to_f64();
    match row.kind {
        RowKind::Eq => e.eq(rhs),
        RowKind::Ge => e.geq(rhs),
        RowKind::Le => e.leq(rhs),
    }
}

fn run<M: SolverModel<Error = ResolutionError>>(
    mut model: M,
    lp: &LinearProgram,
    handles: &[Variable],
) -> Solved {
    for row in &lp.rows {
        model.add_constraint(constraint(row, handles));
    }
    match model.solve() {
        Ok(solution) => {
            if !matches!(solution.status(), SolutionStatus::Optimal) {
                return Solved::TimedOut;
            }
            let x: Vec<f64> = handles.iter().map(|&v| solution.value(v)).collect();
            let objective = lp.cost.iter().zip(&x).map(|(c, v)| c * v).sum();
            Solved::Optimal { x, objective }
        }
        Err(ResolutionError::Infeasible) => Solved::Infeasible,
        Err(ResolutionError::Unbounded) => Solved::Unbounded,
        Err(ResolutionError::Other(s)) if s.contains("ime limit") => Solved::TimedOut,
        Err(e) => Solved::Failed(e.to_string()),
    }
}

/// The program whose solutions are multipliers for [`LinearProgram::safe_bound`]: variables
/// `y_r` (one per row, signed by the row's sense) and `s_i, t_i >= 0` standing for the
/// positive and negative parts of the reduced cost `r_i = c_i − (Aᵀy)_i` where `x_i`'s
/// lower (upper) bound is finite. It maximises `Σ y_r b_r + Σ (s_i l_i − t_i u_i)`.
///
/// `farkas`: costs are taken as zero and the objective is capped at 1, so the optimum is 1
/// exactly when the primal program is infeasible. `margin`: where only one side of `x_i` is
/// bounded, the reduced cost must stay `margin` away from the unbounded side, so that rounding
/// in the solver cannot leave it of the wrong sign in exact arithmetic.
pub fn dual_program(lp: &LinearProgram, farkas: bool, margin: f64) -> LinearProgram {
    let mut d = LinearProgram::new();
    let y: Vec<usize> = lp
        .rows
        .iter()
        .enumerate()
        .map(|(r, row)| {
            let (lo, hi) = match row.kind {
                RowKind::Eq => (f64::NEG_INFINITY, f64::INFINITY),
                RowKind::Ge => (0.0, f64::INFINITY),
                RowKind::Le => (f64::NEG_INFINITY, 0.0),
            };
            d.add_var(format!("y{r}"), lo, hi, -row.rhs.to_f64())
        })
        .collect();
    // Column i of A: (row, coefficient).
    let mut columns: Vec<Vec<(usize, f64)>> = vec![Vec::new(); lp.num_vars()];
    for (r, row) in lp.rows.iter().enumerate() {
        for &(i, a) in &row.coeffs {
            columns[i].push((y[r], a));
        }
    }
    let mut cap_row: Vec<(usize, f64)> = Vec::new();
    for (r, row) in lp.rows.iter().enumerate() {
        let b = row.rhs.to_f64();
        if b != 0.0 {
            cap_row.push((y[r], b));
        }
    }
    for (i, column) in columns.iter().enumerate() {
        let (l, u) = (lp.lower[i], lp.upper[i]);
        let mut coeffs = column.clone();
        let one_sided = l.is_finite() != u.is_finite();
        let floor = if one_sided { margin } else { 0.0 };
        if l.is_finite() {
            let s = d.add_var(format!("s{i}"), floor, f64::INFINITY, -l);
            coeffs.push((s, 1.0));
            if l != 0.0 {
                cap_row.push((s, l));
            }
        }
        if u.is_finite() {
            let t = d.add_var(format!("t{i}"), floor, f64::INFINITY, u);
            coeffs.push((t, -1.0));
            if u != 0.0 {
                cap_row.push((t, -u));
            }
        }
        let c = if farkas { 0.0 } else { lp.cost[i] };
        d.add_row(
            format!("col{i}"),
            coeffs,
            RowKind::Eq,
            Dyadic::from_f64(c).expect("finite cost"),
        );
    }
    if farkas {
        d.add_row(
            "cap".into(),
            cap_row,
            RowKind::Le,
            Dyadic::from_f64(1.0).unwrap(),
        );
    }
    d
}

/// The multipliers `y` read off a solution of [`dual_program`].
pub fn multipliers(lp: &LinearProgram, dual_x: &[f64]) -> Vec<f64> {
    dual_x[..lp.num_rows()].to_vec()
}
