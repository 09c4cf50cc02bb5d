//! Certificates of region questions (DESIGN.md §1.5).
//!
//! - Every certificate the certifier writes for random small MLPs is accepted by the exact
//!   checker after a JSON round trip, and what it proves holds: its roots and balls lie in
//!   the region, and no sampled valid root contradicts it. Unknown answers are rare.
//! - Mutated certificates are judged exactly as an independent re-implementation of the
//!   checker in rationals judges them, and the mutations that must break a certificate do.
//! - On 2-dimensional networks, `exists` and `nearest` agree with sampling the root line and
//!   with the exact segment of the line inside the region.
//! - A certified nearest distance is never larger than the distance of a sampled valid root.
//! - Constraint generation (reduced programs) and the full programs give the same answers:
//!   both found or both none, with intersecting certified intervals.
//! - `dtdcert certify` and `dtdcert check-cert` keep their command-line contract.

mod util;

use std::cell::RefCell;
use std::ffi::OsStr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use dtdcert::check::{
    check, Accepted, Certificate, Claim, ExplanationRef, Problem, FORMAT, FORMAT_1,
};
use dtdcert::dtd::{explain, DtdSettings, Rule};
use dtdcert::exact::program::{LinearProgram, RowKind};
use dtdcert::exact::{Rational, Scalar};
use dtdcert::lp::certify::{Answer, Certifier, QuestionRelevance, RegionCache, RegionQuestion};
use dtdcert::lp::SolveOptions;
use dtdcert::model::forward::{argmax, forward};
use dtdcert::model::ir::dense_layer;
use dtdcert::model::{Model, Network};
use dtdcert::region::problem::{
    chebyshev_program, composed_row_norms, root_program, Domain, Norm, NormSide, RegionView,
    RootPlane, Tightening,
};
use dtdcert::region::{
    membership, pattern_from_layer, polytope, signed_slacks_exact, trace_and_pattern, Centre,
    Pattern,
};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{RngSeed, TestCaseError, TestRunner};
use rand::{Rng, SeedableRng};
use serde_json::Value;
use tempfile::TempDir;

// ---------------------------------------------------------------------------------------------
// Random networks and questions

/// Weights from a small dyadic grid (exact ties, faces through the centre), f32 values and
/// full-precision f64 values.
fn weight() -> impl Strategy<Value = f64> {
    prop_oneof![
        (-8i32..=8).prop_map(|k| k as f64 / 4.0),
        (-2.0f64..2.0).prop_map(|v| v as f32 as f64),
        -2.0f64..2.0,
    ]
}

/// A random MLP: `inputs` inputs, 1–3 hidden ReLU layers of width 2–6, 1–3 outputs with or
/// without a last ReLU.
fn mlp(inputs: RangeInclusive<usize>) -> impl Strategy<Value = Network> {
    util::mlp(inputs, 2..=6, 1..=3, weight)
}

fn input_value() -> impl Strategy<Value = f64> {
    prop_oneof![(-4i32..=4).prop_map(|k| k as f64 / 4.0), -1.0f64..1.0]
}

/// `None`: the relevance of the z+ explanation of the top output (which the checker
/// recomputes); otherwise a given one, asked at the f64 trace of the layer input as a given
/// centre.
fn relevance() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        3 => Just(None),
        1 => (-8i32..=8).prop_map(|k| Some(k as f64 / 4.0)),
        1 => (-3.0f64..3.0).prop_map(Some),
    ]
}

/// The domain of a layer-1 question (hidden layers use the orthant).
fn input_domain() -> impl Strategy<Value = Domain> {
    prop_oneof![
        Just(Domain::Free),
        Just(Domain::Box { lo: -1.0, hi: 1.0 }),
        Just(Domain::Box { lo: -3.0, hi: 3.0 }),
        // A box that need not contain the sample.
        Just(Domain::Box { lo: 0.0, hi: 1.0 }),
    ]
}

fn input_box() -> impl Strategy<Value = Domain> {
    prop_oneof![
        Just(Domain::Box { lo: -1.0, hi: 1.0 }),
        Just(Domain::Box { lo: -3.0, hi: 3.0 }),
        Just(Domain::Box { lo: 0.0, hi: 1.0 }),
    ]
}

#[derive(Clone, Debug)]
struct Case {
    net: Network,
    x: Vec<f64>,
    layer: Index,
    neuron: Index,
    relevance: Option<f64>,
    input_domain: Domain,
    seed: u64,
}

fn case(
    inputs: RangeInclusive<usize>,
    domain: BoxedStrategy<Domain>,
) -> impl Strategy<Value = Case> {
    case_on(mlp(inputs).boxed(), domain)
}

/// A network with a carried tail or a max-pool layer after some hidden ReLU layers.
fn case_with_tails_and_pools(domain: BoxedStrategy<Domain>) -> impl Strategy<Value = Case> {
    case_on(
        util::mlp_with_tails_and_pools(2..=5, 2..=5, 1..=3, weight).boxed(),
        domain,
    )
}

fn case_on(
    nets: BoxedStrategy<Network>,
    domain: BoxedStrategy<Domain>,
) -> impl Strategy<Value = Case> {
    nets.prop_flat_map(move |net| {
        let d = net.input_dim();
        (
            Just(net),
            prop::collection::vec(input_value(), d),
            any::<Index>(),
            any::<Index>(),
            relevance(),
            domain.clone(),
            any::<u64>(),
        )
    })
    .prop_map(
        |(net, x, layer, neuron, relevance, input_domain, seed)| Case {
            net,
            x,
            layer,
            neuron,
            relevance,
            input_domain,
            seed,
        },
    )
}

/// A case resolved against its network: one root plane of one layer.
struct Posed {
    model: Model,
    x: Vec<f64>,
    layer: usize,
    neuron: usize,
    /// `R_j` exactly.
    relevance: Rational,
    /// Where `R_j` comes from.
    source: QuestionRelevance,
    /// The given centre of a given relevance (the f64 trace of the layer input).
    centre: Option<Vec<f64>>,
    domain: Domain,
}

/// The relevance of `neuron` of 1-based `layer` in the explanation `e` of `x`, in rationals
/// (a max-pool window's entries share the window's).
fn exact_relevance(
    net: &Network,
    x: &[f64],
    e: &ExplanationRef,
    layer: usize,
    neuron: usize,
) -> Rational {
    let exact = net.to_exact();
    let trace = forward(&exact, &self::exact(x));
    let explanation = explain(&exact, &trace, &e.settings, e.output, false);
    let window = net.layers()[layer - 1].max_pool.unwrap_or(1);
    explanation.layers[layer - 1].upper[neuron / window].clone()
}

impl Case {
    /// Poses the question on layer 1 when `first_layer`, else on a random layer.
    fn pose(&self, first_layer: bool) -> Posed {
        let net = &self.net;
        let layer = if first_layer {
            1
        } else {
            self.layer.index(net.layers().len()) + 1
        };
        let neuron = self.neuron.index(net.layers()[layer - 1].affine.out_dim());
        let trace = forward(net, &self.x);
        let (relevance, source, centre) = match self.relevance {
            None => {
                let e = ExplanationRef {
                    output: argmax(trace.output()),
                    settings: DtdSettings::default(),
                };
                let r = exact_relevance(net, &self.x, &e, layer, neuron);
                (r, QuestionRelevance::Explained(e), None)
            }
            Some(r) => (
                rat(r),
                QuestionRelevance::Given(rat(r)),
                Some(trace.layer_input(layer - 1).to_vec()),
            ),
        };
        Posed {
            model: Model::new(net.clone()),
            x: self.x.clone(),
            layer,
            neuron,
            relevance,
            source,
            centre,
            domain: if layer == 1 {
                self.input_domain
            } else {
                Domain::of_layer(net, layer, None)
            },
        }
    }
}

impl Posed {
    fn question(&self, problem: Problem) -> RegionQuestion {
        let root = problem != Problem::Chebyshev;
        RegionQuestion {
            sample_index: 0,
            sample: self.x.clone(),
            layer: self.layer,
            neuron: root.then_some(self.neuron),
            relevance: root.then(|| self.source.clone()),
            domain: self.domain,
            problem,
            constraint: None,
            centre: self.centre.clone(),
        }
    }

    fn certifier(&self) -> Certifier<'_> {
        Certifier {
            model: &self.model,
            opts: SolveOptions {
                time_limit: Some(2.0),
                ..SolveOptions::default()
            },
            model_path: None,
            inputs_path: None,
            cache: Default::default(),
        }
    }

    fn seen(&self) -> Seen {
        seen(&self.model, &self.x, self.layer, self.centre.as_deref())
    }

    /// The question in words, for reports of Unknown answers.
    fn describe(&self, problem: Problem) -> String {
        let widths: Vec<usize> = self
            .model
            .net()
            .layers()
            .iter()
            .map(|l| l.affine.out_dim())
            .collect();
        format!(
            "{} layer {} neuron {} R {:e} {:?}, input {:?}, widths {widths:?}",
            problem.name(),
            self.layer,
            self.neuron,
            Scalar::to_f64(&self.relevance),
            self.domain,
            self.x
        )
    }
}

// ---------------------------------------------------------------------------------------------
// The checker re-implemented in rationals: the reference the checker must agree with

fn rat(x: f64) -> Rational {
    <Rational as Scalar>::from_f64(x)
}

fn zero() -> Rational {
    <Rational as Scalar>::zero()
}

fn dot(a: &[Rational], b: &[Rational]) -> Rational {
    a.iter().zip(b).fold(zero(), |acc, (x, y)| acc + x * y)
}

fn exact(v: &[f64]) -> Vec<Rational> {
    v.iter().map(|&x| rat(x)).collect()
}

/// The region of a sample seen from a 1-based layer: its pattern and its exact layer input
/// (or a given centre and its own pattern from the layer up).
struct Seen {
    pattern: Pattern,
    m: usize,
    centre: Centre,
}

fn seen(model: &Model, x: &[f64], layer: usize, centre: Option<&[f64]>) -> Seen {
    let m = layer - 1;
    match centre {
        Some(c) => Seen {
            pattern: pattern_from_layer(model, m, c).0,
            m,
            centre: Centre::from_f64(c).unwrap(),
        },
        None => {
            // The exact forward pass, by itself.
            let net = model.net().to_exact();
            let a = forward(&net, &exact(x)).layer_input(m).to_vec();
            let centre = Centre::from_exact(
                a.iter()
                    .map(|v| dtdcert::exact::dyadic::Dyadic::from_rational(v).unwrap())
                    .collect(),
            );
            Seen {
                pattern: trace_and_pattern(model, x).1,
                m,
                centre,
            }
        }
    }
}

fn seen_of(model: &Model, cert: &Certificate) -> Seen {
    seen(
        model,
        &cert.sample.values,
        cert.layer,
        cert.centre.as_deref(),
    )
}

impl Seen {
    fn view<'a>(&'a self, model: &'a Model, domain: Domain) -> RegionView<'a> {
        RegionView {
            net: model.net(),
            pattern: &self.pattern,
            layer: self.m,
            centre: &self.centre,
            domain,
        }
    }

    fn a(&self) -> Vec<Rational> {
        (0..self.centre.len())
            .map(|i| self.centre.rational(i))
            .collect()
    }

    /// `p` moved along `w_j` onto `w_j·ã = w_j·a − R`, exactly; `None` when `w_j = 0`.
    fn project(
        &self,
        model: &Model,
        neuron: usize,
        relevance: &Rational,
        p: &[f64],
    ) -> Option<Vec<Rational>> {
        let w = exact(&model.net().layers()[self.m].affine.row(neuron).dense());
        let ww = dot(&w, &w);
        if Scalar::is_zero(&ww) {
            return None;
        }
        let p = exact(p);
        let lambda = (dot(&w, &self.a()) - relevance - dot(&w, &p)) / ww;
        Some(p.iter().zip(&w).map(|(pi, wi)| pi + &lambda * wi).collect())
    }

    /// Whether `q` lies in the region and the domain, exactly.
    fn valid(&self, model: &Model, domain: Domain, q: &[Rational]) -> bool {
        membership(model.exact(), &self.pattern, self.m, q).is_inside()
            && in_domain(domain, q, &zero())
    }

    fn distance(&self, q: &[Rational], norm: Norm) -> Rational {
        let d = q.iter().zip(self.a()).map(|(qi, a)| Scalar::abs(&(qi - a)));
        match norm {
            Norm::L1 => d.fold(zero(), |acc, v| acc + v),
            Norm::Linf => d.fold(zero(), |acc, v| if v > acc { v } else { acc }),
        }
    }
}

/// `lo + shrink <= q_i <= hi − shrink` (box) or `q_i >= shrink` (orthant).
fn in_domain(domain: Domain, q: &[Rational], shrink: &Rational) -> bool {
    match domain {
        Domain::Free => true,
        Domain::NonNegative => q.iter().all(|v| v >= shrink),
        Domain::Box { lo, hi } => q
            .iter()
            .all(|v| *v >= rat(lo) + shrink && *v <= rat(hi) - shrink),
    }
}

/// Weak duality in rationals: `Σ y_r b_r + Σ_i min(r_i l_i, r_i u_i)` with `r = c − Aᵀy`, or
/// `None` when the multipliers have the wrong count or signs or the bound is −∞.
fn safe_bound(lp: &LinearProgram, y: &[f64], with_cost: bool) -> Option<Rational> {
    if y.len() != lp.rows.len() {
        return None;
    }
    let mut reduced: Vec<Rational> = lp
        .cost
        .iter()
        .map(|&c| if with_cost { rat(c) } else { zero() })
        .collect();
    let mut bound = zero();
    for (row, &yr) in lp.rows.iter().zip(y) {
        let sign_ok = yr.is_finite()
            && match row.kind {
                RowKind::Eq => true,
                RowKind::Ge => yr >= 0.0,
                RowKind::Le => yr <= 0.0,
            };
        if !sign_ok {
            return None;
        }
        for &(i, a) in &row.coeffs {
            reduced[i] -= rat(a) * rat(yr);
        }
        bound += row.rhs.to_rational() * rat(yr);
    }
    // Last variable first: one whose reduced cost has a sign its bounds forbid, and which
    // is the last variable of an equality row with the coefficient −1 (the first such row),
    // has that row's multiplier moved by exactly what makes its reduced cost zero.
    for v in (0..lp.num_vars()).rev() {
        let wrong = (reduced[v].is_positive() && lp.lower[v] == f64::NEG_INFINITY)
            || (reduced[v].is_negative() && lp.upper[v] == f64::INFINITY);
        if !wrong {
            continue;
        }
        let defining = lp.rows.iter().find(|row| {
            row.kind == RowKind::Eq
                && row.coeffs.iter().all(|&(u, _)| u <= v)
                && row.coeffs.iter().filter(|&&(u, _)| u == v).count() == 1
                && row.coeffs.contains(&(v, -1.0))
        });
        if let Some(row) = defining {
            let extra = -reduced[v].clone();
            for &(u, a) in &row.coeffs {
                reduced[u] -= rat(a) * &extra;
            }
            bound += row.rhs.to_rational() * extra;
        }
    }
    for (i, r) in reduced.iter().enumerate() {
        let limit = if r.is_positive() {
            lp.lower[i]
        } else if r.is_negative() {
            lp.upper[i]
        } else {
            continue;
        };
        if !limit.is_finite() {
            return None;
        }
        bound += r * rat(limit);
    }
    Some(bound)
}

/// Claimed interval ends are no stronger than the proved ones (absent ends claim nothing).
fn interval_ok(cert: &Certificate, lower: Option<&Rational>, upper: Option<&Rational>) -> bool {
    let Some(c) = &cert.interval else {
        return true;
    };
    let parse = |t: &str| t.parse::<Rational>().ok();
    if let (Some(text), Some(proved)) = (c.lower.as_deref(), lower) {
        match parse(text) {
            Some(v) if v <= *proved => {}
            _ => return false,
        }
    }
    if let (Some(text), Some(proved)) = (c.upper.as_deref(), upper) {
        match parse(text) {
            Some(v) if v >= *proved => {}
            _ => return false,
        }
    }
    true
}

/// Whether `cert` proves its claim about `model`, decided from scratch in rationals.
fn reference(model: &Model, cert: &Certificate) -> bool {
    let net = model.net();
    let x = &cert.sample.values;
    if cert.format != FORMAT
        || cert.model.fingerprint != model.fingerprint()
        || x.len() != net.input_dim()
        || x.iter().any(|v| !v.is_finite())
        || cert.layer == 0
        || cert.layer > net.layers().len()
    {
        return false;
    }
    let domain_ok = match (cert.layer, cert.domain) {
        (1, Domain::Free) => true,
        (1, Domain::Box { lo, hi }) => lo.is_finite() && hi.is_finite() && lo <= hi,
        (1, _) => false,
        // Above a layer whose outputs all pass a ReLU (or a max-pool of such), the orthant.
        (layer, d) => {
            let below = &net.layers()[layer - 2];
            let nonnegative = |l: &dtdcert::model::Layer| l.relu && l.linear_tail == 0;
            let orthant = nonnegative(below)
                || (below.max_pool.is_some() && layer > 2 && nonnegative(&net.layers()[layer - 3]));
            d == if orthant {
                Domain::NonNegative
            } else {
                Domain::Free
            }
        }
    };
    if !domain_ok {
        return false;
    }
    if let Some(c) = &cert.centre {
        let width = net.layers()[cert.layer - 1].affine.in_dim();
        if c.len() != width || c.iter().any(|v| !v.is_finite()) {
            return false;
        }
    }
    let seen = seen_of(model, cert);
    let point = || -> Option<Vec<f64>> {
        let p = cert.point.clone()?;
        (p.len() == seen.centre.len() && p.iter().all(|v| v.is_finite())).then_some(p)
    };
    match cert.problem {
        Problem::Exists | Problem::NearestL1 | Problem::NearestLinf => {
            let width = net.layers()[seen.m].affine.out_dim();
            let (Some(neuron), Some(r)) = (cert.neuron, &cert.relevance) else {
                return false;
            };
            let Ok(relevance) = r.value.parse::<Rational>() else {
                return false;
            };
            if neuron >= width {
                return false;
            }
            // The relevance is the neuron's in the explanation named, or given at a centre.
            let named = match (&r.explanation, &cert.centre) {
                (Some(e), None) => {
                    let layers = net.layers().len();
                    let lp_above = (cert.layer..layers).any(|l| e.settings.rule_for(l).needs_lp());
                    e.output < net.output_dim()
                        && !lp_above
                        && exact_relevance(net, x, e, cert.layer, neuron) == relevance
                }
                (None, Some(_)) => true,
                _ => false,
            };
            if !named {
                return false;
            }
            let plane = RootPlane {
                neuron,
                relevance: relevance.clone(),
            };
            let valid_point = || -> Option<Vec<Rational>> {
                let q = seen.project(model, neuron, &relevance, &point()?)?;
                seen.valid(model, cert.domain, &q).then_some(q)
            };
            let norm = if cert.problem == Problem::NearestLinf {
                Norm::Linf
            } else {
                Norm::L1
            };
            let view = seen.view(model, cert.domain);
            match (cert.problem, cert.claim) {
                (_, Claim::Feasible) => valid_point().is_some(),
                (_, Claim::Infeasible) => {
                    let (lp, _) = root_program(view, Some(&plane), Norm::L1, Tightening::NONE);
                    cert.multipliers
                        .as_deref()
                        .and_then(|y| safe_bound(&lp, y, false))
                        .is_some_and(|b| b.is_positive())
                }
                (Problem::NearestL1 | Problem::NearestLinf, Claim::Optimal) => {
                    let Some(q) = valid_point() else {
                        return false;
                    };
                    let upper = seen.distance(&q, norm);
                    let (lp, _) = root_program(view, Some(&plane), norm, Tightening::NONE);
                    let Some(bound) = cert
                        .multipliers
                        .as_deref()
                        .and_then(|y| safe_bound(&lp, y, true))
                    else {
                        return false;
                    };
                    let lower = if bound.is_positive() { bound } else { zero() };
                    lower <= upper && interval_ok(cert, Some(&lower), Some(&upper))
                }
                _ => false,
            }
        }
        Problem::Chebyshev => {
            if cert.claim != Claim::Ball {
                return false;
            }
            let (Some(c), Some(r)) = (point(), cert.radius) else {
                return false;
            };
            if !r.is_finite() || r < 0.0 {
                return false;
            }
            let norms = composed_row_norms(net, &seen.pattern, seen.m);
            let slacks = signed_slacks_exact(model.exact(), &seen.pattern, seen.m, &exact(&c));
            let thresholds = norms.iter().map(|&(_, upper)| rat(upper) * rat(r));
            if slacks.iter().zip(thresholds).any(|(s, t)| *s < t) {
                return false;
            }
            if !in_domain(cert.domain, &exact(&c), &rat(r)) {
                return false;
            }
            let upper = match cert.multipliers.as_deref() {
                Some(y) => {
                    let view = seen.view(model, cert.domain);
                    let (lp, _) =
                        chebyshev_program(view, &norms, NormSide::Outer, Tightening::NONE);
                    match safe_bound(&lp, y, true) {
                        Some(b) if -b.clone() >= rat(r) => Some(-b),
                        _ => return false,
                    }
                }
                None => None,
            };
            interval_ok(cert, Some(&rat(r)), upper.as_ref())
        }
        Problem::Facet => panic!("facet certificates are not generated here"),
    }
}

// ---------------------------------------------------------------------------------------------
// Mutations

#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// The mutation must break the certificate whatever the numbers are.
    Reject,
    /// The mutation keeps the certificate valid whatever the numbers are.
    Accept,
    /// Either; the checker must agree with the reference.
    Reference,
}

struct Mutant {
    what: String,
    cert: Certificate,
    expect: Expect,
}

/// The program a certificate's multipliers refer to.
fn program_of(model: &Model, cert: &Certificate) -> LinearProgram {
    let seen = seen_of(model, cert);
    let view = seen.view(model, cert.domain);
    match cert.claim {
        Claim::Ball => {
            let norms = composed_row_norms(model.net(), &seen.pattern, seen.m);
            chebyshev_program(view, &norms, NormSide::Outer, Tightening::NONE).0
        }
        claim => {
            let plane = RootPlane {
                neuron: cert.neuron.unwrap(),
                relevance: cert.relevance.as_ref().unwrap().value.parse().unwrap(),
            };
            let norm = match (claim, cert.problem) {
                (Claim::Optimal, Problem::NearestLinf) => Norm::Linf,
                _ => Norm::L1,
            };
            root_program(view, Some(&plane), norm, Tightening::NONE).0
        }
    }
}

/// A point far across a face of the region: `q` moved against a constraint of the layer's own
/// ReLU, along a direction that keeps it on the root plane (`plane`: the neuron and its
/// weights) or straight against the constraint (`None`), so far that the constraint's `σ z`
/// turns clearly negative. `None` when no constraint of the layer allows it.
fn across_a_face(
    model: &Model,
    seen: &Seen,
    q: &[f64],
    plane: Option<(usize, &[f64])>,
) -> Option<Vec<f64>> {
    let layer = &model.net().layers()[seen.m];
    let mask = seen.pattern.layer(seen.m)?;
    for (j, &active) in mask.iter().enumerate() {
        if plane.is_some_and(|(n, _)| n == j) {
            continue;
        }
        let sigma = if active { 1.0 } else { -1.0 };
        let u: Vec<f64> = layer
            .affine
            .row(j)
            .dense()
            .iter()
            .map(|v| sigma * v)
            .collect();
        let uu: f64 = u.iter().map(|v| v * v).sum();
        if uu == 0.0 {
            continue;
        }
        let d: Vec<f64> = match plane {
            Some((_, w)) => {
                let ww: f64 = w.iter().map(|v| v * v).sum();
                let uw: f64 = u.iter().zip(w).map(|(a, b)| a * b).sum();
                u.iter().zip(w).map(|(ui, wi)| ui - uw / ww * wi).collect()
            }
            None => u.clone(),
        };
        let dd: f64 = d.iter().map(|v| v * v).sum();
        if dd < 1e-6 * uu {
            continue;
        }
        let s: f64 =
            sigma * layer.affine.bias(j) + u.iter().zip(q).map(|(a, b)| a * b).sum::<f64>();
        let t = (s.abs() + 1.0) * 1e3 / dd;
        return Some(q.iter().zip(&d).map(|(qi, di)| qi - t * di).collect());
    }
    None
}

fn mutants(model: &Model, cert: &Certificate, acc: &Accepted, seed: u64) -> Vec<Mutant> {
    let mut out = Vec::new();
    let mut push = |what: &str, expect: Expect, f: &dyn Fn(&mut Certificate)| {
        let mut c = cert.clone();
        f(&mut c);
        out.push(Mutant {
            what: what.to_string(),
            cert: c,
            expect,
        });
    };
    use Expect::*;
    let net = model.net();
    let layers = net.layers().len();
    let seen = seen_of(model, cert);

    // Identity and the question.
    push("format", Reject, &|c| {
        c.format = "dtdcert-certificate/3".into()
    });
    push("the first format", Reject, &|c| c.format = FORMAT_1.into());
    push("fingerprint", Reject, &|c| {
        let last = c.model.fingerprint.pop().unwrap();
        c.model
            .fingerprint
            .push(if last == '0' { '1' } else { '0' });
    });
    push("layer 0", Reject, &|c| c.layer = 0);
    push("layer past the last", Reject, &|c| c.layer = layers + 1);
    push("sample value added", Reject, &|c| c.sample.values.push(0.0));
    push("sample value removed", Reject, &|c| {
        c.sample.values.pop();
    });
    push("sample value changed", Reference, &|c| {
        c.sample.values[0] += 0.5
    });
    push("sample scaled", Reference, &|c| {
        c.sample.values.iter_mut().for_each(|v| *v *= 1.5)
    });
    if cert.layer == 1 {
        push("orthant at the input", Reject, &|c| {
            c.domain = Domain::NonNegative
        });
        push("inverted box", Reject, &|c| {
            c.domain = Domain::Box { lo: 1.0, hi: -1.0 }
        });
        push("other box", Reference, &|c| {
            c.domain = Domain::Box { lo: -0.5, hi: 0.5 }
        });
        push("no box", Reference, &|c| c.domain = Domain::Free);
    } else {
        push("box above the input", Reject, &|c| {
            c.domain = Domain::Box { lo: -1.0, hi: 1.0 }
        });
        // Above the input the domain is the orthant or, above carried outputs, nothing:
        // the other one is refused.
        push("the other domain above the input", Reject, &|c| {
            c.domain = match c.domain {
                Domain::Free => Domain::NonNegative,
                _ => Domain::Free,
            }
        });
    }
    push("tool", Accept, &|c| c.tool = Some("someone else".into()));
    push("model path", Accept, &|c| {
        c.model.path = Some("elsewhere.onnx".into())
    });

    match cert.claim {
        Claim::Feasible | Claim::Infeasible | Claim::Optimal => {
            let width = net.layers()[cert.layer - 1].affine.out_dim();
            push("no neuron", Reject, &|c| c.neuron = None);
            push("neuron out of range", Reject, &|c| c.neuron = Some(width));
            push("other neuron", Reference, &|c| {
                c.neuron = Some((c.neuron.unwrap() + 1) % width)
            });
            push("no relevance", Reject, &|c| c.relevance = None);
            let r = cert.relevance.clone().unwrap();
            let value: Rational = r.value.parse().unwrap();
            let with_value = |v: Rational| {
                move |c: &mut Certificate| {
                    c.relevance.as_mut().unwrap().value = v.to_string();
                }
            };
            push("relevance unreadable", Reject, &|c| {
                c.relevance.as_mut().unwrap().value = "2.5".into()
            });
            push("relevance read off its f64", Accept, &|c| {
                c.relevance.as_mut().unwrap().value_f64 = Some(1e300)
            });
            match (&r.explanation, &cert.centre) {
                (Some(e), _) => {
                    // The relevance is the explanation's: any other value is refused.
                    push("relevance + 1", Reject, &with_value(&value + rat(1.0)));
                    let tiny = Rational::new(1.into(), num_bigint::BigInt::from(3) << 300);
                    push("relevance + 2^-300/3", Reject, &with_value(&value + tiny));
                    push("no explanation", Reject, &|c| {
                        c.relevance.as_mut().unwrap().explanation = None
                    });
                    push("an explanation at a centre", Reject, &|c| {
                        c.centre = Some(seen.centre.approx().to_vec())
                    });
                    let outputs = net.output_dim();
                    let other = ExplanationRef {
                        output: (e.output + 1) % outputs,
                        ..e.clone()
                    };
                    push("other explained output", Reference, &|c| {
                        c.relevance.as_mut().unwrap().explanation = Some(other.clone())
                    });
                    push("explained output out of range", Reject, &|c| {
                        c.relevance.as_mut().unwrap().explanation = Some(ExplanationRef {
                            output: outputs,
                            ..e.clone()
                        })
                    });
                    push("other rule", Reference, &|c| {
                        let e = c.relevance.as_mut().unwrap().explanation.as_mut().unwrap();
                        e.settings.rule = Rule::WSquare;
                    });
                    push("a rule that needs linear programs above", Reject, &|c| {
                        let e = c.relevance.as_mut().unwrap().explanation.as_mut().unwrap();
                        e.settings.rule = Rule::NearestValid(Norm::L1);
                        if c.layer == layers {
                            // No layer above the last: the top relevance takes no rule.
                            c.relevance = None;
                        }
                    });
                }
                (None, _) => {
                    push("relevance + 1", Reference, &with_value(&value + rat(1.0)));
                    push("relevance negated", Reference, &with_value(-value.clone()));
                    push("no centre for a given relevance", Reject, &|c| {
                        c.centre = None
                    });
                }
            }
            push("chebyshev problem", Reject, &|c| {
                c.problem = Problem::Chebyshev
            });
            push("ball claim", Reject, &|c| c.claim = Claim::Ball);
        }
        _ => {
            push("exists problem", Reject, &|c| c.problem = Problem::Exists);
            push("feasible claim", Reject, &|c| c.claim = Claim::Feasible);
        }
    }
    match (cert.problem, cert.claim) {
        (Problem::Exists, Claim::Feasible) => push("optimal claim for exists", Reject, &|c| {
            c.claim = Claim::Optimal
        }),
        (_, Claim::Infeasible) => push("feasible claim without a point", Reject, &|c| {
            c.claim = Claim::Feasible
        }),
        (_, Claim::Optimal) => {
            push("infeasible claim", Reference, &|c| {
                c.claim = Claim::Infeasible
            });
            push("feasible claim", Reference, &|c| c.claim = Claim::Feasible);
            push("exists problem", Reject, &|c| c.problem = Problem::Exists);
        }
        _ => {}
    }

    // The point (root claims: projected onto the plane first; balls: the centre).
    if let Some(point) = &cert.point {
        let dim = point.len();
        push("no point", Reject, &|c| c.point = None);
        push("point coordinate removed", Reject, &|c| {
            c.point.as_mut().unwrap().pop();
        });
        push("point coordinate added", Reject, &|c| {
            c.point.as_mut().unwrap().push(0.0)
        });
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        for scale in [1e-12, 1e-6, 1e-2, 1.0] {
            let moved: Vec<f64> = point
                .iter()
                .map(|v| v + scale * rng.random_range(-1.0..1.0))
                .collect();
            push(&format!("point moved by {scale:e}"), Reference, &|c| {
                c.point = Some(moved.clone())
            });
        }
        let root = cert.claim != Claim::Ball;
        let reading = if root {
            acc.point.clone().unwrap()
        } else {
            point.clone()
        };
        if root {
            push("point replaced by its projection", Reference, &|c| {
                c.point = Some(reading.clone())
            });
        }
        let w = root.then(|| {
            net.layers()[seen.m]
                .affine
                .row(cert.neuron.unwrap())
                .dense()
                .into_owned()
        });
        // Out of the domain: a coordinate where the plane's normal is smallest moves far, so
        // its projection moves by at least half as far (|w_i|² <= |w|²/2 for dim >= 2).
        let i = match &w {
            Some(w) => (0..dim)
                .min_by(|&a, &b| w[a].abs().total_cmp(&w[b].abs()))
                .unwrap(),
            None => 0,
        };
        let far = 1e3 * (1.0 + reading.iter().fold(0.0f64, |m, v| m.max(v.abs())));
        match cert.domain {
            Domain::Free => {}
            Domain::NonNegative => push("point below the orthant", Reject, &|c| {
                let mut p = reading.clone();
                p[i] = if root { reading[i] - far } else { -1.0 };
                c.point = Some(p);
            }),
            Domain::Box { lo, hi } => {
                let far = far + 1e3 * (lo.abs() + hi.abs());
                push("point above the box", Reject, &|c| {
                    let mut p = reading.clone();
                    p[i] = if root { reading[i] + far } else { hi + 1.0 };
                    c.point = Some(p);
                });
                push("point below the box", Reject, &|c| {
                    let mut p = reading.clone();
                    p[i] = if root { reading[i] - far } else { lo - 1.0 };
                    c.point = Some(p);
                });
            }
        }
        let plane = w.as_deref().map(|w| (cert.neuron.unwrap(), w));
        if let Some(outside) = across_a_face(model, &seen, &reading, plane) {
            push("point across a face", Reject, &|c| {
                c.point = Some(outside.clone())
            });
        }
    }

    // The multipliers.
    if let Some(y) = &cert.multipliers {
        let lp = program_of(model, cert);
        push("multiplier removed", Reject, &|c| {
            c.multipliers.as_mut().unwrap().pop();
        });
        push("multiplier added", Reject, &|c| {
            c.multipliers.as_mut().unwrap().push(0.0)
        });
        push(
            "no multipliers",
            if cert.claim == Claim::Ball {
                Reference
            } else {
                Reject
            },
            &|c| c.multipliers = None,
        );
        if let Some(r) = (0..y.len()).find(|&r| lp.rows[r].kind != RowKind::Eq && y[r] != 0.0) {
            push(&format!("sign of multiplier {r} flipped"), Reject, &|c| {
                c.multipliers.as_mut().unwrap()[r] *= -1.0
            });
        }
        if let Some(r) = (0..y.len()).find(|&r| lp.rows[r].kind == RowKind::Eq && y[r] != 0.0) {
            push(
                &format!("multiplier {r} (equality) off by 1e-3"),
                Reference,
                &|c| c.multipliers.as_mut().unwrap()[r] *= 1.0 + 1e-3,
            );
            push(
                &format!("multiplier {r} (equality) negated"),
                Reference,
                &|c| c.multipliers.as_mut().unwrap()[r] *= -1.0,
            );
        }
        let scale = |f: f64| {
            move |c: &mut Certificate| {
                c.multipliers
                    .as_mut()
                    .unwrap()
                    .iter_mut()
                    .for_each(|v| *v *= f)
            }
        };
        push("multipliers halved", Reference, &scale(0.5));
        push(
            "all multipliers zero",
            if cert.claim == Claim::Infeasible {
                Reject
            } else {
                Reference
            },
            &scale(0.0),
        );
        if cert.claim == Claim::Infeasible {
            // Doubling is exact and doubles the bound; negating makes it negative (the bounds
            // of y and −y add up to Σ (min − max) <= 0).
            push("multipliers doubled", Accept, &scale(2.0));
            push("multipliers negated", Reject, &scale(-1.0));
        } else {
            push("multipliers doubled", Reference, &scale(2.0));
            push("multipliers negated", Reference, &scale(-1.0));
        }
    }

    // The interval and the radius.
    if let Some(lower) = &acc.lower {
        let above = (lower + rat(1.0)).to_string();
        push("claimed lower end above the proof", Reject, &|c| {
            c.interval.get_or_insert_with(blank_interval).lower = Some(above.clone())
        });
        push("claimed lower end 0", Accept, &|c| {
            c.interval.get_or_insert_with(blank_interval).lower = Some("0".into())
        });
        push("claimed lower end unreadable", Reject, &|c| {
            c.interval.get_or_insert_with(blank_interval).lower = Some("one half".into())
        });
        push("no interval", Accept, &|c| c.interval = None);
    }
    if let Some(upper) = &acc.upper {
        let below = (upper - rat(1.0)).to_string();
        push("claimed upper end below the proof", Reject, &|c| {
            c.interval.get_or_insert_with(blank_interval).upper = Some(below.clone())
        });
        push("claimed upper end unbounded", Accept, &|c| {
            c.interval.get_or_insert_with(blank_interval).upper = None
        });
    }
    if let Some(r) = cert.radius {
        push("negative radius", Reject, &|c| c.radius = Some(-1.0));
        push("no radius", Reject, &|c| c.radius = None);
        push("radius halved, no interval", Accept, &|c| {
            c.radius = Some(r / 2.0);
            c.interval = None;
        });
        push("radius doubled", Reference, &|c| c.radius = Some(2.0 * r));
        if let Some(upper) = &acc.upper {
            let beyond = 2.0 * Scalar::to_f64(upper) + 1.0;
            push("radius beyond the proved upper bound", Reject, &|c| {
                c.radius = Some(beyond);
                c.interval = None;
            });
        }
    }
    out
}

fn blank_interval() -> dtdcert::check::Interval {
    dtdcert::check::Interval {
        lower: None,
        upper: None,
        lower_f64: None,
        upper_f64: None,
    }
}

/// JSON out and back in, as a certificate file would travel.
fn round_trip(cert: &Certificate) -> Certificate {
    let text = serde_json::to_string(cert).expect("certificates serialise");
    serde_json::from_str(&text).expect("certificates parse back")
}

fn check_mutants(
    model: &Model,
    cert: &Certificate,
    acc: &Accepted,
    seed: u64,
) -> Result<usize, TestCaseError> {
    let mut rejected = 0;
    for m in mutants(model, cert, acc, seed) {
        let c = round_trip(&m.cert);
        let by_checker = check(model, &c);
        let by_reference = reference(model, &c);
        prop_assert_eq!(
            by_checker.is_ok(),
            by_reference,
            "{}: checker {:?}, reference {}\n{}",
            m.what,
            by_checker,
            by_reference,
            serde_json::to_string(&c).unwrap()
        );
        match m.expect {
            Expect::Reject => prop_assert!(
                by_checker.is_err(),
                "{}: accepted\n{}",
                m.what,
                serde_json::to_string(&c).unwrap()
            ),
            Expect::Accept => prop_assert!(
                by_checker.is_ok(),
                "{}: rejected: {:?}\n{}",
                m.what,
                by_checker,
                serde_json::to_string(&c).unwrap()
            ),
            Expect::Reference => {}
        }
        rejected += usize::from(by_checker.is_err());
    }
    Ok(rejected)
}

// ---------------------------------------------------------------------------------------------
// 1, 2, 4: every certificate is accepted, mutations are judged exactly, sampled roots agree

#[derive(Default)]
struct Tally {
    questions: usize,
    unknown: usize,
    /// Chebyshev questions whose region holds arbitrarily large balls (no finite answer).
    unbounded: usize,
    found: usize,
    none: usize,
    balls: usize,
    mutants_rejected: usize,
    sampled_valid: usize,
    examples: Vec<String>,
    /// 2-D Unknown answers where a valid root exists, and where none does (exactly).
    unknown_with_root: usize,
    unknown_without_root: usize,
    /// Unknown reasons with numbers blanked out, and how often each occurred.
    reasons: std::collections::BTreeMap<String, usize>,
}

impl Tally {
    fn print_unknowns(&self) {
        for (kind, n) in &self.reasons {
            println!("{n:4} unknown: {kind}");
        }
        for e in &self.examples {
            println!("  e.g. {e}");
        }
    }

    fn record(&mut self, answer: &Answer, what: impl FnOnce() -> String) {
        self.questions += 1;
        match answer {
            Answer::Unknown { reason } if reason.contains("arbitrarily large balls") => {
                self.unbounded += 1
            }
            Answer::Unknown { reason } => {
                self.unknown += 1;
                let kind: String = reason
                    .split(|c: char| c.is_ascii_digit())
                    .filter(|part| !part.is_empty())
                    .collect::<Vec<_>>()
                    .join("#");
                *self.reasons.entry(kind).or_default() += 1;
                if self.examples.len() < 8 {
                    self.examples.push(format!("{}: {reason}", what()));
                }
            }
            Answer::Found { .. } => self.found += 1,
            Answer::None => self.none += 1,
            Answer::Ball { .. } => self.balls += 1,
            Answer::Facet { .. } => {}
        }
    }
}

/// Answers of one case, kept for cross-checks between problems.
struct Answers {
    /// Projected exact points of certified roots.
    points: Vec<Vec<Rational>>,
    /// Certified lower ends of the nearest distances.
    lower_l1: Option<Rational>,
    lower_linf: Option<Rational>,
    any_none: bool,
}

fn certify_case(case: &Case, tally: &RefCell<Tally>) -> Result<(), TestCaseError> {
    let posed = case.pose(false);
    let model = &posed.model;
    let certifier = posed.certifier();
    let seen = posed.seen();
    let mut answers = Answers {
        points: Vec::new(),
        lower_l1: None,
        lower_linf: None,
        any_none: false,
    };
    for problem in [
        Problem::Exists,
        Problem::NearestL1,
        Problem::NearestLinf,
        Problem::Chebyshev,
    ] {
        let certified = certifier.answer(&posed.question(problem));
        tally
            .borrow_mut()
            .record(&certified.answer, || posed.describe(problem));
        let cert = match (&certified.answer, &certified.certificate) {
            (Answer::Unknown { .. }, None) => continue,
            (Answer::Unknown { reason }, Some(_)) => {
                return Err(TestCaseError::fail(format!(
                    "an Unknown answer ({reason}) came with a certificate"
                )))
            }
            (a, None) => return Err(TestCaseError::fail(format!("{a:?} without a certificate"))),
            (_, Some(c)) => c,
        };
        let back = round_trip(cert);
        prop_assert_eq!(&back, cert);
        let text = serde_json::to_string(&back).unwrap();
        let acc = check(model, &back).map_err(|r| {
            TestCaseError::fail(format!("{}: rejected: {r}\n{text}", problem.name()))
        })?;
        prop_assert!(reference(model, &back), "the reference rejects\n{}", text);
        let consistent = matches!(
            (&certified.answer, acc.claim),
            (Answer::Found { .. }, Claim::Feasible | Claim::Optimal)
                | (Answer::None, Claim::Infeasible)
                | (Answer::Ball { .. }, Claim::Ball)
        );
        prop_assert!(
            consistent,
            "{:?} with claim {:?}",
            certified.answer,
            acc.claim
        );
        match acc.claim {
            Claim::Feasible | Claim::Optimal => {
                let q = seen
                    .project(
                        model,
                        posed.neuron,
                        &posed.relevance,
                        back.point.as_ref().unwrap(),
                    )
                    .unwrap();
                prop_assert!(seen.valid(model, posed.domain, &q));
                answers.points.push(q);
            }
            Claim::Infeasible => answers.any_none = true,
            Claim::Ball => {
                // Points of the ball (the ends of its axes, and random points scaled into it
                // in the L1 norm, which bounds the Euclidean one) lie in the region, exactly.
                let centre = exact(back.point.as_ref().unwrap());
                let r = rat(back.radius.unwrap());
                let dim = centre.len();
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(case.seed ^ 0xba11);
                let mut offsets: Vec<Vec<Rational>> = Vec::new();
                for i in 0..2 * dim {
                    let mut v = vec![zero(); dim];
                    v[i / 2] = if i % 2 == 0 { r.clone() } else { -r.clone() };
                    offsets.push(v);
                }
                for _ in 0..8 {
                    let v: Vec<Rational> =
                        (0..dim).map(|_| rat(rng.random_range(-1.0..1.0))).collect();
                    let l1 = v.iter().fold(zero(), |acc, x| acc + Scalar::abs(x));
                    if l1.is_positive() {
                        offsets.push(v.iter().map(|x| x * &r / &l1).collect());
                    }
                }
                for v in offsets {
                    let q: Vec<Rational> = centre.iter().zip(&v).map(|(c, d)| c + d).collect();
                    prop_assert!(
                        seen.valid(model, posed.domain, &q),
                        "a point of the certified ball lies outside\n{}",
                        text
                    );
                }
            }
            _ => {}
        }
        match problem {
            Problem::NearestL1 => answers.lower_l1 = acc.lower.clone(),
            Problem::NearestLinf => answers.lower_linf = acc.lower.clone(),
            _ => {}
        }
        if let (
            Answer::Found {
                lower: Some(l),
                upper: Some(u),
                ..
            },
            Some(lo),
            Some(up),
        ) = (&certified.answer, &acc.lower, &acc.upper)
        {
            prop_assert!(lo <= up);
            prop_assert!(*l <= *u, "reported interval [{}, {}]", l, u);
        }
        let rejected = check_mutants(model, &back, &acc, case.seed)?;
        tally.borrow_mut().mutants_rejected += rejected;
    }

    // Certified answers about the same plane cannot contradict each other.
    prop_assert!(
        !answers.any_none || answers.points.is_empty(),
        "one problem proved that no valid root exists, another found one"
    );
    // Sampled valid roots: on the plane (exactly), in the region and the domain.
    let mut sampled = answers.points.clone();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(case.seed ^ 0x5eed);
    for k in 0..24 {
        let scale = [1e-3, 1e-1, 1.0, 4.0][k % 4];
        let p: Vec<f64> = seen
            .centre
            .approx()
            .iter()
            .map(|a| a + scale * rng.random_range(-1.0..1.0))
            .collect();
        if let Some(q) = seen.project(model, posed.neuron, &posed.relevance, &p) {
            if seen.valid(model, posed.domain, &q) {
                tally.borrow_mut().sampled_valid += 1;
                sampled.push(q);
            }
        }
    }
    prop_assert!(
        sampled.is_empty() || !answers.any_none,
        "a valid root was sampled, but none was certified to exist"
    );
    for q in &sampled {
        if let Some(l) = &answers.lower_l1 {
            prop_assert!(*l <= seen.distance(q, Norm::L1));
        }
        if let Some(l) = &answers.lower_linf {
            prop_assert!(*l <= seen.distance(q, Norm::Linf));
        }
    }
    Ok(())
}

/// A runner with `cases` cases (or `PROPTEST_CASES`) and a fixed seed, so that the count of
/// Unknown answers is reproducible; `PROPTEST_RNG_SEED` explores other cases.
fn runner(cases: u32) -> TestRunner {
    let mut config = ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    if config.rng_seed == RngSeed::Random {
        config.rng_seed = RngSeed::Fixed(1);
    }
    TestRunner::new(config)
}

/// The largest share of questions allowed to end Unknown.
const UNKNOWN_SHARE: f64 = 0.05;

#[test]
fn every_certificate_is_accepted_and_every_mutation_judged_exactly() {
    let tally = RefCell::new(Tally::default());
    let strategy = case(2..=6, input_domain().boxed());
    let result = runner(48).run(&strategy, |c| certify_case(&c, &tally));
    let t = tally.into_inner();
    println!(
        "{} questions: {} found, {} none, {} balls, {} unknown, {} unbounded balls; \
         {} mutants rejected; {} sampled valid roots",
        t.questions,
        t.found,
        t.none,
        t.balls,
        t.unknown,
        t.unbounded,
        t.mutants_rejected,
        t.sampled_valid
    );
    t.print_unknowns();
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(t.mutants_rejected > 0);
}

/// Proving that no root exists does not depend on the norm of the question: the checker
/// rebuilds the L1 program for every "infeasible" claim, so nearest-linf must prove it there.
#[test]
fn every_root_problem_proves_that_no_root_exists() {
    let net = Network::new(vec![
        dense_layer(2, 2, vec![1.0, 0.0, 0.0, 1.0], vec![0.0, 0.0], true).unwrap(),
        dense_layer(1, 2, vec![1.0, 1.0], vec![0.0], false).unwrap(),
    ])
    .unwrap();
    let model = Model::new(net);
    // Neuron 0's plane ã_0 = 0.5 − R: outside the box for R = 2; on the side of its own face
    // that the (active) pattern forbids for R = 0.75.
    for (relevance, domain) in [
        (2.0, Domain::Box { lo: -1.0, hi: 1.0 }),
        (0.75, Domain::Free),
        (0.75, Domain::Box { lo: -1.0, hi: 1.0 }),
    ] {
        let posed = Posed {
            model: model.clone(),
            x: vec![0.5, 0.5],
            layer: 1,
            neuron: 0,
            relevance: rat(relevance),
            source: QuestionRelevance::Given(rat(relevance)),
            centre: Some(vec![0.5, 0.5]),
            domain,
        };
        for problem in [Problem::Exists, Problem::NearestL1, Problem::NearestLinf] {
            let certified = posed.certifier().answer(&posed.question(problem));
            assert!(
                matches!(certified.answer, Answer::None),
                "{}: {:?}",
                posed.describe(problem),
                certified.answer
            );
            let cert = round_trip(&certified.certificate.unwrap());
            assert_eq!(check(&model, &cert).unwrap().claim, Claim::Infeasible);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3: exists and nearest on 2-dimensional networks against the root line

/// The segment `{p0 + t d : t ∈ [lo, hi]}` of the root line, in exact `t`.
struct Line {
    p0: Vec<Rational>,
    d: Vec<Rational>,
}

impl Line {
    fn at(&self, t: &Rational) -> Vec<Rational> {
        self.p0
            .iter()
            .zip(&self.d)
            .map(|(p, d)| p + t * d)
            .collect()
    }
}

/// Intersects `[lo, hi]` with `{t : c + t s >= 0}`.
fn clip(range: &mut Option<(Rational, Rational)>, c: &Rational, s: &Rational) {
    let Some((lo, hi)) = range.as_mut() else {
        return;
    };
    if Scalar::is_zero(s) {
        if c.is_negative() {
            *range = None;
        }
        return;
    }
    let t = -c / s;
    if s.is_positive() {
        if t > *lo {
            *lo = t;
        }
    } else if t < *hi {
        *hi = t;
    }
    if lo > hi {
        *range = None;
    }
}

/// The exact minimum of `‖q(t) − a‖` over `[lo, hi]`: the distance is convex and piecewise
/// linear in `t`, so it is attained at an end or a kink.
fn exact_nearest(
    line: &Line,
    a: &[Rational],
    range: &(Rational, Rational),
    norm: Norm,
) -> Rational {
    let alpha: Vec<Rational> = line.p0.iter().zip(a).map(|(p, a)| p - a).collect();
    let d = &line.d;
    let mut ts = vec![range.0.clone(), range.1.clone()];
    for i in 0..2 {
        if !Scalar::is_zero(&d[i]) {
            ts.push(-&alpha[i] / &d[i]);
        }
    }
    let diff = &d[0] - &d[1];
    if !Scalar::is_zero(&diff) {
        ts.push((&alpha[1] - &alpha[0]) / diff);
    }
    let sum = &d[0] + &d[1];
    if !Scalar::is_zero(&sum) {
        ts.push(-(&alpha[0] + &alpha[1]) / sum);
    }
    ts.into_iter()
        .filter(|t| *t >= range.0 && *t <= range.1)
        .map(|t| {
            let e: Vec<Rational> = line
                .at(&t)
                .iter()
                .zip(a)
                .map(|(q, a)| Scalar::abs(&(q - a)))
                .collect();
            match norm {
                Norm::L1 => &e[0] + &e[1],
                Norm::Linf => {
                    if e[0] > e[1] {
                        e[0].clone()
                    } else {
                        e[1].clone()
                    }
                }
            }
        })
        .min()
        .expect("the ends are candidates")
}

fn two_dimensional_case(case: &Case, tally: &RefCell<Tally>) -> Result<(), TestCaseError> {
    let posed = case.pose(true);
    let model = &posed.model;
    let Domain::Box { lo, hi } = posed.domain else {
        unreachable!("2-D cases use boxes")
    };
    let seen = posed.seen();
    let w = exact(&model.net().layers()[0].affine.row(posed.neuron).dense());
    let ww = dot(&w, &w);
    if Scalar::is_zero(&ww) {
        return Ok(());
    }
    let a = seen.a();
    let shift = (dot(&w, &a) - &posed.relevance - dot(&w, &a)) / &ww;
    let line = Line {
        p0: a.iter().zip(&w).map(|(ai, wi)| ai + &shift * wi).collect(),
        d: vec![-w[1].clone(), w[0].clone()],
    };
    // The part of the line in the box: t in [-T, T] with T beyond any box crossing, clipped.
    let big = rat(1e9);
    let mut in_box = Some((-big.clone(), big));
    for i in 0..2 {
        clip(&mut in_box, &(&line.p0[i] - rat(lo)), &line.d[i]);
        clip(&mut in_box, &(rat(hi) - &line.p0[i]), &-line.d[i].clone());
    }
    // The part also in the region, exactly: every constraint is affine along the line.
    let poly = polytope(model.exact(), &seen.pattern, 0);
    let mut inside = in_box.clone();
    for r in 0..poly.num_constraints() {
        let g: Vec<Rational> = poly.g.row(r).to_vec();
        clip(
            &mut inside,
            &(dot(&g, &line.p0) + &poly.h[r]),
            &dot(&g, &line.d),
        );
    }
    // Brute force: points along the segment in the box, tested for membership exactly.
    let mut brute: Vec<(Rational, Vec<Rational>)> = Vec::new();
    if let Some((t0, t1)) = &in_box {
        let n = 200;
        for k in 0..=n {
            let t = t0 + (t1 - t0) * Rational::new(k.into(), n.into());
            let q = line.at(&t);
            prop_assert!(in_domain(posed.domain, &q, &zero()));
            if membership(model.exact(), &seen.pattern, 0, &q).is_inside() {
                brute.push((t, q));
            }
        }
    }
    for (t, _) in &brute {
        let (l, h) = inside
            .as_ref()
            .expect("a sampled valid point lies in the segment");
        prop_assert!(l <= t && t <= h);
    }
    let certifier = posed.certifier();
    for problem in [Problem::Exists, Problem::NearestL1, Problem::NearestLinf] {
        let certified = certifier.answer(&posed.question(problem));
        tally
            .borrow_mut()
            .record(&certified.answer, || posed.describe(problem));
        match &certified.answer {
            Answer::None => {
                prop_assert!(
                    brute.is_empty(),
                    "{}: certified none, sampled {}",
                    problem.name(),
                    brute.len()
                );
                prop_assert!(inside.is_none());
            }
            Answer::Found { lower, .. } => {
                let cert = certified.certificate.as_ref().unwrap();
                let q = seen
                    .project(
                        model,
                        posed.neuron,
                        &posed.relevance,
                        cert.point.as_ref().unwrap(),
                    )
                    .unwrap();
                prop_assert!(seen.valid(model, posed.domain, &q));
                let range = inside
                    .as_ref()
                    .expect("a certified root lies in the segment");
                if problem != Problem::Exists {
                    prop_assert!(lower.is_some());
                    let acc = check(model, &round_trip(cert)).unwrap();
                    let norm = if problem == Problem::NearestL1 {
                        Norm::L1
                    } else {
                        Norm::Linf
                    };
                    let best = exact_nearest(&line, &a, range, norm);
                    let (l, u) = (acc.lower.unwrap(), acc.upper.unwrap());
                    prop_assert!(l <= best && best <= u, "{} in [{}, {}]?", best, l, u);
                    for (_, q) in &brute {
                        prop_assert!(l <= seen.distance(q, norm));
                    }
                }
                tally.borrow_mut().sampled_valid += brute.len();
            }
            Answer::Unknown { .. } => {
                let mut t = tally.borrow_mut();
                if inside.is_some() {
                    t.unknown_with_root += 1;
                } else {
                    t.unknown_without_root += 1;
                }
            }
            other => return Err(TestCaseError::fail(format!("{other:?}"))),
        }
    }
    Ok(())
}

#[test]
fn exists_and_nearest_agree_with_the_root_line_in_two_dimensions() {
    let tally = RefCell::new(Tally::default());
    let strategy = case(2..=2, input_box().boxed());
    let result = runner(64).run(&strategy, |c| two_dimensional_case(&c, &tally));
    let t = tally.into_inner();
    println!(
        "{} questions: {} found, {} none, {} unknown ({} with a valid root, {} without); \
         {} sampled valid roots",
        t.questions,
        t.found,
        t.none,
        t.unknown,
        t.unknown_with_root,
        t.unknown_without_root,
        t.sampled_valid
    );
    t.print_unknowns();
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(t.found > 0 && t.none > 0, "both answers occur");
}

/// Unknown answers are rare: the questions of the two properties above (the same seeds give
/// the same cases), certified once more and counted by reason.
#[test]
fn unknown_answers_are_rare() {
    let tally = RefCell::new(Tally::default());
    let count = |case: &Case, first_layer: bool, problems: &[Problem]| {
        let posed = case.pose(first_layer);
        let certifier = posed.certifier();
        for &problem in problems {
            let answer = certifier.answer(&posed.question(problem)).answer;
            tally
                .borrow_mut()
                .record(&answer, || posed.describe(problem));
        }
        Ok(())
    };
    let all = [
        Problem::Exists,
        Problem::NearestL1,
        Problem::NearestLinf,
        Problem::Chebyshev,
    ];
    runner(48)
        .run(&case(2..=6, input_domain().boxed()), |c| {
            count(&c, false, &all)
        })
        .unwrap();
    runner(64)
        .run(&case(2..=2, input_box().boxed()), |c| {
            count(&c, true, &all[..3])
        })
        .unwrap();
    let t = tally.into_inner();
    println!(
        "{} questions: {} unknown, {} unbounded balls",
        t.questions, t.unknown, t.unbounded
    );
    t.print_unknowns();
    assert!(
        (t.unknown as f64) < UNKNOWN_SHARE * t.questions as f64,
        "{} of {} questions unknown: {:#?}",
        t.unknown,
        t.questions,
        t.examples
    );
}

/// Answers with and without constraint generation, on the same questions.
#[derive(Default)]
struct Agreement {
    compared: usize,
    screened: usize,
    unknown: usize,
}

fn screened_case(case: &Case, tally: &RefCell<Agreement>) -> Result<(), TestCaseError> {
    let posed = case.pose(false);
    let screened = posed.certifier();
    let full = Certifier {
        cache: RegionCache::full_programs(),
        ..posed.certifier()
    };
    for problem in [Problem::Exists, Problem::NearestL1, Problem::NearestLinf] {
        let q = posed.question(problem);
        let a = screened.answer(&q);
        let b = full.answer(&q);
        prop_assert!(!b.screened);
        let mut t = tally.borrow_mut();
        if a.screened {
            t.screened += 1;
            // Its evidence is a certificate like any other.
            let acc = check(&posed.model, &round_trip(a.certificate.as_ref().unwrap()));
            prop_assert!(acc.is_ok(), "{acc:?}");
        }
        match (&a.answer, &b.answer) {
            (Answer::Unknown { .. }, _) | (_, Answer::Unknown { .. }) => t.unknown += 1,
            (Answer::None, Answer::None) => t.compared += 1,
            (
                Answer::Found {
                    lower: l1,
                    upper: u1,
                    ..
                },
                Answer::Found {
                    lower: l2,
                    upper: u2,
                    ..
                },
            ) => {
                t.compared += 1;
                // Two proved enclosures of the same optimum intersect.
                if let (Some(l1), Some(u1), Some(l2), Some(u2)) = (l1, u1, l2, u2) {
                    prop_assert!(
                        l1 <= u2 && l2 <= u1,
                        "{}: [{l1}, {u1}] and [{l2}, {u2}] are disjoint",
                        posed.describe(problem)
                    );
                }
            }
            (x, y) => prop_assert!(
                false,
                "{}: {x:?} with constraint generation, {y:?} without",
                posed.describe(problem)
            ),
        }
    }
    Ok(())
}

#[test]
fn constraint_generation_agrees_with_the_full_programs() {
    let tally = RefCell::new(Agreement::default());
    let strategy = case(2..=6, input_domain().boxed());
    let result = runner(48).run(&strategy, |c| screened_case(&c, &tally));
    let t = tally.into_inner();
    println!(
        "{} answers compared, {} by constraint generation, {} unknown",
        t.compared, t.screened, t.unknown
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    // Constraint generation is the path root questions take first: most answers come from it.
    assert!(
        t.compared > 0 && t.screened * 2 >= t.compared,
        "{} of {} answers by constraint generation",
        t.screened,
        t.compared
    );
}

/// Regions with max-pool constraints (`z_winner − z_entry >= 0`) and outputs carried past a
/// ReLU: every certificate is accepted and proves what it claims, mutations are judged as the
/// reference judges them, Unknown answers are rare, and constraint generation agrees with the
/// full programs.
#[test]
fn max_pool_constraints_and_carried_outputs_get_checked_certificates() {
    let tally = RefCell::new(Tally::default());
    let agreement = RefCell::new(Agreement::default());
    let (pooled, carried) = (std::cell::Cell::new(0), std::cell::Cell::new(0));
    let strategy = case_with_tails_and_pools(input_domain().boxed());
    let result = runner(48).run(&strategy, |c| {
        let posed = c.pose(false);
        let above = &c.net.layers()[posed.layer - 1..];
        pooled.set(pooled.get() + usize::from(above.iter().any(|l| l.max_pool.is_some())));
        // A tail in the region (a free variable of its programs) or just below it (the
        // question's domain is then not the orthant).
        let from = posed.layer.saturating_sub(2);
        let tails = c.net.layers()[from..].iter().any(|l| l.linear_tail > 0);
        carried.set(carried.get() + usize::from(tails));
        certify_case(&c, &tally)?;
        screened_case(&c, &agreement)
    });
    let (t, a) = (tally.into_inner(), agreement.into_inner());
    let (pooled, carried) = (pooled.get(), carried.get());
    println!(
        "{} questions ({pooled} cases with max-pool constraints, {carried} with a carried tail \
         in or just below the region): {} found, {} none, {} balls, {} unknown; {} mutants \
         rejected; {} answers compared, {} by constraint generation",
        t.questions,
        t.found,
        t.none,
        t.balls,
        t.unknown,
        t.mutants_rejected,
        a.compared,
        a.screened
    );
    t.print_unknowns();
    if let Err(e) = result {
        panic!("{e}");
    }
    assert!(
        pooled >= 10 && carried >= 10,
        "{pooled} pooled, {carried} carried"
    );
    assert!(t.mutants_rejected > 0);
    assert!(
        (t.unknown as f64) < UNKNOWN_SHARE * t.questions as f64,
        "{} of {} questions unknown",
        t.unknown,
        t.questions
    );
    assert!(
        a.compared > 0 && a.screened * 2 >= a.compared,
        "{} of {} answers by constraint generation",
        a.screened,
        a.compared
    );
}

// ---------------------------------------------------------------------------------------------
// 5: the command line

const MODEL: &str = "examples/c6/model.onnx";
const INPUTS: &str = "examples/c6/inputs.npy";
/// The same architecture (10-10-10-2) with other weights.
const OTHER_MODEL: &str = "tests/data/onnx/mlp_10_10_10_2_relu_last_opset11.onnx";

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn expect_code(self, code: i32) -> Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

fn dtdcert<S: AsRef<OsStr>>(args: &[S]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_dtdcert"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .timeout(std::time::Duration::from_secs(120))
        .output()
        .expect("the binary runs");
    Run {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn certify(out: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "certify",
        "--model",
        MODEL,
        "--inputs",
        INPUTS,
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    dtdcert(&args)
}

fn check_cert(files: &[&Path], model: Option<&str>) -> Run {
    let mut args: Vec<String> = vec!["check-cert".into()];
    if let Some(m) = model {
        args.extend(["--model".into(), m.into()]);
    }
    args.extend(files.iter().map(|f| f.to_str().unwrap().to_string()));
    dtdcert(&args)
}

/// A certificate for c6 (sample 3, layer 1, neuron 2), written by the binary.
fn c6_certificate(dir: &TempDir, problem: &str) -> PathBuf {
    let path = dir.path().join(format!("{problem}.json"));
    let run = certify(
        &path,
        &[
            "--sample",
            "3",
            "--layer",
            "1",
            "--neuron",
            "2",
            "--problem",
            problem,
        ],
    )
    .expect_code(0);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["answer"], "found", "{}", run.stdout);
    path
}

fn edit(path: &Path, into: &Path, f: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(into, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

#[test]
fn a_written_certificate_is_accepted_by_check_cert() {
    let dir = tempfile::tempdir().unwrap();
    let path = c6_certificate(&dir, "nearest-l1");
    let run = check_cert(&[&path], None).expect_code(0);
    assert!(run.stdout.contains("accepted (optimal)"), "{}", run.stdout);
    // Every problem, at layers 1 and 2, is certified and re-checked.
    for (k, extra) in [
        &[
            "--layer",
            "1",
            "--neuron",
            "0",
            "--problem",
            "exists",
            "--domain",
            "-3:3",
        ][..],
        &["--layer", "2", "--neuron", "4", "--problem", "nearest-linf"],
        &["--layer", "3", "--neuron", "1", "--problem", "nearest-l1"],
        &["--layer", "1", "--problem", "chebyshev", "--domain=-4:4"],
    ]
    .iter()
    .enumerate()
    {
        let p = dir.path().join(format!("c{k}.json"));
        let mut args = vec!["--sample", "7"];
        args.extend_from_slice(extra);
        let run = certify(&p, &args);
        assert_eq!(run.code, 0, "{extra:?}\n{}\n{}", run.stdout, run.stderr);
        check_cert(&[&p], Some(MODEL)).expect_code(0);
    }
}

#[test]
fn a_tampered_certificate_is_rejected_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    // The L∞ program's distance rows carry non-zero multipliers of a fixed sign.
    let path = c6_certificate(&dir, "nearest-linf");
    let cert: Certificate = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let model = Model::load(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(MODEL)).unwrap();
    let lp = program_of(&model, &cert);
    let y = cert.multipliers.as_ref().unwrap();
    let r = (0..y.len())
        .find(|&r| lp.rows[r].kind != RowKind::Eq && y[r] != 0.0)
        .expect("an inequality with a non-zero multiplier");
    let flipped = dir.path().join("flipped.json");
    edit(&path, &flipped, |v| {
        let m = &mut v["multipliers"][r];
        *m = Value::from(-m.as_f64().unwrap());
    });
    let run = check_cert(&[&flipped], None).expect_code(1);
    assert!(
        run.stdout.contains("rejected") && run.stdout.contains("wrong sign"),
        "{}",
        run.stdout
    );
    let renamed = dir.path().join("renamed.json");
    edit(&path, &renamed, |v| {
        v["model"]["fingerprint"] = Value::from("0".repeat(64));
    });
    let run = check_cert(&[&renamed], None).expect_code(1);
    assert!(
        run.stdout.contains("rejected") && run.stdout.contains("is for model 0000"),
        "{}",
        run.stdout
    );
    // One bad certificate among good ones fails the run, and each gets its line.
    let run = check_cert(&[&path, &renamed, &path], None).expect_code(1);
    assert_eq!(run.stdout.matches("accepted").count(), 2, "{}", run.stdout);
    let pushed = dir.path().join("pushed.json");
    edit(&path, &pushed, |v| {
        let p = v["point"].as_array_mut().unwrap();
        p[0] = Value::from(p[0].as_f64().unwrap() + 1e6);
    });
    let run = check_cert(&[&pushed], None).expect_code(1);
    assert!(run.stdout.contains("rejected"), "{}", run.stdout);
}

#[test]
fn an_unreadable_certificate_exits_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = c6_certificate(&dir, "nearest-l1");
    let text = std::fs::read_to_string(&path).unwrap();
    let truncated = dir.path().join("truncated.json");
    std::fs::write(&truncated, &text[..text.len() / 2]).unwrap();
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "not json at all").unwrap();
    let extra = dir.path().join("extra.json");
    edit(&path, &extra, |v| {
        v["surprise"] = Value::from(1);
    });
    let missing = dir.path().join("missing.json");
    for file in [&truncated, &garbage, &extra, &missing] {
        let run = check_cert(&[file.as_path()], None).expect_code(2);
        assert!(
            run.stderr
                .contains(file.file_name().unwrap().to_str().unwrap()),
            "{}",
            run.stderr
        );
        assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    }
}

#[test]
fn a_certificate_checked_against_another_model_names_the_fingerprints() {
    let dir = tempfile::tempdir().unwrap();
    let path = c6_certificate(&dir, "nearest-l1");
    let run = check_cert(&[&path], Some(OTHER_MODEL)).expect_code(1);
    let own = Model::load(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(MODEL)).unwrap();
    assert!(
        run.stdout.contains("rejected") && run.stdout.contains(own.fingerprint()),
        "{}",
        run.stdout
    );
}

#[test]
fn certify_refuses_out_of_range_arguments_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cert.json");
    let root = ["--problem", "exists"];
    for (args, needle) in [
        (vec!["--sample", "100", "--neuron", "0"], "--sample 100"),
        (
            vec!["--sample", "0", "--layer", "0", "--neuron", "0"],
            "--layer 0",
        ),
        (
            vec!["--sample", "0", "--layer", "4", "--neuron", "0"],
            "--layer 4",
        ),
        (
            vec!["--sample", "0", "--layer", "1", "--neuron", "10"],
            "--neuron 10",
        ),
        (
            vec!["--sample", "0", "--layer", "3", "--neuron", "10"],
            "--neuron 10",
        ),
        (vec!["--sample", "0"], "needs --neuron"),
        (
            vec!["--sample", "0", "--neuron", "0", "--lp-time-limit", "0"],
            "--lp-time-limit",
        ),
        (
            vec!["--sample", "0", "--neuron", "0", "--lp-time-limit=-1"],
            "--lp-time-limit",
        ),
        (
            vec!["--sample", "0", "--neuron", "0", "--domain", "1:-1"],
            "--domain",
        ),
    ] {
        let mut all = root.to_vec();
        all.extend(args);
        let run = certify(&out, &all).expect_code(2);
        assert!(run.stderr.contains(needle), "{all:?}: {}", run.stderr);
        assert!(!out.exists(), "{all:?} wrote a certificate");
        assert!(run.stdout.is_empty(), "{all:?}: {}", run.stdout);
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_tiny_time_limit_gives_unknown_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("cert.json");
    let started = std::time::Instant::now();
    let run = certify(
        &out,
        &[
            "--sample",
            "5",
            "--layer",
            "1",
            "--neuron",
            "3",
            "--problem",
            "nearest-linf",
            "--lp-time-limit",
            "1e-9",
        ],
    )
    .expect_code(1);
    assert!(started.elapsed().as_secs() < 60);
    let report: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(report["answer"], "unknown", "{}", run.stdout);
    assert!(
        report["reason"].as_str().unwrap().contains("time limit"),
        "{}",
        run.stdout
    );
    assert!(!out.exists());
}

/// Regression: a facet question about a layer without ReLU (no constraint there) is a usage
/// error from the command line and an Unknown answer from the library, never a panic.
#[test]
fn a_facet_question_off_the_region_is_refused() {
    let model_path = "tests/data/safetensors/mlp_3_4_2.json";
    let out = assert_cmd::Command::cargo_bin("dtdcert")
        .unwrap()
        .args(["certify", "--model", model_path])
        .args([
            "--inputs",
            "tests/data/npy/inputs_f64_4x3.npy",
            "--sample",
            "0",
        ])
        .args(["--layer", "2", "--problem", "facet", "--constraint", "2:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a constraint"), "{stderr}");
    let model = dtdcert::model::Model::load(std::path::Path::new(model_path)).unwrap();
    let certifier = dtdcert::lp::certify::Certifier {
        model: &model,
        opts: dtdcert::lp::SolveOptions::default(),
        model_path: None,
        inputs_path: None,
        cache: Default::default(),
    };
    let q = dtdcert::lp::certify::RegionQuestion {
        sample_index: 0,
        sample: vec![0.5, -0.25, 1.0],
        layer: 2,
        neuron: None,
        relevance: None,
        domain: dtdcert::region::problem::Domain::NonNegative,
        problem: dtdcert::check::Problem::Facet,
        constraint: Some((2, 1)),
        centre: None,
    };
    let answer = certifier.answer(&q).answer;
    assert!(
        matches!(answer, dtdcert::lp::certify::Answer::Unknown { .. }),
        "{answer:?}"
    );
}
