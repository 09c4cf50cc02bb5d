//! Certified answers to region questions: solve in floating point, write the evidence as a
//! [`Certificate`], and keep the answer only if the exact checker accepts it.
//!
//! For a point the solver works on a tightened program (every constraint moved inwards by a
//! small margin, except the face the root hyperplane may coincide with), so that its
//! slightly-off solution still lies inside the exact region once projected exactly onto the
//! hyperplane; margins grow from 1e-9 to 1e-5 until the check passes. Lower bounds and
//! infeasibility come from the explicitly solved dual or Farkas program of the untightened
//! program ([`super::dual_program`]); microlp reports no duals of its own. `repair.rs` makes a
//! solver's duals into multipliers the exact bound accepts.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;

pub mod question;
mod repair;

pub(crate) use repair::repaired;
use repair::signed;

use super::screened::{self, layered_multipliers, ScreenOutcome};
use super::{dual_program, multipliers, solve, solve_with_duals, SolveOptions, Solved};
use crate::check::{
    check_with, rational_text, Accepted, Certificate, Claim, Derived, ExplanationRef, Interval,
    Memo, ModelRef, Problem, RelevanceRef, SampleRef, FORMAT,
};
use crate::exact::program::LinearProgram;
use crate::exact::{Rational, Scalar};
use crate::model::Model;
use crate::region::composed::ComposedRows;
use crate::region::problem::{
    add_root_row, chebyshev_program, composed_row_norms, facet_program, root_program, two_faces,
    Domain, Layout, Norm, NormSide, RegionView, RootPlane, Tightening,
};
use crate::region::Centre;

/// Margins tried for the tightened point programs, in order.
const MARGINS: [f64; 3] = [1e-9, 1e-7, 1e-5];
/// The largest relative gap `(upper − lower) / (1 + upper)` of a certified distance that the
/// reduced programs of constraint generation may leave; a wider one goes to the full programs.
const SCREENED_GAP: f64 = 1e-6;
/// Floors on one-sided reduced costs in dual programs (see [`dual_program`]), in order. A
/// coordinate free in the domain has two one-sided moves `p_i` and `n_i` whose reduced costs
/// are each other's negatives, so any floor above 0 leaves no dual solution: the last try has
/// none, and the checker takes what its rounding leaves.
const DUAL_MARGINS: [f64; 4] = [1e-9, 1e-7, 1e-5, 0.0];

/// One question about one sample's region.
#[derive(Clone, Debug)]
pub struct RegionQuestion {
    /// The sample's row in the inputs file, 0-based; recorded in the certificate.
    pub sample_index: usize,
    /// The network input `x` whose activation pattern defines the region.
    pub sample: Vec<f64>,
    /// 1-based: the point lives in this layer's input space.
    pub layer: usize,
    /// The neuron of `layer` whose root hyperplane is asked about (root questions).
    pub neuron: Option<usize>,
    /// Where `R_j`, the relevance that defines the hyperplane `w_j·ã = w_j·a − R_j`, comes
    /// from (root questions).
    pub relevance: Option<QuestionRelevance>,
    /// The domain box: `--domain` (or none) at layer 1, the layer's own domain above.
    pub domain: Domain,
    /// The question asked.
    pub problem: Problem,
    /// The constraint (1-based layer, neuron) of a facet question.
    pub constraint: Option<(usize, usize)>,
    /// A layer input to ask about instead of the sample's own activation (see
    /// [`Certificate::centre`]).
    pub centre: Option<Vec<f64>>,
}

/// Where a root question's relevance `R_j` comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum QuestionRelevance {
    /// The neuron's relevance in the sample's explanation under these rules, computed exactly
    /// (in rationals) by the certifier and again by the checker.
    Explained(ExplanationRef),
    /// Given with the question, exactly: only at a given centre (full-backward DTD), where
    /// the relevance comes from the recursion, not from the sample's explanation.
    Given(Rational),
}

/// The answer, with the certificate that proves it (or why there is none).
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "answer", rename_all = "kebab-case")]
pub enum Answer {
    /// A valid root exists (exists), or the nearest one is within `[lower, upper]`.
    Found {
        /// The checked root, projected exactly onto the hyperplane and rounded to f64.
        point: Vec<f64>,
        /// The proved lower end of the nearest distance, rounded to f64 (nearest only).
        lower: Option<f64>,
        /// The distance of `point`, rounded to f64 (nearest only).
        upper: Option<f64>,
    },
    /// Proved: no point of the region and domain lies on the hyperplane.
    None,
    /// Chebyshev: a ball of radius `lower` fits; no ball larger than `upper` does.
    Ball {
        /// The ball's centre, in the layer's input space.
        centre: Vec<f64>,
        /// The checked radius, rounded to f64.
        lower: f64,
        /// The proved upper bound on the largest radius, rounded to f64; `None` when no
        /// multipliers proved one.
        upper: Option<f64>,
    },
    /// Facet: the constraint is (not) redundant.
    Facet {
        /// `true`: multipliers prove the constraint redundant; `false`: a point violates
        /// it alone.
        redundant: bool,
    },
    /// No certified answer; `reason` says why (time limit, solver failure, a rejected
    /// certificate).
    Unknown {
        /// Why no answer was certified.
        reason: String,
    },
}

/// A certified answer and its evidence.
#[derive(Clone, Debug)]
pub struct Certified {
    /// The answer, certified unless it is [`Answer::Unknown`].
    pub answer: Answer,
    /// `None` for Unknown answers.
    pub certificate: Option<Certificate>,
    /// Wall time spent solving and checking, in seconds.
    pub seconds: f64,
    /// Whether the reduced programs of constraint generation gave the answer (else the full
    /// programs did, or nothing did).
    pub screened: bool,
    /// The root plane's relevance `R_j`, exactly (root questions whose relevance could be
    /// derived).
    pub relevance: Option<Rational>,
}

/// What a region question is posed on: a model, its solve options, the file names to record.
pub struct Certifier<'a> {
    /// The network whose regions are asked about.
    pub model: &'a Model,
    /// The backend and time limit of every solve (`--lp-backend`, `--lp-time-limit`).
    pub opts: SolveOptions,
    /// Recorded as the certificates' `model.path`: where `check-cert` finds the model (an
    /// absolute path).
    pub model_path: Option<String>,
    /// Recorded as the certificates' `sample.source` (an absolute path).
    pub inputs_path: Option<String>,
    /// What the last region asked about keeps for the next question on it.
    pub cache: RegionCache,
}

/// The parts of one region's programs that do not depend on the root hyperplane: its composed
/// rows (for screening) and its layered root programs without the root row (for the exact
/// multipliers). Questions on the same region (same layer, same centre) reuse them, and the
/// checker's derivations (pattern, exact layer input, exact relevances) of the last sample.
#[derive(Default)]
pub struct RegionCache {
    last: Mutex<Option<Arc<CachedRegion>>>,
    full_only: bool,
    memo: Memo,
}

struct CachedRegion {
    layer: usize,
    centre: Centre,
    domain: Domain,
    rows: ComposedRows,
    /// Per norm (L1, L∞): `root_program(view, None, norm, NONE)`, built when first needed.
    programs: [Mutex<Option<Arc<RootBase>>>; 2],
}

/// A layered root program without its root row, and its layout.
type RootBase = (LinearProgram, Layout);

/// The most entries (rows × layer width) of a region's composed rows that constraint
/// generation builds (2^24, 128 MiB); larger regions go to the full layered programs.
const MAX_COMPOSED_ENTRIES: usize = 1 << 24;

impl RegionCache {
    /// A cache that sends every root question to the full programs, skipping constraint
    /// generation (for comparisons).
    pub fn full_programs() -> Self {
        RegionCache {
            full_only: true,
            ..Default::default()
        }
    }

    fn region(&self, view: RegionView) -> Option<Arc<CachedRegion>> {
        let rows = view.pattern.constraints_from(view.layer);
        if rows.saturating_mul(view.centre.len()) > MAX_COMPOSED_ENTRIES {
            return None;
        }
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = last.as_ref() {
            if r.layer == view.layer && r.domain == view.domain && r.centre == *view.centre {
                return Some(r.clone());
            }
        }
        let r = Arc::new(CachedRegion {
            layer: view.layer,
            centre: view.centre.clone(),
            domain: view.domain,
            rows: ComposedRows::new(view.net, view.pattern, view.layer, view.centre.approx()),
            programs: Default::default(),
        });
        *last = Some(r.clone());
        Some(r)
    }
}

impl CachedRegion {
    /// The full layered root program of `plane` in `norm`, untightened.
    fn root_program(&self, view: RegionView, plane: &RootPlane, norm: Norm) -> LinearProgram {
        let slot = &self.programs[usize::from(norm == Norm::Linf)];
        let base = {
            let mut p = slot.lock().unwrap_or_else(|e| e.into_inner());
            p.get_or_insert_with(|| Arc::new(root_program(view, None, norm, Tightening::NONE)))
                .clone()
        };
        let (mut lp, layout) = (base.0.clone(), &base.1);
        add_root_row(&mut lp, layout, view, plane);
        lp
    }
}

impl Certifier<'_> {
    /// The region of the question (pattern and exact layer input), derived as the checker
    /// derives it.
    fn prepare(&self, q: &RegionQuestion) -> Result<Arc<Derived>, String> {
        self.cache
            .memo
            .derive(self.model, &q.sample, q.layer, q.centre.as_deref())
            .map_err(|r| r.0)
    }

    /// The root plane of a root question, with its relevance exactly.
    fn plane(&self, q: &RegionQuestion, derived: &Derived) -> Result<RootPlane, String> {
        let neuron = q.neuron.ok_or("a root question needs a neuron")?;
        let layer = &self.model.net().layers()[derived.layer_index()];
        if neuron >= layer.affine.out_dim() {
            return Err(format!(
                "neuron {neuron} is out of range: layer {} has {} neurons",
                q.layer,
                layer.affine.out_dim()
            ));
        }
        let relevance = match q
            .relevance
            .as_ref()
            .ok_or("a root question needs a relevance")?
        {
            QuestionRelevance::Explained(e) => {
                let relevances = derived.relevances(self.model, e).map_err(|r| r.0)?;
                // A max-pool window's entries share the window's relevance.
                relevances[neuron / layer.max_pool.unwrap_or(1)].clone()
            }
            QuestionRelevance::Given(r) => r.clone(),
        };
        Ok(RootPlane { neuron, relevance })
    }

    /// The certificate's record of a root plane's relevance (its exact text, formatted once
    /// per question: thousands of digits for a deep layer's relevance).
    fn relevance_ref(&self, q: &RegionQuestion, plane: &RootPlane) -> RelevanceRef {
        RelevanceRef {
            value: rational_text(&plane.relevance),
            value_f64: Some(Scalar::to_f64(&plane.relevance)).filter(|v| v.is_finite()),
            explanation: match &q.relevance {
                Some(QuestionRelevance::Explained(e)) => Some(e.clone()),
                _ => None,
            },
        }
    }

    /// A certificate of `q` with `claim` and no evidence yet; `plane` is the root plane's
    /// neuron and relevance (root questions).
    fn skeleton(
        &self,
        q: &RegionQuestion,
        plane: Option<(usize, &RelevanceRef)>,
        claim: Claim,
    ) -> Certificate {
        Certificate {
            format: FORMAT.to_string(),
            model: ModelRef {
                fingerprint: self.model.fingerprint().to_string(),
                path: self.model_path.clone(),
            },
            sample: SampleRef {
                index: q.sample_index,
                values: q.sample.clone(),
                source: self.inputs_path.clone(),
            },
            layer: q.layer,
            neuron: plane.map(|p| p.0),
            relevance: plane.map(|p| p.1.clone()),
            domain: q.domain,
            problem: q.problem,
            claim,
            constraint: q.constraint,
            centre: q.centre.clone(),
            point: None,
            radius: None,
            multipliers: None,
            interval: None,
            tool: Some(format!("dtdcert {}", env!("CARGO_PKG_VERSION"))),
        }
    }

    /// Answers `q` with a checked certificate, or Unknown.
    pub fn answer(&self, q: &RegionQuestion) -> Certified {
        let started = Instant::now();
        let mut relevance = None;
        let (answer, certificate, screened) = match self.answer_inner(q, &mut relevance) {
            Ok((a, c, screened)) => (a, Some(c), screened),
            Err(reason) => (Answer::Unknown { reason }, None, false),
        };
        Certified {
            answer,
            certificate,
            seconds: started.elapsed().as_secs_f64(),
            screened,
            relevance,
        }
    }

    /// The answer, its certificate, and whether constraint generation gave it; `relevance`
    /// receives the root plane's relevance once it is derived.
    fn answer_inner(
        &self,
        q: &RegionQuestion,
        relevance: &mut Option<Rational>,
    ) -> Result<(Answer, Certificate, bool), String> {
        let derived = self.prepare(q)?;
        let view = RegionView {
            net: self.model.net(),
            pattern: &derived.pattern,
            layer: derived.layer_index(),
            centre: &derived.centre,
            domain: q.domain,
        };
        match q.problem {
            Problem::Exists | Problem::NearestL1 | Problem::NearestLinf => {
                let plane = self.plane(q, &derived)?;
                *relevance = Some(plane.relevance.clone());
                self.root_question(q, view, &plane)
            }
            Problem::Chebyshev => self.ball_question(q, view).map(|(a, c)| (a, c, false)),
            Problem::Facet => self.facet_question(q, view).map(|(a, c)| (a, c, false)),
        }
    }

    /// Runs the checker on a certificate: the answer stands only if it passes.
    fn check(&self, cert: &Certificate) -> Result<Accepted, crate::exact::program::Rejection> {
        check_with(self.model, &self.cache.memo, cert)
    }

    /// Runs the checker on a certificate the producer wrote: the answer stands only if it
    /// passes.
    fn checked(&self, cert: Certificate) -> Result<(Accepted, Certificate), String> {
        match self.check(&cert) {
            Ok(a) => Ok((a, cert)),
            Err(r) => Err(format!("certificate rejected: {r}")),
        }
    }

    /// Solves the dual (or Farkas) program of `lp` with growing margins until `accept` takes
    /// the multipliers (it runs the exact checker); returns what it accepted, or why nothing
    /// was.
    fn with_multipliers<T>(
        &self,
        lp: &LinearProgram,
        farkas: bool,
        mut accept: impl FnMut(Vec<f64>) -> Result<T, String>,
    ) -> Result<T, String> {
        let mut last = String::from("no dual program was solved");
        for margin in DUAL_MARGINS {
            let dual = dual_program(lp, farkas, margin);
            let y = match solve(&dual, &self.opts) {
                Solved::Optimal { x, .. } => multipliers(lp, &x),
                Solved::TimedOut => {
                    return Err("the LP time limit was reached (dual program)".into())
                }
                Solved::Infeasible => {
                    last = "the dual program is infeasible".into();
                    continue;
                }
                Solved::Unbounded => return Err("the dual program is unbounded".into()),
                Solved::Failed(e) => {
                    last = format!("the solver failed on the dual program: {e}");
                    continue;
                }
            };
            match accept(signed(lp, y)) {
                Ok(t) => return Ok(t),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn root_question(
        &self,
        q: &RegionQuestion,
        view: RegionView,
        plane: &RootPlane,
    ) -> Result<(Answer, Certificate, bool), String> {
        let neuron = plane.neuron;
        let rref = self.relevance_ref(q, plane);
        let skeleton = |claim| self.skeleton(q, Some((neuron, &rref)), claim);
        let norm = if q.problem == Problem::NearestLinf {
            Norm::Linf
        } else {
            Norm::L1
        };
        // 0. A root hyperplane that coincides with its own neuron's face: the neuron's
        // pre-activation is the constant `w·a + b − R` on the plane, and when that constant
        // has the wrong sign, two rows prove that no root is valid.
        // Infeasibility is proved on the L1 program whatever the norm: the checker rebuilds
        // that one for every "infeasible" claim.
        let (farkas_lp, _) = root_program(view, Some(plane), Norm::L1, Tightening::NONE);
        if let Some(y) = own_face_contradiction(&farkas_lp, view, plane) {
            let mut cert = skeleton(Claim::Infeasible);
            cert.multipliers = Some(y);
            if let Ok((_, cert)) = self.checked(cert) {
                return Ok((Answer::None, cert, false));
            }
        }
        // 1. The reduced programs of constraint generation, when they settle and check.
        if !self.cache.full_only {
            if let Some(found) = self.screened_root(q, view, plane, &rref, norm) {
                return found.map(|(a, c)| (a, c, true));
            }
        }
        // 2. A point, from tightened full programs.
        let mut last_reason = String::new();
        let mut proven_point: Option<(Accepted, Vec<f64>)> = None;
        let mut tight_infeasible = false;
        // Row duals of the solve that gave the point (HiGHS): multipliers for free.
        let mut duals: Option<Vec<f64>> = None;
        for margin in MARGINS {
            let tightening = Tightening {
                margin,
                spare: Some((view.layer, neuron)),
            };
            let (lp, layout) = root_program(view, Some(plane), norm, tightening);
            let (solved, y) = solve_with_duals(&lp, &self.opts);
            match solved {
                Solved::Optimal { x, .. } => {
                    duals = y;
                    let point = layout.point(view.centre.approx(), &x);
                    let mut cert = skeleton(Claim::Feasible);
                    cert.point = Some(point.clone());
                    match self.check(&cert) {
                        Ok(a) => {
                            proven_point = Some((a, point));
                            break;
                        }
                        Err(r) => last_reason = format!("certificate rejected: {r}"),
                    }
                }
                Solved::Infeasible => {
                    tight_infeasible = true;
                    break;
                }
                Solved::TimedOut => return Err("the LP time limit was reached".into()),
                Solved::Unbounded => return Err("the LP is unbounded".into()),
                Solved::Failed(e) => last_reason = format!("the solver failed: {e}"),
            }
        }
        // The centre itself, projected onto the plane, is valid whenever the region has room
        // along `w` (always when R = 0): a candidate when the tightened programs found none.
        if proven_point.is_none() {
            let mut cert = skeleton(Claim::Feasible);
            cert.point = Some(view.centre.approx().to_vec());
            if let Ok(a) = self.check(&cert) {
                proven_point = Some((a, view.centre.approx().to_vec()));
            }
        }
        let Some((accepted, point)) = proven_point else {
            // 3. No point: try to prove that none exists.
            let cert = self
                .with_multipliers(&farkas_lp, true, |y| {
                    let mut cert = skeleton(Claim::Infeasible);
                    cert.multipliers = Some(y);
                    self.checked(cert).map(|(_, c)| c)
                })
                .map_err(|e| {
                    if tight_infeasible {
                        e
                    } else {
                        format!("{last_reason}; {e}")
                    }
                })?;
            return Ok((Answer::None, cert, false));
        };
        if q.problem == Problem::Exists {
            let mut cert = skeleton(Claim::Feasible);
            cert.point = Some(point);
            return Ok((found(accepted, &mut cert), cert, false));
        }
        // 4. Nearest: a lower bound from the solver's duals when they prove one, else from the
        // dual program.
        let (exact_lp, _) = root_program(view, Some(plane), norm, Tightening::NONE);
        let optimal_with = |y: Vec<f64>| self.optimal(q, (neuron, &rref), &point, y);
        let from_duals = duals.and_then(|y| {
            let negated = y.iter().map(|v| -v).collect();
            [y, negated]
                .into_iter()
                .find_map(|y| optimal_with(repaired(&exact_lp, y)).ok())
        });
        let (acc, mut cert) = match from_duals {
            Some(checked) => checked,
            None => self.with_multipliers(&exact_lp, false, &optimal_with)?,
        };
        Ok((found(acc, &mut cert), cert, false))
    }

    /// An "optimal" certificate for `point` with multipliers `y`, if the checker accepts it.
    fn optimal(
        &self,
        q: &RegionQuestion,
        plane: (usize, &RelevanceRef),
        point: &[f64],
        y: Vec<f64>,
    ) -> Result<(Accepted, Certificate), String> {
        let mut cert = self.skeleton(q, Some(plane), Claim::Optimal);
        cert.point = Some(point.to_vec());
        cert.multipliers = Some(y);
        self.checked(cert)
    }

    /// The root question by constraint generation ([`screened`]): `None` when it does not
    /// settle or its evidence does not check, and the full programs must answer.
    fn screened_root(
        &self,
        q: &RegionQuestion,
        view: RegionView,
        plane: &RootPlane,
        rref: &RelevanceRef,
        norm: Norm,
    ) -> Option<Result<(Answer, Certificate), String>> {
        let region = self.cache.region(view)?;
        for margin in MARGINS {
            let s = match screened::solve_root(view, &region.rows, plane, norm, margin, &self.opts)
            {
                ScreenOutcome::Point(s) => s,
                ScreenOutcome::TimedOut => {
                    return Some(Err("the LP time limit was reached".into()))
                }
                ScreenOutcome::Infeasible | ScreenOutcome::GaveUp(_) => return None,
            };
            let mut cert = self.skeleton(q, Some((plane.neuron, rref)), Claim::Feasible);
            cert.point = Some(s.point.clone());
            let Ok(accepted) = self.check(&cert) else {
                continue;
            };
            if q.problem == Problem::Exists {
                return Some(Ok((found(accepted, &mut cert), cert)));
            }
            let duals = s.duals?;
            let exact_lp = region.root_program(view, plane, norm);
            let negated: Vec<f64> = duals.iter().map(|v| -v).collect();
            for y in [duals, negated] {
                let y = layered_multipliers(view, &region.rows, norm, &s.kept, &y);
                let Ok((acc, mut cert)) =
                    self.optimal(q, (plane.neuron, rref), &s.point, repaired(&exact_lp, y))
                else {
                    continue;
                };
                let (lo, hi) = (acc.lower.as_ref(), acc.upper.as_ref());
                let tight = match (lo.map(Scalar::to_f64), hi.map(Scalar::to_f64)) {
                    (Some(l), Some(u)) => u - l <= SCREENED_GAP * (1.0 + u.abs()),
                    _ => false,
                };
                if tight {
                    return Some(Ok((found(acc, &mut cert), cert)));
                }
            }
            return None;
        }
        None
    }

    fn ball_question(
        &self,
        q: &RegionQuestion,
        view: RegionView,
    ) -> Result<(Answer, Certificate), String> {
        let norms = composed_row_norms(view.net, view.pattern, view.layer);
        let (inner, layout) = chebyshev_program(view, &norms, NormSide::Inner, Tightening::NONE);
        let r_var = layout.scalar.expect("a radius variable");
        let (centre, radius) = match solve(&inner, &self.opts) {
            Solved::Optimal { x, .. } => (
                layout.centre.iter().map(|&i| x[i]).collect::<Vec<f64>>(),
                x[r_var],
            ),
            Solved::Unbounded => return Err("the region contains arbitrarily large balls".into()),
            Solved::Infeasible => return Err("the Chebyshev program is infeasible".into()),
            Solved::TimedOut => return Err("the LP time limit was reached".into()),
            Solved::Failed(e) => return Err(format!("the solver failed: {e}")),
        };
        let (outer, _) = chebyshev_program(view, &norms, NormSide::Outer, Tightening::NONE);
        let y = self
            .with_multipliers(&outer, false, |y| {
                let mut probe = self.skeleton(q, None, Claim::Ball);
                probe.point = Some(centre.clone());
                probe.radius = Some(0.0);
                probe.multipliers = Some(y.clone());
                self.check(&probe).map(|_| y).map_err(|r| r.0)
            })
            .ok();
        // Shrink the radius until the ball checks (the solver's ball touches faces).
        let mut last = String::new();
        for shrink in [1e-9, 1e-7, 1e-5, 1e-3] {
            let mut cert = self.skeleton(q, None, Claim::Ball);
            cert.point = Some(centre.clone());
            cert.radius = Some((radius * (1.0 - shrink)).max(0.0));
            cert.multipliers = y.clone();
            match self.check(&cert) {
                Ok(acc) => {
                    cert.interval = Some(interval(acc.lower.as_ref(), acc.upper.as_ref()));
                    return Ok((
                        Answer::Ball {
                            centre: centre.clone(),
                            lower: acc.lower.as_ref().map(Scalar::to_f64).unwrap_or(0.0),
                            upper: acc.upper.as_ref().map(Scalar::to_f64),
                        },
                        cert,
                    ));
                }
                Err(r) => last = r.0,
            }
        }
        Err(format!("certificate rejected: {last}"))
    }

    fn facet_question(
        &self,
        q: &RegionQuestion,
        view: RegionView,
    ) -> Result<(Answer, Certificate), String> {
        let (layer, neuron) = q.constraint.ok_or("a facet question needs a constraint")?;
        let (k, j) = (layer.wrapping_sub(1), neuron);
        let faces = if k >= view.layer && k < view.net.layers().len() {
            view.pattern
                .faces(k)
                .iter()
                .filter(|f| f.label() == j)
                .count()
        } else {
            0
        };
        if faces == 0 {
            return Err(format!(
                "(layer {layer}, neuron {neuron}) is not a constraint of the region seen from layer {}",
                view.layer + 1
            ));
        }
        if faces > 1 {
            return Err(two_faces(layer, neuron));
        }
        // 1. A witness: a point strictly inside every other constraint (tightened) at which
        // the constraint's signed pre-activation is negative.
        let mut last = String::from("no witness found");
        for margin in MARGINS {
            let tightening = Tightening {
                margin,
                spare: None,
            };
            let (mut lp, layout, v) = facet_program(view, k, j, tightening);
            lp.lower[v] = -1.0;
            lp.upper[v] = -margin;
            match solve(&lp, &self.opts) {
                Solved::Optimal { x, .. } => {
                    let point = layout.point(view.centre.approx(), &x);
                    let mut cert = self.skeleton(q, None, Claim::Facet);
                    cert.point = Some(point);
                    match self.check(&cert) {
                        Ok(_) => return Ok((Answer::Facet { redundant: false }, cert)),
                        Err(r) => last = format!("certificate rejected: {r}"),
                    }
                }
                Solved::Infeasible => break,
                Solved::TimedOut => return Err("the LP time limit was reached".into()),
                Solved::Unbounded => return Err("the facet program is unbounded".into()),
                Solved::Failed(e) => last = format!("the solver failed: {e}"),
            }
        }
        // 2. No witness: prove that the pre-activation cannot change sign.
        let (lp, _, _) = facet_program(view, k, j, Tightening::NONE);
        let cert = self
            .with_multipliers(&lp, false, |y| {
                let mut cert = self.skeleton(q, None, Claim::Redundant);
                cert.multipliers = Some(y);
                self.checked(cert).map(|(_, c)| c)
            })
            .map_err(|e| format!("{last}; {e}"))?;
        Ok((Answer::Facet { redundant: true }, cert))
    }
}

/// The Found answer of an accepted root certificate; a proved distance interval is also written
/// into the certificate.
fn found(acc: Accepted, cert: &mut Certificate) -> Answer {
    if acc.lower.is_some() || acc.upper.is_some() {
        cert.interval = Some(interval(acc.lower.as_ref(), acc.upper.as_ref()));
    }
    Answer::Found {
        point: acc.point.unwrap_or_default(),
        lower: acc.lower.as_ref().map(Scalar::to_f64),
        upper: acc.upper.as_ref().map(Scalar::to_f64),
    }
}

/// The two-row Farkas multipliers for a root plane on which its own neuron's pre-activation
/// `w·a + b − R` has the sign that the pattern forbids; `None` otherwise.
fn own_face_contradiction(
    lp: &LinearProgram,
    view: RegionView,
    plane: &RootPlane,
) -> Option<Vec<f64>> {
    if !view.net.layers()[view.layer].activation.is_relu() {
        return None;
    }
    let active = *view.pattern.layer(view.layer)?.get(plane.neuron)?;
    let affine = &view.net.layers()[view.layer].affine;
    let z = view
        .centre
        .affine(affine.row(plane.neuron), *affine.bias(plane.neuron))
        .to_rational()
        - &plane.relevance;
    let sign = if num_traits::Signed::is_positive(&z) {
        1
    } else if num_traits::Signed::is_negative(&z) {
        -1
    } else {
        0
    };
    if (active && sign >= 0) || (!active && sign <= 0) {
        return None;
    }
    let face_name = format!("z{}_{}", view.layer + 1, plane.neuron);
    let face = lp.rows.iter().position(|r| r.name == face_name)?;
    let root = lp.rows.iter().position(|r| r.name == "root")?;
    let s = if active { 1.0 } else { -1.0 };
    let mut y = vec![0.0; lp.num_rows()];
    y[face] = s;
    y[root] = -s;
    Some(y)
}

fn interval(lower: Option<&Rational>, upper: Option<&Rational>) -> Interval {
    Interval {
        lower: lower.map(rational_text),
        upper: upper.map(rational_text),
        lower_f64: lower.map(Scalar::to_f64),
        upper_f64: upper.map(Scalar::to_f64),
    }
}
