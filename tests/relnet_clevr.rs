//! The CLEVR relation network (feature `torch`) on a tiny CLEVR v1.0 folder written here:
//!
//! - `relnet train` on the train split writes the model with its dictionaries, and per epoch
//!   the accuracy on the val split per CLEVR question type;
//! - the exact engine loads the saved description with its question encoder: the f64 LSTM
//!   gives the question vectors libtorch computes, and the chain with that vector gives the
//!   logits of the trained network;
//! - a batch encodes each question as it would be encoded alone (the padding never reaches
//!   the LSTM's state);
//! - the reference schedule: its learning rates, weight decay and gradient clipping;
//! - bad data and mismatched requests exit with code 2.

#![cfg(feature = "torch")]

mod relnet_common;

use std::path::Path;

use dtdcert::model::forward::forward;
use dtdcert::model::relnet::{Options, RelationNetwork};
use dtdcert::repro::clevr::{clevr_questions, load_image, Category, Vocabulary};
use dtdcert::torch::relnet::{
    clip_scale, question_tokens, Adam, Task, TorchRelationNet, TrainSettings,
};
use relnet_common::{clevr_root, dtdcert, generate, ok, s, TRAIN, VAL};
use serde_json::{json, Value};
use tch::{Device, Kind, Tensor};

fn report(model: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(model.join("training.json")).unwrap()).unwrap()
}

#[test]
fn clevr_training_exports_a_model_the_exact_engine_computes() {
    let dir = tempfile::tempdir().unwrap();
    let (root, model) = (dir.path().join("CLEVR_v1.0"), dir.path().join("model"));
    clevr_root(&root);
    ok(dtdcert(&[
        "relnet",
        "train",
        "-q",
        "--data",
        s(&root),
        "--eval",
        s(&root),
        "--epochs",
        "2",
        "--batch",
        "4",
        "--learning-rate",
        "1e-3",
        "--seed",
        "3",
        "--out",
        s(&model),
    ]));
    for file in [
        "rn.json",
        "rn.safetensors",
        "vocabulary.json",
        "training.json",
    ] {
        assert!(model.join(file).is_file(), "{file}");
    }
    let report = report(&model);
    assert_eq!(report["task"], "CLEVR");
    assert_eq!(report["questions"], 8);
    assert_eq!(report["images"], 2);
    let epochs = report["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 2);
    assert!(epochs
        .iter()
        .all(|e| e["loss"].as_f64().unwrap().is_finite()));
    // Per question type, as many val questions as the val programs end in that type.
    let eval = &epochs[1]["eval"];
    assert_eq!(eval["questions"], 4);
    assert!(eval.get("relational").is_none());
    let by_type = eval["by_type"].as_array().unwrap();
    assert_eq!(by_type.len(), Category::ALL.len());
    for (row, category) in by_type.iter().zip(Category::ALL) {
        let want = VAL
            .iter()
            .filter(|q| Category::of(q.3) == Some(category))
            .count();
        assert_eq!(row["type"], category.name());
        assert_eq!(row["questions"], want, "{}", category.name());
    }

    // The description carries the question encoder and the training dictionaries.
    let exact = RelationNetwork::load(&model.join("rn.json")).unwrap();
    assert_eq!(exact.image(), [3, 128, 128]);
    assert_eq!((exact.question_width(), exact.outputs()), (128, 29));
    assert_eq!(exact.objects(), 64);
    let encoder = exact.question_encoder().expect("a question encoder");
    let train = clevr_questions(&root, "train").unwrap();
    let vocabulary = Vocabulary::build(&train);
    assert_eq!(encoder.vocabulary, vocabulary);

    // In f64, the exact engine's encoder and chain compute what libtorch computes.
    let mut torch = TorchRelationNet::load(&model, Device::Cpu).unwrap();
    torch.set_kind(Kind::Double);
    let _guard = tch::no_grad_guard();
    let val = clevr_questions(&root, "val").unwrap();
    for q in val.iter().step_by(3) {
        let words = vocabulary.encode(q).unwrap();
        let vector = encoder.encode(&words);
        assert_eq!(vector, encoder.encode_text(&q.text).unwrap());
        let tokens = question_tokens(&[&words[..]]);
        let from_torch: Vec<f64> =
            Vec::try_from(&torch.question_vectors(&tokens).view([-1])).unwrap();
        for (a, b) in vector.iter().zip(&from_torch) {
            assert!((a - b).abs() <= 1e-12, "{a} vs {b}");
        }
        let image = load_image(&q.image).unwrap();
        let x: Vec<f64> = image.iter().map(|&v| f64::from(v)).collect();
        let logits = torch.forward(
            &Tensor::from_slice(&x).view([1, 3, 128, 128]),
            &tokens,
            false,
        );
        let logits: Vec<f64> = Vec::try_from(&logits.view([-1])).unwrap();
        let chain = exact.network(&vector, Options::default()).unwrap();
        let trace = forward(&chain, &x);
        let scale = logits.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (a, b) in logits.iter().zip(trace.output()) {
            assert!(
                (a - b).abs() <= 1e-9 * scale,
                "question {}: {a} (torch) vs {b} (exact)",
                q.index
            );
        }
    }

    // `relnet eval` on the val split reports the last epoch's accuracy.
    let out = ok(dtdcert(&[
        "relnet",
        "eval",
        "--model",
        s(&model),
        "--data",
        s(&root),
    ]));
    let evaluated: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(evaluated["overall"], eval["overall"]);
    assert_eq!(evaluated["by_type"], eval["by_type"]);
}

#[test]
fn a_batch_encodes_each_question_as_it_is_encoded_alone() {
    let train: Vec<_> = TRAIN
        .iter()
        .map(|&(i, t, a, _)| dtdcert::repro::clevr::ClevrQuestion {
            index: i,
            image: Default::default(),
            text: t.into(),
            answer: Some(a.into()),
            family: None,
            category: None,
            mask: None,
        })
        .collect();
    let vocabulary = Vocabulary::build(&train);
    let net = TorchRelationNet::seeded(
        5,
        Task::Clevr {
            vocabulary: vocabulary.clone(),
        },
        Device::Cpu,
    );
    let words: Vec<Vec<usize>> = train
        .iter()
        .map(|q| vocabulary.encode(q).unwrap())
        .collect();
    let lengths: Vec<usize> = words.iter().map(Vec::len).collect();
    assert!(lengths.iter().min() < lengths.iter().max(), "{lengths:?}");
    let rows: Vec<&[usize]> = words.iter().map(|w| &w[..]).collect();
    let _guard = tch::no_grad_guard();
    let batch = net.question_vectors(&question_tokens(&rows));
    for (k, w) in words.iter().enumerate() {
        let alone = net.question_vectors(&question_tokens(&[&w[..]]));
        let diff = (batch.get(k as i64) - alone.get(0))
            .abs()
            .max()
            .double_value(&[]);
        assert!(diff <= 1e-6, "question {k}: {diff}");
    }
    // The rows are the words reversed behind zeros.
    let tokens: Vec<i64> =
        Vec::try_from(&question_tokens(&[&[4, 5][..], &[1, 2, 3][..]]).view([-1])).unwrap();
    assert_eq!(tokens, [0, 5, 4, 3, 2, 1]);
}

#[test]
fn the_reference_schedule_doubles_decays_and_clips() {
    let settings = TrainSettings {
        epochs: 200,
        batch: 640,
        learning_rate: 5e-6,
        doubling: Some((20, 5e-4)),
        weight_decay: 1e-4,
        clip: Some(50.0),
        augment: true,
        seed: 0,
    };
    assert_eq!(settings.learning_rate(1), 5e-6);
    assert_eq!(settings.learning_rate(20), 5e-6);
    assert_eq!(settings.learning_rate(21), 1e-5);
    assert_eq!(settings.learning_rate(121), 5e-6 * 64.0);
    assert_eq!(settings.learning_rate(141), 5e-4);
    assert_eq!(settings.learning_rate(200), 5e-4);

    // Clipping: gradients of norm 5 scaled to 1, smaller ones left alone.
    let grads = [
        Tensor::from_slice(&[3.0f64]),
        Tensor::from_slice(&[0.0f64, 4.0]),
    ];
    assert_eq!(clip_scale(&grads, 1.0), Some(1.0 / (5.0 + 1e-6)));
    assert_eq!(clip_scale(&grads, 5.0), None);

    // Weight decay alone (a loss whose gradient is zero): the first step moves each
    // parameter by lr · λp / (λ|p| + ε), as PyTorch's Adam does.
    let mut net = TorchRelationNet::seeded(2, Task::SortOfClevr, Device::Cpu);
    net.set_kind(Kind::Double);
    let before = parameters(&net);
    let mut opt = Adam::new(&net);
    let zero: Tensor = before
        .iter()
        .map(|(name, _)| (net_var(&net, name) * 0.0).sum(Kind::Double))
        .fold(Tensor::from(0.0f64), |a, b| a + b);
    let (lr, decay) = (1e-3, 1e-4);
    opt.backward_step(&zero, lr, decay, Some(50.0));
    let after = parameters(&net);
    let mut moved = 0;
    for ((name, p0), (_, p1)) in before.iter().zip(&after) {
        for (a, b) in p0.iter().zip(p1) {
            let want = a - lr * decay * a / (decay * a.abs() + 1e-8);
            assert!(
                (b - want).abs() <= 1e-15 + 1e-9 * a.abs(),
                "{name}: {b} vs {want}"
            );
            moved += usize::from(a != b);
        }
    }
    assert!(moved > 1000, "{moved}");
}

fn net_var(net: &TorchRelationNet, name: &str) -> Tensor {
    net.variables().remove(name).unwrap()
}

/// The trainable parameters by name, as f64 values.
fn parameters(net: &TorchRelationNet) -> Vec<(String, Vec<f64>)> {
    let mut named: Vec<(String, Vec<f64>)> = net
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .map(|(n, t)| (n, Vec::try_from(&t.detach().view([-1])).unwrap()))
        .collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    named
}

#[test]
fn the_reference_schedule_is_recorded_and_resumed_only_with_itself() {
    let dir = tempfile::tempdir().unwrap();
    let (root, model) = (dir.path().join("CLEVR_v1.0"), dir.path().join("model"));
    clevr_root(&root);
    let train = |extra: &[&str]| {
        let base = ["relnet", "train", "-q", "--data", s(&root), "--epochs"];
        dtdcert(&[&base[..], extra].concat())
    };
    ok(train(&[
        "1",
        "--schedule",
        "reference",
        "--batch",
        "4",
        "--out",
        s(&model),
    ]));
    let written = report(&model);
    assert_eq!(written["settings"]["learning_rate"], 5e-6);
    assert_eq!(written["settings"]["batch"], 4);
    let schedule = &written["settings"]["schedule"];
    assert_eq!(schedule["name"], "reference");
    assert_eq!(schedule["doubling_every"], 20);
    assert_eq!(schedule["learning_rate_max"], 5e-4);
    assert_eq!(schedule["weight_decay"], 1e-4);
    assert_eq!(schedule["clip"], 50.0);
    assert_eq!(schedule["augment"], true);
    assert_eq!(written["epochs"][0]["learning_rate"], 5e-6);
    // Continuing it without the schedule is refused; with it, it goes on.
    let run = train(&["2", "--batch", "4", "--resume", s(&model)]);
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("the training started with"), "{stderr}");
    ok(train(&[
        "2",
        "--schedule",
        "reference",
        "--batch",
        "4",
        "--resume",
        s(&model),
    ]));
    let epochs = report(&model)["epochs"].as_array().unwrap().clone();
    assert_eq!(epochs.len(), 2);
    assert_eq!(epochs[1]["learning_rate"], 5e-6);
}

#[test]
fn bad_clevr_requests_exit_with_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("CLEVR_v1.0");
    clevr_root(&root);
    let soc = dir.path().join("soc");
    generate(&soc, 1, 0);
    let out = dir.path().join("model");
    let fails = |args: &[&str], needle: &str| {
        let run = dtdcert(args);
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(!out.exists());
    };
    let train = ["relnet", "train", "-q", "--epochs", "1", "--out", s(&out)];
    fn joined<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<&'a str> {
        [a, b].concat()
    }
    fails(
        &joined(&train, &["--data", s(&root), "--schedule", "fast"]),
        "expected plain or reference",
    );
    fails(
        &joined(&train, &["--data", s(&soc), "--schedule", "reference"]),
        "CLEVR's schedule",
    );
    fails(
        &joined(&train, &["--data", s(&root), "--eval", s(&soc)]),
        "not CLEVR",
    );
    fails(
        &joined(&train, &["--data", s(&soc), "--eval", s(&root)]),
        "Sort-of-CLEVR",
    );

    // A val question with a word the training questions never used names the file and the
    // word.
    let val = root.join("questions/CLEVR_val_questions.json");
    let original = std::fs::read_to_string(&val).unwrap();
    std::fs::write(&val, original.replace("large sphere", "enormous sphere")).unwrap();
    fails(
        &joined(&train, &["--data", s(&root), "--eval", s(&root)]),
        "'enormous'",
    );
    fails(
        &joined(&train, &["--data", s(&root), "--eval", s(&root)]),
        "CLEVR_val_questions.json",
    );
    std::fs::write(&val, &original).unwrap();
    // More answers than the network's outputs hold.
    let file = root.join("questions/CLEVR_train_questions.json");
    let original = std::fs::read_to_string(&file).unwrap();
    let mut many: Value = serde_json::from_str(&original).unwrap();
    let template = many["questions"][0].clone();
    for k in 0..29 {
        let mut q = template.clone();
        q["answer"] = json!(format!("answer{k}"));
        many["questions"].as_array_mut().unwrap().push(q);
    }
    std::fs::write(&file, many.to_string()).unwrap();
    fails(
        &joined(&train, &["--data", s(&root)]),
        "the CLEVR network's 29 outputs hold at most 28",
    );
    std::fs::write(&file, &original).unwrap();
    // A missing training file and a missing image are named.
    let moved = dir.path().join("train.json");
    std::fs::rename(&file, &moved).unwrap();
    fails(
        &joined(&train, &["--data", s(&root)]),
        "CLEVR_train_questions.json",
    );
    std::fs::rename(&moved, &file).unwrap();
    let image = root.join("images/train/CLEVR_train_000001.png");
    std::fs::remove_file(&image).unwrap();
    fails(
        &joined(&train, &["--data", s(&root)]),
        "CLEVR_train_000001.png",
    );

    // `relnet eval`: a Sort-of-CLEVR model on CLEVR data, a CLEVR model on a Sort-of-CLEVR
    // set or on the test split.
    let soc_model = dir.path().join("soc-model");
    TorchRelationNet::seeded(1, Task::SortOfClevr, Device::Cpu)
        .save(&{
            std::fs::create_dir(&soc_model).unwrap();
            soc_model.clone()
        })
        .unwrap();
    let words = Vocabulary::build(&clevr_questions(&root, "val").unwrap_or_default());
    let clevr_model = dir.path().join("clevr-model");
    std::fs::create_dir(&clevr_model).unwrap();
    TorchRelationNet::seeded(1, Task::Clevr { vocabulary: words }, Device::Cpu)
        .save(&clevr_model)
        .unwrap();
    for (model, data, extra, needle) in [
        (&soc_model, &root, &[][..], "a Sort-of-CLEVR network"),
        (&clevr_model, &soc, &[], "a CLEVR network"),
        (&clevr_model, &root, &["--split", "test"], "no answers"),
    ] {
        let base = ["relnet", "eval", "--model", s(model), "--data", s(data)];
        fails(&[&base[..], extra].concat(), needle);
    }
}
