//! Audits on the libtorch backend: a batch of samples is explained at once, every root of
//! every layer is built as a row of a tensor, and each root is judged by one chain of matrix
//! products through the layers above with its sample's activation pattern. The verdicts are
//! the signs the run's precision computes, without error bounds (`decided_by: unchecked`):
//! where a constraint's value is below the precision's resolution they can differ from the
//! exact engine's.

use tch::{Device, Kind, Tensor};

use super::{device, Linear, Pass, Precision, TorchActivation, TorchLayer, TorchNet};
use crate::audit::TorchSettings;
use crate::audit::{overflow, AuditSettings, BatchAuditor, DomainCheck, LayerRecord, NeuronRecord};
use crate::audit::{RootVerdict, SampleRecord};
use crate::dtd::{NoRoot, Rule};
use crate::error::Result;
use crate::model::{Model, Network};
use crate::region::{Decision, Membership};

/// Numbers one tensor of a block of roots may hold (a row per root, a column per input of
/// the widest layer it passes through).
const BLOCK_NUMBERS: i64 = 1 << 22;

/// An audit engine: the model's network as tensors.
pub struct TorchAuditor {
    net: TorchNet,
}

/// The libtorch backend of `--backend torch` settings, for [`crate::audit::Runner`].
pub fn backend(model: &Model, torch: &TorchSettings) -> Result<Box<dyn BatchAuditor>> {
    Ok(Box::new(TorchAuditor::new(
        model,
        torch.precision,
        device(torch.device)?,
    )))
}

impl BatchAuditor for TorchAuditor {
    fn records(
        &self,
        model: &Model,
        settings: &AuditSettings,
        ids: &[usize],
        rows: &[Vec<f64>],
        targets: &[Option<usize>],
    ) -> Result<Vec<SampleRecord>> {
        self.audit(model, settings, ids, rows, targets)
    }
}

impl TorchAuditor {
    /// An auditor of `model`'s network, its tensors in `precision` on `device`.
    pub fn new(model: &Model, precision: Precision, device: Device) -> Self {
        Self {
            net: TorchNet::new(model.net(), precision, device),
        }
    }

    /// Audit samples `ids` (with inputs `rows` and targets `targets`, one each), in batches
    /// of [`super::default_batch`]: one record per sample, in order.
    pub fn audit(
        &self,
        model: &Model,
        settings: &AuditSettings,
        ids: &[usize],
        rows: &[Vec<f64>],
        targets: &[Option<usize>],
    ) -> Result<Vec<SampleRecord>> {
        let batch = super::default_batch(model.net());
        let mut records = Vec::with_capacity(ids.len());
        for start in (0..ids.len()).step_by(batch) {
            let end = (start + batch).min(ids.len());
            records.extend(self.audit_batch(
                model,
                settings,
                &ids[start..end],
                &rows[start..end],
                &targets[start..end],
            )?);
        }
        Ok(records)
    }

    fn audit_batch(
        &self,
        model: &Model,
        settings: &AuditSettings,
        ids: &[usize],
        rows: &[Vec<f64>],
        targets: &[Option<usize>],
    ) -> Result<Vec<SampleRecord>> {
        let net = model.net();
        let flat: Vec<f64> = rows.concat();
        let x = self.net.input(&flat, ids.len());
        let pass = self.net.pass(&x, targets, &settings.dtd)?;
        // The forward pass must be finite: a pattern read off infinities or NaN means nothing.
        let finite = per_row(&pass.h.iter().map(|h| h.isfinite().all_dim(1, false)).fold(
            Tensor::ones([ids.len() as i64], (Kind::Bool, self.net.device)),
            |acc, f| acc.logical_and(&f),
        ));
        if let Some(b) = finite.iter().position(|&f| f == 0.0) {
            return Err(overflow(ids[b], "the forward pass"));
        }
        let output = super::to_f64(&pass.h[pass.h.len() - 1]);
        let outputs = net.output_dim();
        let patterns = Patterns::of(&self.net, &pass);
        let mut samples: Vec<Vec<LayerRecord>> = vec![Vec::new(); ids.len()];
        for index in 0..net.layers().len() {
            let layer = self.layer_records(model, settings, &pass, &patterns, index, ids)?;
            for (sample, record) in samples.iter_mut().zip(layer) {
                sample.push(record);
            }
        }
        Ok(samples
            .into_iter()
            .enumerate()
            .map(|(b, layers)| {
                let k = pass.explained[b];
                SampleRecord {
                    sample: ids[b],
                    explained: k,
                    output: output[b * outputs + k],
                    pattern_decided_by: Decision::Unchecked,
                    layers,
                }
            })
            .collect())
    }

    /// Layer `index`'s record of every sample of the batch.
    fn layer_records(
        &self,
        model: &Model,
        settings: &AuditSettings,
        pass: &Pass,
        patterns: &Patterns,
        index: usize,
        ids: &[usize],
    ) -> Result<Vec<LayerRecord>> {
        let net = model.net();
        let step = &pass.steps[index];
        let upper = match pass.steps.get(index + 1) {
            Some(above) => &above.lower,
            None => &pass.start,
        };
        let rule = settings.dtd.rule_for(index);
        let (out, width) = (
            net.layers()[index].out_dim(),
            net.layers()[index].affine.in_dim(),
        );
        let upper = super::to_f64(upper);
        let lower = super::to_f64(&step.lower);
        let passed = super::to_f64(&step.passed);
        let has_root = step.roots.as_ref().map(|(_, r)| per_row(r));
        let identities = net.layers()[index].identities();
        if upper.iter().chain(&lower).any(|v| !v.is_finite()) {
            let b = upper
                .chunks(out)
                .zip(lower.chunks(width))
                .position(|(u, l)| u.iter().chain(l).any(|v| !v.is_finite()));
            return Err(overflow(
                ids[b.unwrap_or(0)],
                &format!("a relevance of layer {}", index + 1),
            ));
        }
        let mut verdicts = match (&step.roots, &has_root) {
            (Some((t, _)), Some(mask)) => {
                self.judge(model, settings, pass, patterns, index, t, mask, ids)?
            }
            _ => Vec::new(),
        }
        .into_iter();
        let sum = |v: &[f64]| v.iter().sum::<f64>();
        let mut records = Vec::with_capacity(ids.len());
        for b in 0..ids.len() {
            let r = &upper[b * out..(b + 1) * out];
            let (mut no_root, mut absorbed) = (0.0, 0.0);
            let mut neurons = Vec::with_capacity(out);
            for (j, &relevance) in r.iter().enumerate() {
                let unresolved = relevance - passed[b * out + j];
                let rooted = has_root.as_ref().is_some_and(|m| m[b * out + j] != 0.0);
                let (no, root) = if relevance == 0.0 {
                    (Some(NoRoot::ZeroRelevance), None)
                } else if rooted {
                    let root = verdicts.next().expect("one verdict per root, in order");
                    (None, Some(root))
                } else if has_root.is_some() && identities[j].is_none() {
                    (Some(NoRoot::SmallDenominator), None)
                } else {
                    (Some(NoRoot::NotApplicable), None)
                };
                match (&no, relevance == 0.0) {
                    (_, true) => {}
                    (None, false) => absorbed += unresolved,
                    (Some(_), false) => no_root += unresolved,
                }
                neurons.push(NeuronRecord {
                    neuron: j,
                    relevance,
                    no_root: no,
                    root,
                    certified: None,
                    not_judged: false,
                });
            }
            let (relevance_in, relevance_out) = (sum(r), sum(&lower[b * width..(b + 1) * width]));
            let unresolved = no_root + absorbed;
            records.push(LayerRecord {
                layer: index + 1,
                rule,
                relevance_in,
                relevance_out,
                unresolved,
                no_root_relevance: no_root,
                absorbed,
                conservation_error: relevance_in - relevance_out - unresolved,
                roots_available: None,
                roots_judged: None,
                neurons,
            });
        }
        Ok(records)
    }

    /// The verdicts on the roots of layer `index` (`mask`: which neurons of which sample
    /// have one; `t`: their step lengths), in sample order, then neuron order.
    #[allow(clippy::too_many_arguments)]
    fn judge(
        &self,
        model: &Model,
        settings: &AuditSettings,
        pass: &Pass,
        patterns: &Patterns,
        index: usize,
        t: &Tensor,
        mask: &[f64],
        ids: &[usize],
    ) -> Result<Vec<RootVerdict>> {
        let net = model.net();
        let device = self.net.device;
        let out = net.layers()[index].affine.out_dim();
        let roots: Vec<(i64, i64)> = mask
            .iter()
            .enumerate()
            .filter(|(_, &m)| m != 0.0)
            .map(|(e, _)| ((e / out) as i64, (e % out) as i64))
            .collect();
        let widest = net.widths()[index..]
            .iter()
            .copied()
            .max()
            .unwrap_or(1)
            .max(1);
        let per_block = (BLOCK_NUMBERS / widest as i64).max(1) as usize;
        let bounds = domain_bounds(net, index, settings);
        let rule = settings.dtd.rule_for(index);
        let a = &pass.h[index];
        let t = t.reshape([-1]);
        let mut verdicts = Vec::with_capacity(roots.len());
        for block in roots.chunks(per_block) {
            let index_of = |f: fn(&(i64, i64)) -> i64| {
                Tensor::from_slice(&block.iter().map(f).collect::<Vec<_>>()).to_device(device)
            };
            let (s, j) = (index_of(|r| r.0), index_of(|r| r.1));
            let steps = t.index_select(0, &(&s * out as i64 + &j)).unsqueeze(1);
            let a = a.index_select(0, &s);
            let w = self.net.layers[index].w.rows(&j);
            let v = direction(rule, &a, &w);
            let points = &a - steps * v;
            let finite = per_row(&points.isfinite().all_dim(1, false));
            if let Some(r) = finite.iter().position(|&f| f == 0.0) {
                let (b, j) = block[r];
                return Err(overflow(
                    ids[b as usize],
                    &format!("the root of layer {} neuron {j}", index + 1),
                ));
            }
            let domain = domain_checks(&points, bounds);
            let region = self.net.memberships(patterns, index, &s, &points);
            let kept = settings
                .keep_points
                .then(|| super::to_f64(&points))
                .map(|p| {
                    let width = p.len() / block.len();
                    p.chunks(width).map(<[f64]>::to_vec).collect::<Vec<_>>()
                });
            for (r, (region, domain)) in region.into_iter().zip(domain).enumerate() {
                let valid = region.is_inside() && domain == DomainCheck::In;
                verdicts.push(RootVerdict {
                    valid,
                    region,
                    domain,
                    decided_by: Decision::Unchecked,
                    point: kept.as_ref().map(|p| p[r].clone()),
                });
            }
        }
        Ok(verdicts)
    }
}

/// A tensor's values per entry, as f64 on the CPU (booleans as 0 and 1).
fn per_row(t: &Tensor) -> Vec<f64> {
    super::to_f64(&t.to_kind(Kind::Double))
}

/// The rule's root direction `v` for each root's neuron: rows of the weights `w` and of the
/// layer inputs `a` (`roots × in`); the root is `a − t v`. A weight of 0 counts as
/// non-negative, as in the exact engine.
fn direction(rule: Rule, a: &Tensor, w: &Tensor) -> Tensor {
    let nonneg = || w.ge(0.0).to_kind(a.kind());
    match rule {
        Rule::Zero | Rule::Z => a.shallow_clone(),
        Rule::ZPlus => a * nonneg(),
        Rule::Gamma(g) => a * (nonneg() * g + 1.0),
        Rule::WSquare => w.shallow_clone(),
        Rule::ZBox { lo, hi } => a - Tensor::where_scalar(&w.ge(0.0), lo, hi).to_kind(a.kind()),
        _ => unreachable!("{rule} has no root"),
    }
}

/// The bounds a root of layer `index` must respect: the input box at the network input,
/// `>= 0` above a layer whose outputs are non-negative, nothing otherwise.
fn domain_bounds(
    net: &Network,
    index: usize,
    settings: &AuditSettings,
) -> Option<(Option<f64>, Option<f64>)> {
    if index == 0 {
        settings.input_domain().map(|b| (Some(b.lo), Some(b.hi)))
    } else if net.output_nonnegative(index - 1) {
        Some((Some(0.0), None))
    } else {
        None
    }
}

/// Each root's first coordinate outside the bounds, if any.
fn domain_checks(points: &Tensor, bounds: Option<(Option<f64>, Option<f64>)>) -> Vec<DomainCheck> {
    let rows = points.size()[0] as usize;
    let Some((lo, hi)) = bounds else {
        return vec![DomainCheck::In; rows];
    };
    let mut out = points.zeros_like().to_kind(Kind::Bool);
    if let Some(lo) = lo {
        out = out.logical_or(&points.lt(lo));
    }
    if let Some(hi) = hi {
        out = out.logical_or(&points.gt(hi));
    }
    let first = out.to_kind(Kind::Int64).argmax(1, true);
    let values = super::to_f64(&points.gather(1, &first, false));
    let any = per_row(&out.any_dim(1, false));
    let first: Vec<i64> = Vec::try_from(&first.view([-1]).to_device(Device::Cpu)).expect("indices");
    (0..rows)
        .map(|r| match any[r] != 0.0 {
            false => DomainCheck::In,
            true => DomainCheck::Out {
                coordinate: first[r] as usize,
                value: values[r],
            },
        })
        .collect()
}

/// The batch's activation patterns, per layer: for a ReLU, LeakyRelu or PRelu layer the sign
/// `σ` (+1 active, −1 inactive) of each neuron with an activation and the factor its `z` is
/// passed on with inside the region (1 active; 0, the leaky slope or the neuron's PRelu slope
/// inactive); for a Clip layer which neurons are at or below `min` and which above `max`
/// ([`crate::region::Piece::of`]); for a max-pool layer each window's winner (an index into
/// `z`) and which entries win.
pub(crate) struct Patterns {
    layers: Vec<LayerPattern>,
}

enum LayerPattern {
    Linear,
    Sign {
        sign: Tensor,
        factor: Tensor,
    },
    Clip {
        lo: Option<f64>,
        hi: Option<f64>,
        below: Tensor,
        above: Tensor,
    },
    Max {
        winners: Tensor,
        won: Tensor,
    },
}

impl Patterns {
    fn of(net: &TorchNet, pass: &Pass) -> Self {
        let layers = net
            .layers
            .iter()
            .enumerate()
            .map(|(index, layer)| {
                if let Some(winners) = &pass.winners[index] {
                    let won =
                        Tensor::zeros([winners.size()[0], layer.out], (Kind::Bool, net.device))
                            .scatter_value(1, winners, 1);
                    return LayerPattern::Max {
                        winners: winners.shallow_clone(),
                        won,
                    };
                }
                let n = layer.relu_count;
                if n == 0 {
                    return LayerPattern::Linear;
                }
                let z = pass.pre[index].as_ref().map(|z| z.narrow(1, 0, n));
                let (active, factor) = match (&layer.activation, z) {
                    (TorchActivation::Clip { lo, hi }, Some(z)) => {
                        let no = || z.zeros_like().to_kind(Kind::Bool);
                        let below = lo.map_or_else(no, |lo| z.le(lo));
                        let above =
                            hi.map_or_else(no, |hi| z.gt(hi).logical_and(&below.logical_not()));
                        return LayerPattern::Clip {
                            lo: *lo,
                            hi: *hi,
                            below,
                            above,
                        };
                    }
                    (TorchActivation::Slope(s), Some(z)) => {
                        let active = z.gt(0.0);
                        let s = s.expand_as(&z);
                        (
                            active.shallow_clone(),
                            s.ones_like().where_self(&active, &s),
                        )
                    }
                    // h = ReLU(z) on these outputs: z > 0 exactly where h > 0.
                    _ => {
                        let active = pass.h[index + 1].narrow(1, 0, n).gt(0.0);
                        let factor = active.to_kind(net.kind);
                        (active, factor)
                    }
                };
                LayerPattern::Sign {
                    sign: Tensor::where_scalar(&active, 1.0, -1.0).to_kind(net.kind),
                    factor,
                }
            })
            .collect();
        Patterns { layers }
    }
}

impl TorchNet {
    /// Membership of each point (rows of `points`, inputs of layer `m`) in the region of its
    /// sample (`samples`: each row's index in the batch): the first violated constraint in
    /// (layer, neuron) order, or the least signed slack.
    fn memberships(
        &self,
        patterns: &Patterns,
        m: usize,
        samples: &Tensor,
        points: &Tensor,
    ) -> Vec<Membership> {
        let rows = points.size()[0];
        let options = (self.kind, self.device);
        let int = (Kind::Int64, self.device);
        // Per row: the 1-based layer of the first violation (0: none), its neuron and margin,
        // and the least slack. A row leaves the chain once it is decided: `alive` lists the
        // rows still in it, `h` and `samples` hold theirs.
        let mut layer = Tensor::zeros([rows], int);
        let mut neuron = Tensor::zeros([rows], int);
        let mut margin = Tensor::zeros([rows], options);
        let mut slack = Tensor::full([rows], f64::INFINITY, options);
        let mut constrained = false;
        let mut alive = Tensor::arange(rows, int);
        let mut samples = samples.shallow_clone();
        let mut h = points.shallow_clone();
        for (k, torch_layer) in self.layers.iter().enumerate().skip(m) {
            let z = torch_layer.w.forward(&h) + &torch_layer.bias;
            let (signed, next) = match &patterns.layers[k] {
                LayerPattern::Linear => (None, z),
                LayerPattern::Sign { sign, factor } => {
                    let n = torch_layer.relu_count;
                    let head = z.narrow(1, 0, n);
                    let signed = &head * sign.index_select(0, &samples);
                    let kept = head * factor.index_select(0, &samples);
                    (Some(signed), with_tail(torch_layer, kept, &z))
                }
                LayerPattern::Clip {
                    lo,
                    hi,
                    below,
                    above,
                } => {
                    let n = torch_layer.relu_count;
                    let head = z.narrow(1, 0, n);
                    let (below, above) = (
                        below.index_select(0, &samples),
                        above.index_select(0, &samples),
                    );
                    // σ (z − c) of each face: `min − z` at or below `min`, `z − max` above
                    // `max`, and between them the lesser of `z − min` and `max − z` (a bound
                    // the Clip lacks is no face).
                    let (lo, hi) = (lo.unwrap_or(f64::NEG_INFINITY), hi.unwrap_or(f64::INFINITY));
                    let between = (&head - lo).minimum(&(-&head + hi));
                    let signed = (-&head + lo)
                        .where_self(&below, &(&head - hi).where_self(&above, &between));
                    let kept = head.masked_fill(&below, lo).masked_fill(&above, hi);
                    (Some(signed), with_tail(torch_layer, kept, &z))
                }
                LayerPattern::Max { winners, won } => {
                    let window = torch_layer.max_pool.expect("a max-pool layer");
                    let best = z.gather(1, &winners.index_select(0, &samples), false);
                    let spread = best.repeat_interleave_self_int(window, 1, None);
                    // A winner is no constraint on itself.
                    let signed =
                        (spread - &z).masked_fill(&won.index_select(0, &samples), f64::INFINITY);
                    (Some(signed), best)
                }
            };
            h = next;
            let Some(signed) = signed.filter(|s| s.size()[1] > 0) else {
                continue;
            };
            constrained = true;
            let violated = signed.lt(0.0);
            let now = violated.any_dim(1, false);
            let least = slack
                .index_select(0, &alive)
                .minimum(&signed.amin(1, false));
            slack = slack.index_copy(0, &alive, &least);
            let decided = alive.masked_select(&now);
            if decided.numel() == 0 {
                continue;
            }
            let first = violated.to_kind(Kind::Int64).argmax(1, true);
            let at_first = signed.gather(1, &first, false).view([-1]);
            layer = layer.index_fill(0, &decided, k as i64 + 1);
            neuron = neuron.index_copy(0, &decided, &first.view([-1]).masked_select(&now));
            margin = margin.index_copy(0, &decided, &at_first.masked_select(&now));
            let kept = now.logical_not().nonzero().view([-1]);
            if kept.numel() == 0 {
                break;
            }
            alive = alive.index_select(0, &kept);
            samples = samples.index_select(0, &kept);
            h = h.index_select(0, &kept);
        }
        let layer: Vec<i64> = Vec::try_from(&layer.to_device(Device::Cpu)).expect("layers");
        let neuron: Vec<i64> = Vec::try_from(&neuron.to_device(Device::Cpu)).expect("neurons");
        let (margin, slack) = (super::to_f64(&margin), super::to_f64(&slack));
        (0..rows as usize)
            .map(|r| match layer[r] {
                0 => Membership::Inside {
                    slack: constrained.then_some(slack[r]),
                },
                l => Membership::Outside {
                    layer: l as usize,
                    neuron: neuron[r] as usize,
                    margin: margin[r],
                },
            })
            .collect()
    }
}

/// A layer's `h` inside the region: `kept` (its outputs with an activation) and the
/// layer's carried tail of `z`.
fn with_tail(layer: &TorchLayer, kept: Tensor, z: &Tensor) -> Tensor {
    let n = layer.relu_count;
    match n == layer.out {
        true => kept,
        false => Tensor::cat(&[kept, z.narrow(1, n, layer.out - n)], 1),
    }
}

impl Linear {
    /// Rows `j` of `W` as a dense `rows × in` matrix.
    fn rows(&self, j: &Tensor) -> Tensor {
        match self {
            Linear::Dense(w) => w.index_select(0, j),
            Linear::Shared { block, copies } => {
                let (rows, cols) = (block.size()[0], block.size()[1]);
                let values = block.index_select(0, &j.remainder(rows));
                let copy = j
                    .divide_scalar_mode(rows, "floor")
                    .one_hot(*copies)
                    .to_kind(block.kind());
                (copy.unsqueeze(2) * values.unsqueeze(1)).view([-1, copies * cols])
            }
            Linear::Sparse(sparse) => sparse.rows(j),
            // The rows as the transposed products of unit vectors.
            Linear::Conv(_) | Linear::Blocks(_) => {
                self.backward(&j.one_hot(self.out_dim()).to_kind(self.kind()))
            }
        }
    }
}
