//! The relation-network sanity check's plan and report (`dtdcert relnet sanity`).
//!
//! For each sample (a question of a Sort-of-CLEVR set or of CLEVR-XAI) the saliency of the
//! true answer is compared with the saliency of
//! - (a) another answer of the same category (Sort-of-CLEVR: yes/no, shape, count; CLEVR:
//!   [`super::clevr::ANSWER_GROUPS`]), drawn at random;
//! - (b) the true answer with the questions permuted among the samples by a random
//!   derangement (each image gets another sample's question: its vector, or its words
//!   through the question encoder);
//! - (c) the true answer after re-initialising the last layer, and (d) after re-initialising
//!   the top `k` layers for every `k` (cascading randomisation from the top).
//!
//! The measures are those of [`super::sanity`]. The report is `summary.json` (settings,
//! seeds, per sample its question and draws, per comparison the statistics and histograms of
//! each measure), `samples.csv` (every measure of every map), `report.md`, `report.html` and
//! `panels/sample-NNN.png` (the image, the mask and the normalised maps).

use std::fmt::Write as _;
use std::path::Path;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::sanity::{mass_accuracy, normalised, pixel_map, rank_accuracy, Similarity, Stats};
use crate::error::{Error, Result};
use crate::io::heatmap::rgb_png;
use crate::io::{write_atomic, write_json_atomic};

/// What the plan needs of a drawn question.
#[derive(Clone, Debug, PartialEq)]
pub struct Drawn {
    /// How the report names the question (its index in the set or file).
    pub id: usize,
    /// Its image's index among the set's images.
    pub image: usize,
    /// Its image file, where the set has files.
    pub image_file: Option<String>,
    /// Its question type, where the set knows it.
    pub question_type: Option<String>,
    /// Its text, where it has one.
    pub text: Option<String>,
    /// The true answer's output.
    pub answer: usize,
    /// The outputs of the other answers of its category.
    pub others: Vec<usize>,
}

/// One sample and its draws.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sample {
    /// The question's index in the set (CLEVR-XAI: its `question_index`).
    pub question: usize,
    /// Its image's index among the set's images.
    pub image: usize,
    /// Its image file's name (CLEVR-XAI; omitted for Sort-of-CLEVR).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_file: Option<String>,
    /// Its question type (`type`: a Sort-of-CLEVR subtype or a CLEVR category; `null` where
    /// unknown).
    #[serde(rename = "type")]
    pub question_type: Option<String>,
    /// The question's text (CLEVR-XAI; omitted for Sort-of-CLEVR).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The true answer, by name.
    pub answer: String,
    /// (a): the other answer explained.
    pub other_answer: String,
    /// (b): the sample whose question this one's image is shown with.
    pub question_from: usize,
    /// The question's position in the set.
    #[serde(skip)]
    pub position: usize,
    /// The network output of the true answer.
    #[serde(skip)]
    pub answer_index: usize,
    /// The network output of (a)'s other answer.
    #[serde(skip)]
    pub other_index: usize,
}

/// Draws `count` distinct questions of a set of `questions` (streams 0, 1 and 2 of `seed`:
/// the questions, the other answers, the derangement). `describe` tells what a drawn
/// position holds, `answer_name` names an output. Needs `2 <= count <= questions`; a drawn
/// question without another answer of its category is an error.
pub fn plan(
    questions: usize,
    count: usize,
    seed: u64,
    mut describe: impl FnMut(usize) -> Result<Drawn>,
    answer_name: impl Fn(usize) -> String,
) -> Result<Vec<Sample>> {
    let stream = |s: u64| {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(s);
        rng
    };
    let mut picked: Vec<usize> = (0..questions).collect();
    picked.shuffle(&mut stream(0));
    picked.truncate(count);
    let mut answers = stream(1);
    // Sattolo's algorithm: a uniformly drawn cyclic permutation, so no sample keeps its own
    // question.
    let mut derangement: Vec<usize> = (0..count).collect();
    let mut rng = stream(2);
    for i in (1..count).rev() {
        let j = rng.random_range(0..i);
        derangement.swap(i, j);
    }
    picked
        .iter()
        .zip(&derangement)
        .map(|(&q, &from)| {
            let d = describe(q)?;
            if d.others.is_empty() {
                return Err(crate::error::invalid(format!(
                    "question {}: the model knows no other answer of the category of '{}'",
                    d.id,
                    answer_name(d.answer)
                )));
            }
            let other = d.others[answers.random_range(0..d.others.len())];
            Ok(Sample {
                question: d.id,
                image: d.image,
                image_file: d.image_file,
                question_type: d.question_type,
                text: d.text,
                answer: answer_name(d.answer),
                other_answer: answer_name(other),
                question_from: from,
                position: q,
                answer_index: d.answer,
                other_index: other,
            })
        })
        .collect()
}

/// What a map explains.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Variant {
    /// A short name (`true`, `other-answer`, `permuted-question`, `top-K`).
    pub name: String,
    /// The map in words, as the report's tables name it (e.g. `(a) another answer of the
    /// same category`).
    pub description: String,
    /// Layers re-initialised from the top.
    pub randomised: usize,
}

/// The maps' variants: the true answer, (a), (b), and for `k = 1..=layers.len()` the top `k`
/// layers re-initialised (`layers` from the top).
pub fn variants(layers: &[String]) -> Vec<Variant> {
    let mut v = vec![
        Variant {
            name: "true".into(),
            description: "the true answer".into(),
            randomised: 0,
        },
        Variant {
            name: "other-answer".into(),
            description: "(a) another answer of the same category".into(),
            randomised: 0,
        },
        Variant {
            name: "permuted-question".into(),
            description: "(b) the true answer, questions permuted by a derangement".into(),
            randomised: 0,
        },
    ];
    for k in 1..=layers.len() {
        v.push(Variant {
            name: format!("top-{k}"),
            description: if k == 1 {
                format!("(c) the last layer ({}) re-initialised", layers[0])
            } else {
                format!("(d) re-initialised down to {}", layers[k - 1])
            },
            randomised: k,
        });
    }
    v
}

/// One map's measures.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Measures {
    /// The explained logit, the relevance the backward pass starts from.
    pub logit: f64,
    /// The relevance of the coordinate and question slices, dropped at `g`'s first layer.
    pub dropped: f64,
    /// Against the true answer's map (`None` for that map itself).
    pub similarity: Option<Similarity>,
    /// Relevance mass accuracy against the question's mask; `None` for an empty mask or an
    /// all-zero map.
    pub mass_accuracy: Option<f64>,
    /// Relevance rank accuracy against the question's mask; `None` for an empty mask.
    pub rank_accuracy: Option<f64>,
}

impl Measures {
    /// The measures of `relevance` (`[3, side, side]`) against the true map and the mask
    /// (`side × side`).
    pub fn of(
        relevance: &[f64],
        original: Option<&[f64]>,
        mask: &[u8],
        logit: f64,
        dropped: f64,
    ) -> Self {
        let side = (mask.len() as f64).sqrt().round() as usize;
        Self {
            logit,
            dropped,
            similarity: original.map(|o| Similarity::of(o, relevance, side, side)),
            mass_accuracy: mass_accuracy(relevance, mask),
            rank_accuracy: rank_accuracy(relevance, mask),
        }
    }
}

/// The statistics of one variant's measures over the samples.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VariantSummary {
    /// The variant (its fields written in line with the statistics).
    #[serde(flatten)]
    pub variant: Variant,
    /// Statistics of the fraction of normalised pixels differing from the true map's by
    /// more than 1/4 (histogram over [0, 1]); `None` for the true map itself, as are the
    /// three below.
    pub fraction_differing: Option<Stats>,
    /// Statistics of the SSIM against the true map (histogram over [−1, 1]).
    pub ssim: Option<Stats>,
    /// Statistics of Spearman's correlation with the true pixel map (histogram over
    /// [−1, 1]).
    pub spearman: Option<Stats>,
    /// Statistics of Spearman's correlation of the pixel maps' absolute values (histogram
    /// over [−1, 1]).
    pub spearman_abs: Option<Stats>,
    /// Statistics of the relevance mass accuracy, over the samples that have one
    /// (histogram over [0, 1]).
    pub mass_accuracy: Option<Stats>,
    /// Statistics of the relevance rank accuracy, over the samples that have one
    /// (histogram over [0, 1]).
    pub rank_accuracy: Option<Stats>,
}

impl VariantSummary {
    /// The statistics of one measure per sample of `variant`; a measure defined on no
    /// sample is `None`.
    pub fn of(variant: &Variant, measures: &[Measures]) -> Self {
        let sim = |f: &dyn Fn(&Similarity) -> Option<f64>, lo: f64| {
            let v: Vec<Option<f64>> = measures
                .iter()
                .map(|m| m.similarity.as_ref().and_then(f))
                .collect();
            Stats::of(&v, lo, 1.0)
        };
        let gt = |f: &dyn Fn(&Measures) -> Option<f64>| {
            Stats::of(&measures.iter().map(f).collect::<Vec<_>>(), 0.0, 1.0)
        };
        Self {
            variant: variant.clone(),
            fraction_differing: sim(&|s| Some(s.fraction_differing), 0.0),
            ssim: sim(&|s| s.ssim, -1.0),
            spearman: sim(&|s| s.spearman, -1.0),
            spearman_abs: sim(&|s| s.spearman_abs, -1.0),
            mass_accuracy: gt(&|m| m.mass_accuracy),
            rank_accuracy: gt(&|m| m.rank_accuracy),
        }
    }
}

/// The whole run, as `summary.json` holds it.
#[derive(Clone, Debug, Serialize)]
pub struct SanitySummary {
    /// Always `dtdcert`.
    pub tool: &'static str,
    /// The version of dtdcert that wrote the report.
    pub version: &'static str,
    /// The run's settings as the caller records them (`relnet sanity`: model, data, seed and
    /// draws, rule, batch norm, precision, device, threshold, time).
    pub settings: serde_json::Value,
    /// The drawn samples, in the order drawn (`sample` in `samples.csv` counts them).
    pub samples: Vec<Sample>,
    /// Per variant (the true answer, (a), (b), then `top-1`, `top-2`, …), its statistics.
    pub variants: Vec<VariantSummary>,
}

impl SanitySummary {
    /// The summary of a run: its `settings` as recorded, its samples, and the statistics of
    /// each variant's `measures` (one list per variant, in the order of `variants`).
    pub fn new(
        settings: serde_json::Value,
        samples: Vec<Sample>,
        variants: &[Variant],
        measures: &[Vec<Measures>],
    ) -> Self {
        Self {
            tool: "dtdcert",
            version: env!("CARGO_PKG_VERSION"),
            settings,
            samples,
            variants: variants
                .iter()
                .zip(measures)
                .map(|(v, m)| VariantSummary::of(v, m))
                .collect(),
        }
    }
}

/// An RGB tile of a normalised map: white (0) to dark red (1).
fn heat(values: &[f64]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|&t| {
            let t = t.clamp(0.0, 1.0);
            let fade = (255.0 * (1.0 - t)).round() as u8;
            [(255.0 - 100.0 * t).round() as u8, fade, fade]
        })
        .collect()
}

/// A panel: square RGB tiles of `side` pixels side by side, scaled 2× below 100 pixels, 4
/// white pixels apart.
fn panel(tiles: &[Vec<u8>], side: usize) -> Vec<u8> {
    const GAP: usize = 4;
    let scale = if side < 100 { 2 } else { 1 };
    let drawn = side * scale;
    let width = tiles.len() * drawn + (tiles.len() - 1) * GAP;
    let mut rgb = vec![255u8; width * drawn * 3];
    for (t, tile) in tiles.iter().enumerate() {
        for r in 0..drawn {
            for c in 0..drawn {
                let from = ((r / scale) * side + c / scale) * 3;
                let to = (r * width + t * (drawn + GAP) + c) * 3;
                rgb[to..to + 3].copy_from_slice(&tile[from..from + 3]);
            }
        }
    }
    rgb_png(&rgb, drawn, width)
}

/// One sample's panel: the image (`side × side × 3` bytes), its mask (`side × side`), then
/// each given map (`[3, side, side]`) normalised.
pub fn panel_png(image: &[u8], mask: &[u8], maps: &[&[f64]]) -> Vec<u8> {
    let pixels = mask.len();
    let side = (pixels as f64).sqrt().round() as usize;
    let mut tiles = vec![image.to_vec()];
    tiles.push(
        mask.iter()
            .flat_map(|&m| if m != 0 { [40u8; 3] } else { [235u8; 3] })
            .collect(),
    );
    for map in maps {
        tiles.push(heat(&normalised(&pixel_map(map, pixels))));
    }
    panel(&tiles, side)
}

/// A sample's question as the panels' captions name it.
fn caption(s: &Sample) -> String {
    let mut text = format!("question {} (image {}", s.question, s.image);
    if let Some(t) = &s.question_type {
        let _ = write!(text, ", {t}");
    }
    text.push(')');
    if let Some(q) = &s.text {
        let _ = write!(text, " \u{201c}{q}\u{201d}");
    }
    text
}

fn cell(s: &Option<Stats>) -> String {
    s.as_ref()
        .map_or("–".into(), |s| format!("{:.3} ± {:.3}", s.mean, s.std))
}

/// The Markdown report: settings, one table of the comparisons, one of the ground truth.
pub fn markdown(summary: &SanitySummary, panels: usize) -> String {
    let mut md = String::new();
    let n = summary.samples.len();
    let _ = writeln!(md, "# Relation-network sanity check\n");
    let _ = writeln!(
        md,
        "dtdcert {}, {n} samples. Settings:\n\n```json\n{}\n```\n",
        summary.version,
        serde_json::to_string_pretty(&summary.settings).expect("settings serialise")
    );
    let _ = writeln!(
        md,
        "## Against the true answer's map (mean ± standard deviation over the samples)\n\n\
         Fraction: pixels whose normalised values differ by more than 1/4. SSIM on the \
         normalised maps; Spearman on the pixel maps, signed and absolute.\n"
    );
    let _ = writeln!(
        md,
        "| map | fraction differing | SSIM | Spearman | Spearman of abs. |\n|---|---|---|---|---|"
    );
    for v in summary.variants.iter().skip(1) {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} |",
            v.variant.description,
            cell(&v.fraction_differing),
            cell(&v.ssim),
            cell(&v.spearman),
            cell(&v.spearman_abs)
        );
    }
    let _ = writeln!(
        md,
        "\n## Ground truth (the objects the question is about)\n\n| map | relevance mass \
         accuracy | relevance rank accuracy |\n|---|---|---|"
    );
    for v in &summary.variants {
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            v.variant.description,
            cell(&v.mass_accuracy),
            cell(&v.rank_accuracy)
        );
    }
    if panels > 0 {
        let _ = writeln!(
            md,
            "\n## Panels\n\nImage, mask, then the normalised maps: true answer, (a), (b), (c), \
             all layers re-initialised.\n"
        );
        for k in 0..panels {
            let s = &summary.samples[k];
            let _ = writeln!(
                md,
                "![sample {k}](panels/sample-{k:03}.png)\n\nSample {k}: {}, answer {}, other \
                 answer {}, question of sample {}.\n",
                caption(s),
                s.answer,
                s.other_answer,
                s.question_from
            );
        }
    }
    md
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A histogram as an inline SVG bar chart.
fn svg_histogram(stats: &Option<Stats>) -> String {
    let Some(s) = stats else {
        return String::new();
    };
    let h = &s.histogram;
    let top = h.counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let mut svg = format!(
        "<svg width=\"160\" height=\"40\" role=\"img\"><title>{:.2} to {:.2}</title>",
        h.edges[0],
        h.edges[h.edges.len() - 1]
    );
    for (k, &c) in h.counts.iter().enumerate() {
        let height = 38.0 * c as f64 / top;
        let _ = write!(
            svg,
            "<rect x=\"{}\" y=\"{:.1}\" width=\"7\" height=\"{height:.1}\" fill=\"#a33\"/>",
            k * 8,
            39.0 - height
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The HTML report: the Markdown report's tables with histograms, and the panels.
pub fn html(summary: &SanitySummary, panels: usize) -> String {
    let mut page = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Relation-network sanity \
         check</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:\
         collapse}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:middle}\
         </style></head><body>\n<h1>Relation-network sanity check</h1>\n",
    );
    let _ = writeln!(
        page,
        "<p>dtdcert {}, {} samples.</p><pre>{}</pre>",
        summary.version,
        summary.samples.len(),
        escape(&serde_json::to_string_pretty(&summary.settings).expect("settings serialise"))
    );
    let row = |s: &Option<Stats>| format!("<td>{}<br>{}</td>", cell(s), svg_histogram(s));
    page.push_str(
        "<h2>Against the true answer's map</h2><p>Mean ± standard deviation over the samples, \
         and the histogram of the values.</p><table><tr><th>map</th><th>fraction differing \
         (&gt; 1/4)</th><th>SSIM</th><th>Spearman</th><th>Spearman of abs.</th></tr>\n",
    );
    for v in summary.variants.iter().skip(1) {
        let _ = writeln!(
            page,
            "<tr><td>{}</td>{}{}{}{}</tr>",
            escape(&v.variant.description),
            row(&v.fraction_differing),
            row(&v.ssim),
            row(&v.spearman),
            row(&v.spearman_abs)
        );
    }
    page.push_str(
        "</table><h2>Ground truth</h2><table><tr><th>map</th><th>relevance mass accuracy</th>\
         <th>relevance rank accuracy</th></tr>\n",
    );
    for v in &summary.variants {
        let _ = writeln!(
            page,
            "<tr><td>{}</td>{}{}</tr>",
            escape(&v.variant.description),
            row(&v.mass_accuracy),
            row(&v.rank_accuracy)
        );
    }
    page.push_str("</table>\n");
    if panels > 0 {
        page.push_str(
            "<h2>Panels</h2><p>Image, mask, then the normalised maps: true answer, (a), (b), \
             (c), all layers re-initialised.</p>\n",
        );
        for k in 0..panels {
            let s = &summary.samples[k];
            let _ = writeln!(
                page,
                "<figure><img src=\"panels/sample-{k:03}.png\" alt=\"sample {k}\"><figcaption>\
                 Sample {k}: {}, answer {}, other answer {}, question of sample {}.\
                 </figcaption></figure>",
                escape(&caption(s)),
                escape(&s.answer),
                escape(&s.other_answer),
                s.question_from
            );
        }
    }
    page.push_str("</body></html>\n");
    page
}

/// One CSV line per sample and map.
pub fn csv(samples: &[Sample], variants: &[Variant], measures: &[Vec<Measures>]) -> String {
    let mut out = String::from(
        "sample,question,image,type,map,logit,dropped,fraction_differing,ssim,spearman,\
         spearman_abs,mass_accuracy,rank_accuracy\n",
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |x| format!("{x}"));
    for (v, per_sample) in variants.iter().zip(measures) {
        for (k, (s, m)) in samples.iter().zip(per_sample).enumerate() {
            let sim = m.similarity.as_ref();
            let _ = writeln!(
                out,
                "{k},{},{},{},{},{},{},{},{},{},{},{},{}",
                s.question,
                s.image,
                s.question_type.as_deref().unwrap_or(""),
                v.name,
                m.logit,
                m.dropped,
                opt(sim.map(|s| s.fraction_differing)),
                opt(sim.and_then(|s| s.ssim)),
                opt(sim.and_then(|s| s.spearman)),
                opt(sim.and_then(|s| s.spearman_abs)),
                opt(m.mass_accuracy),
                opt(m.rank_accuracy)
            );
        }
    }
    out
}

/// Writes the report files into `dir` (a staging folder).
pub fn write(
    dir: &Path,
    summary: &SanitySummary,
    variants: &[Variant],
    measures: &[Vec<Measures>],
    panels: &[Vec<u8>],
) -> Result<()> {
    write_json_atomic(&dir.join("summary.json"), summary)?;
    write_atomic(
        &dir.join("samples.csv"),
        csv(&summary.samples, variants, measures).as_bytes(),
    )?;
    write_atomic(
        &dir.join("report.md"),
        markdown(summary, panels.len()).as_bytes(),
    )?;
    write_atomic(
        &dir.join("report.html"),
        html(summary, panels.len()).as_bytes(),
    )?;
    if !panels.is_empty() {
        let folder = dir.join("panels");
        std::fs::create_dir_all(&folder).map_err(|e| Error::write(&folder, e))?;
        for (k, png) in panels.iter().enumerate() {
            write_atomic(&folder.join(format!("sample-{k:03}.png")), png)?;
        }
    }
    Ok(())
}
