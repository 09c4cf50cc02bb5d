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
pub use crate::model::vocabulary::{tokenize, Vocabulary};

/// The side of a preprocessed image.
pub const IMAGE_SIDE: usize = 128;

/// One question of a question file.
#[derive(Clone, Debug, PartialEq)]
pub struct ClevrQuestion {
    /// `question_index` (the position in the file where there is none).
    pub index: usize,
    /// The image file.
    pub image: PathBuf,
    /// The question as written (`question`), not yet tokenized.
    pub text: String,
    /// The answer in lower case (`yes`/`no` for CLEVR-XAI's booleans, digits for its
    /// integers); `None` in CLEVR's test split.
    pub answer: Option<String>,
    /// `question_family_index`, where the file has it.
    pub family: Option<usize>,
    /// The question type of CLEVR's evaluation, from the program's last function (see
    /// [`Category`]); `None` where the file has no program.
    pub category: Option<Category>,
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
    #[serde(default)]
    program: Option<Vec<Step>>,
}

/// One function of a question's program (`function` in CLEVR v1.0, `type` in later files).
#[derive(Deserialize)]
struct Step {
    #[serde(default, alias = "type")]
    function: Option<String>,
}

/// CLEVR's five question types, by the function that gives the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Category {
    /// `exist`: yes or no.
    Exist,
    /// `count`: a number.
    Count,
    /// `equal_integer`, `less_than`, `greater_than`: yes or no.
    CompareInteger,
    /// `equal_*` (colour, shape, material, size): yes or no.
    CompareAttribute,
    /// `query_*`: a colour, shape, material or size.
    QueryAttribute,
}

impl Category {
    /// All five types, in declaration order.
    pub const ALL: [Category; 5] = [
        Category::Exist,
        Category::Count,
        Category::CompareInteger,
        Category::CompareAttribute,
        Category::QueryAttribute,
    ];

    /// The type of a program whose last function is `function`.
    pub fn of(function: &str) -> Option<Self> {
        Some(match function {
            "exist" => Category::Exist,
            "count" => Category::Count,
            "equal_integer" | "less_than" | "greater_than" => Category::CompareInteger,
            f if f.starts_with("equal_") => Category::CompareAttribute,
            f if f.starts_with("query_") => Category::QueryAttribute,
            _ => return None,
        })
    }

    /// The type's name in reports (`exist`, `count`, `compare-integer`, …).
    pub fn name(self) -> &'static str {
        match self {
            Category::Exist => "exist",
            Category::Count => "count",
            Category::CompareInteger => "compare-integer",
            Category::CompareAttribute => "compare-attribute",
            Category::QueryAttribute => "query-attribute",
        }
    }
}

/// CLEVR's 28 answers by category: yes/no, the counts, the colours, the shapes, the
/// materials and the sizes.
pub const ANSWER_GROUPS: [&[&str]; 6] = [
    &["yes", "no"],
    &["0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"],
    &[
        "gray", "red", "blue", "green", "brown", "purple", "cyan", "yellow",
    ],
    &["cube", "sphere", "cylinder"],
    &["rubber", "metal"],
    &["small", "large"],
];

/// The answers of `answer`'s category ([`ANSWER_GROUPS`]), `answer` included; `None` for
/// an answer outside CLEVR's.
pub fn answer_group(answer: &str) -> Option<&'static [&'static str]> {
    ANSWER_GROUPS.into_iter().find(|g| g.contains(&answer))
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
fn questions(path: &Path, entries: Vec<Entry>, images: &Path) -> Result<Vec<ClevrQuestion>> {
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
        out.push(ClevrQuestion {
            index: e.question_index.unwrap_or(position),
            image: images.join(&e.image_filename),
            text: e.question,
            answer,
            family: e.question_family_index,
            category: e
                .program
                .as_ref()
                .and_then(|p| p.last())
                .and_then(|s| s.function.as_deref())
                .and_then(Category::of),
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

/// The question file of CLEVR v1.0's `split` under `root`.
pub fn clevr_question_file(root: &Path, split: &str) -> PathBuf {
    root.join("questions")
        .join(format!("CLEVR_{split}_questions.json"))
}

/// The questions of CLEVR v1.0's `split` (train, val or test) under `root`.
pub fn clevr_questions(root: &Path, split: &str) -> Result<Vec<ClevrQuestion>> {
    if !["train", "val", "test"].contains(&split) {
        return Err(Error::Usage(format!(
            "CLEVR split '{split}': expected train, val or test"
        )));
    }
    let path = clevr_question_file(root, split);
    let entries = read_questions(&path)?;
    questions(&path, entries, &root.join("images").join(split))
}

/// CLEVR-XAI's two question sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XaiQuestions {
    /// `CLEVR-XAI_simple_questions.json`.
    Simple,
    /// `CLEVR-XAI_complex_questions.json`.
    Complex,
}

impl XaiQuestions {
    /// `simple` or `complex`, as in the file and folder names.
    pub fn name(self) -> &'static str {
        match self {
            XaiQuestions::Simple => "simple",
            XaiQuestions::Complex => "complex",
        }
    }

    /// `simple` or `complex`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "simple" => Ok(XaiQuestions::Simple),
            "complex" => Ok(XaiQuestions::Complex),
            _ => Err(Error::Usage(format!(
                "CLEVR-XAI questions '{s}': expected simple or complex"
            ))),
        }
    }

    /// The ground truth the sanity check reads by default: `single_object` for the simple
    /// questions, `unique` for the complex ones.
    pub fn default_ground_truth(self) -> &'static str {
        match self {
            XaiQuestions::Simple => "single_object",
            XaiQuestions::Complex => "unique",
        }
    }
}

/// The question file of CLEVR-XAI's question set `set` under `root`.
pub fn xai_question_file(root: &Path, set: XaiQuestions) -> PathBuf {
    root.join(format!("CLEVR-XAI_{}_questions.json", set.name()))
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
) -> Result<Vec<ClevrQuestion>> {
    let path = xai_question_file(root, set);
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

/// Building a vocabulary from CLEVR questions, and indexing them with it.
impl Vocabulary {
    /// The dictionaries of `questions` (the training questions).
    pub fn build(questions: &[ClevrQuestion]) -> Self {
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
    pub fn encode(&self, question: &ClevrQuestion) -> Result<Vec<usize>> {
        self.words_of(&question.text).map_err(|w| {
            crate::error::invalid(format!(
                "question {}: the word '{w}' is not in the dictionary",
                question.index
            ))
        })
    }

    /// A question's answer index; a question without an answer (`none`: how the message
    /// says so) or with one outside the dictionary (`dictionary`: its name in the message)
    /// is an error naming the question.
    pub fn answer(&self, question: &ClevrQuestion, none: &str, dictionary: &str) -> Result<usize> {
        let answer = question.answer.as_deref().ok_or_else(|| {
            crate::error::invalid(format!("question {}: no answer{none}", question.index))
        })?;
        self.answers.get(answer).copied().ok_or_else(|| {
            crate::error::invalid(format!(
                "question {}: the answer '{answer}' is not in {dictionary}",
                question.index
            ))
        })
    }
}

/// Questions indexed with a model's dictionaries: per question its word indices, its answer's
/// index and its image's index among the distinct images (in order of first appearance).
#[derive(Clone, Debug, PartialEq)]
pub struct Indexed {
    /// Per question, its words' 1-based indices in order.
    pub words: Vec<Vec<usize>>,
    /// Per question, its answer's 1-based index.
    pub answers: Vec<usize>,
    /// Per question, the 0-based index of its image among the distinct images.
    pub image_index: Vec<usize>,
}

impl Indexed {
    /// Indexes `questions` with `vocabulary` (a word or an answer outside it, or a question
    /// without an answer, is an error naming the question).
    pub fn new(questions: &[ClevrQuestion], vocabulary: &Vocabulary) -> Result<Self> {
        let mut words = Vec::with_capacity(questions.len());
        let mut answers = Vec::with_capacity(questions.len());
        let mut image_index = Vec::with_capacity(questions.len());
        let mut images: HashMap<&Path, usize> = HashMap::new();
        for q in questions {
            words.push(vocabulary.encode(q)?);
            answers.push(vocabulary.answer(q, "", "the model's dictionary")?);
            let next = images.len();
            image_index.push(*images.entry(q.image.as_path()).or_insert(next));
        }
        Ok(Self {
            words,
            answers,
            image_index,
        })
    }
}

/// The bytes of one preprocessed image: `128 × 128 × 3` (rows, columns, RGB), resized as
/// [`load_image`] resizes, before the scaling to [−1, 1].
pub const IMAGE_BYTES: usize = IMAGE_SIDE * IMAGE_SIDE * 3;

/// A CLEVR split held for training or evaluation: its images resized (8-bit, `IMAGE_BYTES`
/// each), and per question its image, its words' indices, its answer's index and its type.
#[derive(Clone, Debug, Default)]
pub struct ClevrSet {
    /// Every image's bytes ([`IMAGE_BYTES`] each: rows, columns, RGB), one after the other.
    pub images: Vec<u8>,
    /// Per question, the 0-based index of its image in `images`.
    pub image_of: Vec<usize>,
    /// The words' 1-based indices, in the question's order.
    pub tokens: Vec<Vec<usize>>,
    /// The answer's 1-based index (`Vocabulary::answers`).
    pub answers: Vec<usize>,
    /// Per question, its type; `None` where the file has no program.
    pub categories: Vec<Option<Category>>,
}

impl ClevrSet {
    /// The questions of `questions` on their first `limit` distinct images (all where
    /// `None`), encoded with `vocabulary`; the images are decoded and resized in parallel,
    /// `progress` called with each image done.
    pub fn encode(
        questions: &[ClevrQuestion],
        vocabulary: &Vocabulary,
        limit: Option<usize>,
        progress: impl Fn() + Sync,
    ) -> Result<Self> {
        use rayon::prelude::*;
        let mut image_index: HashMap<&Path, usize> = HashMap::new();
        let mut paths: Vec<&Path> = Vec::new();
        let mut set = ClevrSet::default();
        for q in questions {
            let next = paths.len();
            let i = match image_index.get(q.image.as_path()) {
                Some(&i) => i,
                None if limit.is_some_and(|n| next >= n) => continue,
                None => {
                    image_index.insert(&q.image, next);
                    paths.push(&q.image);
                    next
                }
            };
            let index = vocabulary.answer(q, " (CLEVR's test split has none)", "the dictionary")?;
            set.image_of.push(i);
            set.tokens.push(vocabulary.encode(q)?);
            set.answers.push(index);
            set.categories.push(q.category);
        }
        let decoded: Vec<Vec<u8>> = paths
            .par_iter()
            .map(|path| {
                let (rgb, h, w) = read_png_rgb(path)?;
                progress();
                Ok(resize_bilinear(&rgb, (h, w, 3), (IMAGE_SIDE, IMAGE_SIDE)))
            })
            .collect::<Result<_>>()?;
        set.images = decoded.concat();
        Ok(set)
    }

    /// The number of distinct images held.
    pub fn num_images(&self) -> usize {
        self.images.len() / IMAGE_BYTES
    }

    /// The number of questions held.
    pub fn num_questions(&self) -> usize {
        self.answers.len()
    }

    /// Image `i`'s bytes.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.images[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES]
    }
}

/// The reference training's augmentation of a resized image (`side × side × 3`): padded by
/// 4 black pixels on every side, cropped back to `side × side` at offset `(dx, dy)` (each
/// in `0..=8`), then rotated by `degrees` about the centre, nearest neighbour, black where
/// the rotation leaves the image (torchvision's `Pad(4)`, `RandomCrop`, `RandomRotation`).
pub fn augment(image: &[u8], side: usize, dx: usize, dy: usize, degrees: f64) -> Vec<u8> {
    let (sin, cos) = degrees.to_radians().sin_cos();
    let centre = side as f64 / 2.0;
    let mut out = vec![0u8; image.len()];
    for y in 0..side {
        for x in 0..side {
            // The output pixel's centre, rotated back into the crop (counter-clockwise
            // rotation of the content by `degrees`, the image's y axis pointing down).
            let (u, v) = (x as f64 + 0.5 - centre, y as f64 + 0.5 - centre);
            let sx = cos * u - sin * v + centre;
            let sy = sin * u + cos * v + centre;
            let (cx, cy) = (sx.floor() as i64, sy.floor() as i64);
            // Crop coordinates to the unpadded image's.
            let (ix, iy) = (cx + dx as i64 - 4, cy + dy as i64 - 4);
            let inside =
                |c: i64, i: i64| (0..side as i64).contains(&c) && (0..side as i64).contains(&i);
            if inside(cx, ix) && inside(cy, iy) {
                let from = (iy as usize * side + ix as usize) * 3;
                let to = (y * side + x) * 3;
                out[to..to + 3].copy_from_slice(&image[from..from + 3]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(side: usize) -> Vec<u8> {
        (0..side * side * 3).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn the_answer_groups_hold_the_28_answers_once() {
        let all: Vec<&str> = ANSWER_GROUPS
            .iter()
            .flat_map(|g| g.iter().copied())
            .collect();
        assert_eq!(all.len(), 28);
        let distinct: BTreeSet<&str> = all.iter().copied().collect();
        assert_eq!(distinct.len(), 28);
        assert_eq!(answer_group("metal"), Some(&["rubber", "metal"][..]));
        assert_eq!(answer_group("10").map(<[_]>::len), Some(11));
        assert_eq!(answer_group("Metal"), None);
        assert_eq!(answer_group("square"), None);
    }

    #[test]
    fn question_types_follow_the_last_function() {
        assert_eq!(Category::of("exist"), Some(Category::Exist));
        assert_eq!(Category::of("count"), Some(Category::Count));
        for f in ["equal_integer", "less_than", "greater_than"] {
            assert_eq!(Category::of(f), Some(Category::CompareInteger), "{f}");
        }
        for f in ["equal_color", "equal_shape", "equal_size", "equal_material"] {
            assert_eq!(Category::of(f), Some(Category::CompareAttribute), "{f}");
        }
        for f in ["query_color", "query_shape", "query_size", "query_material"] {
            assert_eq!(Category::of(f), Some(Category::QueryAttribute), "{f}");
        }
        assert_eq!(Category::of("filter_color"), None);
        assert_eq!(Category::of("scene"), None);
    }

    #[test]
    fn the_centred_crop_without_rotation_is_the_image() {
        let image = gradient(16);
        assert_eq!(augment(&image, 16, 4, 4, 0.0), image);
    }

    #[test]
    fn a_crop_offset_shifts_the_image_and_fills_black() {
        let side = 16;
        let image = gradient(side);
        // dx = 6: the crop starts 2 pixels right of the image, so output x shows input x + 2.
        let out = augment(&image, side, 6, 1, 0.0);
        for y in 0..side {
            for x in 0..side {
                let (ix, iy) = (x as i64 + 2, y as i64 - 3);
                let want = if (0..side as i64).contains(&ix) && (0..side as i64).contains(&iy) {
                    image[(iy as usize * side + ix as usize) * 3]
                } else {
                    0
                };
                assert_eq!(out[(y * side + x) * 3], want, "({x}, {y})");
            }
        }
    }

    #[test]
    fn a_quarter_turn_maps_rows_to_columns() {
        let side = 8;
        let image = gradient(side);
        let out = augment(&image, side, 4, 4, 90.0);
        for y in 0..side {
            for x in 0..side {
                // Output (x, y) samples input (side − 1 − y, x): the content turned a quarter.
                let from = (x * side + (side - 1 - y)) * 3;
                assert_eq!(&out[(y * side + x) * 3..][..3], &image[from..from + 3]);
            }
        }
        // A small angle keeps the centre and blackens some corner pixels.
        let big = gradient(64);
        let turned = augment(&big, 64, 4, 4, 2.8);
        assert_eq!(turned[(32 * 64 + 32) * 3], big[(32 * 64 + 32) * 3]);
        assert_eq!(&turned[..3], &[0, 0, 0]);
    }
}
