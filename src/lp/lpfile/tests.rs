//! Round trips of the LP-file writer and reader, and what the reader refuses.

use super::write::LINE_WIDTH;
use super::*;
use crate::exact::dyadic::Dyadic;
use crate::exact::program::{LinearProgram, Rhs, RowKind};
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
        row.rhs = d(nearest_f64(row.rhs.as_dyadic().unwrap()).unwrap()).into();
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
        let centre = crate::region::Centre::from_f64(trace.layer_input(m)).unwrap();
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
                    relevance: <crate::exact::Rational as crate::exact::Scalar>::from_f64(
                        0.1 / 3.0,
                    ),
                };
                round_trip(&root_program(view, Some(&plane), norm, Tightening::NONE).0);
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
    assert_eq!(back.rows[0].rhs, Rhs::from(d(-0.5)));
}

#[test]
fn unwritable_programs_are_refused() {
    let mut lp = awkward();
    lp.rows[0].coeffs[0].1 = f64::NAN;
    assert!(to_lp_string(&lp, &[])
        .unwrap_err()
        .contains("coefficient of a is NaN"));
    let mut lp = awkward();
    lp.rows[0].rhs = (&d(f64::MAX) * &d(8.0)).into();
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
