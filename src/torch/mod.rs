//! The libtorch backend (cargo feature `torch`): the network IR as tch tensors, a batched
//! forward pass, and batched train-free relevances for every rule with a closed form, on the
//! CPU or a CUDA device, in f32 or f64. It computes what [`crate::dtd::explain`] computes, a
//! batch of samples at a time, with each layer's sums as matrix products: the same numbers up
//! to the order of the additions. Only this module imports tch.
//!
//! A layer's affine map `z = W a + b` is held as a [`Linear`]: a dense matrix, a shared block
//! applied to every copy of its input, a sparse list of `(row, column, weight)`, a convolution
//! kept as its kernel or a map of placed parts. Every rule is a few products with `W` or with a
//! map of it (`W ⊙ 1[W >= 0]`, `W²`, the connection pattern), forwards (`a ↦ a Wᵀ`) and
//! backwards (`t ↦ t W`).

pub mod audit;
pub mod explain;
pub mod linear;
pub mod parity;
pub mod relnet;
pub mod saliency;

use tch::{Device, Kind, Tensor};

use crate::audit::DeviceChoice;
pub use crate::audit::Precision;
use crate::dtd::{BiasMode, DtdSettings, InitialRelevance, Rule};
use crate::error::{Error, Result};
use crate::model::ir::Layer;
use crate::model::{Activation, Network};
pub use linear::Linear;

/// Where the tensors live: `cpu`, `cuda` (the first CUDA device; an error where there is
/// none) or `auto` (CUDA where available, else the CPU).
pub fn device(choice: DeviceChoice) -> Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Cuda => match load_cuda() {
            Err(why) => Err(Error::Usage(format!(
                "--device cuda: no CUDA device: {why}"
            ))),
            Ok(()) if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
            Ok(()) => Err(Error::Usage(
                "--device cuda: no CUDA device: libtorch's CUDA library finds none".into(),
            )),
        },
        DeviceChoice::Auto => Ok(if cuda_available() {
            Device::Cuda(0)
        } else {
            Device::Cpu
        }),
    }
}

/// Whether libtorch finds a CUDA device (after loading its CUDA library, in builds with the
/// `cuda` feature).
pub fn cuda_available() -> bool {
    load_cuda().is_ok() && tch::Cuda::is_available()
}

/// Loads libtorch's CUDA library, `libtorch_cuda.so`, once per process, from the loader's
/// search path (`LD_LIBRARY_PATH`, then the binary's run path). Its initialisers register
/// CUDA with the libtorch already loaded; nothing in this crate calls into it, so a link-time
/// dependency would be dropped by the linker, and one kept would stop the binary from
/// starting on machines without CUDA's libraries. The error says why it cannot be loaded.
#[cfg(feature = "cuda")]
fn load_cuda() -> std::result::Result<(), String> {
    use libloading::os::unix::{Library, RTLD_GLOBAL, RTLD_NOW};
    static LOADED: std::sync::OnceLock<std::result::Result<(), String>> =
        std::sync::OnceLock::new();
    LOADED
        .get_or_init(|| {
            // SAFETY: loading runs libtorch_cuda's static initialisers, which register its
            // CUDA hooks with the libtorch this process already links; no symbol of it is
            // called from here, and it stays loaded for the life of the process.
            match unsafe { Library::open(Some("libtorch_cuda.so"), RTLD_NOW | RTLD_GLOBAL) } {
                Ok(library) => {
                    std::mem::forget(library);
                    Ok(())
                }
                Err(e) => Err(format!("cannot load libtorch's CUDA library ({e})")),
            }
        })
        .clone()
}

/// Without the `cuda` feature there is no CUDA library to load.
#[cfg(not(feature = "cuda"))]
fn load_cuda() -> std::result::Result<(), String> {
    Err("this build has no CUDA support (build with `--features cuda`)".into())
}

/// Samples a batch holds by default: 1024, or fewer so that one layer's values for the
/// batch stay within 2^24 numbers.
pub fn default_batch(net: &Network) -> usize {
    let widest = net.widths().into_iter().max().unwrap_or(1).max(1);
    ((1usize << 24) / widest).clamp(1, 1024)
}

/// A tensor's values as f64, in row-major order (copied to the CPU).
pub fn to_f64(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(
        &t.to_device(Device::Cpu)
            .to_kind(Kind::Double)
            .contiguous()
            .view([-1]),
    )
    .expect("a float tensor")
}

/// The tensor kind of a precision.
pub(crate) fn kind(precision: Precision) -> Kind {
    match precision {
        Precision::F32 => Kind::Float,
        Precision::F64 => Kind::Double,
    }
}

/// One IR layer on the device.
struct TorchLayer {
    w: Linear,
    /// `1 × out`.
    bias: Tensor,
    out: i64,
    /// Leading outputs with an activation (0 without one).
    relu_count: i64,
    /// The activation of those outputs.
    activation: TorchActivation,
    max_pool: Option<i64>,
    /// For a max-pool layer: the input each entry of `z` copies.
    gathered: Option<Tensor>,
    /// The number of inputs each output is connected to (the flat rule's denominators).
    connected: Tensor,
    /// `1 × out`, 1 at each identity neuron ([`Layer::identity`]) and 0 elsewhere; `None`
    /// where the layer has none.
    identity: Option<Tensor>,
    /// Where the identity neurons are the outputs from some `head` on, and every part of the
    /// map adds into outputs on one side of `head` only: the rule runs on the outputs before
    /// it alone, and the identity neurons' relevance is passed by their own parts.
    split: Option<Split>,
}

/// A layer's map cut where its identity neurons begin ([`TorchLayer::split`]).
struct Split {
    /// The number of outputs before the identity neurons.
    head: i64,
    /// The weights of those outputs.
    w: Linear,
    /// Their biases and connection counts, `1 × head`.
    bias: Tensor,
    connected: Tensor,
    /// The weights of the identity neurons (one 1 each).
    copies: Linear,
}

/// What a rule multiplies by: weights, biases and the number of inputs each output is
/// connected to (the flat rule's denominators), the last two `1 × outputs`.
struct RuleMaps<'a> {
    w: &'a Linear,
    bias: &'a Tensor,
    connected: &'a Tensor,
}

impl TorchLayer {
    /// The rule's maps of the whole layer.
    fn maps(&self) -> RuleMaps<'_> {
        RuleMaps {
            w: &self.w,
            bias: &self.bias,
            connected: &self.connected,
        }
    }
}

/// A layer's activation on the device, as the exact engine's [`Activation`] computes it.
enum TorchActivation {
    /// `max(z, 0)`.
    Relu,
    /// `min(max(z, lo), hi)`, a bound `None` where the Clip has none.
    Clip { lo: Option<f64>, hi: Option<f64> },
    /// `z` above 0, `s · z` otherwise: a LeakyRelu's slope (`1 × 1`) or a PRelu's slope of
    /// each output (`1 × relu_count`).
    Slope(Tensor),
}

impl TorchActivation {
    fn of(activation: &Activation, kind: Kind, device: Device) -> Self {
        let slopes = |s: &[f64]| {
            Tensor::from_slice(s)
                .view([1, s.len() as i64])
                .to_kind(kind)
                .to_device(device)
        };
        match activation {
            Activation::Relu => TorchActivation::Relu,
            Activation::Clip { lo, hi } => TorchActivation::Clip { lo: *lo, hi: *hi },
            Activation::LeakyRelu { alpha } => TorchActivation::Slope(slopes(&[*alpha])),
            Activation::PRelu { slopes: s } => TorchActivation::Slope(slopes(s)),
        }
    }

    /// `h` from `z` (`batch × relu_count`).
    fn apply(&self, z: &Tensor) -> Tensor {
        match self {
            TorchActivation::Relu => z.relu(),
            TorchActivation::Clip { lo, hi } => match (lo, hi) {
                (Some(lo), Some(hi)) => z.clamp(*lo, *hi),
                (Some(lo), None) => z.clamp_min(*lo),
                (None, Some(hi)) => z.clamp_max(*hi),
                (None, None) => z.shallow_clone(),
            },
            TorchActivation::Slope(s) => z.where_self(&z.gt(0.0), &(z * s)),
        }
    }
}

/// A network's layers as tensors of one precision on one device.
pub struct TorchNet {
    layers: Vec<TorchLayer>,
    kind: Kind,
    device: Device,
}

/// The batched train-free relevances of one call to [`TorchNet::explain`].
pub struct Relevances {
    /// The explained output of each sample.
    pub explained: Vec<usize>,
    /// Per layer (0-based), the relevances of its inputs: `batch × in`.
    pub lower: Vec<Tensor>,
    /// The network's outputs: `batch × outputs`.
    pub output: Tensor,
}

/// One layer's step of a batch: what [`TorchNet::explain`] keeps, and what an audit needs
/// besides (what each neuron passed on, and the roots' step lengths).
pub(crate) struct Step {
    /// The relevances of the layer's inputs: `batch × in`.
    pub lower: Tensor,
    /// What each neuron passed to its inputs (`Σ_i` of its contributions): `batch × out`.
    pub passed: Tensor,
    /// For a root rule: each neuron's step length `t` (0 without a root) and whether it has a
    /// root, both `batch × out`.
    pub roots: Option<(Tensor, Tensor)>,
}

/// A batch's forward pass and relevances.
pub(crate) struct Pass {
    /// Every layer's input, then the output.
    pub h: Vec<Tensor>,
    /// For each max-pool layer, the winners of its windows (indices into its `z`).
    pub winners: Vec<Option<Tensor>>,
    /// For each layer with an activation other than ReLU, its `z` (`batch × out`).
    pub pre: Vec<Option<Tensor>>,
    pub explained: Vec<usize>,
    /// The relevance entering the top layer: `batch × outputs`.
    pub start: Tensor,
    /// Per layer (0-based).
    pub steps: Vec<Step>,
}

impl TorchNet {
    /// The layers of `net` copied to `device` as tensors of `precision` (f32 or f64).
    pub fn new(net: &Network, precision: Precision, device: Device) -> Self {
        let kind = kind(precision);
        let layers = net
            .layers()
            .iter()
            .map(|layer| Self::layer(layer, kind, device))
            .collect();
        TorchNet {
            layers,
            kind,
            device,
        }
    }

    fn layer(layer: &Layer, kind: Kind, device: Device) -> TorchLayer {
        let affine = &layer.affine;
        let out = affine.out_dim();
        let bias = affine.biases().to_vec();
        let vector = |v: &[f64]| {
            Tensor::from_slice(v)
                .view([1, out as i64])
                .to_kind(kind)
                .to_device(device)
        };
        let gathered = layer.max_pool.map(|_| {
            let g: Vec<i64> = (0..out).map(|j| layer.gathered(j) as i64).collect();
            Tensor::from_slice(&g).to_device(device)
        });
        let identities = layer.identities();
        let identity = identities.iter().any(Option::is_some).then(|| {
            let mask: Vec<f64> = identities.iter().map(|i| i.map_or(0.0, |_| 1.0)).collect();
            vector(&mask)
        });
        let w = Linear::of(affine, kind, device);
        let counts: Vec<f64> = affine
            .connected_counts()
            .into_iter()
            .map(|n| n as f64)
            .collect();
        let connected = vector(&counts);
        let bias = vector(&bias);
        // The identity neurons as the outputs `head..` (none before them).
        let head = identities
            .iter()
            .position(Option::is_some)
            .filter(|&head| head > 0 && identities[head..].iter().all(Option::is_some));
        let split = head.and_then(|head| {
            let (head, out) = (head as i64, out as i64);
            Some(Split {
                head,
                w: w.outputs(0, head)?,
                bias: bias.narrow(1, 0, head),
                connected: connected.narrow(1, 0, head),
                copies: w.outputs(head, out)?,
            })
        });
        TorchLayer {
            w,
            bias,
            out: out as i64,
            relu_count: layer.relu_count() as i64,
            activation: TorchActivation::of(&layer.activation, kind, device),
            max_pool: layer.max_pool.map(|w| w as i64),
            gathered,
            connected,
            identity,
            split,
        }
    }

    /// A batch of samples (row-major, `batch × inputs`) as a tensor of this network.
    pub fn input(&self, values: &[f64], batch: usize) -> Tensor {
        let width = values.len() / batch.max(1);
        Tensor::from_slice(values)
            .view([batch as i64, width as i64])
            .to_kind(self.kind)
            .to_device(self.device)
    }

    /// The forward pass: every layer's input, then the output.
    pub fn forward(&self, x: &Tensor) -> Vec<Tensor> {
        self.trace(x).h
    }

    /// [`Self::forward`], for each max-pool layer the winners of its windows (indices into
    /// its `z`, `batch × windows`), and for each layer with an activation other than ReLU its
    /// `z` (whose pieces `h` does not tell).
    fn trace(&self, x: &Tensor) -> Trace {
        let mut h = vec![x.shallow_clone()];
        let mut winners = Vec::with_capacity(self.layers.len());
        let mut pre = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let z = layer.w.forward(&h[h.len() - 1]) + &layer.bias;
            let other = layer.relu_count > 0 && !matches!(layer.activation, TorchActivation::Relu);
            let (next, won) = match (layer.max_pool, other, layer.relu_count) {
                // A ReLU on a fresh `z` needed no more: in place.
                (None, false, n) if n > 0 => {
                    let _ = z.narrow(1, 0, n).relu_();
                    (z.shallow_clone(), None)
                }
                _ => activate(layer, &z),
            };
            h.push(next);
            winners.push(won);
            pre.push(other.then_some(z));
        }
        Trace { h, winners, pre }
    }

    /// The train-free relevances of a batch: the explained output of sample `b` is
    /// `targets[b]`, or its largest output where that is `None` (or `targets` is empty),
    /// started as `settings.initial_relevance` says, and each layer passes relevance down with
    /// its rule.
    pub fn explain(
        &self,
        x: &Tensor,
        targets: &[Option<usize>],
        settings: &DtdSettings,
    ) -> Result<Relevances> {
        let pass = self.pass(x, targets, settings)?;
        Ok(Relevances {
            explained: pass.explained,
            lower: pass.steps.into_iter().map(|s| s.lower).collect(),
            output: pass.h[pass.h.len() - 1].shallow_clone(),
        })
    }

    /// [`Self::explain`]'s input relevances alone (`lower` holds only them): what the layers
    /// above asked for is let go as the pass goes down, so a deep network holds one layer's
    /// relevances at a time.
    pub fn input_relevances(
        &self,
        x: &Tensor,
        targets: &[Option<usize>],
        settings: &DtdSettings,
    ) -> Result<Relevances> {
        let pass = self.run(x, targets, settings, false)?;
        Ok(Relevances {
            explained: pass.explained,
            lower: pass.steps.into_iter().map(|s| s.lower).collect(),
            output: pass.h[pass.h.len() - 1].shallow_clone(),
        })
    }

    /// [`Self::explain`] with everything it computes on the way.
    pub(crate) fn pass(
        &self,
        x: &Tensor,
        targets: &[Option<usize>],
        settings: &DtdSettings,
    ) -> Result<Pass> {
        self.run(x, targets, settings, true)
    }

    /// [`Self::pass`]; without `keep`, only the lowest step is kept, and of the forward pass
    /// only the input and the output.
    fn run(
        &self,
        x: &Tensor,
        targets: &[Option<usize>],
        settings: &DtdSettings,
        keep: bool,
    ) -> Result<Pass> {
        for (index, _) in self.layers.iter().enumerate() {
            if let rule @ Rule::NearestValid(_) = settings.rule_for(index) {
                return Err(Error::Usage(format!(
                    "rule {rule} needs linear programs, which the torch backend does not \
                     solve; use --backend exact"
                )));
            }
        }
        let Trace {
            mut h,
            winners,
            pre,
        } = self.trace(x);
        let output = h[h.len() - 1].shallow_clone();
        let batch = output.size()[0];
        let outputs = output.size()[1] as usize;
        if !targets.is_empty() && targets.len() as i64 != batch {
            return Err(Error::Invalid(format!(
                "{} targets for a batch of {batch}",
                targets.len()
            )));
        }
        if let Some(k) = targets.iter().flatten().find(|&&k| k >= outputs) {
            return Err(Error::Invalid(format!(
                "target {k} is out of range: the network has {outputs} outputs"
            )));
        }
        let largest: Vec<i64> =
            Vec::<i64>::try_from(&output.argmax(1, false).to_device(Device::Cpu)).expect("indices");
        let explained: Vec<usize> = (0..batch as usize)
            .map(|b| match targets.get(b).copied().flatten() {
                Some(k) => k,
                None => largest[b] as usize,
            })
            .collect();
        let k = Tensor::from_slice(&explained.iter().map(|&k| k as i64).collect::<Vec<_>>())
            .view([batch, 1])
            .to_device(self.device);
        let start = match settings.initial_relevance {
            InitialRelevance::Output => output.gather(1, &k, false),
            InitialRelevance::One => Tensor::ones([batch, 1], (self.kind, self.device)),
        };
        let start = output.zeros_like().scatter(1, &k, &start);
        let mut upper = start.shallow_clone();
        let mut steps = Vec::with_capacity(self.layers.len());
        for (index, layer) in self.layers.iter().enumerate().rev() {
            let a = &h[index];
            let next = match &winners[index] {
                Some(won) => Step {
                    lower: winner_take_all(layer, won, a, &upper),
                    passed: upper.shallow_clone(),
                    roots: None,
                },
                None => step(layer, a, &upper, settings.rule_for(index), settings),
            };
            upper = next.lower.shallow_clone();
            if !keep {
                // Layer `index`'s output and the step above are needed no more.
                h.truncate(index + 1);
                steps.clear();
            }
            steps.push(next);
        }
        steps.reverse();
        if !keep {
            h.push(output);
        }
        Ok(Pass {
            h,
            winners,
            pre,
            explained,
            start,
            steps,
        })
    }
}

/// What [`TorchNet::trace`] keeps of a forward pass.
struct Trace {
    h: Vec<Tensor>,
    winners: Vec<Option<Tensor>>,
    pre: Vec<Option<Tensor>>,
}

/// `h` from `z`: the activation on the leading `relu_count` outputs, or each window's largest entry;
/// for a max-pool layer also the index (into `z`) of each window's first largest entry.
fn activate(layer: &TorchLayer, z: &Tensor) -> (Tensor, Option<Tensor>) {
    if let Some(window) = layer.max_pool {
        let batch = z.size()[0];
        let groups = z.view([batch, -1, window]);
        // argmax returns the first largest entry.
        let place = groups.argmax(2, true);
        let h = groups.gather(2, &place, false).view([batch, -1]);
        let offsets = Tensor::arange_start_step(0, layer.out, window, (Kind::Int64, z.device()))
            .view([1, -1, 1]);
        return (h, Some((place + offsets).view([batch, -1])));
    }
    match layer.relu_count {
        0 => (z.shallow_clone(), None),
        n if n == layer.out => (layer.activation.apply(z), None),
        n => {
            let head = layer.activation.apply(&z.narrow(1, 0, n));
            let tail = z.narrow(1, n, layer.out - n);
            (Tensor::cat(&[head, tail], 1), None)
        }
    }
}

/// A max-pool layer: each window's relevance goes whole to the input its winner copies
/// (`winners`: the forward pass's indices into `z`).
fn winner_take_all(layer: &TorchLayer, winners: &Tensor, a: &Tensor, upper: &Tensor) -> Tensor {
    let gathered = layer.gathered.as_ref().expect("a max-pool layer's copies");
    let inputs = gathered
        .index_select(0, &winners.view([-1]))
        .view_as(winners);
    a.zeros_like().scatter_add(1, &inputs, upper)
}

/// `d + ε sign(d)` with `sign(0) = +1` (nothing when `ε = 0`).
fn stabilize(d: &Tensor, eps: f64) -> Tensor {
    if eps == 0.0 {
        return d.shallow_clone();
    }
    let sign = Tensor::where_scalar(&d.lt(0.0), -1.0, 1.0).to_kind(d.kind());
    d + sign * eps
}

/// `x / d` where `keep`, else 0 (so that no division by zero leaks a NaN).
fn ratio(x: &Tensor, d: &Tensor, keep: &Tensor) -> Tensor {
    let safe = d.where_self(keep, &d.ones_like());
    (x / safe).where_self(keep, &x.zeros_like())
}

/// `w⁻ = min(w, 0)`.
fn negative_part(w: &Tensor) -> Tensor {
    w.clamp_max(0.0)
}

/// `w⁺ = max(w, 0)` (equal to `w ⊙ 1[w >= 0]`), without a zeros tensor of `w`'s size.
fn positive_part(w: &Tensor) -> Tensor {
    w.clamp_min(0.0)
}

/// One layer's relevances: `upper` (`batch × out`) to the layer's inputs `a` (`batch × in`).
/// An identity neuron passes its relevance whole, whatever the rule, and has no root: the rule
/// sees it with no relevance, and its relevance is copied to the input it copies through the
/// layer's own map (its row is one weight of 1).
fn step(layer: &TorchLayer, a: &Tensor, upper: &Tensor, rule: Rule, s: &DtdSettings) -> Step {
    let Some(identity) = &layer.identity else {
        return rule_step(&layer.maps(), a, upper, rule, s);
    };
    if let Some(split) = &layer.split {
        // The same step with the identity neurons' zero relevance left out of the rule.
        let (head, tail) = (split.head, layer.out - split.head);
        let carried = upper.narrow(1, head, tail);
        let maps = RuleMaps {
            w: &split.w,
            bias: &split.bias,
            connected: &split.connected,
        };
        let step = rule_step(&maps, a, &upper.narrow(1, 0, head), rule, s);
        let none = |t: Tensor| {
            let rest = t.new_zeros([t.size()[0], tail], (t.kind(), t.device()));
            Tensor::cat(&[t, rest], 1)
        };
        let mut lower = step.lower;
        split.copies.add_backward(&carried, &mut lower);
        return Step {
            lower,
            passed: Tensor::cat(&[step.passed, carried], 1),
            roots: step.roots.map(|(t, has_root)| (none(t), none(has_root))),
        };
    }
    let whole = upper * identity;
    let step = rule_step(&layer.maps(), a, &(upper - &whole), rule, s);
    Step {
        lower: step.lower + layer.w.backward(&whole),
        passed: step.passed + &whole,
        roots: step.roots,
    }
}

/// [`step`] by the rule alone.
fn rule_step(maps: &RuleMaps, a: &Tensor, upper: &Tensor, rule: Rule, s: &DtdSettings) -> Step {
    let lrp = |lower: Tensor, passed: Tensor| Step {
        lower,
        passed,
        roots: None,
    };
    let (w, b) = (maps.w, maps.bias);
    let nonzero = upper.ne(0.0);
    let include = s.bias != BiasMode::Ignore;
    match rule {
        Rule::Epsilon(e) => {
            let wa = w.forward(a);
            let z = if include { &wa + b } else { wa.shallow_clone() };
            let d = stabilize(&z, e);
            let keep = d.ne(0.0).logical_and(&nonzero);
            let scale = ratio(upper, &d, &keep);
            lrp(a * w.backward(&scale), wa * scale)
        }
        Rule::AlphaBeta { alpha, beta } => {
            let (wp, wn) = (w.map(positive_part), w.map(negative_part));
            let (ap, an) = (positive_part(a), negative_part(a));
            // The sums of the positive and of the negative contributions, then with the bias.
            let (sum_pos, sum_neg) = (
                wp.forward(&ap) + wn.forward(&an),
                wp.forward(&an) + wn.forward(&ap),
            );
            let (pos, neg) = match include {
                true => (&sum_pos + positive_part(b), &sum_neg + negative_part(b)),
                false => (sum_pos.shallow_clone(), sum_neg.shallow_clone()),
            };
            let (pos, neg) = (stabilize(&pos, s.stabilizer), stabilize(&neg, s.stabilizer));
            let sp = ratio(upper, &pos, &pos.ne(0.0).logical_and(&nonzero)) * alpha;
            let sn = ratio(upper, &neg, &neg.ne(0.0).logical_and(&nonzero)) * beta;
            let lower = &ap * wp.backward(&sp) + &an * wn.backward(&sp)
                - (&an * wp.backward(&sn) + &ap * wn.backward(&sn));
            lrp(lower, sum_pos * &sp - sum_neg * &sn)
        }
        Rule::Flat => {
            let n = stabilize(maps.connected, s.stabilizer).expand_as(upper);
            let keep = n.ne(0.0).logical_and(&nonzero);
            let share = ratio(upper, &n, &keep);
            let passed = &share * maps.connected;
            lrp(w.map(|v| v.ones_like()).backward(&share), passed)
        }
        Rule::NearestValid(_) => unreachable!("refused in explain"),
        Rule::Zero | Rule::Z | Rule::ZPlus | Rule::Gamma(_) | Rule::WSquare | Rule::ZBox { .. } => {
            root_rule(maps, a, upper, rule, s)
        }
    }
}

/// A root rule's map from the neurons' `t` to the inputs' relevances.
type Backward<'a> = Box<dyn Fn(&Tensor) -> Tensor + 'a>;

/// The DTD root rules: `t_j = R_j / (w_j·v_j + β_j)` (stabilised; no root where the
/// denominator is at or below the threshold, or for rule 0 `t = 1`), and input `i` gets
/// `Σ_j w_ji t_j v_ji`.
fn root_rule(maps: &RuleMaps, a: &Tensor, upper: &Tensor, rule: Rule, s: &DtdSettings) -> Step {
    let (w, b) = (maps.w, maps.bias);
    let nonzero = upper.ne(0.0);
    let ones = || a.ones_like();
    let beta = |rule_beta: Tensor| -> Tensor {
        match s.bias {
            BiasMode::Ignore => b.zeros_like(),
            BiasMode::Plain if rule != Rule::Zero => b.shallow_clone(),
            _ => rule_beta,
        }
    };
    // (w·v per neuron, the map t ↦ Σ_j w_ji t_j v_ji)
    let (wv, pass): (Tensor, Backward) = match rule {
        Rule::Zero | Rule::Z => (w.forward(a), Box::new(|t| a * w.backward(t))),
        Rule::ZPlus => {
            let wp = w.map(positive_part);
            let wv = wp.forward(a);
            (wv, Box::new(move |t| a * wp.backward(t)))
        }
        Rule::Gamma(g) => {
            let wp = w.map(positive_part);
            let wv = w.forward(a) + wp.forward(a) * g;
            (
                wv,
                Box::new(move |t| a * (w.backward(t) + wp.backward(t) * g)),
            )
        }
        Rule::WSquare => {
            let w2 = w.map(|v| v * v);
            let wv = w2.forward(&ones());
            (wv, Box::new(move |t| w2.backward(t)))
        }
        Rule::ZBox { lo, hi } => {
            let (wp, wn) = (w.map(positive_part), w.map(negative_part));
            let ones = ones();
            let wv = w.forward(a) - wp.forward(&ones) * lo - wn.forward(&ones) * hi;
            (
                wv,
                Box::new(move |t| a * w.backward(t) - wp.backward(t) * lo - wn.backward(t) * hi),
            )
        }
        _ => unreachable!("{rule} is not a root rule"),
    };
    let rule_beta = match rule {
        Rule::Z => b.shallow_clone(),
        Rule::ZPlus => positive_part(b),
        Rule::Gamma(g) => b + positive_part(b) * g,
        Rule::WSquare => b * b,
        _ => b.zeros_like(),
    };
    let (t, has_root) = if rule == Rule::Zero {
        (nonzero.to_kind(upper.kind()), nonzero)
    } else {
        let d = stabilize(&(&wv + beta(rule_beta)), s.stabilizer);
        let keep = d.abs().gt(s.denominator_threshold).logical_and(&nonzero);
        (ratio(upper, &d, &keep), keep)
    };
    Step {
        lower: pass(&t),
        passed: &t * wv,
        roots: Some((t, has_root)),
    }
}
