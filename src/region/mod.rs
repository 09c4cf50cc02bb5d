//! Activation patterns, the affine map of the network inside a linear region, the region as a
//! polytope, and exact membership of a point in it (DESIGN.md §1.2).
//!
//! With the pattern `s` of an input `x` fixed, layer `k`'s pre-activation is an affine function
//! of the input `a` of any lower layer `m`; the region seen from layer `m` is
//! `P_m(x) = { a : σ_{k,j} z_{k,j}(a) >= 0 for every ReLU neuron of layers k >= m }` with
//! `σ = 2s − 1`. A max-pool layer adds, for each window, `z_{k,w}(a) − z_{k,o}(a) >= 0` for its
//! winner `w` and every other entry `o`, and passes `z_{k,w}` on. Membership is decided by
//! evaluating the linearised network (ReLU replaced by the fixed mask `diag(s)`, max-pool by
//! the fixed winners) at the point: in f64 with a rigorous error bound; where it cannot
//! decide, with values rounded once from exact sums (`refined.rs`); and in exact rationals
//! where that cannot decide either.

pub mod composed;
pub mod problem;
mod refined;

use ndarray::{Array1, Array2, ArrayView2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::exact::filter::{affine_bounded, norm_upper_iter, Bounded, ErrorModel};
use crate::exact::{Rational, Scalar};
use crate::model::forward::{activate, forward, Trace};
use crate::model::{Model, Network};

/// How a verdict was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Decision {
    /// f64 evaluation whose error bound settled every sign involved.
    Float,
    /// The f64 error bound could not settle a sign; values rounded once from exact sums of
    /// their products, with their own error bounds, did (the filter's second tier).
    Refined,
    /// Neither bound could settle a sign; exact rational arithmetic did.
    ExactFallback,
    /// Computed in exact rational arithmetic from the start (`--exact`).
    Exact,
    /// The sign as computed in the run's float precision, without an error bound (the
    /// torch backend).
    Unchecked,
}

/// The activation pattern `s_{l,j} = [z_{l,j}(x) > 0]` of ReLU layers (over the outputs with
/// a ReLU: a layer's carried tail has none), and for max-pool
/// layers the entry of `z_l` that wins each window (the first largest one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    layers: Vec<LayerPattern>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum LayerPattern {
    Linear,
    Relu(Vec<bool>),
    Max { window: usize, selected: Vec<u32> },
}

/// The winners of a max-pool layer's windows: `selected[g]` indexes `z_l`.
#[derive(Clone, Copy, Debug)]
pub struct Selection<'a> {
    pub window: usize,
    pub selected: &'a [u32],
}

impl Selection<'_> {
    /// The layer's constraints in order: for each window, each entry but the winner, as
    /// `(winner, entry)`, meaning `z[winner] − z[entry] >= 0`.
    pub fn constraints(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let window = self.window;
        self.selected.iter().enumerate().flat_map(move |(g, &s)| {
            (g * window..(g + 1) * window)
                .filter(move |&o| o != s as usize)
                .map(move |o| (s as usize, o))
        })
    }

    /// Number of constraints.
    pub fn len(&self) -> usize {
        self.selected.len() * (self.window - 1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One constraint of a layer's region: `σ z_j >= 0` for a ReLU neuron (`σ = +1` active,
/// `−1` inactive), or `z_winner − z_entry >= 0` for an entry of a max-pool window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Face {
    Sign { neuron: usize, active: bool },
    Window { winner: usize, entry: usize },
}

impl Face {
    /// The entry of `z` that labels the constraint: the neuron, or the entry that must not
    /// exceed its window's winner.
    pub fn label(self) -> usize {
        match self {
            Face::Sign { neuron, .. } => neuron,
            Face::Window { entry, .. } => entry,
        }
    }

    /// `σ`: the sign of the constraint's first term.
    pub fn sign(self) -> f64 {
        match self {
            Face::Sign { active: false, .. } => -1.0,
            _ => 1.0,
        }
    }

    /// The entries of `z` whose (signed) difference must be non-negative: `(first, second)`
    /// stands for `σ z_first − z_second`.
    pub fn entries(self) -> (usize, Option<usize>) {
        match self {
            Face::Sign { neuron, .. } => (neuron, None),
            Face::Window { winner, entry } => (winner, Some(entry)),
        }
    }
}

impl Pattern {
    /// The pattern read off exact (or trusted) pre-activations.
    pub fn from_pre<T: Scalar>(net: &Network<T>, pre: &[Vec<T>]) -> Self {
        Self {
            layers: net
                .layers()
                .iter()
                .zip(pre)
                .map(|(layer, z)| {
                    if let Some(window) = layer.max_pool {
                        LayerPattern::Max {
                            window,
                            selected: crate::model::ir::max_pool(z, window).1,
                        }
                    } else if layer.relu {
                        // (Layers below the one a region is seen from come without values.)
                        let relus = z.iter().take(layer.relu_count());
                        LayerPattern::Relu(relus.map(Scalar::is_positive).collect())
                    } else {
                        LayerPattern::Linear
                    }
                })
                .collect(),
        }
    }

    /// Per ReLU layer (0-based index), the mask of active neurons; `None` for other layers.
    pub fn layer(&self, index: usize) -> Option<&[bool]> {
        match &self.layers[index] {
            LayerPattern::Relu(mask) => Some(mask),
            _ => None,
        }
    }

    /// Per max-pool layer (0-based index), the winners of its windows; `None` for other layers.
    pub fn selection(&self, index: usize) -> Option<Selection<'_>> {
        match &self.layers[index] {
            LayerPattern::Max { window, selected } => Some(Selection {
                window: *window,
                selected,
            }),
            _ => None,
        }
    }

    /// Layer `index`'s constraints (0-based), in the order of `P_m`'s rows.
    pub fn faces(&self, index: usize) -> Vec<Face> {
        match &self.layers[index] {
            LayerPattern::Relu(mask) => mask
                .iter()
                .enumerate()
                .map(|(neuron, &active)| Face::Sign { neuron, active })
                .collect(),
            LayerPattern::Max { window, selected } => Selection {
                window: *window,
                selected,
            }
            .constraints()
            .map(|(winner, entry)| Face::Window { winner, entry })
            .collect(),
            LayerPattern::Linear => Vec::new(),
        }
    }

    /// The last layer (0-based) with constraints.
    pub fn last_constraining(&self) -> Option<usize> {
        (0..self.layers.len()).rposition(|k| self.constrains(k))
    }

    /// Whether layer `index` (0-based) contributes constraints: a ReLU layer with some output
    /// under its ReLU, or a max-pool layer with windows of two or more entries.
    pub fn constrains(&self, index: usize) -> bool {
        match &self.layers[index] {
            LayerPattern::Linear => false,
            LayerPattern::Relu(mask) => !mask.is_empty(),
            LayerPattern::Max { window, selected } => *window > 1 && !selected.is_empty(),
        }
    }

    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Number of constraints of `P_m` (0-based layer index `m`): ReLU neurons of layers >= m,
    /// and for max-pool layers every entry of a window but its winner.
    pub fn constraints_from(&self, m: usize) -> usize {
        (m..self.layers.len())
            .map(|k| match (self.layer(k), self.selection(k)) {
                (Some(mask), _) => mask.len(),
                (_, Some(selection)) => selection.len(),
                _ => 0,
            })
            .sum()
    }

    /// Active neurons per layer (`None` for layers without ReLU).
    pub fn active_counts(&self) -> Vec<Option<usize>> {
        (0..self.layers.len())
            .map(|k| self.layer(k).map(|s| s.iter().filter(|&&b| b).count()))
            .collect()
    }

    /// The pattern as text, one string per layer: `1` (active) and `0` per ReLU neuron; for a
    /// max-pool layer the winner's place in each window (0-based), separated by dots; `-`
    /// for a layer without either.
    pub fn bit_strings(&self) -> Vec<String> {
        self.layers
            .iter()
            .map(|l| match l {
                LayerPattern::Relu(s) => s.iter().map(|&b| if b { '1' } else { '0' }).collect(),
                LayerPattern::Max { window, selected } => selected
                    .iter()
                    .map(|&s| (s as usize % window).to_string())
                    .collect::<Vec<_>>()
                    .join("."),
                LayerPattern::Linear => "-".to_string(),
            })
            .collect()
    }
}

/// The forward pass of `x` in f64 with the pattern decided exactly: f64 with error bounds, and
/// an exact forward pass when some pre-activation is too close to zero for the bound.
pub fn trace_and_pattern(model: &Model, x: &[f64]) -> (Trace<f64>, Pattern, Decision) {
    let net = model.net();
    let layers = net.layers();
    let mut activations: Vec<Vec<f64>> = Vec::with_capacity(layers.len() + 1);
    let mut pre: Vec<Vec<f64>> = Vec::with_capacity(layers.len());
    let mut errors: Vec<f64> = Vec::new();
    let mut undecided = false;
    activations.push(x.to_vec());
    for layer in layers {
        let input = activations.last().expect("pushed above");
        let (z, e) = bounded_affine_layer(&layer.affine, input, &errors);
        let (h, h_err, decided) = activate_bounded(layer, &z, &e);
        undecided |= !decided;
        errors = h_err;
        pre.push(z);
        activations.push(h);
    }
    let trace = Trace { activations, pre };
    if undecided {
        if let Some(pattern) = refined_pattern(model, 0, x) {
            return (trace, pattern, Decision::Refined);
        }
        let xr: Vec<Rational> = x.iter().map(|&v| Rational::from_f64(v)).collect();
        let exact = forward(model.exact(), &xr);
        let pattern = Pattern::from_pre(model.exact(), &exact.pre);
        (trace, pattern, Decision::ExactFallback)
    } else {
        let pattern = Pattern::from_pre(net, &trace.pre);
        (trace, pattern, Decision::Float)
    }
}

/// The activation pattern of the layers from `m` (0-based) up, for the layer input `a`,
/// decided exactly as in [`trace_and_pattern`]; the layers below `m` get empty masks (the
/// region seen from layer `m` does not involve them).
pub fn pattern_from_layer(model: &Model, m: usize, a: &[f64]) -> (Pattern, Decision) {
    let layers = model.net().layers();
    let mut pre: Vec<Vec<f64>> = vec![Vec::new(); m];
    let mut h = a.to_vec();
    let mut errors: Vec<f64> = Vec::new();
    let mut undecided = false;
    for layer in &layers[m..] {
        let (z, e) = bounded_affine_layer(&layer.affine, &h, &errors);
        let decided;
        (h, errors, decided) = activate_bounded(layer, &z, &e);
        undecided |= !decided;
        pre.push(z);
    }
    if !undecided {
        return (Pattern::from_pre(model.net(), &pre), Decision::Float);
    }
    if let Some(pattern) = refined_pattern(model, m, a) {
        return (pattern, Decision::Refined);
    }
    let net = model.exact();
    let mut exact_pre: Vec<Vec<Rational>> = vec![Vec::new(); m];
    let mut h: Vec<Rational> = a.iter().map(|&v| Rational::from_f64(v)).collect();
    let mut z = Vec::new();
    for layer in &net.layers()[m..] {
        layer.affine.apply_into(&h, &mut z);
        h = activate(layer, &z);
        exact_pre.push(z.clone());
    }
    (Pattern::from_pre(net, &exact_pre), Decision::ExactFallback)
}

/// The pattern of the layers from `m` up for the layer input `a`, from the filter's second
/// tier ([`refined::affine_layer`]); `None` when it too leaves a sign undecided. Layers below
/// `m` get empty masks.
fn refined_pattern(model: &Model, m: usize, a: &[f64]) -> Option<Pattern> {
    let layers = model.net().layers();
    let mut pre: Vec<Vec<f64>> = vec![Vec::new(); m];
    let mut h = a.to_vec();
    let mut errors: Vec<f64> = Vec::new();
    for layer in &layers[m..] {
        let (z, e) = refined::affine_layer(&layer.affine, &h, &errors);
        let decided;
        (h, errors, decided) = activate_bounded(layer, &z, &e);
        if !decided {
            return None;
        }
        pre.push(z);
    }
    Some(Pattern::from_pre(model.net(), &pre))
}

/// `h_l` from `z_l` computed in f64 with error bounds `e`: the outputs, their bounds, and
/// whether the bounds decide the layer's pattern (every ReLU sign, every window's first
/// winner).
fn activate_bounded(
    layer: &crate::model::Layer,
    z: &[f64],
    e: &[f64],
) -> (Vec<f64>, Vec<f64>, bool) {
    if let Some(window) = layer.max_pool {
        let (h, selected) = crate::model::ir::max_pool(z, window);
        let mut decided = true;
        let mut h_err = Vec::with_capacity(h.len());
        for (g, &s) in selected.iter().enumerate() {
            let s = s as usize;
            let entries = g * window..(g + 1) * window;
            // An earlier entry must be certainly smaller, a later one certainly not larger.
            decided &= entries.clone().all(|o| {
                let d = difference(z, e, s, o);
                match o.cmp(&s) {
                    std::cmp::Ordering::Less => d.certain_sign() == Some(1),
                    std::cmp::Ordering::Equal => true,
                    std::cmp::Ordering::Greater => d.certainly_nonnegative() == Some(true),
                }
            });
            // |max Z − z_s| <= the largest error of the window, whichever entry wins exactly.
            h_err.push(entries.map(|o| e[o]).fold(0.0, f64::max));
        }
        return (h, h_err, decided);
    }
    if !layer.relu {
        return (z.to_vec(), e.to_vec(), true);
    }
    let relus = layer.relu_count();
    let decided = z[..relus]
        .iter()
        .zip(e)
        .all(|(&value, &error)| Bounded { value, error }.certain_sign().is_some());
    // relu is 1-Lipschitz, so the bound carries over; a value certainly below zero is cut to
    // an exact zero, which carries none.
    let mut h_err = e.to_vec();
    for (err, (&value, &error)) in h_err.iter_mut().zip(z.iter().zip(e)).take(relus) {
        if (Bounded { value, error }).certain_sign() == Some(-1) {
            *err = 0.0;
        }
    }
    (activate(layer, z), h_err, decided)
}

/// `z[s] − z[o]` with a rigorous error bound, from values with bounds `e`.
fn difference(z: &[f64], e: &[f64], s: usize, o: usize) -> Bounded {
    affine_bounded(&[1.0, -1.0], &[z[s], z[o]], Some(&[e[s], e[o]]), 0.0)
}

/// One affine layer in f64 with per-output error bounds, from inputs with bounds `errors`
/// (empty: exact inputs).
fn bounded_affine_layer(
    affine: &crate::model::Affine,
    input: &[f64],
    errors: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let out = affine.out_dim();
    let mut z = Vec::with_capacity(out);
    let mut e = Vec::with_capacity(out);
    let errs = (!errors.is_empty()).then_some(errors);
    // A sparse row's inputs and their errors, gathered into buffers reused row after row.
    let (mut x, mut x_err) = (Vec::new(), Vec::new());
    for j in 0..out {
        let row = affine.row(j);
        let bias = *affine.bias(j);
        let b = if row.is_dense() {
            affine_bounded(row.values(), input, errs, bias)
        } else {
            x.clear();
            x_err.clear();
            for k in 0..row.connected() {
                let i = row.position(k);
                x.push(input[i]);
                if let Some(e) = errs {
                    x_err.push(e[i]);
                }
            }
            affine_bounded(row.values(), &x, errs.map(|_| &x_err[..]), bias)
        };
        z.push(b.value);
        e.push(b.error);
    }
    (z, e)
}

/// Whether a point lies in the region, and if not, where it leaves it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Membership {
    /// Every constraint holds; `slack` is the smallest `σ z` over them (f64, for reading).
    Inside { slack: Option<f64> },
    /// The first violated constraint in (layer, neuron) order, 1-based layer, 0-based
    /// neuron, and its `σ z` (negative). In a max-pool layer the neuron is the entry of `z`
    /// that overtakes its window's winner, and the margin `z_winner − z_entry`.
    Outside {
        layer: usize,
        neuron: usize,
        margin: f64,
    },
}

impl Membership {
    pub fn is_inside(&self) -> bool {
        matches!(self, Membership::Inside { .. })
    }
}

/// Exact membership of `point` (an input of layer `m`, 0-based) in `P_m`, computed in `T`'s
/// arithmetic. With `T = Rational` this is the reference the filtered check must equal.
pub fn membership<T: Scalar>(
    net: &Network<T>,
    pattern: &Pattern,
    m: usize,
    point: &[T],
) -> Membership {
    let mut h = point.to_vec();
    let mut z = Vec::new();
    let mut slack: Option<T> = None;
    for (k, layer) in net.layers().iter().enumerate().skip(m) {
        layer.affine.apply_into(&h, &mut z);
        // The layer's constraints in order, each as (neuron, value that must be >= 0).
        let checks: Vec<(usize, T)> = match (pattern.layer(k), pattern.selection(k)) {
            (Some(mask), _) => z
                .iter()
                .zip(mask)
                .enumerate()
                .map(|(j, (v, &active))| (j, if active { v.clone() } else { -v.clone() }))
                .collect(),
            (_, Some(selection)) => selection
                .constraints()
                .map(|(s, o)| (o, z[s].clone() - z[o].clone()))
                .collect(),
            _ => Vec::new(),
        };
        for (neuron, signed) in checks {
            if signed.is_negative() {
                return Membership::Outside {
                    layer: k + 1,
                    neuron,
                    margin: signed.to_f64(),
                };
            }
            if slack.as_ref().is_none_or(|s| signed < *s) {
                slack = Some(signed);
            }
        }
        if let Some(mask) = pattern.layer(k) {
            for (v, &active) in z.iter_mut().zip(mask) {
                if !active {
                    *v = T::zero();
                }
            }
        }
        if let Some(selection) = pattern.selection(k) {
            z = selected(&z, selection);
        }
        std::mem::swap(&mut h, &mut z);
    }
    Membership::Inside {
        slack: slack.map(|s| s.to_f64()),
    }
}

/// Membership of an f64 point decided exactly: f64 with error bounds first, then the
/// filter's second tier ([`refined::affine_layer`]), then exact rationals, each only when
/// the one before leaves a sign that matters undecided.
pub fn membership_filtered(
    model: &Model,
    pattern: &Pattern,
    m: usize,
    point: &[f64],
) -> (Membership, Decision) {
    match bounded_membership(model, pattern, m, point, bounded_affine_layer) {
        Some(verdict) => (verdict, Decision::Float),
        None => refined_or_exact(model, pattern, m, point),
    }
}

/// [`membership_filtered`] past its first tier.
fn refined_or_exact(
    model: &Model,
    pattern: &Pattern,
    m: usize,
    point: &[f64],
) -> (Membership, Decision) {
    if let Some(verdict) = bounded_membership(model, pattern, m, point, refined::affine_layer) {
        return (verdict, Decision::Refined);
    }
    let exact: Vec<Rational> = point.iter().map(|&v| Rational::from_f64(v)).collect();
    (
        membership(model.exact(), pattern, m, &exact),
        Decision::ExactFallback,
    )
}

/// An affine layer evaluated in f64 from inputs with error bounds: its values and theirs.
type LayerValues = fn(&crate::model::Affine, &[f64], &[f64]) -> (Vec<f64>, Vec<f64>);

/// Membership with every layer evaluated by `layer_values`; `None` when a
/// sign that matters is undecided.
fn bounded_membership(
    model: &Model,
    pattern: &Pattern,
    m: usize,
    point: &[f64],
    layer_values: LayerValues,
) -> Option<Membership> {
    let net = model.net();
    let mut h = point.to_vec();
    let mut h_err: Vec<f64> = Vec::new();
    let mut slack = f64::INFINITY;
    let mut any_constraint = false;
    let settle = |checked: Result<f64, State>, slack: &mut f64, any: &mut bool| match checked {
        Ok(signed) => {
            *any = true;
            *slack = slack.min(signed);
            Ok(())
        }
        Err(State::Outside {
            layer,
            neuron,
            margin,
        }) => Err(Some(Membership::Outside {
            layer,
            neuron,
            margin,
        })),
        Err(_) => Err(None),
    };
    for (k, layer) in net.layers().iter().enumerate().skip(m) {
        let (mut z, mut e) = layer_values(&layer.affine, &h, &h_err);
        if let Some(mask) = pattern.layer(k) {
            for (j, (&v, &active)) in z.iter().zip(mask).enumerate() {
                // Checked in order: a violated constraint is the first one.
                let checked = constraint(k + 1, j, active, v, e[j]);
                if let Err(ended) = settle(checked, &mut slack, &mut any_constraint) {
                    return ended;
                }
            }
            for ((v, err), &active) in z.iter_mut().zip(e.iter_mut()).zip(mask) {
                if !active {
                    *v = 0.0;
                    *err = 0.0;
                }
            }
        }
        if let Some(selection) = pattern.selection(k) {
            for (s, o) in selection.constraints() {
                let checked = window_constraint(k + 1, &z, &e, s, o);
                if let Err(ended) = settle(checked, &mut slack, &mut any_constraint) {
                    return ended;
                }
            }
            (z, e) = (selected(&z, selection), selected(&e, selection));
        }
        h = z;
        h_err = e;
    }
    Some(Membership::Inside {
        slack: any_constraint.then_some(slack),
    })
}

/// `σ z` of every constraint of `P_m` (ReLU neurons of layers >= m, in (layer, neuron) order,
/// as the rows of [`polytope`]) at a point given in f64 with per-coordinate error bounds
/// (`point_err` empty: exact), each with a rigorous bound on its distance to the exact value.
pub fn signed_slacks_bounded(
    model: &Model,
    pattern: &Pattern,
    m: usize,
    point: &[f64],
    point_err: &[f64],
) -> Vec<Bounded> {
    let mut h = point.to_vec();
    let mut h_err = point_err.to_vec();
    let mut out = Vec::new();
    for (k, layer) in model.net().layers().iter().enumerate().skip(m) {
        let (mut z, mut e) = bounded_affine_layer(&layer.affine, &h, &h_err);
        if let Some(mask) = pattern.layer(k) {
            for ((v, err), &active) in z.iter_mut().zip(e.iter_mut()).zip(mask) {
                out.push(Bounded {
                    value: if active { *v } else { -*v },
                    error: *err,
                });
                if !active {
                    *v = 0.0;
                    *err = 0.0;
                }
            }
        }
        if let Some(selection) = pattern.selection(k) {
            out.extend(
                selection
                    .constraints()
                    .map(|(s, o)| difference(&z, &e, s, o)),
            );
            (z, e) = (selected(&z, selection), selected(&e, selection));
        }
        h = z;
        h_err = e;
    }
    out
}

/// [`signed_slacks_bounded`] in exact rationals.
pub fn signed_slacks_exact(
    net: &Network<Rational>,
    pattern: &Pattern,
    m: usize,
    point: &[Rational],
) -> Vec<Rational> {
    let mut h = point.to_vec();
    let mut z = Vec::new();
    let mut out = Vec::new();
    for (k, layer) in net.layers().iter().enumerate().skip(m) {
        layer.affine.apply_into(&h, &mut z);
        if let Some(mask) = pattern.layer(k) {
            for (v, &active) in z.iter_mut().zip(mask) {
                out.push(if active { v.clone() } else { -v.clone() });
                if !active {
                    *v = Rational::zero();
                }
            }
        }
        if let Some(selection) = pattern.selection(k) {
            out.extend(
                selection
                    .constraints()
                    .map(|(s, o)| z[s].clone() - z[o].clone()),
            );
            z = selected(&z, selection);
        }
        std::mem::swap(&mut h, &mut z);
    }
    out
}

/// The winners of each window: `h_l` of a max-pool layer inside the region.
fn selected<T: Clone>(z: &[T], selection: Selection<'_>) -> Vec<T> {
    selection
        .selected
        .iter()
        .map(|&s| z[s as usize].clone())
        .collect()
}

/// The largest `t >= 0` with `a − t v ∈ P_m` (0-based layer `m`, `a` and `v` in layer `m`'s
/// input space), in closed form: with the pattern fixed each constraint is affine along the
/// ray, `σ z_k(a − t v) = σ z_k(a) − t σ J_k v`, so `t* = min { σ z_k(a) / σ J_k v : σ J_k v > 0 }`.
/// `None` when the ray never leaves the region; `Some(0)` also when `a` itself is outside.
/// Exact in rationals; in f64 it is the float reading of the same formula.
pub fn step_length<T: Scalar>(
    net: &Network<T>,
    pattern: &Pattern,
    m: usize,
    a: &[T],
    v: &[T],
) -> Option<T> {
    // Propagate the point and the direction together: the direction without biases.
    let (mut h, mut d) = (a.to_vec(), v.to_vec());
    let (mut z, mut dz) = (Vec::new(), Vec::new());
    let mut best: Option<T> = None;
    for (k, layer) in net.layers().iter().enumerate().skip(m) {
        layer.affine.apply_into(&h, &mut z);
        dz.clear();
        for j in 0..layer.affine.out_dim() {
            dz.push(layer.affine.row(j).dot(&d));
        }
        // Each constraint's value at `a` and its rate of decrease along `v`.
        let checks: Vec<(T, T)> = match (pattern.layer(k), pattern.selection(k)) {
            (Some(mask), _) => z
                .iter()
                .zip(&dz)
                .zip(mask)
                .map(|((zj, dj), &active)| {
                    if active {
                        (zj.clone(), dj.clone())
                    } else {
                        (-zj.clone(), -dj.clone())
                    }
                })
                .collect(),
            (_, Some(selection)) => selection
                .constraints()
                .map(|(s, o)| (z[s].clone() - z[o].clone(), dz[s].clone() - dz[o].clone()))
                .collect(),
            _ => Vec::new(),
        };
        for (slack, rate) in checks {
            if slack.is_negative() {
                return Some(T::zero());
            }
            if rate.is_positive() {
                let t = slack / rate;
                if best.as_ref().is_none_or(|b| t < *b) {
                    best = Some(t);
                }
            }
        }
        if let Some(mask) = pattern.layer(k) {
            for ((zj, dj), &active) in z.iter_mut().zip(dz.iter_mut()).zip(mask) {
                if !active {
                    *zj = T::zero();
                    *dj = T::zero();
                }
            }
        }
        if let Some(selection) = pattern.selection(k) {
            z = selected(&z, selection);
            dz = selected(&dz, selection);
        }
        std::mem::swap(&mut h, &mut z);
        std::mem::swap(&mut d, &mut dz);
    }
    best
}

/// The (1-based layer, neuron) of every constraint of `P_m`, in the order of the slacks.
/// A max-pool constraint is labelled by the entry that must not exceed its window's winner.
pub fn constraint_labels(pattern: &Pattern, m: usize) -> Vec<(usize, usize)> {
    (m..pattern.num_layers())
        .flat_map(|k| match (pattern.layer(k), pattern.selection(k)) {
            (Some(mask), _) => (0..mask.len()).map(|j| (k + 1, j)).collect(),
            (_, Some(selection)) => selection.constraints().map(|(_, o)| (k + 1, o)).collect(),
            _ => Vec::new(),
        })
        .collect()
}

/// Membership of many points (the rows of `points`, inputs of layer `m`) at once: each layer
/// of the linearised network is one matrix product over all points, with error bounds from
/// row norms; points whose signs those bounds cannot settle go, one by one, to
/// [`membership_filtered`] (per-value bounds, then exact arithmetic). Gives the same verdicts
/// as [`membership_filtered`] on each row.
pub fn membership_batch(
    model: &Model,
    pattern: &Pattern,
    m: usize,
    points: &Array2<f64>,
) -> Vec<(Membership, Decision)> {
    // Wide layers: blocks of roots in parallel (rayon), each its own chain of matrix products.
    if points.nrows() <= ROOT_BLOCK {
        return membership_block(model, pattern, m, points.view());
    }
    let blocks: Vec<ArrayView2<'_, f64>> = points.axis_chunks_iter(Axis(0), ROOT_BLOCK).collect();
    blocks
        .into_par_iter()
        .map(|block| membership_block(model, pattern, m, block))
        .collect::<Vec<_>>()
        .into_iter()
        .flatten()
        .collect()
}

/// Roots checked together in one chain of matrix products; wider layers are split into blocks
/// of this many roots, checked in parallel.
const ROOT_BLOCK: usize = 256;

fn membership_block(
    model: &Model,
    pattern: &Pattern,
    m: usize,
    points: ArrayView2<'_, f64>,
) -> Vec<(Membership, Decision)> {
    let n = points.nrows();
    let mut state = vec![State::Pending; n];
    let mut slack = vec![f64::INFINITY; n];
    let net = model.net();
    let mut any_constraint = pattern.constrains(m);
    // Layer `m` in the order of its constraints (a sparse layer point by point, row by row; a
    // dense or shared one a block of rows at a time for all points): most roots that leave
    // the region do so at a constraint of their own layer, and the first one found ends their
    // check. The others carry layer `m`'s outputs, with their error bounds, into the batched
    // layers above.
    let width = net.layers()[m].out_dim();
    let mut h = Array2::<f64>::zeros((0, width));
    let mut h_err = Array2::<f64>::zeros((0, width));
    let mut alive: Vec<usize> = Vec::new();
    if let Some(blocks) = row_blocks(&net.layers()[m].affine) {
        let ids: Vec<usize> = (0..n).collect();
        (h, h_err, alive) = screen_in_blocks(
            model,
            pattern,
            m,
            (points, None),
            &ids,
            &blocks,
            &mut state,
            &mut slack,
        );
    } else {
        for (r, point) in points.outer_iter().enumerate() {
            let point = point.as_standard_layout();
            match screen(
                model,
                pattern,
                m,
                point.as_slice().expect("standard layout"),
            ) {
                Err(ended) => state[r] = ended,
                Ok((z, e, least)) => {
                    slack[r] = least;
                    h.push_row(ndarray::ArrayView1::from(&z))
                        .expect("one row of the layer's width");
                    h_err
                        .push_row(ndarray::ArrayView1::from(&e))
                        .expect("one row of the layer's width");
                    alive.push(r);
                }
            }
        }
    }
    let norms = model.row_norms();
    for (k, layer) in net.layers().iter().enumerate().skip(m + 1) {
        if alive.is_empty() {
            break;
        }
        // A shared layer copy by copy: a point leaving at an early copy skips the others.
        if let crate::model::Affine::Shared(_) = &layer.affine {
            any_constraint |= pattern.constrains(k);
            let blocks = row_blocks(&layer.affine).expect("a shared layer has blocks");
            let input = (h.view(), Some(h_err.view()));
            (h, h_err, alive) = screen_in_blocks(
                model, pattern, k, input, &alive, &blocks, &mut state, &mut slack,
            );
            continue;
        }
        let n = alive.len();
        // One product for all points; each value's bound from norms (Cauchy–Schwarz): of the
        // row, of the input and of the input's errors.
        let mut z = layer.affine.apply_rows(h.view());
        for (j, mut column) in z.columns_mut().into_iter().enumerate() {
            column += *layer.affine.bias(j);
        }
        let errors = ErrorModel::new(layer.affine.max_connected());
        let w_norm = &norms[k];
        let mut e = Array2::zeros(z.dim());
        for r in 0..n {
            let x_norm = norm_upper_iter(h.row(r).iter().copied());
            let err_norm = norm_upper_iter(h_err.row(r).iter().copied());
            for j in 0..layer.affine.out_dim() {
                e[[r, j]] =
                    errors.bound_from_norms(w_norm[j], x_norm, *layer.affine.bias(j), err_norm);
            }
        }
        if let Some(mask) = pattern.layer(k) {
            any_constraint = true;
            for (r, &point) in alive.iter().enumerate() {
                for (j, &active) in mask.iter().enumerate() {
                    if state[point] == State::Pending {
                        match constraint(k + 1, j, active, z[[r, j]], e[[r, j]]) {
                            Ok(signed) => slack[point] = slack[point].min(signed),
                            Err(ended) => state[point] = ended,
                        }
                    }
                    if !active {
                        // Masked to an exact zero: no error carries on.
                        z[[r, j]] = 0.0;
                        e[[r, j]] = 0.0;
                    }
                }
            }
        }
        if let Some(selection) = pattern.selection(k) {
            any_constraint = true;
            for (r, &point) in alive.iter().enumerate() {
                if state[point] != State::Pending {
                    continue;
                }
                let (zr, er) = (z.row(r), e.row(r));
                let (zr, er) = (zr.as_slice().expect("rows"), er.as_slice().expect("rows"));
                for (s, o) in selection.constraints() {
                    match window_constraint(k + 1, zr, er, s, o) {
                        Ok(signed) => slack[point] = slack[point].min(signed),
                        Err(ended) => {
                            state[point] = ended;
                            break;
                        }
                    }
                }
            }
            let winners: Vec<usize> = selection.selected.iter().map(|&s| s as usize).collect();
            z = z.select(Axis(1), &winners);
            e = e.select(Axis(1), &winners);
        }
        let pending: Vec<usize> = (0..n)
            .filter(|&r| state[alive[r]] == State::Pending)
            .collect();
        if pending.len() < n {
            z = z.select(Axis(0), &pending);
            e = e.select(Axis(0), &pending);
            alive = pending.iter().map(|&r| alive[r]).collect();
        }
        h = z;
        h_err = e;
    }
    (0..n)
        .map(|r| match state[r] {
            State::Pending => (
                Membership::Inside {
                    slack: any_constraint.then_some(slack[r]),
                },
                Decision::Float,
            ),
            // The batched bounds come from norms; a point they leave undecided is checked
            // again with per-value bounds, which fall back to exact arithmetic in turn.
            State::NeedsExact => membership_filtered(model, pattern, m, &points.row(r).to_vec()),
            state => ended(model, pattern, m, &points.row(r).to_vec(), state),
        })
        .collect()
}

/// The verdict of a point whose check ended at `state` (outside, or needing more than the
/// f64 bound, which the filter's next tiers then decide from the start).
fn ended(
    model: &Model,
    pattern: &Pattern,
    m: usize,
    point: &[f64],
    state: State,
) -> (Membership, Decision) {
    match state {
        State::Outside {
            layer,
            neuron,
            margin,
        } => (
            Membership::Outside {
                layer,
                neuron,
                margin,
            },
            Decision::Float,
        ),
        State::NeedsExact | State::Pending => refined_or_exact(model, pattern, m, point),
    }
}

#[derive(Clone, Copy, PartialEq)]
enum State {
    Pending,
    Outside {
        layer: usize,
        neuron: usize,
        margin: f64,
    },
    NeedsExact,
}

/// Constraint `(layer, neuron)` of a pending point, `σ z >= 0` with `z = value ± error`:
/// `Ok(σ z)` when it certainly holds, else the state that ends the point's check (checked in
/// order, it is then the first violated constraint, or a sign only exact arithmetic settles).
fn constraint(
    layer: usize,
    neuron: usize,
    active: bool,
    value: f64,
    error: f64,
) -> Result<f64, State> {
    let signed = Bounded {
        value: if active { value } else { -value },
        error,
    };
    match signed.certainly_nonnegative() {
        Some(true) => Ok(signed.value),
        Some(false) => Err(State::Outside {
            layer,
            neuron,
            margin: signed.value,
        }),
        None => Err(State::NeedsExact),
    }
}

/// Max-pool constraint `z[s] − z[o] >= 0` of a pending point, as [`constraint`] does for a
/// ReLU neuron; labelled by the entry `o`.
fn window_constraint(layer: usize, z: &[f64], e: &[f64], s: usize, o: usize) -> Result<f64, State> {
    let signed = difference(z, e, s, o);
    match signed.certainly_nonnegative() {
        Some(true) => Ok(signed.value),
        Some(false) => Err(State::Outside {
            layer,
            neuron: o,
            margin: signed.value,
        }),
        None => Err(State::NeedsExact),
    }
}

/// Rows of a dense layer screened together (one matrix product for all pending points).
const SCREEN_CHUNK: usize = 64;

/// A layer cut into blocks of consecutive rows for [`screen_in_blocks`]: each block one matrix
/// (a shared layer's block for each copy, or a chunk of a dense layer's rows), the bias of its
/// rows, the input columns it reads and its first output row.
struct RowBlock<'a> {
    weight: ndarray::ArrayView2<'a, f64>,
    bias: ndarray::ArrayView1<'a, f64>,
    columns: std::ops::Range<usize>,
    first_row: usize,
}

fn row_blocks(affine: &crate::model::Affine) -> Option<Vec<RowBlock<'_>>> {
    match affine {
        crate::model::Affine::Shared(shared) => {
            let (block, bias) = (shared.block().weight(), shared.block().bias());
            let (rows, cols) = block.dim();
            Some(
                (0..shared.copies())
                    .map(|copy| RowBlock {
                        weight: block.view(),
                        bias: bias.view(),
                        columns: copy * cols..(copy + 1) * cols,
                        first_row: copy * rows,
                    })
                    .collect(),
            )
        }
        crate::model::Affine::Dense(dense) => {
            let (w, b) = (dense.weight(), dense.bias());
            let (rows, cols) = w.dim();
            Some(
                (0..rows)
                    .step_by(SCREEN_CHUNK)
                    .map(|r0| {
                        let r1 = (r0 + SCREEN_CHUNK).min(rows);
                        RowBlock {
                            weight: w.slice(ndarray::s![r0..r1, ..]),
                            bias: b.slice(ndarray::s![r0..r1]),
                            columns: 0..cols,
                            first_row: r0,
                        }
                    })
                    .collect(),
            )
        }
        crate::model::Affine::Sparse(_) => None,
    }
}

/// [`screen`] for a dense or shared layer `k` and a block of points, one block of rows at a
/// time for all points still pending (one matrix product each), each value's bound from norms
/// (Cauchy–Schwarz: of the row, and of the input columns the block reads and of their errors)
/// as in the batched layers. `input` holds the layer inputs of the points `ids` (one row each)
/// and their error bounds (`None`: exact). Returns the outputs and error bounds of the points
/// that pass, and which points they are.
#[allow(clippy::too_many_arguments)]
fn screen_in_blocks(
    model: &Model,
    pattern: &Pattern,
    k: usize,
    input: (ArrayView2<'_, f64>, Option<ArrayView2<'_, f64>>),
    ids: &[usize],
    blocks: &[RowBlock<'_>],
    state: &mut [State],
    slack: &mut [f64],
) -> (Array2<f64>, Array2<f64>, Vec<usize>) {
    let (h, h_err) = input;
    let affine = &model.net().layers()[k].affine;
    let (n, width) = (h.nrows(), affine.out_dim());
    let errors = ErrorModel::new(affine.max_connected());
    let w_norm = &model.row_norms()[k];
    let mask = pattern.layer(k);
    // Norms of the input columns a block reads, per point; consecutive blocks reading the same
    // columns (the chunks of a dense layer) share them.
    let mut norms: Option<(std::ops::Range<usize>, Vec<f64>, Vec<f64>)> = None;
    // Per block: the points pending at it (in increasing order) and their outputs and bounds.
    let mut done: Vec<(Vec<usize>, Array2<f64>, Array2<f64>)> = Vec::new();
    let mut pending: Vec<usize> = (0..n).collect();
    for block in blocks {
        if pending.is_empty() {
            break;
        }
        if norms
            .as_ref()
            .is_none_or(|(cols, _, _)| *cols != block.columns)
        {
            let of = |m: ArrayView2<'_, f64>| -> Vec<f64> {
                let part = m.slice(ndarray::s![.., block.columns.clone()]);
                part.outer_iter()
                    .map(|r| norm_upper_iter(r.iter().copied()))
                    .collect()
            };
            let x = of(h);
            let e = h_err.map_or_else(|| vec![0.0; n], of);
            norms = Some((block.columns.clone(), x, e));
        }
        let (_, x_norm, err_norm) = norms.as_ref().expect("set above");
        let inputs = h.slice(ndarray::s![.., block.columns.clone()]);
        let values = if pending.len() == n {
            inputs.dot(&block.weight.t())
        } else {
            inputs.select(Axis(0), &pending).dot(&block.weight.t())
        };
        let rows = block.weight.nrows();
        let mut z = Array2::<f64>::zeros((pending.len(), rows));
        let mut e = Array2::<f64>::zeros((pending.len(), rows));
        for (i, &row) in pending.iter().enumerate() {
            let r = ids[row];
            for (jr, &v) in values.row(i).iter().enumerate() {
                let j = block.first_row + jr;
                let value = v + block.bias[jr];
                let error =
                    errors.bound_from_norms(w_norm[j], x_norm[row], block.bias[jr], err_norm[row]);
                // Outputs past the mask are carried without ReLU.
                let active = mask.and_then(|mask| mask.get(j).copied());
                if let Some(active) = active {
                    match constraint(k + 1, j, active, value, error) {
                        Ok(signed) => slack[r] = slack[r].min(signed),
                        Err(ended) => {
                            state[r] = ended;
                            break;
                        }
                    }
                }
                // An inactive neuron is masked to an exact zero: no error carries on.
                if active != Some(false) {
                    z[[i, jr]] = value;
                    e[[i, jr]] = error;
                }
            }
        }
        done.push((pending.clone(), z, e));
        pending.retain(|&row| state[ids[row]] == State::Pending);
    }
    // The points that passed every block were pending at each: gather their rows.
    let mut z = Array2::<f64>::zeros((pending.len(), width));
    let mut e = Array2::<f64>::zeros((pending.len(), width));
    for (block, (at, values, errs)) in blocks.iter().zip(&done) {
        let rows = block.first_row..block.first_row + block.weight.nrows();
        for (s, row) in pending.iter().enumerate() {
            let i = at
                .binary_search(row)
                .expect("a passing point was pending at every block");
            z.row_mut(s)
                .slice_mut(ndarray::s![rows.clone()])
                .assign(&values.row(i));
            e.row_mut(s)
                .slice_mut(ndarray::s![rows.clone()])
                .assign(&errs.row(i));
        }
    }
    (z, e, pending.iter().map(|&row| ids[row]).collect())
}

/// Each value's bound from norms (Cauchy–Schwarz: of the row and of the point) as in the
/// batched layers, so that a point inside costs about what the product would.
/// Layer `m` of one point, checked row by row: when every constraint holds, its outputs
/// (inactive neurons masked to exact zeros) with their error bounds, and the smallest `σ z`;
/// else the state that ends the point's check.
fn screen(
    model: &Model,
    pattern: &Pattern,
    m: usize,
    point: &[f64],
) -> Result<(Vec<f64>, Vec<f64>, f64), State> {
    let affine = &model.net().layers()[m].affine;
    let mask = pattern.layer(m);
    let out = affine.out_dim();
    let errors = ErrorModel::new(affine.max_connected());
    let w_norm = &model.row_norms()[m];
    // The point is exact: no input errors.
    let x_norm = norm_upper_iter(point.iter().copied());
    let (mut z, mut e) = (Vec::with_capacity(out), Vec::with_capacity(out));
    let mut least = f64::INFINITY;
    for (j, &norm) in w_norm.iter().enumerate().take(out) {
        let bias = *affine.bias(j);
        let value = affine.row(j).affine_dot(point, &bias);
        let error = errors.bound_from_norms(norm, x_norm, bias, 0.0);
        // Outputs past the mask are carried without ReLU.
        match mask.and_then(|mask| mask.get(j).copied()) {
            None => {
                z.push(value);
                e.push(error);
            }
            Some(active) => {
                least = least.min(constraint(m + 1, j, active, value, error)?);
                // Masked to an exact zero: no error carries on.
                z.push(if active { value } else { 0.0 });
                e.push(if active { error } else { 0.0 });
            }
        }
    }
    if let Some(selection) = pattern.selection(m) {
        for (s, o) in selection.constraints() {
            least = least.min(window_constraint(m + 1, &z, &e, s, o)?);
        }
        (z, e) = (selected(&z, selection), selected(&e, selection));
    }
    Ok((z, e, least))
}

/// `z_k(a) = A a + c` for one layer `k` above `m`, inside the region.
#[derive(Clone, Debug, PartialEq)]
pub struct AffineMap<T> {
    pub a: Array2<T>,
    pub c: Array1<T>,
}

/// The affine maps `a ↦ z_k(a)` for every layer `k >= m` (0-based), with the pattern fixed.
pub fn affine_maps<T: Scalar>(net: &Network<T>, pattern: &Pattern, m: usize) -> Vec<AffineMap<T>> {
    let layers = net.layers();
    let dim = layers[m].affine.in_dim();
    // The map of the current layer input h_{k-1}(a): starts as the identity.
    let mut h_a = Array2::from_shape_fn(
        (dim, dim),
        |(i, j)| if i == j { T::one() } else { T::zero() },
    );
    let mut h_c = Array1::from_elem(dim, T::zero());
    let mut maps = Vec::with_capacity(layers.len() - m);
    for (k, layer) in layers.iter().enumerate().skip(m) {
        let out = layer.affine.out_dim();
        let mut a = Array2::from_elem((out, dim), T::zero());
        let mut c = Array1::from_elem(out, T::zero());
        for j in 0..out {
            for (i, wi) in layer.affine.row(j).entries() {
                if wi.is_zero() {
                    continue;
                }
                for col in 0..dim {
                    T::mul_add_assign(&mut a[[j, col]], wi, &h_a[[i, col]]);
                }
                T::mul_add_assign(&mut c[j], wi, &h_c[i]);
            }
            c[j] = c[j].clone() + layer.affine.bias(j).clone();
        }
        let (mut next_a, mut next_c) = (a.clone(), c.clone());
        if let Some(mask) = pattern.layer(k) {
            for (j, &active) in mask.iter().enumerate() {
                if !active {
                    next_a.row_mut(j).fill(T::zero());
                    next_c[j] = T::zero();
                }
            }
        }
        if let Some(selection) = pattern.selection(k) {
            let winners: Vec<usize> = selection.selected.iter().map(|&s| s as usize).collect();
            next_a = next_a.select(Axis(0), &winners);
            next_c = next_c.select(Axis(0), &winners);
        }
        maps.push(AffineMap { a, c });
        h_a = next_a;
        h_c = next_c;
    }
    maps
}

/// The polytope `P_m = { a : G a + h >= 0 }`, one row per ReLU neuron of layers >= m and per
/// max-pool constraint.
#[derive(Clone, Debug, PartialEq)]
pub struct Polytope<T> {
    pub g: Array2<T>,
    pub h: Array1<T>,
    /// The (1-based layer, neuron) of each row.
    pub rows: Vec<(usize, usize)>,
}

impl<T: Scalar> Polytope<T> {
    pub fn contains(&self, a: &[T]) -> bool {
        (0..self.g.nrows()).all(|r| {
            let row = self.g.row(r);
            let mut acc = self.h[r].clone();
            for (gi, ai) in row.iter().zip(a) {
                T::mul_add_assign(&mut acc, gi, ai);
            }
            !acc.is_negative()
        })
    }

    pub fn dim(&self) -> usize {
        self.g.ncols()
    }

    pub fn num_constraints(&self) -> usize {
        self.g.nrows()
    }
}

/// `P_m(x)` for the pattern of `x`, materialised as dense constraints.
pub fn polytope<T: Scalar>(net: &Network<T>, pattern: &Pattern, m: usize) -> Polytope<T> {
    let maps = affine_maps(net, pattern, m);
    let dim = net.layers()[m].affine.in_dim();
    let count = pattern.constraints_from(m);
    let mut g = Array2::from_elem((count, dim), T::zero());
    let mut h = Array1::from_elem(count, T::zero());
    let mut rows = Vec::with_capacity(count);
    for (offset, map) in maps.iter().enumerate() {
        let k = m + offset;
        if let Some(mask) = pattern.layer(k) {
            for (j, &active) in mask.iter().enumerate() {
                let r = rows.len();
                for col in 0..dim {
                    let v = map.a[[j, col]].clone();
                    g[[r, col]] = if active { v } else { -v };
                }
                h[r] = if active {
                    map.c[j].clone()
                } else {
                    -map.c[j].clone()
                };
                rows.push((k + 1, j));
            }
        }
        if let Some(selection) = pattern.selection(k) {
            for (s, o) in selection.constraints() {
                let r = rows.len();
                for col in 0..dim {
                    g[[r, col]] = map.a[[s, col]].clone() - map.a[[o, col]].clone();
                }
                h[r] = map.c[s].clone() - map.c[o].clone();
                rows.push((k + 1, o));
            }
        }
    }
    Polytope { g, h, rows }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ir::dense_layer;

    fn tiny() -> Model {
        // 2 -> 2 (ReLU) -> 1 (ReLU)
        let l1 = dense_layer(2, 2, vec![1.0, -1.0, 0.5, 1.0], vec![0.0, -0.25], true).unwrap();
        let l2 = dense_layer(1, 2, vec![1.0, 1.0], vec![0.0], true).unwrap();
        Model::new(Network::new(vec![l1, l2]).unwrap())
    }

    /// A ReLU whose input is certainly negative outputs an exact zero, so the large bound of
    /// `x0 − 3 x1 = −2e16` does not reach layer 2, whose value is then its bias, 1e-3, exactly:
    /// the pattern is decided in f64. Carried on, the bound (about 9) would hide its sign.
    #[test]
    fn certainly_inactive_neurons_carry_no_error() {
        let l1 = dense_layer(1, 2, vec![1.0, -3.0], vec![0.0], true).unwrap();
        let l2 = dense_layer(1, 1, vec![1.0], vec![1e-3], true).unwrap();
        let model = Model::new(Network::new(vec![l1, l2]).unwrap());
        let x = [1e16, 1e16];
        let (z, e) = bounded_affine_layer(&model.net().layers()[0].affine, &x, &[]);
        assert!(z[0] < -e[0] && e[0] > 1.0, "{z:?} ± {e:?}");
        let (_, pattern, decision) = trace_and_pattern(&model, &x);
        assert_eq!(decision, Decision::Float);
        assert_eq!(pattern.layer(0), Some(&[false][..]));
        assert_eq!(pattern.layer(1), Some(&[true][..]));
        assert_eq!(pattern_from_layer(&model, 0, &x).1, Decision::Float);
    }

    /// Judges `points` (inputs of layer `m`) in blocks and asserts each verdict equals exact
    /// membership, the first violated (layer, neuron) included; returns the number inside and
    /// the violated constraint of each point outside.
    fn batched_verdicts_are_exact(
        model: &Model,
        pattern: &Pattern,
        m: usize,
        points: &Array2<f64>,
    ) -> (usize, Vec<(usize, usize)>) {
        let batched = membership_batch(model, pattern, m, points);
        let (mut inside, mut outside) = (0, Vec::new());
        for (r, (verdict, _)) in batched.iter().enumerate() {
            let exact: Vec<Rational> = points
                .row(r)
                .iter()
                .map(|&v| Rational::from_f64(v))
                .collect();
            match (verdict, membership(model.exact(), pattern, m, &exact)) {
                (Membership::Inside { .. }, Membership::Inside { .. }) => inside += 1,
                (
                    Membership::Outside { layer, neuron, .. },
                    Membership::Outside {
                        layer: l,
                        neuron: j,
                        ..
                    },
                ) => {
                    assert_eq!((*layer, *neuron), (l, j), "input of {m}, row {r}");
                    outside.push((l, j));
                }
                (v, e) => panic!("input of {m}, row {r}: batched {v:?}, exact {e:?}"),
            }
        }
        (inside, outside)
    }

    /// The weights of the hand-built test layers: quarters between −1.25 and 1.25.
    fn grid(k: usize) -> f64 {
        ((k * 7 + 3) % 11) as f64 / 4.0 - 1.25
    }

    /// A dense ReLU layer from 2 inputs to `width` outputs, with [`grid`] weights.
    fn grid_layer(width: usize) -> crate::model::ir::Layer {
        let weights = (0..2 * width).map(grid).collect();
        let bias = (0..width).map(|k| grid(k + 5) / 2.0).collect();
        dense_layer(width, 2, weights, bias, true).unwrap()
    }

    /// More than two blocks of points spread around `a`, some equal to it.
    fn points_around(a: &[f64]) -> Array2<f64> {
        Array2::from_shape_fn((2 * ROOT_BLOCK + 31, a.len()), |(r, c)| {
            a[c] + (((r * (c + 5)) % 13) as f64 / 4.0 - 1.5) * (r % 4) as f64 / 3.0
        })
    }

    /// A shared layer (3 copies of a 3×2 block) between dense ones: points judged in blocks,
    /// copy by copy, get the exact verdicts, including the first violated constraint.
    #[test]
    fn shared_layers_screened_copy_by_copy_give_the_exact_verdicts() {
        use crate::model::ir::{Dense, Layer, Shared};
        let w = grid;
        let l1 = grid_layer(6);
        let block = Dense::new(
            Array2::from_shape_fn((3, 2), |(r, c)| w(3 * r + c + 1)),
            Array1::from_shape_fn(3, |r| w(r + 9) / 4.0),
        )
        .unwrap();
        let l2 = Layer {
            affine: crate::model::Affine::Shared(Shared::new(block, 3).unwrap()),
            relu: true,
            max_pool: None,
            linear_tail: 0,
        };
        let l3 = dense_layer(
            2,
            9,
            (0..18).map(|k| w(k + 2)).collect(),
            vec![0.5, -0.5],
            false,
        )
        .unwrap();
        let model = Model::new(Network::new(vec![l1, l2, l3]).unwrap());
        let (trace, pattern, _) = trace_and_pattern(&model, &[0.75, -0.5]);
        // Points around the input of the shared layer (its own constraints come first), and
        // around the network input (the shared layer's inputs then carry error bounds).
        for m in [1, 0] {
            let a = trace.layer_input(m).to_vec();
            let points = points_around(&a);
            let (inside, outside) = batched_verdicts_are_exact(&model, &pattern, m, &points);
            let at_shared = outside.iter().filter(|(l, _)| *l == 2).count();
            let outside = outside.len();
            assert!(
                inside > 10 && outside > 100 && at_shared >= 10,
                "input of {m}: {inside} inside, {outside} outside, {at_shared} at the shared layer"
            );
        }
    }

    /// A max-pool layer (windows of 3 over a ReLU layer, one input copied twice into a window) between
    /// dense ones: points in blocks and one by one get the exact verdicts, including the
    /// first losing entry that overtakes its window's winner; the polytope and the step
    /// length agree with them; ties go to the first entry.
    #[test]
    fn max_pool_layers_give_the_exact_verdicts() {
        use crate::model::ir::{Layer, Sparse};
        let l1 = grid_layer(5);
        let picks = [0u32, 1, 2, 3, 4, 3];
        let gather = Sparse::from_rows(
            5,
            picks.iter().map(|&i| vec![(i, 1.0)]).collect(),
            Array1::zeros(6),
        )
        .unwrap();
        let pool = Layer {
            affine: crate::model::Affine::Sparse(gather),
            relu: false,
            max_pool: Some(3),
            linear_tail: 0,
        };
        let l3 = dense_layer(2, 2, vec![1.0, -0.5, 0.25, 1.5], vec![0.5, -0.5], true).unwrap();
        let model = Model::new(Network::new(vec![l1, pool, l3]).unwrap());
        assert_eq!(model.net().widths(), vec![2, 5, 2, 2]);
        let x = [0.75, -0.5];
        let (trace, pattern, _) = trace_and_pattern(&model, &x);
        let selection = pattern.selection(1).expect("a max-pool layer");
        assert_eq!(selection.len(), 4);
        // h_2 is the largest entry of each window, and the pattern names the first one.
        for (g, &s) in selection.selected.iter().enumerate() {
            let window: Vec<f64> = (3 * g..3 * g + 3).map(|o| trace.pre[1][o]).collect();
            let best = window.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            assert_eq!(trace.layer_input(2)[g], best);
            let first = window.iter().position(|&v| v == best).unwrap();
            assert_eq!(s as usize, 3 * g + first);
        }
        let exact = polytope(model.exact(), &pattern, 0);
        for m in [1, 0] {
            let a = trace.layer_input(m).to_vec();
            let points = points_around(&a);
            let n = points.nrows();
            let (inside, outside) = batched_verdicts_are_exact(&model, &pattern, m, &points);
            let at_pool = outside.iter().filter(|(l, _)| *l == 2).count();
            // From the network input, most points leave at layer 1's ReLUs first.
            assert!(
                inside > 10 && outside.len() > 100 && (m == 0 || at_pool >= 10),
                "input of {m}: {inside} inside, {} outside, {at_pool} at the max-pool layer",
                outside.len()
            );
            for r in 0..n {
                let point: Vec<f64> = points.row(r).to_vec();
                let (alone, _) = membership_filtered(&model, &pattern, m, &point);
                let exact_point: Vec<Rational> =
                    point.iter().map(|&v| Rational::from_f64(v)).collect();
                let truth = membership(model.exact(), &pattern, m, &exact_point);
                assert_eq!(alone.is_inside(), truth.is_inside(), "row {r}");
                if m == 0 {
                    assert_eq!(exact.contains(&exact_point), truth.is_inside(), "row {r}");
                    // From the input towards the point, the step stops where the region ends.
                    let x_exact: Vec<Rational> = x.iter().map(|&v| Rational::from_f64(v)).collect();
                    let v: Vec<Rational> = x_exact
                        .iter()
                        .zip(&exact_point)
                        .map(|(a, p)| a.clone() - p.clone())
                        .collect();
                    let t = step_length(model.exact(), &pattern, 0, &x_exact, &v);
                    let reaches = t.as_ref().is_none_or(|t| *t >= Rational::one());
                    assert_eq!(reaches, truth.is_inside(), "row {r}: step {t:?}");
                }
            }
        }
        // The second window copies input 3 twice (entries 3 and 5): the copy never wins.
        let h1 = trace.layer_input(1);
        let want = if h1[3] >= h1[4] { 3 } else { 4 };
        assert_eq!(pattern.selection(1).unwrap().selected[1], want);
    }

    /// A wide layer screened row by row: points leaving at an early row, at a late row, or
    /// staying inside all get the exact verdicts.
    #[test]
    fn wide_layers_screened_row_by_row_give_the_exact_verdicts() {
        const EARLY: usize = 1024;
        let width = EARLY + 500;
        let w = |k: usize| ((k * 7919 + 13) % 23) as f64 / 8.0 - 1.375;
        let x = [0.5, -0.25, 0.75];
        // The first rows have margins of 2 at `x`, the later ones margins of 1e-3: small
        // moves leave the region at a late row, large ones at an early row.
        let bias: Vec<f64> = (0..width)
            .map(|j| {
                let z: f64 = (0..3).map(|c| w(3 * j + c) * x[c]).sum();
                let margin = if j < EARLY { 2.0 } else { 1e-3 };
                let sign = if j % 2 == 0 { 1.0 } else { -1.0 };
                sign * margin - z
            })
            .collect();
        let l1 = dense_layer(width, 3, (0..3 * width).map(w).collect(), bias, true).unwrap();
        let l2 = dense_layer(
            2,
            width,
            (0..2 * width).map(|k| w(k + 1)).collect(),
            vec![0.25, -0.5],
            false,
        )
        .unwrap();
        let model = Model::new(Network::new(vec![l1, l2]).unwrap());
        let (_, pattern, _) = trace_and_pattern(&model, &x);
        let n = 120;
        let points = Array2::from_shape_fn((n, 3), |(r, c)| {
            let size = [1e-6, 1e-2, 10.0][r % 3];
            x[c] + (((r * (c + 3)) % 17) as f64 / 8.0 - 1.0) * size
        });
        let (inside, outside) = batched_verdicts_are_exact(&model, &pattern, 0, &points);
        let early = outside.iter().filter(|(_, j)| *j < EARLY).count();
        let late = outside.len() - early;
        assert!(
            inside >= 10 && early >= 10 && late >= 10,
            "{inside} inside, {early} early, {late} late"
        );
    }

    #[test]
    fn input_lies_in_its_own_region() {
        let model = tiny();
        let x = [1.0, 0.5];
        let (trace, pattern, decision) = trace_and_pattern(&model, &x);
        assert_eq!(decision, Decision::Float);
        assert_eq!(pattern.bit_strings(), vec!["11", "1"]);
        assert!(membership(model.net(), &pattern, 0, &x).is_inside());
        assert!(membership(model.net(), &pattern, 1, trace.layer_input(1)).is_inside());
        let poly = polytope(model.net(), &pattern, 0);
        assert_eq!(poly.num_constraints(), 3);
        assert!(poly.contains(&x));
    }

    #[test]
    fn face_points_are_inside_and_decided_exactly() {
        let model = tiny();
        let (_, pattern, _) = trace_and_pattern(&model, &[1.0, 0.5]);
        // On the face x0 - x1 = 0 of neuron (1, 0).
        let (m, _) = membership_filtered(&model, &pattern, 0, &[0.3, 0.3]);
        assert!(m.is_inside(), "{m:?}");
        let (m, _) = membership_filtered(&model, &pattern, 0, &[0.3, 0.4]);
        assert_eq!(
            m,
            Membership::Outside {
                layer: 1,
                neuron: 0,
                margin: 0.3 - 0.4
            }
        );
    }

    #[test]
    fn blocks_of_roots_get_the_same_verdicts_as_single_points() {
        let model = tiny();
        let (_, pattern, _) = trace_and_pattern(&model, &[1.0, 0.5]);
        // More rows than one block, on a grid that puts many points on faces.
        let n = 3 * ROOT_BLOCK + 7;
        let points =
            Array2::from_shape_fn((n, 2), |(r, c)| ((r * (c + 3)) % 17) as f64 / 8.0 - 1.0);
        let batched = membership_batch(&model, &pattern, 0, &points);
        assert_eq!(batched.len(), n);
        for (r, (verdict, _)) in batched.iter().enumerate() {
            let row = points.row(r).to_vec();
            let (single, _) = membership_filtered(&model, &pattern, 0, &row);
            match (verdict, &single) {
                (Membership::Inside { .. }, Membership::Inside { .. }) => {}
                (
                    Membership::Outside {
                        layer: a,
                        neuron: b,
                        ..
                    },
                    Membership::Outside {
                        layer: c,
                        neuron: d,
                        ..
                    },
                ) => {
                    assert_eq!((a, b), (c, d), "row {r}")
                }
                _ => panic!("row {r}: batched {verdict:?}, single {single:?}"),
            }
        }
    }

    #[test]
    fn affine_map_matches_linearised_forward() {
        let model = tiny();
        let (_, pattern, _) = trace_and_pattern(&model, &[1.0, 0.5]);
        let maps = affine_maps(model.exact(), &pattern, 0);
        let p = [Rational::from_f64(0.75), Rational::from_f64(-0.5)];
        let z1: Vec<Rational> = (0..2)
            .map(|j| {
                crate::exact::scalar::affine_dot(
                    maps[0].a.row(j).to_slice().unwrap(),
                    &p,
                    &maps[0].c[j],
                )
            })
            .collect();
        let mut expect = Vec::new();
        model.exact().layers()[0].affine.apply_into(&p, &mut expect);
        assert_eq!(z1, expect);
    }
}
