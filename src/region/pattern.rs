//! Activation patterns: which ReLU neurons are active and which entry wins each max-pool
//! window (`Pattern`, its `Face`s and window `Selection`s), and how a point's pattern is
//! decided exactly (`trace_and_pattern`, `pattern_from_layer`): f64 with error bounds, the
//! filter's second tier where those cannot settle a sign, exact rationals where neither can.

use crate::exact::filter::Bounded;
use crate::exact::{Rational, Scalar};
use crate::model::forward::{activate, forward, Trace};
use crate::model::{Model, Network};

use super::filter::{bounded_affine_layer, difference, Decision};
use super::refined;

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

/// One constraint of a layer's region: `σ z_j >= 0` for a ReLU neuron (`σ = +1` active,
/// `−1` inactive), or `z_winner − z_entry >= 0` for an entry of a max-pool window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Face {
    /// `σ z_neuron >= 0`, a ReLU neuron's sign.
    Sign {
        /// The neuron, 0-based in its layer.
        neuron: usize,
        /// Whether the neuron is active (`σ = +1`) or inactive (`σ = −1`).
        active: bool,
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

    /// The number of layers of the network the pattern belongs to.
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

/// [`trace_and_pattern`], with a rigorous bound on each activation's distance to its exact
/// value (`errors[l]` for `trace.activations[l]`). The bounds hold where the pattern was
/// decided by the f64 bound (`Decision::Float`); past it, a ReLU of the f64 trace may sit on
/// the other side of its exact value's sign, and only the pattern is exact.
pub fn trace_with_errors(
    model: &Model,
    x: &[f64],
) -> (Trace<f64>, Vec<Vec<f64>>, Pattern, Decision) {
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
        if let Some(pattern) = refined_pattern(model, 0, x) {
            return (trace, bounds, pattern, Decision::Refined);
        }
        let xr: Vec<Rational> = x.iter().map(|&v| Rational::from_f64(v)).collect();
        let exact = forward(model.exact(), &xr);
        let pattern = Pattern::from_pre(model.exact(), &exact.pre);
        (trace, bounds, pattern, Decision::ExactFallback)
    } else {
        let pattern = Pattern::from_pre(net, &trace.pre);
        (trace, bounds, pattern, Decision::Float)
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
}
