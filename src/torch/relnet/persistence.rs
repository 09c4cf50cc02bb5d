//! Saving and loading a relation network: its weights (safetensors, written whole), and the
//! folder of `rn.json` + `rn.safetensors` (and CLEVR's `vocabulary.json`) that the exact
//! engine reads as well.

use std::path::Path;

use tch::Device;

use super::net::{Task, TorchRelationNet, BATCH_NORM_EPS, BLOCKS, F, G};
use crate::error::{Error, Result};
use crate::model::relnet::{
    BatchNormSpec, ConvSpec, EncoderSpec, LinearSpec, RelationNetwork, RelnetDescription, FORMAT,
    VERSION,
};

impl TorchRelationNet {
    /// Writes the parameters to `path` (safetensors).
    pub fn save_weights(&self, path: &Path) -> Result<()> {
        written_whole(path, |tmp| self.vs.save(tmp))
    }

    /// Writes `rn.safetensors` and its description `rn.json` into `dir` (and CLEVR's
    /// dictionaries, `vocabulary.json`).
    pub fn save(&self, dir: &Path) -> Result<()> {
        self.save_weights(&dir.join("rn.safetensors"))?;
        let mut question_encoder = None;
        if let Task::Clevr { vocabulary } = &self.task {
            let text = serde_json::to_string_pretty(vocabulary).expect("dictionaries serialise");
            crate::io::write_atomic(&dir.join("vocabulary.json"), format!("{text}\n").as_bytes())?;
            question_encoder = Some(EncoderSpec {
                vocabulary: "vocabulary.json".into(),
                embedding: "text.embedding.weight".into(),
                weight_ih: "text.lstm.weight_ih".into(),
                weight_hh: "text.lstm.weight_hh".into(),
                bias_ih: "text.lstm.bias_ih".into(),
                bias_hh: "text.lstm.bias_hh".into(),
            });
        }
        let conv = (0..BLOCKS)
            .map(|k| {
                let bn = format!("conv.{}", 3 * k + 1);
                ConvSpec {
                    weight: format!("conv.{}.weight", 3 * k),
                    bias: None,
                    stride: 2,
                    padding: 1,
                    batch_norm: Some(BatchNormSpec {
                        weight: format!("{bn}.weight"),
                        bias: format!("{bn}.bias"),
                        running_mean: format!("{bn}.running_mean"),
                        running_var: format!("{bn}.running_var"),
                        eps: BATCH_NORM_EPS,
                    }),
                }
            })
            .collect();
        let linear = |name: &str, count: usize| -> Vec<LinearSpec> {
            (0..count)
                .map(|k| LinearSpec {
                    weight: format!("{name}.{k}.weight"),
                    bias: Some(format!("{name}.{k}.bias")),
                })
                .collect()
        };
        let side = self.task.side();
        let description = RelnetDescription {
            format: FORMAT.into(),
            version: VERSION,
            weights: "rn.safetensors".into(),
            image: [3, side, side],
            conv,
            coordinates: None,
            question: self.task.question_width(),
            g: linear("g", self.g.len()),
            f: linear("f", self.f.len()),
            question_encoder,
        };
        description.save(&dir.join("rn.json"))
    }

    /// A network saved by [`Self::save`] in `dir`: a Sort-of-CLEVR network, or a CLEVR one
    /// where the description has a question encoder; a description of another architecture
    /// (image size, question width, outputs, layers) is refused with what it holds.
    pub fn load(dir: &Path, device: Device) -> Result<Self> {
        let path = dir.join("rn.json");
        let described = RelationNetwork::load(&path)?;
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
pub(super) fn written_whole(
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
