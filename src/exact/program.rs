//! Linear programs as exact data, and the safe dual bound that certifies their answers.
//!
//! A [`LinearProgram`] is `min c·x` subject to rows `a_r·x (=|>=|<=) b_r` and bounds
//! `l <= x <= u` (infinite bounds allowed). Coefficients, costs and bounds are f64 values,
//! taken as the dyadic rationals they are; right-hand sides are exact ([`Rhs`]): [`Dyadic`]s,
//! because a region's constraints shifted to a point are sums of products, and general
//! rationals where a root plane's relevance (a quotient) sets one.
//!
//! Weak duality gives, for any multipliers `y` with the right signs (`y_r >= 0` on `>=` rows,
//! `<= 0` on `<=` rows, free on `=` rows) and every feasible `x`:
//!
//! `c·x = r·x + y·(A x) >= Σ_r y_r b_r + Σ_i min(r_i l_i, r_i u_i)`, with `r = c − Aᵀy`,
//!
//! where `r_i x_i >= min(r_i l_i, r_i u_i)` uses only the bounds. This is the safe bound of
//! Neumaier and Shcherbina ("Safe bounds in linear and mixed-integer programming", Math.
//! Programming 99, 2004): the multipliers may come from any floating-point solver, because
//! the bound is evaluated here exactly. With `c = 0`, a bound above zero proves that no `x`
//! is feasible (a Farkas certificate).

use serde::{Deserialize, Serialize};

use super::dyadic::{Dyadic, ExactSum};
use super::{Rational, Scalar};

/// The sense of a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RowKind {
    /// `a·x = b` (`eq`); its multiplier is free.
    Eq,
    /// `a·x >= b` (`ge`); its multiplier must be `>= 0`.
    Ge,
    /// `a·x <= b` (`le`); its multiplier must be `<= 0`.
    Le,
}

/// A row's right-hand side, exact.
#[derive(Clone, Debug, PartialEq)]
pub enum Rhs {
    /// A dyadic rational: every row built from f64 data (and dyadic layer inputs).
    Dyadic(Dyadic),
    /// Any other rational: a root plane `w·ã = w·a − R` whose relevance `R` is a quotient.
    Rational(Rational),
}

impl Rhs {
    /// The rational as a right-hand side: dyadic where its denominator is a power of two.
    pub fn from_rational(r: &Rational) -> Self {
        match Dyadic::from_rational(r) {
            Some(d) => Rhs::Dyadic(d),
            None => Rhs::Rational(r.clone()),
        }
    }

    /// The dyadic value, if it is one.
    pub fn as_dyadic(&self) -> Option<&Dyadic> {
        match self {
            Rhs::Dyadic(d) => Some(d),
            Rhs::Rational(_) => None,
        }
    }

    /// The exact value.
    pub fn to_rational(&self) -> Rational {
        match self {
            Rhs::Dyadic(d) => d.to_rational(),
            Rhs::Rational(r) => r.clone(),
        }
    }

    /// A nearby f64 (for solvers and messages; not used in any decision).
    pub fn to_f64(&self) -> f64 {
        match self {
            Rhs::Dyadic(d) => d.to_f64(),
            Rhs::Rational(r) => Scalar::to_f64(r),
        }
    }
}

impl From<Dyadic> for Rhs {
    fn from(d: Dyadic) -> Self {
        Rhs::Dyadic(d)
    }
}

/// One constraint `Σ coeffs · x (kind) rhs`.
#[derive(Clone, Debug)]
pub struct ConstraintRow {
    /// Sparse coefficients `(variable, value)`, each variable at most once.
    pub coeffs: Vec<(usize, f64)>,
    /// Whether the row is `=`, `>=` or `<=`.
    pub kind: RowKind,
    /// The right-hand side, exact.
    pub rhs: Rhs,
    /// For LP files and messages: what the row stands for.
    pub name: String,
}

/// `min c·x` over rows and bounds; see the module documentation.
#[derive(Clone, Debug)]
pub struct LinearProgram {
    /// The variables' names (for LP files and messages), one per variable.
    pub names: Vec<String>,
    /// Lower bounds `l`, one per variable; `-inf` for none.
    pub lower: Vec<f64>,
    /// Upper bounds `u`, one per variable; `+inf` for none.
    pub upper: Vec<f64>,
    /// The objective `c`, one coefficient per variable (minimised).
    pub cost: Vec<f64>,
    /// The constraint rows `A x (kind) b`.
    pub rows: Vec<ConstraintRow>,
}

/// Why a certificate was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection(pub String);

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl LinearProgram {
    /// A program without variables or rows.
    pub fn new() -> Self {
        Self {
            names: Vec::new(),
            lower: Vec::new(),
            upper: Vec::new(),
            cost: Vec::new(),
            rows: Vec::new(),
        }
    }

    /// Adds a variable and returns its index.
    pub fn add_var(&mut self, name: String, lower: f64, upper: f64, cost: f64) -> usize {
        self.names.push(name);
        self.lower.push(lower);
        self.upper.push(upper);
        self.cost.push(cost);
        self.names.len() - 1
    }

    /// Adds the row `Σ coeffs · x (kind) rhs`, named `name`.
    pub fn add_row(
        &mut self,
        name: String,
        coeffs: Vec<(usize, f64)>,
        kind: RowKind,
        rhs: impl Into<Rhs>,
    ) {
        self.rows.push(ConstraintRow {
            coeffs,
            kind,
            rhs: rhs.into(),
            name,
        });
    }

    /// The number of variables.
    pub fn num_vars(&self) -> usize {
        self.names.len()
    }

    /// The number of constraint rows.
    pub fn num_rows(&self) -> usize {
        self.rows.len()
    }

    /// Number of non-zero coefficients.
    pub fn nonzeros(&self) -> usize {
        self.rows.iter().map(|r| r.coeffs.len()).sum()
    }

    /// The exact lower bound `Σ y_r b_r + Σ_i min(r_i l_i, r_i u_i)` on `c·x` over the
    /// feasible set (with `c = 0` when `with_cost` is false), or why `y` does not give one.
    /// The multipliers of defining rows are first completed exactly where a variable's
    /// reduced cost has a sign its bounds do not allow: from the last variable to the first,
    /// one that is the last variable of an equality row with the coefficient −1 gets that
    /// row's multiplier moved by exactly its reduced cost.
    pub fn safe_bound(&self, y: &[f64], with_cost: bool) -> Result<Rational, Rejection> {
        let (reduced, mut bound) = self.completed(y, with_cost)?;
        for (i, ri) in reduced.iter().enumerate() {
            let limit = match ri.signum() {
                0 => continue,
                1 => self.lower[i],
                _ => self.upper[i],
            };
            let term = ri.mul_f64(limit).ok_or_else(|| {
                Rejection(format!(
                    "reduced cost of {} is {:e}, but the variable is unbounded {}",
                    self.names[i],
                    ri.to_f64(),
                    if ri.signum() > 0 { "below" } else { "above" }
                ))
            })?;
            bound.dyadic = &bound.dyadic + &term;
        }
        Ok(bound.value())
    }

    /// The reduced costs `r = c − Aᵀy` that [`Self::safe_bound`] uses (after completing the
    /// defining rows' multipliers), exactly.
    pub fn reduced_costs(&self, y: &[f64], with_cost: bool) -> Result<Vec<Dyadic>, Rejection> {
        self.completed(y, with_cost).map(|(r, _)| r)
    }

    /// The completed reduced costs and `Σ_r y_r b_r` (with the completions' multipliers).
    fn completed(&self, y: &[f64], with_cost: bool) -> Result<(Vec<Dyadic>, Bound), Rejection> {
        if y.len() != self.rows.len() {
            return Err(Rejection(format!(
                "{} multipliers for {} constraints",
                y.len(),
                self.rows.len()
            )));
        }
        let mut reduced: Vec<ExactSum> = (0..self.num_vars()).map(|_| ExactSum::new()).collect();
        if with_cost {
            for (acc, &c) in reduced.iter_mut().zip(&self.cost) {
                acc.add(c);
            }
        }
        let mut bound = Bound::default();
        for (r, (row, &yr)) in self.rows.iter().zip(y).enumerate() {
            if !yr.is_finite() {
                return Err(Rejection(format!(
                    "multiplier {r} ({}) is not finite",
                    row.name
                )));
            }
            let wrong_sign = match row.kind {
                RowKind::Eq => false,
                RowKind::Ge => yr < 0.0,
                RowKind::Le => yr > 0.0,
            };
            if wrong_sign {
                return Err(Rejection(format!(
                    "multiplier {r} ({}) is {yr:e}, of the wrong sign for a {:?} constraint",
                    row.name, row.kind
                )));
            }
            if yr == 0.0 {
                continue;
            }
            for &(i, a) in &row.coeffs {
                reduced[i].add_product(-a, yr);
            }
            bound.add_rhs_times(&row.rhs, &Dyadic::from_f64(yr).expect("finite multiplier"));
        }
        let mut reduced: Vec<Dyadic> = reduced
            .iter()
            .enumerate()
            .map(|(i, acc)| {
                acc.value().ok_or_else(|| {
                    Rejection(format!("reduced cost of {} is not finite", self.names[i]))
                })
            })
            .collect::<Result<_, _>>()?;
        self.complete_defined_variables(&mut reduced, &mut bound);
        Ok((reduced, bound))
    }

    /// A variable with an infinite bound needs a reduced cost of the matching sign (exactly
    /// 0 for a free one), which f64 multipliers miss by rounding errors. Any multiplier of an
    /// equality row is allowed, so the bound moves them exactly: from the last variable to
    /// the first, a variable whose reduced cost has a sign its bounds do not allow, and that
    /// has a defining row (an equality row in which it has the coefficient −1 and every other
    /// variable comes before it; the first such row), gets that row's multiplier moved by
    /// exactly its reduced cost. That zeroes it and changes only earlier variables'.
    fn complete_defined_variables(&self, reduced: &mut [Dyadic], bound: &mut Bound) {
        let mut defining: Vec<Option<usize>> = vec![None; self.num_vars()];
        for (r, row) in self.rows.iter().enumerate() {
            if row.kind != RowKind::Eq {
                continue;
            }
            let Some(&(v, a)) = row.coeffs.iter().max_by_key(|(v, _)| *v) else {
                continue;
            };
            let once = row.coeffs.iter().filter(|(u, _)| *u == v).count() == 1;
            if a == -1.0 && once && defining[v].is_none() {
                defining[v] = Some(r);
            }
        }
        for v in (0..self.num_vars()).rev() {
            let Some(r) = defining[v] else { continue };
            let wrong = match reduced[v].signum() {
                0 => false,
                1 => self.lower[v] == f64::NEG_INFINITY,
                _ => self.upper[v] == f64::INFINITY,
            };
            if !wrong {
                continue;
            }
            // The row's multiplier grows by δ: each variable's reduced cost falls by a·δ, and
            // v's (a = −1) rises by δ; δ = −r_v.
            let delta = -&reduced[v];
            let row = &self.rows[r];
            for &(u, a) in &row.coeffs {
                let change = delta.mul_f64(a).expect("finite coefficient");
                reduced[u] = &reduced[u] - &change;
            }
            bound.add_rhs_times(&row.rhs, &delta);
        }
    }

    /// The exact value of `c·x` at an f64 point.
    pub fn cost_at(&self, x: &[f64]) -> Option<Dyadic> {
        let mut s = ExactSum::new();
        for (&c, &xi) in self.cost.iter().zip(x) {
            s.add_product(c, xi);
        }
        s.value()
    }
}

/// `Σ y_r b_r`, kept as a dyadic part (the rows with dyadic right-hand sides, summed without
/// any gcd) and a rational part.
#[derive(Default)]
struct Bound {
    dyadic: Dyadic,
    rational: Option<Rational>,
}

impl Bound {
    /// Adds `rhs · y` exactly.
    fn add_rhs_times(&mut self, rhs: &Rhs, y: &Dyadic) {
        match rhs {
            Rhs::Dyadic(b) => self.dyadic = &self.dyadic + &(b * y),
            Rhs::Rational(b) => {
                let term = Scalar::times(b, &y.to_rational());
                self.rational = Some(match self.rational.take() {
                    Some(r) => Scalar::plus(&r, &term),
                    None => term,
                });
            }
        }
    }

    fn value(self) -> Rational {
        let d = self.dyadic.to_rational();
        match self.rational {
            Some(r) => Scalar::plus(&d, &r),
            None => d,
        }
    }
}

impl Default for LinearProgram {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(x: f64) -> Dyadic {
        Dyadic::from_f64(x).unwrap()
    }

    fn rat(x: f64) -> Rational {
        Rational::from_f64(x)
    }

    /// min x + y s.t. x + y >= 1, x - y = 0, 0 <= x, y <= 10.
    fn small() -> LinearProgram {
        let mut lp = LinearProgram::new();
        let x = lp.add_var("x".into(), 0.0, 10.0, 1.0);
        let y = lp.add_var("y".into(), 0.0, 10.0, 1.0);
        lp.add_row("sum".into(), vec![(x, 1.0), (y, 1.0)], RowKind::Ge, d(1.0));
        lp.add_row(
            "diff".into(),
            vec![(x, 1.0), (y, -1.0)],
            RowKind::Eq,
            d(0.0),
        );
        lp
    }

    #[test]
    fn optimal_multipliers_give_the_optimum() {
        let lp = small();
        assert_eq!(lp.safe_bound(&[1.0, 0.0], true).unwrap(), rat(1.0));
        // Slightly off multipliers still give a valid (smaller) bound, never a larger one.
        let b = lp.safe_bound(&[1.0 + 1e-12, 1e-13], true).unwrap();
        assert!(b <= rat(1.0), "{b}");
        assert!(Scalar::to_f64(&b) > 0.99);
    }

    #[test]
    fn wrong_signs_are_rejected() {
        let lp = small();
        let err = lp.safe_bound(&[-1.0, 0.0], true).unwrap_err();
        assert!(err.0.contains("wrong sign"), "{err}");
        assert!(lp.safe_bound(&[1.0], true).is_err());
        assert!(lp.safe_bound(&[f64::NAN, 0.0], true).is_err());
    }

    #[test]
    fn farkas_combination_proves_infeasibility() {
        // x + y >= 25 with both at most 10: infeasible; y = (1, 0) gives 25 − 20 > 0.
        let mut lp = small();
        lp.rows[0].rhs = d(25.0).into();
        let b = lp.safe_bound(&[1.0, 0.0], false).unwrap();
        assert_eq!(b, rat(5.0));
        // Unbounded above: the same multipliers prove nothing.
        lp.upper = vec![f64::INFINITY; 2];
        let err = lp.safe_bound(&[1.0, 0.0], false).unwrap_err();
        assert!(err.0.contains("unbounded above"), "{err}");
    }

    #[test]
    fn rational_right_hand_sides_enter_the_bound_exactly() {
        // x + y = 1/3 with 0 <= x, y <= 10: min x + y is 1/3, and y = 1 on the row proves it.
        let mut lp = LinearProgram::new();
        let x = lp.add_var("x".into(), 0.0, 10.0, 1.0);
        let y = lp.add_var("y".into(), 0.0, 10.0, 1.0);
        let third = Rational::new(1.into(), 3.into());
        lp.add_row(
            "third".into(),
            vec![(x, 1.0), (y, 1.0)],
            RowKind::Eq,
            Rhs::from_rational(&third),
        );
        assert!(lp.rows[0].rhs.as_dyadic().is_none());
        assert_eq!(lp.safe_bound(&[1.0], true).unwrap(), third);
        // A dyadic rational stays dyadic.
        assert!(Rhs::from_rational(&rat(0.75)).as_dyadic().is_some());
    }
}
