//! Sort-of-CLEVR (Santoro et al. 2017; PAPER.md, C7): 75×75 images of six objects of distinct
//! colours, each a square or a circle, with non-relational and relational questions as binary
//! vectors, answers from a fixed vocabulary, and for every question a ground-truth mask of the
//! objects it is about.
//!
//! Everything follows from the seed: image `i` draws from ChaCha8 stream `i` of the seed, so
//! the first images of a larger set are the images of a smaller one.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Image side in pixels.
pub const SIZE: usize = 75;
/// Half the side of a square, and the radius of a circle.
pub const HALF: i64 = 5;
/// The colours, in the order of the question's one-hot block.
pub const COLOURS: [(&str, [u8; 3]); 6] = [
    ("red", [255, 0, 0]),
    ("green", [0, 255, 0]),
    ("blue", [0, 0, 255]),
    ("orange", [255, 156, 0]),
    ("gray", [128, 128, 128]),
    ("yellow", [255, 255, 0]),
];
/// The background.
pub const WHITE: [u8; 3] = [255, 255, 255];
/// The answer vocabulary: a network's output `k` means `ANSWERS[k]`.
pub const ANSWERS: [&str; 10] = [
    "yes", "no", "square", "circle", "1", "2", "3", "4", "5", "6",
];
/// Question vector: 6 colours, 2 kinds (non-relational, relational), 3 subtypes.
pub const QUESTION_WIDTH: usize = 11;
/// Questions of each kind per image (as in the reference generator).
pub const PER_KIND: usize = 10;

/// An object's shape (`square` or `circle` in `questions.json`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    /// An 11×11 square.
    Square,
    /// A disc of radius 5.
    Circle,
}

/// One object: its colour (an index into [`COLOURS`]), shape and centre (row, column).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Object {
    /// An index into [`COLOURS`]; a scene has one object of each colour.
    pub colour: usize,
    /// Square or circle.
    pub shape: Shape,
    /// The centre pixel's row and column, at least [`HALF`] from the border.
    pub centre: [i64; 2],
}

impl Object {
    /// Whether pixel (row, column) belongs to the object: an 11×11 square, or the disc of
    /// radius 5 (pixels whose centre is within 5 of the object's centre).
    pub fn covers(&self, row: i64, col: i64) -> bool {
        let (dr, dc) = (row - self.centre[0], col - self.centre[1]);
        match self.shape {
            Shape::Square => dr.abs() <= HALF && dc.abs() <= HALF,
            Shape::Circle => dr * dr + dc * dc <= HALF * HALF,
        }
    }
}

/// Whether a question is about one object or about its relation to the others
/// (`non-relational` or `relational` in `questions.json`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// About the object of the question's colour alone: shape, left, top.
    NonRelational,
    /// About that object and others: closest, furthest, count.
    Relational,
}

/// What a question asks about the object of its colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Subtype {
    /// Its shape.
    Shape,
    /// Whether it is in the left half (centre column < 37.5).
    Left,
    /// Whether it is in the top half (centre row < 37.5).
    Top,
    /// The shape of the object nearest to it.
    Closest,
    /// The shape of the object furthest from it.
    Furthest,
    /// How many objects have its shape (itself included).
    Count,
}

impl Subtype {
    /// All six subtypes: the non-relational ones, then the relational ones.
    pub const ALL: [Subtype; 6] = [
        Subtype::Shape,
        Subtype::Left,
        Subtype::Top,
        Subtype::Closest,
        Subtype::Furthest,
        Subtype::Count,
    ];

    /// The name the reports use (as serialised).
    pub fn name(self) -> &'static str {
        match self {
            Subtype::Shape => "shape",
            Subtype::Left => "left",
            Subtype::Top => "top",
            Subtype::Closest => "closest",
            Subtype::Furthest => "furthest",
            Subtype::Count => "count",
        }
    }

    /// Whether the subtype is relational (closest, furthest, count) or not.
    pub fn kind(self) -> Kind {
        match self {
            Subtype::Shape | Subtype::Left | Subtype::Top => Kind::NonRelational,
            _ => Kind::Relational,
        }
    }

    /// The position of the subtype within its kind (0, 1 or 2).
    pub fn index(self) -> usize {
        match self {
            Subtype::Shape | Subtype::Closest => 0,
            Subtype::Left | Subtype::Furthest => 1,
            Subtype::Top | Subtype::Count => 2,
        }
    }

    fn of(kind: Kind, index: usize) -> Self {
        match (kind, index) {
            (Kind::NonRelational, 0) => Subtype::Shape,
            (Kind::NonRelational, 1) => Subtype::Left,
            (Kind::NonRelational, _) => Subtype::Top,
            (Kind::Relational, 0) => Subtype::Closest,
            (Kind::Relational, 1) => Subtype::Furthest,
            (Kind::Relational, _) => Subtype::Count,
        }
    }
}

/// One question about one image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SortOfClevrQuestion {
    /// The colour of the object asked about, an index into [`COLOURS`].
    pub colour: usize,
    /// What is asked about it.
    pub subtype: Subtype,
    /// An index into [`ANSWERS`].
    pub answer: usize,
    /// The objects (colour indices, ascending) the question is about: its ground truth.
    pub about: Vec<usize>,
}

impl SortOfClevrQuestion {
    /// The binary question vector: colour one-hot, kind one-hot, subtype one-hot.
    pub fn vector(&self) -> [u8; QUESTION_WIDTH] {
        let mut v = [0u8; QUESTION_WIDTH];
        v[self.colour] = 1;
        v[6 + usize::from(self.subtype.kind() == Kind::Relational)] = 1;
        v[8 + self.subtype.index()] = 1;
        v
    }
}

/// One image's objects (one of each colour, in colour order) and questions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scene {
    /// Six objects, the one of colour `c` at index `c`.
    pub objects: Vec<Object>,
    /// [`PER_KIND`] non-relational questions, then [`PER_KIND`] relational ones.
    pub questions: Vec<SortOfClevrQuestion>,
}

fn shape_answer(shape: Shape) -> usize {
    match shape {
        Shape::Square => 2,
        Shape::Circle => 3,
    }
}

fn yes_no(yes: bool) -> usize {
    if yes {
        0
    } else {
        1
    }
}

impl Scene {
    /// Image `index` of the set with `seed`.
    pub fn generate(seed: u64, index: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(index);
        // Centres at least HALF from the border; the 11×11 boxes of two objects are disjoint.
        let mut objects: Vec<Object> = Vec::with_capacity(COLOURS.len());
        for colour in 0..COLOURS.len() {
            let centre = loop {
                let c = [
                    rng.random_range(HALF..SIZE as i64 - HALF),
                    rng.random_range(HALF..SIZE as i64 - HALF),
                ];
                let apart = |o: &Object| {
                    (c[0] - o.centre[0]).abs() > 2 * HALF || (c[1] - o.centre[1]).abs() > 2 * HALF
                };
                if objects.iter().all(apart) {
                    break c;
                }
            };
            let shape = if rng.random_bool(0.5) {
                Shape::Square
            } else {
                Shape::Circle
            };
            objects.push(Object {
                colour,
                shape,
                centre,
            });
        }
        let mut questions = Vec::with_capacity(2 * PER_KIND);
        for kind in [Kind::NonRelational, Kind::Relational] {
            for _ in 0..PER_KIND {
                let colour = rng.random_range(0..COLOURS.len());
                let subtype = Subtype::of(kind, rng.random_range(0..3));
                questions.push(Self::ask(&objects, colour, subtype));
            }
        }
        Scene { objects, questions }
    }

    /// The answer and the ground truth of a question about `objects`.
    pub fn ask(objects: &[Object], colour: usize, subtype: Subtype) -> SortOfClevrQuestion {
        let me = objects[colour];
        let half = SIZE as i64; // Compared doubled: a centre c is left of 37.5 when 2c < 75.
        let distance = |o: &Object| {
            let (dr, dc) = (o.centre[0] - me.centre[0], o.centre[1] - me.centre[1]);
            dr * dr + dc * dc
        };
        // Ties go to the first object in colour order.
        let others = || objects.iter().filter(|o| o.colour != colour);
        let (answer, mut about) = match subtype {
            Subtype::Shape => (shape_answer(me.shape), vec![colour]),
            Subtype::Left => (yes_no(2 * me.centre[1] < half), vec![colour]),
            Subtype::Top => (yes_no(2 * me.centre[0] < half), vec![colour]),
            Subtype::Closest | Subtype::Furthest => {
                let pick = others()
                    .reduce(|best, o| {
                        let better = match subtype {
                            Subtype::Closest => distance(o) < distance(best),
                            _ => distance(o) > distance(best),
                        };
                        if better {
                            o
                        } else {
                            best
                        }
                    })
                    .expect("six objects");
                (shape_answer(pick.shape), vec![colour, pick.colour])
            }
            Subtype::Count => {
                let same: Vec<usize> = objects
                    .iter()
                    .filter(|o| o.shape == me.shape)
                    .map(|o| o.colour)
                    .collect();
                (3 + same.len(), same)
            }
        };
        about.sort_unstable();
        SortOfClevrQuestion {
            colour,
            subtype,
            answer,
            about,
        }
    }

    /// The image, row-major RGB bytes (`SIZE × SIZE × 3`): a white background and the objects.
    pub fn pixels(&self) -> Vec<u8> {
        let mut img = Vec::with_capacity(SIZE * SIZE * 3);
        for row in 0..SIZE as i64 {
            for col in 0..SIZE as i64 {
                let rgb = self
                    .objects
                    .iter()
                    .find(|o| o.covers(row, col))
                    .map_or(WHITE, |o| COLOURS[o.colour].1);
                img.extend_from_slice(&rgb);
            }
        }
        img
    }

    /// The ground-truth mask of question `q`: 1 on the pixels of the objects it is about.
    pub fn mask(&self, q: usize) -> Vec<u8> {
        let about = &self.questions[q].about;
        let mut mask = Vec::with_capacity(SIZE * SIZE);
        for row in 0..SIZE as i64 {
            for col in 0..SIZE as i64 {
                let on = about.iter().any(|&c| self.objects[c].covers(row, col));
                mask.push(u8::from(on));
            }
        }
        mask
    }
}

/// The `questions.json` of a generated set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SetDescription {
    /// `dtdcert sort-of-clevr 1`.
    pub format: String,
    /// The version of dtdcert that wrote the set.
    pub version: String,
    /// The seed every image was drawn from.
    pub seed: u64,
    /// The side of the square images in pixels ([`SIZE`], 75).
    pub image_size: usize,
    /// The length of a question vector ([`QUESTION_WIDTH`], 11).
    pub question_width: usize,
    /// The colour names, in the order of the question vector's colour one-hot.
    pub colours: Vec<String>,
    /// The answer vocabulary: output `k` of a network means `answers[k]`.
    pub answers: Vec<String>,
    /// Every image of the set, in index order.
    pub images: Vec<ImageDescription>,
}

/// One image: its files, objects and questions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImageDescription {
    /// The image's index in the set (its ChaCha8 stream of the seed).
    pub index: usize,
    /// The PNG, relative to the set's folder.
    pub image: String,
    /// The masks (`questions × 75 × 75`, u8), relative to the set's folder.
    pub masks: String,
    /// The six objects, in colour order.
    pub objects: Vec<ObjectDescription>,
    /// The 20 questions, in the order of the masks: 10 non-relational, then 10 relational.
    pub questions: Vec<QuestionDescription>,
}

/// One object of an image, as `questions.json` lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectDescription {
    /// The colour's name (`red`, `green`, …).
    pub colour: String,
    /// Square or circle.
    pub shape: Shape,
    /// Row, column of the centre pixel.
    pub centre: [i64; 2],
}

/// One question of an image, as `questions.json` lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QuestionDescription {
    /// The name of the colour of the object asked about.
    pub colour: String,
    /// Non-relational or relational (follows from the subtype).
    pub kind: Kind,
    /// What is asked about the object.
    pub subtype: Subtype,
    /// The question vector.
    pub question: Vec<u8>,
    /// An index into `answers`.
    pub answer: usize,
    /// The answer as text, `answers[answer]`.
    pub answer_text: String,
    /// The colours of the objects the question is about (its mask).
    pub about: Vec<String>,
}

/// The format name written into `questions.json`.
pub const FORMAT: &str = "dtdcert sort-of-clevr 1";

impl Scene {
    /// The scene's entry of `questions.json` (image `index`).
    pub fn describe(&self, index: usize) -> ImageDescription {
        let name = |c: usize| COLOURS[c].0.to_string();
        ImageDescription {
            index,
            image: format!("images/{index:06}.png"),
            masks: format!("masks/{index:06}.npy"),
            objects: self
                .objects
                .iter()
                .map(|o| ObjectDescription {
                    colour: name(o.colour),
                    shape: o.shape,
                    centre: o.centre,
                })
                .collect(),
            questions: self
                .questions
                .iter()
                .map(|q| QuestionDescription {
                    colour: name(q.colour),
                    kind: q.subtype.kind(),
                    subtype: q.subtype,
                    question: q.vector().to_vec(),
                    answer: q.answer,
                    answer_text: ANSWERS[q.answer].to_string(),
                    about: q.about.iter().map(|&c| name(c)).collect(),
                })
                .collect(),
        }
    }

    /// The image as a PNG file (8-bit RGB).
    pub fn png(&self) -> Vec<u8> {
        crate::io::heatmap::rgb_png(&self.pixels(), SIZE, SIZE)
    }

    /// The masks of all questions, `questions × SIZE × SIZE`.
    pub fn masks(&self) -> ndarray::Array3<u8> {
        let q = self.questions.len();
        let flat: Vec<u8> = (0..q).flat_map(|i| self.mask(i)).collect();
        ndarray::Array3::from_shape_vec((q, SIZE, SIZE), flat).expect("one mask per question")
    }
}

/// Writes images `0..images` of the set with `seed` into `dir` (a staging folder):
/// `images/NNNNNN.png`, `masks/NNNNNN.npy` and `questions.json`. `progress` is called with
/// the number of images written so far.
pub fn write_set(
    dir: &std::path::Path,
    seed: u64,
    images: usize,
    progress: impl Fn(usize) + Sync,
) -> crate::error::Result<SetDescription> {
    use crate::error::Error;
    use rayon::prelude::*;
    for sub in ["images", "masks"] {
        let path = dir.join(sub);
        std::fs::create_dir_all(&path).map_err(|e| Error::write(&path, e))?;
    }
    let done = std::sync::atomic::AtomicUsize::new(0);
    let described: Vec<ImageDescription> = (0..images)
        .into_par_iter()
        .map(|i| {
            let scene = Scene::generate(seed, i as u64);
            let entry = scene.describe(i);
            let png = dir.join(&entry.image);
            std::fs::write(&png, scene.png()).map_err(|e| Error::write(&png, e))?;
            let npy = dir.join(&entry.masks);
            ndarray_npy::write_npy(&npy, &scene.masks())
                .map_err(|e| Error::file(&npy, format!("cannot write: {e}")))?;
            progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
            Ok(entry)
        })
        .collect::<crate::error::Result<_>>()?;
    let set = SetDescription {
        format: FORMAT.into(),
        version: env!("CARGO_PKG_VERSION").into(),
        seed,
        image_size: SIZE,
        question_width: QUESTION_WIDTH,
        colours: COLOURS.iter().map(|c| c.0.to_string()).collect(),
        answers: ANSWERS.iter().map(|a| a.to_string()).collect(),
        images: described,
    };
    let json = dir.join("questions.json");
    let text = serde_json::to_string(&set).expect("descriptions serialise");
    std::fs::write(&json, text).map_err(|e| Error::write(&json, e))?;
    Ok(set)
}

/// A generated set read back for training or evaluation: images as `v / 255` (channels
/// first, `3 × 75 × 75` each), and per question its image, vector, answer and subtype.
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded {
    /// Every image's values `v / 255`, channels first (`3 × 75 × 75` each), one after the
    /// other.
    pub images: Vec<f32>,
    /// Per question, the 0-based index of its image.
    pub image_of: Vec<usize>,
    /// Every question's vector ([`QUESTION_WIDTH`] values of 0 or 1), one after the other.
    pub questions: Vec<f32>,
    /// Per question, its answer as an index into [`ANSWERS`].
    pub answers: Vec<usize>,
    /// Per question, its subtype.
    pub subtypes: Vec<Subtype>,
    /// Per question, its place among its image's questions (its mask's index).
    pub place: Vec<usize>,
    /// Per image, its masks file.
    pub masks: Vec<std::path::PathBuf>,
}

impl Loaded {
    /// The number of images read.
    pub fn num_images(&self) -> usize {
        self.images.len() / (3 * SIZE * SIZE)
    }

    /// The number of questions read (those of every image read).
    pub fn num_questions(&self) -> usize {
        self.answers.len()
    }

    /// The ground-truth mask of question `q` (`SIZE × SIZE`, row-major, nonzero on the
    /// objects it is about), read from its image's masks file.
    pub fn mask(&self, q: usize) -> crate::error::Result<Vec<u8>> {
        use crate::error::Error;
        let path = &self.masks[self.image_of[q]];
        let masks: ndarray::Array3<u8> = ndarray_npy::read_npy(path)
            .map_err(|e| Error::file(path, format!("not a u8 mask array (.npy): {e}")))?;
        let (count, h, w) = masks.dim();
        let place = self.place[q];
        if (h, w) != (SIZE, SIZE) || place >= count {
            return Err(Error::file(
                path,
                format!(
                    "masks of shape {count} × {h} × {w}: expected one {SIZE} × {SIZE} mask per \
                     question of the image"
                ),
            ));
        }
        Ok(masks
            .index_axis(ndarray::Axis(0), place)
            .iter()
            .copied()
            .collect())
    }
}

/// Reads the set in `dir` (its first `limit` images where given): `questions.json` and the
/// PNGs it names, each checked against the format.
pub fn load_set(dir: &std::path::Path, limit: Option<usize>) -> crate::error::Result<Loaded> {
    use crate::error::Error;
    let path = dir.join("questions.json");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::file(&path, format!("cannot read a Sort-of-CLEVR set: {e}")))?;
    let set: SetDescription = serde_json::from_str(&text)
        .map_err(|e| Error::file(&path, format!("not a Sort-of-CLEVR question file: {e}")))?;
    if set.format != FORMAT || set.image_size != SIZE || set.question_width != QUESTION_WIDTH {
        return Err(Error::file(
            &path,
            format!(
                "format '{}' with {}×{} images and questions of {}: expected '{FORMAT}', \
                 {SIZE}×{SIZE}, {QUESTION_WIDTH}",
                set.format, set.image_size, set.image_size, set.question_width
            ),
        ));
    }
    let count = limit.map_or(set.images.len(), |n| n.min(set.images.len()));
    let mut loaded = Loaded {
        images: Vec::with_capacity(count * 3 * SIZE * SIZE),
        image_of: Vec::new(),
        questions: Vec::new(),
        answers: Vec::new(),
        subtypes: Vec::new(),
        place: Vec::new(),
        masks: Vec::new(),
    };
    for (i, image) in set.images.iter().take(count).enumerate() {
        let png = dir.join(&image.image);
        let (rgb, h, w) = super::clevr::read_png_rgb(&png)?;
        if (h, w) != (SIZE, SIZE) {
            return Err(Error::file(
                &png,
                format!("a {w}×{h} image: expected {SIZE}×{SIZE}"),
            ));
        }
        for c in 0..3 {
            loaded
                .images
                .extend((0..SIZE * SIZE).map(|p| f32::from(rgb[3 * p + c]) / 255.0));
        }
        for (q, question) in image.questions.iter().enumerate() {
            if question.question.len() != QUESTION_WIDTH || question.answer >= ANSWERS.len() {
                return Err(Error::file(
                    &path,
                    format!(
                        "image {i} question {q}: a vector of {} values or answer {}",
                        question.question.len(),
                        question.answer
                    ),
                ));
            }
            loaded.image_of.push(i);
            loaded
                .questions
                .extend(question.question.iter().map(|&v| f32::from(v)));
            loaded.answers.push(question.answer);
            loaded.subtypes.push(question.subtype);
            loaded.place.push(q);
        }
        loaded.masks.push(dir.join(&image.masks));
    }
    Ok(loaded)
}
