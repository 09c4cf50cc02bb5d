//! `dtdcert relnet generate`: the Sort-of-CLEVR files, read back and checked against what the
//! pixels show.
//!
//! - Every image holds six objects of distinct colours on white, each an 11×11 square or a
//!   disc of radius 5 (read off the pixels: count and centroid), inside the image and apart.
//! - Every answer, recomputed from the objects found in the pixels, is the one written; every
//!   question vector encodes its colour, kind and subtype; every mask is exactly the pixels of
//!   the objects the question is about.
//! - The same seed gives the same bytes, the first images of a larger set are the smaller
//!   set, and another seed gives other images.
//! - Bad requests exit with code 2 and leave what was there.

use std::collections::BTreeMap;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::Command;

use ndarray::Array3;
use serde_json::Value;

const SIZE: usize = 75;
const COLOURS: [[u8; 3]; 6] = [
    [255, 0, 0],
    [0, 255, 0],
    [0, 0, 255],
    [255, 156, 0],
    [128, 128, 128],
    [255, 255, 0],
];
const NAMES: [&str; 6] = ["red", "green", "blue", "orange", "gray", "yellow"];

fn generate(out: &Path, images: usize, seed: u64) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dtdcert"))
        .args(["relnet", "generate", "--quiet", "--out"])
        .arg(out)
        .args(["--images", &images.to_string(), "--seed", &seed.to_string()])
        .output()
        .unwrap()
}

fn read_png(path: &Path) -> Vec<u8> {
    let decoder = png::Decoder::new(BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!((info.width, info.height), (SIZE as u32, SIZE as u32));
    assert_eq!(info.color_type, png::ColorType::Rgb);
    buf.truncate(info.buffer_size());
    buf
}

/// An object as the pixels show it: its pixels, centre and whether it is a square.
struct Found {
    pixels: Vec<usize>,
    centre: [i64; 2],
    square: bool,
}

/// The six objects of an image, by colour, read off its pixels.
fn objects_in(rgb: &[u8]) -> Vec<Found> {
    let mut pixels: Vec<Vec<usize>> = vec![Vec::new(); 6];
    for p in 0..SIZE * SIZE {
        let px = [rgb[3 * p], rgb[3 * p + 1], rgb[3 * p + 2]];
        match COLOURS.iter().position(|c| *c == px) {
            Some(c) => pixels[c].push(p),
            None => assert_eq!(
                px,
                [255, 255, 255],
                "pixel {p}: neither an object nor white"
            ),
        }
    }
    pixels
        .into_iter()
        .enumerate()
        .map(|(c, px)| {
            // A square of side 11 has 121 pixels, a disc of radius 5 has 81.
            let square = match px.len() {
                121 => true,
                81 => false,
                n => panic!("{}: {n} pixels", NAMES[c]),
            };
            let (sr, sc) = px
                .iter()
                .fold((0, 0), |(r, c), &p| (r + p / SIZE, c + p % SIZE));
            let centre = [(sr / px.len()) as i64, (sc / px.len()) as i64];
            for &p in &px {
                let (dr, dc) = ((p / SIZE) as i64 - centre[0], (p % SIZE) as i64 - centre[1]);
                assert!(
                    dr.abs() <= 5 && dc.abs() <= 5,
                    "{}: not one object",
                    NAMES[c]
                );
                if !square {
                    assert!(dr * dr + dc * dc <= 25, "{}: not a disc", NAMES[c]);
                }
            }
            Found {
                pixels: px,
                centre,
                square,
            }
        })
        .collect()
}

/// The answer index and the objects a question is about, from the objects found.
fn expected(
    objects: &[Found],
    colour: usize,
    relational: bool,
    subtype: usize,
) -> (u64, Vec<usize>) {
    let me = &objects[colour];
    let shape = |o: &Found| if o.square { 2 } else { 3 };
    let d2 = |o: &Found| {
        let (dr, dc) = (o.centre[0] - me.centre[0], o.centre[1] - me.centre[1]);
        dr * dr + dc * dc
    };
    let others = (0..6).filter(|&c| c != colour);
    match (relational, subtype) {
        (false, 0) => (shape(me), vec![colour]),
        (false, 1) => (if 2 * me.centre[1] < 75 { 0 } else { 1 }, vec![colour]),
        (false, _) => (if 2 * me.centre[0] < 75 { 0 } else { 1 }, vec![colour]),
        (true, 0 | 1) => {
            // Ties go to the first colour.
            let pick = others
                .min_by_key(|&c| {
                    let d = d2(&objects[c]);
                    (if subtype == 0 { d } else { -d }, c)
                })
                .unwrap();
            let mut about = vec![colour, pick];
            about.sort();
            (shape(&objects[pick]), about)
        }
        (true, _) => {
            let same: Vec<usize> = (0..6).filter(|&c| objects[c].square == me.square).collect();
            (3 + same.len() as u64, same)
        }
    }
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn generated_sets_hold_what_their_pixels_show() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("soc");
    let run = generate(&out, 40, 3);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let set = json(&out.join("questions.json"));
    assert_eq!(set["format"], "dtdcert sort-of-clevr 1");
    assert_eq!(set["seed"], 3);
    let answers = set["answers"].as_array().unwrap();
    let images = set["images"].as_array().unwrap();
    assert_eq!(images.len(), 40);
    let mut seen: BTreeMap<(bool, usize, u64), usize> = BTreeMap::new();
    for (i, image) in images.iter().enumerate() {
        assert_eq!(image["index"], i);
        let rgb = read_png(&out.join(image["image"].as_str().unwrap()));
        let objects = objects_in(&rgb);
        for (c, (o, d)) in objects
            .iter()
            .zip(image["objects"].as_array().unwrap())
            .enumerate()
        {
            assert_eq!(d["colour"], NAMES[c]);
            assert_eq!(d["shape"], if o.square { "square" } else { "circle" });
            assert_eq!(d["centre"][0], o.centre[0]);
            assert_eq!(d["centre"][1], o.centre[1]);
        }
        let masks: Array3<u8> =
            ndarray_npy::read_npy(out.join(image["masks"].as_str().unwrap())).unwrap();
        let questions = image["questions"].as_array().unwrap();
        assert_eq!(questions.len(), 20);
        assert_eq!(masks.dim(), (20, SIZE, SIZE));
        for (q, question) in questions.iter().enumerate() {
            let v: Vec<u64> = question["question"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap())
                .collect();
            assert_eq!(v.len(), 11);
            assert!(v.iter().all(|&x| x <= 1));
            assert_eq!(v[..6].iter().sum::<u64>(), 1);
            assert_eq!(v[6] + v[7], 1);
            assert_eq!(v[8..].iter().sum::<u64>(), 1);
            let colour = v[..6].iter().position(|&x| x == 1).unwrap();
            let relational = v[7] == 1;
            let subtype = v[8..].iter().position(|&x| x == 1).unwrap();
            // The first ten questions are non-relational, the last ten relational.
            assert_eq!(relational, q >= 10);
            assert_eq!(question["colour"], NAMES[colour]);
            let (answer, about) = expected(&objects, colour, relational, subtype);
            assert_eq!(question["answer"], answer, "image {i} question {q}");
            assert_eq!(question["answer_text"], answers[answer as usize]);
            let names: Vec<&str> = about.iter().map(|&c| NAMES[c]).collect();
            assert_eq!(question["about"], serde_json::json!(names));
            let mut want = vec![0u8; SIZE * SIZE];
            for &c in &about {
                for &p in &objects[c].pixels {
                    want[p] = 1;
                }
            }
            let got: Vec<u8> = masks
                .slice(ndarray::s![q, .., ..])
                .iter()
                .copied()
                .collect();
            assert_eq!(got, want, "image {i} question {q}: mask");
            *seen.entry((relational, subtype, answer)).or_default() += 1;
        }
    }
    // Not vacuous: every subtype was asked, and yes, no, both shapes and several counts
    // were answered.
    for kind in [false, true] {
        for subtype in 0..3 {
            assert!(seen.keys().any(|k| k.0 == kind && k.1 == subtype));
        }
    }
    for answer in 0..4 {
        assert!(
            seen.keys().any(|k| k.2 == answer),
            "answer {answer} never given"
        );
    }
    assert!(seen.keys().filter(|k| k.2 >= 4).count() >= 3);
}

/// Every file under `dir`, relative to it, with its bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    for sub in ["images", "masks"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(dir).unwrap().to_path_buf();
            files.insert(rel, std::fs::read(&path).unwrap());
        }
    }
    files
}

#[test]
fn the_seed_determines_the_set() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| dir.path().join(name);
    for (name, images, seed) in [
        ("a", 12, 5),
        ("b", 12, 5),
        ("small", 5, 5),
        ("other", 12, 6),
    ] {
        assert!(generate(&path(name), images, seed).status.success());
    }
    let (a, b) = (tree(&path("a")), tree(&path("b")));
    assert_eq!(a, b);
    assert_eq!(
        std::fs::read(path("a/questions.json")).unwrap(),
        std::fs::read(path("b/questions.json")).unwrap()
    );
    // The first five images of the larger set are the set of five.
    let small = tree(&path("small"));
    assert_eq!(small.len(), 10);
    for (file, bytes) in &small {
        assert_eq!(a.get(file), Some(bytes), "{}", file.display());
    }
    let (big, five) = (
        json(&path("a/questions.json")),
        json(&path("small/questions.json")),
    );
    assert_eq!(
        big["images"].as_array().unwrap()[..5],
        five["images"].as_array().unwrap()[..]
    );
    // Another seed: other images.
    let other = tree(&path("other"));
    let same = a
        .iter()
        .filter(|(f, bytes)| other.get(*f) == Some(bytes))
        .count();
    assert_eq!(same, 0);
}

#[test]
fn bad_requests_leave_what_was_there() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("soc");
    let run = generate(&out, 0, 1);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("--images must be at least 1"));
    assert!(!out.exists());
    // A folder that is not a generated set is refused and left as it was.
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let run = generate(&out, 3, 1);
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "mine"
    );
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1);
    // An earlier set is replaced as a whole, and only with --force.
    std::fs::remove_dir_all(&out).unwrap();
    assert!(generate(&out, 6, 1).status.success());
    let before = tree(&out);
    let refused = generate(&out, 2, 1);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--force"));
    assert_eq!(tree(&out), before);
    let forced = Command::new(env!("CARGO_BIN_EXE_dtdcert"))
        .args(["relnet", "generate", "--quiet", "--force", "--out"])
        .arg(&out)
        .args(["--images", "2", "--seed", "1"])
        .output()
        .unwrap();
    assert!(forced.status.success());
    assert_eq!(tree(&out).len(), 4);
    assert_eq!(
        json(&out.join("questions.json"))["images"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}
