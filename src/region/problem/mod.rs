//! The region questions of DESIGN.md §1.5 written as linear programs, in the layered form:
//! one block of variables per layer instead of the dense composed matrix of `P_m(x)`.
//!
//! Seen from layer `m` (0-based; its input `ã` has the centre `a`, the traced input of the
//! layer), the point is written `ã = a + p − n` with `p, n >= 0`, so the distance to `a` is
//! `Σ (p + n)` (L1) or `max (p_i + n_i)` (L∞), and the domain becomes bounds on `p` and `n`.
//! Layer `m`'s pre-activations are `w_j·(p − n) + (w_j·a + b_j)`; an active neuron `j` feeds
//! a variable `h_j >= 0` of the next block through an equality row, an inactive one gives the
//! row `z_j <= 0`. The last constraining layer's active neurons give rows `z_j >= 0` directly.
//! Outputs without a sign (a layer without ReLU, a carried tail) are free variables of the
//! next block, each defined by its equality row. A max-pool layer's window output is a free
//! variable equal to its winner's row, and each other entry `o` of the window gives the row
//! `z_winner − z_o >= 0`. A Clip, LeakyRelu or PRelu neuron gives a row per face of its piece
//! (`f{k}_{j}`, or `f{k}_{j}_lo` and `f{k}_{j}_hi` at a Clip's bounds), on its pre-activation
//! or, when it feeds the next layer, on a free variable `u = z`; it passes on `u`, a variable
//! `h = s · u` (a slope below 0), or a constant (a Clip bound, added exactly to the next
//! layer's constants).
//!
//! Every builder here is deterministic: the certificate checker rebuilds the program of a
//! certificate from the model and compares multipliers against it. The centre `a` is exact
//! ([`Centre`]), so the constants `w_j·a + b_j` are exact dyadic rationals, and the root row's
//! right-hand side `−R_j` is the exact relevance (a rational). Bounds that are not f64 values
//! (`hi − a_i`) are rounded outwards, so the program is a relaxation of the exact question and
//! its dual bounds stay valid; feasible points are checked against the region itself, never
//! against the program.

use serde::{Deserialize, Serialize};

use crate::exact::dyadic::Dyadic;
use crate::exact::program::{LinearProgram, Rhs, RowKind};
use crate::exact::Rational;
use crate::model::ir::WeightRow;
use crate::model::Network;

mod norms;
mod pieces;

pub use norms::composed_row_norms;
use pieces::{Neuron, PieceOutput, PieceRows};

use super::{Centre, Pattern};

/// Where the point may lie besides the region.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Domain {
    /// No constraint (the input layer without `--domain`).
    Free,
    /// `ã >= 0`: a hidden layer's input is a ReLU output.
    NonNegative,
    /// `lo <= ã_i <= hi` for every coordinate (the input layer with `--domain LO:HI`).
    Box {
        /// The lower end of every coordinate's interval.
        lo: f64,
        /// The upper end of every coordinate's interval.
        hi: f64,
    },
}

impl Domain {
    /// The domain of 1-based layer `layer`'s input: the box (or nothing) at the network
    /// input, the non-negative orthant above a layer whose outputs are all non-negative (see
    /// [`Network::output_nonnegative`]), nothing above any other.
    pub fn of_layer<T: crate::exact::Scalar>(
        net: &Network<T>,
        layer: usize,
        input_box: Option<(f64, f64)>,
    ) -> Self {
        match (layer, input_box) {
            (1, Some((lo, hi))) => Domain::Box { lo, hi },
            (1, None) => Domain::Free,
            _ if net.output_nonnegative(layer - 2) => Domain::NonNegative,
            _ => Domain::Free,
        }
    }
}

/// The objective of a root question.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Norm {
    /// Minimise `Σ (p_i + n_i)`, the L1 distance to the centre.
    L1,
    /// Minimise `t` with `p_i + n_i <= t`, the L∞ distance to the centre.
    Linf,
}

/// One region seen from one layer: everything the programs are built from.
#[derive(Clone, Copy, Debug)]
pub struct RegionView<'a> {
    /// The network, in f64.
    pub net: &'a Network,
    /// The activation pattern that defines the region.
    pub pattern: &'a Pattern,
    /// 0-based index of the layer whose input is the variable point.
    pub layer: usize,
    /// The input of that layer, exactly (the sample's, or a given point).
    pub centre: &'a Centre,
    /// Where the point may lie besides the region (see [`Domain::of_layer`]).
    pub domain: Domain,
}

/// The hyperplane of neuron `neuron`'s roots: `w_j · ã = w_j · a − relevance`.
#[derive(Clone, Debug, PartialEq)]
pub struct RootPlane {
    /// The neuron `j`, 0-based in the layer the region is seen from.
    pub neuron: usize,
    /// The neuron's relevance `R_j` from the explanation, exactly.
    pub relevance: Rational,
}

/// Which variables of a built program stand for what.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    /// `p_i` and `n_i` per coordinate of `ã` (empty for Chebyshev programs).
    pub plus: Vec<usize>,
    /// The variable of `n_i`, per coordinate (empty for Chebyshev programs).
    pub minus: Vec<usize>,
    /// The centre coordinates (Chebyshev programs only).
    pub centre: Vec<usize>,
    /// `t` (L∞ distance) or `r` (Chebyshev radius).
    pub scalar: Option<usize>,
}

impl Layout {
    /// The point `ã = a + p − n` of a solution `x` of a root or facet program.
    pub fn point(&self, centre: &[f64], x: &[f64]) -> Vec<f64> {
        centre
            .iter()
            .enumerate()
            .map(|(i, &a)| a + x[self.plus[i]] - x[self.minus[i]])
            .collect()
    }

    /// `w·(p − n)` as coefficients: the row `w·ã` with `ã = a + p − n`, less its constant.
    pub fn split(&self, w: WeightRow<'_, f64>) -> Vec<(usize, f64)> {
        let mut c = Vec::with_capacity(2 * w.connected());
        for (i, &wi) in w.entries() {
            if wi != 0.0 {
                c.push((self.plus[i], wi));
                c.push((self.minus[i], -wi));
            }
        }
        c
    }
}

/// `w_j·a + b_j` of the first layer's neuron `j` at the centre, exactly.
fn pre_activation_at_centre(view: RegionView, j: usize) -> Dyadic {
    let first = &view.net.layers()[view.layer].affine;
    view.centre.affine(first.row(j), *first.bias(j))
}

/// Tightening applied when a program is built to find a point, not to bound: inequality rows
/// and sign bounds are moved inwards by `margin` times the row's scale, so a solver's point,
/// slightly off, still lies strictly inside the exact region. Certified programs use 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tightening {
    /// How far rows and bounds move inwards, relative to their scale (`1 + |constant| +
    /// max |coefficient|` for a row, `1 + |end|` for a domain bound); 0 moves nothing.
    pub margin: f64,
    /// A constraint (0-based layer, neuron) left as it is: the face that a root hyperplane
    /// may coincide with, which the exact projection settles by itself.
    pub spare: Option<(usize, usize)>,
}

impl Tightening {
    /// No tightening: the program certified answers are built from.
    pub const NONE: Tightening = Tightening {
        margin: 0.0,
        spare: None,
    };
}

pub(super) fn dyadic(x: f64) -> Dyadic {
    Dyadic::from_f64(x).expect("model values are finite")
}

/// The region's rows, layer by layer from `view.layer` up (see the module documentation).
struct LayerRows<'v> {
    view: RegionView<'v>,
    tightening: Tightening,
}

/// A constraint's own extra term, by its index among `P_m`'s constraints: `coefficient · r`
/// (Chebyshev) or nothing.
pub(super) type Extra<'a> = &'a dyn Fn(usize) -> Option<(usize, f64)>;

/// `a − b` of two rows over program variables (a max-pool constraint's difference of two
/// copies). The weights are copies of weight 1, so the sums are exact.
fn row_difference(a: Vec<(usize, f64)>, b: Vec<(usize, f64)>) -> Vec<(usize, f64)> {
    let mut out = a;
    for (v, c) in b {
        match out.iter_mut().find(|(u, _)| *u == v) {
            Some(entry) => entry.1 -= c,
            None => out.push((v, -c)),
        }
    }
    out.retain(|&(_, c)| c != 0.0);
    out
}

/// A new free variable `var` defined by the equality row `row`: `coeffs·x + constant − var = 0`.
pub(super) fn define(
    lp: &mut LinearProgram,
    var: String,
    row: String,
    mut coeffs: Vec<(usize, f64)>,
    constant: &Dyadic,
) -> usize {
    let v = lp.add_var(var, f64::NEG_INFINITY, f64::INFINITY, 0.0);
    coeffs.push((v, -1.0));
    lp.add_row(row, coeffs, RowKind::Eq, -constant);
    v
}

impl LayerRows<'_> {
    /// Adds the region's rows to `lp`. Layer `m`'s affine part is `first_coeffs(j)` plus the
    /// constant `first_const(j)`; `extra(i)` is an additional term of constraint `i` (its
    /// index among `P_m`'s constraints) on its "inside" side (`σ z − ν r >= 0`). `drop` (a
    /// 0-based layer and a constraint's label) becomes the objective variable, returned.
    fn add(
        &self,
        lp: &mut LinearProgram,
        first_coeffs: &dyn Fn(usize) -> Vec<(usize, f64)>,
        first_const: &dyn Fn(usize) -> Dyadic,
        extra: Extra,
        drop: Option<(usize, usize)>,
    ) -> Option<usize> {
        let net = self.view.net;
        let pattern = self.view.pattern;
        let top = pattern.last_constraining()?;
        let margin = self.tightening.margin;
        let mut dropped_var = None;
        // Index of the next constraint among P_m's.
        let mut index = 0;
        // Variables of the current block (outputs of the previous layer): (index in the
        // layer's input, program variable).
        let mut block: Vec<(usize, usize)> = Vec::new();
        // Outputs of the previous layer that are constants other than 0 inside the region (a
        // Clip neuron at a bound other than 0): (index in the layer's input, value).
        let mut fixed: Vec<(usize, Dyadic)> = Vec::new();
        for k in self.view.layer..=top {
            let layer = &net.layers()[k];
            let feeds_more = k < top;
            let mut next_block = Vec::new();
            let mut next_fixed = Vec::new();
            // The program variable of each input of this layer, if it has one (an inactive
            // neuron's output is 0 and has none).
            let mut var_of = Vec::new();
            if k > self.view.layer {
                var_of = vec![None; layer.affine.in_dim()];
                for &(i, v) in &block {
                    var_of[i] = Some(v);
                }
            }
            let mut const_of: Vec<Option<Dyadic>> = Vec::new();
            if !fixed.is_empty() {
                const_of = vec![None; layer.affine.in_dim()];
                for (i, c) in &fixed {
                    const_of[*i] = Some(c.clone());
                }
            }
            let row_of = |j: usize| -> (Vec<(usize, f64)>, Dyadic) {
                if k == self.view.layer {
                    (first_coeffs(j), first_const(j))
                } else {
                    let coeffs: Vec<(usize, f64)> = layer
                        .affine
                        .row(j)
                        .entries()
                        .filter(|(_, w)| **w != 0.0)
                        .filter_map(|(i, &w)| var_of[i].map(|v| (v, w)))
                        .collect();
                    let mut constant = dyadic(*layer.affine.bias(j));
                    // Products of two f64 values and their sum, exactly.
                    if !fixed.is_empty() {
                        for (i, &w) in layer.affine.row(j).entries() {
                            if let (true, Some(c)) = (w != 0.0, &const_of[i]) {
                                constant = &constant + &(&dyadic(w) * c);
                            }
                        }
                    }
                    (coeffs, constant)
                }
            };
            let shift_of = |j: usize, coeffs: &[(usize, f64)], constant: &Dyadic| {
                let scale = 1.0
                    + constant.to_f64().abs()
                    + coeffs.iter().map(|(_, c)| c.abs()).fold(0.0, f64::max);
                if self.tightening.spare == Some((k, j)) {
                    0.0
                } else {
                    margin * scale
                }
            };
            if let Some(selection) = pattern.selection(k) {
                // Each window's output is a free variable equal to its winner.
                if feeds_more {
                    for (g, &s) in selection.selected.iter().enumerate() {
                        let (coeffs, constant) = row_of(s as usize);
                        let (var, row) = (format!("h{}_{g}", k + 1), format!("m{}_{g}", k + 1));
                        next_block.push((g, define(lp, var, row, coeffs, &constant)));
                    }
                }
                for (s, o) in selection.constraints() {
                    let ((cs, ks), (co, ko)) = (row_of(s), row_of(o));
                    let mut coeffs = row_difference(cs, co);
                    let constant = &ks - &ko;
                    // A window that holds one value twice (padding) has a constraint that
                    // is identically 0 >= 0: not tightened.
                    let shift = if coeffs.is_empty() && constant.signum() == 0 {
                        0.0
                    } else {
                        shift_of(o, &coeffs, &constant)
                    };
                    let name = format!("z{}_{o}", k + 1);
                    if drop == Some((k, o)) {
                        let var = format!("s{}_{o}", k + 1);
                        dropped_var = Some(define(lp, var, name, coeffs, &constant));
                    } else {
                        if let Some(e) = extra(index) {
                            coeffs.push((e.0, -e.1));
                        }
                        lp.add_row(name, coeffs, RowKind::Ge, &dyadic(shift) - &constant);
                    }
                    index += 1;
                }
                block = next_block;
                fixed = next_fixed;
                continue;
            }
            if layer.other_activation().is_some() {
                let faces = pattern.faces(k);
                let mut f = 0;
                for j in 0..layer.affine.out_dim() {
                    let (coeffs, constant) = row_of(j);
                    let name = format!("z{}_{}", k + 1, j);
                    let start = f;
                    while f < faces.len() && faces[f].label() == j {
                        f += 1;
                    }
                    if start == f {
                        // A carried output: a free variable of the next block.
                        if feeds_more {
                            let var = format!("h{}_{}", k + 1, j);
                            next_block.push((j, define(lp, var, name, coeffs, &constant)));
                        }
                        continue;
                    }
                    let neuron = Neuron {
                        k,
                        j,
                        shift: shift_of(j, &coeffs, &constant),
                        first_index: index,
                    };
                    index += f - start;
                    let piece = PieceRows {
                        faces: &faces[start..f],
                        local: pattern.local(k, layer, j),
                        activation: &layer.activation,
                        feeds_more,
                        drop,
                    };
                    let out = piece.add(lp, &neuron, name, coeffs, constant, extra);
                    match out {
                        PieceOutput::Variable(v) => next_block.push((j, v)),
                        PieceOutput::Constant(c) if c.is_zero() => {}
                        PieceOutput::Constant(c) => next_fixed.push((j, c)),
                        PieceOutput::None => {}
                    }
                    if let Some(v) = piece.dropped(&neuron, lp) {
                        dropped_var = Some(v);
                    }
                }
                block = next_block;
                fixed = next_fixed;
                continue;
            }
            let mask = pattern.layer(k);
            for j in 0..layer.affine.out_dim() {
                let (mut coeffs, constant) = row_of(j);
                let shift = shift_of(j, &coeffs, &constant);
                let is_dropped = drop == Some((k, j));
                let name = format!("z{}_{}", k + 1, j);
                // A carried output (past the ReLU neurons) has no sign.
                let sign = mask.and_then(|m| m.get(j).copied());
                let this = index;
                if sign.is_some() {
                    index += 1;
                }
                match sign {
                    // Without ReLU the output is a free variable of the next block.
                    None => {
                        if feeds_more {
                            let var = format!("h{}_{}", k + 1, j);
                            next_block.push((j, define(lp, var, name, coeffs, &constant)));
                        }
                    }
                    Some(true) if feeds_more || is_dropped => {
                        let lower = if is_dropped { f64::NEG_INFINITY } else { shift };
                        let v = lp.add_var(format!("h{}_{}", k + 1, j), lower, f64::INFINITY, 0.0);
                        coeffs.push((v, -1.0));
                        lp.add_row(name, coeffs, RowKind::Eq, -&constant);
                        if let Some(e) = extra(this) {
                            lp.add_row(
                                format!("s{}_{}", k + 1, j),
                                vec![(v, 1.0), (e.0, -e.1)],
                                RowKind::Ge,
                                Dyadic::zero(),
                            );
                        }
                        if is_dropped {
                            dropped_var = Some(v);
                        }
                        if feeds_more {
                            next_block.push((j, v));
                        }
                    }
                    Some(true) => {
                        // z >= 0 (+ ν r): coeffs·x + constant >= shift
                        if let Some(e) = extra(this) {
                            coeffs.push((e.0, -e.1));
                        }
                        lp.add_row(name, coeffs, RowKind::Ge, &dyadic(shift) - &constant);
                    }
                    Some(false) => {
                        if is_dropped {
                            // The dropped constraint becomes the objective `−z`.
                            let v = lp.add_var(
                                format!("s{}_{}", k + 1, j),
                                f64::NEG_INFINITY,
                                f64::INFINITY,
                                0.0,
                            );
                            coeffs.push((v, 1.0));
                            lp.add_row(name, coeffs, RowKind::Eq, -&constant);
                            dropped_var = Some(v);
                            continue;
                        }
                        // z <= 0 (− ν r): coeffs·x + constant <= −shift
                        if let Some(e) = extra(this) {
                            coeffs.push((e.0, e.1));
                        }
                        lp.add_row(name, coeffs, RowKind::Le, &dyadic(-shift) - &constant);
                    }
                }
            }
            block = next_block;
            fixed = next_fixed;
        }
        dropped_var
    }
}

/// The bounds `(p_lo, p_hi, n_lo, n_hi)` of `p_i` and `n_i`, the moves of `ã_i` up and down
/// from `a_i` that keep it in the domain interval `[lo, hi]`: a centre outside the interval
/// (or, tightened, too close to its end) forces a move (`p_lo` or `n_lo > 0`). Rounded
/// outwards, so the certified program (margin 0) is a relaxation; the tightening moves both
/// ends inwards by `margin` times their scale. Coordinate `i` of `centre`.
fn centre_move_bounds(domain: Domain, centre: &Centre, i: usize, margin: f64) -> [f64; 4] {
    if centre.rounding(i) == 0.0 {
        let (p_lo, p_hi, n_lo, n_hi) = move_bounds(domain, centre.approx()[i], margin);
        return [p_lo, p_hi, n_lo, n_hi];
    }
    let (lo, hi) = domain_ends(domain, margin);
    let a = &centre.exact()[i];
    // `sign · (end − a)` exactly, rounded outwards (up for an upper bound, down for a lower
    // one); an infinite end gives an infinite upper bound and no lower one.
    let rounded = |end: f64, sign: f64, up: bool| -> f64 {
        if !end.is_finite() {
            return if up { f64::INFINITY } else { 0.0 };
        }
        let d = &Dyadic::from_f64(end).expect("finite") - a;
        let d = if sign < 0.0 { -&d } else { d };
        if up {
            d.to_f64_above().max(0.0)
        } else if d.signum() > 0 {
            d.to_f64_below().max(0.0)
        } else {
            0.0
        }
    };
    [
        rounded(lo, 1.0, false),
        rounded(hi, 1.0, true),
        rounded(hi, -1.0, false),
        rounded(lo, -1.0, true),
    ]
}

/// The ends of the domain's interval, each moved inwards by `margin` times its scale.
fn domain_ends(domain: Domain, margin: f64) -> (f64, f64) {
    let (lo, hi) = match domain {
        Domain::Free => (f64::NEG_INFINITY, f64::INFINITY),
        Domain::NonNegative => (0.0, f64::INFINITY),
        Domain::Box { lo, hi } => (lo, hi),
    };
    let inwards = |end: f64, dir: f64| {
        if end.is_finite() {
            end + dir * margin * (1.0 + end.abs())
        } else {
            end
        }
    };
    (inwards(lo, 1.0), inwards(hi, -1.0))
}

/// [`centre_move_bounds`] for an f64 coordinate `a`.
fn move_bounds(domain: Domain, a: f64, margin: f64) -> (f64, f64, f64, f64) {
    let (lo, hi) = domain_ends(domain, margin);
    let up = |x: f64| {
        if x.is_finite() {
            x.next_up().max(0.0)
        } else {
            x.max(0.0)
        }
    };
    let down = |x: f64| if x > 0.0 { x.next_down().max(0.0) } else { 0.0 };
    (down(lo - a), up(hi - a), down(a - hi), up(a - lo))
}

/// The root questions (`exists` and `nearest`) as one program: points of the region and the
/// domain on neuron `plane.neuron`'s root hyperplane (if any), at minimal distance to the
/// centre in `norm`. `exists` is the L1 program (the solvers prove infeasibility faster with
/// an objective than without).
pub fn root_program(
    view: RegionView,
    plane: Option<&RootPlane>,
    norm: Norm,
    tightening: Tightening,
) -> (LinearProgram, Layout) {
    let (mut lp, layout) = distance_program(view, norm, tightening.margin);
    let first = &view.net.layers()[view.layer].affine;
    let rows = LayerRows { view, tightening };
    rows.add(
        &mut lp,
        &|j| layout.split(first.row(j)),
        &|j| pre_activation_at_centre(view, j),
        &|_| None,
        None,
    );
    if let Some(plane) = plane {
        add_root_row(&mut lp, &layout, view, plane);
    }
    (lp, layout)
}

/// The start of every root program: the moves `p, n` of each coordinate (bounded by the
/// domain, tightened by `margin`; costed 1 for L1) and, for L∞, the distance `t` with its rows
/// `p_i + n_i − t <= 0`.
pub fn distance_program(view: RegionView, norm: Norm, margin: f64) -> (LinearProgram, Layout) {
    let mut lp = LinearProgram::new();
    let dim = view.centre.len();
    let mut layout = Layout::default();
    let unit = if norm == Norm::L1 { 1.0 } else { 0.0 };
    for i in 0..dim {
        let [p_lo, p_hi, n_lo, n_hi] = centre_move_bounds(view.domain, view.centre, i, margin);
        layout
            .plus
            .push(lp.add_var(format!("p{i}"), p_lo, p_hi, unit));
        layout
            .minus
            .push(lp.add_var(format!("n{i}"), n_lo, n_hi, unit));
    }
    if norm == Norm::Linf {
        let t = lp.add_var("t".into(), 0.0, f64::INFINITY, 1.0);
        layout.scalar = Some(t);
        for i in 0..dim {
            lp.add_row(
                format!("dist{i}"),
                vec![(layout.plus[i], 1.0), (layout.minus[i], 1.0), (t, -1.0)],
                RowKind::Le,
                Dyadic::zero(),
            );
        }
    }
    (lp, layout)
}

/// Adds the root row `w_j·(p − n) = −R` (the last row of a [`root_program`]) to a program
/// built without it: the programs of one region differ only in this row.
pub fn add_root_row(lp: &mut LinearProgram, layout: &Layout, view: RegionView, plane: &RootPlane) {
    let first = &view.net.layers()[view.layer].affine;
    lp.add_row(
        "root".into(),
        layout.split(first.row(plane.neuron)),
        RowKind::Eq,
        Rhs::from_rational(&-plane.relevance.clone()),
    );
}

/// The LP form of [`super::step_length`]: `max t` (as `min −t`) subject to `a − t v ∈ P_m`.
/// The direction's products `w·v` are rounded in f64, so this program serves to test the closed
/// form, not to certify it.
pub fn step_program(view: RegionView, v: &[f64]) -> (LinearProgram, usize) {
    let mut lp = LinearProgram::new();
    let t = lp.add_var("t".into(), 0.0, f64::INFINITY, -1.0);
    let first = &view.net.layers()[view.layer].affine;
    let rows = LayerRows {
        view,
        tightening: Tightening::NONE,
    };
    rows.add(
        &mut lp,
        &|j| {
            let wv: f64 = first.row(j).entries().map(|(i, w)| w * v[i]).sum();
            vec![(t, -wv)]
        },
        &|j| pre_activation_at_centre(view, j),
        &|_| None,
        None,
    );
    (lp, t)
}

/// Which side of the composed row norms a Chebyshev program uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormSide {
    /// Upper bounds on the norms: a feasible (centre, radius) is a ball inside the region.
    Inner,
    /// Lower bounds: the optimum is at least the true radius, so dual bounds stay valid.
    Outer,
}

/// The Chebyshev program: the largest Euclidean ball (centre `c`, radius `r`) inside the
/// region and the domain, as `min −r`.
pub fn chebyshev_program(
    view: RegionView,
    norms: &[(f64, f64)],
    side: NormSide,
    tightening: Tightening,
) -> (LinearProgram, Layout) {
    let mut lp = LinearProgram::new();
    let mut layout = Layout::default();
    let (lo, hi) = match view.domain {
        Domain::Free => (f64::NEG_INFINITY, f64::INFINITY),
        Domain::NonNegative => (0.0, f64::INFINITY),
        Domain::Box { lo, hi } => (lo, hi),
    };
    for i in 0..view.centre.len() {
        layout.centre.push(lp.add_var(format!("c{i}"), lo, hi, 0.0));
    }
    let r = lp.add_var("r".into(), 0.0, f64::INFINITY, -1.0);
    layout.scalar = Some(r);
    for (i, &c) in layout.centre.iter().enumerate() {
        if lo.is_finite() {
            lp.add_row(
                format!("lo{i}"),
                vec![(c, 1.0), (r, -1.0)],
                RowKind::Ge,
                dyadic(lo),
            );
        }
        if hi.is_finite() {
            lp.add_row(
                format!("hi{i}"),
                vec![(c, 1.0), (r, 1.0)],
                RowKind::Le,
                dyadic(hi),
            );
        }
    }
    let first = &view.net.layers()[view.layer].affine;
    let rows = LayerRows { view, tightening };
    let centre = layout.centre.clone();
    rows.add(
        &mut lp,
        &|j| {
            first
                .row(j)
                .entries()
                .filter(|(_, w)| **w != 0.0)
                .map(|(i, &w)| (centre[i], w))
                .collect()
        },
        &|j| dyadic(*first.bias(j)),
        &|i| {
            let (lower, upper) = norms[i];
            Some((
                r,
                if side == NormSide::Inner {
                    upper
                } else {
                    lower
                },
            ))
        },
        None,
    );
    (lp, layout)
}

/// The facet program of constraint `(k, j)` of `P_m` (0-based layer `k`): minimise its signed
/// pre-activation `σ z_{k,j}` over the region without that constraint. A negative minimum
/// means the constraint is not redundant. Returns the program and the variable holding
/// `σ z_{k,j}` (for an inactive neuron, `−z`). A tightening moves the other constraints
/// inwards (for finding a witness that checks exactly); certified programs use none.
pub fn facet_program(
    view: RegionView,
    k: usize,
    j: usize,
    tightening: Tightening,
) -> (LinearProgram, Layout, usize) {
    let (mut lp, layout) = root_program(view, None, Norm::L1, tightening);
    // Rebuild the region rows with the constraint dropped: simplest to start over.
    lp.rows.clear();
    lp.cost.iter_mut().for_each(|c| *c = 0.0);
    lp.names.truncate(2 * view.centre.len());
    lp.lower.truncate(2 * view.centre.len());
    lp.upper.truncate(2 * view.centre.len());
    lp.cost.truncate(2 * view.centre.len());
    let first = &view.net.layers()[view.layer].affine;
    let rows = LayerRows { view, tightening };
    let v = rows
        .add(
            &mut lp,
            &|jj| layout.split(first.row(jj)),
            &|jj| pre_activation_at_centre(view, jj),
            &|_| None,
            Some((k, j)),
        )
        .expect("the dropped constraint is a ReLU neuron of the region");
    lp.cost[v] = 1.0;
    (lp, layout, v)
}

/// Why a facet question about a Clip neuron between its two bounds is refused: the neuron
/// has two constraints, and a facet question names one (1-based `layer`, 0-based `neuron`).
pub fn two_faces(layer: usize, neuron: usize) -> String {
    format!(
        "(layer {layer}, neuron {neuron}) is a Clip neuron between its bounds, with two \
         constraints: a facet question reads a neuron with one"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn move_bounds_are_relaxations_and_never_nan() {
        // Unbounded ends stay unbounded (a regression: inf − inf once made them NaN).
        for margin in [0.0, 1e-9] {
            let (p_lo, p_hi, n_lo, n_hi) = move_bounds(Domain::Free, 0.3, margin);
            assert_eq!((p_lo, n_lo), (0.0, 0.0));
            assert_eq!((p_hi, n_hi), (f64::INFINITY, f64::INFINITY));
        }
        // Certified bounds contain the exact moves; a centre outside the box must move.
        let (p_lo, p_hi, n_lo, n_hi) = move_bounds(Domain::Box { lo: 0.0, hi: 0.1 }, 0.3, 0.0);
        assert_eq!((p_lo, p_hi), (0.0, 0.0));
        assert!(n_lo <= 0.3 - 0.1 && n_lo > 0.19);
        assert!(n_hi >= 0.3);
        // Tightened: a centre on the orthant's face must lift off it.
        let (p_lo, _, _, n_hi) = move_bounds(Domain::NonNegative, 0.0, 1e-9);
        assert!(p_lo > 0.0);
        assert_eq!(n_hi, 0.0);
    }
}
