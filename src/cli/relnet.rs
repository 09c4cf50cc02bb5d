//! `dtdcert relnet`: the relation-network experiments' data.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::Outcome;
use crate::error::{Error, Result};
use crate::io::{progress_bar, OutputDir};
use crate::repro::sort_of_clevr::{write_set, ANSWERS, PER_KIND};

/// The subcommands of `dtdcert relnet`.
#[derive(Subcommand, Debug)]
#[allow(missing_docs)] // each takes its description from its argument struct
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
#[command(group(clap::ArgGroup::new("destination").required(true).args(["out", "resume"])))]
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
    /// The report folder to create (absent or empty; an earlier report only with --force).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace a finished report in --out.
    #[arg(long)]
    pub force: bool,
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
    /// The report folder to create (absent or empty; an earlier report only with --force).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace a finished report in --out.
    #[arg(long)]
    pub force: bool,
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
    /// `--rule`, `--input-rule`, `--layer-rule` and the rules' numerical options (the
    /// nearest-valid rules refused).
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
    /// The folder to create (absent or empty; an earlier set only with --force).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Replace a finished set in --out.
    #[arg(long)]
    pub force: bool,
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

/// Runs one `dtdcert relnet` subcommand; `train`, `eval` and `sanity` are usage errors in a
/// build without the `torch` feature.
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
    let dir = OutputDir::prepare(&args.out, "relnet generate", args.force)?;
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
    println!(
        "{} images, {} questions (answers: {}) in {}",
        args.images,
        args.images * 2 * PER_KIND,
        ANSWERS.join(", "),
        out.display()
    );
    Ok(Outcome::Clean)
}

/// The settings of `relnet roots`: counts at least 1, the explained answer, and rules that
/// rebuild roots along a direction.
fn roots_run(args: RootsArgs) -> Result<crate::repro::relnet_roots::RelnetRootsRun> {
    use crate::model::relnet::Options;
    use crate::repro::relnet_roots::{Explained, RelnetRootsRun, RelnetRootsSettings};
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
    Ok(RelnetRootsRun {
        model: args.model,
        data: args.data,
        split: args.split,
        out: args.out,
        force: args.force,
        progress: !args.quiet,
        settings: RelnetRootsSettings {
            samples: args.samples,
            roots: args.roots,
            seed: args.seed,
            explained,
            batch_norm: Options {
                keep_batch_norm: args.keep_batch_norm,
            },
            dtd,
        },
    })
}

fn roots(args: RootsArgs) -> Result<Outcome> {
    let report = crate::repro::relnet_roots::write_report(&roots_run(args)?)?;
    let outcome = &report.outcome;
    for r in outcome.layers.iter().filter(|r| r.judged > 0) {
        println!(
            "layer {:>2} {:<16} {:>5} judged, {:>5} outside ({:.3})",
            r.layer,
            r.name,
            r.judged,
            r.outside,
            r.fraction_outside.unwrap_or(0.0)
        );
    }
    println!(
        "{} roots of {} samples in {:.1} s; report in {}",
        outcome.roots.len(),
        outcome.samples.len(),
        report.seconds,
        report.out.display()
    );
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

/// The settings of `relnet train`: the schedule's defaults filled in, counts at least 1, a
/// positive learning rate, the device.
#[cfg(feature = "torch")]
fn training_run(args: TrainArgs) -> Result<crate::torch::relnet::TrainingRun> {
    use crate::torch::relnet::{Schedule, TrainingRun};
    let schedule = Schedule::parse(&args.schedule)?;
    let batch = args.batch.unwrap_or(schedule.default_batch());
    let learning_rate = args
        .learning_rate
        .unwrap_or(schedule.default_learning_rate());
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
    let device = crate::torch::device(crate::audit::DeviceChoice::parse(&args.device)?)?;
    Ok(TrainingRun {
        settings: schedule.settings(args.epochs, batch, learning_rate, args.seed),
        data: args.data,
        eval: args.eval,
        images: args.images,
        out: args.out,
        resume: args.resume,
        schedule,
        device,
        device_name: args.device,
        progress: !args.quiet,
    })
}

#[cfg(feature = "torch")]
fn train(args: TrainArgs) -> Result<Outcome> {
    let trained = crate::torch::relnet::train(&training_run(args)?)?;
    println!(
        "trained epochs {} to {} on {} questions in {:.1} s; model in {}",
        trained.first,
        trained.last,
        trained.questions,
        trained.seconds,
        trained.dir.display()
    );
    Ok(Outcome::Clean)
}

#[cfg(feature = "torch")]
fn eval(args: EvalArgs) -> Result<Outcome> {
    use crate::torch::relnet::{evaluate_saved, EvaluationRun};
    if args.images == Some(0) {
        return Err(Error::Usage("--images must be at least 1".into()));
    }
    let device = crate::torch::device(crate::audit::DeviceChoice::parse(&args.device)?)?;
    let accuracy = evaluate_saved(&EvaluationRun {
        model: args.model,
        data: args.data,
        split: args.split,
        images: args.images,
        device,
    })?;
    println!(
        "{}",
        serde_json::to_string_pretty(&accuracy).expect("accuracies serialise")
    );
    Ok(Outcome::Clean)
}

/// The settings of `relnet sanity`: at least 2 samples and a batch of at least 1, the batch
/// norm convention, the precision, the device.
#[cfg(feature = "torch")]
fn sanity_run(args: SanityArgs) -> Result<crate::torch::relnet::SanityRun> {
    use crate::torch::relnet::SanityRun;
    use crate::torch::saliency::BatchNormRelevance;
    if args.samples < 2 || args.batch == 0 {
        return Err(Error::Usage(
            "--samples must be at least 2 (the derangement needs another sample) and --batch \
             at least 1"
                .into(),
        ));
    }
    let batch_norm = BatchNormRelevance::parse(&args.batch_norm)?;
    let precision = crate::audit::Precision::parse(&args.precision)?;
    let device = crate::torch::device(crate::audit::DeviceChoice::parse(&args.device)?)?;
    Ok(SanityRun {
        model: args.model,
        data: args.data,
        questions: args.questions,
        ground_truth: args.ground_truth,
        images: args.images,
        samples: args.samples,
        out: args.out,
        force: args.force,
        seed: args.seed,
        batch_norm,
        precision,
        device,
        device_name: args.device,
        batch: args.batch,
        panels: args.panels,
        progress: !args.quiet,
    })
}

#[cfg(feature = "torch")]
fn sanity(args: SanityArgs) -> Result<Outcome> {
    let report = crate::torch::relnet::sanity(&sanity_run(args)?)?;
    for v in report.summary.variants.iter().skip(1) {
        if let (Some(f), Some(s)) = (&v.fraction_differing, &v.ssim) {
            println!(
                "{:<60} differing {:.3}, SSIM {:.3}",
                v.variant.description, f.mean, s.mean
            );
        }
    }
    println!(
        "{} maps in {:.1} s; report in {}",
        report.maps,
        report.seconds,
        report.out.display()
    );
    Ok(Outcome::Clean)
}
