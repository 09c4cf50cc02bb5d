//! Training and evaluating a relation network: one epoch of Adam steps over a shuffled
//! [`QuestionSet`], and the accuracy per question type.

use tch::Device;

use super::data::QuestionSet;
use super::net::TorchRelationNet;
use super::optimiser::{Adam, TrainSettings};

/// Accuracy per question type (Sort-of-CLEVR: shape, left, top, closest, furthest, count;
/// CLEVR: exist, count, compare-integer, compare-attribute, query-attribute), per kind
/// (Sort-of-CLEVR) and overall, with the mean loss.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Accuracy {
    pub loss: f64,
    pub overall: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub non_relational: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relational: Option<f64>,
    pub by_type: Vec<TypeAccuracy>,
    pub questions: usize,
}

/// The accuracy on the questions of one type.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TypeAccuracy {
    #[serde(rename = "type")]
    pub name: String,
    pub accuracy: f64,
    pub questions: usize,
}

/// One epoch over `set` in a shuffled order, updating the network; the mean loss.
pub fn train_epoch(
    net: &TorchRelationNet,
    opt: &mut Adam,
    set: &dyn QuestionSet,
    settings: &TrainSettings,
    epoch: usize,
    mut progress: impl FnMut(usize),
) -> f64 {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let mut order: Vec<usize> = (0..set.num_questions()).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(settings.seed);
    rng.set_stream(epoch as u64);
    order.shuffle(&mut rng);
    // The augmentation draws from a stream of its own, so that it leaves the order as it is.
    let mut augment = settings.augment.then(|| {
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(settings.seed);
        r.set_stream((1 << 32) + epoch as u64);
        r
    });
    let learning_rate = settings.learning_rate(epoch);
    let (mut total, mut count) = (0.0, 0usize);
    for chunk in order.chunks(settings.batch) {
        let (images, questions, answers) = set.batch(chunk, augment.as_mut());
        let loss = net
            .forward(&images, &questions, true)
            .cross_entropy_for_logits(&answers);
        opt.backward_step(&loss, learning_rate, settings.weight_decay, settings.clip);
        total += loss.double_value(&[]) * chunk.len() as f64;
        count += chunk.len();
        progress(chunk.len());
    }
    total / count.max(1) as f64
}

/// The network's accuracy on `set` (batch norm with running statistics), `batch` questions
/// at a time.
pub fn evaluate(net: &TorchRelationNet, set: &dyn QuestionSet, batch: usize) -> Accuracy {
    let _guard = tch::no_grad_guard();
    let n = set.num_questions();
    let mut right = vec![false; n];
    let mut loss = 0.0;
    for start in (0..n).step_by(batch.max(1)) {
        let end = (start + batch).min(n);
        let idx: Vec<usize> = (start..end).collect();
        let (images, questions, answers) = set.batch(&idx, None);
        let logits = net.forward(&images, &questions, false);
        loss += logits.cross_entropy_for_logits(&answers).double_value(&[]) * (end - start) as f64;
        let hit: Vec<bool> = Vec::try_from(
            &logits
                .argmax(1, false)
                .eq_tensor(&answers)
                .to_device(Device::Cpu),
        )
        .expect("booleans");
        right[start..end].copy_from_slice(&hit);
    }
    let tally = |keep: &dyn Fn(usize) -> bool| {
        let picked: Vec<bool> = (0..n).filter(|&i| keep(i)).map(|i| right[i]).collect();
        let hits = picked.iter().filter(|&&r| r).count();
        (hits as f64 / picked.len().max(1) as f64, picked.len())
    };
    let (names, of) = set.types();
    let relational = set.relational();
    let kind = |want: bool| relational.as_ref().map(|r| tally(&|i| r[i] == want).0);
    Accuracy {
        loss: loss / n.max(1) as f64,
        overall: tally(&|_| true).0,
        non_relational: kind(false),
        relational: kind(true),
        by_type: names
            .into_iter()
            .enumerate()
            .map(|(t, name)| {
                let (accuracy, questions) = tally(&|i| of[i] == Some(t));
                TypeAccuracy {
                    name,
                    accuracy,
                    questions,
                }
            })
            .collect(),
        questions: n,
    }
}
