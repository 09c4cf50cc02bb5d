//! One layer's rule step for a batch as matrix expressions: `upper` (`batch × out`) to the
//! relevances of the layer's inputs `a` (`batch × in`). Each neuron's denominator is an entry
//! of a forward product (`a Wᵀ`, `a W⁺ᵀ`, ...), and what the neurons pass back is a
//! transposed product (`t W`, `t W⁺`, ...) times the inputs where the rule's direction has
//! them; a neuron with no relevance, or with a denominator the rule refuses, passes nothing.

use ndarray::{Array1, Array2, ArrayView2, Zip};

use super::super::rules::{BiasMode, Rule};
use super::super::settings::DtdSettings;
use crate::model::ir::Affine;

/// The maps of a layer's weights its rule multiplies by, built once per run.
#[derive(Default)]
pub(super) struct Maps {
    /// `W⁺ = max(W, 0)`.
    positive: Option<Affine>,
    /// `W⁻ = min(W, 0)`.
    negative: Option<Affine>,
    /// `W²`.
    square: Option<Affine>,
    /// 1 at every weight the map lists (the flat rule's pattern).
    pattern: Option<Affine>,
    /// `W² 1` (w²), `W⁺ 1` and `W⁻ 1` (zB), the number of listed weights (flat): one per
    /// output, the same for every input.
    sums: Vec<Array1<f64>>,
}

impl Maps {
    /// The maps `rule` needs of `affine`.
    pub(super) fn new(affine: &Affine, rule: Rule) -> Self {
        let mut maps = Maps::default();
        let ones = Array2::ones((1, affine.in_dim()));
        let sum = |m: &Affine| m.apply_rows(ones.view()).row(0).to_owned();
        match rule {
            Rule::ZPlus | Rule::Gamma(_) => {
                maps.positive = Some(affine.map_weights(|w| w.max(0.0)));
            }
            Rule::AlphaBeta { .. } => {
                maps.positive = Some(affine.map_weights(|w| w.max(0.0)));
                maps.negative = Some(affine.map_weights(|w| w.min(0.0)));
            }
            Rule::ZBox { .. } => {
                let (positive, negative) = (
                    affine.map_weights(|w| w.max(0.0)),
                    affine.map_weights(|w| w.min(0.0)),
                );
                maps.sums = vec![sum(&positive), sum(&negative)];
                maps.positive = Some(positive);
                maps.negative = Some(negative);
            }
            Rule::WSquare => {
                let square = affine.map_weights(|w| w * w);
                maps.sums = vec![sum(&square)];
                maps.square = Some(square);
            }
            Rule::Flat => {
                let pattern = affine.map_weights(|_| 1.0);
                maps.sums = vec![sum(&pattern)];
                maps.pattern = Some(pattern);
            }
            Rule::Zero | Rule::Z | Rule::Epsilon(_) | Rule::NearestValid(_) => {}
        }
        maps
    }
}

/// `d + ε sign(d)` with `sign(0) = +1`, on every entry (nothing when `ε = 0`).
fn stabilize(d: &mut Array2<f64>, eps: f64) {
    if eps != 0.0 {
        d.mapv_inplace(|v| if v < 0.0 { v - eps } else { v + eps });
    }
}

/// `r / d` where `r != 0` and `keep(d)`, else 0.
fn ratio(upper: ArrayView2<'_, f64>, d: &Array2<f64>, keep: impl Fn(f64) -> bool) -> Array2<f64> {
    let mut out = Array2::zeros(upper.dim());
    Zip::from(&mut out).and(upper).and(d).for_each(|o, &r, &d| {
        if r != 0.0 && keep(d) {
            *o = r / d;
        }
    });
    out
}

/// The entries of `a` mapped by `f`.
fn mapped(a: ArrayView2<'_, f64>, f: impl Fn(f64) -> f64) -> Array2<f64> {
    a.mapv(f)
}

/// `a ⊙ m`.
fn times(a: ArrayView2<'_, f64>, mut m: Array2<f64>) -> Array2<f64> {
    m *= &a;
    m
}

/// What a layer's step uses besides the batch: the layer's weights `w` and biases `b`, the
/// maps of `w` its rule multiplies by, the rule, and the settings.
pub(super) struct LayerRule<'a> {
    pub w: &'a Affine,
    pub b: &'a Array1<f64>,
    pub maps: &'a Maps,
    pub rule: Rule,
    pub settings: &'a DtdSettings,
}

/// One layer's step by its rule (identity neurons already taken out of `upper`).
pub(super) fn rule_step(
    layer: &LayerRule<'_>,
    a: ArrayView2<'_, f64>,
    upper: ArrayView2<'_, f64>,
) -> Array2<f64> {
    let LayerRule {
        w,
        b,
        maps,
        rule,
        settings: s,
    } = *layer;
    let include = s.bias != BiasMode::Ignore;
    let positive = || maps.positive.as_ref().expect("W⁺ built for the rule");
    let negative = || maps.negative.as_ref().expect("W⁻ built for the rule");
    match rule {
        Rule::Epsilon(e) => {
            let mut d = w.apply_rows(a);
            if include {
                d += b;
            }
            stabilize(&mut d, e);
            let scale = ratio(upper, &d, |d| d != 0.0);
            times(a, w.transposed_rows(scale.view()))
        }
        Rule::AlphaBeta { alpha, beta } => {
            let (wp, wn) = (positive(), negative());
            let (ap, an) = (mapped(a, |v| v.max(0.0)), mapped(a, |v| v.min(0.0)));
            let negatives = an.iter().any(|&v| v != 0.0);
            // The sums of the positive and of the negative contributions.
            let mut pos = wp.apply_rows(ap.view());
            let mut neg = wn.apply_rows(ap.view());
            if negatives {
                pos += &wn.apply_rows(an.view());
                neg += &wp.apply_rows(an.view());
            }
            if include {
                pos += &b.mapv(|v| v.max(0.0));
                neg += &b.mapv(|v| v.min(0.0));
            }
            stabilize(&mut pos, s.stabilizer);
            stabilize(&mut neg, s.stabilizer);
            let mut sp = ratio(upper, &pos, |d| d != 0.0);
            sp *= alpha;
            let mut sn = ratio(upper, &neg, |d| d != 0.0);
            sn *= beta;
            let mut lower = times(ap.view(), wp.transposed_rows(sp.view()));
            lower -= &times(ap.view(), wn.transposed_rows(sn.view()));
            if negatives {
                lower += &times(an.view(), wn.transposed_rows(sp.view()));
                lower -= &times(an.view(), wp.transposed_rows(sn.view()));
            }
            lower
        }
        Rule::Flat => {
            let mut n = Array2::from_shape_fn((1, maps.sums[0].len()), |(_, j)| maps.sums[0][j]);
            stabilize(&mut n, s.stabilizer);
            let n = n
                .broadcast(upper.dim())
                .expect("one count per output")
                .to_owned();
            let share = ratio(upper, &n, |d| d != 0.0);
            let pattern = maps.pattern.as_ref().expect("the pattern built for flat");
            pattern.transposed_rows(share.view())
        }
        Rule::NearestValid(_) => unreachable!("refused by covers"),
        Rule::Zero | Rule::Z | Rule::ZPlus | Rule::Gamma(_) | Rule::WSquare | Rule::ZBox { .. } => {
            root_rule(layer, a, upper)
        }
    }
}

/// The DTD root rules: `t_j = R_j / (w_j·v_j + β_j)` (stabilised; no root where the
/// denominator is at or below the threshold; `t = 1` for the rule 0), and input `i` gets
/// `Σ_j w_ji t_j v_ji`.
fn root_rule(
    layer: &LayerRule<'_>,
    a: ArrayView2<'_, f64>,
    upper: ArrayView2<'_, f64>,
) -> Array2<f64> {
    let LayerRule {
        w,
        b,
        maps,
        rule,
        settings: s,
    } = *layer;
    let positive = || maps.positive.as_ref().expect("W⁺ built for the rule");
    let negative = || maps.negative.as_ref().expect("W⁻ built for the rule");
    let constant = |v: &Array1<f64>| {
        v.broadcast(upper.dim())
            .expect("one value per output")
            .to_owned()
    };
    // The rule's bias term of the denominator, as `RootRule::beta` gives it.
    let beta = match (s.bias, rule) {
        (BiasMode::Ignore, _) | (_, Rule::Zero) | (BiasMode::Include, Rule::ZBox { .. }) => None,
        (BiasMode::Plain, _) | (BiasMode::Include, Rule::Z) => Some(b.clone()),
        (BiasMode::Include, Rule::ZPlus) => Some(b.mapv(|v| v.max(0.0))),
        (BiasMode::Include, Rule::Gamma(g)) => Some(b.mapv(|v| v + g * v.max(0.0))),
        (BiasMode::Include, Rule::WSquare) => Some(b.mapv(|v| v * v)),
        (BiasMode::Include, _) => unreachable!("{rule} is not a root rule"),
    };
    let wv = match rule {
        Rule::Zero => None,
        Rule::Z => Some(w.apply_rows(a)),
        Rule::ZPlus => Some(positive().apply_rows(a)),
        Rule::Gamma(g) => {
            let mut wv = positive().apply_rows(a);
            wv *= g;
            wv += &w.apply_rows(a);
            Some(wv)
        }
        Rule::WSquare => Some(constant(&maps.sums[0])),
        Rule::ZBox { lo, hi } => {
            let mut wv = w.apply_rows(a);
            wv -= &constant(&maps.sums[0].mapv(|v| v * lo));
            wv -= &constant(&maps.sums[1].mapv(|v| v * hi));
            Some(wv)
        }
        _ => unreachable!("{rule} is not a root rule"),
    };
    let t = match wv {
        None => upper.mapv(|r| if r != 0.0 { 1.0 } else { 0.0 }),
        Some(mut d) => {
            if let Some(beta) = &beta {
                d += beta;
            }
            stabilize(&mut d, s.stabilizer);
            let threshold = s.denominator_threshold;
            ratio(upper, &d, |d| d.abs() > threshold)
        }
    };
    match rule {
        Rule::Zero | Rule::Z => times(a, w.transposed_rows(t.view())),
        Rule::ZPlus => times(a, positive().transposed_rows(t.view())),
        Rule::Gamma(g) => {
            let mut back = positive().transposed_rows(t.view());
            back *= g;
            back += &w.transposed_rows(t.view());
            times(a, back)
        }
        Rule::WSquare => {
            let square = maps.square.as_ref().expect("W² built for w²");
            square.transposed_rows(t.view())
        }
        Rule::ZBox { lo, hi } => {
            let mut lower = times(a, w.transposed_rows(t.view()));
            lower.scaled_add(-lo, &positive().transposed_rows(t.view()));
            lower.scaled_add(-hi, &negative().transposed_rows(t.view()));
            lower
        }
        _ => unreachable!("{rule} is not a root rule"),
    }
}
