//! The LP-file reader: the subset of the CPLEX LP format that the writer produces, plus the
//! usual synonyms and forms of other writers; anything else is refused with its line.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

use crate::error::{Error, Result};
use crate::exact::dyadic::Dyadic;
use crate::exact::program::{LinearProgram, RowKind};

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

/// Reads an LP file (the subset [`to_lp_string`](super::to_lp_string) writes).
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

/// Reads an LP file's text (the subset [`to_lp_string`](super::to_lp_string) writes).
/// Variables are numbered in order of first appearance, rows in file order; unnamed rows are
/// called `c1`, `c2`, ….
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
