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
//!
//! The network and its forward pass are in `net`, saving and loading in `persistence`, the
//! question sets in `data`, Adam and the learning-rate schedules in `optimiser`, the
//! training and evaluation runs in `training`, and the sanity check of its saliency in
//! `sanity`.

mod data;
mod net;
mod optimiser;
mod persistence;
mod sanity;
mod training;

pub use data::{ClevrDeviceSet, DeviceSet, QuestionSet};
pub(super) use net::{pairs, BATCH_NORM_EPS, OBJECT};
pub use net::{question_tokens, Task, TorchRelationNet, CLEVR_OUTPUTS, EMBEDDING, LSTM};
pub use optimiser::{clip_scale, Adam, Schedule, TrainSettings};
pub use sanity::{sanity, SanityReport, SanityRun};
pub use training::{
    evaluate, evaluate_saved, train, train_epoch, Accuracy, EvaluationRun, Trained, TrainingRun,
    TypeAccuracy,
};
