//! LRP-α1β0 saliency of the relation network, with the conventions of the paper's reference
//! code and with dtdcert's correction of its batch norm.
//!
//! Every step is α1β0 without biases: a layer `z_j = Σ_i x_i w_ij` passes
//! `R_i = Σ_j (x_i w_ij)⁺ / Σ_i' (x_i' w_i'j)⁺ · R_j` to its inputs (`(x w)⁺ = x⁺w⁺ + x⁻w⁻`; on
//! non-negative inputs this is DTD's z⁺ rule), and a neuron whose denominator is zero passes
//! nothing. The forward pass is the network's own (biases included, batch norm with its
//! running statistics); the relevance that starts the backward pass is the explained logit.
//! - ReLUs pass relevance unchanged; the sum over pairs is a layer of ones.
//! - `g`'s first layer sees the whole concatenation `[object j, object i, question]` in its
//!   denominators; the relevance of the coordinate and question slices is dropped (reported
//!   as [`Saliency::dropped`]), that of the two object slices returns to the cells.
//! - Batch norm ([`BatchNormRelevance`]): the reference passes relevance through it unchanged
//!   (its convolution then applies the rule with its own weights); folding it scales each
//!   convolution's weights by `γ/√(var + ε)` first, so the rule sees the weights the network
//!   computes with. The reference also ran batch norm on the batch's statistics; here it
//!   always uses the running statistics, so a sample's map does not depend on its batch.

use tch::{Kind, Tensor};

use super::relnet::{pairs, question_tokens, TorchRelationNet, BATCH_NORM_EPS, OBJECT};
use crate::error::{Error, Result};
use crate::repro::sanity_sets::{QuestionInput, SampleInputs};

/// How relevance crosses batch norm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BatchNormRelevance {
    /// Unchanged, as in the reference code.
    PassThrough,
    /// Folded into the convolution before it.
    Folded,
}

impl BatchNormRelevance {
    /// Parses `--batch-norm`: `pass-through` or `folded`; anything else is a usage error.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "pass-through" => Ok(Self::PassThrough),
            "folded" => Ok(Self::Folded),
            _ => Err(Error::Usage(format!(
                "--batch-norm '{s}': expected pass-through (the reference's convention) or folded"
            ))),
        }
    }

    /// The name `--batch-norm` takes and the report's settings record.
    pub fn name(self) -> &'static str {
        match self {
            Self::PassThrough => "pass-through",
            Self::Folded => "folded",
        }
    }
}

/// The saliency of a batch.
pub struct Saliency {
    /// `[B, 3, H, W]`: each input value's relevance.
    pub pixels: Tensor,
    /// `[B]`: the relevance of the coordinate and question slices, dropped at `g`'s first
    /// layer.
    pub dropped: Tensor,
    /// `[B]`: the explained logit, the relevance the backward pass starts from.
    pub logit: Tensor,
}

/// The weights' positive and negative parts.
fn parts(w: &Tensor) -> (Tensor, Tensor) {
    (w.clamp_min(0.0), w.clamp_max(0.0))
}

/// `R / z`, zero where `z` is zero.
fn ratio(relevance: &Tensor, z: &Tensor) -> Tensor {
    let zero = z.eq(0.0);
    (relevance / z.masked_fill(&zero, 1.0)).masked_fill(&zero, 0.0)
}

/// α1β0 through `x ↦ x Wᵀ` (`x` `[N, in]`, `w` `[out, in]`, relevance `[N, out]`).
fn linear(x: &Tensor, w: &Tensor, relevance: &Tensor) -> Tensor {
    let (wp, wn) = parts(w);
    let (xp, xn) = (x.clamp_min(0.0), x.clamp_max(0.0));
    let z = xp.matmul(&wp.tr()) + xn.matmul(&wn.tr());
    let s = ratio(relevance, &z);
    xp * s.matmul(&wp) + xn * s.matmul(&wn)
}

/// α1β0 through a 3×3 convolution of stride 2 and padding 1 without bias (`x`
/// `[B, C, H, W]`, relevance on its output).
fn conv(x: &Tensor, w: &Tensor, relevance: &Tensor) -> Tensor {
    let (wp, wn) = parts(w);
    let (xp, xn) = (x.clamp_min(0.0), x.clamp_max(0.0));
    let forward = |x: &Tensor, w: &Tensor| x.conv2d(w, None::<Tensor>, [2, 2], [1, 1], [1, 1], 1);
    let z = forward(&xp, &wp) + forward(&xn, &wn);
    let s = ratio(relevance, &z);
    // The transposed convolution is the gradient of the forward one; the output padding
    // restores the sizes the stride rounded down.
    let (h, w_in) = (x.size()[2], x.size()[3]);
    let (ho, wo) = (z.size()[2], z.size()[3]);
    let pad = [h - (2 * ho - 1), w_in - (2 * wo - 1)];
    let back = |w: &Tensor| s.conv_transpose2d(w, None::<Tensor>, [2, 2], [1, 1], pad, 1, [1, 1]);
    xp * back(&wp) + xn * back(&wn)
}

impl TorchRelationNet {
    /// The α1β0 saliency of the logits `explained` (`[B]`, answer indices) for images
    /// `[B, 3, H, W]` and questions `[B, q]`, in the network's precision.
    pub fn saliency(
        &self,
        images: &Tensor,
        questions: &Tensor,
        explained: &Tensor,
        batch_norm: BatchNormRelevance,
    ) -> Saliency {
        let _guard = tch::no_grad_guard();
        let batch = images.size()[0];
        let n = self.coordinates.size()[0];
        // The forward pass, keeping each layer's input.
        let mut conv_inputs = Vec::new();
        let mut h = images.shallow_clone();
        for (c, bn) in &self.conv {
            conv_inputs.push(h.shallow_clone());
            h = tch::nn::ModuleT::forward_t(bn, &tch::nn::Module::forward(c, &h), false).relu();
        }
        let objects = self.objects(&h);
        let pair_inputs = pairs(&objects, questions).view([batch * n * n, -1]);
        let mut g_inputs = Vec::new();
        let mut p = pair_inputs.shallow_clone();
        for layer in &self.g {
            g_inputs.push(p.shallow_clone());
            p = tch::nn::Module::forward(layer, &p).relu();
        }
        let g_out = p.view([batch, n * n, -1]);
        let mut s = g_out.sum_dim_intlist(1, false, g_out.kind());
        let mut f_inputs = Vec::new();
        for (k, layer) in self.f.iter().enumerate() {
            f_inputs.push(s.shallow_clone());
            s = tch::nn::Module::forward(layer, &s);
            if k + 1 < self.f.len() {
                s = s.relu();
            }
        }
        let explained = explained.view([batch, 1]);
        let logit = s.gather(1, &explained, false);
        // The backward pass.
        let mut r = s.zeros_like().scatter(1, &explained, &logit);
        for (layer, x) in self.f.iter().zip(&f_inputs).rev() {
            r = linear(x, &layer.ws, &r);
        }
        let sum = g_out.sum_dim_intlist(1, true, g_out.kind());
        let mut r = (&g_out * ratio(&r.unsqueeze(1), &sum)).view([batch * n * n, -1]);
        for (layer, x) in self.g.iter().zip(&g_inputs).rev() {
            r = linear(x, &layer.ws, &r);
        }
        // Back from the pairs to their objects: slot 1 of pair (i, j) is object j, slot 2
        // object i (see `pairs`).
        let r_pairs = r.view([batch, n, n, -1]);
        let kind = r_pairs.kind();
        let first = r_pairs.narrow(3, 0, OBJECT).sum_dim_intlist(1, false, kind);
        let second = r_pairs
            .narrow(3, OBJECT, OBJECT)
            .sum_dim_intlist(2, false, kind);
        let channels = OBJECT - 2;
        let cells = (first + second).narrow(2, 0, channels);
        let kept = cells.sum_dim_intlist(&[1i64, 2][..], false, kind);
        let dropped = r_pairs.sum_dim_intlist(&[1i64, 2, 3][..], false, kind) - kept;
        let side = (n as f64).sqrt().round() as i64;
        let mut r = cells.transpose(1, 2).reshape([batch, channels, side, side]);
        for ((c, bn), x) in self.conv.iter().zip(&conv_inputs).rev() {
            let w = match batch_norm {
                BatchNormRelevance::PassThrough => c.ws.shallow_clone(),
                BatchNormRelevance::Folded => {
                    let gamma = bn.ws.as_ref().expect("batch norm has a scale");
                    let scale = gamma / (&bn.running_var + BATCH_NORM_EPS).sqrt();
                    &c.ws * scale.view([-1, 1, 1, 1])
                }
            };
            r = conv(x, &w, &r);
        }
        Saliency {
            pixels: r,
            dropped,
            logit: logit.view([batch]).to_kind(Kind::Double),
        }
    }
}

/// One map to compute: the image of sample `sample`, the question of sample `question_of`
/// (usually the same), and the explained answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Case {
    /// The drawn sample whose image is explained (an index into the inputs).
    pub sample: usize,
    /// The drawn sample whose question is asked (another one for the derangement, (b)).
    pub question_of: usize,
    /// The network output whose logit is explained.
    pub explained: usize,
}

/// A computed map: each input value's relevance (`[3, H, W]` row-major), the dropped
/// relevance and the explained logit.
#[derive(Clone, Debug, PartialEq)]
pub struct Map {
    /// Each input value's relevance, `[3, H, W]` row-major.
    pub relevance: Vec<f64>,
    /// The relevance of the coordinate and question slices, dropped at `g`'s first layer.
    pub dropped: f64,
    /// The explained logit, the relevance the backward pass starts from.
    pub logit: f64,
}

/// The question vectors `[B, q]` of `questions` (all of one kind) in the network's precision
/// on its device: Sort-of-CLEVR's vectors as they are, CLEVR's words through the network's
/// encoder.
fn question_vectors(net: &TorchRelationNet, questions: &[&QuestionInput]) -> Tensor {
    let device = net.vs.device();
    let (mut vectors, mut words) = (Vec::new(), Vec::new());
    for q in questions {
        match q {
            QuestionInput::Vector(v) => vectors.extend_from_slice(v),
            QuestionInput::Words(w) => words.push(w.as_slice()),
        }
    }
    if words.is_empty() {
        return Tensor::from_slice(&vectors)
            .view([questions.len() as i64, -1])
            .to_kind(net.coordinates.kind())
            .to_device(device);
    }
    let _guard = tch::no_grad_guard();
    net.question_vectors(&question_tokens(&words).to_device(device))
}

/// The saliency maps of `cases` on the drawn samples' `inputs` (images `[3, side, side]`),
/// `batch` at a time, on the network's device and in its precision; `progress` is called
/// with the number of maps done.
pub fn maps(
    net: &TorchRelationNet,
    inputs: &[SampleInputs],
    side: usize,
    cases: &[Case],
    batch: usize,
    batch_norm: BatchNormRelevance,
    mut progress: impl FnMut(usize),
) -> Vec<Map> {
    let device = net.vs.device();
    let kind = net.coordinates.kind();
    let pixels = 3 * side * side;
    let mut out = Vec::with_capacity(cases.len());
    for chunk in cases.chunks(batch.max(1)) {
        let n = chunk.len() as i64;
        let images: Vec<f32> = chunk
            .iter()
            .flat_map(|c| inputs[c.sample].image.iter().copied())
            .collect();
        let questions: Vec<&QuestionInput> = chunk
            .iter()
            .map(|c| &inputs[c.question_of].question)
            .collect();
        let explained: Vec<i64> = chunk.iter().map(|c| c.explained as i64).collect();
        let side = side as i64;
        let s = net.saliency(
            &Tensor::from_slice(&images)
                .view([n, 3, side, side])
                .to_kind(kind)
                .to_device(device),
            &question_vectors(net, &questions),
            &Tensor::from_slice(&explained).to_device(device),
            batch_norm,
        );
        let host = |t: &Tensor| {
            Vec::<f64>::try_from(
                t.to_kind(Kind::Double)
                    .to_device(tch::Device::Cpu)
                    .flatten(0, -1),
            )
            .expect("a float tensor")
        };
        let relevance = host(&s.pixels);
        let dropped = host(&s.dropped);
        let logit = host(&s.logit);
        for k in 0..chunk.len() {
            out.push(Map {
                relevance: relevance[k * pixels..(k + 1) * pixels].to_vec(),
                dropped: dropped[k],
                logit: logit[k],
            });
        }
        progress(chunk.len());
    }
    out
}
