//! `dtdcert relnet sanity` on a trained network: the question set its `--data` holds, the
//! saliency maps of every variant ([`crate::repro::sanity_report::variants`]) computed on the
//! device, their measures, and the report folder.

use std::path::{Path, PathBuf};

use tch::Device;

use super::net::{Task, TorchRelationNet};
use crate::error::{Error, Result};
use crate::io::{progress_bar, OutputDir};
use crate::repro::clevr::{xai_question_file, XaiQuestions};
use crate::repro::relnet_roots::enough_questions;
use crate::repro::sanity_report::{panel_png, variants, write, Measures, SanitySummary};
use crate::repro::sanity_sets::{SanitySet, XaiSet};
use crate::repro::sort_of_clevr::load_set;
use crate::torch::saliency::{maps, BatchNormRelevance, Case};
use crate::torch::Precision;

/// A `relnet sanity` run.
#[derive(Clone, Debug)]
pub struct SanityRun {
    /// A folder written by `relnet train`.
    pub model: PathBuf,
    /// A Sort-of-CLEVR set (a Sort-of-CLEVR model), or a CLEVR-XAI v1.0 folder (a CLEVR
    /// model).
    pub data: PathBuf,
    /// CLEVR-XAI's question set (`simple` or `complex`; `None`: simple).
    pub questions: Option<String>,
    /// CLEVR-XAI's ground-truth masks (`None`: the question set's default).
    pub ground_truth: Option<String>,
    /// CLEVR-XAI's image folder (`None`: found beside the data).
    pub images: Option<PathBuf>,
    /// Questions to draw (at least 2).
    pub samples: usize,
    /// The report folder to create (absent or empty, or with `force` an earlier report,
    /// which is replaced).
    pub out: PathBuf,
    /// Whether a finished report in `out` may be replaced.
    pub force: bool,
    /// Seeds the draws and the re-initialisation.
    pub seed: u64,
    /// How relevance crosses batch norm.
    pub batch_norm: BatchNormRelevance,
    /// The precision of the maps.
    pub precision: Precision,
    /// Where the tensors live.
    pub device: Device,
    /// The device as it was asked for (the report records it).
    pub device_name: String,
    /// Maps computed at once (at least 1).
    pub batch: usize,
    /// Samples drawn as image panels.
    pub panels: usize,
    /// A progress bar on stderr.
    pub progress: bool,
}

/// What a `relnet sanity` run wrote.
#[derive(Clone, Debug)]
pub struct SanityReport {
    /// The summary, as `summary.json` holds it.
    pub summary: SanitySummary,
    /// The maps computed.
    pub maps: usize,
    /// The report folder.
    pub out: PathBuf,
    /// The time since the first map.
    pub seconds: f64,
}

/// Whether `dir` holds CLEVR-XAI's question files.
fn is_clevr_xai(dir: &Path) -> bool {
    [XaiQuestions::Simple, XaiQuestions::Complex]
        .into_iter()
        .any(|set| xai_question_file(dir, set).is_file())
}

/// The question set `relnet sanity` draws from: `--data` read as the network's task needs
/// (a Sort-of-CLEVR set, or CLEVR-XAI for a CLEVR network), holding at least `--samples`
/// questions; and how the report names it.
fn sanity_set(job: &SanityRun, task: &Task) -> Result<(Box<dyn SanitySet>, serde_json::Value)> {
    let xai = is_clevr_xai(&job.data);
    let (set, described): (Box<dyn SanitySet>, _) = match (task, xai) {
        (Task::SortOfClevr, false) => {
            if job.questions.is_some() || job.ground_truth.is_some() || job.images.is_some() {
                return Err(Error::Usage(
                    "--questions, --ground-truth and --images choose CLEVR-XAI data; --model \
                     is a Sort-of-CLEVR network"
                        .into(),
                ));
            }
            let data = load_set(&job.data, None)?;
            (Box::new(data), serde_json::json!({"set": "Sort-of-CLEVR"}))
        }
        (Task::Clevr { vocabulary }, true) => {
            let questions = XaiQuestions::parse(job.questions.as_deref().unwrap_or("simple"))?;
            let ground_truth = job
                .ground_truth
                .as_deref()
                .unwrap_or(questions.default_ground_truth());
            let data = XaiSet::load(
                &job.data,
                questions,
                ground_truth,
                job.images.as_deref(),
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
                job.data.display(),
                job.model.display()
            )))
        }
        (Task::Clevr { .. }, false) => {
            return Err(Error::file(
                &job.data,
                format!(
                    "not a CLEVR-XAI folder (no CLEVR-XAI_simple_questions.json or \
                     CLEVR-XAI_complex_questions.json); --model {} is a CLEVR network",
                    job.model.display()
                ),
            ))
        }
    };
    enough_questions(job.samples, &job.data, set.num_questions())?;
    Ok((set, described))
}

/// The sanity check of `job`: loads the network and the question set, draws the samples,
/// computes every variant's maps and their measures, and writes the report folder
/// ([`crate::repro::sanity_report::write`]).
pub fn sanity(job: &SanityRun) -> Result<SanityReport> {
    let mut net = TorchRelationNet::load(&job.model, job.device)?;
    let (data, described) = sanity_set(job, net.task())?;
    net.set_precision(job.precision);
    let samples = data.plan(job.samples, job.seed)?;
    let inputs = samples
        .iter()
        .map(|s| data.inputs(s))
        .collect::<Result<Vec<_>>>()?;
    let dir = OutputDir::prepare(&job.out, "relnet sanity", job.force)?;
    let layers: Vec<String> = net.layers_from_top().into_iter().map(|(n, _)| n).collect();
    let variants = variants(&layers);
    let bar = progress_bar(
        (variants.len() * samples.len()) as u64,
        "{bar:40} {pos}/{len} maps, {per_sec}, ETA {eta}",
        job.progress,
    );
    let started = std::time::Instant::now();
    let panels = job.panels.min(samples.len());
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
            randomised = net.randomised(variant.randomised, job.seed);
            &randomised
        } else {
            &net
        };
        let computed = maps(
            model,
            &inputs,
            data.side(),
            &cases,
            job.batch,
            job.batch_norm,
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
    let precision = job.precision.name();
    let settings = serde_json::json!({
        "model": job.model, "data": job.data, "data_set": described,
        "samples": job.samples,
        "seed": job.seed,
        "draws": "questions, other answers and derangement from streams 0, 1, 2 of the seed (ChaCha8)",
        "reinitialisation": format!("PyTorch's default initialisation (batch norm the identity), seeded with {}", job.seed),
        "rule": "alpha1-beta0, biases out of the rule, concatenation split by slice (coordinates and question dropped), the question vector constant (CLEVR: the encoder's output), the logit as the start",
        "batch_norm": job.batch_norm.name(), "batch_norm_statistics": "running",
        "precision": precision, "device": job.device_name,
        "threshold": crate::repro::sanity::THRESHOLD,
        "seconds": started.elapsed().as_secs_f64(),
    });
    let summary = SanitySummary::new(settings, samples, &variants, &measures);
    let pngs: Vec<Vec<u8>> = (0..panels)
        .map(|k| {
            let maps: Vec<&[f64]> = panel_maps[k].iter().map(Vec::as_slice).collect();
            panel_png(&data.image_bytes(&inputs[k].image), &inputs[k].mask, &maps)
        })
        .collect();
    write(dir.path(), &summary, &variants, &measures, &pngs)?;
    let out = dir.commit("relnet sanity")?;
    Ok(SanityReport {
        maps: variants.len() * summary.samples.len(),
        summary,
        out,
        seconds: started.elapsed().as_secs_f64(),
    })
}
