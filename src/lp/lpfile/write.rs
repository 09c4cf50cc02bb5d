//! The LP-file writer: a [`LinearProgram`] as CPLEX LP text, every number in the shortest
//! decimal form that reads back as the same f64, names made valid and unique, long rows
//! wrapped.

use std::collections::HashSet;
use std::path::Path;

use crate::error::{Error, Result};
use crate::exact::dyadic::Dyadic;
use crate::exact::program::{LinearProgram, Rhs, RowKind};
use crate::exact::Scalar;

/// Lines are wrapped after about this many characters (CPLEX reads lines of up to 510).
pub(super) const LINE_WIDTH: usize = 100;
/// The longest name CPLEX and GLPK accept.
const MAX_NAME: usize = 255;
/// The objective's name in written files.
const OBJECTIVE: &str = "obj";

/// Words with a meaning in LP files: never written as names.
const KEYWORDS: &[&str] = &[
    "min", "minimize", "minimise", "minimum", "max", "maximize", "maximise", "maximum", "st",
    "s.t.", "st.", "subject", "such", "bound", "bounds", "free", "inf", "infinity", "gen",
    "general", "generals", "int", "integer", "integers", "bin", "binary", "binaries", "semi",
    "semis", "sos", "end",
];

/// The nearest f64 to `d` (ties to even), or `None` outside the f64 range.
pub fn nearest_f64(d: &Dyadic) -> Option<f64> {
    let guess = d.to_f64();
    if !guess.is_finite() {
        return None;
    }
    let error = |c: f64| (d - &Dyadic::from_f64(c).expect("finite")).abs();
    let mut best = guess;
    let mut best_error = error(guess);
    // `to_f64` is within one unit in the last place; the neighbours settle the rounding.
    for c in [guess.next_down(), guess.next_up()] {
        if !c.is_finite() {
            continue;
        }
        let e = error(c);
        if e < best_error || (e == best_error && c.to_bits() & 1 == 0) {
            best = c;
            best_error = e;
        }
    }
    Some(if best == 0.0 { 0.0 } else { best })
}

/// A name accepted by both CPLEX and GLPK, derived from `name`.
fn valid_name(name: &str) -> String {
    let mut s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let bad_start = s
        .chars()
        .next()
        .is_none_or(|c| c.is_ascii_digit() || c == '.' || c == 'e' || c == 'E');
    if bad_start || KEYWORDS.contains(&s.to_ascii_lowercase().as_str()) {
        s.insert(0, '_');
    }
    s.truncate(MAX_NAME);
    s
}

/// Valid, unique names for `names`, none of them in `reserved`; valid unique names are kept.
fn file_names<'a>(names: impl Iterator<Item = &'a str>, reserved: &[&str]) -> Vec<String> {
    let names: Vec<&str> = names.collect();
    let mut taken: HashSet<String> = reserved.iter().map(|s| s.to_string()).collect();
    let mut out: Vec<Option<String>> = vec![None; names.len()];
    // Names that need no change keep them, whatever their order.
    for (i, &name) in names.iter().enumerate() {
        if valid_name(name) == name && !taken.contains(name) {
            taken.insert(name.to_string());
            out[i] = Some(name.to_string());
        }
    }
    for (i, &name) in names.iter().enumerate() {
        if out[i].is_some() {
            continue;
        }
        let base = valid_name(name);
        let mut candidate = base.clone();
        let mut k = 2usize;
        while taken.contains(&candidate) {
            let suffix = format!("_{k}");
            let mut b = base.clone();
            b.truncate(MAX_NAME - suffix.len());
            candidate = b + &suffix;
            k += 1;
        }
        taken.insert(candidate.clone());
        out[i] = Some(candidate);
    }
    out.into_iter()
        .map(|n| n.expect("every name set"))
        .collect()
}

/// Appends tokens to `out`, starting a continuation line when a line gets long.
struct Wrapped<'a> {
    out: &'a mut String,
    line: usize,
}

impl<'a> Wrapped<'a> {
    fn start(out: &'a mut String, head: &str) -> Self {
        out.push_str(head);
        Self {
            out,
            line: head.len(),
        }
    }

    fn push(&mut self, token: &str) {
        if self.line + 1 + token.len() > LINE_WIDTH && self.line > 3 {
            self.out.push_str("\n  ");
            self.line = 2;
        }
        self.out.push(' ');
        self.out.push_str(token);
        self.line += 1 + token.len();
    }

    fn finish(self) {
        self.out.push('\n');
    }
}

fn term(coefficient: f64, name: &str) -> String {
    let sign = if coefficient.is_sign_negative() {
        '-'
    } else {
        '+'
    };
    format!("{sign} {:?} {name}", coefficient.abs())
}

fn bound(x: f64) -> String {
    if x == f64::INFINITY {
        "+inf".into()
    } else if x == f64::NEG_INFINITY {
        "-inf".into()
    } else {
        format!("{x:?}")
    }
}

/// Why a program cannot be written.
fn check(lp: &LinearProgram) -> std::result::Result<(), String> {
    let n = lp.num_vars();
    if n == 0 {
        return Err("a program without variables cannot be written as an LP file".into());
    }
    if lp.lower.len() != n || lp.upper.len() != n || lp.cost.len() != n {
        return Err(format!(
            "{n} variables but {} lower bounds, {} upper bounds and {} costs",
            lp.lower.len(),
            lp.upper.len(),
            lp.cost.len()
        ));
    }
    for i in 0..n {
        let name = &lp.names[i];
        if !lp.cost[i].is_finite() {
            return Err(format!("the cost of {name} is {}", lp.cost[i]));
        }
        if lp.lower[i].is_nan() || lp.lower[i] == f64::INFINITY {
            return Err(format!("the lower bound of {name} is {}", lp.lower[i]));
        }
        if lp.upper[i].is_nan() || lp.upper[i] == f64::NEG_INFINITY {
            return Err(format!("the upper bound of {name} is {}", lp.upper[i]));
        }
    }
    for row in &lp.rows {
        let mut seen = HashSet::new();
        for &(i, a) in &row.coeffs {
            if i >= n {
                return Err(format!("row {} uses variable {i} of {n}", row.name));
            }
            if !seen.insert(i) {
                return Err(format!("row {} uses {} twice", row.name, lp.names[i]));
            }
            if !a.is_finite() {
                return Err(format!(
                    "row {}: the coefficient of {} is {a}",
                    row.name, lp.names[i]
                ));
            }
        }
    }
    Ok(())
}

/// The program as an LP file, after `comments` (one `\ ` line each). Fails for programs an LP
/// file cannot hold: non-finite coefficients or costs, right-hand sides beyond the f64 range,
/// no variables.
pub fn to_lp_string(
    lp: &LinearProgram,
    comments: &[String],
) -> std::result::Result<String, String> {
    check(lp)?;
    let vars = file_names(lp.names.iter().map(String::as_str), &[]);
    let rows = file_names(lp.rows.iter().map(|r| r.name.as_str()), &[OBJECTIVE]);
    let mut out = String::with_capacity(32 * (lp.nonzeros() + lp.num_vars()) + 1024);
    for comment in comments {
        for line in comment.lines() {
            out.push_str("\\ ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str("Minimize\n");
    let mut w = Wrapped::start(&mut out, &format!(" {OBJECTIVE}:"));
    for (c, name) in lp.cost.iter().zip(&vars) {
        w.push(&term(*c, name));
    }
    w.finish();
    out.push_str("Subject To\n");
    for (row, name) in lp.rows.iter().zip(&rows) {
        let nearest = match &row.rhs {
            Rhs::Dyadic(d) => nearest_f64(d),
            Rhs::Rational(r) => Some(Scalar::to_f64(r)).filter(|v| v.is_finite()),
        };
        let rhs = nearest.ok_or_else(|| {
            format!(
                "the right-hand side of row {} (about {:e}) is outside the f64 range",
                row.name,
                row.rhs.to_f64()
            )
        })?;
        let mut w = Wrapped::start(&mut out, &format!(" {name}:"));
        if row.coeffs.is_empty() {
            // The format has no empty rows (a dead neuron's): a zero coefficient stands in.
            w.push(&term(0.0, &vars[0]));
        }
        for &(i, a) in &row.coeffs {
            w.push(&term(a, &vars[i]));
        }
        let op = match row.kind {
            RowKind::Eq => "=",
            RowKind::Ge => ">=",
            RowKind::Le => "<=",
        };
        w.push(&format!("{op} {rhs:?}"));
        w.finish();
    }
    out.push_str("Bounds\n");
    for (i, name) in vars.iter().enumerate() {
        let (l, u) = (lp.lower[i], lp.upper[i]);
        let default_lower = l == 0.0 && l.is_sign_positive();
        if default_lower && u == f64::INFINITY {
            continue;
        }
        let line = if l == f64::NEG_INFINITY && u == f64::INFINITY {
            format!(" {name} free\n")
        } else if l.to_bits() == u.to_bits() {
            format!(" {name} = {}\n", bound(l))
        } else if l.is_finite() && u == f64::INFINITY {
            format!(" {name} >= {}\n", bound(l))
        } else {
            format!(" {} <= {name} <= {}\n", bound(l), bound(u))
        };
        out.push_str(&line);
    }
    out.push_str("End\n");
    Ok(out)
}

/// Writes `lp` as an LP file at `path`, atomically: the file appears complete or not at all.
pub fn write_lp_file(path: &Path, lp: &LinearProgram, comments: &[String]) -> Result<()> {
    use std::io::Write;
    let text = to_lp_string(lp, comments)
        .map_err(|problem| Error::Invalid(format!("cannot write {}: {problem}", path.display())))?;
    let mut file = crate::io::AtomicFile::create(path)?;
    file.writer()
        .write_all(text.as_bytes())
        .map_err(|e| Error::write(path, e))?;
    file.commit()
}
