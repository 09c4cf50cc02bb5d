//! The layer input a region's programs are centred on, `a = h_{m}(x)`: exact, with its f64
//! reading.
//!
//! A sample's layer input is computed from the network input in rationals. Every weight and
//! input is an f64, and the forward pass only adds, multiplies and takes maxima, so the exact
//! value is a dyadic rational; its f64 reading (the f64 trace, or the nearest f64) can lie on
//! the other side of a face than the exact point, and a root plane through the explained
//! neuron's own face is decided by that difference. The programs' constants (`w·a + b`) and
//! every certified statement use the exact value; solvers and readings use the f64 one.

use crate::exact::dyadic::{exact_dot, Dyadic};
use crate::exact::{Rational, Scalar};
use crate::model::forward::activate;
use crate::model::ir::WeightRow;
use crate::model::Model;

/// A layer input, exactly and as f64 values.
#[derive(Clone, Debug, PartialEq)]
pub struct Centre {
    exact: Vec<Dyadic>,
    approx: Vec<f64>,
    /// Whether every coordinate is an f64 (`exact` equals `approx`).
    is_f64: bool,
}

impl Centre {
    /// A point given as f64 values (exact as given); `None` when a value is NaN or infinite.
    pub fn from_f64(a: &[f64]) -> Option<Self> {
        let exact = a
            .iter()
            .map(|&v| Dyadic::from_f64(v))
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            exact,
            approx: a.to_vec(),
            is_f64: true,
        })
    }

    /// An exact point; its reading is the nearest f64 of each coordinate.
    pub fn from_exact(exact: Vec<Dyadic>) -> Self {
        let approx: Vec<f64> = exact.iter().map(Dyadic::to_f64_nearest).collect();
        let is_f64 = exact
            .iter()
            .zip(&approx)
            .all(|(e, &a)| Dyadic::from_f64(a).is_some_and(|d| d == *e));
        Self {
            exact,
            approx,
            is_f64,
        }
    }

    /// The input of 0-based layer `m` for the network input `x`, computed exactly; `None`
    /// when a value of `x` is not finite, or the model holds a weight that is not dyadic
    /// (none read from f32 or f64 files does).
    pub fn of_sample(model: &Model, x: &[f64], m: usize) -> Option<Self> {
        if x.iter().any(|v| !v.is_finite()) {
            return None;
        }
        if m == 0 {
            return Self::from_f64(x);
        }
        let net = model.exact();
        let mut h: Vec<Rational> = x.iter().map(|&v| Rational::from_f64(v)).collect();
        let mut z = Vec::new();
        for layer in &net.layers()[..m] {
            layer.affine.apply_into(&h, &mut z);
            h = activate(layer, &z);
        }
        let exact = h
            .iter()
            .map(Dyadic::from_rational)
            .collect::<Option<Vec<_>>>()?;
        Some(Self::from_exact(exact))
    }

    /// The number of coordinates.
    pub fn len(&self) -> usize {
        self.exact.len()
    }

    /// Whether the point has no coordinates.
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty()
    }

    /// The exact coordinates.
    pub fn exact(&self) -> &[Dyadic] {
        &self.exact
    }

    /// The coordinates rounded to f64 (exact where [`Self::is_f64`]).
    pub fn approx(&self) -> &[f64] {
        &self.approx
    }

    /// Whether every coordinate is an f64, so that [`Self::approx`] is exact.
    pub fn is_f64(&self) -> bool {
        self.is_f64
    }

    /// Coordinate `i` as a rational.
    pub fn rational(&self, i: usize) -> Rational {
        self.exact[i].to_rational()
    }

    /// A bound on `|a_i − approx_i|`: 0 where the coordinate is an f64, half a unit in the
    /// last place (and the smallest subnormal's half) where it was rounded to nearest.
    pub fn rounding(&self, i: usize) -> f64 {
        if self.is_f64 {
            return 0.0;
        }
        let a = self.approx[i];
        if Dyadic::from_f64(a).is_some_and(|d| d == self.exact[i]) {
            return 0.0;
        }
        (a.abs() * f64::EPSILON / 2.0 + f64::from_bits(1)).next_up()
    }

    /// `w·a + b` for a weight row over this point's coordinates, exactly.
    pub fn affine(&self, row: WeightRow<'_, f64>, b: f64) -> Dyadic {
        let bias = Dyadic::from_f64(b).expect("model values are finite");
        if self.is_f64 {
            let wa = exact_dot(row.values(), &row.gather(&self.approx)).expect("finite centre");
            return &wa + &bias;
        }
        let mut sum = bias;
        for (i, &w) in row.entries() {
            if w != 0.0 {
                let term = self.exact[i].mul_f64(w).expect("model values are finite");
                sum = &sum + &term;
            }
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::forward::forward;
    use crate::model::ir::dense_layer;
    use crate::model::Network;

    #[test]
    fn a_sample_s_layer_input_is_exact_where_the_f64_trace_rounds() {
        // 0.1 · 3 + 0.2 rounds in f64; the exact sum is the dyadic rational it is.
        let net = Network::new(vec![
            dense_layer(1, 1, vec![3.0], vec![0.2], true).unwrap(),
            dense_layer(1, 1, vec![1.0], vec![0.0], false).unwrap(),
        ])
        .unwrap();
        let model = Model::new(net);
        let x = [0.1];
        let c = Centre::of_sample(&model, &x, 1).unwrap();
        let exact = Rational::from_f64(0.1) * Rational::from_f64(3.0) + Rational::from_f64(0.2);
        assert_eq!(c.rational(0), exact);
        assert!(!c.is_f64());
        let traced = forward(model.net(), &x).layer_input(1)[0];
        assert_ne!(Rational::from_f64(traced), exact);
        // The reading is the nearest f64, within the stated rounding.
        let err = Scalar::abs(&(Rational::from_f64(c.approx()[0]) - &exact));
        assert!(err <= Rational::from_f64(c.rounding(0)));
        assert_eq!(Centre::of_sample(&model, &x, 0).unwrap().approx(), &x);
        assert!(Centre::of_sample(&model, &[f64::NAN], 1).is_none());
    }

    #[test]
    fn affine_values_at_the_centre_are_exact() {
        let row = [0.5, -3.0];
        let w = WeightRow::from_dense(&row);
        let third = Dyadic::from_f64(1.0 / 3.0).unwrap();
        let c = Centre::from_exact(vec![&third + &Dyadic::from_f64(1e-30).unwrap(), third]);
        let expect = c.rational(0) * Rational::from_f64(0.5)
            + c.rational(1) * Rational::from_f64(-3.0)
            + Rational::from_f64(0.25);
        assert_eq!(c.affine(w.clone(), 0.25).to_rational(), expect);
        let f = Centre::from_f64(&[1.0, 2.0]).unwrap();
        assert_eq!(
            f.affine(w, 0.25).to_rational(),
            Rational::from_f64(0.5 - 6.0 + 0.25)
        );
    }
}
