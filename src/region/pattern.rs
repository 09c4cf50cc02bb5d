//! Activation patterns: on which piece of its activation each neuron is (active or not for
//! ReLU, LeakyRelu and PRelu; below, between or above the bounds for Clip) and which entry wins
//! each max-pool window (`Pattern`, its `Face`s, the `Local` map of each neuron and window
//! `Selection`s), and how a point's pattern is decided exactly (`trace_and_pattern`,
//! `pattern_from_layer`): f64 with error bounds, a double-double pass with its own bounds
//! (`compensated.rs`) where those cannot settle a sign, the filter's second tier where that
//! cannot either (a ReLU network's values below double-double's reach, or another
//! activation), exact rationals where none can.

use crate::exact::filter::{affine_bounded, Bounded};
use crate::exact::{Rational, Scalar};
use crate::model::forward::{activate, forward, Trace};
use crate::model::{Activation, Layer, Model, Network};

use super::compensated::{self, Values};
use super::filter::{bounded_affine_layer, difference, Decision};
use super::refined;

/// The activation pattern `s_{l,j} = [z_{l,j}(x) > 0]` of ReLU, LeakyRelu and PRelu layers
/// (over the outputs with an activation: a layer's carried tail has none), the [`Piece`] of
/// each neuron of a Clip layer, and for max-pool layers the entry of `z_l` that wins each
/// window (the first largest one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    layers: Vec<LayerPattern>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum LayerPattern {
    Linear,
    /// ReLU, LeakyRelu or PRelu: whether each neuron is above 0.
    Relu(Vec<bool>),
    /// Clip: each neuron's piece, and which bounds the layer has.
    Clip {
        lo: bool,
        hi: bool,
        pieces: Vec<Piece>,
    },
    Max {
        window: usize,
        selected: Vec<u32>,
    },
}

/// The piece of a Clip neuron: `z <= min` (output `min`), between the bounds (output `z`), or
/// `z > max` (output `max`). A bound the Clip does not have is never crossed: without `min`
/// no neuron is below, without `max` none above.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Piece {
    /// `z <= min`: the output is `min`.
    Below,
    /// `min <= z <= max`: the output is `z`.
    Between,
    /// `z >= max`: the output is `max`.
    Above,
}

impl Piece {
    /// The piece of `z` under the bounds: below when `z` is not above `min` (as an inactive
    /// ReLU is at 0), above when `z` is above `max`.
    pub fn of<T: Scalar>(z: &T, lo: Option<&T>, hi: Option<&T>) -> Self {
        if lo.is_some_and(|lo| z <= lo) {
            Piece::Below
        } else if hi.is_some_and(|hi| z > hi) {
            Piece::Above
        } else {
            Piece::Between
        }
    }

    /// The faces of the piece in order, as `(upper, above)`: `σ (z − c) >= 0` with `c` the
    /// upper bound (`upper`) or the lower one, `σ = +1` for `above`.
    fn faces(self, lo: bool, hi: bool) -> impl Iterator<Item = (bool, bool)> {
        let list: [Option<(bool, bool)>; 2] = match self {
            Piece::Below => [Some((false, false)), None],
            Piece::Between => [lo.then_some((false, true)), hi.then_some((true, false))],
            Piece::Above => [Some((true, true)), None],
        };
        list.into_iter().flatten()
    }

    fn face_count(self, lo: bool, hi: bool) -> usize {
        self.faces(lo, hi).count()
    }
}

/// How output `j` of a layer follows its pre-activation inside the region: `h = z`,
/// `h = s · z` (the slope of a LeakyRelu or PRelu neuron below 0) or `h = c` (an inactive ReLU
/// at 0, a Clip neuron at its bound).
#[derive(Clone, Debug, PartialEq)]
pub enum Local<T> {
    /// `h = z`.
    Identity,
    /// `h = s · z`.
    Scale(T),
    /// `h = c`.
    Constant(T),
}

/// The winners of a max-pool layer's windows: `selected[g]` indexes `z_l`.
#[derive(Clone, Copy, Debug)]
pub struct Selection<'a> {
    /// The number of entries of `z_l` in each window.
    pub window: usize,
    /// Per window `g`, the index into `z_l` of its winner (in `g·window .. (g+1)·window`).
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

    /// Whether the layer has no constraints (windows of one entry, or no windows).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One constraint of a layer's region: `σ z_j >= 0` for a ReLU, LeakyRelu or PRelu neuron
/// (`σ = +1` active, `−1` inactive), `σ (z_j − c) >= 0` for a bound `c` of a Clip neuron, or
/// `z_winner − z_entry >= 0` for an entry of a max-pool window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Face {
    /// `σ z_neuron >= 0`, the sign of a neuron whose activation bends at 0.
    Sign {
        /// The neuron, 0-based in its layer.
        neuron: usize,
        /// Whether the neuron is active (`σ = +1`) or inactive (`σ = −1`).
        active: bool,
    },
    /// `σ (z_neuron − c) >= 0` for a bound `c` of a Clip neuron.
    Bound {
        /// The neuron, 0-based in its layer.
        neuron: usize,
        /// Whether `c` is the Clip's `max` (else its `min`).
        upper: bool,
        /// Whether the neuron is at or above `c` (`σ = +1`) or at or below it (`σ = −1`).
        above: bool,
    },
    /// `z_winner − z_entry >= 0`, an entry of a max-pool window not above its winner.
    Window {
        /// The index into `z_l` of the window's winner.
        winner: usize,
        /// The index into `z_l` of another entry of the same window.
        entry: usize,
    },
}

impl Face {
    /// The entry of `z` that labels the constraint: the neuron, or the entry that must not
    /// exceed its window's winner.
    pub fn label(self) -> usize {
        match self {
            Face::Sign { neuron, .. } | Face::Bound { neuron, .. } => neuron,
            Face::Window { entry, .. } => entry,
        }
    }

    /// `σ`: the sign of the constraint's first term.
    pub fn sign(self) -> f64 {
        match self {
            Face::Sign { active: false, .. } | Face::Bound { above: false, .. } => -1.0,
            _ => 1.0,
        }
    }

    /// The entries of `z` whose (signed) difference must be non-negative: `(first, second)`
    /// stands for `σ z_first − z_second` (less `σ c` for a Clip bound).
    pub fn entries(self) -> (usize, Option<usize>) {
        match self {
            Face::Sign { neuron, .. } | Face::Bound { neuron, .. } => (neuron, None),
            Face::Window { winner, entry } => (winner, Some(entry)),
        }
    }

    /// The constraint's linear part at `d`: `σ d_j`, or `d_winner − d_entry`.
    pub fn linear<T: Scalar>(self, d: &[T]) -> T {
        match self.entries() {
            (j, None) if self.sign() < 0.0 => -d[j].clone(),
            (j, None) => d[j].clone(),
            (s, Some(o)) => d[s].clone() - d[o].clone(),
        }
    }

    /// The constant `σ c` the linear part must reach: the Clip bound `c` times `σ`, 0 for the
    /// other faces (`activation` is the layer's).
    pub fn offset<T: Scalar>(self, activation: &Activation<T>) -> T {
        match (self, activation) {
            (Face::Bound { upper, above, .. }, Activation::Clip { lo, hi }) => {
                let c = if upper { hi } else { lo };
                let c = c.clone().expect("a Clip face is at a bound the Clip has");
                if above {
                    c
                } else {
                    -c
                }
            }
            _ => T::zero(),
        }
    }

    /// The constraint's value at `z` (`>= 0` inside): `linear(z) − offset`.
    pub fn value<T: Scalar>(self, z: &[T], activation: &Activation<T>) -> T {
        match self {
            Face::Bound { .. } => self.linear(z) - self.offset(activation),
            _ => self.linear(z),
        }
    }

    /// [`Face::value`] in f64 with a rigorous error bound, from values `z` with bounds `e`.
    pub fn bounded(self, z: &[f64], e: &[f64], activation: &Activation) -> Bounded {
        match self {
            // Negating is exact.
            Face::Sign { neuron, .. } => Bounded {
                value: self.sign() * z[neuron],
                error: e[neuron],
            },
            Face::Bound { neuron, .. } => {
                shifted(self.sign() * z[neuron], e[neuron], self.offset(activation))
            }
            Face::Window { winner, entry } => super::filter::difference(z, e, winner, entry),
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
                        match &layer.activation {
                            Activation::Clip { lo, hi } => LayerPattern::Clip {
                                lo: lo.is_some(),
                                hi: hi.is_some(),
                                pieces: relus
                                    .map(|v| Piece::of(v, lo.as_ref(), hi.as_ref()))
                                    .collect(),
                            },
                            _ => LayerPattern::Relu(relus.map(Scalar::is_positive).collect()),
                        }
                    } else {
                        LayerPattern::Linear
                    }
                })
                .collect(),
        }
    }

    /// Per ReLU, LeakyRelu or PRelu layer (0-based index), the mask of active neurons (above
    /// 0); `None` for other layers.
    pub fn layer(&self, index: usize) -> Option<&[bool]> {
        match &self.layers[index] {
            LayerPattern::Relu(mask) => Some(mask),
            _ => None,
        }
    }

    /// Per Clip layer (0-based index), the piece of each neuron; `None` for other layers.
    pub fn pieces(&self, index: usize) -> Option<&[Piece]> {
        match &self.layers[index] {
            LayerPattern::Clip { pieces, .. } => Some(pieces),
            _ => None,
        }
    }

    /// How output `j` of layer `index` (0-based) follows its pre-activation inside the
    /// region, under `layer`'s activation (a max-pool layer's selection aside).
    pub fn local<T: Scalar>(&self, index: usize, layer: &Layer<T>, j: usize) -> Local<T> {
        match (&self.layers[index], &layer.activation) {
            (LayerPattern::Relu(mask), activation) => match (mask.get(j), activation) {
                (None | Some(true), _) => Local::Identity,
                (Some(false), Activation::LeakyRelu { alpha }) => Local::Scale(alpha.clone()),
                (Some(false), Activation::PRelu { slopes }) => Local::Scale(slopes[j].clone()),
                (Some(false), _) => Local::Constant(T::zero()),
            },
            (LayerPattern::Clip { .. }, Activation::Clip { lo, hi }) => {
                match self.pieces(index).and_then(|p| p.get(j)) {
                    Some(Piece::Below) => Local::Constant(lo.clone().expect("below a min")),
                    Some(Piece::Above) => Local::Constant(hi.clone().expect("above a max")),
                    _ => Local::Identity,
                }
            }
            _ => Local::Identity,
        }
    }

    /// `h_k` inside the region from `z_k` (0-based layer `index`): each output through its
    /// [`Local`] map, and each window's winner of a max-pool layer.
    pub fn pass<T: Scalar>(&self, index: usize, layer: &Layer<T>, mut z: Vec<T>) -> Vec<T> {
        if self.has_pieces(index) {
            for (j, v) in z.iter_mut().enumerate() {
                match self.local(index, layer, j) {
                    Local::Identity => {}
                    Local::Scale(s) => *v = T::times(&s, v),
                    Local::Constant(c) => *v = c,
                }
            }
        }
        match self.selection(index) {
            Some(selection) => selected(&z, selection),
            None => z,
        }
    }

    /// [`Pattern::pass`] for a direction (the map's linear part: constants become 0).
    pub fn pass_direction<T: Scalar>(
        &self,
        index: usize,
        layer: &Layer<T>,
        mut d: Vec<T>,
    ) -> Vec<T> {
        if self.has_pieces(index) {
            for (j, v) in d.iter_mut().enumerate() {
                match self.local(index, layer, j) {
                    Local::Identity => {}
                    Local::Scale(s) => *v = T::times(&s, v),
                    Local::Constant(_) => *v = T::zero(),
                }
            }
        }
        match self.selection(index) {
            Some(selection) => selected(&d, selection),
            None => d,
        }
    }

    /// [`Pattern::pass`] in f64 from values `z` with error bounds `e`: the outputs and theirs
    /// (a constant is exact; a slope's product is bounded as an affine map of one term).
    pub fn pass_bounded(
        &self,
        index: usize,
        layer: &Layer,
        mut z: Vec<f64>,
        mut e: Vec<f64>,
    ) -> (Vec<f64>, Vec<f64>) {
        if self.has_pieces(index) {
            for (j, (v, err)) in z.iter_mut().zip(e.iter_mut()).enumerate() {
                match self.local(index, layer, j) {
                    Local::Identity => {}
                    Local::Scale(s) => {
                        let b = affine_bounded(&[s], &[*v], Some(&[*err]), 0.0);
                        (*v, *err) = (b.value, b.error);
                    }
                    Local::Constant(c) => (*v, *err) = (c, 0.0),
                }
            }
        }
        match self.selection(index) {
            Some(selection) => (selected(&z, selection), selected(&e, selection)),
            None => (z, e),
        }
    }

    /// Whether layer `index` has neurons on pieces of an activation.
    fn has_pieces(&self, index: usize) -> bool {
        matches!(
            self.layers[index],
            LayerPattern::Relu(_) | LayerPattern::Clip { .. }
        )
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
            LayerPattern::Clip { lo, hi, pieces } => pieces
                .iter()
                .enumerate()
                .flat_map(|(neuron, piece)| {
                    piece
                        .faces(*lo, *hi)
                        .map(move |(upper, above)| Face::Bound {
                            neuron,
                            upper,
                            above,
                        })
                })
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
            LayerPattern::Clip { pieces, .. } => !pieces.is_empty(),
            LayerPattern::Max { window, selected } => *window > 1 && !selected.is_empty(),
        }
    }

    /// The number of layers of the network the pattern belongs to.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Number of constraints of `P_m` (0-based layer index `m`): ReLU, LeakyRelu and PRelu
    /// neurons of layers >= m, each bound a Clip neuron's piece touches, and for max-pool
    /// layers every entry of a window but its winner.
    pub fn constraints_from(&self, m: usize) -> usize {
        (m..self.layers.len())
            .map(|k| match &self.layers[k] {
                LayerPattern::Relu(mask) => mask.len(),
                LayerPattern::Clip { lo, hi, pieces } => {
                    pieces.iter().map(|p| p.face_count(*lo, *hi)).sum()
                }
                LayerPattern::Max { window, selected } => selected.len() * (window - 1),
                LayerPattern::Linear => 0,
            })
            .sum()
    }

    /// Active neurons per layer (`None` for layers without activation); for a Clip layer, the
    /// neurons between its bounds.
    pub fn active_counts(&self) -> Vec<Option<usize>> {
        (0..self.layers.len())
            .map(|k| match &self.layers[k] {
                LayerPattern::Relu(s) => Some(s.iter().filter(|&&b| b).count()),
                LayerPattern::Clip { pieces, .. } => {
                    Some(pieces.iter().filter(|&&p| p == Piece::Between).count())
                }
                _ => None,
            })
            .collect()
    }

    /// The pattern as text, one string per layer: `1` (active) and `0` per ReLU, LeakyRelu or
    /// PRelu neuron; `0` (below), `1` (between) or `2` (above) per Clip neuron; for a
    /// max-pool layer the winner's place in each window (0-based), separated by dots; `-`
    /// for a layer without either.
    pub fn bit_strings(&self) -> Vec<String> {
        self.layers
            .iter()
            .map(|l| match l {
                LayerPattern::Relu(s) => s.iter().map(|&b| if b { '1' } else { '0' }).collect(),
                LayerPattern::Clip { pieces, .. } => pieces
                    .iter()
                    .map(|p| match p {
                        Piece::Below => '0',
                        Piece::Between => '1',
                        Piece::Above => '2',
                    })
                    .collect(),
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

/// The winners of each window: `h_l` of a max-pool layer inside the region.
pub(super) fn selected<T: Clone>(z: &[T], selection: Selection<'_>) -> Vec<T> {
    selection
        .selected
        .iter()
        .map(|&s| z[s as usize].clone())
        .collect()
}

/// The forward pass of `x` in f64 with the pattern decided exactly: f64 with error bounds, and
/// an exact forward pass when some pre-activation is too close to zero for the bound.
pub fn trace_and_pattern(model: &Model, x: &[f64]) -> (Trace<f64>, Pattern, Decision) {
    let (trace, _, pattern, decision) = trace_with_errors(model, x);
    (trace, pattern, decision)
}

/// An f64 trace, each activation's error bounds (one list per layer, the input's first), the
/// exactly decided pattern and what decided it.
pub type BoundedTrace = (Trace<f64>, Vec<Vec<f64>>, Pattern, Decision);

/// [`trace_and_pattern`], with a rigorous bound on each activation's distance to its exact
/// value (`errors[l]` for `trace.activations[l]`). The bounds hold where the pattern was
/// decided by the f64 bound (`Decision::Float`); past it, a ReLU of the f64 trace may sit on
/// the other side of its exact value's sign, and only the pattern is exact.
pub fn trace_with_errors(model: &Model, x: &[f64]) -> BoundedTrace {
    trace_with_errors_if(model, x, true).expect("the exact fallback decides every pattern")
}

/// [`trace_with_errors`], with the forward pass in rationals only when `exact_fallback`:
/// without it, `None` where neither the f64 bounds nor the second tier decide the pattern.
pub fn trace_with_errors_if(
    model: &Model,
    x: &[f64],
    exact_fallback: bool,
) -> Option<BoundedTrace> {
    let net = model.net();
    let layers = net.layers();
    let mut activations: Vec<Vec<f64>> = Vec::with_capacity(layers.len() + 1);
    let mut pre: Vec<Vec<f64>> = Vec::with_capacity(layers.len());
    let mut bounds: Vec<Vec<f64>> = Vec::with_capacity(layers.len() + 1);
    let mut errors: Vec<f64> = Vec::new();
    let mut undecided = false;
    activations.push(x.to_vec());
    bounds.push(vec![0.0; x.len()]);
    for layer in layers {
        let input = activations.last().expect("pushed above");
        let (z, e) = bounded_affine_layer(&layer.affine, input, &errors);
        let (h, h_err, decided) = activate_bounded(layer, &z, &e);
        undecided |= !decided;
        errors = h_err;
        bounds.push(errors.clone());
        pre.push(z);
        activations.push(h);
    }
    let trace = Trace { activations, pre };
    if undecided {
        let trace = match compensated_trace(model, x, trace) {
            Ok(found) => return Some(found),
            Err(trace) => trace,
        };
        if let Some(pattern) = refined_pattern(model, 0, x) {
            return Some((trace, bounds, pattern, Decision::Refined));
        }
        if !exact_fallback {
            return None;
        }
        let xr: Vec<Rational> = x.iter().map(|&v| Rational::from_f64(v)).collect();
        let exact = forward(model.exact(), &xr);
        let pattern = Pattern::from_pre(model.exact(), &exact.pre);
        Some((trace, bounds, pattern, Decision::ExactFallback))
    } else {
        let pattern = Pattern::from_pre(net, &trace.pre);
        Some((trace, bounds, pattern, Decision::Float))
    }
}

/// The compensated tier of [`trace_with_errors_if`]: where the double-double pass decides
/// the pattern, the f64 trace with bounds measured against it (each value's distance to the
/// double-double value, plus that value's bound). Where the f64 trace took another branch
/// than the exact pattern, the trace is the double-double values' leading parts instead.
/// The f64 trace comes back unchanged where the pass leaves the pattern undecided.
fn compensated_trace(
    model: &Model,
    x: &[f64],
    trace: Trace<f64>,
) -> Result<BoundedTrace, Trace<f64>> {
    let Some(pass) = compensated::forward_from(model, 0, &Values::exact(x)) else {
        return Err(trace);
    };
    let mut bounds = vec![vec![0.0; x.len()]];
    let trace = if Pattern::from_pre(model.net(), &trace.pre) == pass.pattern {
        for (h, values) in pass.activations.iter().zip(&trace.activations[1..]) {
            bounds.push(h.distances_from(values));
        }
        trace
    } else {
        bounds.extend(pass.activations.iter().map(Values::rounded_errors));
        let mut activations = vec![x.to_vec()];
        activations.extend(pass.activations.into_iter().map(|h| h.hi));
        Trace {
            activations,
            pre: pass.pre,
        }
    };
    Ok((trace, bounds, pass.pattern, Decision::Compensated))
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
    if let Some(pass) = compensated::forward_from(model, m, &Values::exact(a)) {
        return (pass.pattern, Decision::Compensated);
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
    let mut h = activate(layer, z);
    let mut h_err = e.to_vec();
    let mut decided = true;
    for j in 0..relus {
        let (value, error) = (z[j], e[j]);
        match &layer.activation {
            Activation::Clip { lo, hi } => {
                // The piece is decided when each bound's side is; a neuron certainly at a
                // bound outputs it exactly. Clip is 1-Lipschitz, so a bound carries over.
                let side = |c: &Option<f64>| c.map(|c| shifted(value, error, c).certain_sign());
                let (below, above) = (side(lo), side(hi));
                decided &= below.is_none_or(|s| s.is_some()) && above.is_none_or(|s| s.is_some());
                if matches!(below, Some(Some(s)) if s <= 0) || above == Some(Some(1)) {
                    h_err[j] = 0.0;
                }
            }
            activation => {
                let sign = Bounded { value, error }.certain_sign();
                decided &= sign.is_some();
                match (sign, activation) {
                    // relu is 1-Lipschitz, so the bound carries over; a value certainly below
                    // zero is cut to an exact zero, which carries none.
                    (Some(-1), Activation::Relu) => h_err[j] = 0.0,
                    // Below zero a LeakyRelu or PRelu scales the value: one rounded product.
                    (
                        Some(-1) | Some(0),
                        Activation::LeakyRelu { .. } | Activation::PRelu { .. },
                    ) => {
                        let b =
                            affine_bounded(&[slope(activation, j)], &[value], Some(&[error]), 0.0);
                        (h[j], h_err[j]) = (b.value, b.error);
                    }
                    // Undecided: either piece, and the activation is max(1, |s|)-Lipschitz;
                    // the product `s · z` rounds by at most half an ulp of it.
                    (None, Activation::LeakyRelu { .. } | Activation::PRelu { .. }) => {
                        let lipschitz = slope(activation, j).abs().max(1.0);
                        h_err[j] = (lipschitz * error + h[j].abs() * f64::EPSILON)
                            * (1.0 + 4.0 * f64::EPSILON)
                            + 2.0 * f64::from_bits(1);
                    }
                    _ => {}
                }
            }
        }
    }
    (h, h_err, decided)
}

/// `value − c` with a rigorous error bound, from `value` within `error` of its exact value:
/// the bound as it is for `c = 0` (the difference is then exact), one rounded subtraction's
/// more otherwise.
fn shifted(value: f64, error: f64, c: f64) -> Bounded {
    if c == 0.0 {
        Bounded { value, error }
    } else {
        affine_bounded(&[1.0], &[value], Some(&[error]), -c)
    }
}

/// The slope below 0 of output `j` under a LeakyRelu or PRelu (1 otherwise).
fn slope(activation: &Activation, j: usize) -> f64 {
    match activation {
        Activation::LeakyRelu { alpha } => *alpha,
        Activation::PRelu { slopes } => slopes[j],
        _ => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ir::dense_layer;

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

    /// Layer 2's exact value is `2^-70`, after a cancellation of values near 1 that the f64
    /// bound (about `2^-52`) cannot resolve: the double-double pass decides it, and the f64
    /// trace's bounds, measured against that pass, hold for the exact activations.
    #[test]
    fn the_compensated_tier_decides_a_cancellation_and_bounds_the_trace() {
        let l1 = dense_layer(2, 2, vec![1.0, 0.0, 0.0, 1.0], vec![0.0, 0.0], true).unwrap();
        let bias = -(2f64.powi(-52)) + 2f64.powi(-70);
        let l2 = dense_layer(1, 2, vec![1.0, -1.0], vec![bias], true).unwrap();
        let l3 = dense_layer(1, 1, vec![-1.0], vec![0.0], true).unwrap();
        let model = Model::new(Network::new(vec![l1, l2, l3]).unwrap());
        let x = [1.0 + f64::EPSILON, 1.0];
        let (trace, bounds, pattern, decision) = trace_with_errors(&model, &x);
        assert_eq!(decision, Decision::Compensated);
        let xr: Vec<Rational> = x.iter().map(|&v| Rational::from_f64(v)).collect();
        let exact = forward(model.exact(), &xr);
        assert_eq!(pattern, Pattern::from_pre(model.exact(), &exact.pre));
        assert_eq!(pattern.layer(1), Some(&[true][..]));
        assert_eq!(pattern.layer(2), Some(&[false][..]));
        for (l, (values, exact)) in trace.activations.iter().zip(&exact.activations).enumerate() {
            for (i, (v, e)) in values.iter().zip(exact).enumerate() {
                let distance = (Rational::from_f64(*v) - e.clone()).abs();
                assert!(
                    distance <= Rational::from_f64(bounds[l][i]),
                    "layer {l}, {i}"
                );
            }
        }
        let (from_layer, decision) = pattern_from_layer(&model, 0, &x);
        assert_eq!((from_layer, decision), (pattern, Decision::Compensated));
    }
}
