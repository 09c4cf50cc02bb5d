//! `dtdcert relnet`: the relation-network experiments' data.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Outcome;
use crate::audit::output::OutputDir;
use crate::error::{Error, Result};
use crate::repro::sort_of_clevr::{write_set, ANSWERS, PER_KIND};

#[derive(Subcommand, Debug)]
pub enum RelnetCommand {
    Generate(GenerateArgs),
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
    }
}

fn generate(args: GenerateArgs) -> Result<Outcome> {
    if args.images == 0 {
        return Err(Error::Usage("--images must be at least 1".into()));
    }
    let dir = OutputDir::prepare(&args.out, "relnet generate")?;
    let target = if !args.quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(Some(args.images as u64), target);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} images, {per_sec}, ETA {eta}")
            .expect("a valid template"),
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
