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

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::exact::dyadic::Dyadic;
use crate::exact::program::{LinearProgram, RowKind};

/// Lines are wrapped after about this many characters (CPLEX reads lines of up to 510).
const LINE_WIDTH: usize = 100;
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
        let rhs = nearest_f64(&row.rhs).ok_or_else(|| {
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

/// Where and why an LP file could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong on that line.
    pub problem: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.problem)
    }
}

impl std::error::Error for ParseError {}

/// Reads an LP file (the subset [`to_lp_string`] writes).
pub fn read_lp_file(path: &Path) -> Result<LinearProgram> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::file(path, e.to_string()))?;
    parse_lp(&text).map_err(|e| Error::file(path, e.to_string()))
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(f64),
    Name(String),
    /// `+` (false) or `-` (true).
    Sign(bool),
    Op(RowKind),
    Colon,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    line: usize,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!\"#$%&()/,.;?@_`'{}|~".contains(c)
}

fn tokenize(text: &str, line: usize) -> std::result::Result<Vec<Token>, ParseError> {
    let err = |problem: String| ParseError { line, problem };
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let tok = if c.is_whitespace() {
            i += 1;
            continue;
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                let mut j = i + 1;
                if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
                    j += 1;
                }
                if j < chars.len() && chars[j].is_ascii_digit() {
                    while j < chars.len() && chars[j].is_ascii_digit() {
                        j += 1;
                    }
                    i = j;
                }
            }
            let s: String = chars[start..i].iter().collect();
            let v: f64 = s
                .parse()
                .map_err(|_| err(format!("malformed number '{s}'")))?;
            if !v.is_finite() {
                return Err(err(format!("the number {s} is outside the f64 range")));
            }
            Tok::Num(v)
        } else if is_name_char(c) {
            while i < chars.len() && is_name_char(chars[i]) {
                i += 1;
            }
            Tok::Name(chars[start..i].iter().collect())
        } else {
            i += 1;
            let next = chars.get(i).copied();
            match (c, next) {
                ('+', _) => Tok::Sign(false),
                ('-', _) => Tok::Sign(true),
                (':', _) => Tok::Colon,
                ('<', Some('=')) | ('=', Some('<')) => {
                    i += 1;
                    Tok::Op(RowKind::Le)
                }
                ('>', Some('=')) | ('=', Some('>')) => {
                    i += 1;
                    Tok::Op(RowKind::Ge)
                }
                ('<', _) => Tok::Op(RowKind::Le),
                ('>', _) => Tok::Op(RowKind::Ge),
                ('=', _) => Tok::Op(RowKind::Eq),
                _ => return Err(err(format!("unexpected character '{c}'"))),
            }
        };
        out.push(Token { tok, line });
    }
    Ok(out)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Section {
    Start,
    Objective,
    Constraints,
    Bounds,
    End,
}

impl Section {
    fn label(self) -> &'static str {
        match self {
            Section::Start => "the start",
            Section::Objective => "Minimize",
            Section::Constraints => "Subject To",
            Section::Bounds => "Bounds",
            Section::End => "End",
        }
    }
}

/// The section a line opens and how many of its tokens name it, if it opens one.
fn section_header(tokens: &[Token]) -> std::result::Result<Option<(Section, usize)>, ParseError> {
    let Some(Token {
        tok: Tok::Name(first),
        line,
    }) = tokens.first()
    else {
        return Ok(None);
    };
    let second = match tokens.get(1) {
        Some(Token {
            tok: Tok::Name(s), ..
        }) => s.to_ascii_lowercase(),
        _ => String::new(),
    };
    let word = first.to_ascii_lowercase();
    let unsupported = |what: &str| {
        Err(ParseError {
            line: *line,
            problem: format!(
                "'{first}': {what} (this reader takes continuous minimisation problems)"
            ),
        })
    };
    Ok(Some(match word.as_str() {
        "min" | "minimize" | "minimise" | "minimum" => (Section::Objective, 1),
        "max" | "maximize" | "maximise" | "maximum" => {
            return unsupported("maximisation is not supported")
        }
        "st" | "s.t." | "st." => (Section::Constraints, 1),
        "subject" if second == "to" => (Section::Constraints, 2),
        "such" if second == "that" => (Section::Constraints, 2),
        "bound" | "bounds" => (Section::Bounds, 1),
        "end" => (Section::End, 1),
        "gen" | "general" | "generals" | "int" | "integer" | "integers" | "bin" | "binary"
        | "binaries" | "semi" | "semis" | "sos" => {
            return unsupported(
                "integer, binary, semi-continuous and SOS sections are not supported",
            )
        }
        _ => return Ok(None),
    }))
}

/// Builds the program while the file is read.
struct Builder {
    lp: LinearProgram,
    index: HashMap<String, usize>,
    /// Constraint names seen so far (a name may be used once).
    row_names: HashSet<String>,
}

impl Builder {
    fn var(&mut self, name: &str) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.lp.add_var(name.to_string(), 0.0, f64::INFINITY, 0.0);
        self.index.insert(name.to_string(), i);
        i
    }
}

/// A cursor over one section's tokens.
struct Cursor<'t> {
    tokens: &'t [Token],
    pos: usize,
    /// The line reported when the section ends early.
    last_line: usize,
}

impl<'t> Cursor<'t> {
    fn peek(&self) -> Option<&'t Tok> {
        self.tokens.get(self.pos).map(|t| &t.tok)
    }

    fn peek_at(&self, k: usize) -> Option<&'t Tok> {
        self.tokens.get(self.pos + k).map(|t| &t.tok)
    }

    fn line(&self) -> usize {
        self.tokens.get(self.pos).map_or(self.last_line, |t| t.line)
    }

    fn next(&mut self) -> Option<&'t Tok> {
        let t = self.peek();
        if t.is_some() {
            self.pos += 1;
        }
        t
    }

    fn error<T>(&self, problem: impl Into<String>) -> std::result::Result<T, ParseError> {
        Err(ParseError {
            line: self.line(),
            problem: problem.into(),
        })
    }

    fn at_end(&self) -> bool {
        self.pos >= self.tokens.len()
    }
}

fn describe(tok: Option<&Tok>) -> String {
    match tok {
        None => "the end of the section".into(),
        Some(Tok::Num(v)) => format!("the number {v:?}"),
        Some(Tok::Name(n)) => format!("'{n}'"),
        Some(Tok::Sign(neg)) => format!("'{}'", if *neg { '-' } else { '+' }),
        Some(Tok::Op(k)) => format!(
            "'{}'",
            match k {
                RowKind::Eq => "=",
                RowKind::Ge => ">=",
                RowKind::Le => "<=",
            }
        ),
        Some(Tok::Colon) => "':'".into(),
    }
}

fn is_infinity(name: &str) -> bool {
    matches!(name.to_ascii_lowercase().as_str(), "inf" | "infinity")
}

/// `[name :]` at the cursor.
fn label(c: &mut Cursor) -> Option<String> {
    if let (Some(Tok::Name(n)), Some(Tok::Colon)) = (c.peek(), c.peek_at(1)) {
        c.pos += 2;
        Some(n.clone())
    } else {
        None
    }
}

/// A linear form `[±] [coef] name ± [coef] name …`, up to an operator or the section's end.
fn linear_form(
    c: &mut Cursor,
    b: &mut Builder,
    what: &str,
) -> std::result::Result<Vec<(usize, f64)>, ParseError> {
    let mut terms: Vec<(usize, f64)> = Vec::new();
    let mut seen = HashSet::new();
    loop {
        match c.peek() {
            None | Some(Tok::Op(_)) => return Ok(terms),
            _ => {}
        }
        let mut negative = false;
        match c.peek() {
            Some(Tok::Sign(neg)) => {
                negative = *neg;
                c.pos += 1;
            }
            _ if !terms.is_empty() => {
                return c.error(format!(
                    "expected '+' or '-' before the next term of {what}, found {}",
                    describe(c.peek())
                ))
            }
            _ => {}
        }
        let mut coefficient = 1.0;
        if let Some(Tok::Num(v)) = c.peek() {
            coefficient = *v;
            c.pos += 1;
        }
        match c.peek() {
            Some(Tok::Name(name)) if !is_infinity(name) => {
                c.pos += 1;
                let i = b.var(name);
                if !seen.insert(i) {
                    return c.error(format!("{name} appears twice in {what}"));
                }
                terms.push((i, if negative { -coefficient } else { coefficient }));
            }
            Some(Tok::Op(_)) | None => {
                return c.error(format!(
                    "a constant term in {what} (constants belong on the right-hand side of constraints; objectives have none)"
                ))
            }
            other => {
                return c.error(format!(
                    "expected a variable name in {what}, found {}",
                    describe(other)
                ))
            }
        }
    }
}

/// `[±] number` or `[±] inf`.
fn value(c: &mut Cursor, what: &str) -> std::result::Result<f64, ParseError> {
    let mut negative = false;
    if let Some(Tok::Sign(neg)) = c.peek() {
        negative = *neg;
        c.pos += 1;
    }
    let v = match c.peek() {
        Some(Tok::Num(v)) => *v,
        Some(Tok::Name(n)) if is_infinity(n) => f64::INFINITY,
        other => {
            return c.error(format!(
                "expected a number as {what}, found {}",
                describe(other)
            ))
        }
    };
    c.pos += 1;
    Ok(if negative { -v } else { v })
}

fn objective(c: &mut Cursor, b: &mut Builder) -> std::result::Result<(), ParseError> {
    label(c);
    let terms = linear_form(c, b, "the objective")?;
    if !c.at_end() {
        return c.error(format!(
            "unexpected {} in the objective",
            describe(c.peek())
        ));
    }
    for (i, v) in terms {
        b.lp.cost[i] = v;
    }
    Ok(())
}

fn constraints(c: &mut Cursor, b: &mut Builder) -> std::result::Result<(), ParseError> {
    while !c.at_end() {
        let line = c.line();
        let name = label(c).unwrap_or_else(|| format!("c{}", b.lp.num_rows() + 1));
        if !b.row_names.insert(name.clone()) {
            return Err(ParseError {
                line,
                problem: format!("a second constraint named {name}"),
            });
        }
        let what = format!("constraint {name}");
        let signed = usize::from(matches!(c.peek(), Some(Tok::Sign(_))));
        if matches!(c.peek_at(signed), Some(Tok::Num(_)))
            && matches!(c.peek_at(signed + 1), Some(Tok::Op(_)))
        {
            return c.error(format!(
                "{what} starts with a number and an operator: ranged constraints are not supported"
            ));
        }
        let coeffs = linear_form(c, b, &what)?;
        if coeffs.is_empty() {
            return c.error(format!("{what} has no terms"));
        }
        let kind = match c.next() {
            Some(Tok::Op(k)) => *k,
            other => {
                return c.error(format!(
                    "expected <=, >= or = in {what}, found {}",
                    describe(other)
                ))
            }
        };
        let rhs = value(c, &format!("the right-hand side of {what}"))?;
        if !rhs.is_finite() {
            return Err(ParseError {
                line: c.tokens[c.pos - 1].line,
                problem: format!("the right-hand side of {what} is infinite"),
            });
        }
        if matches!(c.peek(), Some(Tok::Op(_))) {
            return c.error(format!(
                "a second operator in {what}: ranged constraints are not supported"
            ));
        }
        b.lp.add_row(name, coeffs, kind, Dyadic::from_f64(rhs).expect("finite"));
    }
    Ok(())
}

/// Applies `x (op) v` to variable `i`.
fn apply_bound(
    b: &mut Builder,
    i: usize,
    op: RowKind,
    v: f64,
    line: usize,
) -> std::result::Result<(), ParseError> {
    let name = b.lp.names[i].clone();
    let err = |problem: String| Err(ParseError { line, problem });
    if matches!(op, RowKind::Ge | RowKind::Eq) {
        if v == f64::INFINITY {
            return err(format!("the lower bound of {name} is +inf"));
        }
        b.lp.lower[i] = v;
    }
    if matches!(op, RowKind::Le | RowKind::Eq) {
        if v == f64::NEG_INFINITY {
            return err(format!("the upper bound of {name} is -inf"));
        }
        b.lp.upper[i] = v;
    }
    Ok(())
}

fn flip(op: RowKind) -> RowKind {
    match op {
        RowKind::Eq => RowKind::Eq,
        RowKind::Ge => RowKind::Le,
        RowKind::Le => RowKind::Ge,
    }
}

fn bounds(c: &mut Cursor, b: &mut Builder) -> std::result::Result<(), ParseError> {
    while !c.at_end() {
        let line = c.line();
        match (c.peek(), c.peek_at(1)) {
            (Some(Tok::Name(n)), Some(Tok::Name(f)))
                if !is_infinity(n) && f.eq_ignore_ascii_case("free") =>
            {
                let i = b.var(n);
                c.pos += 2;
                b.lp.lower[i] = f64::NEG_INFINITY;
                b.lp.upper[i] = f64::INFINITY;
            }
            (Some(Tok::Name(n)), Some(Tok::Op(op))) if !is_infinity(n) => {
                let (n, op) = (n.clone(), *op);
                c.pos += 2;
                let v = value(c, &format!("a bound of {n}"))?;
                let i = b.var(&n);
                apply_bound(b, i, op, v, line)?;
            }
            _ => {
                let lo = value(c, "a bound")?;
                let op = match c.next() {
                    Some(Tok::Op(op)) => *op,
                    other => {
                        return c.error(format!(
                            "expected <=, >= or = after a bound, found {}",
                            describe(other)
                        ))
                    }
                };
                let n = match c.next() {
                    Some(Tok::Name(n)) if !is_infinity(n) => n.clone(),
                    other => {
                        return c.error(format!(
                            "expected a variable name in a bound, found {}",
                            describe(other)
                        ))
                    }
                };
                let i = b.var(&n);
                apply_bound(b, i, flip(op), lo, line)?;
                if let Some(Tok::Op(op2)) = c.peek() {
                    let op2 = *op2;
                    c.pos += 1;
                    let hi = value(c, &format!("a bound of {n}"))?;
                    apply_bound(b, i, op2, hi, line)?;
                }
            }
        }
    }
    Ok(())
}

/// Reads an LP file's text (the subset [`to_lp_string`] writes). Variables are numbered in
/// order of first appearance, rows in file order; unnamed rows are called `c1`, `c2`, ….
pub fn parse_lp(text: &str) -> std::result::Result<LinearProgram, ParseError> {
    let mut sections: Vec<(Section, Vec<Token>, usize)> = Vec::new();
    let mut current = Section::Start;
    let mut last_line = 0;
    for (k, raw) in text.lines().enumerate() {
        let line = k + 1;
        last_line = line;
        let content = raw.split('\\').next().unwrap_or("");
        let mut tokens = tokenize(content, line)?;
        if tokens.is_empty() {
            continue;
        }
        if let Some((section, used)) = section_header(&tokens)? {
            if section <= current {
                return Err(ParseError {
                    line,
                    problem: format!(
                        "{} after {}: expected the sections Minimize, Subject To, Bounds (optional), End in this order",
                        section.label(),
                        current.label()
                    ),
                });
            }
            if current == Section::Start && section != Section::Objective {
                return Err(ParseError {
                    line,
                    problem: format!("{} before Minimize", section.label()),
                });
            }
            if section >= Section::Bounds && current < Section::Constraints {
                return Err(ParseError {
                    line,
                    problem: format!("{} without a Subject To section", section.label()),
                });
            }
            current = section;
            sections.push((section, Vec::new(), line));
            tokens.drain(..used);
        }
        if tokens.is_empty() {
            continue;
        }
        match sections.last_mut() {
            Some((Section::End, _, _)) => {
                return Err(ParseError {
                    line,
                    problem: "text after End".into(),
                })
            }
            Some((_, section_tokens, _)) => section_tokens.extend(tokens),
            None => {
                return Err(ParseError {
                    line,
                    problem: format!(
                        "expected Minimize, found {}",
                        describe(tokens.first().map(|t| &t.tok))
                    ),
                })
            }
        }
    }
    if current != Section::End {
        return Err(ParseError {
            line: last_line.max(1),
            problem: format!("the file ends in {} without End", current.label()),
        });
    }
    let mut b = Builder {
        lp: LinearProgram::new(),
        index: HashMap::new(),
        row_names: HashSet::new(),
    };
    for (k, (section, tokens, header_line)) in sections.iter().enumerate() {
        let last_line = sections
            .get(k + 1)
            .map_or(*header_line, |(_, _, next)| next - 1)
            .max(*header_line);
        let mut c = Cursor {
            tokens,
            pos: 0,
            last_line,
        };
        match section {
            Section::Objective => objective(&mut c, &mut b)?,
            Section::Constraints => constraints(&mut c, &mut b)?,
            Section::Bounds => bounds(&mut c, &mut b)?,
            Section::Start | Section::End => {}
        }
    }
    Ok(b.lp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ir::dense_layer;
    use crate::model::{Model, Network};
    use crate::region::problem::{
        chebyshev_program, composed_row_norms, facet_program, root_program, Domain, Norm, NormSide,
        RegionView, RootPlane, Tightening,
    };
    use crate::region::trace_and_pattern;

    fn d(x: f64) -> Dyadic {
        Dyadic::from_f64(x).unwrap()
    }

    /// Bit-for-bit equality of two programs (names, bounds, costs, rows).
    fn assert_same(a: &LinearProgram, b: &LinearProgram) {
        assert_eq!(a.names, b.names);
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a.lower), bits(&b.lower), "lower bounds");
        assert_eq!(bits(&a.upper), bits(&b.upper), "upper bounds");
        assert_eq!(bits(&a.cost), bits(&b.cost), "costs");
        assert_eq!(a.rows.len(), b.rows.len());
        for (ra, rb) in a.rows.iter().zip(&b.rows) {
            assert_eq!(ra.name, rb.name);
            assert_eq!(ra.kind, rb.kind, "{}", ra.name);
            assert_eq!(ra.rhs, rb.rhs, "{}", ra.name);
            let ca: Vec<(usize, u64)> = ra.coeffs.iter().map(|&(i, v)| (i, v.to_bits())).collect();
            let cb: Vec<(usize, u64)> = rb.coeffs.iter().map(|&(i, v)| (i, v.to_bits())).collect();
            assert_eq!(ca, cb, "{}", ra.name);
        }
    }

    /// `lp` as a file holds it: every right-hand side rounded to its nearest f64, empty rows
    /// with a zero coefficient of the first variable.
    fn rounded(lp: &LinearProgram) -> LinearProgram {
        let mut out = lp.clone();
        for row in &mut out.rows {
            row.rhs = d(nearest_f64(&row.rhs).unwrap());
            if row.coeffs.is_empty() {
                row.coeffs.push((0, 0.0));
            }
        }
        out
    }

    fn round_trip(lp: &LinearProgram) {
        let text = to_lp_string(lp, &["a comment".into(), "two\nlines".into()]).unwrap();
        let back = parse_lp(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_same(&back, &rounded(lp));
        // The file of the read program is the same file.
        assert_eq!(
            to_lp_string(&back, &["a comment".into(), "two\nlines".into()]).unwrap(),
            text
        );
    }

    fn model() -> Model {
        // 3-4-3-2 with awkward values: thirds, tiny and huge weights, a dead neuron.
        let w1 = vec![
            1.0 / 3.0,
            -0.5,
            2.0,
            1e-7,
            3.0,
            -1.0,
            0.0,
            0.0,
            0.0,
            -0.25,
            1e5,
            0.1,
        ];
        let w2 = vec![
            0.5,
            -1.0 / 7.0,
            0.0,
            2.0,
            -0.3,
            0.7,
            0.0,
            1.5,
            1.0,
            1.0,
            0.0,
            -2.0,
        ];
        let w3 = vec![1.0, -1.0, 0.5, -0.5, 2.0, 0.25];
        let layers = vec![
            dense_layer(4, 3, w1, vec![0.1, -0.2, 0.0, 0.3], true).unwrap(),
            dense_layer(3, 4, w2, vec![0.05, 0.0, -0.1], true).unwrap(),
            dense_layer(2, 3, w3, vec![0.0, 0.1], false).unwrap(),
        ];
        Model::new(Network::new(layers).unwrap())
    }

    #[test]
    fn region_programs_round_trip() {
        let model = model();
        let x = [0.3, 0.2, 0.7];
        let (trace, pattern, _) = trace_and_pattern(&model, &x);
        for m in 0..2 {
            let centre = trace.layer_input(m).to_vec();
            for domain in [
                Domain::Free,
                Domain::NonNegative,
                Domain::Box {
                    lo: -0.5,
                    hi: 1.0 / 3.0,
                },
            ] {
                let view = RegionView {
                    net: model.net(),
                    pattern: &pattern,
                    layer: m,
                    centre: &centre,
                    domain,
                };
                for norm in [Norm::L1, Norm::Linf] {
                    let plane = RootPlane {
                        neuron: 1,
                        relevance: 0.1 / 3.0,
                    };
                    round_trip(&root_program(view, Some(plane), norm, Tightening::NONE).0);
                    round_trip(
                        &root_program(
                            view,
                            None,
                            norm,
                            Tightening {
                                margin: 1e-9,
                                ..Tightening::NONE
                            },
                        )
                        .0,
                    );
                }
                let norms = composed_row_norms(model.net(), &pattern, m);
                for side in [NormSide::Inner, NormSide::Outer] {
                    round_trip(&chebyshev_program(view, &norms, side, Tightening::NONE).0);
                }
                round_trip(&facet_program(view, m, 0, Tightening::NONE).0);
            }
        }
    }

    /// Every shape of bound, signed zeros, extreme values and an exact right-hand side that is
    /// not an f64.
    fn awkward() -> LinearProgram {
        let mut lp = LinearProgram::new();
        let a = lp.add_var("a".into(), f64::NEG_INFINITY, f64::INFINITY, -0.0);
        let b = lp.add_var("b".into(), -0.0, 0.0, 1e-300);
        let c = lp.add_var("c".into(), f64::NEG_INFINITY, -2.5, f64::MAX);
        let e = lp.add_var("d".into(), 3.0, 3.0, -1.0);
        let f = lp.add_var("f".into(), -1e-310, f64::INFINITY, 0.0);
        let g = lp.add_var("g".into(), 1.0, 2.0, 0.1);
        lp.add_row(
            "r".into(),
            vec![(a, 1.0), (b, -0.0), (c, 5e-324)],
            RowKind::Le,
            d(-0.0),
        );
        let third = &d(1.0 / 3.0) * &d(1.0 / 3.0);
        lp.add_row(
            "q".into(),
            vec![(e, -1.0 / 3.0), (f, 1e300), (g, 2.0)],
            RowKind::Ge,
            third,
        );
        lp.add_row(
            "s".into(),
            (0..6).map(|i| (i, 0.1 * i as f64)).collect(),
            RowKind::Eq,
            d(7.0),
        );
        lp
    }

    #[test]
    fn awkward_values_round_trip() {
        round_trip(&awkward());
        let text = to_lp_string(&awkward(), &[]).unwrap();
        assert!(text.contains(" a free\n"), "{text}");
        assert!(text.contains(" d = 3.0\n"), "{text}");
        assert!(text.contains(" -inf <= c <= -2.5\n"), "{text}");
        assert!(text.contains(" -0.0 <= b <= 0.0\n"), "{text}");
        assert!(text.contains(" 1.0 <= g <= 2.0\n"), "{text}");
    }

    #[test]
    fn nearest_f64_rounds_to_nearest_even() {
        let one = d(1.0);
        let ulp = d(f64::EPSILON);
        let half_ulp = &ulp * &d(0.5);
        // 1 + ulp/2 is a tie between 1 (even) and 1 + ulp (odd).
        assert_eq!(nearest_f64(&(&one + &half_ulp)), Some(1.0));
        let above = &(&one + &half_ulp) + &d(1e-300);
        assert_eq!(nearest_f64(&above), Some(1.0 + f64::EPSILON));
        let third = &d(1.0 / 3.0) * &d(3.0);
        assert_eq!(nearest_f64(&third), Some(1.0));
        assert_eq!(nearest_f64(&(&d(f64::MAX) * &d(4.0))), None);
    }

    #[test]
    fn names_are_made_valid_and_unique() {
        let mut lp = LinearProgram::new();
        for name in ["x y", "x_y", "2x", "e1", "free", "", "Bounds", "a:b", "x y"] {
            lp.add_var(name.into(), 0.0, 1.0, 1.0);
        }
        lp.add_row("obj".into(), vec![(0, 1.0)], RowKind::Ge, d(0.0));
        lp.add_row("c 1".into(), vec![(1, 1.0)], RowKind::Ge, d(0.0));
        let text = to_lp_string(&lp, &[]).unwrap();
        let back = parse_lp(&text).unwrap();
        assert_eq!(
            back.names,
            ["x_y_2", "x_y", "_2x", "_e1", "_free", "_", "_Bounds", "a_b", "x_y_3"]
        );
        assert_eq!(back.rows[0].name, "obj_2");
        assert_eq!(back.rows[1].name, "c_1");
        assert_eq!(back.num_vars(), lp.num_vars());
    }

    #[test]
    fn long_rows_are_wrapped() {
        let mut lp = LinearProgram::new();
        let vars: Vec<usize> = (0..200)
            .map(|i| lp.add_var(format!("v{i}"), 0.0, f64::INFINITY, 1.0 / 7.0))
            .collect();
        lp.add_row(
            "long".into(),
            vars.iter().map(|&v| (v, -1.0 / 3.0)).collect(),
            RowKind::Le,
            d(-1.0 / 3.0),
        );
        let text = to_lp_string(&lp, &[]).unwrap();
        assert!(text.lines().all(|l| l.len() <= LINE_WIDTH), "{text}");
        round_trip(&lp);
    }

    #[test]
    fn empty_rows_get_a_zero_coefficient() {
        let mut lp = LinearProgram::new();
        lp.add_var("x".into(), 0.0, 1.0, 1.0);
        lp.add_row("dead".into(), vec![], RowKind::Le, d(-0.5));
        let back = parse_lp(&to_lp_string(&lp, &[]).unwrap()).unwrap();
        assert_eq!(back.rows[0].coeffs, vec![(0, 0.0)]);
        assert_eq!(back.rows[0].rhs, d(-0.5));
    }

    #[test]
    fn unwritable_programs_are_refused() {
        let mut lp = awkward();
        lp.rows[0].coeffs[0].1 = f64::NAN;
        assert!(to_lp_string(&lp, &[])
            .unwrap_err()
            .contains("coefficient of a is NaN"));
        let mut lp = awkward();
        lp.rows[0].rhs = &d(f64::MAX) * &d(8.0);
        assert!(to_lp_string(&lp, &[])
            .unwrap_err()
            .contains("outside the f64 range"));
        let mut lp = awkward();
        lp.lower[0] = f64::INFINITY;
        assert!(to_lp_string(&lp, &[])
            .unwrap_err()
            .contains("lower bound of a"));
        assert!(to_lp_string(&LinearProgram::new(), &[]).is_err());
    }

    #[test]
    fn other_writers_forms_are_read() {
        let text = "\\ comment\nMINIMIZE\n cost: x + 2 y\n - .5e1z\nsubject to\n x + y >= 1\n \
                    named: x - y =< 3 \\ trailing comment\n  -x => -4\nlast: y = 0.5\nBOUNDS\n x <= 4\n \
                    -1 <= z\n y >= -INFINITY\n 2 >= w\nend\n";
        let lp = parse_lp(text).unwrap();
        assert_eq!(lp.names, ["x", "y", "z", "w"]);
        assert_eq!(lp.cost, [1.0, 2.0, -5.0, 0.0]);
        let names: Vec<&str> = lp.rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["c1", "named", "c3", "last"]);
        assert_eq!(lp.rows[2].kind, RowKind::Ge);
        assert_eq!(lp.rows[2].coeffs, vec![(0, -1.0)]);
        assert_eq!((lp.lower[0], lp.upper[0]), (0.0, 4.0));
        assert_eq!(
            (lp.lower[1], lp.upper[1]),
            (f64::NEG_INFINITY, f64::INFINITY)
        );
        assert_eq!((lp.lower[2], lp.upper[2]), (-1.0, f64::INFINITY));
        assert_eq!((lp.lower[3], lp.upper[3]), (0.0, 2.0));
    }

    fn error_of(text: &str) -> ParseError {
        parse_lp(text).expect_err("the text is refused")
    }

    #[test]
    fn anything_else_is_refused_with_its_line() {
        let cases: &[(&str, usize, &str)] = &[
            ("Maximize\n x\nst\n x <= 1\nEnd\n", 1, "maximisation"),
            (
                "Minimize\n x\nst\n x <= 1\nGeneral\n x\nEnd\n",
                5,
                "integer",
            ),
            ("Minimize\n x\nst\n c: 1 <= x <= 2\nEnd\n", 4, "ranged"),
            ("Minimize\n x\nst\n c: x + y <= 1 <= 2\nEnd\n", 4, "ranged"),
            (
                "Minimize\n x\nst\n c: x + 3 <= 2\nEnd\n",
                4,
                "constant term",
            ),
            (
                "Minimize\n x + 3\nst\n c: x <= 2\nEnd\n",
                2,
                "constant term",
            ),
            (
                "Minimize\n x\nst\n c: x + x <= 1\nEnd\n",
                4,
                "appears twice",
            ),
            (
                "Minimize\n x\nst\n c: x y <= 1\nEnd\n",
                4,
                "expected '+' or '-'",
            ),
            ("Minimize\n x\nst\n c: x <= y\nEnd\n", 4, "right-hand side"),
            (
                "Minimize\n x\nst\n c: x <= 1\n c: x >= 0\nEnd\n",
                5,
                "second constraint named c",
            ),
            ("Minimize\n x\nst\n c: x <= 1\n", 4, "without End"),
            ("Minimize\n x\nst\n c: x <= 1\nEnd\n x\n", 6, "after End"),
            ("x\nMinimize\n x\nEnd\n", 1, "expected Minimize"),
            (
                "Minimize\n x\nBounds\n x <= 1\nEnd\n",
                3,
                "without a Subject To",
            ),
            (
                "Minimize\n x\nst\n c: x <= 1\nMinimize\nEnd\n",
                5,
                "in this order",
            ),
            (
                "Minimize\n x\nst\n c: x [ 1\nEnd\n",
                4,
                "unexpected character '['",
            ),
            (
                "Minimize\n x\nst\n c: x <= 1e999\nEnd\n",
                4,
                "outside the f64 range",
            ),
            (
                "Minimize\n x\nst\n c: x <= 1\nBounds\n x >= +inf\nEnd\n",
                6,
                "lower bound of x",
            ),
            (
                "Minimize\n x\nst\n c: x <= 1\nBounds\n x <= y\nEnd\n",
                6,
                "expected a number",
            ),
            (
                "Minimize\n x\nst\n c: x <=\n\n\nEnd\n",
                6,
                "right-hand side",
            ),
        ];
        for &(text, line, problem) in cases {
            let e = error_of(text);
            assert!(
                e.problem.contains(problem) && e.line == line,
                "{text:?}: got {e}, expected line {line}: …{problem}…"
            );
        }
    }
}
