//! The piecewise-linear activations a layer applies after its affine map: ReLU, Clip with
//! constant bounds (ReLU6 is Clip(0, 6)), LeakyRelu and PRelu. Each is written once over
//! [`Scalar`], so the forward pass computes it in f64 and in exact rationals alike.

use sha2::{Digest, Sha256};

use crate::exact::Scalar;

/// `h_j = act(z_j)` for each output `j` under the activation (a layer's carried tail has none).
#[derive(Clone, Debug, PartialEq)]
pub enum Activation<T = f64> {
    /// `max(z, 0)`: one face at 0, slope 0 below it and 1 above.
    Relu,
    /// `min(max(z, lo), hi)`: a face at each bound given, slope 0 outside them and 1 between
    /// (`lo < hi` when both are given; at least one is).
    Clip {
        /// The lower bound; `None` for none.
        lo: Option<T>,
        /// The upper bound; `None` for none.
        hi: Option<T>,
    },
    /// `z` for `z > 0`, `alpha · z` otherwise: one face at 0.
    LeakyRelu {
        /// The slope below 0.
        alpha: T,
    },
    /// `z_j` for `z_j > 0`, `slopes[j] · z_j` otherwise: one face at 0, one slope per output
    /// (an ONNX PRelu's slope broadcast over the data).
    PRelu {
        /// The slope below 0 of each output under the activation.
        slopes: Vec<T>,
    },
}

impl<T: Scalar> Activation<T> {
    /// `act(z)` for output `j`.
    pub fn apply(&self, j: usize, z: &T) -> T {
        match self {
            Activation::Relu => {
                if z.is_positive() {
                    z.clone()
                } else {
                    T::zero()
                }
            }
            Activation::Clip { lo, hi } => match (lo, hi) {
                (Some(lo), _) if z < lo => lo.clone(),
                (_, Some(hi)) if z > hi => hi.clone(),
                _ => z.clone(),
            },
            Activation::LeakyRelu { alpha } => {
                if z.is_positive() {
                    z.clone()
                } else {
                    T::times(alpha, z)
                }
            }
            Activation::PRelu { slopes } => {
                if z.is_positive() {
                    z.clone()
                } else {
                    T::times(&slopes[j], z)
                }
            }
        }
    }

    /// Whether this is the plain ReLU.
    pub fn is_relu(&self) -> bool {
        matches!(self, Activation::Relu)
    }

    /// The operator's name, for messages: `Relu`, `Clip`, `LeakyRelu` or `PRelu`.
    pub fn name(&self) -> &'static str {
        match self {
            Activation::Relu => "Relu",
            Activation::Clip { .. } => "Clip",
            Activation::LeakyRelu { .. } => "LeakyRelu",
            Activation::PRelu { .. } => "PRelu",
        }
    }

    /// Whether every output is non-negative whatever the input: ReLU, Clip with a lower
    /// bound at or above 0, and LeakyRelu or PRelu with no slope above 0.
    pub fn nonnegative(&self) -> bool {
        match self {
            Activation::Relu => true,
            Activation::Clip { lo, .. } => lo.as_ref().is_some_and(|lo| !lo.is_negative()),
            Activation::LeakyRelu { alpha } => !alpha.is_positive(),
            Activation::PRelu { slopes } => slopes.iter().all(|s| !s.is_positive()),
        }
    }

    /// The same activation with every constant converted by `f`.
    pub fn map<U: Scalar>(&self, f: impl Fn(&T) -> U) -> Activation<U> {
        match self {
            Activation::Relu => Activation::Relu,
            Activation::Clip { lo, hi } => Activation::Clip {
                lo: lo.as_ref().map(&f),
                hi: hi.as_ref().map(&f),
            },
            Activation::LeakyRelu { alpha } => Activation::LeakyRelu { alpha: f(alpha) },
            Activation::PRelu { slopes } => Activation::PRelu {
                slopes: slopes.iter().map(f).collect(),
            },
        }
    }
}

impl Activation<f64> {
    /// Checks the constants for a layer with `neurons` outputs under the activation: finite,
    /// `lo < hi`, at least one bound, one PRelu slope per output.
    pub fn check(&self, neurons: usize) -> Result<(), String> {
        let finite = |what: &str, v: f64| {
            if v.is_finite() {
                Ok(())
            } else {
                Err(format!("{} {what} is {v}, it must be finite", self.name()))
            }
        };
        match self {
            Activation::Relu => Ok(()),
            Activation::Clip { lo, hi } => {
                if let Some(lo) = lo {
                    finite("min", *lo)?;
                }
                if let Some(hi) = hi {
                    finite("max", *hi)?;
                }
                match (lo, hi) {
                    (None, None) => Err("Clip without min or max is no activation".into()),
                    (Some(lo), Some(hi)) if lo >= hi => Err(format!(
                        "Clip min {lo} is not below max {hi}: the output would be constant"
                    )),
                    _ => Ok(()),
                }
            }
            Activation::LeakyRelu { alpha } => finite("alpha", *alpha),
            Activation::PRelu { slopes } => {
                if slopes.len() != neurons {
                    return Err(format!(
                        "PRelu has {} slopes for {neurons} outputs",
                        slopes.len()
                    ));
                }
                slopes.iter().try_for_each(|&s| finite("slope", s))
            }
        }
    }

    /// Adds the activation to a fingerprint; ReLU adds nothing, so a ReLU network's
    /// fingerprint is what it was before other activations were read.
    pub fn fingerprint(&self, h: &mut Sha256) {
        let (tag, values): (&[u8], Vec<Option<f64>>) = match self {
            Activation::Relu => return,
            Activation::Clip { lo, hi } => (b"clip", vec![*lo, *hi]),
            Activation::LeakyRelu { alpha } => (b"leaky-relu", vec![Some(*alpha)]),
            Activation::PRelu { slopes } => (b"prelu", slopes.iter().map(|&s| Some(s)).collect()),
        };
        h.update(tag);
        h.update((values.len() as u64).to_le_bytes());
        for v in values {
            match v {
                Some(v) => h.update(v.to_bits().to_le_bytes()),
                None => h.update(b"none"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exact::Rational;

    #[test]
    fn each_activation_computes_its_pieces_in_f64_and_exactly() {
        let clip = Activation::Clip {
            lo: Some(-1.0),
            hi: Some(6.0),
        };
        let leaky = Activation::LeakyRelu { alpha: 0.125 };
        let prelu = Activation::PRelu {
            slopes: vec![0.5, -2.0],
        };
        let cases: [(&Activation, usize, f64, f64); 10] = [
            (&Activation::Relu, 0, -3.0, 0.0),
            (&Activation::Relu, 0, 2.5, 2.5),
            (&clip, 0, -3.0, -1.0),
            (&clip, 0, 2.5, 2.5),
            (&clip, 0, 7.0, 6.0),
            (&leaky, 0, -8.0, -1.0),
            (&leaky, 0, 8.0, 8.0),
            (&prelu, 0, -3.0, -1.5),
            (&prelu, 1, -3.0, 6.0),
            (&prelu, 1, 3.0, 3.0),
        ];
        for (act, j, z, h) in cases {
            assert_eq!(act.apply(j, &z), h, "{act:?} at {z}");
            let exact = act.map(|&v| Rational::from_f64(v));
            assert_eq!(
                exact.apply(j, &Rational::from_f64(z)),
                Rational::from_f64(h)
            );
        }
        let shifted = Activation::Clip {
            lo: Some(0.5),
            hi: None,
        };
        assert_eq!(shifted.apply(0, &-4.0), 0.5);
        assert_eq!(shifted.apply(0, &40.0), 40.0);
        assert!(shifted.nonnegative() && !clip.nonnegative() && !leaky.nonnegative());
    }

    #[test]
    fn constants_are_checked() {
        let clip = |lo, hi| Activation::Clip { lo, hi }.check(2);
        assert!(clip(Some(0.0), Some(6.0)).is_ok());
        assert!(clip(None, Some(6.0)).is_ok());
        for (e, words) in [
            (clip(Some(6.0), Some(6.0)), "not below max"),
            (clip(None, None), "without min or max"),
            (clip(Some(f64::NAN), None), "min is NaN"),
            (
                Activation::PRelu { slopes: vec![1.0] }.check(2),
                "1 slopes for 2 outputs",
            ),
            (
                Activation::LeakyRelu {
                    alpha: f64::INFINITY,
                }
                .check(2),
                "alpha is inf",
            ),
        ] {
            let e = e.unwrap_err();
            assert!(e.contains(words), "{e}");
        }
    }

    #[test]
    fn the_network_checks_its_activations_naming_the_layer() {
        use crate::model::ir::{dense_layer, Network};
        let with = |relu: bool, activation: Activation| {
            let first = dense_layer(2, 2, vec![1.0, 0.0, 0.0, 1.0], vec![0.0; 2], relu).unwrap();
            let last = dense_layer(1, 2, vec![1.0, 1.0], vec![0.0], false).unwrap();
            Network::new(vec![
                crate::model::Layer {
                    activation,
                    ..first
                },
                last,
            ])
        };
        let prelu = |slopes: Vec<f64>| Activation::PRelu { slopes };
        let net = with(true, prelu(vec![0.5, -1.0])).unwrap();
        assert_eq!(net.first_other_activation().map(|(i, _)| i), Some(0));
        assert!(with(true, Activation::Relu)
            .unwrap()
            .require_relu("this")
            .is_ok());
        for (net, words) in [
            (with(true, prelu(vec![0.5])), "layer 1: PRelu has 1 slopes"),
            (
                with(false, Activation::LeakyRelu { alpha: 0.5 }),
                "layer 1: a LeakyRelu without",
            ),
        ] {
            let e = net.unwrap_err().to_string();
            assert!(e.contains(words), "{e}");
        }
        let e = net.require_relu("the audit").unwrap_err().to_string();
        assert!(e.contains("layer 1 applies PRelu: the audit"), "{e}");
    }
}
