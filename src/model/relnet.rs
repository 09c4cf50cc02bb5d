//! The relation network of the paper's second experiment (Santoro et al. 2017, as trained on
//! CLEVR and Sort-of-CLEVR): a convolution stack with batch norm, coordinates appended to each
//! cell, the MLP `g` applied to every ordered pair of objects together with the question,
//! a sum over pairs, and the MLP `f`. Every step is piecewise linear, so with the question
//! fixed the network is one chain of IR layers that the exact engine audits like any other.
//!
//! # How the chain is built ([`RelationNetwork::network`])
//! - Each convolution block is a sparse layer; its batch norm (inference form, running
//!   statistics) is folded into it (`s = γ/√(var + ε)` per channel, each weight `s·w` rounded
//!   once) or, with [`Options::keep_batch_norm`], kept as a diagonal layer of its own.
//! - The objects are the `n = side²` cells of the last feature map, each with its `C` channels
//!   and two coordinates. Pair `p = i·n + j` feeds `g` the vector `[object j, object i,
//!   question]`, the order of the reference code (`x_i = objects.unsqueeze(1).expand(..)`,
//!   `x_j = objects.unsqueeze(2).expand(..)`, `cat([x_i, x_j, q], 3)`) and of its ONNX export,
//!   so the neurons of `g` are numbered as in PyTorch. The first layer of `g` is applied to all pairs as one sparse layer over the
//!   feature map: a pair's row lists the `2C` features of its two objects (`C` for a self-pair,
//!   whose two weights are summed, which must be exact), and the coordinate and question
//!   terms are constant for a given question, so they join the bias (summed exactly, then
//!   converted to f64 once).
//! - The other layers of `g` are [`Shared`] layers: one block for all `n²` pairs.
//! - The sum over pairs is a sparse layer of ones without ReLU, then `f` follows as dense
//!   layers, with a ReLU after each but the last.
//!
//! The question is a constant of the chain, as in the paper's relevance computation: the
//! explanation and its roots live in image space.
//!
//! # The description (`rn.json`, weights in safetensors)
//! ```json
//! {
//!   "format": "dtdcert-relation-network",
//!   "version": 1,
//!   "weights": "rn.safetensors",
//!   "image": [3, 75, 75],
//!   "conv": [
//!     {"weight": "conv.0.weight", "stride": 2, "padding": 1,
//!      "batch_norm": {"weight": "bn.0.weight", "bias": "bn.0.bias",
//!                     "running_mean": "bn.0.running_mean", "running_var": "bn.0.running_var",
//!                     "eps": 1e-5}}
//!   ],
//!   "question": 11,
//!   "g": [{"weight": "g.0.weight", "bias": "g.0.bias"}],
//!   "f": [{"weight": "f.0.weight", "bias": "f.0.bias"}]
//! }
//! ```
//! - `conv`: 3×3 or any square kernel `[out, in, k, k]`, optional `bias`, `stride` and
//!   `padding` (symmetric, default 0), optional `batch_norm`; a ReLU follows each block.
//! - `coordinates` (optional): `[[x, y], …]`, one pair per object in row-major cell order;
//!   the default is `linspace(-4, 4, side)` along the width (x) and along the height (y).
//! - `g` and `f`: `[out, in]` weights (PyTorch's `nn.Linear`), optional biases. `g`'s first
//!   weight has `2(C + 2) + question` columns: first object (channels, x, y), second object,
//!   question.
//! - `question_encoder` (optional; CLEVR): the question vector is computed from the question's
//!   words by an embedding and a one-layer LSTM run over the words in reverse order (its final
//!   hidden state, of `question` values). `{"vocabulary": "vocabulary.json", "embedding":
//!   "text.embedding.weight", "weight_ih": …, "weight_hh": …, "bias_ih": …, "bias_hh": …}`:
//!   the dictionaries (`{"words": {word: index}, "answers": {answer: index}}`, 1-based) and
//!   PyTorch's `nn.Embedding` and `nn.LSTM` tensors (gates i, f, g, o). The chain still takes
//!   the question vector as a constant; [`QuestionEncoder::encode`] computes it in f64.

use std::io;
use std::path::Path;

use ndarray::{Array1, Array2};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use crate::error::{invalid, Error, Result};
use crate::exact::dyadic::ExactSum;
use crate::model::image::{conv_rows, Window};
use crate::model::ir::{Affine, Dense, Layer, Network, Shared, Sparse};
use crate::model::kind::LayerKind;
use crate::model::safetensors_json::{map_weights, tensor, values};
use crate::model::vocabulary::Vocabulary;

/// The value of the description's `format` field.
pub const FORMAT: &str = "dtdcert-relation-network";

/// The value of the description's `version` field.
pub const VERSION: u64 = 1;

/// Whether `path` is a JSON file whose `format` is [`FORMAT`] (any problem reading it: no).
pub fn is_description(path: &Path) -> bool {
    #[derive(Deserialize)]
    struct Head {
        format: Option<String>,
    }
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str::<Head>(&text).ok())
        .and_then(|h| h.format)
        .is_some_and(|f| f == FORMAT)
}

/// Batch norm in inference form.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNorm {
    /// The scale `γ` per channel (PyTorch's `weight`).
    pub scale: Vec<f64>,
    /// The shift `β` per channel (PyTorch's `bias`).
    pub shift: Vec<f64>,
    /// The running mean per channel.
    pub mean: Vec<f64>,
    /// The running variance per channel.
    pub var: Vec<f64>,
    /// The `ε` added to the variance: `y = γ (x − mean)/√(var + ε) + β`.
    pub eps: f64,
}

impl BatchNorm {
    /// `(s, t)` per channel with `y = s x + t`, computed in f64.
    fn affine(&self) -> Result<(Vec<f64>, Vec<f64>)> {
        let mut s = Vec::with_capacity(self.scale.len());
        let mut t = Vec::with_capacity(self.scale.len());
        for c in 0..self.scale.len() {
            let d = (self.var[c] + self.eps).sqrt();
            if !(d.is_finite() && d > 0.0) {
                return Err(invalid(format!(
                    "batch norm channel {c}: var + eps = {} has no positive square root",
                    self.var[c] + self.eps
                )));
            }
            s.push(self.scale[c] / d);
            t.push(self.shift[c] - self.mean[c] * s[c]);
        }
        Ok((s, t))
    }
}

/// One convolution block: convolution, optional batch norm, ReLU.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvBlock {
    /// `[out, in, k, k]`, row-major.
    pub kernel: Vec<f64>,
    /// `[out, in, k, k]`: output channels, input channels, the square kernel's side.
    pub shape: [usize; 4],
    /// One value per output channel, where the convolution has a bias.
    pub bias: Option<Vec<f64>>,
    /// The step of the kernel, the same along both axes (at least 1).
    pub stride: usize,
    /// Zero padding added on each of the four sides.
    pub padding: usize,
    /// The batch norm between the convolution and the ReLU, where the block has one.
    pub batch_norm: Option<BatchNorm>,
}

/// How the chain is built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Batch norm as a diagonal layer of its own instead of folded into its convolution.
    pub keep_batch_norm: bool,
}

/// A relation network with its shapes checked.
#[derive(Clone, Debug, PartialEq)]
pub struct RelationNetwork {
    image: [usize; 3],
    conv: Vec<ConvBlock>,
    /// `[channels, side, side]` of the last feature map.
    features: [usize; 3],
    coordinates: Vec<[f64; 2]>,
    question: usize,
    g: Vec<Dense>,
    f: Vec<Dense>,
    encoder: Option<QuestionEncoder>,
}

/// A question encoder: word embedding and LSTM, in f64.
#[derive(Clone, Debug, PartialEq)]
pub struct QuestionEncoder {
    /// The word and answer dictionaries (the description's `vocabulary` file).
    pub vocabulary: Vocabulary,
    /// `[words + 1, embedding]`.
    embedding: Array2<f64>,
    /// `[4 hidden, embedding]`, `[4 hidden, hidden]`, and the two biases, gates i, f, g, o.
    weight_ih: Array2<f64>,
    weight_hh: Array2<f64>,
    bias_ih: Array1<f64>,
    bias_hh: Array1<f64>,
}

impl QuestionEncoder {
    /// The width of the question vectors (the LSTM's hidden state).
    pub fn width(&self) -> usize {
        self.weight_hh.ncols()
    }

    /// The question vector of a question's words (1-based indices, in the question's order):
    /// the LSTM's final hidden state over the words in reverse order, from a zero state.
    pub fn encode(&self, words: &[usize]) -> Vec<f64> {
        let hidden = self.weight_hh.ncols();
        let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
        let mut h = Array1::<f64>::zeros(hidden);
        let mut c = Array1::<f64>::zeros(hidden);
        for &w in words.iter().rev() {
            let x = self.embedding.row(w);
            let gates =
                self.weight_ih.dot(&x) + &self.bias_ih + self.weight_hh.dot(&h) + &self.bias_hh;
            for k in 0..hidden {
                let (i, f) = (sigmoid(gates[k]), sigmoid(gates[hidden + k]));
                let (g, o) = (gates[2 * hidden + k].tanh(), sigmoid(gates[3 * hidden + k]));
                c[k] = f * c[k] + i * g;
                h[k] = o * c[k].tanh();
            }
        }
        h.to_vec()
    }

    /// The question vector of a question's text ([`crate::model::vocabulary::tokenize`]); a word
    /// outside the dictionary is an error naming it.
    pub fn encode_text(&self, text: &str) -> Result<Vec<f64>> {
        let words = self
            .vocabulary
            .words_of(text)
            .map_err(|w| invalid(format!("the word '{w}' is not in the model's dictionary")))?;
        Ok(self.encode(&words))
    }
}

impl RelationNetwork {
    /// Checks every shape: the convolutions chain from `image`, the last feature map is
    /// square, `g`'s first layer takes two objects and the question, `g` and `f` chain, and
    /// `coordinates` (default `linspace(-4, 4, side)`) has one pair per object.
    pub fn new(
        image: [usize; 3],
        conv: Vec<ConvBlock>,
        coordinates: Option<Vec<[f64; 2]>>,
        question: usize,
        g: Vec<Dense>,
        f: Vec<Dense>,
    ) -> Result<Self> {
        if conv.is_empty() || g.is_empty() || f.is_empty() {
            return Err(invalid(
                "a relation network needs at least one convolution, one layer of g and one of f",
            ));
        }
        let [mut c, mut h, mut w] = image;
        let too_large = |what: String, n: Option<usize>| match n {
            Some(n) if n <= MAX_STORED => Ok(()),
            _ => Err(invalid(format!(
                "{what} would store more than 2^26 weights; networks this large are not supported"
            ))),
        };
        for (i, block) in conv.iter().enumerate() {
            let [out, inp, kh, kw] = block.shape;
            if inp != c || kh != kw || kh == 0 || out == 0 || block.stride == 0 {
                return Err(invalid(format!(
                    "conv[{i}]: kernel {:?} does not fit {c} input channels (square kernels, \
                     stride of at least 1)",
                    block.shape
                )));
            }
            if block.kernel.len() != out * inp * kh * kw
                || block.bias.as_ref().is_some_and(|b| b.len() != out)
            {
                return Err(invalid(format!(
                    "conv[{i}]: {} kernel values or bias entries do not match {:?}",
                    block.kernel.len(),
                    block.shape
                )));
            }
            if let Some(bn) = &block.batch_norm {
                if [&bn.scale, &bn.shift, &bn.mean, &bn.var]
                    .iter()
                    .any(|v| v.len() != out)
                {
                    return Err(invalid(format!(
                        "conv[{i}]: batch norm parameters need {out} values each"
                    )));
                }
            }
            let [ho, wo] = block
                .window()
                .output(h, w)
                .map_err(|e| invalid(format!("conv[{i}]: {e}")))?;
            let stored = [out, ho, wo, inp, kh, kw]
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d));
            too_large(format!("conv[{i}]"), stored)?;
            (c, h, w) = (out, ho, wo);
        }
        if h != w {
            return Err(invalid(format!(
                "the last feature map is {h}×{w}; objects need a square grid"
            )));
        }
        let n = h * w;
        let pair_weights = [n, n, g[0].weight().nrows(), 2 * c]
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d));
        too_large(format!("g[0] on all {n}² pairs"), pair_weights)?;
        let coordinates = match coordinates {
            Some(cs) if cs.len() != n => {
                return Err(invalid(format!(
                    "{} coordinate pairs for {n} objects",
                    cs.len()
                )))
            }
            Some(cs) => cs,
            None => {
                let at = |k: usize| {
                    if h == 1 {
                        0.0
                    } else {
                        -4.0 + 8.0 * k as f64 / (h - 1) as f64
                    }
                };
                (0..n).map(|o| [at(o % w), at(o / w)]).collect()
            }
        };
        let object = c + 2;
        let first = g[0].weight().ncols();
        if first != 2 * object + question {
            return Err(invalid(format!(
                "g[0] takes {first} inputs; two objects of {object} values and a question of \
                 {question} need {}",
                2 * object + question
            )));
        }
        let chain = g.iter().chain(&f).collect::<Vec<_>>();
        for (k, pair) in chain.windows(2).enumerate() {
            if pair[1].weight().ncols() != pair[0].weight().nrows() {
                return Err(invalid(format!(
                    "layer {} of g and f takes {} inputs but the one before it has {} outputs",
                    k + 1,
                    pair[1].weight().ncols(),
                    pair[0].weight().nrows()
                )));
            }
        }
        Ok(Self {
            image,
            conv,
            features: [c, h, w],
            coordinates,
            question,
            g,
            f,
            encoder: None,
        })
    }

    /// The question encoder, where the description has one.
    pub fn question_encoder(&self) -> Option<&QuestionEncoder> {
        self.encoder.as_ref()
    }

    /// `[channels, height, width]` of the image.
    pub fn image(&self) -> [usize; 3] {
        self.image
    }

    /// The width of the question vector (the description's `question`).
    pub fn question_width(&self) -> usize {
        self.question
    }

    /// The number of objects (cells of the last feature map).
    pub fn objects(&self) -> usize {
        self.features[1] * self.features[2]
    }

    /// The number of convolution blocks.
    pub fn conv_blocks(&self) -> usize {
        self.conv.len()
    }

    /// The number of linear layers of `g`.
    pub fn g_layers(&self) -> usize {
        self.g.len()
    }

    /// The number of linear layers of `f`.
    pub fn f_layers(&self) -> usize {
        self.f.len()
    }

    /// The number of answer logits (the rows of `f`'s last layer).
    pub fn outputs(&self) -> usize {
        self.f.last().expect("checked").weight().nrows()
    }

    /// The names of the layers of [`Self::network`]'s chain, in order: `conv block k` (with
    /// `keep_batch_norm`, `conv k` and `batch norm k`), `g.k`, `sum over pairs`, `f.k`.
    pub fn layer_names(&self, options: Options) -> Vec<String> {
        let mut names = Vec::new();
        for (k, block) in self.conv.iter().enumerate() {
            if block.batch_norm.is_some() && options.keep_batch_norm {
                names.push(format!("conv {}", k + 1));
                names.push(format!("batch norm {}", k + 1));
            } else {
                names.push(format!("conv block {}", k + 1));
            }
        }
        names.extend((0..self.g.len()).map(|k| format!("g.{k}")));
        names.push("sum over pairs".into());
        names.extend((0..self.f.len()).map(|k| format!("f.{k}")));
        names
    }

    /// The chain of IR layers computing the answer logits for `question` from an image.
    pub fn network(&self, question: &[f64], options: Options) -> Result<Network> {
        if question.len() != self.question {
            return Err(invalid(format!(
                "the question has {} values; the network takes {}",
                question.len(),
                self.question
            )));
        }
        if let Some(v) = question.iter().find(|v| !v.is_finite()) {
            return Err(invalid(format!("the question holds {v}")));
        }
        let mut layers = Vec::new();
        let mut kinds = Vec::new();
        let [mut c, mut h, mut w] = self.image;
        for block in &self.conv {
            let out = block.shape[0];
            let window = block.window();
            let [ho, wo] = window.output(h, w).map_err(invalid)?;
            let mut rows = conv_rows(&block.kernel, [out, c], [h, w], &window);
            let per_channel = ho * wo;
            let mut bias: Vec<f64> = (0..rows.len())
                .map(|r| block.bias.as_ref().map_or(0.0, |b| b[r / per_channel]))
                .collect();
            let bn = block
                .batch_norm
                .as_ref()
                .map(BatchNorm::affine)
                .transpose()?;
            let fold = bn.is_some() && !options.keep_batch_norm;
            if let (Some((s, t)), true) = (&bn, fold) {
                for (r, row) in rows.iter_mut().enumerate() {
                    let ch = r / per_channel;
                    row.iter_mut().for_each(|(_, v)| *v *= s[ch]);
                    bias[r] = bias[r] * s[ch] + t[ch];
                }
            }
            let n_in = c * h * w;
            layers.push(Layer {
                affine: Affine::Sparse(Sparse::from_rows(n_in, rows, Array1::from(bias))?),
                relu: bn.is_none() || fold,
                activation: crate::model::Activation::Relu,
                max_pool: None,
                linear_tail: 0,
            });
            kinds.push(LayerKind::Conv);
            if let (Some((s, t)), false) = (&bn, fold) {
                let n = out * per_channel;
                let rows = (0..n)
                    .map(|r| vec![(r as u32, s[r / per_channel])])
                    .collect();
                let bias = Array1::from_shape_fn(n, |r| t[r / per_channel]);
                layers.push(Layer {
                    affine: Affine::Sparse(Sparse::from_rows(n, rows, bias)?),
                    relu: true,
                    activation: crate::model::Activation::Relu,
                    max_pool: None,
                    linear_tail: 0,
                });
                kinds.push(LayerKind::BatchNorm);
            }
            (c, h, w) = (out, ho, wo);
        }
        layers.push(self.pair_layer(question)?);
        kinds.push(LayerKind::Dense);
        let pairs = self.objects() * self.objects();
        for block in &self.g[1..] {
            layers.push(Layer {
                affine: Affine::Shared(Shared::new(block.clone(), pairs)?),
                relu: true,
                activation: crate::model::Activation::Relu,
                max_pool: None,
                linear_tail: 0,
            });
            kinds.push(LayerKind::Dense);
        }
        let width = self.g.last().expect("checked").weight().nrows();
        let rows = (0..width)
            .map(|k| (0..pairs).map(|p| ((p * width + k) as u32, 1.0)).collect())
            .collect();
        layers.push(Layer {
            affine: Affine::Sparse(Sparse::from_rows(
                pairs * width,
                rows,
                Array1::zeros(width),
            )?),
            relu: false,
            activation: crate::model::Activation::Relu,
            max_pool: None,
            linear_tail: 0,
        });
        kinds.push(LayerKind::Pool);
        for (i, d) in self.f.iter().enumerate() {
            layers.push(Layer {
                affine: Affine::Dense(d.clone()),
                relu: i + 1 < self.f.len(),
                activation: crate::model::Activation::Relu,
                max_pool: None,
                linear_tail: 0,
            });
            kinds.push(LayerKind::Dense);
        }
        Network::new(layers)?
            .with_kinds(kinds)?
            .with_input_shape(self.image.to_vec())
    }

    /// `g`'s first layer on every pair, over the last feature map (channel-major).
    fn pair_layer(&self, question: &[f64]) -> Result<Layer> {
        let [c, h, w] = self.features;
        let n = h * w;
        let first = &self.g[0];
        let units = first.weight().nrows();
        let object = c + 2;
        let mut rows = Vec::with_capacity(n * n * units);
        let mut bias = Vec::with_capacity(n * n * units);
        for i in 0..n {
            for j in 0..n {
                // Pair `i·n + j` is `[object j, object i]`, as the reference's expansion orders it.
                let (a, b) = (j, i);
                for k in 0..units {
                    let wk = first.row(k);
                    let mut row: Vec<(u32, f64)> = Vec::with_capacity(2 * c);
                    for ch in 0..c {
                        let (wa, wb) = (wk[ch], wk[object + ch]);
                        if a == b {
                            let sum = wa + wb;
                            // The two weights of a self-pair act on one input: their sum must
                            // be exact for the layer to compute the network's function.
                            if sum - wa != wb || sum - wb != wa {
                                return Err(invalid(format!(
                                    "g[0] row {k}: the weights {wa} and {wb} of channel {ch} do \
                                     not sum exactly in f64 (needed for the self-pair of object {a})"
                                )));
                            }
                            row.push(((ch * n + a) as u32, sum));
                        } else {
                            row.push(((ch * n + a) as u32, wa));
                            row.push(((ch * n + b) as u32, wb));
                        }
                    }
                    row.sort_unstable_by_key(|&(i, _)| i);
                    rows.push(row);
                    let mut constant = ExactSum::new();
                    constant.add(first.bias()[k]);
                    for (d, (&xa, &xb)) in self.coordinates[a]
                        .iter()
                        .zip(&self.coordinates[b])
                        .enumerate()
                    {
                        constant.add_product(wk[c + d], xa);
                        constant.add_product(wk[object + c + d], xb);
                    }
                    for (q, &v) in question.iter().enumerate() {
                        constant.add_product(wk[2 * object + q], v);
                    }
                    let value = constant
                        .value()
                        .ok_or_else(|| invalid("the pair bias is not finite"))?;
                    bias.push(value.to_f64());
                }
            }
        }
        if let Some(k) = bias.iter().position(|v| !v.is_finite()) {
            return Err(invalid(format!("the bias of pair row {k} overflows f64")));
        }
        Ok(Layer {
            affine: Affine::Sparse(Sparse::from_rows(c * n, rows, Array1::from(bias))?),
            relu: true,
            activation: crate::model::Activation::Relu,
            max_pool: None,
            linear_tail: 0,
        })
    }

    /// Loads a description (see the module documentation) and its safetensors weights.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::file(
                path,
                match e.kind() {
                    io::ErrorKind::NotFound => "no such file".to_string(),
                    _ => format!("cannot read: {e}"),
                },
            )
        })?;
        let d: RelnetDescription = serde_json::from_str(&text)
            .map_err(|e| Error::file(path, format!("invalid relation-network description: {e}")))?;
        if d.format != FORMAT || d.version != VERSION {
            return Err(Error::file(
                path,
                format!(
                    "\"format\" is \"{}\" version {}; expected \"{FORMAT}\" version {VERSION}",
                    d.format, d.version
                ),
            ));
        }
        let weights_path = path.parent().unwrap_or(Path::new("")).join(&d.weights);
        let map = map_weights(path, &weights_path)?;
        let tensors = SafeTensors::deserialize(&map).map_err(|e| {
            Error::file(&weights_path, format!("not a valid safetensors file: {e}"))
        })?;
        d.build(&tensors, path.parent().unwrap_or(Path::new("")))
            .map_err(|p| Error::file(path, p))
            .and_then(|r| r.map_err(|e| e.in_file(path)))
    }
}

impl ConvBlock {
    fn window(&self) -> Window {
        let k = self.shape[2];
        Window {
            kernel: [k, k],
            strides: [self.stride; 2],
            pads: [self.padding; 4],
        }
    }
}

/// The description `rn.json` holds (see the module documentation), as
/// [`RelationNetwork::load`] reads it and the libtorch trainer writes it ([`Self::save`]).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RelnetDescription {
    /// [`FORMAT`].
    pub format: String,
    /// [`VERSION`].
    pub version: u64,
    /// The safetensors file of the weights, beside the description.
    pub weights: String,
    /// `[3, side, side]`.
    pub image: [usize; 3],
    /// The convolution blocks, first to last.
    pub conv: Vec<ConvSpec>,
    /// Each object's (x, y), in row-major cell order (default: `linspace(-4, 4, side)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinates: Option<Vec<[f64; 2]>>,
    /// The width of the question vector.
    pub question: usize,
    /// The layers of `g`.
    pub g: Vec<LinearSpec>,
    /// The layers of `f`, the last one giving the outputs.
    pub f: Vec<LinearSpec>,
    /// CLEVR's question encoder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub question_encoder: Option<EncoderSpec>,
}

impl RelnetDescription {
    /// Writes the description to `path`: pretty-printed JSON with a final newline, its keys in
    /// alphabetical order (the order of serde_json's map, in which `rn.json` has always been
    /// written).
    pub fn save(&self, path: &Path) -> Result<()> {
        let value = serde_json::to_value(self).expect("descriptions serialise");
        crate::io::write_json_atomic(path, &value)
    }
}

/// A question encoder's dictionaries (a file beside the description) and tensors.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderSpec {
    /// The dictionaries' JSON file.
    pub vocabulary: String,
    /// `[words + 1, embedding]`.
    pub embedding: String,
    /// The LSTM's `[4 hidden, embedding]` input weights (gates i, f, g, o).
    pub weight_ih: String,
    /// The LSTM's `[4 hidden, hidden]` recurrent weights.
    pub weight_hh: String,
    /// The LSTM's `[4 hidden]` input bias.
    pub bias_ih: String,
    /// The LSTM's `[4 hidden]` recurrent bias.
    pub bias_hh: String,
}

/// A convolution block's tensors and geometry.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ConvSpec {
    /// `[out, in, k, k]`.
    pub weight: String,
    /// `[out]`, where the convolution has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bias: Option<String>,
    /// Default 1.
    #[serde(default = "one")]
    pub stride: usize,
    /// Symmetric; default 0.
    #[serde(default)]
    pub padding: usize,
    /// The batch norm after the convolution, where there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_norm: Option<BatchNormSpec>,
}

fn one() -> usize {
    1
}

/// A batch norm's tensors (`[channels]` each) and its `ε`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BatchNormSpec {
    /// The scale `γ`.
    pub weight: String,
    /// The shift `β`.
    pub bias: String,
    /// The running mean.
    pub running_mean: String,
    /// The running variance.
    pub running_var: String,
    /// Default 1e-5.
    #[serde(default = "default_eps")]
    pub eps: f64,
}

fn default_eps() -> f64 {
    1e-5
}

/// A linear layer's tensors: `[out, in]` and, where it has one, `[out]`.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LinearSpec {
    /// `[out, in]`.
    pub weight: String,
    /// `[out]` (default: no bias).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bias: Option<String>,
}

/// Reads a named tensor (its shape and values) of the weights file, or says why it cannot,
/// with the place given.
type ReadTensor<'a> =
    dyn Fn(&str, &str) -> std::result::Result<(Vec<usize>, Vec<f64>), String> + 'a;

/// The most weights one layer of the chain may store (as for ONNX image layers).
const MAX_STORED: usize = 1 << 26;

/// The largest image side or channel count read: keeps every size computed from them small.
const MAX_SIDE: usize = 1 << 16;

impl RelnetDescription {
    /// The network, or a problem in the description (outer error) or in the shapes (inner).
    fn build(
        &self,
        tensors: &SafeTensors<'_>,
        dir: &Path,
    ) -> std::result::Result<Result<RelationNetwork>, String> {
        let file = &self.weights;
        let read =
            |name: &str, what: &str| -> std::result::Result<(Vec<usize>, Vec<f64>), String> {
                let t = tensor(tensors, file, name).map_err(|e| format!("{what}: {e}"))?;
                Ok((t.shape().to_vec(), values(&t)))
            };
        if self
            .image
            .iter()
            .chain(&[self.question])
            .any(|&d| d > MAX_SIDE)
            || self.image.contains(&0)
        {
            return Err(format!(
                "image {:?} and question {}: sizes between 1 and 2^16 are read",
                self.image, self.question
            ));
        }
        let mut conv = Vec::new();
        for (i, spec) in self.conv.iter().enumerate() {
            let at = format!("conv[{i}]");
            let (shape, kernel) = read(&spec.weight, &at)?;
            let &[out, inp, kh, kw] = shape.as_slice() else {
                return Err(format!(
                    "{at}: weight \"{}\" has shape {shape:?}, not [out, in, k, k]",
                    spec.weight
                ));
            };
            if spec.stride > MAX_SIDE || spec.padding > MAX_SIDE {
                return Err(format!("{at}: stride and padding above 2^16 are not read"));
            }
            let bias = match &spec.bias {
                Some(name) => Some(read(name, &at)?.1),
                None => None,
            };
            let batch_norm = match &spec.batch_norm {
                Some(bn) => {
                    let at = format!("{at}.batch_norm");
                    Some(BatchNorm {
                        scale: read(&bn.weight, &at)?.1,
                        shift: read(&bn.bias, &at)?.1,
                        mean: read(&bn.running_mean, &at)?.1,
                        var: read(&bn.running_var, &at)?.1,
                        eps: bn.eps,
                    })
                }
                None => None,
            };
            conv.push(ConvBlock {
                kernel,
                shape: [out, inp, kh, kw],
                bias,
                stride: spec.stride,
                padding: spec.padding,
                batch_norm,
            });
        }
        let linear =
            |specs: &[LinearSpec], what: &str| -> std::result::Result<Vec<Dense>, String> {
                specs
                    .iter()
                    .enumerate()
                    .map(|(i, spec)| {
                        let at = format!("{what}[{i}]");
                        let (shape, w) = read(&spec.weight, &at)?;
                        let &[out, inp] = shape.as_slice() else {
                            return Err(format!(
                                "{at}: weight \"{}\" has shape {shape:?}, not [out, in]",
                                spec.weight
                            ));
                        };
                        let bias = match &spec.bias {
                            Some(name) => read(name, &at)?.1,
                            None => vec![0.0; out],
                        };
                        let w = Array2::from_shape_vec((out, inp), w)
                            .map_err(|e| format!("{at}: {e}"))?;
                        Dense::new(w, Array1::from(bias)).map_err(|e| format!("{at}: {e}"))
                    })
                    .collect()
            };
        let g = linear(&self.g, "g")?;
        let f = linear(&self.f, "f")?;
        let encoder = match &self.question_encoder {
            Some(spec) => {
                let outputs = f.last().map_or(0, |l| l.weight().nrows());
                Some(self.encoder(spec, dir, outputs, &read)?)
            }
            None => None,
        };
        Ok(RelationNetwork::new(
            self.image,
            conv,
            self.coordinates.clone(),
            self.question,
            g,
            f,
        )
        .map(|mut net| {
            net.encoder = encoder;
            net
        }))
    }

    /// The question encoder of `spec`: its dictionaries (from `dir`) and tensors, each shape
    /// checked against the dictionaries, the question width and the network's `outputs`.
    fn encoder(
        &self,
        spec: &EncoderSpec,
        dir: &Path,
        outputs: usize,
        read: &ReadTensor<'_>,
    ) -> std::result::Result<QuestionEncoder, String> {
        let at = "question_encoder";
        let path = dir.join(&spec.vocabulary);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("{at}: cannot read {}: {e}", path.display()))?;
        let vocabulary: Vocabulary = serde_json::from_str(&text)
            .map_err(|e| format!("{at}: {} is not a vocabulary: {e}", path.display()))?;
        let words = vocabulary.words.len();
        if let Some((w, &i)) = vocabulary.words.iter().find(|(_, &i)| i == 0 || i > words) {
            return Err(format!(
                "{at}: the word '{w}' has index {i}; {words} words take 1 to {words}"
            ));
        }
        if let Some((a, &i)) = vocabulary.answers.iter().find(|(_, &i)| i >= outputs) {
            return Err(format!(
                "{at}: the answer '{a}' has index {i}, beyond the network's {outputs} outputs"
            ));
        }
        let hidden = self.question;
        let matrix = |name: &str, rows: usize, cols: Option<usize>| {
            let (shape, v) = read(name, at)?;
            match (shape.as_slice(), cols) {
                (&[r, c], Some(want)) if r == rows && c == want => {
                    Ok(Array2::from_shape_vec((r, c), v).expect("shape checked"))
                }
                (&[r, c], None) if r == rows && c > 0 => {
                    Ok(Array2::from_shape_vec((r, c), v).expect("shape checked"))
                }
                _ => Err(format!(
                    "{at}: \"{name}\" has shape {shape:?}; expected [{rows}, {}]",
                    cols.map_or("embedding".into(), |c| c.to_string())
                )),
            }
        };
        let embedding = matrix(&spec.embedding, words + 1, None)?;
        let weight_ih = matrix(&spec.weight_ih, 4 * hidden, Some(embedding.ncols()))?;
        let weight_hh = matrix(&spec.weight_hh, 4 * hidden, Some(hidden))?;
        let vector = |name: &str| {
            let (shape, v) = read(name, at)?;
            if shape != [4 * hidden] {
                return Err(format!(
                    "{at}: \"{name}\" has shape {shape:?}; expected [{}]",
                    4 * hidden
                ));
            }
            Ok(Array1::from(v))
        };
        Ok(QuestionEncoder {
            vocabulary,
            embedding,
            weight_ih,
            weight_hh,
            bias_ih: vector(&spec.bias_ih)?,
            bias_hh: vector(&spec.bias_hh)?,
        })
    }
}
