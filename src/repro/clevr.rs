//! CLEVR v1.0 and CLEVR-XAI v1.0, read from folders the user gives: question files, images
//! (decoded and preprocessed as the reference pipeline does: Pillow's bilinear resize to
//! 128×128, then scaled to [−1, 1]), ground-truth masks, and the reference tokenizer and
//! 1-based dictionaries.
//!
//! Layouts:
//! - CLEVR v1.0: `ROOT/questions/CLEVR_{split}_questions.json`,
//!   `ROOT/images/{split}/CLEVR_{split}_NNNNNN.png`.
//! - CLEVR-XAI v1.0: `ROOT/CLEVR-XAI_{simple,complex}_questions.json`,
//!   `ROOT/ground_truth_{simple,complex}_questions_{KIND}/{question_index}.npy` (bool 2-D; a
//!   question without target objects has none), and the images in `ROOT/images/` or, as the
//!   release unpacks, `ROOT/../CLEVR-XAI_v1.0_images_masks/images/`.

use std::collections::{BTreeSet, HashMap};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use ndarray::{Array2, Array3};
use serde::Deserialize;
use serde_json::Value;

use super::resize::resize_bilinear;
use crate::error::{Error, Result};

/// The side of a preprocessed image.
pub const IMAGE_SIDE: usize = 128;

/// One question of a question file.
#[derive(Clone, Debug, PartialEq)]
pub struct Question {
    /// `question_index` (the position in the file where there is none).
    pub index: usize,
    /// The image file.
    pub image: PathBuf,
    pub text: String,
    /// The answer in lower case (`yes`/`no` for CLEVR-XAI's booleans, digits for its
    /// integers); `None` in CLEVR's test split.
    pub answer: Option<String>,
    pub family: Option<usize>,
    /// The ground-truth mask file (CLEVR-XAI), where the question has one.
    pub mask: Option<PathBuf>,
}

/// A question file's entry, as far as it is read.
#[derive(Deserialize)]
struct Entry {
    image_filename: String,
    question: String,
    #[serde(default)]
    answer: Option<Value>,
    #[serde(default)]
    question_index: Option<usize>,
    #[serde(default)]
    question_family_index: Option<usize>,
}

#[derive(Deserialize)]
struct QuestionFile {
    questions: Vec<Entry>,
}

fn read_questions(path: &Path) -> Result<Vec<Entry>> {
    let file = std::fs::File::open(path)
        .map_err(|e| Error::file(path, format!("cannot read the question file: {e}")))?;
    let parsed: QuestionFile = serde_json::from_reader(BufReader::new(file))
        .map_err(|e| Error::file(path, format!("not a CLEVR question file: {e}")))?;
    Ok(parsed.questions)
}

/// An answer as text: strings in lower case, booleans as yes/no, integers as digits.
fn answer_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.to_lowercase()),
        Value::Bool(b) => Some(if *b { "yes" } else { "no" }.into()),
        Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}

/// The questions of `entries` with their images in `images`; every image must exist.
fn questions(path: &Path, entries: Vec<Entry>, images: &Path) -> Result<Vec<Question>> {
    let mut out = Vec::with_capacity(entries.len());
    for (position, e) in entries.into_iter().enumerate() {
        let answer = match &e.answer {
            None | Some(Value::Null) => None,
            Some(v) => Some(answer_text(v).ok_or_else(|| {
                Error::file(
                    path,
                    format!(
                        "questions[{position}]: the answer {v} is not a string, boolean or integer"
                    ),
                )
            })?),
        };
        if e.image_filename.contains('/') || e.image_filename.contains('\\') {
            return Err(Error::file(
                path,
                format!(
                    "questions[{position}]: image_filename '{}' is not a file name",
                    e.image_filename
                ),
            ));
        }
        out.push(Question {
            index: e.question_index.unwrap_or(position),
            image: images.join(&e.image_filename),
            text: e.question,
            answer,
            family: e.question_family_index,
            mask: None,
        });
    }
    let distinct: BTreeSet<&PathBuf> = out.iter().map(|q| &q.image).collect();
    if let Some(missing) = distinct.into_iter().find(|p| !p.is_file()) {
        return Err(Error::file(
            missing,
            format!("missing: an image that {} names", path.display()),
        ));
    }
    Ok(out)
}

/// The questions of CLEVR v1.0's `split` (train, val or test) under `root`.
pub fn clevr_questions(root: &Path, split: &str) -> Result<Vec<Question>> {
    if !["train", "val", "test"].contains(&split) {
        return Err(Error::Usage(format!(
            "CLEVR split '{split}': expected train, val or test"
        )));
    }
    let path = root
        .join("questions")
        .join(format!("CLEVR_{split}_questions.json"));
    let entries = read_questions(&path)?;
    questions(&path, entries, &root.join("images").join(split))
}

/// CLEVR-XAI's two question sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XaiQuestions {
    Simple,
    Complex,
}

impl XaiQuestions {
    fn name(self) -> &'static str {
        match self {
            XaiQuestions::Simple => "simple",
            XaiQuestions::Complex => "complex",
        }
    }
}

/// The questions of CLEVR-XAI under `root`, with the masks of ground truth `kind`
/// (`single_object` or `all_objects` for the simple questions; `unique`,
/// `unique_firstnonempty`, `union` or `all_objects` for the complex ones). `images`: the
/// image folder, by default `root/images` or the release's sibling folder.
pub fn clevr_xai_questions(
    root: &Path,
    set: XaiQuestions,
    kind: &str,
    images: Option<&Path>,
) -> Result<Vec<Question>> {
    let path = root.join(format!("CLEVR-XAI_{}_questions.json", set.name()));
    let entries = read_questions(&path)?;
    let images = match images {
        Some(dir) => dir.to_path_buf(),
        None => {
            let inside = root.join("images");
            let sibling = root
                .parent()
                .map(|p| p.join("CLEVR-XAI_v1.0_images_masks").join("images"));
            match sibling {
                Some(s) if !inside.is_dir() && s.is_dir() => s,
                _ => inside,
            }
        }
    };
    if !images.is_dir() {
        return Err(Error::file(&images, "missing: the CLEVR-XAI image folder"));
    }
    let masks = root.join(format!("ground_truth_{}_questions_{kind}", set.name()));
    if !masks.is_dir() {
        return Err(Error::file(
            &masks,
            "missing: the ground-truth folder of this question set and kind",
        ));
    }
    let mut out = questions(&path, entries, &images)?;
    for q in &mut out {
        let file = masks.join(format!("{}.npy", q.index));
        q.mask = file.is_file().then_some(file);
    }
    Ok(out)
}

/// A PNG's pixels as 8-bit RGB (`height × width × 3`): palettes expanded, 16-bit reduced to
/// its high byte, grey replicated, alpha dropped (as Pillow's `convert("RGB")` does for
/// images without transparency to composite).
pub fn read_png_rgb(path: &Path) -> Result<(Vec<u8>, usize, usize)> {
    let bad = |e: &dyn std::fmt::Display| Error::file(path, format!("not a readable PNG: {e}"));
    let file = std::fs::File::open(path)
        .map_err(|e| Error::file(path, format!("cannot read the image: {e}")))?;
    let mut decoder = png::Decoder::new(BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info().map_err(|e| bad(&e))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| Error::file(path, "an image too large to decode"))?;
    let mut buf = vec![0; size];
    let info = reader.next_frame(&mut buf).map_err(|e| bad(&e))?;
    buf.truncate(info.buffer_size());
    let (w, h) = (info.width as usize, info.height as usize);
    let channels = match info.color_type {
        png::ColorType::Grayscale => 1,
        png::ColorType::GrayscaleAlpha => 2,
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        png::ColorType::Indexed => return Err(Error::file(path, "a palette left unexpanded")),
    };
    let rgb = buf
        .chunks_exact(channels)
        .flat_map(|px| match channels {
            1 | 2 => [px[0], px[0], px[0]],
            _ => [px[0], px[1], px[2]],
        })
        .collect();
    Ok((rgb, h, w))
}

/// An image as the network reads it: resized to 128×128 (Pillow's bilinear resize), scaled
/// to [−1, 1] (`v / 127.5 − 1`), channels first (`3 × 128 × 128`).
pub fn load_image(path: &Path) -> Result<Array3<f32>> {
    let (rgb, h, w) = read_png_rgb(path)?;
    let small = resize_bilinear(&rgb, (h, w, 3), (IMAGE_SIDE, IMAGE_SIDE));
    Ok(Array3::from_shape_fn(
        (3, IMAGE_SIDE, IMAGE_SIDE),
        |(c, y, x)| f32::from(small[(y * IMAGE_SIDE + x) * 3 + c]) / 127.5 - 1.0,
    ))
}

/// A ground-truth mask: a 2-D bool array.
pub fn load_mask(path: &Path) -> Result<Array2<bool>> {
    let array: ndarray::ArrayD<bool> = ndarray_npy::read_npy(path)
        .map_err(|e| Error::file(path, format!("not a bool .npy mask: {e}")))?;
    let shape = array.shape().to_vec();
    array.into_dimensionality().map_err(|_| {
        Error::file(
            path,
            format!("a mask must be 2-D (height × width), not of shape {shape:?}"),
        )
    })
}

/// The reference tokenizer: punctuation `.,;:!?()` split off as tokens, whitespace
/// collapsed, lower case.
pub fn tokenize(sentence: &str) -> Vec<String> {
    let mut spaced = String::with_capacity(sentence.len() + 8);
    for ch in sentence.chars() {
        if ".,;:!?()".contains(ch) {
            spaced.push(' ');
            spaced.push(ch);
            spaced.push(' ');
        } else {
            spaced.push(ch);
        }
    }
    spaced.split_whitespace().map(str::to_lowercase).collect()
}

/// Word and answer dictionaries, 1-based in order of first appearance, as the reference
/// builds them: 0 pads a question, and the reference network's 29 outputs hold CLEVR's 28
/// answers at 1..=28.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Vocabulary {
    pub words: HashMap<String, usize>,
    pub answers: HashMap<String, usize>,
}

impl Vocabulary {
    /// The dictionaries of `questions` (the training questions).
    pub fn build(questions: &[Question]) -> Self {
        let mut v = Vocabulary::default();
        for q in questions {
            for word in tokenize(&q.text) {
                let next = v.words.len() + 1;
                v.words.entry(word).or_insert(next);
            }
            if let Some(a) = &q.answer {
                let next = v.answers.len() + 1;
                v.answers.entry(a.clone()).or_insert(next);
            }
        }
        v
    }

    /// A question's word indices; a word outside the dictionary is an error naming it.
    pub fn encode(&self, question: &Question) -> Result<Vec<usize>> {
        tokenize(&question.text)
            .into_iter()
            .map(|w| {
                self.words.get(&w).copied().ok_or_else(|| {
                    crate::error::invalid(format!(
                        "question {}: the word '{w}' is not in the dictionary",
                        question.index
                    ))
                })
            })
            .collect()
    }
}
