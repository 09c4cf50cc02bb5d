//! The checker: rebuilds the question's program from the model and decides exactly whether the
//! certificate's evidence proves its claim.

use std::cmp::Ordering;

use num_bigint::{BigInt, Sign};
use num_traits::{Signed, Zero};

use super::certificate::{Accepted, Certificate, Claim, Interval, Problem, FORMAT, FORMAT_1};
use super::derive::{Derived, Memo};
use crate::exact::dyadic::{exact_dot, Dyadic, ExactSum};
use crate::exact::filter::Bounded;
use crate::exact::fraction;
use crate::exact::program::Rejection;
use crate::exact::{Rational, Scalar};
use crate::model::Model;
use crate::region::problem::{
    chebyshev_program, composed_row_norms, facet_program, root_program, two_faces, Domain, Norm,
    NormSide, RegionView, RootPlane, Tightening,
};
use crate::region::{constraint_labels, signed_slacks_bounded, signed_slacks_exact};

fn reject<T>(msg: impl Into<String>) -> Result<T, Rejection> {
    Err(Rejection(msg.into()))
}

/// Everything the checker derives from the model and the sample.
struct Context<'a> {
    model: &'a Model,
    derived: &'a Derived,
    m: usize,
    domain: Domain,
}

impl Context<'_> {
    fn view(&self) -> RegionView<'_> {
        RegionView {
            net: self.model.net(),
            pattern: &self.derived.pattern,
            layer: self.m,
            centre: &self.derived.centre,
            domain: self.domain,
        }
    }

    fn width(&self) -> usize {
        self.derived.centre.len()
    }
}

/// Why the text of a certificate file is not checked.
#[derive(Clone, Debug, PartialEq)]
pub enum Unchecked {
    /// A certificate of another format: its claim is rejected, with the reason.
    OtherFormat(Rejection),
    /// Not a certificate (not JSON, no `format` tag, fields missing or unknown): the problem.
    Malformed(String),
}

/// Reads the text of a certificate file: the certificate, or why it is not checked.
pub fn parse_certificate(text: &str) -> Result<Certificate, Unchecked> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Unchecked::Malformed(format!("not a certificate: {e}")))?;
    let Some(format) = value.get("format").and_then(|f| f.as_str()) else {
        return Err(Unchecked::Malformed(
            "not a certificate: no \"format\" tag".into(),
        ));
    };
    // Another format is a certificate this version does not check: its claim is rejected.
    if let Some(r) = format_rejection(format) {
        return Err(Unchecked::OtherFormat(r));
    }
    serde_json::from_value(value)
        .map_err(|e| Unchecked::Malformed(format!("not a certificate: {e}")))
}

/// Why a certificate of format `format` is not checked, or `None` for [`FORMAT`].
pub fn format_rejection(format: &str) -> Option<Rejection> {
    if format == FORMAT {
        return None;
    }
    Some(Rejection(if format == FORMAT_1 {
        format!(
            "format {FORMAT_1} gives the relevance as an f64 and leaves the layer input to an \
             f64 forward pass, so its claim is not about the exact root; certify again to get \
             {FORMAT}"
        )
    } else {
        format!("format '{format}' is not {FORMAT}")
    }))
}

/// Checks `cert` against `model`: the claim is accepted only if its evidence proves it.
pub fn check(model: &Model, cert: &Certificate) -> Result<Accepted, Rejection> {
    check_with(model, &Memo::default(), cert)
}

/// [`check`], keeping in `memo` what the certificate's sample derives (its pattern, exact
/// layer input and relevances) for the next certificate about the same sample and layer.
pub fn check_with(model: &Model, memo: &Memo, cert: &Certificate) -> Result<Accepted, Rejection> {
    if let Some(r) = format_rejection(&cert.format) {
        return Err(r);
    }
    if cert.model.fingerprint != model.fingerprint() {
        return reject(format!(
            "the certificate is for model {}, not for this model ({})",
            cert.model.fingerprint,
            model.fingerprint()
        ));
    }
    let net = model.net();
    let derived = memo.derive(
        model,
        &cert.sample.values,
        cert.layer,
        cert.centre.as_deref(),
    )?;
    let m = cert.layer - 1;
    match (m, cert.domain) {
        (0, Domain::Free) => {}
        (0, Domain::Box { lo, hi }) if lo.is_finite() && hi.is_finite() && lo <= hi => {}
        (0, d) => return reject(format!("domain {d:?} is not valid for the input layer")),
        (_, d) => {
            let expected = Domain::of_layer(net, cert.layer, None);
            if d != expected {
                return reject(format!(
                    "domain {d:?}: layer {}'s domain is {expected:?} (the non-negative orthant above a ReLU, no constraint above a layer without one)",
                    cert.layer
                ));
            }
        }
    }
    let ctx = Context {
        model,
        derived: &derived,
        m,
        domain: cert.domain,
    };
    match cert.problem {
        Problem::Exists | Problem::NearestL1 | Problem::NearestLinf => check_root(&ctx, cert),
        Problem::Chebyshev => check_ball(&ctx, cert),
        Problem::Facet => check_facet(&ctx, cert),
    }
}

/// The root plane of a root question: the neuron, and its relevance, recomputed exactly from
/// the explanation the certificate names (or, at a given centre, as given).
fn plane_of(ctx: &Context, cert: &Certificate) -> Result<RootPlane, Rejection> {
    let layer = &ctx.model.net().layers()[ctx.m];
    let width = layer.affine.out_dim();
    let Some(neuron) = cert.neuron else {
        return reject("a root question needs a neuron");
    };
    if neuron >= width {
        return reject(format!(
            "neuron {neuron} is out of range: layer {} has {width} neurons",
            ctx.m + 1
        ));
    }
    let Some(r) = cert.relevance.as_ref() else {
        return reject("a root question needs a relevance");
    };
    // Read as an unreduced fraction: compared by cross products, without a gcd.
    let Some((p, q)) = fraction(&r.value) else {
        return reject(format!(
            "relevance '{}' is not a rational number",
            abbreviated(&r.value)
        ));
    };
    let value = match (&r.explanation, &cert.centre) {
        (Some(e), None) => {
            let relevances = ctx.derived.relevances(ctx.model, e)?;
            // A max-pool window's entries share the window's relevance.
            let window = layer.max_pool.unwrap_or(1);
            let exact = relevances[neuron / window].clone();
            if p * exact.denom() != exact.numer() * q {
                return reject(format!(
                    "relevance {} is not neuron {neuron}'s relevance {} (about {:e}) in the \
                     explanation of output {} under the certificate's rules",
                    abbreviated(&r.value),
                    abbreviated(&exact.to_string()),
                    Scalar::to_f64(&exact),
                    e.output
                ));
            }
            exact
        }
        (Some(_), Some(_)) => {
            return reject(
                "a relevance at a given centre cannot come from the sample's explanation",
            )
        }
        (None, None) => {
            return reject(
                "the relevance names no explanation (rule and settings) to recompute it from",
            )
        }
        // At a given centre (full-backward DTD) the relevance is part of the question.
        (None, Some(_)) => Rational::new(p, q),
    };
    Ok(RootPlane {
        neuron,
        relevance: value,
    })
}

fn multipliers_of(cert: &Certificate) -> Result<&[f64], Rejection> {
    cert.multipliers
        .as_deref()
        .ok_or_else(|| Rejection("the claim needs multipliers".into()))
}

fn point_of(ctx: &Context, cert: &Certificate) -> Result<Vec<f64>, Rejection> {
    let Some(p) = cert.point.as_ref() else {
        return reject("the claim needs a point");
    };
    if p.len() != ctx.width() {
        return reject(format!(
            "the point has {} coordinates, layer {} has {} inputs",
            p.len(),
            ctx.m + 1,
            ctx.width()
        ));
    }
    if let Some(v) = p.iter().find(|v| !v.is_finite()) {
        return reject(format!("the point contains {v}"));
    }
    Ok(p.clone())
}

/// A long number's text cut to its first and last digits, with its length (relevances deep
/// in a network run to thousands of digits; a message stays one readable line).
fn abbreviated(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= 48 {
        return text.to_string();
    }
    let head: String = chars[..20].iter().collect();
    let tail: String = chars[chars.len() - 12..].iter().collect();
    format!("{head}…{tail} ({} characters)", chars.len())
}

/// `"p/q"` or `"p"` as integers `(p, q)` with `q > 0`, unreduced; `None` for anything else.
fn fraction(text: &str) -> Option<(BigInt, BigInt)> {
    let (p, q) = match text.split_once('/') {
        Some((p, q)) => (p.parse::<BigInt>().ok()?, q.parse::<BigInt>().ok()?),
        None => (text.parse::<BigInt>().ok()?, BigInt::from(1)),
    };
    match q.sign() {
        Sign::Plus => Some((p, q)),
        Sign::Minus => Some((-p, -q)),
        Sign::NoSign => None,
    }
}

/// The rational `text` compared with `x`, by cross products (no gcd).
fn compare(text: &str, x: &Rational) -> Result<Ordering, Rejection> {
    let (p, q) = fraction(text)
        .ok_or_else(|| Rejection(format!("'{}' is not a rational number", abbreviated(text))))?;
    Ok((p * x.denom()).cmp(&(x.numer() * q)))
}

/// Compares claimed interval ends with what the evidence proves: a claimed lower end may not
/// exceed the proved one, a claimed upper end may not be below it.
fn check_interval(
    claimed: Option<&Interval>,
    lower: Option<&Rational>,
    upper: Option<&Rational>,
) -> Result<(), Rejection> {
    let Some(c) = claimed else {
        return Ok(());
    };
    if let (Some(text), Some(proved)) = (c.lower.as_deref(), lower) {
        if compare(text, proved)? == Ordering::Greater {
            return reject(format!(
                "the claimed lower bound {} exceeds the proved one {}",
                abbreviated(text),
                proved.to_f64()
            ));
        }
    }
    if let (Some(text), Some(proved)) = (c.upper.as_deref(), upper) {
        if compare(text, proved)? == Ordering::Less {
            return reject(format!(
                "the claimed upper bound {} is below the proved one {}",
                abbreviated(text),
                proved.to_f64()
            ));
        }
    }
    Ok(())
}

/// A point `p + λ w` with rational `λ`, kept with its f64 reading and error bounds.
struct Projected {
    p: Vec<f64>,
    w: Vec<f64>,
    lambda: Rational,
    approx: Vec<f64>,
    err: Vec<f64>,
}

impl Projected {
    fn exact(&self) -> Vec<Rational> {
        (0..self.p.len()).map(|i| self.exact_coord(i)).collect()
    }

    fn exact_coord(&self, i: usize) -> Rational {
        let step = Scalar::times(&self.lambda, &Rational::from_f64(self.w[i]));
        Scalar::plus(&Rational::from_f64(self.p[i]), &step)
    }
}

const U: f64 = f64::EPSILON / 2.0;

/// Projects `p` exactly onto `w·ã = w·a − R` along `w`; rejects a projection whose f64
/// reading overflows.
fn project(ctx: &Context, plane: &RootPlane, p: Vec<f64>) -> Result<Projected, Rejection> {
    let row = ctx.model.net().layers()[ctx.m].affine.row(plane.neuron);
    let w = row.dense().into_owned();
    let ww = exact_dot(&w, &w).expect("finite weights");
    if ww.is_zero() {
        return reject(format!(
            "neuron {} has no weights: no hyperplane",
            plane.neuron
        ));
    }
    // λ = (w·a − R − w·p) / (w·w) = (A/B − P/Q) / (C/E), reduced once.
    let wa = ctx.derived.centre.affine(row, 0.0);
    let wp = exact_dot(&w, &p).expect("finite point");
    let (a, b) = (&wa - &wp).to_fraction();
    let (c, e) = ww.to_fraction();
    let (rp, rq) = (plane.relevance.numer(), plane.relevance.denom());
    let lambda = fraction::reduced((a * rq - rp * &b) * e, b * rq * c);
    let lam = Scalar::to_f64(&lambda);
    let overflow = || {
        Rejection(format!(
            "the point projected onto the root plane (a step of about {lam:e} along the \
             neuron's weights) overflows f64"
        ))
    };
    if !lam.is_finite() {
        return Err(overflow());
    }
    // The reading is the nearest f64 (num-rational rounds to nearest); 4u is to spare.
    let lam_err = (4.0 * U * lam.abs() + f64::MIN_POSITIVE).next_up();
    let mut approx = Vec::with_capacity(p.len());
    let mut err = Vec::with_capacity(p.len());
    for (&pi, &wi) in p.iter().zip(&w) {
        let prod = lam * wi;
        let q = pi + prod;
        let e = (lam_err * wi.abs() + 2.0 * U * (prod.abs() + q.abs())) * (1.0 + 4.0 * U)
            + 2.0 * f64::from_bits(1);
        if !q.is_finite() || !e.is_finite() {
            return Err(overflow());
        }
        approx.push(q);
        err.push(e.next_up());
    }
    Ok(Projected {
        p,
        w,
        lambda,
        approx,
        err,
    })
}

/// Checks that every constraint of the region satisfies `σ z >= threshold_k` at the point
/// (`thresholds` empty: all zero), except `skip`, which must be strictly negative instead.
fn check_region(
    ctx: &Context,
    approx: &[f64],
    err: &[f64],
    exact: &dyn Fn() -> Vec<Rational>,
    thresholds: &[Dyadic],
    skip: Option<usize>,
) -> Result<(), Rejection> {
    let pattern = &ctx.derived.pattern;
    let slacks = signed_slacks_bounded(ctx.model, pattern, ctx.m, approx, err);
    let labels = constraint_labels(pattern, ctx.m);
    let threshold_f = |k: usize| thresholds.get(k).map(|t| t.to_f64()).unwrap_or(0.0);
    let decided = slacks.iter().enumerate().all(|(k, s)| {
        let t = threshold_f(k);
        // The threshold's own rounding: relative u (and the smallest subnormal, where it
        // underflows), plus the subtraction's.
        let b = Bounded {
            value: s.value - t,
            error: (s.error + 2.0 * U * (t.abs() + (s.value - t).abs()) + f64::from_bits(1))
                * (1.0 + 4.0 * U),
        };
        if skip == Some(k) {
            b.certain_sign() == Some(-1)
        } else {
            b.certainly_nonnegative() == Some(true)
        }
    });
    if decided {
        return Ok(());
    }
    let exact_slacks = signed_slacks_exact(ctx.model.exact(), pattern, ctx.m, &exact());
    for (k, s) in exact_slacks.iter().enumerate() {
        let t = thresholds
            .get(k)
            .map(Dyadic::to_rational)
            .unwrap_or_else(<Rational as Zero>::zero);
        let (layer, neuron) = labels[k];
        if skip == Some(k) {
            if *s >= t {
                return reject(format!(
                    "the witness does not violate constraint (layer {layer}, neuron {neuron})"
                ));
            }
        } else if *s < t {
            return reject(format!(
                "the point violates constraint (layer {layer}, neuron {neuron}) by {:e}",
                Scalar::to_f64(&(t - s))
            ));
        }
    }
    Ok(())
}

/// Checks `lo + shrink <= x_i <= hi − shrink` (box) or `x_i >= shrink` (orthant) exactly,
/// where `shrink` is the ball radius (0 for points).
fn check_domain(
    domain: Domain,
    approx: &[f64],
    err: &[f64],
    exact: &dyn Fn(usize) -> Rational,
    shrink: f64,
) -> Result<(), Rejection> {
    let (lo, hi) = match domain {
        Domain::Free => return Ok(()),
        Domain::NonNegative => (0.0, f64::INFINITY),
        Domain::Box { lo, hi } => (lo, hi),
    };
    let r = Rational::from_f64(shrink);
    for (i, (&v, &e)) in approx.iter().zip(err).enumerate() {
        let margin = 4.0 * U * (v.abs() + lo.abs() + shrink) + e;
        let clear_lo = v - lo - shrink > margin;
        let clear_hi = !hi.is_finite() || hi - v - shrink > margin + 4.0 * U * hi.abs();
        if clear_lo && clear_hi {
            continue;
        }
        let x = exact(i);
        if x < Rational::from_f64(lo) + &r {
            return reject(format!(
                "coordinate {i} is below the domain's lower end {lo}"
            ));
        }
        if hi.is_finite() && x > Rational::from_f64(hi) - &r {
            return reject(format!(
                "coordinate {i} is above the domain's upper end {hi}"
            ));
        }
    }
    Ok(())
}

/// The exact distance `‖q − a‖` (L1 or L∞) of the projected point to the centre.
fn distance(ctx: &Context, q: &Projected, norm: Norm) -> Rational {
    let centre = &ctx.derived.centre;
    let coord = |i: usize| Signed::abs(&fraction::sum(&q.exact_coord(i), &-centre.rational(i)));
    // q_i − a_i read in f64, with a bound on its error; `None` where the reading overflows.
    let reading = |i: usize| -> Option<(f64, f64)> {
        let a = centre.approx()[i];
        let d = q.approx[i] - a;
        let e = (q.err[i] + centre.rounding(i) + 2.0 * U * (d.abs() + a.abs())) * (1.0 + 4.0 * U);
        (d.is_finite() && e.is_finite()).then_some((d, e))
    };
    match norm {
        Norm::L1 => {
            // Σ s_i (p_i − a_i) + λ Σ s_i w_i with s_i = sign(q_i − a_i).
            let mut base = ExactSum::new();
            let mut base_centre = Dyadic::zero();
            let mut slope = ExactSum::new();
            let mut odd = <Rational as Zero>::zero();
            // Coordinates the projection alone moves (p_i = a_i): |λ w_i| each.
            let mut unmoved = ExactSum::new();
            for i in 0..ctx.width() {
                let a = &centre.exact()[i];
                let s = match reading(i) {
                    Some((d, e)) if d > e => 1.0,
                    Some((d, e)) if d < -e => -1.0,
                    _ if Dyadic::from_f64(q.p[i]).is_some_and(|p| p == *a) => {
                        unmoved.add(q.w[i].abs());
                        continue;
                    }
                    _ => {
                        odd = fraction::sum(&odd, &coord(i));
                        continue;
                    }
                };
                base.add_product(s, q.p[i]);
                base_centre = if s > 0.0 {
                    &base_centre - a
                } else {
                    &base_centre + a
                };
                slope.add_product(s, q.w[i]);
            }
            // B + λ S + |λ| U = B + λ (S ± U), over one denominator, reduced once.
            let unmoved = unmoved.value().expect("finite");
            let along = slope.value().expect("finite");
            let along = if Signed::is_negative(&q.lambda) {
                &along - &unmoved
            } else {
                &along + &unmoved
            };
            let (b, b_den) = (&base.value().expect("finite") + &base_centre).to_fraction();
            let (s, s_den) = along.to_fraction();
            let (n, d) = (q.lambda.numer(), q.lambda.denom());
            let sum = fraction::reduced(b * &s_den * d + n * s * &b_den, b_den * s_den * d);
            fraction::sum(&sum, &odd)
        }
        Norm::Linf => {
            // Coordinates whose reading cannot be below the largest lower bound decide.
            let bounds: Vec<(f64, f64)> = (0..ctx.width())
                .map(|i| match reading(i) {
                    Some((d, e)) => (d.abs() - e, d.abs() + e),
                    None => (0.0, f64::INFINITY),
                })
                .collect();
            let floor = bounds.iter().map(|b| b.0).fold(0.0, f64::max);
            (0..ctx.width())
                .filter(|&i| bounds[i].1 >= floor)
                .map(coord)
                .max()
                .unwrap_or_else(<Rational as Zero>::zero)
        }
    }
}

fn check_root(ctx: &Context, cert: &Certificate) -> Result<Accepted, Rejection> {
    let plane = plane_of(ctx, cert)?;
    let norm = cert.problem.norm();
    let point_part = |ctx: &Context| -> Result<(Projected, Vec<f64>), Rejection> {
        let p = point_of(ctx, cert)?;
        let q = project(ctx, &plane, p)?;
        check_region(ctx, &q.approx, &q.err, &|| q.exact(), &[], None)?;
        check_domain(ctx.domain, &q.approx, &q.err, &|i| q.exact_coord(i), 0.0)?;
        let reading = q.approx.clone();
        Ok((q, reading))
    };
    match (cert.problem, cert.claim) {
        (Problem::Exists, Claim::Feasible)
        | (Problem::NearestL1 | Problem::NearestLinf, Claim::Feasible) => {
            let (_, reading) = point_part(ctx)?;
            Ok(Accepted {
                claim: Claim::Feasible,
                lower: None,
                upper: None,
                point: Some(reading),
            })
        }
        (_, Claim::Infeasible) => {
            let (lp, _) = root_program(ctx.view(), Some(&plane), Norm::L1, Tightening::NONE);
            let bound = lp.safe_bound(multipliers_of(cert)?, false)?;
            if !Signed::is_positive(&bound) {
                return reject(format!(
                    "the combination of constraints is no contradiction (bound {:e} <= 0)",
                    Scalar::to_f64(&bound)
                ));
            }
            Ok(Accepted {
                claim: Claim::Infeasible,
                lower: None,
                upper: None,
                point: None,
            })
        }
        (Problem::NearestL1 | Problem::NearestLinf, Claim::Optimal) => {
            let (q, reading) = point_part(ctx)?;
            let upper = distance(ctx, &q, norm);
            let (lp, _) = root_program(ctx.view(), Some(&plane), norm, Tightening::NONE);
            // A distance is never negative, whatever the multipliers say.
            let lower = std::cmp::max(
                lp.safe_bound(multipliers_of(cert)?, true)?,
                <Rational as Zero>::zero(),
            );
            if lower > upper {
                // Impossible when both are proved; kept as a guard on the checker itself.
                return reject("the lower bound exceeds the distance of a feasible point");
            }
            check_interval(cert.interval.as_ref(), Some(&lower), Some(&upper))?;
            Ok(Accepted {
                claim: Claim::Optimal,
                lower: Some(lower),
                upper: Some(upper),
                point: Some(reading),
            })
        }
        (p, c) => reject(format!("claim {c:?} does not answer problem {}", p.name())),
    }
}

fn check_ball(ctx: &Context, cert: &Certificate) -> Result<Accepted, Rejection> {
    if cert.claim != Claim::Ball {
        return reject(format!(
            "claim {:?} does not answer problem chebyshev",
            cert.claim
        ));
    }
    let c = point_of(ctx, cert)?;
    let Some(r) = cert.radius.filter(|r| r.is_finite() && *r >= 0.0) else {
        return reject("a ball needs a finite non-negative radius");
    };
    let norms = composed_row_norms(ctx.model.net(), &ctx.derived.pattern, ctx.m);
    let thresholds: Vec<Dyadic> = norms
        .iter()
        .map(|&(_, upper)| Dyadic::from_f64(upper).and_then(|u| u.mul_f64(r)))
        .collect::<Option<_>>()
        .ok_or_else(|| Rejection("a bound on the norm of a region's row overflows f64".into()))?;
    let zero = vec![0.0; c.len()];
    let exact = || c.iter().map(|&v| Rational::from_f64(v)).collect::<Vec<_>>();
    check_region(ctx, &c, &zero, &exact, &thresholds, None)?;
    check_domain(ctx.domain, &c, &zero, &|i| Rational::from_f64(c[i]), r)?;
    let lower = Rational::from_f64(r);
    let upper = match cert.multipliers.as_deref() {
        Some(y) => {
            let (lp, _) = chebyshev_program(ctx.view(), &norms, NormSide::Outer, Tightening::NONE);
            // min −r >= bound, so r <= −bound.
            let bound = lp.safe_bound(y, true)?;
            let upper = -bound;
            if upper < lower {
                return reject("the upper bound on the radius is below the checked ball");
            }
            Some(upper)
        }
        None => None,
    };
    check_interval(cert.interval.as_ref(), Some(&lower), upper.as_ref())?;
    Ok(Accepted {
        claim: Claim::Ball,
        lower: Some(lower),
        upper,
        point: Some(c),
    })
}

fn check_facet(ctx: &Context, cert: &Certificate) -> Result<Accepted, Rejection> {
    let Some((layer, neuron)) = cert.constraint else {
        return reject("a facet question needs a constraint");
    };
    let labels = constraint_labels(&ctx.derived.pattern, ctx.m);
    let Some(index) = labels.iter().position(|&l| l == (layer, neuron)) else {
        return reject(format!(
            "(layer {layer}, neuron {neuron}) is not a constraint of the region seen from layer {}",
            ctx.m + 1
        ));
    };
    if labels.iter().filter(|&&l| l == (layer, neuron)).count() > 1 {
        return reject(two_faces(layer, neuron));
    }
    match cert.claim {
        Claim::Facet => {
            let p = point_of(ctx, cert)?;
            let zero = vec![0.0; p.len()];
            let exact = || p.iter().map(|&v| Rational::from_f64(v)).collect::<Vec<_>>();
            check_region(ctx, &p, &zero, &exact, &[], Some(index))?;
            check_domain(ctx.domain, &p, &zero, &|i| Rational::from_f64(p[i]), 0.0)?;
        }
        Claim::Redundant => {
            let (lp, _, _) = facet_program(ctx.view(), layer - 1, neuron, Tightening::NONE);
            let bound = lp.safe_bound(multipliers_of(cert)?, true)?;
            if Signed::is_negative(&bound) {
                return reject(format!(
                    "the bound {:e} on the constraint's minimum is negative",
                    Scalar::to_f64(&bound)
                ));
            }
        }
        c => return reject(format!("claim {c:?} does not answer problem facet")),
    }
    Ok(Accepted {
        claim: cert.claim,
        lower: None,
        upper: None,
        point: None,
    })
}
