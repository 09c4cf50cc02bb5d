//! Algorithm 1: the recursion that re-evaluates the upper relevance function at each root and
//! takes its gradient there, with the upper layers' choices held fixed (see the module
//! documentation).

use std::cell::Cell;
use std::cmp::Ordering;

use super::finder::{FoundRoot, RootFinder, Rootless};
use super::result::{
    Expansion, FullBackward, FullBackwardLayer, FullBackwardNeuron, UpperRelevance,
};
use super::settings::{check_cost, FullBackwardSettings};
use crate::error::{invalid, Error, Result};
use crate::exact::Scalar;
use crate::model::forward::activate;
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
    let h = activate(layer, &z);
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
    /// `None`: only an exact zero is on a face.
    face_tolerance: Option<T>,
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
            face_tolerance: settings.face_tolerance.map(T::from_f64),
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
        let (z, out) = apply(layer, h);
        let upper = self.eval(index + 1, &out, record.as_deref_mut())?;
        let mut lower = vec![T::zero(); n_in];
        let mut neurons = Vec::new();
        let identities = layer.identities();
        for (j, r) in upper.relevance.iter().enumerate() {
            let unexpanded = |expansion| FullBackwardNeuron {
                relevance: r.clone(),
                passed: T::zero(),
                remainder: r.clone(),
                expansion,
            };
            // An identity neuron passes its relevance whole, of either sign, and with it its
            // affine form in the value it copies.
            if let Some(i) = identities[j] {
                lower[i] = lower[i].clone() + r.clone();
                slope[i] = slope[i].clone() + upper.slope[j].clone();
                offset[i] = offset[i].clone() + upper.offset[j].clone();
                if record.is_some() {
                    neurons.push(FullBackwardNeuron {
                        relevance: r.clone(),
                        passed: r.clone(),
                        remainder: T::zero(),
                        expansion: Expansion::NoRoot(Rootless::NotApplicable),
                    });
                }
                continue;
            }
            if !r.is_positive() {
                if record.is_some() {
                    neurons.push(unexpanded(Expansion::NotPositive));
                }
                continue;
            }
            let Some(found) = self.finder.found(index, j, h, r.clone())? else {
                if record.is_some() {
                    neurons.push(unexpanded(Expansion::NoRoot(
                        self.finder.rootless(index, j),
                    )));
                }
                continue;
            };
            let FoundRoot {
                point: root,
                step,
                on_root_plane,
            } = found;
            check_found(index, j, n_in, &root, step.as_deref())?;
            let relu = j < layer.relu_count();
            let mut z_root = Vec::with_capacity(layer.affine.out_dim());
            layer.affine.apply_into(&root, &mut z_root);
            if on_root_plane {
                z_root[j] =
                    plane_pre_activation(&z[j], &out[j], &upper.slope[j], &upper.offset[j], relu);
            }
            let out_root = activate(layer, &z_root);
            let at_root = self.eval(index + 1, &out_root, None)?;
            let face = Face {
                z: &z_root[j],
                on_root_plane,
                step_given: step.is_some(),
            };
            let step = step.unwrap_or_else(|| {
                h.iter()
                    .zip(&root)
                    .map(|(ai, pi)| ai.clone() - pi.clone())
                    .collect()
            });
            // The gradient is recorded over every input, so the row is taken whole.
            let w = layer.affine.row(j).dense();
            // A neuron of a carried tail has no ReLU.
            let active =
                !relu || self.active_toward(&face, &w, layer.affine.bias(j), &root, h, &step);
            let c = &at_root.slope[j];
            let mut passed = T::zero();
            let mut gradient = Vec::new();
            if active && !c.is_zero() {
                for i in 0..n_in {
                    let g = c.clone() * w[i].clone();
                    let ri = g.clone() * step[i].clone();
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

    /// The activation of a neuron at its root `root` (`step = a − root`), on the side facing
    /// `a` when the root is on the neuron's face: exactly, or within the tolerance when one is
    /// set.
    fn active_toward(
        &self,
        face: &Face<'_, T>,
        w: &[T],
        b: &T,
        root: &[T],
        a: &[T],
        step: &[T],
    ) -> bool {
        let sign = match &self.face_tolerance {
            // On the root plane, `face.z` is the pre-activation as exactly as the arithmetic
            // computes anything; elsewhere the sign is that of `w · ã + b` for the root as it
            // is (in f64 too: the exact value of the point's pre-activation).
            None if face.on_root_plane => sign_of(face.z),
            None => T::affine_sign(w, root, b),
            Some(tolerance) => {
                let scale = w.iter().zip(root).fold(b.abs(), |acc, (wi, pi)| {
                    acc + (wi.clone() * pi.clone()).abs()
                });
                if face.z.abs() <= tolerance.clone() * scale {
                    Ordering::Equal
                } else {
                    sign_of(face.z)
                }
            }
        };
        match sign {
            Ordering::Greater => true,
            Ordering::Less => false,
            // On the face: the side of `ã + ε (a − ã)`, the sign of `w · (a − ã)`.
            Ordering::Equal if face.step_given => T::affine_sign(w, step, &T::zero()).is_gt(),
            Ordering::Equal => {
                let both: Vec<T> = w
                    .iter()
                    .cloned()
                    .chain(w.iter().map(|wi| -wi.clone()))
                    .collect();
                let points: Vec<T> = a.iter().chain(root).cloned().collect();
                T::affine_sign(&both, &points, &T::zero()).is_gt()
            }
        }
    }
}

/// What decides the side of a root's face besides the point: its pre-activation as the
/// recursion computed it, whether that came from the root plane, and whether the finder
/// computed the step `a − ã` itself.
struct Face<'a, T> {
    z: &'a T,
    on_root_plane: bool,
    step_given: bool,
}

fn sign_of<T: Scalar>(v: &T) -> Ordering {
    if v.is_positive() {
        Ordering::Greater
    } else if v.is_negative() {
        Ordering::Less
    } else {
        Ordering::Equal
    }
}

/// `z_j(ã) = z_j(a) − R_j` for a root on neuron `j`'s root plane, from its pre-activation `z`
/// and activation `h` at `a` and the upper level's affine form `R_j = c h − o`. Written out
/// as `(1 − c) z + o` where `h` is `z`, so that a neuron whose relevance is its own activation
/// (`c = 1`, `o = 0`: the explained output at the top) gets exactly 0 in every arithmetic,
/// not a rounding of `z − z`.
fn plane_pre_activation<T: Scalar>(z: &T, h: &T, c: &T, o: &T, relu: bool) -> T {
    if !relu || z.is_positive() {
        (T::one() - c.clone()) * z.clone() + o.clone()
    } else {
        z.clone() - c.clone() * h.clone() + o.clone()
    }
}

/// Refuses a root (or its step) of the wrong width.
fn check_found<T>(
    index: usize,
    j: usize,
    n_in: usize,
    root: &[T],
    step: Option<&[T]>,
) -> Result<()> {
    for (what, len) in [("root", Some(root.len())), ("step", step.map(<[T]>::len))] {
        if let Some(len) = len.filter(|&len| len != n_in) {
            return Err(invalid(format!(
                "the root finder returned a {what} of {len} values for neuron {j} of layer {}, \
                 whose input has {n_in}",
                index + 1
            )));
        }
    }
    Ok(())
}
