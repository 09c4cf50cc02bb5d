//! Training and evaluating a relation network: one epoch of Adam steps over a shuffled
//! [`QuestionSet`], the accuracy per question type, and the runs of `dtdcert relnet train`
//! ([`train`]: the epochs, a checkpoint after each, `training.json`, resuming) and of
//! `dtdcert relnet eval` ([`evaluate_saved`]).
//!
//! A training folder holds `rn.json` + `rn.safetensors` (and CLEVR's `vocabulary.json`) once
//! the training is finished, `checkpoints/epoch-NNN.safetensors` (the network) and
//! `checkpoints/epoch-NNN.adam.safetensors` (the optimiser's state) after every epoch, and
//! `training.json`: the settings a resumed run must share, and per epoch the loss, the
//! learning rate, the time and the accuracy on the evaluation set. Its marker says whether
//! the training is finished.

use std::path::PathBuf;

use tch::Device;

use super::data::{clevr_split, ClevrDeviceSet, DeviceSet, QuestionSet};
use super::net::{Task, TorchRelationNet, CLEVR_OUTPUTS};
use super::optimiser::{Adam, Schedule, TrainSettings};
use crate::error::{Error, Result};
use crate::io::output_dir::{marker, marker_status, target_state, TargetState, MARKER};
use crate::io::{progress_bar, write_atomic};
use crate::repro::clevr::{clevr_question_file, clevr_questions, ClevrSet, Vocabulary};
use crate::repro::relnet_roots::is_clevr;
use crate::repro::sort_of_clevr::load_set;

/// Accuracy per question type (Sort-of-CLEVR: shape, left, top, closest, furthest, count;
/// CLEVR: exist, count, compare-integer, compare-attribute, query-attribute), per kind
/// (Sort-of-CLEVR) and overall, with the mean loss.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Accuracy {
    /// The mean cross-entropy loss per question.
    pub loss: f64,
    /// The fraction of questions whose largest logit is their answer, in [0, 1].
    pub overall: f64,
    /// The fraction right on the non-relational questions (Sort-of-CLEVR only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub non_relational: Option<f64>,
    /// The fraction right on the relational questions (Sort-of-CLEVR only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relational: Option<f64>,
    /// One entry per question type, in the set's order of types.
    pub by_type: Vec<TypeAccuracy>,
    /// The number of questions evaluated.
    pub questions: usize,
}

/// The accuracy on the questions of one type.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TypeAccuracy {
    /// The type's name (`type` in the JSON), e.g. `closest` or `compare-integer`.
    #[serde(rename = "type")]
    pub name: String,
    /// The fraction of this type's questions answered right (0 where there are none).
    pub accuracy: f64,
    /// The number of questions of this type.
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

/// A `relnet train` run.
#[derive(Clone, Debug)]
pub struct TrainingRun {
    /// A Sort-of-CLEVR set, or a CLEVR v1.0 folder (its train split).
    pub data: PathBuf,
    /// A set to measure accuracy on after every epoch (for CLEVR, a CLEVR folder: its val
    /// split).
    pub eval: Option<PathBuf>,
    /// Only the first N images of `data` (and of `eval`).
    pub images: Option<usize>,
    /// The model folder to create (absent or empty, or a finished training, which is
    /// replaced).
    pub out: Option<PathBuf>,
    /// The training to continue (read before `out`).
    pub resume: Option<PathBuf>,
    /// The schedule that filled in `settings` (`training.json` records it).
    pub schedule: Schedule,
    /// Where the tensors live.
    pub device: Device,
    /// The device as it was asked for (`training.json` records it).
    pub device_name: String,
    /// Progress bars on stderr.
    pub progress: bool,
    /// The epochs, the batch and the optimiser's settings.
    pub settings: TrainSettings,
}

/// What a finished `relnet train` run did.
#[derive(Clone, Debug)]
pub struct Trained {
    /// The model folder.
    pub dir: PathBuf,
    /// The first epoch this run trained.
    pub first: usize,
    /// The last epoch this run trained.
    pub last: usize,
    /// The training set's questions.
    pub questions: usize,
    /// The time since the first epoch began.
    pub seconds: f64,
}

/// Trains a network as `job` says: refuses an evaluation set of another kind than the data
/// and CLEVR's augmentation on Sort-of-CLEVR, reads the data (CLEVR's dictionaries from its
/// training questions), prepares a new folder or reopens the one to resume, and trains
/// epoch by epoch, saving a checkpoint and `training.json` after each and the model at the
/// end.
pub fn train(job: &TrainingRun) -> Result<Trained> {
    let settings = &job.settings;
    let device = job.device;
    let clevr = is_clevr(&job.data);
    if let Some(eval) = &job.eval {
        if is_clevr(eval) != clevr {
            return Err(Error::Usage(format!(
                "--eval {}: {} data, but --data {} is {}",
                eval.display(),
                if clevr { "not CLEVR" } else { "CLEVR" },
                job.data.display(),
                if clevr { "CLEVR" } else { "Sort-of-CLEVR" }
            )));
        }
    }
    if settings.augment && !clevr {
        return Err(Error::Usage(
            "--schedule reference is CLEVR's schedule (its augmentation is for CLEVR's images); \
             --data is a Sort-of-CLEVR set"
                .into(),
        ));
    }
    let quiet = !job.progress;
    // The data: Sort-of-CLEVR sets, or CLEVR's train and val splits with the dictionaries of
    // the training questions.
    let (soc, soc_eval, clevr_sets, task) = if clevr {
        let questions = clevr_questions(&job.data, "train")?;
        let vocabulary = Vocabulary::build(&questions);
        let outputs = CLEVR_OUTPUTS;
        if vocabulary.answers.len() >= outputs {
            return Err(Error::file(
                clevr_question_file(&job.data, "train"),
                format!(
                    "{} distinct answers; the CLEVR network's {outputs} outputs hold at most {} \
                     (output 0 is unused)",
                    vocabulary.answers.len(),
                    outputs - 1
                ),
            ));
        }
        let train = clevr_split(
            &job.data,
            "train",
            Some(questions),
            &vocabulary,
            job.images,
            quiet,
        )?;
        let held_out = job
            .eval
            .as_deref()
            .map(|d| clevr_split(d, "val", None, &vocabulary, job.images, quiet))
            .transpose()?;
        (
            None,
            None,
            Some((train, held_out)),
            Task::Clevr { vocabulary },
        )
    } else {
        let data = load_set(&job.data, job.images)?;
        let held_out = job
            .eval
            .as_deref()
            .map(|d| load_set(d, job.images))
            .transpose()?;
        (Some(data), held_out, None, Task::SortOfClevr)
    };
    let (train_set, eval_set): (Box<dyn QuestionSet + '_>, Option<Box<dyn QuestionSet + '_>>) =
        match (&soc, &clevr_sets) {
            (Some(data), _) => (
                Box::new(DeviceSet::new(data, device)),
                soc_eval
                    .as_ref()
                    .map(|d| Box::new(DeviceSet::new(d, device)) as Box<dyn QuestionSet>),
            ),
            (None, Some((train, held_out))) => (
                Box::new(ClevrDeviceSet::new(train, device)),
                held_out.as_ref().map(|d: &ClevrSet| {
                    Box::new(ClevrDeviceSet::new(d, device)) as Box<dyn QuestionSet>
                }),
            ),
            (None, None) => unreachable!("one kind of data is loaded"),
        };
    let (dir, mut epochs) = training_folder(job)?;
    let mut net = TorchRelationNet::seeded(settings.seed, task, device);
    let mut opt = Adam::new(&net);
    let checkpoint = |epoch: usize, what: &str| {
        dir.join(format!("checkpoints/epoch-{epoch:03}{what}.safetensors"))
    };
    if !epochs.is_empty() {
        net.load_weights(&checkpoint(epochs.len(), ""))?;
        opt.load(&checkpoint(epochs.len(), ".adam"))?;
    }
    let questions = train_set.num_questions();
    let first = epochs.len() + 1;
    let bar = progress_bar(
        ((settings.epochs + 1 - first) * questions) as u64,
        "{bar:40} {pos}/{len} questions, {per_sec}, ETA {eta} {msg}",
        job.progress,
    );
    let started = std::time::Instant::now();
    for epoch in first..=settings.epochs {
        let t = std::time::Instant::now();
        let loss = train_epoch(&net, &mut opt, train_set.as_ref(), settings, epoch, |n| {
            bar.inc(n as u64)
        });
        let seconds = t.elapsed().as_secs_f64();
        let accuracy = eval_set.as_ref().map(|s| evaluate(&net, s.as_ref(), 256));
        if let Some(a) = &accuracy {
            let kinds = match (a.non_relational, a.relational) {
                (Some(n), Some(r)) => format!(
                    " (non-relational {:.1} %, relational {:.1} %)",
                    100.0 * n,
                    100.0 * r
                ),
                _ => String::new(),
            };
            bar.set_message(format!(
                "epoch {epoch}: loss {loss:.3}, accuracy {:.1} %{kinds}",
                100.0 * a.overall,
            ));
        }
        // The checkpoint first, then the report that names it: a crash in between redoes
        // the epoch.
        net.save_weights(&checkpoint(epoch, ""))?;
        opt.save(&checkpoint(epoch, ".adam"))?;
        epochs.push(serde_json::json!({
            "epoch": epoch, "loss": loss, "learning_rate": settings.learning_rate(epoch),
            "seconds": seconds, "device": job.device_name, "eval": accuracy,
        }));
        let report = serde_json::json!({
            "tool": "dtdcert",
            "version": env!("CARGO_PKG_VERSION"),
            "task": net.task().name(),
            "images": train_set.num_images(), "questions": questions,
            "settings": recorded_settings(job),
            "epochs": epochs,
        });
        let text = serde_json::to_string_pretty(&report).expect("reports serialise");
        write_atomic(&dir.join("training.json"), format!("{text}\n").as_bytes())?;
    }
    bar.finish_and_clear();
    net.save(&dir)?;
    write_atomic(&dir.join(MARKER), marker("relnet train", true).as_bytes())?;
    Ok(Trained {
        first,
        last: settings.epochs,
        questions,
        seconds: started.elapsed().as_secs_f64(),
        dir,
    })
}

/// The settings a resumed training must share with the run it continues, as
/// `training.json` records them.
fn recorded_settings(job: &TrainingRun) -> serde_json::Value {
    let settings = &job.settings;
    let mut json = serde_json::json!({
        "data": job.data, "eval": job.eval, "images": job.images,
        "batch": settings.batch, "learning_rate": settings.learning_rate, "seed": settings.seed,
        "optimizer": "Adam",
    });
    if job.schedule != Schedule::Plain {
        json["schedule"] = serde_json::json!({
            "name": job.schedule.name(),
            "doubling_every": settings.doubling.map(|d| d.0),
            "learning_rate_max": settings.doubling.map(|d| d.1),
            "weight_decay": settings.weight_decay,
            "clip": settings.clip,
            "augment": settings.augment,
        });
    }
    json
}

/// The folder of a new training (`--out`: absent, empty, or a finished training, whose files
/// go) or of one to continue (`--resume`): its path and the epochs already trained (their
/// report entries; the last one's checkpoint is where the training goes on).
fn training_folder(job: &TrainingRun) -> Result<(PathBuf, Vec<serde_json::Value>)> {
    const KIND: &str = "relnet train";
    if let Some(dir) = &job.resume {
        let complete = match marker_status(dir) {
            Some(m) if m.kind == KIND => m.complete,
            _ => {
                return Err(Error::Usage(format!(
                    "--resume {}: not a `relnet train` folder",
                    dir.display()
                )))
            }
        };
        let path = dir.join("training.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| Error::file(&path, format!("cannot read: {e}")))?;
        let report: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| Error::file(&path, format!("not a training report: {e}")))?;
        let stored = &report["settings"];
        let now = recorded_settings(job);
        let keys: std::collections::BTreeSet<&String> = now
            .as_object()
            .into_iter()
            .chain(stored.as_object())
            .flat_map(|o| o.keys())
            .collect();
        let null = serde_json::Value::Null;
        for key in keys {
            let (then, value) = (
                stored.get(key).unwrap_or(&null),
                now.get(key).unwrap_or(&null),
            );
            if then != value {
                return Err(Error::Usage(format!(
                    "--resume {}: the training started with {key} = {then}, not {value}; give \
                     the original arguments",
                    dir.display(),
                )));
            }
        }
        let done = report["epochs"].as_array().cloned().unwrap_or_default();
        // An interrupted run whose epochs are all done only saves the model.
        if done.len() > job.settings.epochs || (complete && done.len() == job.settings.epochs) {
            return Err(Error::Usage(format!(
                "--resume {}: {} epochs are trained already; ask for more with --epochs",
                dir.display(),
                done.len()
            )));
        }
        write_atomic(&dir.join(MARKER), marker(KIND, false).as_bytes())?;
        return Ok((dir.clone(), done));
    }
    let out = job.out.clone().expect("clap requires --out or --resume");
    match target_state(&out)? {
        TargetState::Absent => std::fs::create_dir(&out).map_err(|e| Error::write(&out, e))?,
        TargetState::Empty => {}
        TargetState::Occupied => match marker_status(&out) {
            // A finished training is replaced as a whole, as a finished run of any command is.
            Some(m) if m.kind == KIND && m.complete => {
                std::fs::remove_dir_all(&out).map_err(|e| Error::write(&out, e))?;
                std::fs::create_dir(&out).map_err(|e| Error::write(&out, e))?;
            }
            Some(m) if m.kind == KIND => {
                return Err(Error::Usage(format!(
                    "--out {}: holds an interrupted training; continue it with --resume {} \
                     (same arguments), or remove the folder",
                    out.display(),
                    out.display()
                )))
            }
            _ => {
                return Err(Error::Usage(format!(
                    "--out {}: holds something other than a finished `relnet train` model; \
                     choose another folder",
                    out.display()
                )))
            }
        },
    }
    write_atomic(&out.join(MARKER), marker(KIND, false).as_bytes())?;
    let checkpoints = out.join("checkpoints");
    std::fs::create_dir_all(&checkpoints).map_err(|e| Error::write(&checkpoints, e))?;
    Ok((out, Vec::new()))
}

/// A `relnet eval` run.
#[derive(Clone, Debug)]
pub struct EvaluationRun {
    /// A folder written by `relnet train`.
    pub model: PathBuf,
    /// A Sort-of-CLEVR set (a Sort-of-CLEVR model), or a CLEVR v1.0 folder (a CLEVR model).
    pub data: PathBuf,
    /// The CLEVR split: train or val.
    pub split: String,
    /// Only the first N images.
    pub images: Option<usize>,
    /// Where the tensors live.
    pub device: Device,
}

/// The accuracy of the network saved in `job.model` on its data: a Sort-of-CLEVR set for a
/// Sort-of-CLEVR network, a CLEVR split for a CLEVR one.
pub fn evaluate_saved(job: &EvaluationRun) -> Result<Accuracy> {
    let device = job.device;
    let net = TorchRelationNet::load(&job.model, device)?;
    Ok(match net.task() {
        Task::SortOfClevr if is_clevr(&job.data) => {
            return Err(Error::Usage(format!(
                "--data {}: a CLEVR folder, but {} is a Sort-of-CLEVR network",
                job.data.display(),
                job.model.display()
            )))
        }
        Task::SortOfClevr => {
            let data = load_set(&job.data, job.images)?;
            evaluate(&net, &DeviceSet::new(&data, device), 256)
        }
        Task::Clevr { .. } if !is_clevr(&job.data) => {
            return Err(Error::Usage(format!(
                "--data {}: not a CLEVR v1.0 folder (no questions/), but {} is a CLEVR network",
                job.data.display(),
                job.model.display()
            )))
        }
        Task::Clevr { vocabulary } => {
            if !["train", "val"].contains(&job.split.as_str()) {
                return Err(Error::Usage(format!(
                    "--split '{}': expected train or val (CLEVR's test split has no answers)",
                    job.split
                )));
            }
            let data = clevr_split(&job.data, &job.split, None, vocabulary, job.images, true)?;
            evaluate(&net, &ClevrDeviceSet::new(&data, device), 256)
        }
    })
}
