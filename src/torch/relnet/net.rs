//! The relation network itself: its [`Task`], its layers and parameters (named as the
//! relation-network description names them), PyTorch's default initialisation, and the
//! forward pass.

use tch::nn::{self, Module, ModuleT};
use tch::{Device, Kind, Tensor};

use crate::repro::clevr::{Vocabulary, IMAGE_SIDE};
use crate::repro::sort_of_clevr::{ANSWERS, QUESTION_WIDTH, SIZE};

/// The data a network is built for.
#[derive(Clone, Debug, PartialEq)]
pub enum Task {
    /// 75×75 images, the 11-value question vector, 10 answers.
    SortOfClevr,
    /// 128×128 images, questions as words of `vocabulary` (embedding and LSTM), 29 outputs
    /// (output 0 unused, as in the reference: the answers' indices are 1-based).
    Clevr {
        /// The word and answer dictionaries of the training questions (`vocabulary.json`).
        vocabulary: Vocabulary,
    },
}

/// CLEVR's word embedding width.
pub const EMBEDDING: i64 = 32;
/// CLEVR's LSTM width: its hidden state is the question vector `g` reads.
pub const LSTM: i64 = 128;
/// CLEVR's outputs: output 0 unused, the answers at 1..=28.
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

    /// The number of logits: Sort-of-CLEVR's 10 answers, or CLEVR's 29 outputs.
    pub fn outputs(&self) -> usize {
        match self {
            Task::SortOfClevr => ANSWERS.len(),
            Task::Clevr { .. } => CLEVR_OUTPUTS,
        }
    }

    /// `Sort-of-CLEVR` or `CLEVR`, as messages and `training.json`'s `task` name it.
    pub fn name(&self) -> &'static str {
        match self {
            Task::SortOfClevr => "Sort-of-CLEVR",
            Task::Clevr { .. } => "CLEVR",
        }
    }
}

/// Convolution channels, blocks, and the widths of `g` and of `f`'s hidden layers.
const CHANNELS: i64 = 24;
pub(super) const BLOCKS: usize = 4;
pub(super) const G: [i64; 4] = [256; 4];
pub(super) const F: [i64; 2] = [256; 2];
/// Batch norm's `ε` (PyTorch's default).
pub(in crate::torch) const BATCH_NORM_EPS: f64 = 1e-5;

/// libtorch's generator is global: every network is initialised holding this, so the seed and
/// the draws of [`TorchRelationNet::seeded`] are one step that no other thread's
/// initialisation interleaves with.
static GENERATOR: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The network and its parameters.
pub struct TorchRelationNet {
    pub(in crate::torch) vs: nn::VarStore,
    pub(in crate::torch) conv: Vec<(nn::Conv2D, nn::BatchNorm)>,
    pub(in crate::torch) g: Vec<nn::Linear>,
    pub(in crate::torch) f: Vec<nn::Linear>,
    /// `[objects, 2]`: each cell's (x, y).
    pub(in crate::torch) coordinates: Tensor,
    /// CLEVR's question encoder.
    text: Option<QuestionLstm>,
    pub(super) task: Task,
}

/// A word embedding and a one-layer LSTM (PyTorch's `nn.Embedding`, `nn.LSTM`).
struct QuestionLstm {
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
pub(in crate::torch) const OBJECT: i64 = CHANNELS + 2;

/// `g`'s input for every ordered pair, `[B, n, n, 2 (C + 2) + q]`: entry `(i, j)` is
/// `[object j, object i, question]`, as in the reference (`x_i = objects.unsqueeze(1)`,
/// `x_j = objects.unsqueeze(2)`, `cat([x_i, x_j, q], 3)`).
pub(in crate::torch) fn pairs(objects: &Tensor, questions: &Tensor) -> Tensor {
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
    /// A freshly initialised network (PyTorch's default initialisation: weights and biases
    /// uniform in `±1/√fan_in`, batch norm the identity with scale 1, shift 0, mean 0 and
    /// variance 1; from libtorch's generator: call `tch::manual_seed` first for a
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
                    // PyTorch's BatchNorm2d starts as the identity: scale 1, shift 0 (tch's
                    // default draws the scales uniformly from [0, 1)).
                    ws_init: nn::Init::Const(1.0),
                    bs_init: nn::Init::Const(0.0),
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

    /// The data the network is built for.
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
    pub(in crate::torch) fn objects(&self, features: &Tensor) -> Tensor {
        let batch = features.size()[0];
        let n = self.coordinates.size()[0];
        let objects = features.view([batch, CHANNELS, n]).transpose(1, 2);
        let coords = self.coordinates.unsqueeze(0).expand([batch, n, 2], false);
        Tensor::cat(&[objects, coords], 2)
    }

    /// Converts the parameters and the coordinates to `precision`.
    pub fn set_precision(&mut self, precision: crate::torch::Precision) {
        self.set_kind(crate::torch::kind(precision));
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
}
