//! `dtdcert relnet sanity` (feature `torch`) on a tiny set and a briefly trained model:
//!
//! - the report holds every sample and map: the draws are what they claim to be (another
//!   answer of the same category, a derangement of the questions), every measure lies in its
//!   range, the CSV has a line per sample and map, the panels are PNGs of the stated size;
//! - the same seed gives the same report, another seed other draws;
//! - bad requests exit with code 2 and write nothing.

#![cfg(feature = "torch")]

mod relnet_common;

use std::path::Path;
use std::process::Output;

use relnet_common::{dtdcert, generate, ok, relnet, s};
use serde_json::Value;

/// A set of 3 images and a model trained one epoch on it.
fn setup(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (data, model) = (dir.join("soc"), dir.join("rn"));
    generate(&data, 3, 4);
    ok(dtdcert(&[
        "relnet",
        "train",
        "-q",
        "--data",
        s(&data),
        "--epochs",
        "1",
        "--out",
        s(&model),
    ]));
    (data, model)
}

fn sanity(model: &Path, data: &Path, out: &Path, extra: &[&str]) -> Output {
    relnet("sanity", model, data, out, extra)
}

fn summary(dir: &Path) -> Value {
    let mut v: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    v["settings"]["seconds"] = Value::Null;
    v
}

#[test]
fn the_report_holds_every_sample_and_map() {
    let dir = tempfile::tempdir().unwrap();
    let (data, model) = setup(dir.path());
    let out = dir.path().join("sanity");
    ok(sanity(
        &model,
        &data,
        &out,
        &[
            "--samples",
            "5",
            "--panels",
            "2",
            "--batch",
            "3",
            "--seed",
            "9",
        ],
    ));
    let report = summary(&out);
    let answers = [
        "yes", "no", "square", "circle", "1", "2", "3", "4", "5", "6",
    ];
    let category = |a: &Value| {
        let k = answers.iter().position(|x| a == x).unwrap();
        [0, 0, 1, 1, 2, 2, 2, 2, 2, 2][k]
    };
    let samples = report["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 5);
    let mut questions: Vec<u64> = Vec::new();
    let mut from: Vec<u64> = Vec::new();
    for (k, sample) in samples.iter().enumerate() {
        assert_ne!(sample["answer"], sample["other_answer"]);
        assert_eq!(
            category(&sample["answer"]),
            category(&sample["other_answer"])
        );
        assert_ne!(sample["question_from"], k as u64);
        questions.push(sample["question"].as_u64().unwrap());
        from.push(sample["question_from"].as_u64().unwrap());
        assert_eq!(sample["image"], sample["question"].as_u64().unwrap() / 20);
    }
    from.sort_unstable();
    assert_eq!(from, vec![0, 1, 2, 3, 4], "a permutation of the samples");
    questions.sort_unstable();
    questions.dedup();
    assert_eq!(questions.len(), 5, "distinct questions");
    // True answer, (a), (b), and 3 + 4 + 4 layers re-initialised from the top.
    let variants = report["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 3 + 11);
    assert_eq!(variants[3]["randomised"], 1);
    assert_eq!(variants[13]["randomised"], 11);
    assert!(
        variants[0]["ssim"].is_null(),
        "the true map is not compared"
    );
    for v in &variants[1..] {
        for (measure, lo) in [
            ("fraction_differing", 0.0),
            ("ssim", -1.0),
            ("spearman_abs", -1.0),
        ] {
            let stats = &v[measure];
            assert_eq!(stats["samples"], 5, "{}: {measure}", v["name"]);
            let (min, max) = (
                stats["min"].as_f64().unwrap(),
                stats["max"].as_f64().unwrap(),
            );
            assert!(lo <= min && min <= max && max <= 1.0 + 1e-12, "{stats}");
            let counts: u64 = stats["histogram"]["counts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_u64().unwrap())
                .sum();
            assert_eq!(counts, 5);
        }
    }
    for v in variants {
        let mass = &v["mass_accuracy"];
        assert!((0.0..=1.0).contains(&mass["mean"].as_f64().unwrap()));
    }
    let csv = std::fs::read_to_string(out.join("samples.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 14 * 5);
    for name in ["report.md", "report.html"] {
        let text = std::fs::read_to_string(out.join(name)).unwrap();
        assert!(text.contains("panels/sample-001.png"), "{name}");
        assert!(!text.contains("panels/sample-002.png"), "{name}");
    }
    // Image, mask and five maps, 150 pixels each and 4 apart.
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(out.join("panels/sample-000.png")).unwrap(),
    ));
    let info = decoder.read_info().unwrap().info().clone();
    assert_eq!((info.width, info.height), (7 * 150 + 6 * 4, 150));

    // The same seed: the same report; another: other draws.
    let again = dir.path().join("again");
    ok(sanity(
        &model,
        &data,
        &again,
        &[
            "--samples",
            "5",
            "--panels",
            "2",
            "--batch",
            "2",
            "--seed",
            "9",
        ],
    ));
    let mut a = summary(&again);
    a["settings"]["out"] = Value::Null;
    let mut b = report.clone();
    b["settings"]["out"] = Value::Null;
    assert_eq!(a["samples"], b["samples"]);
    for (x, y) in a["variants"].as_array().unwrap().iter().zip(variants) {
        for m in ["fraction_differing", "ssim", "spearman", "mass_accuracy"] {
            if let (Some(p), Some(q)) = (x[m]["mean"].as_f64(), y[m]["mean"].as_f64()) {
                assert!((p - q).abs() <= 1e-9, "{}: {m} {p} vs {q}", x["name"]);
            }
        }
    }
    let other = dir.path().join("other");
    ok(sanity(
        &model,
        &data,
        &other,
        &["--samples", "5", "--seed", "10"],
    ));
    assert_ne!(summary(&other)["samples"], report["samples"]);
}

#[test]
fn bad_sanity_requests_exit_with_code_2_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (data, model) = setup(dir.path());
    let out = dir.path().join("sanity");
    for (extra, needle) in [
        (vec!["--samples", "1"], "at least 2"),
        (vec!["--samples", "61"], "holds 60 questions"),
        (
            vec!["--samples", "3", "--batch-norm", "skip"],
            "pass-through",
        ),
        (vec!["--samples", "3", "--precision", "f16"], "f32 or f64"),
        (
            vec!["--samples", "3", "--device", "tpu"],
            "cpu, cuda or auto",
        ),
    ] {
        let run = sanity(&model, &data, &out, &extra);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
        assert!(!out.exists());
    }
    // Not a model folder, not a set: the error names the file.
    let run = sanity(&data, &data, &out, &["--samples", "3"]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("rn.json"));
    let run = sanity(&model, &model, &out, &["--samples", "3"]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("questions.json"));
    // A missing mask file: named, and nothing written.
    std::fs::remove_file(data.join("masks/000001.npy")).unwrap();
    let run = sanity(&model, &data, &out, &["--samples", "60"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("000001.npy"), "{stderr}");
    assert!(!out.exists());
    // A folder holding something else is not replaced.
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    generate(&data, 3, 4);
    let run = sanity(&model, &data, &out, &["--samples", "3"]);
    assert_eq!(run.status.code(), Some(2));
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "mine"
    );
}
