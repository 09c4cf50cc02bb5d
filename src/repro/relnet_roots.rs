//! The roots of a relation network's DTD explanation, judged exactly (issue: the paper's claim
//! C7 asks whether z⁺ explanations of a relation network mean anything; this asks whether
//! their Taylor expansions are even taken inside the input's linear region).
//!
//! For each drawn question of a Sort-of-CLEVR set or of a CLEVR split ([`Questions`]), the
//! network with that question fixed is
//! one chain of IR layers ([`RelationNetwork::network`]). The explanation's relevances are
//! computed once; in every layer, up to `roots` neurons with a root are drawn, their roots
//! rebuilt ([`neuron_root`]) and judged against the input's region ([`membership_batch`]:
//! f64 with error bounds, exact arithmetic where the bounds do not decide). A layer's row gives
//! the fraction of judged roots outside the region with its Wilson score interval.
//!
//! [`write_report`] is `dtdcert relnet roots`: it reads the description and the data a
//! [`RelnetRootsRun`] names, runs, and writes the report folder (`summary.json`, `roots.csv`,
//! `report.md`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::Serialize;

use crate::audit::sampling::draw_neurons;
use crate::dtd::{explain, neuron_root, DtdSettings, RootOutcome};
use crate::error::{Error, Result};
use crate::io::{progress_bar, write_atomic, write_json_atomic, OutputDir};
use crate::model::forward::argmax;
use crate::model::relnet::QuestionEncoder;
use crate::model::relnet::{Options, RelationNetwork};
use crate::model::Model;
use crate::region::{membership_batch, trace_and_pattern, Decision, Membership};
use crate::repro::clevr::{
    clevr_question_file, clevr_questions, load_image, ClevrQuestion, Indexed, IMAGE_SIDE,
};
use crate::repro::sort_of_clevr::{load_set, Loaded, ANSWERS, QUESTION_WIDTH, SIZE};

/// The questions a run draws from, each with its image, question vector and answer.
pub trait Questions: Sync {
    /// The number of questions; drawn indices are below it.
    fn num_questions(&self) -> usize;
    /// What the data is, for messages.
    fn describe(&self) -> String;
    /// The image shape `[3, side, side]` the data has.
    fn image_shape(&self) -> [usize; 3];
    /// The question vector's width.
    fn question_width(&self) -> usize;
    /// The number of outputs the network needs to give every answer of the data.
    fn outputs(&self) -> usize;
    /// Question `q`'s vector, as `g` reads it.
    fn vector(&self, q: usize) -> Result<Vec<f64>>;
    /// Question `q`'s image: its index among the data's images, and its values as the
    /// network reads them.
    fn image(&self, q: usize) -> Result<(usize, Vec<f64>)>;
    /// Question `q`'s answer: the output that stands for it.
    fn answer(&self, q: usize) -> usize;
}

impl Questions for Loaded {
    fn num_questions(&self) -> usize {
        Loaded::num_questions(self)
    }

    fn describe(&self) -> String {
        "a Sort-of-CLEVR set".into()
    }

    fn image_shape(&self) -> [usize; 3] {
        [3, SIZE, SIZE]
    }

    fn question_width(&self) -> usize {
        QUESTION_WIDTH
    }

    fn outputs(&self) -> usize {
        ANSWERS.len()
    }

    fn vector(&self, q: usize) -> Result<Vec<f64>> {
        Ok(self.questions[q * QUESTION_WIDTH..(q + 1) * QUESTION_WIDTH]
            .iter()
            .map(|&v| f64::from(v))
            .collect())
    }

    fn image(&self, q: usize) -> Result<(usize, Vec<f64>)> {
        let image = self.image_of[q];
        let pixels = 3 * SIZE * SIZE;
        let x = self.images[image * pixels..(image + 1) * pixels]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        Ok((image, x))
    }

    fn answer(&self, q: usize) -> usize {
        self.answers[q]
    }
}

/// The questions of a CLEVR split read by a model's question encoder: its words and answer
/// indexed by the model's dictionaries, the image read when a question is drawn.
pub struct ClevrQuestions<'a> {
    questions: Vec<ClevrQuestion>,
    indexed: Indexed,
    encoder: &'a QuestionEncoder,
    outputs: usize,
}

impl<'a> ClevrQuestions<'a> {
    /// Indexes `questions` with the dictionaries of `encoder` (a word or an answer outside
    /// them, or a question without an answer, is an error naming the question).
    pub fn new(
        questions: Vec<ClevrQuestion>,
        encoder: &'a QuestionEncoder,
        outputs: usize,
    ) -> Result<Self> {
        let indexed = Indexed::new(&questions, &encoder.vocabulary)?;
        Ok(Self {
            questions,
            indexed,
            encoder,
            outputs,
        })
    }
}

impl Questions for ClevrQuestions<'_> {
    fn num_questions(&self) -> usize {
        self.questions.len()
    }

    fn describe(&self) -> String {
        "a CLEVR split".into()
    }

    fn image_shape(&self) -> [usize; 3] {
        [3, IMAGE_SIDE, IMAGE_SIDE]
    }

    fn question_width(&self) -> usize {
        self.encoder.width()
    }

    fn outputs(&self) -> usize {
        self.outputs
    }

    fn vector(&self, q: usize) -> Result<Vec<f64>> {
        Ok(self.encoder.encode(&self.indexed.words[q]))
    }

    fn image(&self, q: usize) -> Result<(usize, Vec<f64>)> {
        let values = load_image(&self.questions[q].image)?;
        Ok((
            self.indexed.image_index[q],
            values.iter().map(|&v| f64::from(v)).collect(),
        ))
    }

    fn answer(&self, q: usize) -> usize {
        self.indexed.answers[q]
    }
}

/// The answer whose logit is explained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Explained {
    /// The network's answer (the largest logit).
    Predicted,
    /// The set's answer.
    True,
}

impl Explained {
    /// Parses `--explain`: `predicted` or `true`; anything else is a usage error.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "predicted" => Ok(Self::Predicted),
            "true" => Ok(Self::True),
            other => Err(Error::Usage(format!(
                "--explain {other}: expected `predicted` or `true`"
            ))),
        }
    }
}

/// What a run draws and judges.
#[derive(Clone, Debug)]
pub struct RelnetRootsSettings {
    /// Distinct questions to draw (`--samples`, at least 1, at most the data holds).
    pub samples: usize,
    /// Roots drawn per layer and sample (all of a layer's roots where it has fewer).
    pub roots: usize,
    /// `--seed`: the questions from ChaCha8 stream 0, sample `s`'s roots from stream `1 + s`
    /// (layer `l`'s from word `l · 2^36` of it, as `audit --roots-per-layer` draws them).
    pub seed: u64,
    /// The answer whose logit is explained (`--explain`).
    pub explained: Explained,
    /// Batch norm folded into its convolution or kept as a layer (`--keep-batch-norm`).
    pub batch_norm: Options,
    /// The rule options, as the audit's (no rule that needs linear programs).
    pub dtd: DtdSettings,
}

/// One judged root.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RootRecord {
    /// Index of the sample in the run.
    pub sample: usize,
    /// 1-based layer of the chain whose neuron the root belongs to.
    pub layer: usize,
    /// The neuron of that layer, 0-based.
    pub neuron: usize,
    /// Inside the input's region (with its slack), or outside (the constraint it violates).
    pub membership: Membership,
    /// The tier that settled the verdict: the f64 bound, the second tier or exact rationals.
    pub decided_by: Decision,
}

/// One drawn question and what happened to it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DrawnQuestion {
    /// The question's index among the data's questions.
    pub question: usize,
    /// Its image's index among the data's images.
    pub image: usize,
    /// The output that stands for the data's answer.
    pub answer: usize,
    /// The output with the largest logit.
    pub predicted: usize,
    /// The output whose logit is explained (`predicted` or `answer`, as `--explain` says).
    pub explained: usize,
    /// The tier that decided the image's activation pattern.
    pub pattern_decided_by: Decision,
    /// Per layer of the chain, the neurons with a root.
    pub roots_available: Vec<usize>,
}

/// One layer's tally over all samples.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerRow {
    /// 1-based, as the command line counts layers.
    pub layer: usize,
    /// The layer's name in the chain: `conv block k` (or `conv k`, `batch norm k`), `g.k`,
    /// `sum over pairs`, `f.k`.
    pub name: String,
    /// The layer's width (its output neurons).
    pub neurons: usize,
    /// Neurons with a root, summed over the samples.
    pub roots_available: u64,
    /// Roots drawn and judged, summed over the samples.
    pub judged: u64,
    /// Judged roots outside the input's region.
    pub outside: u64,
    /// Of the roots outside, those that leave at a constraint of their own layer.
    pub outside_own_layer: u64,
    /// Of the roots outside, those that leave at a constraint of a later layer.
    pub outside_later_layer: u64,
    /// `outside / judged`; `None` where no root was judged.
    pub fraction_outside: Option<f64>,
    /// The Wilson score interval (95 %) of the fraction outside.
    pub wilson_95: Option<[f64; 2]>,
    /// Verdicts the f64 bound could not reach that the filter's second tier decided.
    pub refined: u64,
    /// Verdicts neither bound could reach, decided in exact rationals.
    pub exact_fallbacks: u64,
}

/// Everything a run found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RelnetRootsOutcome {
    /// The drawn questions, by increasing question index ([`RootRecord::sample`] indexes
    /// this).
    pub samples: Vec<DrawnQuestion>,
    /// Every judged root, sample by sample, layer by layer, neuron by neuron.
    pub roots: Vec<RootRecord>,
    /// One row per layer of the chain, first to last.
    pub layers: Vec<LayerRow>,
}

/// The 95 % Wilson score interval of `k` roots outside among `n` judged, as the audit's
/// `--roots-per-layer` reports it.
pub use crate::audit::sampling::wilson;

/// Checks that the network reads the data's images and questions and has an output for
/// each of its answers.
pub fn check_fits(rn: &RelationNetwork, model: &Path, data: &dyn Questions) -> Result<()> {
    let [c, h, w] = data.image_shape();
    if rn.image() != data.image_shape() || rn.question_width() != data.question_width() {
        let [mc, mh, mw] = rn.image();
        return Err(Error::file(
            model,
            format!(
                "the network takes {mc}×{mh}×{mw} images and questions of {}; {} has \
                 {c}×{h}×{w} and {}",
                rn.question_width(),
                data.describe(),
                data.question_width()
            ),
        ));
    }
    if rn.outputs() != data.outputs() {
        return Err(Error::file(
            model,
            format!(
                "the network has {} outputs; {} needs {}",
                rn.outputs(),
                data.describe(),
                data.outputs()
            ),
        ));
    }
    Ok(())
}

/// The questions to draw: `samples` distinct ones, uniformly (stream 0 of the seed).
pub fn draw_questions(data: &dyn Questions, samples: usize, seed: u64) -> Vec<usize> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(0);
    let mut drawn = rand::seq::index::sample(&mut rng, data.num_questions(), samples).into_vec();
    drawn.sort_unstable();
    drawn
}

/// Judges the roots of every drawn question. `progress` is called with the number of
/// samples finished.
pub fn run(
    rn: &RelationNetwork,
    data: &dyn Questions,
    settings: &RelnetRootsSettings,
    progress: impl Fn(usize) + Sync,
) -> Result<RelnetRootsOutcome> {
    let questions = draw_questions(data, settings.samples, settings.seed);
    let vectors: Vec<Vec<f64>> = questions
        .iter()
        .map(|&q| data.vector(q))
        .collect::<Result<_>>()?;
    // One chain per distinct question vector (building one costs more than a forward pass).
    let mut groups: BTreeMap<Vec<u64>, Vec<usize>> = BTreeMap::new();
    for (s, vector) in vectors.iter().enumerate() {
        let key = vector.iter().map(|v| v.to_bits()).collect();
        groups.entry(key).or_default().push(s);
    }
    // Groups run in parallel, each building its chain once and judging its samples in turn,
    // so that about as many chains are held as there are threads.
    let groups: Vec<Vec<usize>> = groups.into_values().collect();
    type Judged = (Vec<usize>, Vec<(usize, (DrawnQuestion, Vec<RootRecord>))>);
    let judged: Vec<Judged> = groups
        .into_par_iter()
        .map(|members| -> Result<Judged> {
            let model = Model::new(rn.network(&vectors[members[0]], settings.batch_norm)?);
            let widths = model
                .net()
                .layers()
                .iter()
                .map(|l| l.affine.out_dim())
                .collect();
            let done = members
                .iter()
                .map(|&s| {
                    let outcome = judge_sample(&model, data, settings, s, questions[s])?;
                    progress(1);
                    Ok((s, outcome))
                })
                .collect::<Result<_>>()?;
            Ok((widths, done))
        })
        .collect::<Result<_>>()?;
    let names = rn.layer_names(settings.batch_norm);
    let widths = judged.first().map(|(w, _)| w.clone()).unwrap_or_default();
    let mut per_sample: Vec<Option<(DrawnQuestion, Vec<RootRecord>)>> = vec![None; questions.len()];
    for (_, done) in judged {
        for (s, outcome) in done {
            per_sample[s] = Some(outcome);
        }
    }
    let (mut samples, mut roots) = (Vec::new(), Vec::new());
    for outcome in per_sample {
        let (sample, judged) = outcome.expect("every sample judged");
        samples.push(sample);
        roots.extend(judged);
    }
    let layers = tally(&names, &widths, &samples, &roots);
    Ok(RelnetRootsOutcome {
        samples,
        roots,
        layers,
    })
}

fn judge_sample(
    model: &Model,
    data: &dyn Questions,
    settings: &RelnetRootsSettings,
    sample: usize,
    question: usize,
) -> Result<(DrawnQuestion, Vec<RootRecord>)> {
    let (image, x) = data.image(question)?;
    let (trace, pattern, pattern_decided_by) = trace_and_pattern(model, &x);
    let predicted = argmax(trace.output());
    let explained = match settings.explained {
        Explained::Predicted => predicted,
        Explained::True => data.answer(question),
    };
    let explanation = explain(model.net(), &trace, &settings.dtd, explained, false);
    let mut records = Vec::new();
    let mut roots_available = Vec::with_capacity(explanation.layers.len());
    for (index, step) in explanation.layers.iter().enumerate() {
        let with_root: Vec<usize> = (0..step.neurons.len())
            .filter(|&j| matches!(step.neurons[j].outcome, RootOutcome::Root { .. }))
            .collect();
        roots_available.push(with_root.len());
        if with_root.is_empty() {
            continue;
        }
        // The audit's draw (`audit --roots-per-layer`): stream 1 + sample of the seed, a
        // stretch of it per layer, whatever the order samples run in.
        let drawn = draw_neurons(settings.seed, sample, index, &with_root, settings.roots);
        let a = trace.layer_input(index);
        let mut points = Array2::zeros((drawn.len(), a.len()));
        for (row, &j) in drawn.iter().enumerate() {
            let relevance = &step.neurons[j].relevance;
            match neuron_root(model.net(), index, j, a, relevance, &settings.dtd) {
                RootOutcome::Root { point, .. } => points
                    .row_mut(row)
                    .assign(&ndarray::ArrayView1::from(&point)),
                RootOutcome::None(_) => unreachable!("the explanation found a root here"),
            }
        }
        let verdicts = membership_batch(model, &pattern, index, &points);
        for (&neuron, (membership, decided_by)) in drawn.iter().zip(verdicts) {
            records.push(RootRecord {
                sample,
                layer: index + 1,
                neuron,
                membership,
                decided_by,
            });
        }
    }
    Ok((
        DrawnQuestion {
            question,
            image,
            answer: data.answer(question),
            predicted,
            explained,
            pattern_decided_by,
            roots_available,
        },
        records,
    ))
}

fn tally(
    names: &[String],
    widths: &[usize],
    samples: &[DrawnQuestion],
    roots: &[RootRecord],
) -> Vec<LayerRow> {
    let mut rows: Vec<LayerRow> = names
        .iter()
        .zip(widths)
        .enumerate()
        .map(|(index, (name, &neurons))| LayerRow {
            layer: index + 1,
            name: name.clone(),
            neurons,
            roots_available: samples
                .iter()
                .map(|s| s.roots_available[index] as u64)
                .sum(),
            judged: 0,
            outside: 0,
            outside_own_layer: 0,
            outside_later_layer: 0,
            fraction_outside: None,
            wilson_95: None,
            refined: 0,
            exact_fallbacks: 0,
        })
        .collect();
    for root in roots {
        let row = &mut rows[root.layer - 1];
        row.judged += 1;
        if let Membership::Outside { layer, .. } = root.membership {
            row.outside += 1;
            if layer == root.layer {
                row.outside_own_layer += 1;
            } else {
                row.outside_later_layer += 1;
            }
        }
        match root.decided_by {
            Decision::Refined => row.refined += 1,
            Decision::ExactFallback => row.exact_fallbacks += 1,
            _ => {}
        }
    }
    for row in &mut rows {
        row.fraction_outside = (row.judged > 0).then(|| row.outside as f64 / row.judged as f64);
        row.wilson_95 = wilson(row.outside, row.judged);
    }
    rows
}

/// The report's table (Markdown).
pub fn markdown(settings: &serde_json::Value, outcome: &RelnetRootsOutcome) -> String {
    let mut out = String::from("# Roots of the relation network's explanation\n\n");
    out.push_str(&format!(
        "{} samples; settings: `{}`\n\n",
        outcome.samples.len(),
        settings
    ));
    let decided_by = |d: Decision| {
        outcome
            .samples
            .iter()
            .filter(|s| s.pattern_decided_by == d)
            .count()
    };
    let correct = outcome
        .samples
        .iter()
        .filter(|s| s.predicted == s.answer)
        .count();
    out.push_str(&format!(
        "Answered correctly: {correct} of {}. Input patterns past the f64 bound: {} in \
         double-double, {} by the second tier, {} in exact rationals.\n\n",
        outcome.samples.len(),
        decided_by(Decision::Compensated),
        decided_by(Decision::Refined),
        decided_by(Decision::ExactFallback)
    ));
    out.push_str(
        "| layer | name | neurons | roots available | judged | outside | fraction outside | Wilson 95 % | leave at own layer | leave later | second tier | exact fallbacks |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in &outcome.layers {
        let fraction = r.fraction_outside.map_or("-".into(), |f| format!("{f:.3}"));
        let interval = r
            .wilson_95
            .map_or("-".into(), |[lo, hi]| format!("[{lo:.3}, {hi:.3}]"));
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {fraction} | {interval} | {} | {} | {} | {} |\n",
            r.layer,
            r.name,
            r.neurons,
            r.roots_available,
            r.judged,
            r.outside,
            r.outside_own_layer,
            r.outside_later_layer,
            r.refined,
            r.exact_fallbacks
        ));
    }
    out
}

/// One line per judged root (CSV).
pub fn csv(outcome: &RelnetRootsOutcome) -> String {
    let mut out = String::from(
        "sample,question,image,layer,name,neuron,status,exit_layer,exit_neuron,margin,slack,decided_by\n",
    );
    for r in &outcome.roots {
        let s = &outcome.samples[r.sample];
        let name = &outcome.layers[r.layer - 1].name;
        let decided = serde_json::to_value(r.decided_by).expect("decisions serialise");
        let decided = decided.as_str().unwrap_or_default();
        let tail = match &r.membership {
            Membership::Inside { slack } => format!(
                "inside,,,,{}",
                slack.map_or(String::new(), |v| format!("{v:e}"))
            ),
            Membership::Outside {
                layer,
                neuron,
                margin,
            } => format!("outside,{layer},{neuron},{margin:e},"),
        };
        out.push_str(&format!(
            "{},{},{},{},{name},{},{tail},{decided}\n",
            r.sample, s.question, s.image, r.layer, r.neuron
        ));
    }
    out
}

/// A `relnet roots` run: the description and the data it reads, the report folder it writes,
/// and what it draws and judges.
#[derive(Clone, Debug)]
pub struct RelnetRootsRun {
    /// A relation-network description (`rn.json`).
    pub model: PathBuf,
    /// A Sort-of-CLEVR set, or a CLEVR v1.0 folder (for a network with a question encoder).
    pub data: PathBuf,
    /// The CLEVR split to draw from.
    pub split: String,
    /// The report folder to create (absent or empty, or with `force` an earlier report,
    /// which is replaced).
    pub out: PathBuf,
    /// Whether a finished report in `out` may be replaced.
    pub force: bool,
    /// A progress bar on stderr.
    pub progress: bool,
    /// What it draws and judges.
    pub settings: RelnetRootsSettings,
}

/// What a `relnet roots` run wrote.
#[derive(Clone, Debug)]
pub struct RelnetRootsReport {
    /// Everything the run found.
    pub outcome: RelnetRootsOutcome,
    /// The time the judging took.
    pub seconds: f64,
    /// The report folder.
    pub out: PathBuf,
}

/// Whether `dir` is a CLEVR v1.0 folder (it has `questions/`); otherwise it is read as a
/// Sort-of-CLEVR set.
pub fn is_clevr(dir: &Path) -> bool {
    dir.join("questions").is_dir()
}

/// Refuses `--samples` above the `held` questions of the data in `dir`.
pub fn enough_questions(samples: usize, dir: &Path, held: usize) -> Result<()> {
    if samples > held {
        return Err(Error::Usage(format!(
            "--samples {samples}: {} holds {held} questions",
            dir.display(),
        )));
    }
    Ok(())
}

/// Loads the network and the data of `job`, judges the roots ([`run`]) and writes
/// `summary.json` (the settings, seeds, per layer the fraction outside, per sample the
/// answers), `roots.csv` ([`csv`]) and `report.md` ([`markdown`]) into the report folder.
pub fn write_report(job: &RelnetRootsRun) -> Result<RelnetRootsReport> {
    let settings = &job.settings;
    let rn = RelationNetwork::load(&job.model)?;
    let soc;
    let clevr;
    let data: &dyn Questions = if is_clevr(&job.data) {
        let encoder = rn.question_encoder().ok_or_else(|| {
            Error::file(
                &job.model,
                format!(
                    "{} is a CLEVR folder, but this network has no question encoder to read \
                     its questions",
                    job.data.display()
                ),
            )
        })?;
        let questions = clevr_questions(&job.data, &job.split)?;
        let file = clevr_question_file(&job.data, &job.split);
        clevr =
            ClevrQuestions::new(questions, encoder, rn.outputs()).map_err(|e| e.in_file(&file))?;
        &clevr
    } else {
        soc = load_set(&job.data, None)?;
        &soc
    };
    enough_questions(settings.samples, &job.data, data.num_questions())?;
    check_fits(&rn, &job.model, data)?;
    let layers = rn.layer_names(settings.batch_norm).len();
    settings
        .dtd
        .check_layers(layers)
        .map_err(|e| Error::Usage(format!("{e} (the chain has {layers} layers)")))?;
    let dir = OutputDir::prepare(&job.out, "relnet roots", job.force)?;
    let bar = progress_bar(
        settings.samples as u64,
        "{bar:40} {pos}/{len} samples, {per_sec}, ETA {eta}",
        job.progress,
    );
    let started = std::time::Instant::now();
    let outcome = run(&rn, data, settings, |n| bar.inc(n as u64))?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let recorded = serde_json::json!({
        "model": job.model, "data": job.data, "samples": settings.samples,
        "roots_per_layer": settings.roots, "seed": settings.seed,
        "draws": "questions from stream 0 of the seed, sample s's roots from stream 1 + s, 0-based layer l's from word l * 2^36 of it (ChaCha8)",
        "explain": settings.explained,
        "batch_norm": if settings.batch_norm.keep_batch_norm { "kept" } else { "folded" },
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
    write_json_atomic(&dir.file("summary.json"), &summary)?;
    write_atomic(&dir.file("roots.csv"), csv(&outcome).as_bytes())?;
    write_atomic(
        &dir.file("report.md"),
        markdown(&recorded, &outcome).as_bytes(),
    )?;
    let out = dir.commit("relnet roots")?;
    Ok(RelnetRootsReport {
        outcome,
        seconds,
        out,
    })
}
