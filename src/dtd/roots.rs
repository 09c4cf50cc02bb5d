//! The root of one neuron under a root rule: `ã = a − t v` along the rule's direction `v`,
//! with `t = R_j / (w · v + β)`, and the relevance `w_i t v_i` it passes to each input.

use super::explanation::{NoRoot, RootOutcome};
use super::rules::{BiasMode, InitialRelevance, Rule};
use super::settings::DtdSettings;
use crate::exact::{Rational, Scalar};
use crate::model::ir::WeightRow;
use crate::model::Network;

pub(super) fn positive<T: Scalar>(x: &T) -> T {
    if x.is_positive() {
        x.clone()
    } else {
        T::zero()
    }
}

pub(super) fn negative<T: Scalar>(x: &T) -> T {
    if x.is_negative() {
        x.clone()
    } else {
        T::zero()
    }
}

/// `d + ε sign(d)`, with `sign(0) = +1`.
pub(super) fn stabilize<T: Scalar>(d: T, eps: &T) -> T {
    if eps.is_zero() {
        d
    } else if d.is_negative() {
        d - eps.clone()
    } else {
        d + eps.clone()
    }
}

/// A root rule with its parameters converted to the scalar type once per layer.
pub(crate) struct RootRule<T> {
    rule: Rule,
    /// `1 + γ` for the γ rule.
    one_plus_gamma: T,
    gamma: T,
    lo: T,
    hi: T,
}

impl<T: Scalar> RootRule<T> {
    pub(crate) fn new(rule: Rule) -> Self {
        let (gamma, lo, hi) = match rule {
            Rule::Gamma(g) => (g, 0.0, 0.0),
            Rule::ZBox { lo, hi } => (0.0, lo, hi),
            _ => (0.0, 0.0, 0.0),
        };
        Self {
            rule,
            one_plus_gamma: T::one() + T::from_f64(gamma),
            gamma: T::from_f64(gamma),
            lo: T::from_f64(lo),
            hi: T::from_f64(hi),
        }
    }

    /// Whether the roots of a neuron with bias `b` lie exactly on its root plane
    /// `w · ã = w · a − R`: when the denominator has neither a bias term nor a stabiliser,
    /// `t (w · v) = R`. Not for the rule `0`, whose root is the origin.
    pub(crate) fn on_root_plane(&self, b: &T, settings: &DtdSettings) -> bool {
        self.rule != Rule::Zero
            && settings.stabilizer == 0.0
            && self.beta(b, settings.bias).is_zero()
    }

    /// The rule.
    pub(super) fn rule(&self) -> Rule {
        self.rule
    }

    /// `1 + γ` as the scalar computes it (1 for the other rules).
    pub(super) fn one_plus_gamma(&self) -> T {
        self.one_plus_gamma.clone()
    }

    /// The rule's bias term of the denominator (zero when the bias is ignored).
    pub(super) fn beta(&self, b: &T, bias: BiasMode) -> T {
        match bias {
            BiasMode::Ignore => return T::zero(),
            BiasMode::Plain if self.rule != Rule::Zero => return b.clone(),
            _ => {}
        }
        match self.rule {
            Rule::Zero => T::zero(),
            Rule::Z => b.clone(),
            // zB's three passes (`z`, `lo` on the positive part, `hi` on the negative part)
            // carry `b`, `b⁺` and `b⁻`: the bias cancels (as in Zennit's ZBox).
            Rule::ZBox { .. } => T::zero(),
            Rule::ZPlus => positive(b),
            Rule::Gamma(_) => b.clone() + self.gamma.clone() * positive(b),
            Rule::WSquare => b.clone() * b.clone(),
            Rule::Epsilon(_) | Rule::AlphaBeta { .. } | Rule::Flat | Rule::NearestValid(_) => {
                unreachable!("{} has no root direction", self.rule)
            }
        }
    }
}

/// The root of neuron `j` of 0-based layer `index` at input `a` with relevance `r`, exactly as
/// [`explain`] with `keep_roots` computes it (the rule is the one the settings give that
/// layer; a rule without roots gives none).
///
/// [`explain`]: super::explain
pub fn neuron_root<T: Scalar>(
    net: &Network<T>,
    index: usize,
    j: usize,
    a: &[T],
    r: &T,
    settings: &DtdSettings,
) -> RootOutcome<T> {
    let rule = settings.rule_for(index);
    let layer = &net.layers()[index];
    if !rule.has_root()
        || r.is_zero()
        || layer.max_pool.is_some()
        || net.identity(index, j).is_some()
    {
        return RootOutcome::None(if r.is_zero() {
            NoRoot::ZeroRelevance
        } else {
            NoRoot::NotApplicable
        });
    }
    let affine = &layer.affine;
    let (mut lower, mut passed) = (vec![T::zero(); a.len()], T::zero());
    root_step(
        &RootRule::new(rule),
        &affine.row(j),
        a,
        affine.bias(j),
        r,
        settings,
        &T::from_f64(settings.denominator_threshold),
        &T::from_f64(settings.stabilizer),
        true,
        &mut lower,
        &mut passed,
        None,
    )
}

/// Whether the exact root of neuron `j` of 0-based layer `index` lies on the neuron's own face
/// (`z_j(ã) = 0` in exact arithmetic) by construction, whatever the inputs: the rule root
/// satisfies `w_j · ã = w_j · a − t (w_j · v)`, so where the denominator is `w_j · v` itself
/// (no bias term, no stabilizer) and the relevance is the neuron's own value
/// `z_j(a)` (the explained output under `--initial-relevance output`), `z_j(ã) = 0`. Whether
/// the bias term is 0 is decided exactly (a rounded `b²` or `b + γ b⁺` can be 0 where the
/// exact one is not): by its f64 value and error bound, in rationals where those leave it open.
pub fn root_on_own_face(net: &Network, index: usize, j: usize, settings: &DtdSettings) -> bool {
    let rule = settings.rule_for(index);
    let layer = &net.layers()[index];
    if !(index + 1 == net.layers().len()
        && settings.initial_relevance == InitialRelevance::Output
        && rule.has_root()
        && layer.max_pool.is_none()
        && net.identity(index, j).is_none()
        && rule != Rule::Zero
        && settings.stabilizer == 0.0)
    {
        return false;
    }
    let b = *layer.affine.bias(j);
    let root_rule = RootRule::<f64>::new(rule);
    let beta = root_rule.beta(&b, settings.bias);
    let err = super::bounded::beta_error(&root_rule, b, settings.bias, beta);
    if err == 0.0 {
        beta == 0.0
    } else if beta.abs() > err {
        false
    } else {
        RootRule::<Rational>::new(rule).on_root_plane(&Rational::from_f64(b), settings)
    }
}

/// The root of one neuron under `rule`, adding what it passes to each input to `lower` and
/// in all to `passed`. With `keep_roots` the outcome holds the point, and `steps`, when
/// given, receives `a − ã = t v` as computed (exactly 0 where `v` is).
#[allow(clippy::too_many_arguments)]
pub(crate) fn root_step<T: Scalar>(
    rule: &RootRule<T>,
    w: &WeightRow<'_, T>,
    a: &[T],
    b: &T,
    r: &T,
    settings: &DtdSettings,
    threshold: &T,
    stabilizer: &T,
    keep_roots: bool,
    lower: &mut [T],
    passed: &mut T,
    steps: Option<&mut Vec<T>>,
) -> RootOutcome<T> {
    // The rule is matched once per neuron, not once per coordinate, so each loop below is a
    // plain arithmetic loop.
    let listed = w.gather(a);
    let step = RootStep {
        w: w.values(),
        a: &listed,
        full: a,
        row: w,
        r,
        threshold,
        stabilizer,
        keep_roots,
        steps,
        origin: rule.rule == Rule::Zero,
        beta: rule.beta(b, settings.bias),
    };
    let nonneg = |wi: &T| !wi.is_negative();
    match rule.rule {
        Rule::Zero | Rule::Z => step.run(lower, passed, |_, ai| ai.clone()),
        Rule::ZPlus => step.run(lower, passed, |wi, ai| {
            if nonneg(wi) {
                ai.clone()
            } else {
                T::zero()
            }
        }),
        Rule::Gamma(_) => step.run(lower, passed, |wi, ai| {
            if nonneg(wi) {
                ai.clone() * rule.one_plus_gamma.clone()
            } else {
                ai.clone()
            }
        }),
        Rule::WSquare => step.run(lower, passed, |wi, _| wi.clone()),
        Rule::ZBox { .. } => step.run(lower, passed, |wi, ai| {
            ai.clone()
                - if nonneg(wi) {
                    rule.lo.clone()
                } else {
                    rule.hi.clone()
                }
        }),
        Rule::Epsilon(_) | Rule::AlphaBeta { .. } | Rule::Flat | Rule::NearestValid(_) => {
            unreachable!("{} has no root direction", rule.rule)
        }
    }
}

/// One neuron's root, for a direction given coordinate by coordinate.
struct RootStep<'a, T> {
    /// The listed weights of the neuron's row and the inputs at their positions.
    w: &'a [T],
    a: &'a [T],
    /// The whole input, and the row (for the positions of its listed weights).
    full: &'a [T],
    row: &'a WeightRow<'a, T>,
    r: &'a T,
    threshold: &'a T,
    stabilizer: &'a T,
    keep_roots: bool,
    /// Where `a − ã` goes, with `keep_roots`.
    steps: Option<&'a mut Vec<T>>,
    /// Rule 0: the root is the origin, `ã = a − 1 · a`, whatever the denominator.
    origin: bool,
    beta: T,
}

impl<T: Scalar> RootStep<'_, T> {
    fn run(self, lower: &mut [T], passed: &mut T, v: impl Fn(&T, &T) -> T) -> RootOutcome<T> {
        // Four partial sums: independent additions keep the f64 pipeline full.
        let mut lanes = [T::zero(), T::zero(), T::zero(), T::zero()];
        let (w4, a4) = (self.w.chunks_exact(4), self.a.chunks_exact(4));
        let (w_rest, a_rest) = (w4.remainder(), a4.remainder());
        for (wc, ac) in w4.zip(a4) {
            for (lane, (wi, ai)) in lanes.iter_mut().zip(wc.iter().zip(ac)) {
                T::mul_add_assign(lane, wi, &v(wi, ai));
            }
        }
        for (wi, ai) in w_rest.iter().zip(a_rest) {
            T::mul_add_assign(&mut lanes[0], wi, &v(wi, ai));
        }
        let [l0, l1, l2, l3] = lanes;
        let wv = (l0 + l1) + (l2 + l3);
        let t = if self.origin {
            T::one()
        } else {
            let d = stabilize(wv.clone() + self.beta.clone(), self.stabilizer);
            if d.abs() <= *self.threshold {
                return RootOutcome::None(NoRoot::SmallDenominator);
            }
            T::over(self.r, &d)
        };
        let mut point = Vec::new();
        let mut steps = self.steps;
        if let Some(steps) = steps.as_deref_mut() {
            steps.clear();
        }
        match self.row.is_dense() {
            true if self.keep_roots => {
                point = vec![T::zero(); self.a.len()];
                for (((li, pi), wi), ai) in lower.iter_mut().zip(&mut point).zip(self.w).zip(self.a)
                {
                    let tv = T::times(&t, &v(wi, ai));
                    // Rule 0's root is the origin exactly (`a − 1 · a`), whatever error an
                    // enclosure of `a` carries.
                    *pi = if self.origin {
                        T::zero()
                    } else {
                        ai.clone() - tv.clone()
                    };
                    // Skips zero products itself where that saves work (rationals).
                    T::mul_add_assign(li, wi, &tv);
                    if let Some(steps) = steps.as_deref_mut() {
                        steps.push(tv);
                    }
                }
            }
            true => {
                for ((li, wi), ai) in lower.iter_mut().zip(self.w).zip(self.a) {
                    T::mul_add_assign(li, wi, &T::times(&t, &v(wi, ai)));
                }
            }
            false => {
                if self.keep_roots {
                    // An input the row does not list has weight 0, which the rules' sign
                    // tests count as non-negative.
                    let zero = T::zero();
                    point = self
                        .full
                        .iter()
                        .map(|ai| match self.origin {
                            true => T::zero(),
                            false => ai.clone() - T::times(&t, &v(&zero, ai)),
                        })
                        .collect();
                    if let Some(steps) = steps.as_deref_mut() {
                        steps.extend(self.full.iter().map(|ai| T::times(&t, &v(&zero, ai))));
                    }
                }
                for (k, (wi, ai)) in self.w.iter().zip(self.a).enumerate() {
                    let i = self.row.position(k);
                    let tv = T::times(&t, &v(wi, ai));
                    if self.keep_roots && !self.origin {
                        point[i] = ai.clone() - tv.clone();
                        if let Some(steps) = steps.as_deref_mut() {
                            steps[i] = tv.clone();
                        }
                    }
                    T::mul_add_assign(&mut lower[i], wi, &tv);
                }
            }
        }
        // Σ_i w_i t v_i = t (w · v); exact in rationals.
        *passed = T::plus(passed, &T::times(&t, &wv));
        RootOutcome::Root { point, t }
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::dtd::explain;
    use crate::model::forward::forward;
    use crate::model::ir::dense_layer;

    fn random_net(rng: &mut ChaCha8Rng, widths: &[usize]) -> Network {
        let layers = widths
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                let weight = (0..w[0] * w[1])
                    .map(|_| rng.random_range(-1.0..1.0))
                    .collect();
                let bias = (0..w[1]).map(|_| rng.random_range(-0.5..0.5)).collect();
                dense_layer(w[1], w[0], weight, bias, i + 2 < widths.len()).unwrap()
            })
            .collect();
        Network::new(layers).unwrap()
    }

    /// Where the test says a root is on its own face, the exact root's pre-activation is 0;
    /// every root it counts on a face is the explained output's.
    #[test]
    fn roots_said_to_be_on_their_own_face_are_on_it_exactly() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut on_face = 0;
        for case in 0..60 {
            let f64_net = random_net(&mut rng, &[4, 5, 3]);
            let net = f64_net.to_exact();
            let x: Vec<Rational> = (0..4)
                .map(|_| Rational::from_f64(rng.random_range(0.0..1.0)))
                .collect();
            let trace = forward(&net, &x);
            let rule = [Rule::ZPlus, Rule::WSquare, Rule::Gamma(0.5), Rule::Z][case % 4];
            let bias = [BiasMode::Ignore, BiasMode::Include, BiasMode::Plain][case % 3];
            let initial = [InitialRelevance::Output, InitialRelevance::One][case % 2];
            let settings = DtdSettings {
                rule,
                bias,
                initial_relevance: initial,
                ..DtdSettings::default()
            };
            let explanation = explain(&net, &trace, &settings, 0, true);
            for (index, step) in explanation.layers.iter().enumerate() {
                let affine = &net.layers()[index].affine;
                for (j, n) in step.neurons.iter().enumerate() {
                    let RootOutcome::Root { point, .. } = &n.outcome else {
                        continue;
                    };
                    if root_on_own_face(&f64_net, index, j, &settings) {
                        let z = affine.row(j).affine_dot(point, affine.bias(j));
                        assert!(z.is_zero(), "case {case}: layer {index} neuron {j}: {z:?}");
                        assert_eq!((index, j), (1, 0));
                        on_face += 1;
                    }
                }
            }
        }
        assert!(on_face > 0);
    }

    #[test]
    fn rule_zero_roots_are_the_origin_exactly() {
        use crate::exact::ball::Ball;
        let l = dense_layer(2, 2, vec![1.0, -1.0, 0.5, 1.0], vec![0.1, -0.25], false).unwrap();
        let net = Network::new(vec![l]).unwrap().to_scalar::<Ball>();
        let a = [Ball::new(0.7, 1e-9), Ball::new(0.2, 1e-9)];
        let settings = DtdSettings {
            rule: Rule::Zero,
            ..DtdSettings::default()
        };
        let RootOutcome::Root { point, .. } =
            neuron_root(&net, 0, 0, &a, &Ball::new(0.5, 1e-9), &settings)
        else {
            panic!("rule 0 has a root");
        };
        assert!(point.iter().all(Ball::is_exact_zero), "{point:?}");
    }
}
