//! The Sort-of-CLEVR relation network in libtorch, trainable: four blocks of [Conv 3×3
//! stride 2 padding 1 without bias, 24 channels, BatchNorm, ReLU] (75 → 38 → 19 → 10 → 5, so
//! 25 objects), two coordinate channels (`linspace(-4, 4, 5)` along the width and the
//! height), all ordered pairs `[object j, object i, question]`, `g` = 4 × (Linear 256 +
//! ReLU), the sum over pairs, `f` = Linear 256, ReLU, Linear 256, ReLU, Linear 10.
//!
//! The parameters are named as the relation-network description names them (`conv.{3k}` a
//! convolution, `conv.{3k+1}` its batch norm, `g.{k}`, `f.{k}`), so a model saved by
//! [`TorchRelationNet::save`] (`rn.json` + `rn.safetensors`) loads into the exact engine
//! ([`crate::model::relnet::RelationNetwork::load`]) and can be audited.

use std::path::Path;

use serde_json::json;
use tch::nn::{self, Module, ModuleT};
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::repro::sort_of_clevr::{
    Kind as QuestionKind, Loaded, Subtype, ANSWERS, QUESTION_WIDTH, SIZE,
};

/// Convolution channels, blocks, and the widths of `g` and of `f`'s hidden layers.
const CHANNELS: i64 = 24;
const BLOCKS: usize = 4;
const G: [i64; 4] = [256; 4];
const F: [i64; 2] = [256; 2];
/// Batch norm's `ε` (PyTorch's default).
pub(super) const BATCH_NORM_EPS: f64 = 1e-5;

/// libtorch's generator is global: every network is initialised holding this, so the seed and
/// the draws of [`TorchRelationNet::seeded`] are one step that no other thread's
/// initialisation interleaves with.
static GENERATOR: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The network and its parameters.
pub struct TorchRelationNet {
    pub(super) vs: nn::VarStore,
    pub(super) conv: Vec<(nn::Conv2D, nn::BatchNorm)>,
    pub(super) g: Vec<nn::Linear>,
    pub(super) f: Vec<nn::Linear>,
    /// `[objects, 2]`: each cell's (x, y).
    pub(super) coordinates: Tensor,
}

/// The values of one object: the channels and (x, y).
pub(super) const OBJECT: i64 = CHANNELS + 2;

/// `g`'s input for every ordered pair, `[B, n, n, 2 (C + 2) + q]`: entry `(i, j)` is
/// `[object j, object i, question]`, as in the reference (`x_i = objects.unsqueeze(1)`,
/// `x_j = objects.unsqueeze(2)`, `cat([x_i, x_j, q], 3)`).
pub(super) fn pairs(objects: &Tensor, questions: &Tensor) -> Tensor {
    let [batch, n, d] = objects.size()[..] else {
        unreachable!("objects are [B, n, d]")
    };
    let x_i = objects.unsqueeze(1).expand([batch, n, n, d], false);
    let x_j = objects.unsqueeze(2).expand([batch, n, n, d], false);
    let width = questions.size()[1];
    let q = questions
        .unsqueeze(1)
        .unsqueeze(1)
        .expand([batch, n, n, width], false);
    Tensor::cat(&[x_i, x_j, q], 3)
}

/// PyTorch's default initialisation of a layer's weights and biases (`kaiming_uniform_` with
/// `a = √5`): uniform in `±1/√fan_in`. (tch's own default is He's initialisation, whose
/// three times larger variance made the sum over pairs start in the hundreds.)
fn pytorch_default(fan_in: i64) -> nn::Init {
    let bound = 1.0 / (fan_in as f64).sqrt();
    nn::Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

fn linear(fan_in: i64) -> nn::LinearConfig {
    nn::LinearConfig {
        ws_init: pytorch_default(fan_in),
        bs_init: Some(pytorch_default(fan_in)),
        bias: true,
    }
}

/// The side of the feature map after the convolution blocks.
fn feature_side() -> i64 {
    (0..BLOCKS).fold(SIZE as i64, |s, _| (s + 2 - 3) / 2 + 1)
}

impl TorchRelationNet {
    /// A freshly initialised network (PyTorch's default initialisation, see
    /// [`pytorch_default`], from libtorch's generator: call `tch::manual_seed` first for a
    /// reproducible one).
    pub fn new(device: Device) -> Self {
        let _lock = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
        Self::build(device)
    }

    /// [`Self::new`] with the generator already held.
    fn build(device: Device) -> Self {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let mut conv = Vec::new();
        let mut channels = 3;
        for k in 0..BLOCKS {
            let config = nn::ConvConfig {
                stride: 2,
                padding: 1,
                bias: false,
                ws_init: pytorch_default(channels * 9),
                ..Default::default()
            };
            let c = nn::conv2d(root.sub("conv").sub(3 * k), channels, CHANNELS, 3, config);
            let bn = nn::batch_norm2d(
                root.sub("conv").sub(3 * k + 1),
                CHANNELS,
                nn::BatchNormConfig {
                    eps: BATCH_NORM_EPS,
                    ..Default::default()
                },
            );
            conv.push((c, bn));
            channels = CHANNELS;
        }
        let mut width = 2 * (CHANNELS + 2) + QUESTION_WIDTH as i64;
        let mut g = Vec::new();
        for (k, &out) in G.iter().enumerate() {
            g.push(nn::linear(root.sub("g").sub(k), width, out, linear(width)));
            width = out;
        }
        let mut f = Vec::new();
        for (k, &out) in F.iter().chain(&[ANSWERS.len() as i64]).enumerate() {
            f.push(nn::linear(root.sub("f").sub(k), width, out, linear(width)));
            width = out;
        }
        let side = feature_side();
        let line = Tensor::linspace(-4.0, 4.0, side, (Kind::Float, device));
        // Cell (r, c) in row-major order: x = line[c], y = line[r].
        let x = line.repeat([side]);
        let y = line.repeat_interleave_self_int(side, 0, None);
        let coordinates = Tensor::stack(&[x, y], 1);
        Self {
            vs,
            conv,
            g,
            f,
            coordinates,
        }
    }

    /// A network initialised from `seed` (libtorch's generator is seeded with it first).
    pub fn seeded(seed: u64, device: Device) -> Self {
        let _lock = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
        tch::manual_seed(seed as i64);
        Self::build(device)
    }

    /// The logits of a batch: images `[B, 3, 75, 75]`, questions `[B, 11]`; batch norm uses
    /// the batch's statistics when `train`, its running statistics otherwise.
    pub fn forward(&self, images: &Tensor, questions: &Tensor, train: bool) -> Tensor {
        let mut h = images.shallow_clone();
        for (c, bn) in &self.conv {
            h = bn.forward_t(&c.forward(&h), train).relu();
        }
        let n = self.coordinates.size()[0];
        let mut p =
            pairs(&self.objects(&h), questions).view([-1, 2 * OBJECT + QUESTION_WIDTH as i64]);
        for layer in &self.g {
            p = layer.forward(&p).relu();
        }
        let mut s = p
            .view([images.size()[0], n * n, -1])
            .sum_dim_intlist(1, false, p.kind());
        for (k, layer) in self.f.iter().enumerate() {
            s = layer.forward(&s);
            if k + 1 < self.f.len() {
                s = s.relu();
            }
        }
        s
    }

    /// The objects `[B, n, C + 2]` of the last feature map `[B, C, side, side]`: each cell's
    /// channels and its (x, y).
    pub(super) fn objects(&self, features: &Tensor) -> Tensor {
        let batch = features.size()[0];
        let n = self.coordinates.size()[0];
        let objects = features.view([batch, CHANNELS, n]).transpose(1, 2);
        let coords = self.coordinates.unsqueeze(0).expand([batch, n, 2], false);
        Tensor::cat(&[objects, coords], 2)
    }

    /// Converts the parameters and the coordinates to `precision`.
    pub fn set_precision(&mut self, precision: super::Precision) {
        self.set_kind(precision.kind());
    }

    /// Converts the parameters and the coordinates to `kind` (`Kind::Double` for f64).
    pub fn set_kind(&mut self, kind: Kind) {
        self.vs.set_kind(kind);
        self.coordinates = self.coordinates.to_kind(kind);
    }

    /// The layers from the top down, each as a name and its parameters' prefixes: `f`'s
    /// layers from the last, `g`'s, then the convolution blocks (convolution and batch norm).
    pub fn layers_from_top(&self) -> Vec<(String, Vec<String>)> {
        let mut layers = Vec::new();
        for k in (0..self.f.len()).rev() {
            layers.push((format!("f.{k}"), vec![format!("f.{k}.")]));
        }
        for k in (0..self.g.len()).rev() {
            layers.push((format!("g.{k}"), vec![format!("g.{k}.")]));
        }
        for k in (0..self.conv.len()).rev() {
            layers.push((
                format!("conv block {}", k + 1),
                vec![format!("conv.{}.", 3 * k), format!("conv.{}.", 3 * k + 1)],
            ));
        }
        layers
    }

    /// A copy whose top `levels` layers of [`Self::layers_from_top`] are re-initialised
    /// (PyTorch's default initialisation from `seed`; batch norm back to scale 1, shift 0,
    /// mean 0, variance 1), the rest kept.
    pub fn randomised(&self, levels: usize, seed: u64) -> Self {
        let mut fresh = Self::seeded(seed, self.vs.device());
        fresh.set_kind(self.coordinates.kind());
        let replaced: Vec<String> = self
            .layers_from_top()
            .into_iter()
            .take(levels)
            .flat_map(|(_, p)| p)
            .collect();
        let ours = self.vs.variables();
        let _guard = tch::no_grad_guard();
        for (name, mut var) in fresh.vs.variables() {
            if !replaced.iter().any(|p| name.starts_with(p.as_str())) {
                var.copy_(&ours[&name]);
            }
        }
        fresh
    }

    /// Writes the parameters to `path` (safetensors).
    pub fn save_weights(&self, path: &Path) -> Result<()> {
        written_whole(path, |tmp| self.vs.save(tmp))
    }

    /// Writes `rn.safetensors` and its description `rn.json` into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.save_weights(&dir.join("rn.safetensors"))?;
        let conv: Vec<_> = (0..BLOCKS)
            .map(|k| {
                let bn = format!("conv.{}", 3 * k + 1);
                json!({
                    "weight": format!("conv.{}.weight", 3 * k),
                    "stride": 2,
                    "padding": 1,
                    "batch_norm": {
                        "weight": format!("{bn}.weight"),
                        "bias": format!("{bn}.bias"),
                        "running_mean": format!("{bn}.running_mean"),
                        "running_var": format!("{bn}.running_var"),
                        "eps": BATCH_NORM_EPS,
                    }
                })
            })
            .collect();
        let linear = |name: &str, count: usize| -> Vec<serde_json::Value> {
            (0..count)
                .map(|k| json!({"weight": format!("{name}.{k}.weight"), "bias": format!("{name}.{k}.bias")}))
                .collect()
        };
        let description = json!({
            "format": crate::model::relnet::FORMAT,
            "version": 1,
            "weights": "rn.safetensors",
            "image": [3, SIZE, SIZE],
            "conv": conv,
            "question": QUESTION_WIDTH,
            "g": linear("g", self.g.len()),
            "f": linear("f", self.f.len()),
        });
        let path = dir.join("rn.json");
        let text = serde_json::to_string_pretty(&description).expect("descriptions serialise");
        crate::audit::output::write_atomic(&path, format!("{text}\n").as_bytes())
    }

    /// A network saved by [`Self::save`] in `dir`; a description of another architecture
    /// (image size, question width, answers, layers) is refused with what it holds.
    pub fn load(dir: &Path, device: Device) -> Result<Self> {
        let path = dir.join("rn.json");
        let described = crate::model::relnet::RelationNetwork::load(&path)?;
        type Shape = ([usize; 3], usize, usize, usize, usize, usize);
        let ours: Shape = (
            [3, SIZE, SIZE],
            QUESTION_WIDTH,
            ANSWERS.len(),
            BLOCKS,
            G.len(),
            F.len() + 1,
        );
        let theirs: Shape = (
            described.image(),
            described.question_width(),
            described.outputs(),
            described.conv_blocks(),
            described.g_layers(),
            described.f_layers(),
        );
        let describe = |(image, question, answers, conv, g, f): Shape| {
            format!(
                "{image:?} images, questions of {question} values and {answers} answers ({conv} \
                 convolution blocks, {g} layers in g, {f} in f)"
            )
        };
        if theirs != ours {
            return Err(Error::file(
                &path,
                format!(
                    "a relation network for {}; the Sort-of-CLEVR network takes {}",
                    describe(theirs),
                    describe(ours)
                ),
            ));
        }
        let mut net = Self::new(device);
        net.load_weights(&dir.join("rn.safetensors"))?;
        Ok(net)
    }

    /// Replaces the parameters with those [`Self::save_weights`] wrote to `path`.
    pub fn load_weights(&mut self, path: &Path) -> Result<()> {
        self.vs
            .load(path)
            .map_err(|e| Error::file(path, format!("not this relation network's weights: {e}")))
    }
}

/// Writes a safetensors file under a temporary name beside `path` (`write` gets that name),
/// then renames it into place: a crash never leaves a half-written file at `path`.
fn written_whole(
    path: &Path,
    write: impl FnOnce(&Path) -> std::result::Result<(), tch::TchError>,
) -> Result<()> {
    let name = path
        .file_name()
        .map_or_else(Default::default, |n| n.to_string_lossy());
    let tmp = path.with_file_name(format!(".{name}.tmp-{}.safetensors", std::process::id()));
    write(&tmp).map_err(|e| Error::file(path, format!("cannot write: {e}")))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::write(path, e))
}

/// Training settings.
#[derive(Clone, Debug)]
pub struct TrainSettings {
    pub epochs: usize,
    pub batch: usize,
    pub learning_rate: f64,
    pub seed: u64,
}

/// Accuracy per question subtype (in the order shape, left, top, closest, furthest, count),
/// per kind and overall, with the mean loss.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Accuracy {
    pub loss: f64,
    pub overall: f64,
    pub non_relational: f64,
    pub relational: f64,
    pub by_subtype: Vec<SubtypeAccuracy>,
    pub questions: usize,
}

/// The accuracy on the questions of one subtype.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SubtypeAccuracy {
    pub subtype: Subtype,
    pub accuracy: f64,
    pub questions: usize,
}

const SUBTYPES: [Subtype; 6] = [
    Subtype::Shape,
    Subtype::Left,
    Subtype::Top,
    Subtype::Closest,
    Subtype::Furthest,
    Subtype::Count,
];

/// The set's tensors on a device.
pub struct DeviceSet<'a> {
    data: &'a Loaded,
    images: Tensor,
    image_of: Tensor,
    questions: Tensor,
    answers: Tensor,
}

impl<'a> DeviceSet<'a> {
    pub fn new(data: &'a Loaded, device: Device) -> Self {
        let n_img = data.num_images() as i64;
        let n_q = data.num_questions() as i64;
        let to_i64 = |v: &[usize]| v.iter().map(|&x| x as i64).collect::<Vec<_>>();
        Self {
            data,
            images: Tensor::from_slice(&data.images)
                .view([n_img, 3, SIZE as i64, SIZE as i64])
                .to_device(device),
            image_of: Tensor::from_slice(&to_i64(&data.image_of)).to_device(device),
            questions: Tensor::from_slice(&data.questions)
                .view([n_q, QUESTION_WIDTH as i64])
                .to_device(device),
            answers: Tensor::from_slice(&to_i64(&data.answers)).to_device(device),
        }
    }

    /// Images, questions and answers of the questions `idx`.
    fn batch(&self, idx: &Tensor) -> (Tensor, Tensor, Tensor) {
        let images = self
            .images
            .index_select(0, &self.image_of.index_select(0, idx));
        (
            images,
            self.questions.index_select(0, idx),
            self.answers.index_select(0, idx),
        )
    }
}

/// One epoch over `set` in a shuffled order, updating the network; the mean loss.
pub fn train_epoch(
    net: &TorchRelationNet,
    opt: &mut Adam,
    set: &DeviceSet,
    settings: &TrainSettings,
    epoch: usize,
    mut progress: impl FnMut(usize),
) -> f64 {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let mut order: Vec<i64> = (0..set.data.num_questions() as i64).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(settings.seed);
    rng.set_stream(epoch as u64);
    order.shuffle(&mut rng);
    let device = set.answers.device();
    let (mut total, mut count) = (0.0, 0usize);
    for chunk in order.chunks(settings.batch) {
        let idx = Tensor::from_slice(chunk).to_device(device);
        let (images, questions, answers) = set.batch(&idx);
        let loss = net
            .forward(&images, &questions, true)
            .cross_entropy_for_logits(&answers);
        opt.backward_step(&loss);
        total += loss.double_value(&[]) * chunk.len() as f64;
        count += chunk.len();
        progress(chunk.len());
    }
    total / count.max(1) as f64
}

/// The network's accuracy on `set` (batch norm with running statistics), `batch` questions
/// at a time.
pub fn evaluate(net: &TorchRelationNet, set: &DeviceSet, batch: usize) -> Accuracy {
    let _guard = tch::no_grad_guard();
    let n = set.data.num_questions();
    let device = set.answers.device();
    let mut right = vec![false; n];
    let mut loss = 0.0;
    for start in (0..n).step_by(batch.max(1)) {
        let end = (start + batch).min(n);
        let idx = Tensor::arange_start(start as i64, end as i64, (Kind::Int64, device));
        let (images, questions, answers) = set.batch(&idx);
        let logits = net.forward(&images, &questions, false);
        loss += logits.cross_entropy_for_logits(&answers).double_value(&[]) * (end - start) as f64;
        let hit: Vec<bool> = Vec::try_from(
            &logits
                .argmax(1, false)
                .eq_tensor(&answers)
                .to_device(Device::Cpu),
        )
        .expect("booleans");
        right[start..end].copy_from_slice(&hit);
    }
    let tally = |keep: &dyn Fn(Subtype) -> bool| {
        let picked: Vec<bool> = (0..n)
            .filter(|&i| keep(set.data.subtypes[i]))
            .map(|i| right[i])
            .collect();
        let hits = picked.iter().filter(|&&r| r).count();
        (hits as f64 / picked.len().max(1) as f64, picked.len())
    };
    let kind = |k: QuestionKind| move |s: Subtype| s.kind() == k;
    Accuracy {
        loss: loss / n.max(1) as f64,
        overall: tally(&|_| true).0,
        non_relational: tally(&kind(QuestionKind::NonRelational)).0,
        relational: tally(&kind(QuestionKind::Relational)).0,
        by_subtype: SUBTYPES
            .iter()
            .map(|&subtype| {
                let (accuracy, questions) = tally(&|t| t == subtype);
                SubtypeAccuracy {
                    subtype,
                    accuracy,
                    questions,
                }
            })
            .collect(),
        questions: n,
    }
}

/// Adam (Kingma and Ba; PyTorch's update: `p −= lr/(1 − β1^t) · m / (√v/√(1 − β2^t) + ε)`)
/// over the network's trainable parameters, with its state (the moments and the step count)
/// saved beside each checkpoint so that a resumed run continues exactly.
pub struct Adam {
    names: Vec<String>,
    params: Vec<Tensor>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
    step: i64,
    learning_rate: f64,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPSILON: f64 = 1e-8;

impl Adam {
    pub fn new(net: &TorchRelationNet, learning_rate: f64) -> Self {
        let mut named: Vec<(String, Tensor)> = net
            .vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let (names, params): (Vec<String>, Vec<Tensor>) = named.into_iter().unzip();
        let zeros = |ps: &[Tensor]| ps.iter().map(Tensor::zeros_like).collect();
        Self {
            m: zeros(&params),
            v: zeros(&params),
            names,
            params,
            step: 0,
            learning_rate,
        }
    }

    /// One step on the gradients of `loss`, which are then cleared.
    pub fn backward_step(&mut self, loss: &Tensor) {
        for p in &mut self.params {
            p.zero_grad();
        }
        loss.backward();
        let _guard = tch::no_grad_guard();
        self.step += 1;
        let bc1 = 1.0 - BETA1.powi(self.step as i32);
        let bc2 = 1.0 - BETA2.powi(self.step as i32);
        for ((p, m), v) in self.params.iter_mut().zip(&mut self.m).zip(&mut self.v) {
            let g = p.grad();
            if !g.defined() {
                continue;
            }
            m.copy_(&(&*m * BETA1 + &g * (1.0 - BETA1)));
            v.copy_(&(&*v * BETA2 + &g * &g * (1.0 - BETA2)));
            let denom = v.sqrt() / bc2.sqrt() + EPSILON;
            let update = &*m / denom * (self.learning_rate / bc1);
            p.copy_(&(&*p - update));
        }
    }

    /// Writes the moments and the step count to `path` (safetensors).
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut named: Vec<(String, Tensor)> = Vec::new();
        for (name, (m, v)) in self.names.iter().zip(self.m.iter().zip(&self.v)) {
            named.push((format!("m.{name}"), m.shallow_clone()));
            named.push((format!("v.{name}"), v.shallow_clone()));
        }
        named.push(("step".into(), Tensor::from_slice(&[self.step])));
        written_whole(path, |tmp| Tensor::write_safetensors(&named, tmp))
    }

    /// Reads the state [`Self::save`] wrote.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        let named = Tensor::read_safetensors(path)
            .map_err(|e| Error::file(path, format!("not an optimiser state: {e}")))?;
        let map: std::collections::HashMap<String, Tensor> = named.into_iter().collect();
        let get = |key: &str| {
            map.get(key)
                .ok_or_else(|| Error::file(path, format!("no tensor '{key}'")))
        };
        let _guard = tch::no_grad_guard();
        for (name, (m, v)) in self.names.iter().zip(self.m.iter_mut().zip(&mut self.v)) {
            for (t, key) in [(m, format!("m.{name}")), (v, format!("v.{name}"))] {
                let stored = get(&key)?;
                if stored.size() != t.size() {
                    return Err(Error::file(path, format!("'{key}' has the wrong shape")));
                }
                t.copy_(stored);
            }
        }
        self.step = get("step")?.int64_value(&[0]);
        Ok(())
    }
}
