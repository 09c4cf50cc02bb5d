//! Algorithm 1: the recursion that re-evaluates the upper relevance function at each root and
//! takes its gradient there, with the upper layers' choices held fixed (see the module
//! documentation).

use std::cell::Cell;

use super::finder::RootFinder;
use super::result::{
    Expansion, FullBackward, FullBackwardLayer, FullBackwardNeuron, UpperRelevance,
};
use super::settings::{check_cost, FullBackwardSettings};
use crate::error::{invalid, Error, Result};
use crate::exact::Scalar;
use crate::model::{Layer, Network};

/// Full-backward DTD of output `k` at the network input `x`, with roots from `finder`.
///
/// Fails before any work when the network's worst case exceeds `max_evaluations`, when `x` or
/// `k` does not fit the network, or when the finder fails or returns a point of the wrong
/// width.
pub fn full_backward<T: Scalar>(
    net: &Network<T>,
    x: &[T],
    k: usize,
    settings: &FullBackwardSettings,
    finder: &dyn RootFinder<T>,
) -> Result<FullBackward<T>> {
    settings.validate()?;
    check_explained(net, k)?;
    check_width(net, 0, x)?;
    check_cost(net, 0, settings)?;
    let recursion = Recursion::new(net, k, settings, finder);
    let mut layers = Vec::with_capacity(net.layers().len());
    recursion.eval(0, x, Some(&mut layers))?;
    layers.reverse();
    let output = layers
        .last()
        .expect("a network has at least one layer")
        .upper[k]
        .clone();
    Ok(FullBackward {
        explained: k,
        output,
        layers,
        evaluations: recursion.evaluations.get(),
    })
}

/// The upper relevance function `R(.) = relevance(layer + 1, layer_layer(.))` of layer `layer`
/// (0-based) at the layer input `a`, explaining output `k`: the relevance of each of the
/// layer's neurons, and its affine form with everything the evaluation chose held fixed.
pub fn upper_relevance<T: Scalar>(
    net: &Network<T>,
    layer: usize,
    a: &[T],
    k: usize,
    settings: &FullBackwardSettings,
    finder: &dyn RootFinder<T>,
) -> Result<UpperRelevance<T>> {
    settings.validate()?;
    check_explained(net, k)?;
    let layers = net.layers();
    if layer >= layers.len() {
        return Err(invalid(format!(
            "layer index {layer} is out of range: the network has {} layers",
            layers.len()
        )));
    }
    check_width(net, layer, a)?;
    check_cost(net, layer + 1, settings)?;
    let recursion = Recursion::new(net, k, settings, finder);
    let (_, h) = apply(&layers[layer], a);
    let level = recursion.eval(layer + 1, &h, None)?;
    Ok(UpperRelevance {
        relevance: level.relevance,
        slope: level.slope,
        offset: level.offset,
        evaluations: recursion.evaluations.get(),
    })
}

fn check_explained<T: Scalar>(net: &Network<T>, k: usize) -> Result<()> {
    if k >= net.output_dim() {
        return Err(Error::Usage(format!(
            "explained output {k} is out of range: the network has {} outputs",
            net.output_dim()
        )));
    }
    Ok(())
}

fn check_width<T: Scalar>(net: &Network<T>, layer: usize, a: &[T]) -> Result<()> {
    let want = net.layers()[layer].affine.in_dim();
    if a.len() != want {
        return Err(invalid(format!(
            "layer {} takes {want} inputs, got {}",
            layer + 1,
            a.len()
        )));
    }
    Ok(())
}

/// Pre-activations and outputs of one layer.
fn apply<T: Scalar>(layer: &Layer<T>, a: &[T]) -> (Vec<T>, Vec<T>) {
    let mut z = Vec::with_capacity(layer.affine.out_dim());
    layer.affine.apply_into(a, &mut z);
    let h = crate::model::forward::activate(layer, &z);
    (z, h)
}

/// What one call of the recursion returns about the input `h` of its layer: the relevance of
/// each coordinate, and its affine form with the call's roots and choices fixed,
/// `relevance = slope ⊙ h − offset`. The Jacobian of that form is diagonal, so `slope` is all
/// of it.
struct Level<T> {
    relevance: Vec<T>,
    slope: Vec<T>,
    offset: Vec<T>,
}

struct Recursion<'a, T> {
    net: &'a Network<T>,
    k: usize,
    finder: &'a dyn RootFinder<T>,
    face_tolerance: T,
    evaluations: Cell<u64>,
}

impl<'a, T: Scalar> Recursion<'a, T> {
    fn new(
        net: &'a Network<T>,
        k: usize,
        settings: &FullBackwardSettings,
        finder: &'a dyn RootFinder<T>,
    ) -> Self {
        Self {
            net,
            k,
            finder,
            face_tolerance: T::from_f64(settings.face_tolerance),
            evaluations: Cell::new(0),
        }
    }

    /// `relevance(index, h)` for the input `h` of layer `index` (0-based; `L`: the network
    /// output). With `record`, the layers from `index` up are appended to it, top first, as
    /// seen at `h` and at the activations above it.
    fn eval(
        &self,
        index: usize,
        h: &[T],
        mut record: Option<&mut Vec<FullBackwardLayer<T>>>,
    ) -> Result<Level<T>> {
        self.evaluations.set(self.evaluations.get() + 1);
        let layers = self.net.layers();
        let n_in = h.len();
        let mut slope = vec![T::zero(); n_in];
        let mut offset = vec![T::zero(); n_in];
        if index == layers.len() {
            let mut relevance = vec![T::zero(); n_in];
            relevance[self.k] = h[self.k].clone();
            slope[self.k] = T::one();
            return Ok(Level {
                relevance,
                slope,
                offset,
            });
        }
        let layer = &layers[index];
        let (_, out) = apply(layer, h);
        let upper = self.eval(index + 1, &out, record.as_deref_mut())?;
        let mut lower = vec![T::zero(); n_in];
        let mut neurons = Vec::new();
        let mut diff = vec![T::zero(); n_in];
        for (j, r) in upper.relevance.iter().enumerate() {
            let unexpanded = |expansion| FullBackwardNeuron {
                relevance: r.clone(),
                passed: T::zero(),
                remainder: r.clone(),
                expansion,
            };
            if !r.is_positive() {
                if record.is_some() {
                    neurons.push(unexpanded(Expansion::NotPositive));
                }
                continue;
            }
            let Some(root) = self.finder.root(index, j, h, r.clone())? else {
                if record.is_some() {
                    neurons.push(unexpanded(Expansion::NoRoot(
                        self.finder.rootless(index, j),
                    )));
                }
                continue;
            };
            if root.len() != n_in {
                return Err(invalid(format!(
                    "the root finder returned a root of {} values for neuron {j} of layer {}, \
                     whose input has {n_in}",
                    root.len(),
                    index + 1
                )));
            }
            let (z_root, out_root) = apply(layer, &root);
            let at_root = self.eval(index + 1, &out_root, None)?;
            // The gradient is recorded over every input, so the row is taken whole.
            let w = layer.affine.row(j).dense();
            // A neuron of a carried tail has no ReLU.
            let active = j >= layer.relu_count()
                || self.active_toward(&z_root[j], &w, layer.affine.bias(j), &root, h);
            let c = &at_root.slope[j];
            let mut passed = T::zero();
            let mut gradient = Vec::new();
            if active && !c.is_zero() {
                for (d, (ai, pi)) in diff.iter_mut().zip(h.iter().zip(&root)) {
                    *d = ai.clone() - pi.clone();
                }
                for i in 0..n_in {
                    let g = c.clone() * w[i].clone();
                    let ri = g.clone() * diff[i].clone();
                    lower[i] = lower[i].clone() + ri.clone();
                    passed = passed + ri;
                    T::mul_add_assign(&mut offset[i], &g, &root[i]);
                    slope[i] = slope[i].clone() + g.clone();
                    if record.is_some() {
                        gradient.push(g);
                    }
                }
            } else if record.is_some() {
                gradient = vec![T::zero(); n_in];
            }
            if record.is_some() {
                let frozen = c.clone() * out[j].clone() - at_root.offset[j].clone();
                neurons.push(FullBackwardNeuron {
                    relevance: r.clone(),
                    passed,
                    remainder: at_root.relevance[j].clone(),
                    expansion: Expansion::Root {
                        point: root,
                        gradient,
                        frozen,
                    },
                });
            }
        }
        if let Some(record) = record {
            record.push(FullBackwardLayer {
                upper: upper.relevance,
                lower: lower.clone(),
                neurons,
            });
        }
        Ok(Level {
            relevance: lower,
            slope,
            offset,
        })
    }

    /// The activation of a neuron with pre-activation `z` at `root`, on the side facing `a`
    /// when the root is on the neuron's face (within the tolerance).
    fn active_toward(&self, z: &T, w: &[T], b: &T, root: &[T], a: &[T]) -> bool {
        let scale = w.iter().zip(root).fold(b.abs(), |acc, (wi, pi)| {
            acc + (wi.clone() * pi.clone()).abs()
        });
        if z.abs() <= self.face_tolerance.clone() * scale {
            let mut toward = T::zero();
            for ((wi, ai), pi) in w.iter().zip(a).zip(root) {
                T::mul_add_assign(&mut toward, wi, &(ai.clone() - pi.clone()));
            }
            toward.is_positive()
        } else {
            z.is_positive()
        }
    }
}
