//! `dtdcert relnet sanity` (feature `torch`) on a tiny set and a briefly trained model:
//!
//! - the report holds every sample and map: the draws are what they claim to be (another
//!   answer of the same category, a derangement of the questions), every measure lies in its
//!   range, the CSV has a line per sample and map, the panels are PNGs of the stated size;
//! - the same seed gives the same report, another seed other draws;
//! - a CLEVR network on CLEVR-XAI (tests/data/clevr): the other answers come from the answer's
//!   CLEVR category, the questions are deranged as words through the network's encoder (each
//!   map's logit is the network's logit on its image and question), the question encoder is
//!   the last layer re-initialised, the masks count where a question has one (and a mask of
//!   another size is resized to the maps');
//! - bad requests exit with code 2 and write nothing.

#![cfg(feature = "torch")]

mod relnet_common;

use std::path::{Path, PathBuf};
use std::process::Output;

use dtdcert::repro::clevr::{
    answer_group, clevr_xai_questions, load_image, Category, Vocabulary, XaiQuestions,
    ANSWER_GROUPS,
};
use dtdcert::torch::relnet::{question_tokens, Task, TorchRelationNet};
use relnet_common::{dtdcert, generate, ok, relnet, s};
use serde_json::Value;
use tch::{Device, Kind, Tensor};

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

fn xai_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/clevr/CLEVR-XAI_v1.0")
}

/// A seeded CLEVR network whose dictionaries hold the words of the CLEVR-XAI fixture's
/// simple questions (less `drop`) and CLEVR's 28 answers, saved in `dir`.
fn clevr_model(dir: &Path, drop: &str) -> Vocabulary {
    let questions =
        clevr_xai_questions(&xai_root(), XaiQuestions::Simple, "single_object", None).unwrap();
    let mut vocabulary = Vocabulary::build(&questions);
    if let Some(k) = vocabulary.words.remove(drop) {
        // Keep the indices 1..=n.
        for v in vocabulary.words.values_mut() {
            if *v > k {
                *v -= 1;
            }
        }
    }
    vocabulary.answers = ANSWER_GROUPS
        .iter()
        .flat_map(|g| g.iter())
        .enumerate()
        .map(|(k, a)| (a.to_string(), k + 1))
        .collect();
    let net = TorchRelationNet::seeded(
        5,
        Task::Clevr {
            vocabulary: vocabulary.clone(),
        },
        Device::Cpu,
    );
    std::fs::create_dir_all(dir).unwrap();
    net.save(dir).unwrap();
    vocabulary
}

/// `samples.csv` as rows of named fields.
fn csv_rows(dir: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let text = std::fs::read_to_string(dir.join("samples.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    lines
        .map(|l| {
            header
                .iter()
                .cloned()
                .zip(l.split(',').map(String::from))
                .collect()
        })
        .collect()
}

#[test]
fn a_clevr_network_on_clevr_xai() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("rn-clevr");
    let vocabulary = clevr_model(&model, "");
    let out = dir.path().join("sanity");
    ok(sanity(
        &model,
        &xai_root(),
        &out,
        &[
            "--samples",
            "3",
            "--panels",
            "3",
            "--batch",
            "4",
            "--seed",
            "4",
        ],
    ));
    let report = summary(&out);
    assert_eq!(report["settings"]["data_set"]["set"], "CLEVR-XAI");
    assert_eq!(
        report["settings"]["data_set"]["ground_truth"],
        "single_object"
    );
    let questions =
        clevr_xai_questions(&xai_root(), XaiQuestions::Simple, "single_object", None).unwrap();
    let file: Value = serde_json::from_str(
        &std::fs::read_to_string(xai_root().join("CLEVR-XAI_simple_questions.json")).unwrap(),
    )
    .unwrap();
    let by_id = |id: &Value| {
        let id = id.as_u64().unwrap() as usize;
        questions.iter().find(|x| x.index == id).unwrap()
    };
    let samples = report["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 3);
    let mut from = Vec::new();
    for (k, sample) in samples.iter().enumerate() {
        // The report names a question by its question_index.
        let id = sample["question"].as_u64().unwrap() as usize;
        let q = questions.iter().position(|x| x.index == id).unwrap();
        let question = &questions[q];
        assert_eq!(sample["text"], question.text.as_str());
        assert_eq!(sample["answer"], question.answer.as_deref().unwrap());
        assert_eq!(sample["image_file"], "CLEVR_unique_000000.png");
        let program = file["questions"][q]["program"].as_array().unwrap();
        let last = program.last().unwrap()["type"].as_str().unwrap();
        assert_eq!(sample["type"], Category::of(last).unwrap().name());
        // (a): another answer of the answer's CLEVR category.
        let (answer, other) = (
            sample["answer"].as_str().unwrap(),
            sample["other_answer"].as_str().unwrap(),
        );
        assert_ne!(answer, other);
        assert!(
            answer_group(answer).unwrap().contains(&other),
            "{answer} {other}"
        );
        let from_k = sample["question_from"].as_u64().unwrap() as usize;
        assert_ne!(from_k, k);
        from.push(from_k);
    }
    let mut sorted = from.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [0, 1, 2], "a permutation of the samples");

    // True answer, (a), (b), then f, g, the convolution blocks and the question encoder.
    let variants = report["variants"].as_array().unwrap();
    assert_eq!(variants.len(), 3 + 12);
    assert!(variants[14]["description"]
        .as_str()
        .unwrap()
        .contains("question encoder"));
    // Questions 0 and 1 have masks, question 2 none.
    let with_masks = samples
        .iter()
        .filter(|s| by_id(&s["question"]).mask.is_some())
        .count();
    assert_eq!(variants[0]["mass_accuracy"]["samples"], with_masks);
    assert_eq!(variants[0]["rank_accuracy"]["samples"], with_masks);

    // Each map's logit is the network's logit for its image, question and answer: the
    // permuted maps read the other sample's words through the encoder.
    let mut net = TorchRelationNet::load(&model, Device::Cpu).unwrap();
    net.set_kind(Kind::Double);
    let _guard = tch::no_grad_guard();
    let logit = |image_of: usize, question_of: usize, answer: &str| {
        let q = |k: usize| by_id(&samples[k]["question"]);
        let image = load_image(&q(image_of).image).unwrap();
        let x: Vec<f64> = image.iter().map(|&v| f64::from(v)).collect();
        let words = vocabulary.encode(q(question_of)).unwrap();
        let logits = net.forward(
            &Tensor::from_slice(&x).view([1, 3, 128, 128]),
            &question_tokens(&[&words[..]]),
            false,
        );
        logits.double_value(&[0, vocabulary.answers[answer] as i64])
    };
    let rows = csv_rows(&out);
    assert_eq!(rows.len(), 15 * 3);
    for row in &rows {
        let k: usize = row["sample"].parse().unwrap();
        let sample = &samples[k];
        let answer = sample["answer"].as_str().unwrap();
        let want = match row["map"].as_str() {
            "true" => logit(k, k, answer),
            "other-answer" => logit(k, k, sample["other_answer"].as_str().unwrap()),
            "permuted-question" => logit(k, from[k], answer),
            _ => continue,
        };
        let got: f64 = row["logit"].parse().unwrap();
        assert!(
            (got - want).abs() <= 1e-9 * want.abs().max(1.0),
            "sample {k}, {}: {got} vs {want}",
            row["map"]
        );
    }
    // Image, mask and five maps, 128 pixels each and 4 apart.
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(out.join("panels/sample-002.png")).unwrap(),
    ));
    let info = decoder.read_info().unwrap().info().clone();
    assert_eq!((info.width, info.height), (7 * 128 + 6 * 4, 128));
}

/// A copy of the CLEVR-XAI fixture's question file and masks (its images stay where they
/// are: `--images` names them).
fn xai_copy(root: &Path) {
    let masks = root.join("ground_truth_simple_questions_single_object");
    std::fs::create_dir_all(&masks).unwrap();
    let from = xai_root();
    std::fs::copy(
        from.join("CLEVR-XAI_simple_questions.json"),
        root.join("CLEVR-XAI_simple_questions.json"),
    )
    .unwrap();
    for k in 0..2 {
        let name = format!("ground_truth_simple_questions_single_object/{k}.npy");
        std::fs::copy(from.join(&name), root.join(&name)).unwrap();
    }
}

#[test]
fn bad_clevr_xai_requests_exit_with_code_2_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("rn-clevr");
    clevr_model(&model, "cyan");
    let root = dir.path().join("xai");
    xai_copy(&root);
    let images = xai_root().join("../CLEVR-XAI_v1.0_images_masks/images");
    let out = dir.path().join("sanity");
    let images_arg = ["--images", s(&images)];
    let refused = |data: &Path, extra: &[&str], needles: &[&str]| {
        let run = sanity(
            &model,
            data,
            &out,
            &[&["--samples", "3"][..], extra].concat(),
        );
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{stderr}");
        for needle in needles {
            assert!(stderr.contains(needle), "{needle}: {stderr}");
        }
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(!out.exists());
    };
    // A word outside the model's dictionary: the question file and the word.
    refused(
        &root,
        &images_arg,
        &["CLEVR-XAI_simple_questions.json", "'cyan'"],
    );
    clevr_model(&model, "");
    refused(&root, &["--questions", "medium"], &["simple or complex"]);
    refused(
        &root,
        &["--questions", "complex"],
        &["CLEVR-XAI_complex_questions.json"],
    );
    refused(
        &root,
        &["--ground-truth", "all_objects", "--images", s(&images)],
        &["ground_truth_simple_questions_all_objects"],
    );
    // Without --images the copy has no image folder.
    refused(&root, &[], &["images", "missing"]);
    // (a) needs another answer of the category of each question's answer.
    let path = model.join("vocabulary.json");
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    v["answers"].as_object_mut().unwrap().remove("rubber");
    std::fs::write(&path, v.to_string()).unwrap();
    refused(
        &root,
        &images_arg,
        &["CLEVR-XAI_simple_questions.json", "question 0", "'metal'"],
    );
    clevr_model(&model, "");
    // Not CLEVR-XAI for a CLEVR network.
    refused(&model, &[], &["not a CLEVR-XAI folder"]);
    // A mask that is not boolean.
    let mask = root.join("ground_truth_simple_questions_single_object/1.npy");
    ndarray_npy::write_npy(&mask, &ndarray::Array2::<f64>::zeros((128, 128))).unwrap();
    refused(&root, &images_arg, &["1.npy"]);
    // A mask of the render's size is resized to the maps' (CLEVR-XAI's evaluation): one that
    // covers the whole image holds all of every map's relevance.
    ndarray_npy::write_npy(&mask, &ndarray::Array2::<bool>::from_elem((320, 480), true)).unwrap();
    let resized = dir.path().join("resized");
    let extra = [&["--samples", "3", "--precision", "f32"][..], &images_arg].concat();
    ok(sanity(&model, &root, &resized, &extra));
    let samples = summary(&resized)["samples"].clone();
    let whole = csv_rows(&resized)
        .into_iter()
        .filter(|row| {
            let k: usize = row["sample"].parse().unwrap();
            samples[k]["question"] == 1 && row["map"] == "true"
        })
        .collect::<Vec<_>>();
    assert_eq!(whole.len(), 1);
    for measure in ["mass_accuracy", "rank_accuracy"] {
        let v: f64 = whole[0][measure].parse().unwrap();
        assert!((v - 1.0).abs() <= 1e-12, "{measure}: {v}");
    }
    // A Sort-of-CLEVR network on CLEVR-XAI, CLEVR-XAI options on Sort-of-CLEVR data.
    let soc = dir.path().join("soc");
    generate(&soc, 1, 3);
    let soc_model = dir.path().join("rn-soc");
    std::fs::create_dir_all(&soc_model).unwrap();
    TorchRelationNet::seeded(1, Task::SortOfClevr, Device::Cpu)
        .save(&soc_model)
        .unwrap();
    let run = sanity(&soc_model, &xai_root(), &out, &["--samples", "3"]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("Sort-of-CLEVR network"));
    let run = sanity(
        &soc_model,
        &soc,
        &out,
        &["--samples", "3", "--questions", "simple"],
    );
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("CLEVR-XAI"));
    assert!(!out.exists());
}
