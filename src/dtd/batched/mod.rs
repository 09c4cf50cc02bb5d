//! Train-free relevances of a batch of inputs at once, in f64: the forward pass and every
//! rule's step as matrix products over the batch ([`crate::model::gemm`]), where
//! [`explain`](super::explain) goes input by input and neuron by neuron. The same numbers up
//! to the order of the additions: each neuron's denominator is one entry of a product
//! `W a`, `W⁺ a` or `W² 1`, and what it passes to its inputs one column of a transposed
//! product.
//!
//! Every rule with a closed form is covered (0, z, z+, γ, w², zB, ε, αβ, flat), with the
//! settings the per-neuron engine reads (bias mode, stabiliser, denominator threshold,
//! initial relevance, the rules of each layer); identity neurons pass their relevance whole
//! and max-pool layers pass each window's relevance to its winner. The LP rule
//! (`nearest-valid`) is not: [`covers`] says whether a network and settings can run here.
//!
//! # Files
//!
//! - `mod.rs`: [`Batched`], the forward pass and the recursion of a batch.
//! - `steps.rs`: one layer's rule step as matrix expressions.

mod steps;

use ndarray::{Array1, Array2, ArrayView2, Axis};

use super::rules::{InitialRelevance, Rule};
use super::settings::DtdSettings;
use crate::model::forward::{argmax, layer_rows};
use crate::model::ir::{Affine, Layer};
use crate::model::Network;
use steps::{rule_step, LayerRule, Maps};

/// Numbers of one batch's layer values (every layer's input, a batch wide) that
/// [`batch_size`] aims at: 2^27, a GiB of f64.
const BATCH_NUMBERS: usize = 1 << 27;

/// Whether every layer's rule under `settings` has a batched step: all but the LP rule
/// (`nearest-valid`); a max-pool layer passes to its winners whatever its rule.
pub fn covers(net: &Network, settings: &DtdSettings) -> bool {
    net.layers()
        .iter()
        .enumerate()
        .all(|(index, layer)| layer.max_pool.is_some() || !settings.rule_for(index).needs_lp())
}

/// Inputs explained together: as many as keep every layer's values for the batch within
/// 2^27 numbers (a GiB), from 1 to 256.
pub fn batch_size(net: &Network) -> usize {
    let per_input: usize = net.input_dim() + net.widths().iter().sum::<usize>();
    (BATCH_NUMBERS / per_input.max(1)).clamp(1, 256)
}

/// One layer prepared for batches: its biases, identity neurons, max-pool copies and the
/// maps of its weights that its rule multiplies by, built once per run.
struct Prepared {
    rule: Rule,
    bias: Array1<f64>,
    /// `(output, input)` of each identity neuron ([`Layer::identity`]).
    identities: Vec<(usize, usize)>,
    /// For a max-pool layer, the input each entry of `z` copies.
    gathered: Vec<usize>,
    maps: Maps,
    /// Where the identity neurons are the outputs from some point on and a map of parts adds
    /// into them with parts of their own: the rule's map of the outputs before them.
    head: Option<Head>,
}

/// The outputs of a layer before its identity neurons ([`Prepared::head`]): their map of
/// parts ([`Blocks::outputs`](crate::model::blocks::Blocks::outputs)), biases, and the maps
/// of its weights the rule multiplies by. The rule runs on them alone; the identity neurons'
/// relevance goes whole to the inputs they copy, as it does without the cut (where the rule
/// sees them with no relevance and passes nothing).
struct Head {
    affine: Affine,
    bias: Array1<f64>,
    maps: Maps,
}

/// A network and settings ready to explain batches of inputs ([`Batched::input_relevances`]).
pub struct Batched<'a> {
    net: &'a Network,
    settings: DtdSettings,
    layers: Vec<Prepared>,
}

impl<'a> Batched<'a> {
    /// `net` under `settings`, with every layer's maps of its weights built (`W⁺` for z+,
    /// ...); `None` where [`covers`] is false.
    pub fn new(net: &'a Network, settings: &DtdSettings) -> Option<Self> {
        if !covers(net, settings) {
            return None;
        }
        let layers = net
            .layers()
            .iter()
            .enumerate()
            .map(|(index, layer)| prepare(layer, settings.rule_for(index)))
            .collect();
        Some(Self {
            net,
            settings: settings.clone(),
            layers,
        })
    }

    /// The input relevances of the inputs `x` (one a row): the explained output of input `p`
    /// is `targets[p]`, or its largest output where that is `None` (or `targets` is
    /// shorter), and each layer passes relevance down with its rule, as
    /// [`explain`](super::explain) does for one input.
    ///
    /// # Panics
    ///
    /// When `x` has not one column per network input, or a target is not an output.
    pub fn input_relevances(
        &self,
        x: ArrayView2<'_, f64>,
        targets: &[Option<usize>],
    ) -> Array2<f64> {
        self.input_relevances_and_starts(x, targets).0
    }

    /// [`Self::input_relevances`], and the relevance each input's explanation started from
    /// (the explained output's value, or 1).
    ///
    /// # Panics
    ///
    /// As [`Self::input_relevances`].
    pub fn input_relevances_and_starts(
        &self,
        x: ArrayView2<'_, f64>,
        targets: &[Option<usize>],
    ) -> (Array2<f64>, Vec<f64>) {
        let (h, winners) = self.forward(x);
        let output = h.last().expect("a network has layers");
        let mut upper = Array2::zeros(output.dim());
        let mut starts = Vec::with_capacity(output.nrows());
        for (p, row) in output.rows().into_iter().enumerate() {
            let values = row.to_vec();
            let k = targets
                .get(p)
                .copied()
                .flatten()
                .unwrap_or_else(|| argmax(&values));
            upper[[p, k]] = match self.settings.initial_relevance {
                InitialRelevance::Output => values[k],
                InitialRelevance::One => 1.0,
            };
            starts.push(upper[[p, k]]);
        }
        for (index, prepared) in self.layers.iter().enumerate().rev() {
            let layer = &self.net.layers()[index];
            let a = h[index].view();
            upper = match &winners[index] {
                Some(won) => winner_take_all(prepared, won, a.ncols(), upper.view()),
                None => self.step(layer, prepared, a, upper),
            };
        }
        (upper, starts)
    }

    /// Every layer's input, then the output; for each max-pool layer the winner of each
    /// window of each input (indices into its `z`).
    #[allow(clippy::type_complexity)]
    fn forward(&self, x: ArrayView2<'_, f64>) -> (Vec<Array2<f64>>, Vec<Option<Array2<usize>>>) {
        let mut h = vec![x.to_owned()];
        let mut winners = Vec::with_capacity(self.layers.len());
        for layer in self.net.layers() {
            let (next, won) = layer_rows(layer, h[h.len() - 1].view());
            h.push(next);
            winners.push(won);
        }
        (h, winners)
    }

    /// One layer's step: the identity neurons' relevance passed whole, the rest by the rule.
    fn step(
        &self,
        layer: &Layer,
        prepared: &Prepared,
        a: ArrayView2<'_, f64>,
        mut upper: Array2<f64>,
    ) -> Array2<f64> {
        // The identity neurons' relevances (one column each), taken out of `upper` row by row.
        let ids = &prepared.identities;
        let mut whole = Array2::zeros((upper.nrows(), ids.len()));
        for (mut row, mut kept) in upper.rows_mut().into_iter().zip(whole.rows_mut()) {
            for (k, &(j, _)) in ids.iter().enumerate() {
                kept[k] = std::mem::take(&mut row[j]);
            }
        }
        let (w, b, maps, upper) = match &prepared.head {
            Some(head) => {
                let outputs = head.bias.len();
                let upper = upper.slice(ndarray::s![.., ..outputs]);
                (&head.affine, &head.bias, &head.maps, upper)
            }
            None => (&layer.affine, &prepared.bias, &prepared.maps, upper.view()),
        };
        let rule = LayerRule {
            w,
            b,
            maps,
            rule: prepared.rule,
            settings: &self.settings,
        };
        let mut lower = rule_step(&rule, a, upper);
        for (mut row, kept) in lower.rows_mut().into_iter().zip(whole.rows()) {
            for (&(_, i), &r) in ids.iter().zip(kept) {
                row[i] += r;
            }
        }
        lower
    }
}

/// `layer` under `rule`, ready for batches.
fn prepare(layer: &Layer, rule: Rule) -> Prepared {
    let affine: &Affine = &layer.affine;
    let bias = affine.biases();
    let identities: Vec<(usize, usize)> = layer
        .identities()
        .into_iter()
        .enumerate()
        .filter_map(|(j, i)| Some((j, i?)))
        .collect();
    let head = head(affine, &identities, &bias, rule);
    let (gathered, maps) = match (layer.max_pool, &head) {
        (Some(_), _) => (
            (0..affine.out_dim()).map(|j| layer.gathered(j)).collect(),
            Maps::default(),
        ),
        // The whole layer's maps are not needed where the rule runs on the head alone.
        (None, Some(_)) => (Vec::new(), Maps::default()),
        (None, None) => (Vec::new(), Maps::new(affine, rule)),
    };
    Prepared {
        rule,
        bias,
        identities,
        gathered,
        maps,
        head,
    }
}

/// [`Prepared::head`] of a map of parts whose identity neurons (`(output, input)`, in output
/// order) are its last outputs, none of its parts adding into outputs on both sides.
fn head(
    affine: &Affine,
    identities: &[(usize, usize)],
    bias: &Array1<f64>,
    rule: Rule,
) -> Option<Head> {
    let Affine::Blocks(blocks) = affine else {
        return None;
    };
    let out = affine.out_dim();
    let first = identities.first()?.0;
    if first == 0 || out - first != identities.len() {
        return None;
    }
    let affine = Affine::Blocks(blocks.outputs(0, first)?);
    let maps = Maps::new(&affine, rule);
    Some(Head {
        affine,
        bias: bias.slice(ndarray::s![..first]).to_owned(),
        maps,
    })
}

/// A max-pool layer: each window's relevance goes whole to the input its winner copies.
fn winner_take_all(
    prepared: &Prepared,
    winners: &Array2<usize>,
    inputs: usize,
    upper: ArrayView2<'_, f64>,
) -> Array2<f64> {
    let mut lower = Array2::zeros((upper.nrows(), inputs));
    for (p, (won, r)) in winners
        .axis_iter(Axis(0))
        .zip(upper.axis_iter(Axis(0)))
        .enumerate()
    {
        for (&w, &r) in won.iter().zip(r.iter()) {
            lower[[p, prepared.gathered[w]]] += r;
        }
    }
    lower
}
