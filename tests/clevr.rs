//! The CLEVR v1.0 and CLEVR-XAI v1.0 loaders on tiny data sets written in those formats
//! (tests/data/clevr/, scripts/make_clevr_fixtures.py):
//!
//! - question files: images, answers (strings, and CLEVR-XAI's booleans and integers), the
//!   test split without answers, CLEVR-XAI's masks by question index (one question without);
//! - images: decoded (RGBA renders), resized to 128×128 byte for byte as Pillow 13.0.0's
//!   bilinear resize does, scaled to [−1, 1];
//! - the tokenizer gives the reference tokenizer's tokens; dictionaries are 1-based;
//! - bad folders and files are refused with an error that names the file.

use std::path::{Path, PathBuf};

use dtdcert::repro::clevr::{
    clevr_questions, clevr_xai_questions, load_image, load_mask, read_png_rgb, tokenize, Category,
    Vocabulary, XaiQuestions,
};
use dtdcert::repro::resize::resize_bilinear;
use ndarray::{Array2, Array3};
use serde_json::Value;

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/clevr")
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(data().join("expected.json")).unwrap()).unwrap()
}

fn tokens_of(expected: &Value, set: &str) -> Vec<Vec<String>> {
    serde_json::from_value(expected["questions"][set].clone()).unwrap()
}

#[test]
fn clevr_questions_images_and_tokens() {
    let root = data().join("CLEVR_v1.0");
    let val = clevr_questions(&root, "val").unwrap();
    assert_eq!(val.len(), 4);
    let answers: Vec<_> = val.iter().map(|q| q.answer.clone().unwrap()).collect();
    assert_eq!(answers, ["no", "2", "purple", "yes"]);
    assert_eq!(val[2].image, root.join("images/val/CLEVR_val_000001.png"));
    assert_eq!(val[3].index, 3);
    assert_eq!(val[0].family, Some(29));
    // The type comes from the program's last function.
    assert!(val.iter().all(|q| q.category == Some(Category::Count)));
    assert!(val.iter().all(|q| q.mask.is_none()));
    let want = tokens_of(&expected(), "CLEVR_val");
    for (q, tokens) in val.iter().zip(&want) {
        assert_eq!(&tokenize(&q.text), tokens);
    }
    // Dictionaries: 1-based, in order of first appearance.
    let v = Vocabulary::build(&val);
    assert_eq!(v.words["are"], 1);
    assert_eq!(v.words["there"], 2);
    assert_eq!(v.words.len(), {
        let mut all: Vec<&String> = want.iter().flatten().collect();
        all.sort();
        all.dedup();
        all.len()
    });
    assert_eq!(v.answers["no"], 1);
    assert_eq!(v.answers["yes"], 4);
    let encoded = v.encode(&val[1]).unwrap();
    assert_eq!(encoded.len(), want[1].len());
    assert_eq!(encoded[0], v.words["what"]);
    // The test split has neither answers nor programs, and an image the folder lacks.
    let err = clevr_questions(&root, "test").unwrap_err().to_string();
    assert!(
        err.contains("CLEVR_test_000000.png") && err.contains("missing"),
        "{err}"
    );
    let unknown = dtdcert::repro::clevr::ClevrQuestion {
        text: "What is a zorb?".into(),
        ..val[0].clone()
    };
    let err = v.encode(&unknown).unwrap_err().to_string();
    assert!(err.contains("'zorb'"), "{err}");
}

#[test]
fn images_are_resized_as_pillow_does_and_scaled() {
    let expected = expected();
    let images = expected["images"].as_object().unwrap();
    assert_eq!(images.len(), 4);
    for (png, npy) in images {
        let (rgb, h, w) = read_png_rgb(&data().join(png)).unwrap();
        let pillow: Array3<u8> = ndarray_npy::read_npy(data().join(npy.as_str().unwrap())).unwrap();
        assert_eq!(pillow.dim(), (128, 128, 3));
        let ours = resize_bilinear(&rgb, (h, w, 3), (128, 128));
        let differing = ours
            .iter()
            .zip(pillow.iter())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(
            differing, 0,
            "{png}: {differing} bytes differ from Pillow's"
        );
        let x = load_image(&data().join(png)).unwrap();
        assert_eq!(x.dim(), (3, 128, 128));
        for ((c, y, xx), v) in x.indexed_iter() {
            let byte = f32::from(pillow[[y, xx, c]]);
            assert_eq!(*v, byte / 127.5 - 1.0);
        }
        assert!(x.iter().all(|v| (-1.0..=1.0).contains(v)));
    }
}

#[test]
fn clevr_xai_questions_and_masks() {
    let root = data().join("CLEVR-XAI_v1.0");
    let qs = clevr_xai_questions(&root, XaiQuestions::Simple, "single_object", None).unwrap();
    assert_eq!(qs.len(), 3);
    let answers: Vec<_> = qs.iter().map(|q| q.answer.clone().unwrap()).collect();
    assert_eq!(answers, ["metal", "yes", "0"]);
    // The images are found in the release's sibling folder.
    assert!(qs[0]
        .image
        .ends_with("CLEVR-XAI_v1.0_images_masks/images/CLEVR_unique_000000.png"));
    let want = tokens_of(&expected(), "CLEVR-XAI_simple");
    for (q, tokens) in qs.iter().zip(&want) {
        assert_eq!(&tokenize(&q.text), tokens);
    }
    // Questions 0 and 1 have masks; question 2 (no target object) has none.
    let masks: Vec<Option<Array2<bool>>> = qs
        .iter()
        .map(|q| q.mask.as_ref().map(|m| load_mask(m).unwrap()))
        .collect();
    assert!(masks[2].is_none());
    for m in masks.iter().take(2) {
        let m = m.as_ref().unwrap();
        assert_eq!(m.dim(), (128, 128));
        // One 17×23 rectangle each.
        assert_eq!(m.iter().filter(|&&b| b).count(), 17 * 23);
    }
    // Another ground-truth kind is a folder the fixture lacks: the error names it.
    let err = clevr_xai_questions(&root, XaiQuestions::Simple, "all_objects", None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ground_truth_simple_questions_all_objects"),
        "{err}"
    );
    let err = clevr_xai_questions(&root, XaiQuestions::Complex, "unique", None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("CLEVR-XAI_complex_questions.json"), "{err}");
}

#[test]
fn bad_files_are_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("CLEVR_v1.0");
    std::fs::create_dir_all(root.join("questions")).unwrap();
    std::fs::create_dir_all(root.join("images/val")).unwrap();
    let questions = root.join("questions/CLEVR_val_questions.json");
    // No question file.
    let err = clevr_questions(&root, "val").unwrap_err().to_string();
    assert!(err.contains("CLEVR_val_questions.json"), "{err}");
    // Not JSON of the format: the file and the place.
    std::fs::write(&questions, "{\"questions\": [{\"question\": \"Why?\"}]}").unwrap();
    let err = clevr_questions(&root, "val").unwrap_err().to_string();
    assert!(
        err.contains("CLEVR_val_questions.json") && err.contains("image_filename"),
        "{err}"
    );
    std::fs::write(
        &questions,
        r#"{"questions": [{"question": "Why?", "image_filename": "a.png", "answer": [1]}]}"#,
    )
    .unwrap();
    let err = clevr_questions(&root, "val").unwrap_err().to_string();
    assert!(
        err.contains("questions[0]") && err.contains("answer"),
        "{err}"
    );
    assert!(clevr_questions(&root, "dev").is_err());
    // An image that is not a PNG, a mask that is not 2-D.
    let fake = dir.path().join("fake.png");
    std::fs::write(&fake, b"not a png").unwrap();
    let err = load_image(&fake).unwrap_err().to_string();
    assert!(err.contains("fake.png") && err.contains("PNG"), "{err}");
    let mask = dir.path().join("3d.npy");
    ndarray_npy::write_npy(&mask, &Array3::<bool>::from_elem((2, 4, 4), true)).unwrap();
    let err = load_mask(&mask).unwrap_err().to_string();
    assert!(err.contains("3d.npy") && err.contains("2-D"), "{err}");
    let floats = dir.path().join("floats.npy");
    ndarray_npy::write_npy(&floats, &Array2::<f64>::zeros((4, 4))).unwrap();
    let err = load_mask(&floats).unwrap_err().to_string();
    assert!(err.contains("floats.npy"), "{err}");
}
