//! The question sets `dtdcert relnet sanity` draws from, and what a drawn sample feeds the
//! saliency: a Sort-of-CLEVR set (`relnet generate`; 75×75 images, question vectors, masks
//! per question) and CLEVR-XAI's simple or complex questions (128×128 images preprocessed as
//! the reference does, questions as words for the network's encoder, the ground-truth masks
//! of one kind: 128×128 as released, other sizes resized as CLEVR-XAI's evaluation does).

use std::collections::HashMap;
use std::path::Path;

use super::clevr::{
    answer_group, clevr_xai_questions, load_image, load_mask, xai_question_file, ClevrQuestion,
    Indexed, Vocabulary, XaiQuestions, IMAGE_SIDE,
};
use super::resize::resize_mask;
use super::sanity_report::{plan, Drawn, Sample};
use super::sort_of_clevr::{Loaded, ANSWERS, QUESTION_WIDTH, SIZE};
use crate::error::{Error, Result};

/// A question as the network reads it.
#[derive(Clone, Debug, PartialEq)]
pub enum QuestionInput {
    /// Sort-of-CLEVR's binary vector.
    Vector(Vec<f32>),
    /// CLEVR's word indices, in reading order, for the question encoder.
    Words(Vec<usize>),
}

/// What one drawn sample feeds the saliency.
#[derive(Clone, Debug, PartialEq)]
pub struct SampleInputs {
    /// `[3, side, side]`, as the network reads it.
    pub image: Vec<f32>,
    /// The question, as a vector or as words.
    pub question: QuestionInput,
    /// `side × side`, nonzero on the objects the question is about (all zero for a question
    /// without a mask).
    pub mask: Vec<u8>,
}

/// A question set the sanity check draws from.
pub trait SanitySet {
    /// The side of the (square) images and masks.
    fn side(&self) -> usize;
    /// How many questions the set holds to draw from.
    fn num_questions(&self) -> usize;
    /// Draws `count` samples ([`plan`]).
    fn plan(&self, count: usize, seed: u64) -> Result<Vec<Sample>>;
    /// A drawn sample's image, question and mask.
    fn inputs(&self, sample: &Sample) -> Result<SampleInputs>;
    /// An image as [`SampleInputs::image`] holds it, as 8-bit RGB (`side × side × 3`).
    fn image_bytes(&self, image: &[f32]) -> Vec<u8>;
}

/// Channels-first values to 8-bit RGB rows, `byte` mapping each value.
fn interleaved(image: &[f32], byte: impl Fn(f32) -> f32) -> Vec<u8> {
    let pixels = image.len() / 3;
    (0..pixels)
        .flat_map(|p| (0..3).map(move |c| p + c * pixels))
        .map(|i| byte(image[i]).round().clamp(0.0, 255.0) as u8)
        .collect()
}

/// The answers of the same category as Sort-of-CLEVR's `answer`: yes/no, the shapes, the
/// counts.
pub fn category(answer: usize) -> std::ops::Range<usize> {
    match answer {
        0 | 1 => 0..2,
        2 | 3 => 2..4,
        _ => 4..ANSWERS.len(),
    }
}

impl SanitySet for Loaded {
    fn side(&self) -> usize {
        SIZE
    }

    fn num_questions(&self) -> usize {
        Loaded::num_questions(self)
    }

    fn plan(&self, count: usize, seed: u64) -> Result<Vec<Sample>> {
        let describe = |q: usize| {
            let answer = self.answers[q];
            Ok(Drawn {
                id: q,
                image: self.image_of[q],
                image_file: None,
                question_type: Some(self.subtypes[q].name().into()),
                text: None,
                answer,
                others: category(answer).filter(|&a| a != answer).collect(),
            })
        };
        plan(self.answers.len(), count, seed, describe, |a| {
            ANSWERS[a].into()
        })
    }

    fn inputs(&self, sample: &Sample) -> Result<SampleInputs> {
        let q = sample.position;
        let pixels = 3 * SIZE * SIZE;
        let i = self.image_of[q];
        Ok(SampleInputs {
            image: self.images[i * pixels..(i + 1) * pixels].to_vec(),
            question: QuestionInput::Vector(
                self.questions[q * QUESTION_WIDTH..(q + 1) * QUESTION_WIDTH].to_vec(),
            ),
            mask: self.mask(q)?,
        })
    }

    fn image_bytes(&self, image: &[f32]) -> Vec<u8> {
        interleaved(image, |v| v * 255.0)
    }
}

/// CLEVR-XAI's questions of one set with the masks of one ground-truth kind, indexed with a
/// network's dictionaries.
pub struct XaiSet {
    questions: Vec<ClevrQuestion>,
    words: Vec<Vec<usize>>,
    answers: Vec<usize>,
    image_index: Vec<usize>,
    /// The answers by output.
    names: HashMap<usize, String>,
    /// Per answer output, the outputs of the other answers of its category.
    others: HashMap<usize, Vec<usize>>,
}

impl XaiSet {
    /// Reads the questions of `set` under `root` with the masks of `ground_truth`
    /// ([`clevr_xai_questions`]) and indexes them with `vocabulary`: a word or an answer
    /// outside it, or a question without an answer, is an error naming the question file and
    /// the question.
    pub fn load(
        root: &Path,
        set: XaiQuestions,
        ground_truth: &str,
        images: Option<&Path>,
        vocabulary: &Vocabulary,
    ) -> Result<Self> {
        let file = xai_question_file(root, set);
        let questions = clevr_xai_questions(root, set, ground_truth, images)?;
        let Indexed {
            words,
            answers,
            image_index,
        } = Indexed::new(&questions, vocabulary).map_err(|e| e.in_file(&file))?;
        let names: HashMap<usize, String> = vocabulary
            .answers
            .iter()
            .map(|(a, &k)| (k, a.clone()))
            .collect();
        let others: HashMap<usize, Vec<usize>> = names
            .iter()
            .map(|(&k, name)| {
                let group = answer_group(name).unwrap_or(&[]);
                let mut same: Vec<usize> = group
                    .iter()
                    .filter(|&&a| a != name)
                    .filter_map(|a| vocabulary.answers.get(*a).copied())
                    .collect();
                same.sort_unstable();
                (k, same)
            })
            .collect();
        // (a) needs another answer of each question's category: checked for every question,
        // so the outcome does not depend on which are drawn.
        for (q, a) in questions.iter().zip(&answers) {
            if others[a].is_empty() {
                let name = &names[a];
                let problem = if answer_group(name).is_none() {
                    format!("the answer '{name}' is not one of CLEVR's 28 answers")
                } else {
                    format!(
                        "the model's dictionary holds no other answer of the category of \
                         '{name}'"
                    )
                };
                return Err(Error::file(
                    &file,
                    format!("question {}: {problem}", q.index),
                ));
            }
        }
        Ok(Self {
            questions,
            words,
            answers,
            image_index,
            names,
            others,
        })
    }
}

impl XaiSet {
    /// The folder the images were found in.
    pub fn image_folder(&self) -> Option<&Path> {
        self.questions.first().and_then(|q| q.image.parent())
    }
}

impl SanitySet for XaiSet {
    fn side(&self) -> usize {
        IMAGE_SIDE
    }

    fn num_questions(&self) -> usize {
        self.questions.len()
    }

    fn plan(&self, count: usize, seed: u64) -> Result<Vec<Sample>> {
        let describe = |q: usize| {
            let question = &self.questions[q];
            let answer = self.answers[q];
            Ok(Drawn {
                id: question.index,
                image: self.image_index[q],
                image_file: question
                    .image
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned()),
                question_type: question.category.map(|c| c.name().into()),
                text: Some(question.text.clone()),
                answer,
                others: self.others[&answer].clone(),
            })
        };
        plan(self.questions.len(), count, seed, describe, |a| {
            self.names[&a].clone()
        })
    }

    fn inputs(&self, sample: &Sample) -> Result<SampleInputs> {
        let q = sample.position;
        let question = &self.questions[q];
        let image = load_image(&question.image)?;
        let pixels = IMAGE_SIDE * IMAGE_SIDE;
        let mask = match &question.mask {
            None => vec![0; pixels],
            Some(path) => {
                let m = load_mask(path)?;
                let cells: Vec<bool> = m.iter().copied().collect();
                let side = (IMAGE_SIDE, IMAGE_SIDE);
                let cells = if m.dim() == side {
                    cells
                } else {
                    resize_mask(&cells, m.dim(), side)
                };
                cells.into_iter().map(u8::from).collect()
            }
        };
        Ok(SampleInputs {
            image: image.iter().copied().collect(),
            question: QuestionInput::Words(self.words[q].clone()),
            mask,
        })
    }

    fn image_bytes(&self, image: &[f32]) -> Vec<u8> {
        interleaved(image, |v| (v + 1.0) * 127.5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repro::sort_of_clevr::Subtype;

    #[test]
    fn subtype_names_are_their_serialised_names() {
        for s in Subtype::ALL {
            assert_eq!(serde_json::to_value(s).unwrap(), s.name());
        }
    }

    #[test]
    fn images_interleave_channels() {
        // Two pixels: channel planes [r0 r1 | g0 g1 | b0 b1].
        let image = [0.0, 1.0, 0.5, 0.25, 1.0, 0.0];
        assert_eq!(
            interleaved(&image, |v| v * 255.0),
            [0, 128, 255, 255, 64, 0]
        );
        assert_eq!(
            interleaved(&[-1.0, 1.0, 2.0], |v| (v + 1.0) * 127.5),
            [0, 255, 255]
        );
    }
}
