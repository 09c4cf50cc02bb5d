//! One neuron's root step in f64 with its bounds (items 1.–9. of the module's header), and
//! the directions and bias terms it reads.

use crate::dtd::{BiasMode, DtdSettings, NoRoot, RootOutcome, RootRule, Rule};
use crate::exact::filter::ErrorModel;
use crate::model::Affine;

/// Unit roundoff of f64 (round to nearest).
const U: f64 = f64::EPSILON / 2.0;
/// The smallest positive subnormal f64.
pub(super) const TINY: f64 = f64::from_bits(1);

/// A non-negative bound computed by a short formula (at most eight operations, four of them
/// products), rounded up past that formula's rounding and underflow. Never 0: a product of
/// non-zero terms can underflow to 0, so an exact zero is decided by the operands, where the
/// bound is used. A NaN (an overflowed bound) stays NaN, which every test of a bound reads as
/// no bound.
#[inline(always)]
pub(super) fn up(x: f64) -> f64 {
    x * (1.0 + 16.0 * U) + 4.0 * TINY
}

/// The rounding of a product `p = fl(x · y)` by (P): 0 where an operand is 0 (exact).
#[inline(always)]
pub(super) fn product_rounding(x: f64, y: f64, p: f64) -> f64 {
    if x == 0.0 || y == 0.0 {
        0.0
    } else {
        U * p.abs() + TINY
    }
}

/// A rule's direction `v_i = φ(w_i, a_i)` as [`root_step`](super::root_step) computes it,
/// with a bound on `|v_i − φ(w_i, A_i)|` for an input `A_i` within `e_a` of `a_i`.
#[derive(Clone, Copy)]
pub(super) enum Direction {
    /// `v = a` (rules `0` and `z`): the input's own bound.
    Input,
    /// `v = a 1[w >= 0]` (z+): the input's bound, or an exact 0.
    Positive,
    /// `v = a (1 + γ)` where `w >= 0`, `a` elsewhere: `c = fl(1 + γ)` within `c_err` of
    /// `1 + γ`, and `|fl(a c) − A (1 + γ)| <= ρ + |a| c_err + (|c| + c_err) e_a` with `ρ` the
    /// product's rounding (P).
    Gamma { c: f64, c_err: f64 },
    /// `v = w` (w²): exact.
    Weight,
    /// `v = a − lo` where `w >= 0`, `a − hi` elsewhere (zB): `e_a + u |v|` by (S).
    Box { lo: f64, hi: f64 },
}

impl Direction {
    pub(super) fn new(rule: &RootRule<f64>) -> Self {
        match rule.rule() {
            Rule::Zero | Rule::Z => Direction::Input,
            Rule::ZPlus => Direction::Positive,
            Rule::Gamma(gamma) => {
                let c = rule.one_plus_gamma();
                // 1 + γ rounded: exact when the rounding error (TwoSum) is 0.
                let exact = {
                    let back = c - 1.0;
                    (1.0 - (c - back)) + (gamma - back) == 0.0
                };
                Direction::Gamma {
                    c,
                    c_err: if exact { 0.0 } else { U * c.abs() },
                }
            }
            Rule::WSquare => Direction::Weight,
            Rule::ZBox { lo, hi } => Direction::Box { lo, hi },
            other => unreachable!("{other} has no root direction"),
        }
    }

    /// `(v_i, e_v,i)` for weight `w`, input `a` and its bound `e_a`.
    #[inline(always)]
    pub(super) fn at(self, w: f64, a: f64, a_err: f64) -> (f64, f64) {
        // The rules count a zero weight (either zero) as non-negative; weights are finite.
        let nonneg = w >= 0.0;
        match self {
            Direction::Input => (a, a_err),
            Direction::Positive if nonneg => (a, a_err),
            Direction::Positive => (0.0, 0.0),
            Direction::Gamma { c, c_err } if nonneg => {
                let v = a * c;
                if a == 0.0 && a_err == 0.0 {
                    return (v, 0.0);
                }
                let err = product_rounding(a, c, v) + a.abs() * c_err + (c.abs() + c_err) * a_err;
                (v, up(err))
            }
            Direction::Gamma { .. } => (a, a_err),
            Direction::Weight => (w, 0.0),
            Direction::Box { lo, hi } => {
                let v = a - if nonneg { lo } else { hi };
                // An exact difference of 0 has no rounding.
                if v == 0.0 && a_err == 0.0 {
                    return (v, 0.0);
                }
                (v, up(a_err + U * v.abs()))
            }
        }
    }
}

/// A bound on `|fl(β) − β|` for the bias term `β` that [`RootRule`] computes for bias `b`:
/// 0 where `β` is `0`, `b` or `b⁺` (exact), the roundings of (P) and (S) for γ's
/// `b + γ b⁺`, of (P) for w²'s `b²`.
pub(in crate::dtd) fn beta_error(rule: &RootRule<f64>, b: f64, bias: BiasMode, beta: f64) -> f64 {
    match bias {
        BiasMode::Ignore => return 0.0,
        BiasMode::Plain if rule.rule() != Rule::Zero => return 0.0,
        _ => {}
    }
    match rule.rule() {
        // `b + γ · 0 = b` exactly.
        Rule::Gamma(_) if b <= 0.0 => 0.0,
        Rule::Gamma(gamma) => {
            let p = gamma * b;
            up(product_rounding(gamma, b, p) + U * beta.abs())
        }
        Rule::WSquare if b == 0.0 => 0.0,
        Rule::WSquare => up(product_rounding(b, b, beta)),
        _ => 0.0,
    }
}

/// Per input of a layer, the sum that bounds the error of its relevance (9.), accumulated
/// term by term as `γ |w_ji tv_ji| + |w_ji| e_tv,ji` ([`ErrorModel::bound_of_sum`]), and
/// whether any term is not an exact 0 (a mask, not 0, where one is not).
pub(super) struct LowerSums {
    model: ErrorModel,
    sum: Vec<f64>,
    inexact: Vec<u64>,
}

impl LowerSums {
    /// The sums of a layer with `n` inputs and `neurons` neurons.
    pub(super) fn new(n: usize, neurons: usize) -> Self {
        Self {
            model: ErrorModel::new(neurons),
            sum: vec![0.0; n],
            inexact: vec![0; n],
        }
    }

    /// The term `1 · r` of input `i`'s relevance that an identity neuron passes whole, its
    /// relevance `r` within `r_err` of the exact one: a term of (D) with the weight 1 (an
    /// exact product), `γ |r| + r_err`. A relevance that is not certainly 0 makes the sum
    /// inexact.
    pub(super) fn pass_whole(&mut self, i: usize, r: f64, r_err: f64) {
        self.sum[i] += self.model.gamma() * r.abs() + r_err;
        self.inexact[i] = 1;
    }

    /// The bounds of (D), one per input.
    pub(super) fn bounds(self) -> Vec<f64> {
        self.sum
            .iter()
            .zip(&self.inexact)
            .map(|(&s, &inexact)| {
                if inexact != 0 {
                    self.model.bound_of_sum(s)
                } else {
                    0.0
                }
            })
            .collect()
    }
}

/// What a neuron's step adds to: the input relevances, their bounds' sums (where they are
/// bounded), and what the neuron passes on in all.
pub(super) type Passed<'a> = (&'a mut [f64], Option<&'a mut LowerSums>, &'a mut f64);

/// A layer's root rule as the bounded step applies it to each neuron (the f64 step of
/// [`root_step`](super::root_step), with the bounds of the module's header).
pub(super) struct RootLayer<'a> {
    affine: &'a Affine,
    rule: RootRule<f64>,
    dir: Direction,
    bias: BiasMode,
    threshold: f64,
    stabilizer: f64,
    /// Rule 0: the root is the origin, `t = 1`.
    origin: bool,
    /// The constants of (D) for a row's sum.
    sum_model: ErrorModel,
}

/// Where a kept root goes: its coordinates and their bounds, appended.
pub(super) type Kept<'a> = Option<(&'a mut Vec<f64>, &'a mut Vec<f64>)>;

impl<'a> RootLayer<'a> {
    pub(super) fn new(affine: &'a Affine, rule: Rule, settings: &DtdSettings) -> Self {
        let rule = RootRule::<f64>::new(rule);
        Self {
            affine,
            dir: Direction::new(&rule),
            origin: rule.rule() == Rule::Zero,
            rule,
            bias: settings.bias,
            threshold: settings.denominator_threshold,
            stabilizer: settings.stabilizer,
            sum_model: ErrorModel::new(affine.max_connected()),
        }
    }

    /// Neuron `j`'s step at `input` (values and bounds) with relevance `relevance` (value and
    /// bound): adds what it passes on to `to`, and its root (if any) and the root's bounds to
    /// `kept`; the outcome, whose point is left empty. `None` where a branch is in doubt.
    pub(super) fn neuron(
        &self,
        j: usize,
        input: (&[f64], &[f64]),
        relevance: (f64, f64),
        to: Passed<'_>,
        kept: Kept<'_>,
    ) -> Option<RootOutcome<f64>> {
        let args = (j, input, relevance, to, kept);
        // One copy of the step per direction, so that the rule is matched once per neuron.
        match self.dir {
            Direction::Input => self.along(|w, a, e| Direction::Input.at(w, a, e), args),
            Direction::Positive => self.along(|w, a, e| Direction::Positive.at(w, a, e), args),
            Direction::Gamma { c, c_err } => self.along(
                move |w, a, e| Direction::Gamma { c, c_err }.at(w, a, e),
                args,
            ),
            Direction::Weight => self.along(|w, a, e| Direction::Weight.at(w, a, e), args),
            Direction::Box { lo, hi } => {
                self.along(move |w, a, e| Direction::Box { lo, hi }.at(w, a, e), args)
            }
        }
    }

    #[inline(always)]
    #[allow(clippy::type_complexity)]
    fn along(
        &self,
        dir: impl Fn(f64, f64, f64) -> (f64, f64) + Copy,
        (j, (a, a_err), (r, r_err), (lower, sums, passed), kept): (
            usize,
            (&[f64], &[f64]),
            (f64, f64),
            Passed<'_>,
            Kept<'_>,
        ),
    ) -> Option<RootOutcome<f64>> {
        let row = self.affine.row(j);
        let w = row.values();
        let (listed, listed_err) = (row.gather(a), row.gather(a_err));
        let (wv, wv_err) = self.denominator_sum(dir, w, &listed, &listed_err);
        let (t, t_err) = if self.origin {
            (1.0, 0.0)
        } else {
            let b = *self.affine.bias(j);
            let beta = self.rule.beta(&b, self.bias);
            let beta_err = beta_error(&self.rule, b, self.bias, beta);
            match self.step(wv, wv_err + beta_err, beta, (r, r_err))? {
                Some(step) => step,
                None => return Some(RootOutcome::None(NoRoot::SmallDenominator)),
            }
        };
        let origin = self.origin;
        // (7.) for one coordinate: `tv` and its bound.
        let product = |wi: f64, ai: f64, ai_err: f64| -> (f64, f64) {
            let (v, v_err) = dir(wi, ai, ai_err);
            let tv = t * v;
            if v == 0.0 && v_err == 0.0 {
                // An exact 0 times `t`.
                return (tv, 0.0);
            }
            let rounding = if v == 0.0 { 0.0 } else { U * tv.abs() + TINY };
            (
                tv,
                up(rounding + (t.abs() + t_err) * v_err + v.abs() * t_err),
            )
        };
        // (8.): the root's coordinate and its bound (rule 0's root is the origin exactly,
        // whatever error `a` carries).
        let root = |ai: f64, ai_err: f64, tv: f64, tv_err: f64| -> (f64, f64) {
            if origin {
                return (0.0, 0.0);
            }
            let p = ai - tv;
            if ai_err == 0.0 && tv_err == 0.0 {
                // `tv` is then an exact 0, and `p` is `a`.
                return (p, 0.0);
            }
            (p, up(ai_err + tv_err + U * p.abs()))
        };
        // (9.): the term `w_i tv_i` of input `i`'s relevance, and its share of the bound.
        let gamma = sums.as_ref().map_or(0.0, |sums| sums.model.gamma());
        let pass = |wi: f64, tv: f64, tv_err: f64, li: &mut f64, si: &mut f64, ix: &mut u64| {
            let q = wi * tv;
            *li += q;
            *si += gamma * q.abs() + wi.abs() * tv_err;
            // An exact 0 unless `w` is not 0 and `tv` is not an exact 0 (its bound then is not
            // 0 either).
            *ix |= ((wi != 0.0) & (tv_err != 0.0)) as u64;
        };
        let mut sums = sums.map(|s| (&mut s.sum[..], &mut s.inexact[..]));
        if row.is_dense() {
            let inputs = w.iter().zip(a).zip(a_err);
            let kept = kept.map(|(points, errors)| {
                let start = points.len();
                // Zeros: rule 0's root, and the place of the others.
                points.resize(start + w.len(), 0.0);
                errors.resize(start + w.len(), 0.0);
                (&mut points[start..], &mut errors[start..])
            });
            // One loop for each of: a root to keep (not the origin) or not, input relevances
            // bounded or not.
            match (kept.filter(|_| !origin), sums) {
                (Some((points, errors)), Some((sum, inexact))) => {
                    let sums = lower.iter_mut().zip(sum.iter_mut()).zip(inexact.iter_mut());
                    let out = points.iter_mut().zip(errors.iter_mut());
                    for ((((&wi, &ai), &ai_err), ((li, si), ix)), (pi, pe)) in
                        inputs.zip(sums).zip(out)
                    {
                        let (tv, tv_err) = product(wi, ai, ai_err);
                        (*pi, *pe) = root(ai, ai_err, tv, tv_err);
                        pass(wi, tv, tv_err, li, si, ix);
                    }
                }
                (Some((points, errors)), None) => {
                    let out = points.iter_mut().zip(errors.iter_mut());
                    for ((((&wi, &ai), &ai_err), li), (pi, pe)) in
                        inputs.zip(lower.iter_mut()).zip(out)
                    {
                        let (tv, tv_err) = product(wi, ai, ai_err);
                        (*pi, *pe) = root(ai, ai_err, tv, tv_err);
                        *li += wi * tv;
                    }
                }
                (None, Some((sum, inexact))) => {
                    let sums = lower.iter_mut().zip(sum.iter_mut()).zip(inexact.iter_mut());
                    for (((&wi, &ai), &ai_err), ((li, si), ix)) in inputs.zip(sums) {
                        let (tv, tv_err) = product(wi, ai, ai_err);
                        pass(wi, tv, tv_err, li, si, ix);
                    }
                }
                (None, None) => {
                    for (((&wi, &ai), &ai_err), li) in inputs.zip(lower.iter_mut()) {
                        let tv = t * dir(wi, ai, ai_err).0;
                        *li += wi * tv;
                    }
                }
            }
        } else {
            let mut kept = kept.map(|(points, errors)| {
                // An input the row does not list has weight 0, which the rules' sign tests
                // count as non-negative.
                let start = points.len();
                for (&ai, &ai_err) in a.iter().zip(a_err) {
                    let (tv, tv_err) = product(0.0, ai, ai_err);
                    let (p, p_err) = root(ai, ai_err, tv, tv_err);
                    points.push(p);
                    errors.push(p_err);
                }
                (&mut points[start..], &mut errors[start..])
            });
            for (k, ((&wi, &ai), &ai_err)) in w.iter().zip(&*listed).zip(&*listed_err).enumerate() {
                let i = row.position(k);
                let (tv, tv_err) = product(wi, ai, ai_err);
                if let Some((points, errors)) = kept.as_mut() {
                    (points[i], errors[i]) = root(ai, ai_err, tv, tv_err);
                }
                match sums.as_mut() {
                    Some((sum, inexact)) => {
                        pass(wi, tv, tv_err, &mut lower[i], &mut sum[i], &mut inexact[i])
                    }
                    None => lower[i] += wi * tv,
                }
            }
        }
        *passed += t * wv;
        Some(RootOutcome::Root {
            point: Vec::new(),
            t,
        })
    }

    /// `w · v` over the listed weights as the f64 code sums it (four partial sums), and its
    /// bound (2.): 0 where every product is an exact 0. Rule 0 needs no bound (no
    /// denominator).
    #[inline(always)]
    fn denominator_sum(
        &self,
        dir: impl Fn(f64, f64, f64) -> (f64, f64),
        w: &[f64],
        a: &[f64],
        a_err: &[f64],
    ) -> (f64, f64) {
        // The value, as the f64 step sums it.
        let mut lanes = [0.0f64; 4];
        let (w4, a4) = (w.chunks_exact(4), a.chunks_exact(4));
        let (w_rest, a_rest) = (w4.remainder(), a4.remainder());
        for (wc, ac) in w4.zip(a4) {
            for (lane, (&wi, &ai)) in lanes.iter_mut().zip(wc.iter().zip(ac)) {
                *lane += wi * dir(wi, ai, 0.0).0;
            }
        }
        for (&wi, &ai) in w_rest.iter().zip(a_rest) {
            lanes[0] += wi * dir(wi, ai, 0.0).0;
        }
        let wv = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
        if self.origin {
            return (wv, 0.0);
        }
        // Its bound, in a pass of its own: per lane, `Σ γ |w_i v_i| + |w_i| e_v,i` (as
        // `ErrorModel::bound_of_sum` reads it) and whether a product is not an exact 0.
        let gamma = self.sum_model.gamma();
        let mut spread = [0.0f64; 4];
        let mut inexact = [0u64; 4];
        let (w4, a4, e4) = (w.chunks_exact(4), a.chunks_exact(4), a_err.chunks_exact(4));
        let (w_rest, a_rest, e_rest) = (w4.remainder(), a4.remainder(), e4.remainder());
        let term = |s: &mut f64, x: &mut u64, wi: f64, ai: f64, ai_err: f64| {
            let (v, v_err) = dir(wi, ai, ai_err);
            *s += gamma * (wi * v).abs() + wi.abs() * v_err;
            *x |= ((wi != 0.0) & ((v != 0.0) | (v_err != 0.0))) as u64;
        };
        for ((wc, ac), ec) in w4.zip(a4).zip(e4) {
            for ((s, x), ((&wi, &ai), &ai_err)) in spread
                .iter_mut()
                .zip(inexact.iter_mut())
                .zip(wc.iter().zip(ac).zip(ec))
            {
                term(s, x, wi, ai, ai_err);
            }
        }
        for ((&wi, &ai), &ai_err) in w_rest.iter().zip(a_rest).zip(e_rest) {
            term(&mut spread[0], &mut inexact[0], wi, ai, ai_err);
        }
        if inexact == [0; 4] {
            return (wv, 0.0);
        }
        let spread = (spread[0] + spread[1]) + (spread[2] + spread[3]);
        (wv, self.sum_model.bound_of_sum(spread))
    }

    /// The step `t` and its bound (3.–6.) from `w · v` and the bias term `β`, within `sum_err`
    /// together: `Some(None)` where the denominator is certainly at or below the threshold
    /// (no root), `None` where a branch is in doubt.
    fn step(
        &self,
        wv: f64,
        sum_err: f64,
        beta: f64,
        (r, r_err): (f64, f64),
    ) -> Option<Option<(f64, f64)>> {
        let s = wv + beta;
        // A rounded sum of 0 is exact (`x + y` rounds to 0 only where `x = −y`).
        let s_err = if sum_err == 0.0 && s == 0.0 {
            0.0
        } else {
            up(sum_err + U * s.abs())
        };
        // `stabilize`, on the sign of the exact sum.
        let (d, d_err) = if self.stabilizer == 0.0 {
            (s, s_err)
        } else {
            let negative = s < 0.0;
            let certain = s_err == 0.0
                || if negative {
                    (s + s_err).next_up() < 0.0
                } else {
                    (s - s_err).next_down() >= 0.0
                };
            if !certain {
                return None;
            }
            let d = if negative {
                s - self.stabilizer
            } else {
                s + self.stabilizer
            };
            (d, up(s_err + U * d.abs()))
        };
        if !(d.is_finite() && d_err.is_finite()) {
            return None;
        }
        // `|d| <= θ`, on the exact denominator.
        let floor = if d_err == 0.0 {
            if d.abs() <= self.threshold {
                return Some(None);
            }
            d.abs()
        } else {
            let floor = (d.abs() - d_err).next_down();
            if floor > self.threshold {
                floor
            } else if (d.abs() + d_err).next_up() <= self.threshold {
                return Some(None);
            } else {
                return None;
            }
        };
        if floor <= 0.0 {
            return None;
        }
        let t = r / d;
        let q = t.abs() * (1.0 + 4.0 * U) + 2.0 * TINY;
        let t_err = up(2.0 * U * t.abs() + TINY + (r_err + q * d_err) / floor);
        t_err.is_finite().then_some(Some((t, t_err)))
    }
}
