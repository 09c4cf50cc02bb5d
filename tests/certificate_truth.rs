//! Certificates are true: every claim the checker accepts holds for the question DESIGN.md
//! §1.5 defines, as an exact linear program written here, apart from the crate, decides it.
//!
//! The question of a root certificate: is there a point `ã` of the region `P_l(x)` and the
//! domain on the plane `w_j·ã = w_j·a − R_j`, where `a = h_{l-1}(x)` and `R_j` (the neuron's
//! relevance under the certificate's rules) are computed exactly, and how near to `a` is the
//! nearest one (L1 or L∞)? This file computes `a`, the pattern, the composed constraints of
//! the region and `R_j` in rationals from the model's weights by itself, and solves the
//! program with its own exact simplex (rationals, Bland's rule) inside constraint generation:
//! the plane alone first, then every constraint of the region or the domain that the exact
//! optimum of the smaller program violates, until it violates none. The smaller program is a
//! relaxation, so an infeasible one proves the question infeasible and an optimum that
//! violates nothing is the question's optimum.
//!
//! - the certificates of the shipped C6 example (`--certify nearest-l1`, and `--certify
//!   exists --certify-all` in f64 and in `--exact`): each is accepted by the checker, and
//!   each claim holds: a witness projected onto the plane is valid, "no valid root" has no
//!   solution, a certified interval holds the exact optimum. No record says its rule root is
//!   valid while its certificate says no valid root exists, and a valid rule root is never
//!   nearer than the certified lower bound.
//! - the same for random float32 MLPs (3-4-3-2 and other small sizes, with and without an
//!   input box, z+ and w² rules), with every root certified for every question.

use std::path::Path;

use dtdcert::audit::{
    audit_sample_certified, AuditSettings, CertifiedAnswer, CertifySettings, DomainBox,
    SampleRecord,
};
use dtdcert::check::{check, Accepted, Certificate, Claim, Problem};
use dtdcert::dtd::{DtdSettings, InitialRelevance, Rule};
use dtdcert::model::inputs::load_inputs;
use dtdcert::model::ir::dense_layer;
use dtdcert::model::{Model, Network};
use dtdcert::region::problem::Domain;
use num_traits::{One, Signed, ToPrimitive, Zero};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The exact arithmetic of this file: num-rational's, not the crate's.
type Q = num_rational::BigRational;

fn q(x: f64) -> Q {
    Q::from_float(x).expect("finite")
}

// ---------------------------------------------------------------------------------------------
// The network in rationals, read from the model's weights

/// One dense layer: `z = W h + b`, then ReLU when `relu`.
struct Dense {
    w: Vec<Vec<Q>>,
    b: Vec<Q>,
    relu: bool,
}

fn layers_of(model: &Model) -> Vec<Dense> {
    model
        .net()
        .layers()
        .iter()
        .map(|l| {
            assert!(
                l.max_pool.is_none() && l.linear_tail == 0,
                "plain MLPs only"
            );
            let rows = l.affine.out_dim();
            Dense {
                w: (0..rows)
                    .map(|j| l.affine.row(j).dense().iter().map(|&v| q(v)).collect())
                    .collect(),
                b: (0..rows).map(|j| q(*l.affine.bias(j))).collect(),
                relu: l.relu,
            }
        })
        .collect()
}

fn dot(a: &[Q], b: &[Q]) -> Q {
    a.iter().zip(b).fold(Q::zero(), |acc, (x, y)| acc + x * y)
}

/// The inputs `h_0 … h_L` and pre-activations `z_1 … z_L`, from layer `from` up, starting at
/// `h` (the input of layer `from`).
fn forward(layers: &[Dense], from: usize, h: Vec<Q>) -> (Vec<Vec<Q>>, Vec<Vec<Q>>) {
    let mut inputs = vec![h];
    let mut pre = Vec::new();
    for layer in &layers[from..] {
        let h = inputs.last().unwrap();
        let z: Vec<Q> = layer
            .w
            .iter()
            .zip(&layer.b)
            .map(|(row, b)| dot(row, h) + b)
            .collect();
        let out = if layer.relu {
            z.iter()
                .map(|v| {
                    if v.is_positive() {
                        v.clone()
                    } else {
                        Q::zero()
                    }
                })
                .collect()
        } else {
            z.clone()
        };
        pre.push(z);
        inputs.push(out);
    }
    (inputs, pre)
}

/// The relevances `R^l` of every layer's outputs (`out[l]` for layer `l + 1`, 0-based `l`)
/// under z+ or w² (bias ignored, no stabiliser), from output `k` down: a neuron passes
/// `w_ji v_i / (w_j·v) R_j` to input `i` (`v = a ⊙ 1[w >= 0]` for z+, `v = w_j` for w²), or
/// nothing when `R_j = 0` or `|w_j·v|` is at or below the threshold.
fn relevances(layers: &[Dense], inputs: &[Vec<Q>], s: &DtdSettings, k: usize) -> Vec<Vec<Q>> {
    assert_eq!(s.bias, dtdcert::dtd::BiasMode::Ignore);
    assert_eq!(s.stabilizer, 0.0);
    let threshold = q(s.denominator_threshold);
    let top = layers.len();
    let mut upper = vec![Q::zero(); layers[top - 1].b.len()];
    upper[k] = match s.initial_relevance {
        InitialRelevance::Output => inputs[top][k].clone(),
        InitialRelevance::One => Q::one(),
    };
    let mut out = vec![Vec::new(); top];
    for l in (0..top).rev() {
        out[l] = upper.clone();
        let a = &inputs[l];
        let mut lower = vec![Q::zero(); a.len()];
        for (j, r) in upper.iter().enumerate() {
            if r.is_zero() {
                continue;
            }
            let w = &layers[l].w[j];
            let v: Vec<Q> = match s.rule_for(l) {
                Rule::ZPlus => w
                    .iter()
                    .zip(a)
                    .map(|(wi, ai)| {
                        if wi.is_negative() {
                            Q::zero()
                        } else {
                            ai.clone()
                        }
                    })
                    .collect(),
                Rule::WSquare => w.clone(),
                other => panic!("rule {other} is not re-implemented here"),
            };
            let den = dot(w, &v);
            if den.abs() <= threshold {
                continue;
            }
            for i in 0..a.len() {
                lower[i] += &w[i] * &v[i] / &den * r;
            }
        }
        upper = lower;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// An exact simplex: min c·x subject to rows (=, >=, <=) and x >= 0

#[derive(Clone, Copy, PartialEq)]
enum Sense {
    Eq,
    Ge,
    Le,
}

struct Program {
    vars: usize,
    cost: Vec<Q>,
    rows: Vec<(Vec<Q>, Sense, Q)>,
}

enum Solution {
    Infeasible,
    Optimal(Q, Vec<Q>),
}

/// Two phases with artificial variables, Bland's rule throughout (no cycling).
fn simplex(p: &Program) -> Solution {
    let n = p.vars;
    let m = p.rows.len();
    let slacks = p.rows.iter().filter(|r| r.1 != Sense::Eq).count();
    let cols = n + slacks + m;
    let art = n + slacks;
    // Tableau rows: coefficients, then the right-hand side; rows made to have rhs >= 0.
    let mut t: Vec<Vec<Q>> = Vec::with_capacity(m);
    let mut basis = Vec::with_capacity(m);
    let mut s = n;
    for (r, (coeffs, sense, rhs)) in p.rows.iter().enumerate() {
        let mut row = vec![Q::zero(); cols + 1];
        row[..n].clone_from_slice(coeffs);
        match sense {
            Sense::Le => {
                row[s] = Q::one();
                s += 1;
            }
            Sense::Ge => {
                row[s] = -Q::one();
                s += 1;
            }
            Sense::Eq => {}
        }
        row[cols] = rhs.clone();
        if rhs.is_negative() {
            row.iter_mut().for_each(|v| *v = -v.clone());
        }
        row[art + r] = Q::one();
        basis.push(art + r);
        t.push(row);
    }
    let run = |t: &mut Vec<Vec<Q>>, basis: &mut Vec<usize>, cost: &[Q], allowed: usize| {
        loop {
            // Reduced costs r_j = c_j − c_B · T_j.
            let entering = (0..allowed).find(|&j| {
                let mut r = cost[j].clone();
                for (i, &b) in basis.iter().enumerate() {
                    if !cost[b].is_zero() && !t[i][j].is_zero() {
                        r -= &cost[b] * &t[i][j];
                    }
                }
                r.is_negative()
            });
            let Some(j) = entering else { return };
            let mut best: Option<(Q, usize, usize)> = None;
            for i in 0..t.len() {
                if t[i][j].is_positive() {
                    let ratio = &t[i][cols] / &t[i][j];
                    let better = match &best {
                        None => true,
                        Some((r, _, b)) => ratio < *r || (ratio == *r && basis[i] < *b),
                    };
                    if better {
                        best = Some((ratio, i, basis[i]));
                    }
                }
            }
            let (_, i, _) = best.expect("distance programs are bounded below");
            pivot(t, i, j);
            basis[i] = j;
        }
    };
    // Phase 1: minimise the artificials.
    let mut phase1 = vec![Q::zero(); cols];
    phase1[art..].iter_mut().for_each(|c| *c = Q::one());
    run(&mut t, &mut basis, &phase1, cols);
    let infeasibility = basis
        .iter()
        .enumerate()
        .filter(|(_, &b)| b >= art)
        .fold(Q::zero(), |acc, (i, _)| acc + &t[i][cols]);
    if infeasibility.is_positive() {
        return Solution::Infeasible;
    }
    // Artificials left in the basis at zero: pivot them out, or drop their (redundant) rows.
    let mut i = 0;
    while i < t.len() {
        if basis[i] >= art {
            match (0..art).find(|&j| !t[i][j].is_zero()) {
                Some(j) => {
                    pivot(&mut t, i, j);
                    basis[i] = j;
                }
                None => {
                    t.remove(i);
                    basis.remove(i);
                    continue;
                }
            }
        }
        i += 1;
    }
    // Phase 2: the objective, artificials out.
    let mut cost = vec![Q::zero(); cols];
    cost[..n].clone_from_slice(&p.cost);
    run(&mut t, &mut basis, &cost, art);
    let mut x = vec![Q::zero(); n];
    for (i, &b) in basis.iter().enumerate() {
        if b < n {
            x[b] = t[i][cols].clone();
        }
    }
    Solution::Optimal(dot(&p.cost, &x), x)
}

fn pivot(t: &mut [Vec<Q>], i: usize, j: usize) {
    let p = t[i][j].clone();
    t[i].iter_mut().for_each(|v| *v = &*v / &p);
    let row = t[i].clone();
    for (k, other) in t.iter_mut().enumerate() {
        if k == i || other[j].is_zero() {
            continue;
        }
        let f = other[j].clone();
        for (v, r) in other.iter_mut().zip(&row) {
            if !r.is_zero() {
                *v -= &f * r;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The root question, decided exactly

/// A constraint `g·ã + h >= 0` of the region or the domain.
struct Constraint {
    g: Vec<Q>,
    h: Q,
}

/// The region `P_m` of the pattern of the pre-activations `pre` (layers `m …`, all ReLU
/// neurons), composed into constraints on the input `ã` of layer `m`, with the domain.
fn region(layers: &[Dense], m: usize, pre: &[Vec<Q>], domain: Domain) -> Vec<Constraint> {
    let dim = layers[m].w[0].len();
    let mut out = Vec::new();
    // The current layer input as an affine map of ã: rows (g, h).
    let mut map: Vec<(Vec<Q>, Q)> = (0..dim)
        .map(|i| {
            let mut g = vec![Q::zero(); dim];
            g[i] = Q::one();
            (g, Q::zero())
        })
        .collect();
    for (k, layer) in layers.iter().enumerate().skip(m) {
        let z: Vec<(Vec<Q>, Q)> = layer
            .w
            .iter()
            .zip(&layer.b)
            .map(|(row, b)| {
                let mut g = vec![Q::zero(); dim];
                let mut h = b.clone();
                for (w, (mg, mh)) in row.iter().zip(&map) {
                    if w.is_zero() {
                        continue;
                    }
                    for (gi, mgi) in g.iter_mut().zip(mg) {
                        *gi += w * mgi;
                    }
                    h += w * mh;
                }
                (g, h)
            })
            .collect();
        if !layer.relu {
            map = z;
            continue;
        }
        map = Vec::with_capacity(z.len());
        for (j, (g, h)) in z.into_iter().enumerate() {
            let active = pre[k - m][j].is_positive();
            let sigma = if active { Q::one() } else { -Q::one() };
            out.push(Constraint {
                g: g.iter().map(|v| v * &sigma).collect(),
                h: &h * &sigma,
            });
            map.push(if active {
                (g, h)
            } else {
                (vec![Q::zero(); dim], Q::zero())
            });
        }
    }
    for i in 0..dim {
        let unit = |s: Q| {
            let mut g = vec![Q::zero(); dim];
            g[i] = s;
            g
        };
        match domain {
            Domain::Free => {}
            Domain::NonNegative => out.push(Constraint {
                g: unit(Q::one()),
                h: Q::zero(),
            }),
            Domain::Box { lo, hi } => {
                out.push(Constraint {
                    g: unit(Q::one()),
                    h: -q(lo),
                });
                out.push(Constraint {
                    g: unit(-Q::one()),
                    h: q(hi),
                });
            }
        }
    }
    out
}

/// The nearest point (in `norm`) to `a` on the plane `w·ã = w·a − r` that satisfies every
/// constraint, with its distance; `None` when there is none. Constraint generation over the
/// exact simplex: variables `ã = a + p − n` (and `t` for L∞).
fn nearest(a: &[Q], w: &[Q], r: &Q, constraints: &[Constraint], linf: bool) -> Option<(Q, Vec<Q>)> {
    let dim = a.len();
    let vars = 2 * dim + usize::from(linf);
    let mut cost = vec![Q::zero(); vars];
    if linf {
        cost[2 * dim] = Q::one();
    } else {
        cost[..2 * dim].iter_mut().for_each(|c| *c = Q::one());
    }
    // g·(a + p − n) + h >= 0  ⇔  g·p − g·n >= −(g·a + h)
    let row = |g: &[Q]| -> Vec<Q> {
        let mut coeffs = vec![Q::zero(); vars];
        for i in 0..dim {
            coeffs[i] = g[i].clone();
            coeffs[dim + i] = -g[i].clone();
        }
        coeffs
    };
    let mut rows = vec![(row(w), Sense::Eq, -r.clone())];
    if linf {
        for i in 0..dim {
            let mut c = vec![Q::zero(); vars];
            c[i] = Q::one();
            c[dim + i] = Q::one();
            c[2 * dim] = -Q::one();
            rows.push((c, Sense::Le, Q::zero()));
        }
    }
    let mut kept = vec![false; constraints.len()];
    loop {
        let program = Program {
            vars,
            cost: cost.clone(),
            rows: rows.clone(),
        };
        let (value, x) = match simplex(&program) {
            Solution::Infeasible => return None,
            Solution::Optimal(v, x) => (v, x),
        };
        let point: Vec<Q> = (0..dim).map(|i| &a[i] + &x[i] - &x[dim + i]).collect();
        let mut violated: Vec<(Q, usize)> = constraints
            .iter()
            .enumerate()
            .filter(|(c, _)| !kept[*c])
            .map(|(c, k)| (dot(&k.g, &point) + &k.h, c))
            .filter(|(s, _)| s.is_negative())
            .collect();
        if violated.is_empty() {
            return Some((value, point));
        }
        violated.sort();
        for &(_, c) in violated.iter().take(4) {
            kept[c] = true;
            let k = &constraints[c];
            rows.push((row(&k.g), Sense::Ge, -(dot(&k.g, a) + &k.h)));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Each certificate's claim, against the exact question

/// What one certificate's claim turned out to be (all true, or the test fails).
#[derive(Default, Debug)]
struct Tally {
    feasible: usize,
    infeasible: usize,
    optimal: usize,
    /// Records whose rule root is valid, compared with their certificates.
    valid_and_found: usize,
}

/// The exact question of `cert`, decided here: the independent `a`, pattern, relevance and
/// program. Panics, naming the certificate, when the accepted claim is false.
fn assert_true(model: &Model, cert: &Certificate, acc: &Accepted, name: &str, tally: &mut Tally) {
    let layers = layers_of(model);
    let m = cert.layer - 1;
    let x: Vec<Q> = cert.sample.values.iter().map(|&v| q(v)).collect();
    let (inputs, pre) = forward(&layers, 0, x);
    // The domain: the box (or nothing) at the input, the orthant above a ReLU.
    let expected_domain = match (m, cert.domain) {
        (0, d @ (Domain::Free | Domain::Box { .. })) => d,
        (0, d) => panic!("{name}: domain {d:?} at the input"),
        _ if layers[m - 1].relu => Domain::NonNegative,
        _ => Domain::Free,
    };
    assert_eq!(cert.domain, expected_domain, "{name}");
    assert!(cert.centre.is_none(), "{name}: audits ask at the sample");
    let r = cert.relevance.as_ref().expect("a root question");
    let e = r.explanation.as_ref().expect("the sample's explanation");
    let j = cert.neuron.unwrap();
    let all = relevances(&layers, &inputs, &e.settings, e.output);
    let rel = &all[m][j];
    assert_eq!(
        r.value.parse::<Q>().unwrap(),
        *rel,
        "{name}: the certificate's relevance"
    );
    let a = &inputs[m];
    let w = &layers[m].w[j];
    let constraints = region(&layers, m, &pre[m..], cert.domain);
    let valid = |p: &[Q]| {
        dot(w, p) == dot(w, a) - rel
            && constraints
                .iter()
                .all(|c| !(dot(&c.g, p) + &c.h).is_negative())
    };
    match acc.claim {
        Claim::Feasible => {
            // The witness, projected exactly onto the plane, is a valid root.
            let p: Vec<Q> = cert.point.as_ref().unwrap().iter().map(|&v| q(v)).collect();
            let lambda = (dot(w, a) - rel - dot(w, &p)) / dot(w, w);
            let projected: Vec<Q> = p.iter().zip(w).map(|(pi, wi)| pi + &lambda * wi).collect();
            assert!(valid(&projected), "{name}: the witness is not a valid root");
            tally.feasible += 1;
        }
        Claim::Infeasible => {
            let found = nearest(a, w, rel, &constraints, false);
            assert!(
                found.is_none(),
                "{name}: no valid root was claimed, but {:?} is one",
                found.map(|(_, p)| p.iter().map(Lossy::to_f64_lossy).collect::<Vec<_>>())
            );
            tally.infeasible += 1;
        }
        Claim::Optimal => {
            let linf = cert.problem == Problem::NearestLinf;
            let (best, point) = nearest(a, w, rel, &constraints, linf)
                .unwrap_or_else(|| panic!("{name}: a nearest root was claimed, none exists"));
            assert!(valid(&point), "{name}: the program's own optimum");
            let interval = cert.interval.as_ref().expect("an optimal claim's interval");
            let lower: Q = interval.lower.as_ref().unwrap().parse().unwrap();
            let upper: Q = interval.upper.as_ref().unwrap().parse().unwrap();
            assert!(
                lower <= best && best <= upper,
                "{name}: the exact nearest distance {} is outside the claimed [{}, {}]",
                best.to_f64_lossy(),
                lower.to_f64_lossy(),
                upper.to_f64_lossy()
            );
            let (l, u) = (acc.lower.as_ref().unwrap(), acc.upper.as_ref().unwrap());
            assert!(*l <= best && best <= *u, "{name}: the checker's interval");
            tally.optimal += 1;
        }
        other => panic!("{name}: claim {other:?} from an audit"),
    }
}

trait Lossy {
    fn to_f64_lossy(&self) -> f64;
}

impl Lossy for Q {
    fn to_f64_lossy(&self) -> f64 {
        ToPrimitive::to_f64(self).unwrap_or(f64::NAN)
    }
}

/// The exact rule root `a − (R / w·v) v` of neuron `j` of 0-based layer `m` under z+ or w²
/// (bias ignored), or `None` when the denominator is at or below the threshold.
fn rule_root(layer: &Dense, a: &[Q], s: &DtdSettings, m: usize, j: usize, r: &Q) -> Option<Vec<Q>> {
    let w = &layer.w[j];
    let v: Vec<Q> = match s.rule_for(m) {
        Rule::ZPlus => w
            .iter()
            .zip(a)
            .map(|(wi, ai)| {
                if wi.is_negative() {
                    Q::zero()
                } else {
                    ai.clone()
                }
            })
            .collect(),
        Rule::WSquare => w.clone(),
        other => panic!("rule {other} is not re-implemented here"),
    };
    let den = dot(w, &v);
    if den.abs() <= q(s.denominator_threshold) {
        return None;
    }
    let t = r / den;
    Some(a.iter().zip(&v).map(|(ai, vi)| ai - &t * vi).collect())
}

/// The L1 or L∞ distance of two points.
fn distance(p: &[Q], a: &[Q], linf: bool) -> Q {
    let d = p.iter().zip(a).map(|(pi, ai)| (pi - ai).abs());
    if linf {
        d.max().unwrap_or_else(Q::zero)
    } else {
        d.fold(Q::zero(), |acc, v| acc + v)
    }
}

/// Audits `x` with `settings`, checks every certificate written and that its claim is true,
/// and that no record contradicts its certificate.
fn audit_and_verify(
    model: &Model,
    settings: &AuditSettings,
    index: usize,
    x: &[f64],
    target: Option<usize>,
    tally: &mut Tally,
) {
    let (record, certificates) = audit_sample_certified(model, settings, index, x, target)
        .unwrap_or_else(|e| panic!("sample {index}: {e:#}"));
    for (name, cert) in &certificates {
        let back: Certificate =
            serde_json::from_str(&serde_json::to_string(cert).unwrap()).unwrap();
        let acc = check(model, &back).unwrap_or_else(|r| panic!("{name}: rejected: {r}"));
        assert_true(model, &back, &acc, name, tally);
    }
    no_contradiction(model, x, &record, &certificates, settings, tally);
}

/// A record whose rule root is valid (a verdict about the exact root) has a valid root, so
/// its certificate cannot say there is none, and the exact rule root is never nearer than the
/// certified lower bound on the nearest valid root's distance.
fn no_contradiction(
    model: &Model,
    x: &[f64],
    record: &SampleRecord,
    certificates: &[(String, Certificate)],
    settings: &AuditSettings,
    tally: &mut Tally,
) {
    let layers = layers_of(model);
    let (inputs, _) = forward(&layers, 0, x.iter().map(|&v| q(v)).collect());
    let all = relevances(&layers, &inputs, &settings.dtd, record.explained);
    for lr in &record.layers {
        let m = lr.layer - 1;
        for n in &lr.neurons {
            let (Some(root), Some(c)) = (&n.root, &n.certified) else {
                continue;
            };
            if !root.valid {
                continue;
            }
            let what = format!(
                "sample {} layer {} neuron {}",
                record.sample, lr.layer, n.neuron
            );
            assert!(
                !matches!(c.answer, CertifiedAnswer::NoValidRoot),
                "{what}: the record says its root is valid, its certificate that none is"
            );
            let Some(name) = &c.certificate else { continue };
            let cert = &certificates.iter().find(|(f, _)| f == name).unwrap().1;
            if cert.claim == Claim::Optimal {
                let root = rule_root(
                    &layers[m],
                    &inputs[m],
                    &settings.dtd,
                    m,
                    n.neuron,
                    &all[m][n.neuron],
                )
                .unwrap_or_else(|| panic!("{what}: the record has a root, the rule none"));
                let linf = cert.problem == Problem::NearestLinf;
                let interval = cert.interval.as_ref().unwrap();
                let lower: Q = interval.lower.as_ref().unwrap().parse().unwrap();
                let d = distance(&root, &inputs[m], linf);
                assert!(
                    lower <= d,
                    "{what}: the valid rule root is nearer ({}) than the certified bound {}",
                    d.to_f64_lossy(),
                    lower.to_f64_lossy()
                );
            }
            tally.valid_and_found += 1;
        }
    }
}

fn certify(problem: Problem, all: bool) -> Option<CertifySettings> {
    Some(CertifySettings {
        problem,
        all,
        model_path: None,
        inputs_path: None,
    })
}

// ---------------------------------------------------------------------------------------------
// The tests

#[test]
fn every_certificate_of_the_c6_example_is_true() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/c6");
    let model = Model::load(&root.join("model.onnx")).unwrap();
    let inputs = load_inputs(&root.join("inputs.npy"), None).unwrap();
    let mut tally = Tally::default();
    for (problem, all, exact) in [
        (Problem::NearestL1, false, false),
        (Problem::Exists, true, false),
        (Problem::Exists, true, true),
    ] {
        let settings = AuditSettings {
            exact,
            certify: certify(problem, all),
            ..AuditSettings::default()
        };
        for i in 0..inputs.len() {
            audit_and_verify(
                &model,
                &settings,
                i,
                &inputs.row(i).unwrap(),
                Some(0),
                &mut tally,
            );
        }
    }
    println!("C6: {tally:?}");
    // Every root was certified under exists --certify-all, in both runs.
    assert!(tally.feasible + tally.infeasible >= 2 * 1000, "{tally:?}");
    assert!(tally.optimal > 0, "{tally:?}");
}

/// A random MLP with float32 weights and biases: `widths[0]` inputs, ReLU after every layer
/// but (sometimes) the last.
fn random_mlp(rng: &mut ChaCha8Rng, widths: &[usize]) -> Network {
    let last_relu = rng.random_bool(0.5);
    let layers = widths
        .windows(2)
        .enumerate()
        .map(|(l, w)| {
            let weight = (0..w[0] * w[1])
                .map(|_| rng.random_range(-1.0f32..1.0) as f64)
                .collect();
            let bias = (0..w[1])
                .map(|_| rng.random_range(-0.3f32..0.3) as f64)
                .collect();
            let relu = l + 2 < widths.len() || last_relu;
            dense_layer(w[1], w[0], weight, bias, relu).unwrap()
        })
        .collect();
    Network::new(layers).unwrap()
}

#[test]
fn every_certificate_of_random_float32_mlps_is_true() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let shapes: [&[usize]; 4] = [&[3, 4, 3, 2], &[2, 3, 2], &[4, 5, 4, 3, 2], &[3, 6, 2]];
    let mut tally = Tally::default();
    for case in 0..24 {
        let widths = shapes[case % shapes.len()];
        let model = Model::new(random_mlp(&mut rng, widths));
        let dtd = DtdSettings {
            input_rule: (case % 3 == 0).then_some(Rule::WSquare),
            ..DtdSettings::default()
        };
        let domain = (case % 2 == 1).then_some(DomainBox { lo: -1.0, hi: 1.0 });
        for problem in [Problem::Exists, Problem::NearestL1, Problem::NearestLinf] {
            let settings = AuditSettings {
                dtd: dtd.clone(),
                domain,
                certify: certify(problem, true),
                ..AuditSettings::default()
            };
            for s in 0..3 {
                let x: Vec<f64> = (0..widths[0])
                    .map(|_| rng.random_range(-1.0f32..1.0) as f64)
                    .collect();
                audit_and_verify(&model, &settings, s, &x, None, &mut tally);
            }
        }
    }
    println!("random MLPs: {tally:?}");
    // Each kind of claim occurred, and each was found true.
    assert!(
        tally.feasible > 0 && tally.infeasible > 0 && tally.optimal > 0,
        "{tally:?}"
    );
}
