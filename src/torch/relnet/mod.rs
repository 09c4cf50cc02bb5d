//! The relation network in libtorch, trainable, for Sort-of-CLEVR and for CLEVR ([`Task`]):
//! four blocks of [Conv 3×3 stride 2 padding 1 without bias, 24 channels, BatchNorm, ReLU]
//! (Sort-of-CLEVR's 75 → 38 → 19 → 10 → 5, so 25 objects; CLEVR's 128 → 8, so 64), two
//! coordinate channels (`linspace(-4, 4, side)` along the width and the height), all ordered
//! pairs `[object j, object i, question]`, `g` = 4 × (Linear 256 + ReLU), the sum over pairs,
//! `f` = Linear 256, ReLU, Linear 256, ReLU, Linear (10 answers, or CLEVR's 29 outputs).
//!
//! Sort-of-CLEVR's question is its 11-value vector. CLEVR's is encoded by a word embedding
//! (32 values) and an LSTM (128) run over the question's words in reverse order; its final
//! hidden state is the question vector. The reference pads a batch's questions with index 0
//! at the end and reverses the padded rows, so the padding ran through its LSTM before the
//! words and a question's vector depended on the longest question of its batch; here the
//! LSTM's state stays zero until a question's first word, which is what the reference
//! computes for the longest question of a batch, and for every question alone.
//!
//! The parameters are named as the relation-network description names them (`conv.{3k}` a
//! convolution, `conv.{3k+1}` its batch norm, `g.{k}`, `f.{k}`, and for CLEVR
//! `text.embedding.weight`, `text.lstm.{weight_ih, weight_hh, bias_ih, bias_hh}` in PyTorch's
//! gate order i, f, g, o), so a model saved by [`TorchRelationNet::save`] (`rn.json` +
//! `rn.safetensors`, and CLEVR's `vocabulary.json`) loads into the exact engine
//! ([`crate::model::relnet::RelationNetwork::load`]) and can be audited.

use std::path::Path;

use serde_json::json;
use tch::nn::{self, Module, ModuleT};
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::repro::clevr::{Vocabulary, IMAGE_SIDE};
use crate::repro::sort_of_clevr::{
    Kind as QuestionKind, Loaded, Subtype, ANSWERS, QUESTION_WIDTH, SIZE,
};

/// The data a network is built for.
#[derive(Clone, Debug, PartialEq)]
pub enum Task {
    /// 75×75 images, the 11-value question vector, 10 answers.
    SortOfClevr,
    /// 128×128 images, questions as words of `vocabulary` (embedding and LSTM), 29 outputs
    /// (output 0 unused, as in the reference: the answers' indices are 1-based).
    Clevr { vocabulary: Vocabulary },
}

/// CLEVR's word embedding and LSTM widths, and its outputs.
pub const EMBEDDING: i64 = 32;
pub const LSTM: i64 = 128;
pub const CLEVR_OUTPUTS: usize = 29;

impl Task {
    /// The side of the (square) input image.
    pub fn side(&self) -> usize {
        match self {
            Task::SortOfClevr => SIZE,
            Task::Clevr { .. } => IMAGE_SIDE,
        }
    }

    /// The width of the question vector `g` reads.
    pub fn question_width(&self) -> usize {
        match self {
            Task::SortOfClevr => QUESTION_WIDTH,
            Task::Clevr { .. } => LSTM as usize,
        }
    }

    pub fn outputs(&self) -> usize {
        match self {
            Task::SortOfClevr => ANSWERS.len(),
            Task::Clevr { .. } => CLEVR_OUTPUTS,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Task::SortOfClevr => "Sort-of-CLEVR",
            Task::Clevr { .. } => "CLEVR",
        }
    }
}

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
    /// CLEVR's question encoder.
    pub(super) text: Option<QuestionLstm>,
    pub(super) task: Task,
}

/// A word embedding and a one-layer LSTM (PyTorch's `nn.Embedding`, `nn.LSTM`).
pub(super) struct QuestionLstm {
    /// `[words + 1, EMBEDDING]`: row 0 (padding) is never read.
    embedding: Tensor,
    /// `[4 LSTM, EMBEDDING]`, `[4 LSTM, LSTM]`, `[4 LSTM]` twice, gates i, f, g, o.
    weight_ih: Tensor,
    weight_hh: Tensor,
    bias_ih: Tensor,
    bias_hh: Tensor,
}

impl QuestionLstm {
    fn new(root: &nn::Path, words: usize) -> Self {
        let text = root.sub("text");
        let lstm = text.sub("lstm");
        // PyTorch's defaults: the embedding N(0, 1), the LSTM uniform in ±1/√hidden.
        let u = pytorch_default(LSTM);
        Self {
            embedding: text.sub("embedding").var(
                "weight",
                &[words as i64 + 1, EMBEDDING],
                nn::Init::Randn {
                    mean: 0.0,
                    stdev: 1.0,
                },
            ),
            weight_ih: lstm.var("weight_ih", &[4 * LSTM, EMBEDDING], u),
            weight_hh: lstm.var("weight_hh", &[4 * LSTM, LSTM], u),
            bias_ih: lstm.var("bias_ih", &[4 * LSTM], u),
            bias_hh: lstm.var("bias_hh", &[4 * LSTM], u),
        }
    }

    /// The question vectors `[B, LSTM]` of `tokens` `[B, T]`: each row the words' indices in
    /// reverse order, after zeros (padding) at the front. The state stays zero through the
    /// padding.
    fn encode(&self, tokens: &Tensor) -> Tensor {
        let [batch, steps] = tokens.size()[..] else {
            unreachable!("tokens are [B, T]")
        };
        let kind = self.weight_ih.kind();
        let x = Tensor::embedding(&self.embedding, tokens, -1, false, false);
        let input = x.matmul(&self.weight_ih.tr()) + &self.bias_ih + &self.bias_hh;
        let zeros = Tensor::zeros([batch, LSTM], (kind, tokens.device()));
        let (mut h, mut c) = (zeros.shallow_clone(), zeros);
        for t in 0..steps {
            let gates = input.select(1, t) + h.matmul(&self.weight_hh.tr());
            let g = gates.chunk(4, 1);
            let c_next = g[1].sigmoid() * &c + g[0].sigmoid() * g[2].tanh();
            let h_next = g[3].sigmoid() * c_next.tanh();
            let live = tokens.select(1, t).ne(0).unsqueeze(1);
            c = c_next.where_self(&live, &c);
            h = h_next.where_self(&live, &h);
        }
        h
    }
}

/// A batch of CLEVR questions as [`TorchRelationNet::forward`] reads them: `[B, T]` word
/// indices, each row reversed and padded with zeros at the front.
pub fn question_tokens(questions: &[&[usize]]) -> Tensor {
    let steps = questions.iter().map(|q| q.len()).max().unwrap_or(0);
    let mut rows = vec![0i64; questions.len() * steps];
    for (row, q) in rows.chunks_mut(steps.max(1)).zip(questions) {
        for (slot, &w) in row[steps - q.len()..].iter_mut().zip(q.iter().rev()) {
            *slot = w as i64;
        }
    }
    Tensor::from_slice(&rows).view([questions.len() as i64, steps as i64])
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

/// Each cell's (x, y), `[side², 2]` in row-major cell order: `linspace(-4, 4, side)` along
/// the width and along the height, computed in f64 and rounded once to `kind`.
fn coordinates(side: i64, kind: Kind, device: Device) -> Tensor {
    let line = Tensor::linspace(-4.0, 4.0, side, (Kind::Double, device));
    // Cell (r, c): x = line[c], y = line[r].
    let x = line.repeat([side]);
    let y = line.repeat_interleave_self_int(side, 0, None);
    Tensor::stack(&[x, y], 1).to_kind(kind)
}

/// The side of the feature map after the convolution blocks.
fn feature_side(image_side: usize) -> i64 {
    (0..BLOCKS).fold(image_side as i64, |s, _| (s + 2 - 3) / 2 + 1)
}

impl TorchRelationNet {
    /// A freshly initialised network (PyTorch's default initialisation, see
    /// [`pytorch_default`], from libtorch's generator: call `tch::manual_seed` first for a
    /// reproducible one).
    pub fn new(task: Task, device: Device) -> Self {
        let _lock = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
        Self::build(task, device)
    }

    /// [`Self::new`] with the generator already held.
    fn build(task: Task, device: Device) -> Self {
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
        let mut width = 2 * OBJECT + task.question_width() as i64;
        let mut g = Vec::new();
        for (k, &out) in G.iter().enumerate() {
            g.push(nn::linear(root.sub("g").sub(k), width, out, linear(width)));
            width = out;
        }
        let mut f = Vec::new();
        for (k, &out) in F.iter().chain(&[task.outputs() as i64]).enumerate() {
            f.push(nn::linear(root.sub("f").sub(k), width, out, linear(width)));
            width = out;
        }
        let text = match &task {
            Task::SortOfClevr => None,
            Task::Clevr { vocabulary } => Some(QuestionLstm::new(&root, vocabulary.words.len())),
        };
        let coordinates = coordinates(feature_side(task.side()), Kind::Float, device);
        Self {
            vs,
            conv,
            g,
            f,
            coordinates,
            text,
            task,
        }
    }

    pub fn task(&self) -> &Task {
        &self.task
    }

    /// The parameters and buffers by name (`conv.0.weight`, `text.lstm.weight_ih`, …).
    pub fn variables(&self) -> std::collections::HashMap<String, Tensor> {
        self.vs.variables()
    }

    /// The question vectors `g` reads: Sort-of-CLEVR's vectors `[B, 11]` as they are,
    /// CLEVR's tokens ([`question_tokens`]) through the embedding and the LSTM.
    pub fn question_vectors(&self, questions: &Tensor) -> Tensor {
        match &self.text {
            None => questions.shallow_clone(),
            Some(lstm) => lstm.encode(questions),
        }
    }

    /// A network initialised from `seed` (libtorch's generator is seeded with it first).
    pub fn seeded(seed: u64, task: Task, device: Device) -> Self {
        let _lock = GENERATOR.lock().unwrap_or_else(|e| e.into_inner());
        tch::manual_seed(seed as i64);
        Self::build(task, device)
    }

    /// The logits of a batch: images `[B, 3, side, side]`, questions `[B, 11]` (Sort-of-CLEVR)
    /// or tokens (CLEVR, [`question_tokens`]); batch norm uses the batch's statistics when
    /// `train`, its running statistics otherwise.
    pub fn forward(&self, images: &Tensor, questions: &Tensor, train: bool) -> Tensor {
        let questions = self.question_vectors(questions);
        let mut h = images.shallow_clone();
        for (c, bn) in &self.conv {
            h = bn.forward_t(&c.forward(&h), train).relu();
        }
        let n = self.coordinates.size()[0];
        let width = 2 * OBJECT + self.task.question_width() as i64;
        let mut p = pairs(&self.objects(&h), &questions).view([-1, width]);
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
        let side = feature_side(self.task.side());
        self.coordinates = coordinates(side, kind, self.vs.device());
    }

    /// The layers from the top down, each as a name and its parameters' prefixes: `f`'s
    /// layers from the last, `g`'s, then the convolution blocks (convolution and batch norm)
    /// and, last, CLEVR's question encoder (embedding and LSTM), which feeds `g` beside the
    /// convolutions.
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
        if self.text.is_some() {
            layers.push(("question encoder".into(), vec!["text.".into()]));
        }
        layers
    }

    /// A copy whose top `levels` layers of [`Self::layers_from_top`] are re-initialised
    /// (PyTorch's default initialisation from `seed`; batch norm back to scale 1, shift 0,
    /// mean 0, variance 1), the rest kept.
    pub fn randomised(&self, levels: usize, seed: u64) -> Self {
        let mut fresh = Self::seeded(seed, self.task.clone(), self.vs.device());
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

    /// Writes `rn.safetensors` and its description `rn.json` into `dir` (and CLEVR's
    /// dictionaries, `vocabulary.json`).
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.save_weights(&dir.join("rn.safetensors"))?;
        let mut encoder = serde_json::Value::Null;
        if let Task::Clevr { vocabulary } = &self.task {
            let text = serde_json::to_string_pretty(vocabulary).expect("dictionaries serialise");
            crate::io::write_atomic(&dir.join("vocabulary.json"), format!("{text}\n").as_bytes())?;
            encoder = json!({
                "vocabulary": "vocabulary.json",
                "embedding": "text.embedding.weight",
                "weight_ih": "text.lstm.weight_ih",
                "weight_hh": "text.lstm.weight_hh",
                "bias_ih": "text.lstm.bias_ih",
                "bias_hh": "text.lstm.bias_hh",
            });
        }
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
        let side = self.task.side();
        let mut description = json!({
            "format": crate::model::relnet::FORMAT,
            "version": 1,
            "weights": "rn.safetensors",
            "image": [3, side, side],
            "conv": conv,
            "question": self.task.question_width(),
            "g": linear("g", self.g.len()),
            "f": linear("f", self.f.len()),
        });
        if !encoder.is_null() {
            description["question_encoder"] = encoder;
        }
        let path = dir.join("rn.json");
        let text = serde_json::to_string_pretty(&description).expect("descriptions serialise");
        crate::io::write_atomic(&path, format!("{text}\n").as_bytes())
    }

    /// A network saved by [`Self::save`] in `dir`: a Sort-of-CLEVR network, or a CLEVR one
    /// where the description has a question encoder; a description of another architecture
    /// (image size, question width, outputs, layers) is refused with what it holds.
    pub fn load(dir: &Path, device: Device) -> Result<Self> {
        let path = dir.join("rn.json");
        let described = crate::model::relnet::RelationNetwork::load(&path)?;
        let task = match described.question_encoder() {
            None => Task::SortOfClevr,
            Some(encoder) => Task::Clevr {
                vocabulary: encoder.vocabulary.clone(),
            },
        };
        type Shape = ([usize; 3], usize, usize, usize, usize, usize);
        let side = task.side();
        let ours: Shape = (
            [3, side, side],
            task.question_width(),
            task.outputs(),
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
                "{image:?} images, questions of {question} values and {answers} outputs ({conv} \
                 convolution blocks, {g} layers in g, {f} in f)"
            )
        };
        if theirs != ours {
            return Err(Error::file(
                &path,
                format!(
                    "a relation network for {}; the {} network takes {}",
                    describe(theirs),
                    task.name(),
                    describe(ours)
                ),
            ));
        }
        let mut net = Self::new(task, device);
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
    /// The learning rate of the first epoch.
    pub learning_rate: f64,
    /// Doubles the learning rate every `.0` epochs, up to `.1` (the reference's CLEVR
    /// schedule: every 20 epochs from 5e-6 to 5e-4).
    pub doubling: Option<(usize, f64)>,
    /// Adam's L2 penalty (PyTorch's `weight_decay`: `g += λ p` before the moments).
    pub weight_decay: f64,
    /// Scales the gradients down to this total norm where they exceed it
    /// (`clip_grad_norm_`).
    pub clip: Option<f64>,
    /// The reference's image augmentation ([`crate::repro::clevr::augment`], CLEVR only).
    pub augment: bool,
    pub seed: u64,
}

impl TrainSettings {
    /// The learning rate of `epoch` (1-based).
    pub fn learning_rate(&self, epoch: usize) -> f64 {
        match self.doubling {
            None => self.learning_rate,
            Some((every, max)) => {
                let doublings = ((epoch - 1) / every.max(1)).min(64) as i32;
                (self.learning_rate * 2f64.powi(doublings)).min(max)
            }
        }
    }
}

/// Accuracy per question type (Sort-of-CLEVR: shape, left, top, closest, furthest, count;
/// CLEVR: exist, count, compare-integer, compare-attribute, query-attribute), per kind
/// (Sort-of-CLEVR) and overall, with the mean loss.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Accuracy {
    pub loss: f64,
    pub overall: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub non_relational: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relational: Option<f64>,
    pub by_type: Vec<TypeAccuracy>,
    pub questions: usize,
}

/// The accuracy on the questions of one type.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TypeAccuracy {
    #[serde(rename = "type")]
    pub name: String,
    pub accuracy: f64,
    pub questions: usize,
}

/// Questions a network trains and is evaluated on.
pub trait QuestionSet {
    fn num_images(&self) -> usize;
    fn num_questions(&self) -> usize;
    /// Images, questions and answers of the questions `idx`, on the set's device; with
    /// `augment`, each image augmented from that generator's draws.
    fn batch(
        &self,
        idx: &[usize],
        augment: Option<&mut rand_chacha::ChaCha8Rng>,
    ) -> (Tensor, Tensor, Tensor);
    fn device(&self) -> Device;
    /// The question types' names and each question's type (`None`: no type known).
    fn types(&self) -> (Vec<String>, Vec<Option<usize>>);
    /// Per question, whether it is relational (Sort-of-CLEVR's kinds).
    fn relational(&self) -> Option<Vec<bool>> {
        None
    }
}

/// A Sort-of-CLEVR set's tensors on a device.
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
}

impl QuestionSet for DeviceSet<'_> {
    fn num_images(&self) -> usize {
        self.data.num_images()
    }

    fn num_questions(&self) -> usize {
        self.data.num_questions()
    }

    /// Sort-of-CLEVR is not augmented: `augment` is ignored ([`TrainSettings::augment`] is
    /// refused for it before training).
    fn batch(
        &self,
        idx: &[usize],
        _: Option<&mut rand_chacha::ChaCha8Rng>,
    ) -> (Tensor, Tensor, Tensor) {
        let idx: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
        let idx = Tensor::from_slice(&idx).to_device(self.device());
        let images = self
            .images
            .index_select(0, &self.image_of.index_select(0, &idx));
        (
            images,
            self.questions.index_select(0, &idx),
            self.answers.index_select(0, &idx),
        )
    }

    fn device(&self) -> Device {
        self.answers.device()
    }

    fn types(&self) -> (Vec<String>, Vec<Option<usize>>) {
        let names = Subtype::ALL.iter().map(|s| s.name().to_string()).collect();
        let of = self
            .data
            .subtypes
            .iter()
            .map(|s| Subtype::ALL.iter().position(|t| t == s))
            .collect();
        (names, of)
    }

    fn relational(&self) -> Option<Vec<bool>> {
        Some(
            self.data
                .subtypes
                .iter()
                .map(|s| s.kind() == QuestionKind::Relational)
                .collect(),
        )
    }
}

/// A CLEVR split (images held resized on the CPU, 8-bit) whose batches go to a device.
pub struct ClevrDeviceSet<'a> {
    data: &'a crate::repro::clevr::ClevrSet,
    device: Device,
}

impl<'a> ClevrDeviceSet<'a> {
    pub fn new(data: &'a crate::repro::clevr::ClevrSet, device: Device) -> Self {
        Self { data, device }
    }
}

impl QuestionSet for ClevrDeviceSet<'_> {
    fn num_images(&self) -> usize {
        self.data.num_images()
    }

    fn num_questions(&self) -> usize {
        self.data.num_questions()
    }

    fn batch(
        &self,
        idx: &[usize],
        mut augment: Option<&mut rand_chacha::ChaCha8Rng>,
    ) -> (Tensor, Tensor, Tensor) {
        use rand::Rng;
        let side = IMAGE_SIDE;
        let mut pixels = Vec::with_capacity(idx.len() * 3 * side * side);
        for &q in idx {
            let stored = self.data.image(self.data.image_of[q]);
            let augmented;
            let image = match augment.as_deref_mut() {
                Some(rng) => {
                    let (dx, dy) = (rng.random_range(0..=8), rng.random_range(0..=8));
                    let degrees = rng.random_range(-2.8..=2.8);
                    augmented = crate::repro::clevr::augment(stored, side, dx, dy, degrees);
                    &augmented[..]
                }
                None => stored,
            };
            for c in 0..3 {
                pixels.extend((0..side * side).map(|p| f32::from(image[3 * p + c]) / 127.5 - 1.0));
            }
        }
        let words: Vec<&[usize]> = idx.iter().map(|&q| &self.data.tokens[q][..]).collect();
        let answers: Vec<i64> = idx.iter().map(|&q| self.data.answers[q] as i64).collect();
        let n = idx.len() as i64;
        (
            Tensor::from_slice(&pixels)
                .view([n, 3, side as i64, side as i64])
                .to_device(self.device),
            question_tokens(&words).to_device(self.device),
            Tensor::from_slice(&answers).to_device(self.device),
        )
    }

    fn device(&self) -> Device {
        self.device
    }

    fn types(&self) -> (Vec<String>, Vec<Option<usize>>) {
        use crate::repro::clevr::Category;
        let names = Category::ALL.iter().map(|c| c.name().to_string()).collect();
        let of = self
            .data
            .categories
            .iter()
            .map(|c| c.and_then(|c| Category::ALL.iter().position(|&k| k == c)))
            .collect();
        (names, of)
    }
}

/// One epoch over `set` in a shuffled order, updating the network; the mean loss.
pub fn train_epoch(
    net: &TorchRelationNet,
    opt: &mut Adam,
    set: &dyn QuestionSet,
    settings: &TrainSettings,
    epoch: usize,
    mut progress: impl FnMut(usize),
) -> f64 {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let mut order: Vec<usize> = (0..set.num_questions()).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(settings.seed);
    rng.set_stream(epoch as u64);
    order.shuffle(&mut rng);
    // The augmentation draws from a stream of its own, so that it leaves the order as it is.
    let mut augment = settings.augment.then(|| {
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(settings.seed);
        r.set_stream((1 << 32) + epoch as u64);
        r
    });
    let learning_rate = settings.learning_rate(epoch);
    let (mut total, mut count) = (0.0, 0usize);
    for chunk in order.chunks(settings.batch) {
        let (images, questions, answers) = set.batch(chunk, augment.as_mut());
        let loss = net
            .forward(&images, &questions, true)
            .cross_entropy_for_logits(&answers);
        opt.backward_step(&loss, learning_rate, settings.weight_decay, settings.clip);
        total += loss.double_value(&[]) * chunk.len() as f64;
        count += chunk.len();
        progress(chunk.len());
    }
    total / count.max(1) as f64
}

/// The network's accuracy on `set` (batch norm with running statistics), `batch` questions
/// at a time.
pub fn evaluate(net: &TorchRelationNet, set: &dyn QuestionSet, batch: usize) -> Accuracy {
    let _guard = tch::no_grad_guard();
    let n = set.num_questions();
    let mut right = vec![false; n];
    let mut loss = 0.0;
    for start in (0..n).step_by(batch.max(1)) {
        let end = (start + batch).min(n);
        let idx: Vec<usize> = (start..end).collect();
        let (images, questions, answers) = set.batch(&idx, None);
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
    let tally = |keep: &dyn Fn(usize) -> bool| {
        let picked: Vec<bool> = (0..n).filter(|&i| keep(i)).map(|i| right[i]).collect();
        let hits = picked.iter().filter(|&&r| r).count();
        (hits as f64 / picked.len().max(1) as f64, picked.len())
    };
    let (names, of) = set.types();
    let relational = set.relational();
    let kind = |want: bool| relational.as_ref().map(|r| tally(&|i| r[i] == want).0);
    Accuracy {
        loss: loss / n.max(1) as f64,
        overall: tally(&|_| true).0,
        non_relational: kind(false),
        relational: kind(true),
        by_type: names
            .into_iter()
            .enumerate()
            .map(|(t, name)| {
                let (accuracy, questions) = tally(&|i| of[i] == Some(t));
                TypeAccuracy {
                    name,
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
}

/// The factor that scales `grads` down to total norm `max` where their norm exceeds it
/// (`max / (norm + 1e-6)`, as PyTorch's `clip_grad_norm_`), or `None`.
pub fn clip_scale(grads: &[Tensor], max: f64) -> Option<f64> {
    let squares: f64 = grads
        .iter()
        .filter(|g| g.defined())
        .map(|g| {
            g.to_kind(Kind::Double)
                .square()
                .sum(Kind::Double)
                .double_value(&[])
        })
        .sum();
    let norm = squares.sqrt();
    (norm > max).then(|| max / (norm + 1e-6))
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPSILON: f64 = 1e-8;

impl Adam {
    pub fn new(net: &TorchRelationNet) -> Self {
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
        }
    }

    /// One step on the gradients of `loss` with `learning_rate`; `weight_decay` adds `λ p`
    /// to each gradient, and `clip` scales the gradients down to that total norm where
    /// they exceed it (PyTorch's `clip_grad_norm_`, before the decay is added).
    pub fn backward_step(
        &mut self,
        loss: &Tensor,
        learning_rate: f64,
        weight_decay: f64,
        clip: Option<f64>,
    ) {
        for p in &mut self.params {
            p.zero_grad();
        }
        loss.backward();
        let _guard = tch::no_grad_guard();
        let grads: Vec<Tensor> = self.params.iter().map(Tensor::grad).collect();
        let scale = clip.and_then(|max| clip_scale(&grads, max));
        self.step += 1;
        let bc1 = 1.0 - BETA1.powi(self.step as i32);
        let bc2 = 1.0 - BETA2.powi(self.step as i32);
        for (((p, m), v), g) in self
            .params
            .iter_mut()
            .zip(&mut self.m)
            .zip(&mut self.v)
            .zip(grads)
        {
            if !g.defined() {
                continue;
            }
            let mut g = match scale {
                Some(s) => g * s,
                None => g,
            };
            if weight_decay != 0.0 {
                g += &*p * weight_decay;
            }
            m.copy_(&(&*m * BETA1 + &g * (1.0 - BETA1)));
            v.copy_(&(&*v * BETA2 + &g * &g * (1.0 - BETA2)));
            let denom = v.sqrt() / bc2.sqrt() + EPSILON;
            let update = &*m / denom * (learning_rate / bc1);
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
