//! The questions a relation network trains and is evaluated on ([`QuestionSet`]): a
//! Sort-of-CLEVR set's tensors on a device, or a CLEVR split whose batches are built (and
//! augmented) on the CPU and sent to a device; and a CLEVR split read for them.

use std::path::Path;

use tch::{Device, Tensor};

use super::net::question_tokens;
use crate::error::Result;
use crate::io::progress_bar;
use crate::repro::clevr::{
    clevr_question_file, clevr_questions, ClevrQuestion, ClevrSet, Vocabulary, IMAGE_SIDE,
};
use crate::repro::sort_of_clevr::{Kind as QuestionKind, Loaded, Subtype, QUESTION_WIDTH, SIZE};

/// Questions a network trains and is evaluated on.
pub trait QuestionSet {
    /// The number of images the questions are asked about.
    fn num_images(&self) -> usize;
    /// The number of questions; a batch's indices are below it.
    fn num_questions(&self) -> usize;
    /// Images, questions and answers of the questions `idx`, on the set's device; with
    /// `augment`, each image augmented from that generator's draws.
    fn batch(
        &self,
        idx: &[usize],
        augment: Option<&mut rand_chacha::ChaCha8Rng>,
    ) -> (Tensor, Tensor, Tensor);
    /// The device the batches are sent to.
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
    /// Copies the set's images, questions and answers to `device` once.
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

    /// Sort-of-CLEVR is not augmented: `augment` is ignored
    /// ([`super::TrainSettings::augment`] is refused for it before training).
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
    data: &'a ClevrSet,
    device: Device,
}

impl<'a> ClevrDeviceSet<'a> {
    /// The split `data`, its batches sent to `device` as they are built.
    pub fn new(data: &'a ClevrSet, device: Device) -> Self {
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

/// A CLEVR split encoded with `vocabulary` (`questions`: the split's questions where they are
/// read already), its images decoded with a progress bar unless `quiet`.
pub(super) fn clevr_split(
    root: &Path,
    split: &str,
    questions: Option<Vec<ClevrQuestion>>,
    vocabulary: &Vocabulary,
    images: Option<usize>,
    quiet: bool,
) -> Result<ClevrSet> {
    let questions = match questions {
        Some(q) => q,
        None => clevr_questions(root, split)?,
    };
    let distinct = questions
        .iter()
        .map(|q| &q.image)
        .collect::<std::collections::HashSet<_>>()
        .len();
    let bar = progress_bar(
        images.map_or(distinct, |n| n.min(distinct)) as u64,
        &format!("{{bar:40}} {{pos}}/{{len}} {split} images decoded, ETA {{eta}}"),
        !quiet,
    );
    let set = ClevrSet::encode(&questions, vocabulary, images, || bar.inc(1))
        .map_err(|e| e.in_file(clevr_question_file(root, split)))?;
    bar.finish_and_clear();
    Ok(set)
}
