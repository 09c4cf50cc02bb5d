//! LP files: a [`LinearProgram`] in CPLEX LP format, which CPLEX, HiGHS, GLPK's
//! `glpsol --lp` and most other solvers read, and a reader for the subset written here.
//!
//! A program's right-hand sides are exact dyadics; a file holds each as its nearest f64 (ties
//! to even). Every number (coefficient, cost, bound, right-hand side) is printed in the
//! shortest decimal form that reads back as the same f64, so the file is exactly the f64
//! program, and reading it back gives that program again: a program whose right-hand sides
//! are f64 values and whose names are valid LP names comes back unchanged, except that an
//! empty row (the format has none) comes back with a zero coefficient of the first variable.
//!
//! The layout:
//!
//! ```text
//! \ comment lines
//! Minimize
//!  obj: + 1.0 p0 + 1.0 n0 + 0.0 h1_0
//! Subject To
//!  z1_0: + 0.5 p0 - 0.5 n0 - 1.0 h1_0 = -0.25
//! Bounds
//!  h1_0 free
//!  -inf <= x <= 3.0
//! End
//! ```
//!
//! Every variable appears in the objective, with its cost even when that is zero, so readers
//! (this one and GLPK's) number the variables in index order. Bounds other than the format's
//! default `0 <= x <= +inf` are written as `x free`, `x >= l`, `x = v` or `l <= x <= u`
//! (with `-inf`/`+inf`); long rows are wrapped onto indented continuation lines. Names are
//! kept when they are valid in both CPLEX and GLPK LP files (letters, digits, `_` and `.`,
//! not starting with a digit, `.`, `e` or `E`, not a keyword, at most 255 characters);
//! others are changed into such names, made unique. Some solvers take finite values of 1e20
//! or more as infinite; dtdcert's programs have none.
//!
//! [`parse_lp`] reads the same subset (case-insensitive section names and their usual
//! synonyms, comments, constraints spread over several lines, unnamed constraints, bounds in
//! any of the forms above) and refuses anything else with the line and the problem:
//! maximisation, integer sections, ranged constraints, constants on the left-hand side.
//!
//! - `write.rs`: the writer, [`to_lp_string`] and [`write_lp_file`], and [`nearest_f64`].
//! - `parse.rs`: the reader, [`parse_lp`] and [`read_lp_file`], and its [`ParseError`].
//!
//! [`LinearProgram`]: crate::exact::program::LinearProgram

mod parse;
mod write;

pub use parse::{parse_lp, read_lp_file, ParseError};
pub use write::{nearest_f64, to_lp_string, write_lp_file};

#[cfg(test)]
mod tests;
