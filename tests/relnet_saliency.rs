//! α1β0 saliency of the libtorch relation network (feature `torch`):
//!
//! - where the reference's conventions and DTD's z⁺ rule coincide (no coordinate or question
//!   weights in `g`'s first layer, the two object slots weighted alike, so a self-pair's split
//!   equals its summed weight), the saliency is the exact engine's z⁺ explanation of the
//!   exported model: with batch norm folded, and with batch norm passed through (kept as a
//!   layer of its own under the z rule);
//! - in a network without biases every step conserves relevance, so the pixels' relevance plus
//!   the dropped coordinate and question slices is the logit, in both conventions;
//! - randomisation re-initialises exactly the layers asked for, from the top (CLEVR's question
//!   encoder last).

#![cfg(feature = "torch")]

use std::path::Path;

use dtdcert::dtd::{explain, BiasMode, DtdSettings, LayerRule, Rule};
use dtdcert::model::forward::forward;
use dtdcert::model::relnet::{Options, RelationNetwork};
use dtdcert::repro::sort_of_clevr::{load_set, write_set, Loaded, QUESTION_WIDTH, SIZE};
use dtdcert::torch::relnet::{Task, TorchRelationNet};
use dtdcert::torch::saliency::BatchNormRelevance;
use tch::{Device, Kind, Tensor};

/// A seeded network saved in `dir` with its tensors passed through `edit`, loaded back by
/// both engines (libtorch in f64).
fn network(
    dir: &Path,
    edit: impl Fn(&str, &Tensor) -> Tensor,
) -> (TorchRelationNet, RelationNetwork) {
    TorchRelationNet::seeded(7, Task::SortOfClevr, Device::Cpu)
        .save(dir)
        .unwrap();
    let path = dir.join("rn.safetensors");
    let edited: Vec<(String, Tensor)> = Tensor::read_safetensors(&path)
        .unwrap()
        .into_iter()
        .map(|(name, t)| {
            let e = edit(&name, &t);
            (name, e)
        })
        .collect();
    Tensor::write_safetensors(&edited, &path).unwrap();
    let mut net = TorchRelationNet::load(dir, Device::Cpu).unwrap();
    net.set_kind(Kind::Double);
    (net, RelationNetwork::load(&dir.join("rn.json")).unwrap())
}

/// Uniform values in [0, 1) shaped like `t`, from a generator of the test's own (libtorch's
/// is shared by the tests running beside this one).
fn uniform(name: &str, t: &Tensor) -> Tensor {
    use rand::{Rng, SeedableRng};
    let seed = name
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let values: Vec<f32> = (0..t.numel()).map(|_| rng.random::<f32>()).collect();
    Tensor::from_slice(&values).view(t.size().as_slice())
}

/// Batch norm with statistics and an affine map far from the identity, a third of its scales
/// negative (α1β0 ignores a positive scale of a neuron's weights, so folding batch norm only
/// changes the map through channels whose scale is negative).
fn random_batch_norm(name: &str, t: &Tensor) -> Option<Tensor> {
    let u = || uniform(name, t);
    if !name.starts_with("conv.") || name.ends_with(".weight") && t.dim() == 4 {
        return None;
    }
    Some(match name.rsplit('.').next().unwrap() {
        "weight" => u() * 1.5 - 0.5,
        "bias" => (u() - 0.5) * 0.4,
        "running_mean" => (u() - 0.5) * 0.2,
        "running_var" => u() * 1.5 + 0.5,
        _ => return None,
    })
}

fn set(dir: &Path) -> Loaded {
    write_set(dir, 3, 1, |_| {}).unwrap();
    load_set(dir, None).unwrap()
}

fn tensors(data: &Loaded, questions: &[usize]) -> (Tensor, Tensor, Tensor) {
    let side = SIZE as i64;
    let image = Tensor::from_slice(&data.images)
        .view([1, 3, side, side])
        .to_kind(Kind::Double);
    let images = image.repeat([questions.len() as i64, 1, 1, 1]);
    let q: Vec<f32> = questions
        .iter()
        .flat_map(|&i| data.questions[i * QUESTION_WIDTH..(i + 1) * QUESTION_WIDTH].to_vec())
        .collect();
    let q = Tensor::from_slice(&q)
        .view([questions.len() as i64, QUESTION_WIDTH as i64])
        .to_kind(Kind::Double);
    let answers: Vec<i64> = questions.iter().map(|&i| data.answers[i] as i64).collect();
    (images, q, Tensor::from_slice(&answers))
}

#[test]
fn saliency_is_the_exact_engines_z_plus_explanation_where_the_conventions_coincide() {
    let dir = tempfile::tempdir().unwrap();
    let (net, exact) = network(dir.path(), |name, t| {
        if let Some(bn) = random_batch_norm(name, t) {
            return bn;
        }
        if name != "g.0.weight" {
            return t.shallow_clone();
        }
        // Columns: object j (24 channels, x, y), object i (the same), question.
        let w = t.copy();
        let _ = w.narrow(1, 24, 2).zero_();
        w.narrow(1, 26, 26).copy_(&w.narrow(1, 0, 26));
        let _ = w.narrow(1, 52, QUESTION_WIDTH as i64).zero_();
        w
    });
    let data = set(&dir.path().join("set"));
    let questions = [0, 3, 10, 15];
    let (images, q, answers) = tensors(&data, &questions);
    let pixels_of = |convention| {
        let s = net.saliency(&images, &q, &answers, convention);
        Vec::<f64>::try_from(s.pixels.flatten(0, -1)).unwrap()
    };
    let per_sample = 3 * SIZE * SIZE;
    assert_ne!(
        pixels_of(BatchNormRelevance::Folded),
        pixels_of(BatchNormRelevance::PassThrough),
        "negative scales: folding must change the map"
    );
    for (convention, keep_batch_norm) in [
        (BatchNormRelevance::Folded, false),
        (BatchNormRelevance::PassThrough, true),
    ] {
        let ours = pixels_of(convention);
        let settings = DtdSettings {
            rule: Rule::ZPlus,
            bias: BiasMode::Ignore,
            denominator_threshold: 0.0,
            // Kept batch norm: layers 2, 4, 6, 8 under the z rule pass relevance through.
            layer_rules: if keep_batch_norm {
                (1..=4)
                    .map(|k| LayerRule {
                        layer: 2 * k,
                        rule: Rule::Z,
                    })
                    .collect()
            } else {
                Vec::new()
            },
            ..DtdSettings::default()
        };
        let x: Vec<f64> = data.images.iter().map(|&v| f64::from(v)).collect();
        for (k, &i) in questions.iter().enumerate() {
            let question: Vec<f64> = data.questions[i * QUESTION_WIDTH..(i + 1) * QUESTION_WIDTH]
                .iter()
                .map(|&v| f64::from(v))
                .collect();
            let chain = exact
                .network(&question, Options { keep_batch_norm })
                .unwrap();
            let trace = forward(&chain, &x);
            let e = explain(&chain, &trace, &settings, data.answers[i], false);
            let theirs = e.input_relevance();
            let ours = &ours[k * per_sample..(k + 1) * per_sample];
            let scale = theirs.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(scale > 0.0, "question {i}: an all-zero explanation");
            for (p, (a, b)) in ours.iter().zip(theirs).enumerate() {
                assert!(
                    (a - b).abs() <= 1e-9 * scale,
                    "{convention:?}, question {i}, pixel value {p}: {a} (torch) vs {b} (exact)"
                );
            }
        }
    }
}

#[test]
fn without_biases_pixels_and_dropped_slices_hold_the_whole_logit() {
    let dir = tempfile::tempdir().unwrap();
    let (net, _) = network(dir.path(), |name, t| {
        if name.ends_with(".bias") || name.ends_with(".running_mean") {
            return t.zeros_like();
        }
        if name.ends_with(".running_var") {
            return uniform(name, t) * 1.5 + 0.5;
        }
        if name.starts_with("conv.") && name.ends_with(".weight") && t.dim() == 1 {
            return uniform(name, t) + 0.5;
        }
        t.shallow_clone()
    });
    let data = set(&dir.path().join("set"));
    let questions: Vec<usize> = (0..20).collect();
    let (images, q, answers) = tensors(&data, &questions);
    for convention in [BatchNormRelevance::Folded, BatchNormRelevance::PassThrough] {
        let s = net.saliency(&images, &q, &answers, convention);
        let pixels = Vec::<f64>::try_from(s.pixels.sum_dim_intlist(
            &[1i64, 2, 3][..],
            false,
            Kind::Double,
        ))
        .unwrap();
        let dropped = Vec::<f64>::try_from(&s.dropped).unwrap();
        let logit = Vec::<f64>::try_from(&s.logit).unwrap();
        for k in 0..questions.len() {
            assert!(dropped[k] != 0.0, "question {k}: nothing dropped");
            let total = pixels[k] + dropped[k];
            assert!(
                (total - logit[k]).abs() <= 1e-9 * logit[k].abs(),
                "{convention:?}, question {k}: pixels {} + dropped {} = {total}, logit {}",
                pixels[k],
                dropped[k],
                logit[k]
            );
        }
    }
}

#[test]
fn randomisation_replaces_exactly_the_top_layers() {
    let mut vocabulary = dtdcert::repro::clevr::Vocabulary::default();
    vocabulary.words.insert("cube".into(), 1);
    vocabulary.answers.insert("yes".into(), 1);
    // f, g, the convolution blocks, and CLEVR's question encoder last.
    for (task, count) in [
        (Task::SortOfClevr, 3 + 4 + 4),
        (Task::Clevr { vocabulary }, 3 + 4 + 4 + 1),
    ] {
        let net = TorchRelationNet::seeded(1, task.clone(), Device::Cpu);
        let fresh = TorchRelationNet::seeded(2, task, Device::Cpu);
        let dir = tempfile::tempdir().unwrap();
        let weights = |n: &TorchRelationNet, name: &str| {
            let path = dir.path().join(format!("{name}.safetensors"));
            n.save_weights(&path).unwrap();
            Tensor::read_safetensors(&path)
                .unwrap()
                .into_iter()
                .collect::<std::collections::HashMap<_, _>>()
        };
        let (original, other) = (weights(&net, "a"), weights(&fresh, "b"));
        let layers = net.layers_from_top();
        assert_eq!(layers.len(), count);
        for levels in [0, 1, 5, layers.len() - 1, layers.len()] {
            let randomised = weights(&net.randomised(levels, 2), "c");
            let replaced: Vec<&String> = layers[..levels].iter().flat_map(|(_, p)| p).collect();
            assert_eq!(randomised.len(), original.len());
            for (name, t) in &randomised {
                let expected = if replaced.iter().any(|p| name.starts_with(p.as_str())) {
                    &other[name]
                } else {
                    &original[name]
                };
                assert!(t.equal(expected), "{levels} levels: {name}");
            }
        }
    }
}
