//! `dtdcert relnet`: the relation-network experiments' data.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::Outcome;
use crate::error::{Error, Result};
use crate::io::{progress_bar, OutputDir};
use crate::repro::sort_of_clevr::{load_set, write_set, ANSWERS, PER_KIND};

#[derive(Subcommand, Debug)]
pub enum RelnetCommand {
    Generate(GenerateArgs),
    Train(TrainArgs),
    Eval(EvalArgs),
    Sanity(SanityArgs),
    Roots(RootsArgs),
    Image(ImageArgs),
}

/// Preprocess CLEVR images as the reference does (Pillow's bilinear resize to 128×128, then
/// `v / 127.5 − 1`) into an inputs file for `audit`, `explain` and the other model commands:
/// one row of 3 × 128 × 128 values (channels first) per image, f64 .npy.
#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  dtdcert relnet image --out x.npy CLEVR_v1.0/images/val/CLEVR_val_000000.png\n  \
dtdcert audit --model rn-clevr/rn.json --question-text \"What color is the large sphere?\" \
--inputs x.npy --out audit-clevr"
)]
pub struct ImageArgs {
    /// The .npy file to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// The PNG images, one row each in this order.
    #[arg(required = true, value_name = "PNG")]
    pub images: Vec<PathBuf>,
}

/// Train a relation network on Sort-of-CLEVR or on CLEVR v1.0 (libtorch; builds with the
/// `torch` feature).
#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  dtdcert relnet generate --out soc-train --images 9800 --seed 1\n  \
dtdcert relnet generate --out soc-test --images 200 --seed 2\n  \
dtdcert relnet train --data soc-train --eval soc-test --epochs 20 --out rn-soc\n  \
dtdcert relnet train --data CLEVR_v1.0 --eval CLEVR_v1.0 --schedule reference --epochs 150 \
--device cuda --out rn-clevr\n\n\
--data is a set written by `relnet generate` (Sort-of-CLEVR) or a CLEVR v1.0 folder (its train \
split; --eval then uses the val split of the folder it names). Writes OUT/rn.json and \
OUT/rn.safetensors (the relation-network description the exact engine reads: `dtdcert audit \
--model OUT/rn.json --question ...`; for CLEVR also OUT/vocabulary.json), \
OUT/checkpoints/epoch-NNN.safetensors after every epoch, and OUT/training.json (settings, seeds, \
per epoch the loss, the learning rate, the time and the accuracy on --eval per question type)."
)]
pub struct TrainArgs {
    /// A set written by `relnet generate`, or a CLEVR v1.0 folder.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Epochs.
    #[arg(long, value_name = "E")]
    pub epochs: usize,
    /// The model folder to create (absent or empty, or an earlier model, which is replaced).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Continue the training in DIR (interrupted, or finished with fewer epochs) from its
    /// last checkpoint, to --epochs; the other settings must be those it started with.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
    /// A set to measure accuracy on after every epoch (for CLEVR, a CLEVR folder: its val
    /// split).
    #[arg(long, value_name = "DIR")]
    pub eval: Option<PathBuf>,
    /// Only the first N images of --data (and of --eval).
    #[arg(long, value_name = "N")]
    pub images: Option<usize>,
    /// `plain` (Adam with a constant learning rate) or `reference` (CLEVR's reference
    /// schedule: batch 640, learning rate 5e-6 doubled every 20 epochs up to 5e-4, Adam
    /// weight decay 1e-4, gradients clipped to norm 50, images padded by 4, cropped and
    /// rotated by up to 2.8°).
    #[arg(long, value_name = "NAME", default_value = "plain")]
    pub schedule: String,
    /// Questions per step [default: 64; 640 with --schedule reference].
    #[arg(long, value_name = "B")]
    pub batch: Option<usize>,
    /// Adam's learning rate (the first epoch's with --schedule reference) [default: 1e-4;
    /// 5e-6 with --schedule reference].
    #[arg(long, value_name = "LR")]
    pub learning_rate: Option<f64>,
    /// Seeds the initialisation (libtorch's generator) and the order of the questions.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// `cpu`, `cuda` (an error where there is no CUDA device) or `auto`.
    #[arg(long, value_name = "DEVICE", default_value = "cpu")]
    pub device: String,
    /// No progress bar on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Accuracy of a trained relation network on a Sort-of-CLEVR set or a CLEVR split, per
/// question type (JSON on stdout; libtorch).
#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  dtdcert relnet eval --model rn-soc --data soc-test\n  \
dtdcert relnet eval --model rn-clevr --data CLEVR_v1.0 --split val"
)]
pub struct EvalArgs {
    /// A folder written by `relnet train`.
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// A set written by `relnet generate` (a Sort-of-CLEVR model), or a CLEVR v1.0 folder
    /// (a CLEVR model).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// The CLEVR split: train or val.
    #[arg(long, value_name = "SPLIT", default_value = "val")]
    pub split: String,
    /// Only the first N images.
    #[arg(long, value_name = "N")]
    pub images: Option<usize>,
    /// `cpu`, `cuda` or `auto`.
    #[arg(long, value_name = "DEVICE", default_value = "cpu")]
    pub device: String,
}

/// Sanity check of a trained relation network's α1β0 saliency: how much the maps change with
/// another answer, another question, or re-initialised layers, and how much relevance lies on
/// the objects the question is about (libtorch).
#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  dtdcert relnet sanity --model rn-soc --data soc-test --samples 1000 --out sanity\n  \
dtdcert relnet sanity --model rn-clevr --data CLEVR-XAI_v1.0 --questions simple \\\n      \
--ground-truth single_object --samples 1000 --out sanity-clevr\n\n\
For each sample (a question drawn from --data) the true answer's saliency is compared with (a) \
another answer of the same category, (b) the true answer with the questions permuted among the \
samples by a derangement, (c) the last layer re-initialised and (d) the top k layers \
re-initialised for every k: fraction of normalised pixels differing by more than 1/4, SSIM, \
Spearman (signed and absolute), and per map the relevance mass and rank accuracy against the \
question's mask. Writes OUT/summary.json, OUT/samples.csv, OUT/report.md, OUT/report.html and \
OUT/panels/sample-NNN.png; README, \"Saliency and the sanity check\"."
)]
pub struct SanityArgs {
    /// A folder written by `relnet train`.
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// A set written by `relnet generate` (a Sort-of-CLEVR model), or a CLEVR-XAI v1.0
    /// folder (a CLEVR model).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// CLEVR-XAI's question set: simple or complex [default: simple].
    #[arg(long, value_name = "SET")]
    pub questions: Option<String>,
    /// CLEVR-XAI's ground-truth masks: single_object or all_objects (simple questions),
    /// unique, unique_firstnonempty, union or all_objects (complex ones) [default:
    /// single_object, unique].
    #[arg(long, value_name = "KIND")]
    pub ground_truth: Option<String>,
    /// CLEVR-XAI's image folder [default: DATA/images, or the release's
    /// CLEVR-XAI_v1.0_images_masks/images beside DATA].
    #[arg(long, value_name = "DIR")]
    pub images: Option<PathBuf>,
    /// Questions to draw (at least 2: the derangement needs another sample).
    #[arg(long, value_name = "N")]
    pub samples: usize,
    /// The report folder to create (absent or empty, or an earlier report, which is
    /// replaced).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Seeds the draws (questions, other answers, derangement) and the re-initialisation.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// How relevance crosses batch norm: `pass-through` (the reference's convention) or
    /// `folded` (into the convolution's weights). Both use the running statistics.
    #[arg(long, value_name = "RULE", default_value = "pass-through")]
    pub batch_norm: String,
    /// `f64` or `f32`.
    #[arg(long, value_name = "P", default_value = "f64")]
    pub precision: String,
    /// `cpu`, `cuda` or `auto`.
    #[arg(long, value_name = "DEVICE", default_value = "cpu")]
    pub device: String,
    /// Maps computed at once.
    #[arg(long, value_name = "B", default_value_t = 16)]
    pub batch: usize,
    /// Samples drawn as image panels.
    #[arg(long, value_name = "K", default_value_t = 8)]
    pub panels: usize,
    /// No progress bar on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Whether the roots of a relation network's DTD explanation lie in the input's linear
/// region: per layer, the fraction of drawn roots outside, judged exactly (exact engine; no
/// libtorch needed).
#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  dtdcert relnet roots --model rn-soc/rn.json --data soc-test --samples 100 \\\n      --roots 16 --out rn-roots\n\n\
For each drawn question the network with that question fixed is one chain of layers; the \
explanation's relevances are computed once, then in every layer up to --roots neurons with a \
root are drawn, their roots rebuilt and judged against the region of the question's image (f64 \
with error bounds, exact arithmetic where the bounds cannot decide). Writes OUT/summary.json \
(settings, seeds, per layer the fraction outside with its Wilson interval, per sample the \
answers), OUT/roots.csv (every judged root) and OUT/report.md; README, \"The roots of the \
relation network\"."
)]
pub struct RootsArgs {
    /// A relation-network description (`rn.json` of a `relnet train` folder, or any
    /// description taking the data's images and questions).
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// A set written by `relnet generate`, or a CLEVR v1.0 folder (for a network with a
    /// question encoder).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// The CLEVR split to draw from.
    #[arg(long, value_name = "SPLIT", default_value = "val")]
    pub split: String,
    /// Questions to draw (distinct, uniformly).
    #[arg(long, value_name = "N")]
    pub samples: usize,
    /// Roots drawn per layer and sample (every root of a layer that has fewer).
    #[arg(long, value_name = "K", default_value_t = 16)]
    pub roots: usize,
    /// The report folder to create (absent or empty, or an earlier report, which is
    /// replaced).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Seeds the draws: the questions from stream 0, sample s's roots from stream 1 + s
    /// (ChaCha8).
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// The explained answer: `predicted` (the largest logit) or `true` (the set's answer).
    #[arg(long, value_name = "WHICH", default_value = "predicted")]
    pub explain: String,
    /// Batch norm as a layer of its own (default: folded into its convolution).
    #[arg(long)]
    pub keep_batch_norm: bool,
    #[command(flatten)]
    pub rules: super::RuleArgs,
    /// No progress bar on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Generate a Sort-of-CLEVR data set: 75×75 images of six coloured squares and circles, 10
/// non-relational and 10 relational questions per image, answers and ground-truth masks.
#[derive(Args, Debug)]
#[command(
    after_help = "Example:\n  dtdcert relnet generate --out soc --images 10000 --seed 1\n\n\
Writes OUT/images/NNNNNN.png (8-bit RGB), OUT/masks/NNNNNN.npy (u8, 20 × 75 × 75: per question \
the pixels of the objects it is about) and OUT/questions.json (the objects, and per question its \
11-value vector, subtype, answer and ground truth); README, \"Sort-of-CLEVR\". The same seed \
gives the same files, and the first N images of a larger set are the set of N."
)]
pub struct GenerateArgs {
    /// The folder to create (absent or empty, or an earlier set, which is replaced).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Number of images.
    #[arg(long, value_name = "N")]
    pub images: usize,
    /// The seed: image i is drawn from stream i of it.
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// No progress bar on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(command: RelnetCommand) -> Result<Outcome> {
    match command {
        RelnetCommand::Generate(args) => generate(args),
        RelnetCommand::Train(args) => train(args),
        RelnetCommand::Eval(args) => eval(args),
        RelnetCommand::Sanity(args) => sanity(args),
        RelnetCommand::Roots(args) => roots(args),
        RelnetCommand::Image(args) => image(args),
    }
}

fn image(args: ImageArgs) -> Result<Outcome> {
    use crate::repro::clevr::{load_image, IMAGE_SIDE};
    let width = 3 * IMAGE_SIDE * IMAGE_SIDE;
    let mut rows = ndarray::Array2::<f64>::zeros((args.images.len(), width));
    for (mut row, path) in rows.outer_iter_mut().zip(&args.images) {
        let values = load_image(path)?;
        row.iter_mut()
            .zip(values.iter())
            .for_each(|(r, &v)| *r = f64::from(v));
    }
    crate::io::write_npy_f64_atomic(&args.out, &rows)?;
    Ok(Outcome::Clean)
}

fn generate(args: GenerateArgs) -> Result<Outcome> {
    if args.images == 0 {
        return Err(Error::Usage("--images must be at least 1".into()));
    }
    let dir = OutputDir::prepare(&args.out, "relnet generate")?;
    let bar = progress_bar(
        args.images as u64,
        "{bar:40} {pos}/{len} images, {per_sec}, ETA {eta}",
        !args.quiet,
    );
    write_set(dir.path(), args.seed, args.images, |n| {
        bar.set_position(n as u64)
    })?;
    bar.finish_and_clear();
    let out = dir.commit("relnet generate")?;
    if !args.quiet {
        eprintln!(
            "{} images, {} questions (answers: {}) in {}",
            args.images,
            args.images * 2 * PER_KIND,
            ANSWERS.join(", "),
            out.display()
        );
    }
    Ok(Outcome::Clean)
}

/// Whether `dir` holds CLEVR-XAI's question files.
#[cfg(feature = "torch")]
fn is_clevr_xai(dir: &std::path::Path) -> bool {
    use crate::repro::clevr::{xai_question_file, XaiQuestions};
    [XaiQuestions::Simple, XaiQuestions::Complex]
        .into_iter()
        .any(|set| xai_question_file(dir, set).is_file())
}

/// The question set `relnet sanity` draws from: `--data` read as the network's task needs
/// (a Sort-of-CLEVR set, or CLEVR-XAI for a CLEVR network), holding at least `--samples`
/// questions; and how the report names it.
#[cfg(feature = "torch")]
fn sanity_set(
    args: &SanityArgs,
    task: &crate::torch::relnet::Task,
) -> Result<(
    Box<dyn crate::repro::sanity_sets::SanitySet>,
    serde_json::Value,
)> {
    use crate::repro::clevr::XaiQuestions;
    use crate::repro::sanity_sets::{SanitySet, XaiSet};
    use crate::torch::relnet::Task;
    let xai = is_clevr_xai(&args.data);
    let (set, described): (Box<dyn SanitySet>, _) = match (task, xai) {
        (Task::SortOfClevr, false) => {
            if args.questions.is_some() || args.ground_truth.is_some() || args.images.is_some() {
                return Err(Error::Usage(
                    "--questions, --ground-truth and --images choose CLEVR-XAI data; --model \
                     is a Sort-of-CLEVR network"
                        .into(),
                ));
            }
            let data = load_set(&args.data, None)?;
            (Box::new(data), serde_json::json!({"set": "Sort-of-CLEVR"}))
        }
        (Task::Clevr { vocabulary }, true) => {
            let questions = XaiQuestions::parse(args.questions.as_deref().unwrap_or("simple"))?;
            let ground_truth = args
                .ground_truth
                .as_deref()
                .unwrap_or(questions.default_ground_truth());
            let data = XaiSet::load(
                &args.data,
                questions,
                ground_truth,
                args.images.as_deref(),
                vocabulary,
            )?;
            let described = serde_json::json!({
                "set": "CLEVR-XAI", "questions": questions.name(),
                "ground_truth": ground_truth, "images": data.image_folder(),
                "masks": "128×128; another size resized as CLEVR-XAI's evaluation does (Pillow's bilinear resize of the mask as floats, then > 0)",
            });
            (Box::new(data), described)
        }
        (Task::SortOfClevr, true) => {
            return Err(Error::Usage(format!(
                "--data {}: CLEVR-XAI questions; --model {} is a Sort-of-CLEVR network",
                args.data.display(),
                args.model.display()
            )))
        }
        (Task::Clevr { .. }, false) => {
            return Err(Error::file(
                &args.data,
                format!(
                    "not a CLEVR-XAI folder (no CLEVR-XAI_simple_questions.json or \
                     CLEVR-XAI_complex_questions.json); --model {} is a CLEVR network",
                    args.model.display()
                ),
            ))
        }
    };
    enough_questions(args.samples, &args.data, set.num_questions())?;
    Ok((set, described))
}

/// Refuses `--samples` above the `held` questions of the data in `dir`.
fn enough_questions(samples: usize, dir: &std::path::Path, held: usize) -> Result<()> {
    if samples > held {
        return Err(Error::Usage(format!(
            "--samples {samples}: {} holds {held} questions",
            dir.display(),
        )));
    }
    Ok(())
}

fn roots(args: RootsArgs) -> Result<Outcome> {
    use crate::io::write_atomic;
    use crate::model::relnet::{Options, RelationNetwork};
    use crate::repro::relnet_roots::{
        check_fits, csv, markdown, run, ClevrQuestions, Explained, Questions, RelnetRootsSettings,
    };
    if args.samples == 0 || args.roots == 0 {
        return Err(Error::Usage(
            "--samples and --roots must be at least 1".into(),
        ));
    }
    let explained = Explained::parse(&args.explain)?;
    let dtd = args.rules.resolve()?;
    if let Some(rule) = dtd.named_rules().into_iter().find(|r| r.needs_lp()) {
        return Err(Error::Usage(format!(
            "--rule {rule}: relnet roots rebuilds roots along a rule's direction; the \
             nearest-valid rules find theirs with linear programs (use `dtdcert audit`)"
        )));
    }
    let rn = RelationNetwork::load(&args.model)?;
    let soc;
    let clevr;
    let data: &dyn Questions = if is_clevr(&args.data) {
        let encoder = rn.question_encoder().ok_or_else(|| {
            Error::file(
                &args.model,
                format!(
                    "{} is a CLEVR folder, but this network has no question encoder to read \
                     its questions",
                    args.data.display()
                ),
            )
        })?;
        let questions = crate::repro::clevr::clevr_questions(&args.data, &args.split)?;
        let file = crate::repro::clevr::clevr_question_file(&args.data, &args.split);
        clevr =
            ClevrQuestions::new(questions, encoder, rn.outputs()).map_err(|e| e.in_file(&file))?;
        &clevr
    } else {
        soc = load_set(&args.data, None)?;
        &soc
    };
    enough_questions(args.samples, &args.data, data.num_questions())?;
    check_fits(&rn, &args.model, data)?;
    let options = Options {
        keep_batch_norm: args.keep_batch_norm,
    };
    let layers = rn.layer_names(options).len();
    dtd.check_layers(layers)
        .map_err(|e| Error::Usage(format!("{e} (the chain has {layers} layers)")))?;
    let dir = OutputDir::prepare(&args.out, "relnet roots")?;
    let bar = progress_bar(
        args.samples as u64,
        "{bar:40} {pos}/{len} samples, {per_sec}, ETA {eta}",
        !args.quiet,
    );
    let started = std::time::Instant::now();
    let settings = RelnetRootsSettings {
        samples: args.samples,
        roots: args.roots,
        seed: args.seed,
        explained,
        batch_norm: options,
        dtd,
    };
    let outcome = run(&rn, data, &settings, |n| bar.inc(n as u64))?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let recorded = serde_json::json!({
        "model": args.model, "data": args.data, "samples": args.samples,
        "roots_per_layer": args.roots, "seed": args.seed,
        "draws": "questions from stream 0 of the seed, sample s's roots from stream 1 + s (ChaCha8)",
        "explain": explained, "batch_norm": if args.keep_batch_norm { "kept" } else { "folded" },
        "rule": settings.dtd.rule.to_string(),
        "input_rule": settings.dtd.input_rule.map(|r| r.to_string()),
        "layer_rules": settings.dtd.layer_rules_text(),
        "bias": settings.dtd.bias, "stabilizer": settings.dtd.stabilizer,
        "denominator_threshold": settings.dtd.denominator_threshold,
        "initial_relevance": settings.dtd.initial_relevance,
        "threads": rayon::current_num_threads(), "seconds": seconds,
    });
    let summary = serde_json::json!({
        "tool": "dtdcert", "version": env!("CARGO_PKG_VERSION"),
        "settings": recorded, "layers": outcome.layers, "samples": outcome.samples,
    });
    let json = serde_json::to_string_pretty(&summary).expect("summaries serialise");
    write_atomic(&dir.file("summary.json"), format!("{json}\n").as_bytes())?;
    write_atomic(&dir.file("roots.csv"), csv(&outcome).as_bytes())?;
    write_atomic(
        &dir.file("report.md"),
        markdown(&recorded, &outcome).as_bytes(),
    )?;
    let out = dir.commit("relnet roots")?;
    if !args.quiet {
        for r in outcome.layers.iter().filter(|r| r.judged > 0) {
            eprintln!(
                "layer {:>2} {:<16} {:>5} judged, {:>5} outside ({:.3})",
                r.layer,
                r.name,
                r.judged,
                r.outside,
                r.fraction_outside.unwrap_or(0.0)
            );
        }
        eprintln!(
            "{} roots of {} samples in {seconds:.1} s; report in {}",
            outcome.roots.len(),
            outcome.samples.len(),
            out.display()
        );
    }
    Ok(Outcome::Clean)
}

#[cfg(not(feature = "torch"))]
fn train(_: TrainArgs) -> Result<Outcome> {
    Err(Error::Usage(no_torch("relnet train")))
}

#[cfg(not(feature = "torch"))]
fn eval(_: EvalArgs) -> Result<Outcome> {
    Err(Error::Usage(no_torch("relnet eval")))
}

#[cfg(not(feature = "torch"))]
fn sanity(_: SanityArgs) -> Result<Outcome> {
    Err(Error::Usage(no_torch("relnet sanity")))
}

#[cfg(not(feature = "torch"))]
fn no_torch(command: &str) -> String {
    format!(
        "{command} runs on libtorch, which this build lacks; build with `cargo build --release \
         --features torch` after `export LIBTORCH=$(scripts/setup_torch.sh)` (README, \"The \
         libtorch backend\")"
    )
}

/// The training settings of `args` (the schedule's defaults filled in).
#[cfg(feature = "torch")]
fn train_settings(args: &TrainArgs) -> Result<crate::torch::relnet::TrainSettings> {
    let reference = match args.schedule.as_str() {
        "plain" => false,
        "reference" => true,
        other => {
            return Err(Error::Usage(format!(
                "--schedule '{other}': expected plain or reference"
            )))
        }
    };
    let batch = args.batch.unwrap_or(if reference { 640 } else { 64 });
    let learning_rate = args
        .learning_rate
        .unwrap_or(if reference { 5e-6 } else { 1e-4 });
    if args.epochs == 0 || batch == 0 || args.images == Some(0) {
        return Err(Error::Usage(
            "--epochs, --batch and --images must be at least 1".into(),
        ));
    }
    if !(learning_rate.is_finite() && learning_rate > 0.0) {
        return Err(Error::Usage(
            "--learning-rate must be a positive number".into(),
        ));
    }
    Ok(crate::torch::relnet::TrainSettings {
        epochs: args.epochs,
        batch,
        learning_rate,
        doubling: reference.then_some((20, 5e-4)),
        weight_decay: if reference { 1e-4 } else { 0.0 },
        clip: reference.then_some(50.0),
        augment: reference,
        seed: args.seed,
    })
}

/// The settings a resumed training must share with the run it continues (`settings`: those
/// [`train_settings`] made of `args`).
#[cfg(feature = "torch")]
fn training_settings(
    args: &TrainArgs,
    settings: &crate::torch::relnet::TrainSettings,
) -> serde_json::Value {
    let mut json = serde_json::json!({
        "data": args.data, "eval": args.eval, "images": args.images,
        "batch": settings.batch, "learning_rate": settings.learning_rate, "seed": args.seed,
        "optimizer": "Adam",
    });
    if args.schedule != "plain" {
        json["schedule"] = serde_json::json!({
            "name": args.schedule,
            "doubling_every": settings.doubling.map(|d| d.0),
            "learning_rate_max": settings.doubling.map(|d| d.1),
            "weight_decay": settings.weight_decay,
            "clip": settings.clip,
            "augment": settings.augment,
        });
    }
    json
}

/// Whether `dir` is a CLEVR v1.0 folder (it has `questions/`); otherwise it is read as a
/// Sort-of-CLEVR set.
fn is_clevr(dir: &std::path::Path) -> bool {
    dir.join("questions").is_dir()
}

/// A CLEVR split encoded with `vocabulary`, its images decoded with a progress bar.
#[cfg(feature = "torch")]
fn clevr_split(
    root: &std::path::Path,
    split: &str,
    questions: Option<Vec<crate::repro::clevr::ClevrQuestion>>,
    vocabulary: &crate::repro::clevr::Vocabulary,
    images: Option<usize>,
    quiet: bool,
) -> Result<crate::repro::clevr::ClevrSet> {
    use crate::repro::clevr::{clevr_question_file, clevr_questions, ClevrSet};
    let questions = match questions {
        Some(q) => q,
        None => clevr_questions(root, split)?,
    };
    let distinct = questions
        .iter()
        .map(|q| &q.image)
        .collect::<std::collections::HashSet<_>>()
        .len();
    let bar = progress_bar(
        images.map_or(distinct, |n| n.min(distinct)) as u64,
        &format!("{{bar:40}} {{pos}}/{{len}} {split} images decoded, ETA {{eta}}"),
        !quiet,
    );
    let set = ClevrSet::encode(&questions, vocabulary, images, || bar.inc(1))
        .map_err(|e| e.in_file(clevr_question_file(root, split)))?;
    bar.finish_and_clear();
    Ok(set)
}

/// The folder of a new training (`--out`: absent, empty, or a finished training, whose files
/// go) or of one to continue (`--resume`): its path, the epochs already trained (their
/// report entries) and the last checkpoint.
#[cfg(feature = "torch")]
fn training_folder(
    args: &TrainArgs,
    settings: &crate::torch::relnet::TrainSettings,
) -> Result<(PathBuf, Vec<serde_json::Value>)> {
    use crate::io::output_dir::{marker, marker_status, target_state, TargetState, MARKER};
    use crate::io::write_atomic;
    const KIND: &str = "relnet train";
    if let Some(dir) = &args.resume {
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
        let now = training_settings(args, settings);
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
        if done.len() > args.epochs || (complete && done.len() == args.epochs) {
            return Err(Error::Usage(format!(
                "--resume {}: {} epochs are trained already; ask for more with --epochs",
                dir.display(),
                done.len()
            )));
        }
        write_atomic(&dir.join(MARKER), marker(KIND, false).as_bytes())?;
        return Ok((dir.clone(), done));
    }
    let out = args.out.clone().expect("clap requires --out or --resume");
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

#[cfg(feature = "torch")]
fn train(args: TrainArgs) -> Result<Outcome> {
    use crate::io::output_dir::{marker, MARKER};
    use crate::io::write_atomic;
    use crate::repro::clevr::{clevr_questions, ClevrSet, Vocabulary};
    use crate::torch::relnet::{
        evaluate, train_epoch, Adam, ClevrDeviceSet, DeviceSet, QuestionSet, Task, TorchRelationNet,
    };
    let settings = train_settings(&args)?;
    let device = crate::torch::device(&args.device)?;
    let clevr = is_clevr(&args.data);
    if let Some(eval) = &args.eval {
        if is_clevr(eval) != clevr {
            return Err(Error::Usage(format!(
                "--eval {}: {} data, but --data {} is {}",
                eval.display(),
                if clevr { "not CLEVR" } else { "CLEVR" },
                args.data.display(),
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
    // The data: Sort-of-CLEVR sets, or CLEVR's train and val splits with the dictionaries of
    // the training questions.
    let (soc, soc_eval, clevr_sets, task) = if clevr {
        let questions = clevr_questions(&args.data, "train")?;
        let vocabulary = Vocabulary::build(&questions);
        let outputs = crate::torch::relnet::CLEVR_OUTPUTS;
        if vocabulary.answers.len() >= outputs {
            return Err(Error::file(
                crate::repro::clevr::clevr_question_file(&args.data, "train"),
                format!(
                    "{} distinct answers; the CLEVR network's {outputs} outputs hold at most {} \
                     (output 0 is unused)",
                    vocabulary.answers.len(),
                    outputs - 1
                ),
            ));
        }
        let train = clevr_split(
            &args.data,
            "train",
            Some(questions),
            &vocabulary,
            args.images,
            args.quiet,
        )?;
        let held_out = args
            .eval
            .as_deref()
            .map(|d| clevr_split(d, "val", None, &vocabulary, args.images, args.quiet))
            .transpose()?;
        (
            None,
            None,
            Some((train, held_out)),
            Task::Clevr { vocabulary },
        )
    } else {
        let data = load_set(&args.data, args.images)?;
        let held_out = args
            .eval
            .as_deref()
            .map(|d| load_set(d, args.images))
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
    let (dir, mut epochs) = training_folder(&args, &settings)?;
    let mut net = TorchRelationNet::seeded(args.seed, task, device);
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
        ((args.epochs + 1 - first) * questions) as u64,
        "{bar:40} {pos}/{len} questions, {per_sec}, ETA {eta} {msg}",
        !args.quiet,
    );
    let started = std::time::Instant::now();
    for epoch in first..=args.epochs {
        let t = std::time::Instant::now();
        let loss = train_epoch(&net, &mut opt, train_set.as_ref(), &settings, epoch, |n| {
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
            "seconds": seconds, "device": args.device, "eval": accuracy,
        }));
        let report = serde_json::json!({
            "tool": "dtdcert",
            "version": env!("CARGO_PKG_VERSION"),
            "task": net.task().name(),
            "images": train_set.num_images(), "questions": questions,
            "settings": training_settings(&args, &settings),
            "epochs": epochs,
        });
        let text = serde_json::to_string_pretty(&report).expect("reports serialise");
        write_atomic(&dir.join("training.json"), format!("{text}\n").as_bytes())?;
    }
    bar.finish_and_clear();
    net.save(&dir)?;
    write_atomic(&dir.join(MARKER), marker("relnet train", true).as_bytes())?;
    if !args.quiet {
        eprintln!(
            "trained epochs {first} to {} on {questions} questions in {:.1} s; model in {}",
            args.epochs,
            started.elapsed().as_secs_f64(),
            dir.display()
        );
    }
    Ok(Outcome::Clean)
}

#[cfg(feature = "torch")]
fn eval(args: EvalArgs) -> Result<Outcome> {
    use crate::torch::relnet::{evaluate, ClevrDeviceSet, DeviceSet, Task, TorchRelationNet};
    if args.images == Some(0) {
        return Err(Error::Usage("--images must be at least 1".into()));
    }
    let device = crate::torch::device(&args.device)?;
    let net = TorchRelationNet::load(&args.model, device)?;
    let accuracy = match net.task() {
        Task::SortOfClevr if is_clevr(&args.data) => {
            return Err(Error::Usage(format!(
                "--data {}: a CLEVR folder, but {} is a Sort-of-CLEVR network",
                args.data.display(),
                args.model.display()
            )))
        }
        Task::SortOfClevr => {
            let data = load_set(&args.data, args.images)?;
            evaluate(&net, &DeviceSet::new(&data, device), 256)
        }
        Task::Clevr { .. } if !is_clevr(&args.data) => {
            return Err(Error::Usage(format!(
                "--data {}: not a CLEVR v1.0 folder (no questions/), but {} is a CLEVR network",
                args.data.display(),
                args.model.display()
            )))
        }
        Task::Clevr { vocabulary } => {
            if !["train", "val"].contains(&args.split.as_str()) {
                return Err(Error::Usage(format!(
                    "--split '{}': expected train or val (CLEVR's test split has no answers)",
                    args.split
                )));
            }
            let data = clevr_split(&args.data, &args.split, None, vocabulary, args.images, true)?;
            evaluate(&net, &ClevrDeviceSet::new(&data, device), 256)
        }
    };
    println!(
        "{}",
        serde_json::to_string_pretty(&accuracy).expect("accuracies serialise")
    );
    Ok(Outcome::Clean)
}

#[cfg(feature = "torch")]
fn sanity(args: SanityArgs) -> Result<Outcome> {
    use crate::repro::sanity_report::{
        panel_png, variants, write, Measures, SanitySummary, VariantSummary,
    };
    use crate::torch::relnet::TorchRelationNet;
    use crate::torch::saliency::{maps, BatchNormRelevance, Case};
    if args.samples < 2 || args.batch == 0 {
        return Err(Error::Usage(
            "--samples must be at least 2 (the derangement needs another sample) and --batch \
             at least 1"
                .into(),
        ));
    }
    let convention = BatchNormRelevance::parse(&args.batch_norm)?;
    let precision = crate::torch::Precision::parse(&args.precision)?;
    let device = crate::torch::device(&args.device)?;
    let mut net = TorchRelationNet::load(&args.model, device)?;
    let (data, described) = sanity_set(&args, net.task())?;
    net.set_precision(precision);
    let samples = data.plan(args.samples, args.seed)?;
    let inputs = samples
        .iter()
        .map(|s| data.inputs(s))
        .collect::<Result<Vec<_>>>()?;
    let dir = OutputDir::prepare(&args.out, "relnet sanity")?;
    let layers: Vec<String> = net.layers_from_top().into_iter().map(|(n, _)| n).collect();
    let variants = variants(&layers);
    let bar = progress_bar(
        (variants.len() * samples.len()) as u64,
        "{bar:40} {pos}/{len} maps, {per_sec}, ETA {eta}",
        !args.quiet,
    );
    let started = std::time::Instant::now();
    let panels = args.panels.min(samples.len());
    // The maps drawn in the panels: true answer, (a), (b), (c), all layers re-initialised.
    let drawn = [0, 1, 2, 3, variants.len() - 1];
    let mut panel_maps: Vec<Vec<Vec<f64>>> = vec![Vec::new(); panels];
    let mut true_maps: Vec<Vec<f64>> = Vec::new();
    let mut measures = Vec::new();
    for (v, variant) in variants.iter().enumerate() {
        let cases: Vec<Case> = samples
            .iter()
            .enumerate()
            .map(|(k, s)| Case {
                sample: k,
                question_of: if variant.name == "permuted-question" {
                    s.question_from
                } else {
                    k
                },
                explained: if variant.name == "other-answer" {
                    s.other_index
                } else {
                    s.answer_index
                },
            })
            .collect();
        let randomised;
        let model = if variant.randomised > 0 {
            randomised = net.randomised(variant.randomised, args.seed);
            &randomised
        } else {
            &net
        };
        let computed = maps(
            model,
            &inputs,
            data.side(),
            &cases,
            args.batch,
            convention,
            |n| bar.inc(n as u64),
        );
        let per_sample: Vec<Measures> = computed
            .iter()
            .enumerate()
            .map(|(k, m)| {
                let original = (v > 0).then(|| true_maps[k].as_slice());
                Measures::of(&m.relevance, original, &inputs[k].mask, m.logit, m.dropped)
            })
            .collect();
        measures.push(per_sample);
        if drawn.contains(&v) {
            for (k, m) in computed.iter().take(panels).enumerate() {
                panel_maps[k].push(m.relevance.clone());
            }
        }
        if v == 0 {
            true_maps = computed.into_iter().map(|m| m.relevance).collect();
        }
    }
    bar.finish_and_clear();
    let summary = SanitySummary {
        tool: "dtdcert",
        version: env!("CARGO_PKG_VERSION"),
        settings: serde_json::json!({
            "model": args.model, "data": args.data, "data_set": described,
            "samples": args.samples,
            "seed": args.seed,
            "draws": "questions, other answers and derangement from streams 0, 1, 2 of the seed (ChaCha8)",
            "reinitialisation": format!("libtorch's default initialisation seeded with {}", args.seed),
            "rule": "alpha1-beta0, biases out of the rule, concatenation split by slice (coordinates and question dropped), the question vector constant (CLEVR: the encoder's output), the logit as the start",
            "batch_norm": convention.name(), "batch_norm_statistics": "running",
            "precision": args.precision, "device": args.device,
            "threshold": crate::repro::sanity::THRESHOLD,
            "seconds": started.elapsed().as_secs_f64(),
        }),
        samples,
        variants: variants
            .iter()
            .zip(&measures)
            .map(|(v, m)| VariantSummary::of(v, m))
            .collect(),
    };
    let pngs: Vec<Vec<u8>> = (0..panels)
        .map(|k| {
            let maps: Vec<&[f64]> = panel_maps[k].iter().map(Vec::as_slice).collect();
            panel_png(&data.image_bytes(&inputs[k].image), &inputs[k].mask, &maps)
        })
        .collect();
    write(dir.path(), &summary, &variants, &measures, &pngs)?;
    let out = dir.commit("relnet sanity")?;
    if !args.quiet {
        for v in summary.variants.iter().skip(1) {
            if let (Some(f), Some(s)) = (&v.fraction_differing, &v.ssim) {
                eprintln!(
                    "{:<60} differing {:.3}, SSIM {:.3}",
                    v.variant.description, f.mean, s.mean
                );
            }
        }
        eprintln!(
            "{} maps in {:.1} s; report in {}",
            variants.len() * summary.samples.len(),
            started.elapsed().as_secs_f64(),
            out.display()
        );
    }
    Ok(Outcome::Clean)
}
