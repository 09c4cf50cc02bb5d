//! The rows of a neuron on a piece of a Clip, LeakyRelu or PRelu activation in the layered
//! programs: its faces, and what it passes to the next layer.

use crate::exact::dyadic::Dyadic;
use crate::exact::program::{LinearProgram, RowKind};
use crate::model::Activation;
use crate::region::{Face, Local};

use super::{define, dyadic, Extra};

/// A neuron on a piece of a Clip, LeakyRelu or PRelu activation, as its rows need it.
pub(super) struct Neuron {
    /// 0-based layer and neuron.
    pub(super) k: usize,
    pub(super) j: usize,
    /// How far a tightened program moves its faces inwards.
    pub(super) shift: f64,
    /// The index of its first face among `P_m`'s constraints.
    pub(super) first_index: usize,
}

/// What a neuron on a piece passes to the next layer inside the region.
pub(super) enum PieceOutput {
    /// A program variable (`h = z` or `h = s · z`).
    Variable(usize),
    /// A constant (a Clip bound, or 0).
    Constant(Dyadic),
    /// Nothing: the layer is the last with constraints.
    None,
}

/// The rows of one neuron on a piece of a Clip, LeakyRelu or PRelu activation. Each face
/// `σ (z − c) >= 0` is a row, on `z`'s expression or, when the neuron's output feeds the next
/// layer, on a free variable `u = z` defined by the row `z{k}_{j}`; the output is `u`, a
/// variable `h = s · u` (a slope below 0) defined by the row `a{k}_{j}`, or a constant.
/// Face rows are named `f{k}_{j}` (a face at 0), `f{k}_{j}_lo` and `f{k}_{j}_hi` (a Clip's
/// bounds).
pub(super) struct PieceRows<'a> {
    pub(super) faces: &'a [Face],
    pub(super) local: Local<f64>,
    pub(super) activation: &'a Activation,
    pub(super) feeds_more: bool,
    pub(super) drop: Option<(usize, usize)>,
}

impl PieceRows<'_> {
    /// Adds the neuron's rows; the row of its pre-activation is `coeffs·x + constant`.
    pub(super) fn add(
        &self,
        lp: &mut LinearProgram,
        n: &Neuron,
        name: String,
        coeffs: Vec<(usize, f64)>,
        constant: Dyadic,
        extra: Extra,
    ) -> PieceOutput {
        let constant_out = match &self.local {
            Local::Constant(c) => Some(dyadic(*c)),
            Local::Scale(s) if *s == 0.0 => Some(Dyadic::zero()),
            _ => None,
        };
        let needs_var = self.feeds_more && constant_out.is_none();
        let (lin, k0, u) = if needs_var {
            let u = define(lp, format!("u{}_{}", n.k + 1, n.j), name, coeffs, &constant);
            (vec![(u, 1.0)], Dyadic::zero(), Some(u))
        } else {
            (coeffs, constant, None)
        };
        let dropped = self.drop == Some((n.k, n.j));
        for (t, face) in self.faces.iter().enumerate() {
            let sigma = face.sign();
            // σ c, and c.
            let offset = dyadic(face.offset(self.activation));
            let c = if sigma < 0.0 {
                -&offset
            } else {
                offset.clone()
            };
            let row = face_row_name(*face, n.k);
            if dropped {
                // The face becomes the objective `s = σ (z − c)`: σ lin − s = σ c − σ K.
                let mut row_coeffs: Vec<(usize, f64)> =
                    lin.iter().map(|&(v, w)| (v, sigma * w)).collect();
                let s = lp.add_var(
                    format!("s{}_{}", n.k + 1, n.j),
                    f64::NEG_INFINITY,
                    f64::INFINITY,
                    0.0,
                );
                row_coeffs.push((s, -1.0));
                let sk = if sigma < 0.0 { -&k0 } else { k0.clone() };
                lp.add_row(row, row_coeffs, RowKind::Eq, &offset - &sk);
                continue;
            }
            let mut row_coeffs = lin.clone();
            if let Some(e) = extra(n.first_index + t) {
                row_coeffs.push((e.0, -sigma * e.1));
            }
            if sigma > 0.0 {
                // lin (− ν r) >= c + shift − K
                let rhs = &(&c + &dyadic(n.shift)) - &k0;
                lp.add_row(row, row_coeffs, RowKind::Ge, rhs);
            } else {
                // lin (+ ν r) <= c − shift − K
                let rhs = &(&c - &dyadic(n.shift)) - &k0;
                lp.add_row(row, row_coeffs, RowKind::Le, rhs);
            }
        }
        match (u, &self.local, constant_out) {
            (Some(u), Local::Scale(s), _) => {
                let var = format!("h{}_{}", n.k + 1, n.j);
                let row = format!("a{}_{}", n.k + 1, n.j);
                PieceOutput::Variable(define(lp, var, row, vec![(u, *s)], &Dyadic::zero()))
            }
            (Some(u), _, _) => PieceOutput::Variable(u),
            (None, _, Some(c)) if self.feeds_more => PieceOutput::Constant(c),
            _ => PieceOutput::None,
        }
    }

    /// The objective variable when this neuron's face is the dropped constraint: the last
    /// variable named `s{k}_{j}`.
    pub(super) fn dropped(&self, n: &Neuron, lp: &LinearProgram) -> Option<usize> {
        if self.drop != Some((n.k, n.j)) {
            return None;
        }
        let name = format!("s{}_{}", n.k + 1, n.j);
        lp.names.iter().rposition(|v| *v == name)
    }
}

/// The row name of a face of a Clip, LeakyRelu or PRelu neuron of 0-based layer `k`.
fn face_row_name(face: Face, k: usize) -> String {
    match face {
        Face::Bound { neuron, upper, .. } => {
            format!("f{}_{neuron}_{}", k + 1, if upper { "hi" } else { "lo" })
        }
        _ => format!("f{}_{}", k + 1, face.label()),
    }
}
