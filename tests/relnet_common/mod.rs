//! Running the binary on relation-network data, shared by the `relnet` command tests.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};

pub fn dtdcert(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dtdcert"))
        .args(args)
        .output()
        .unwrap()
}

/// `out`, after checking that the command succeeded (its stderr otherwise).
pub fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `dtdcert relnet COMMAND -q --model MODEL --data DATA --out OUT EXTRA…`.
pub fn relnet(command: &str, model: &Path, data: &Path, out: &Path, extra: &[&str]) -> Output {
    let args = [
        &[
            "relnet",
            command,
            "-q",
            "--model",
            s(model),
            "--data",
            s(data),
            "--out",
            s(out),
        ][..],
        extra,
    ]
    .concat();
    dtdcert(&args)
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A Sort-of-CLEVR set of `images` images from `seed` in `out` (replacing a set there).
pub fn generate(out: &Path, images: usize, seed: u64) {
    let (images, seed) = (images.to_string(), seed.to_string());
    ok(dtdcert(&[
        "relnet",
        "generate",
        "-q",
        "--force",
        "--out",
        s(out),
        "--images",
        &images,
        "--seed",
        &seed,
    ]));
}

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/clevr/CLEVR_v1.0/images/val")
        .join(name)
}

/// A CLEVR question entry: text, answer, the program's last function, image.
fn entry(split: &str, image: usize, text: &str, answer: &str, last: &str) -> Value {
    json!({
        "image_filename": format!("CLEVR_{split}_{image:06}.png"),
        "image_index": image,
        "question": text,
        "answer": answer,
        "program": [{"function": "scene", "inputs": [], "value_inputs": []},
                    {"function": last, "inputs": [0], "value_inputs": []}],
        "split": split,
    })
}

pub const TRAIN: [(usize, &str, &str, &str); 8] = [
    (
        0,
        "Are there more big green things than large purple shiny cubes?",
        "no",
        "greater_than",
    ),
    (0, "What number of purple objects are there?", "2", "count"),
    (0, "Is there a red sphere?", "yes", "exist"),
    (
        0,
        "What color is the small cylinder?",
        "purple",
        "query_color",
    ),
    (
        1,
        "There is a small cylinder; what color is it?",
        "purple",
        "query_color",
    ),
    (
        1,
        "Is the (large) red sphere made of the same material as the tiny cube?",
        "yes",
        "equal_material",
    ),
    (1, "What number of cubes are there?", "3", "count"),
    (
        1,
        "Are there fewer red things than cubes?",
        "no",
        "less_than",
    ),
];

pub const VAL: [(usize, &str, &str, &str); 4] = [
    (0, "What number of red things are there?", "2", "count"),
    (0, "Is there a purple cube?", "no", "exist"),
    (
        1,
        "What color is the large sphere?",
        "purple",
        "query_color",
    ),
    (
        1,
        "Are there more cubes than red things?",
        "yes",
        "greater_than",
    ),
];

/// A CLEVR v1.0 folder with the two fixture images in both splits.
pub fn clevr_root(root: &Path) {
    for (split, questions) in [("train", &TRAIN[..]), ("val", &VAL[..])] {
        let images = root.join("images").join(split);
        std::fs::create_dir_all(&images).unwrap();
        for k in 0..2 {
            std::fs::copy(
                fixture(&format!("CLEVR_val_{k:06}.png")),
                images.join(format!("CLEVR_{split}_{k:06}.png")),
            )
            .unwrap();
        }
        let entries: Vec<Value> = questions
            .iter()
            .map(|&(i, t, a, f)| entry(split, i, t, a, f))
            .collect();
        std::fs::create_dir_all(root.join("questions")).unwrap();
        std::fs::write(
            root.join(format!("questions/CLEVR_{split}_questions.json")),
            serde_json::to_string(&json!({"info": {"split": split}, "questions": entries}))
                .unwrap(),
        )
        .unwrap();
    }
}
