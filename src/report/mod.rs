//! Reports: the Markdown and HTML renderings of an audit's summary, and the per-root CSV.

pub mod csv;
pub mod html;
mod sampled;

use std::fmt::Write;
use std::path::Path;

use crate::audit::histogram::{LogHistogram, ShareHistogram};
use crate::audit::records_file::records_name;
use crate::audit::summary::Counts;
use crate::audit::{CertifySettings, ReportWriter, SummaryDocument};
use crate::check::Problem;
use crate::error::Result;
use crate::io::write_atomic;

/// The reports of an audit run: `summary.md`, `summary.html` and, when asked, `roots.csv`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Reports;

impl ReportWriter for Reports {
    fn write(&self, dir: &Path, doc: &SummaryDocument, csv: bool) -> Result<()> {
        write_atomic(&dir.join("summary.md"), audit_markdown(doc).as_bytes())?;
        if csv {
            let records = dir.join(records_name(doc.settings.compress));
            self.roots_csv(&records, &dir.join("roots.csv"))?;
        }
        write_atomic(&dir.join("summary.html"), html::audit_html(doc).as_bytes())
    }

    fn roots_csv(&self, records: &Path, out: &Path) -> Result<()> {
        csv::roots_csv(records, out).map(|_| ())
    }
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        "–".to_string()
    } else {
        format!("{:.1} %", 100.0 * part as f64 / whole as f64)
    }
}

fn counts_row(out: &mut String, name: &str, c: &Counts, samples: u64) {
    let _ = writeln!(
        out,
        "| {name} | {} | {} ({}) | {} | {} | {} | {} ({}) | {} | {} | {:.1e} |",
        c.roots,
        c.roots_outside,
        pct(c.roots_outside, c.roots),
        c.roots_out_of_domain,
        c.roots_valid,
        c.roots_on_face,
        c.samples_with_root_outside,
        pct(c.samples_with_root_outside, samples),
        c.no_root_zero_relevance
            + c.no_root_small_denominator
            + c.not_applicable
            + c.no_root_no_valid_root
            + c.no_root_uncertified,
        c.exact_fallbacks,
        c.max_conservation_error,
    );
}

/// The sentence summary.md and the HTML open with: how many roots, how many outside their
/// region or domain, how many on a face, in how many samples.
pub fn headline(s: &crate::audit::Summary) -> String {
    let t = &s.total;
    format!(
        "Of {} roots in {} samples, {} ({}) lie outside the input's linear region and {} \
         outside the domain; {} lie on a face of their region; {} of the {} samples ({}) have \
         a root outside.",
        t.roots,
        s.samples,
        t.roots_outside,
        pct(t.roots_outside, t.roots),
        t.roots_out_of_domain,
        t.roots_on_face,
        t.samples_with_root_outside,
        s.samples,
        pct(t.samples_with_root_outside, s.samples)
    )
}

/// summary.md of an audit run.
pub fn audit_markdown(doc: &SummaryDocument<'_>) -> String {
    let s = doc.summary;
    let mut out = String::new();
    let _ = writeln!(out, "# dtdcert audit\n");
    let _ = writeln!(out, "{}\n", headline(s));
    if let Some(r) = &doc.root_sample {
        let _ = writeln!(out, "{}\n", sampled::sentence(r));
    }
    let _ = writeln!(
        out,
        "- model: `{}` ({})",
        doc.model.path.display(),
        doc.model.architecture
    );
    let _ = writeln!(out, "- model fingerprint: `{}`", doc.model.fingerprint);
    if let Some(text) = &doc.model.question_text {
        let _ = writeln!(out, "- question: \"{text}\" (its vector below)");
    }
    if let Some(q) = &doc.model.question {
        let values: Vec<String> = q.iter().map(f64::to_string).collect();
        let _ = writeln!(out, "- question: `{}`", values.join(","));
    }
    let _ = writeln!(
        out,
        "- inputs: `{}` ({} samples of width {})",
        doc.inputs.path.display(),
        doc.inputs.samples,
        doc.inputs.width
    );
    let _ = writeln!(
        out,
        "- rule: `{}`, input-layer rule: `{}`",
        doc.rule, doc.input_rule
    );
    if !doc.settings.dtd.layer_rules_text().is_empty() {
        let _ = writeln!(
            out,
            "- per-layer rules: `{}`",
            doc.settings.dtd.layer_rules_text()
        );
    }
    if !doc.layer_rules.is_empty() {
        let _ = writeln!(out, "- rule of each layer: `{}`", doc.layer_rules);
    }
    let _ = writeln!(out, "- verdicts: {}", verdicts_text(doc.settings));
    let _ = writeln!(out, "- dtdcert {}\n", doc.version);
    let _ = writeln!(
        out,
        "| layer | roots | outside region | out of domain | valid | on a face | samples with a root outside | neurons without root | exact fallbacks | max conservation error |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
    for l in &s.layers {
        counts_row(&mut out, &l.layer.to_string(), &l.counts, s.samples);
    }
    counts_row(&mut out, "total", &s.total, s.samples);
    let _ = writeln!(
        out,
        "\nLayer 1 takes the network input. A root is valid when it lies in the input's linear region \
         P_l(x) and in the domain; one on a face of the region (some constraint with equality) is \
         inside, and counted under \"on a face\" too. Every verdict is about the exact root. \
         Activation patterns that needed exact arithmetic: {}.",
        s.pattern_exact_fallbacks
    );
    if let Some(r) = &doc.root_sample {
        sampled::markdown(&mut out, r);
    }
    outside_per_sample_markdown(&mut out, s);
    relevance_share_markdown(&mut out, s);
    if let Some(certify) = &doc.settings.certify {
        certified_markdown(&mut out, s, certify);
    }
    out
}

/// Ranges of "roots outside per sample" and the samples in each: `(lo, hi, samples)`, one per
/// number from 0 to the largest when there are at most `groups` numbers, otherwise `groups`
/// (or fewer) ranges of equal width.
pub(crate) fn outside_count_ranges(
    by_count: &std::collections::BTreeMap<u64, u64>,
    groups: u64,
) -> Vec<(u64, u64, u64)> {
    let Some(&largest) = by_count.keys().next_back() else {
        return Vec::new();
    };
    let width = (largest + 1).div_ceil(groups.max(1)).max(1);
    (0..=largest / width)
        .map(|g| {
            let (lo, hi) = (g * width, (g * width + width - 1).min(largest));
            (lo, hi, by_count.range(lo..=hi).map(|(_, n)| n).sum())
        })
        .collect()
}

/// A range of numbers of roots as a person reads it: `3`, or `10–19`.
pub(crate) fn range_text(lo: u64, hi: u64) -> String {
    if lo == hi {
        lo.to_string()
    } else {
        format!("{lo}–{hi}")
    }
}

/// The classes the reports show the share of relevance in: none, up to 10 %, 10–50 %, over
/// 50 %; with the number of layer × sample entries in each.
pub(crate) fn share_classes(h: &ShareHistogram) -> [(&'static str, u64); 4] {
    [
        ("0 %", h.zero),
        ("up to 10 %", h.between(0, 1)),
        ("10–50 %", h.between(1, 5)),
        ("over 50 %", h.between(5, 10)),
    ]
}

fn outside_per_sample_markdown(out: &mut String, s: &crate::audit::Summary) {
    let ranges = outside_count_ranges(&s.total.samples_by_roots_outside, 12);
    if ranges.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n## Roots outside per sample\n\nHow many samples have 0, 1, 2, … roots outside their \
         region, over all layers:\n\n| roots outside | samples | share of samples |\n|---|---|---|"
    );
    for (lo, hi, n) in ranges {
        let _ = writeln!(
            out,
            "| {} | {n} | {} |",
            range_text(lo, hi),
            pct(n, s.samples)
        );
    }
}

fn relevance_share_markdown(out: &mut String, s: &crate::audit::Summary) {
    if s.samples == 0 {
        return;
    }
    let _ = writeln!(
        out,
        "\n## Relevance carried by roots outside\n\nThe share of a layer's relevance (Σ|R_j| over \
         its neurons) carried by the neurons whose root lies outside the region: how many samples \
         fall in each class.\n\n| layer | 0 % | up to 10 % | 10–50 % | over 50 % | no relevance |\n\
         |---|---|---|---|---|---|"
    );
    let row = |out: &mut String, name: &str, h: &ShareHistogram| {
        let classes = share_classes(h);
        let _ = write!(out, "| {name} |");
        for (_, n) in classes {
            let _ = write!(out, " {n} ({}) |", pct(n, h.defined()));
        }
        let _ = writeln!(out, " {} |", h.undefined);
    };
    for l in &s.layers {
        row(out, &l.layer.to_string(), &l.counts.outside_relevance_share);
    }
    row(out, "all layers", &s.total.outside_relevance_share);
    let _ = writeln!(
        out,
        "\nPercentages are of the samples whose layer carries relevance; \"all layers\" counts \
         every layer of every sample."
    );
}

/// The sentence the certified answers open with, in summary.md and the HTML.
pub(crate) fn certified_sentence(s: &crate::audit::Summary, certify: &CertifySettings) -> String {
    let t = &s.total;
    format!(
        "Certified with --certify {}{}: of the {} invalid roots (outside their region or \
         domain), {} have a valid root of their neuron (proved by a checked point), for {} no \
         valid root exists (proved by a checked certificate), and {} certified questions have \
         no certified answer (unknown).",
        certify.problem.name(),
        if certify.all { " --certify-all" } else { "" },
        t.roots - t.roots_valid,
        t.invalid_with_valid_alternative,
        t.invalid_without_valid_root,
        t.certify_unknown
    )
}

/// The rows of the certified-answers table: invalid roots, valid root exists, no valid root,
/// unknown.
pub(crate) fn certified_cells(c: &Counts) -> [u64; 4] {
    [
        c.roots - c.roots_valid,
        c.invalid_with_valid_alternative,
        c.invalid_without_valid_root,
        c.certify_unknown,
    ]
}

/// The bins of a log histogram merged into decades, with the values outside them:
/// `(label, count)` for every range that holds a value, lowest first.
pub(crate) fn decades(h: &LogHistogram) -> Vec<(String, u64)> {
    let mut rows = Vec::new();
    if h.zero > 0 {
        rows.push(("0".to_string(), h.zero));
    }
    if h.below > 0 {
        rows.push((format!("below {}", pow10(h.lowest_exponent)), h.below));
    }
    let bpd = h.bins_per_decade.max(1) as usize;
    for (d, bins) in h.counts.chunks(bpd).enumerate() {
        let n: u64 = bins.iter().sum();
        if n > 0 {
            let lo = h.lowest_exponent + d as i32;
            rows.push((format!("{} to {}", pow10(lo), pow10(lo + 1)), n));
        }
    }
    if h.above > 0 {
        let highest = h.lowest_exponent + (h.counts.len() / bpd) as i32;
        rows.push((format!("{} or more", pow10(highest)), h.above));
    }
    rows
}

fn certified_markdown(out: &mut String, s: &crate::audit::Summary, certify: &CertifySettings) {
    let _ = writeln!(
        out,
        "\n## Certified answers\n\n{}\n\n| layer | invalid roots | valid root exists | no valid root | unknown |\n|---|---|---|---|---|",
        certified_sentence(s, certify)
    );
    for (name, c) in s
        .layers
        .iter()
        .map(|l| (l.layer.to_string(), &l.counts))
        .chain([("total".to_string(), &s.total)])
    {
        let [invalid, exists, none, unknown] = certified_cells(c);
        let _ = writeln!(
            out,
            "| {name} | {invalid} | {exists} | {none} | {unknown} |"
        );
    }
    let rows = decades(&s.total.certified_distance_histogram);
    if certify.problem == Problem::Exists {
        return;
    }
    if rows.is_empty() {
        let _ = writeln!(
            out,
            "\nNo invalid root has a certified nearest valid root: no distances to show."
        );
        return;
    }
    let _ = writeln!(
        out,
        "\nCertified distance ({}) from the layer input to the nearest valid root (the upper end \
         of its certified interval), over the invalid roots that have one:\n\n| distance | roots |\n|---|---|",
        if certify.problem == Problem::NearestLinf {
            "L∞"
        } else {
            "L1"
        }
    );
    for (label, n) in rows {
        let _ = writeln!(out, "| {label} | {n} |");
    }
}

/// `10` with the exponent in Unicode superscripts (`10⁻¹⁶`).
pub(crate) fn pow10(exponent: i32) -> String {
    let mut s = String::from("10");
    for c in exponent.to_string().chars() {
        s.push(match c {
            '-' => '⁻',
            '0' => '⁰',
            '1' => '¹',
            '2' => '²',
            '3' => '³',
            '4' => '⁴',
            '5' => '⁵',
            '6' => '⁶',
            '7' => '⁷',
            '8' => '⁸',
            '9' => '⁹',
            other => other,
        });
    }
    s
}

/// How an audit's verdicts were reached, for the reports.
pub(crate) fn verdicts_text(settings: &crate::audit::AuditSettings) -> String {
    match (&settings.torch, settings.exact) {
        (Some(t), _) => format!(
            "libtorch, {} on {}: signs as computed, without error bounds (unchecked)",
            t.precision, t.device
        ),
        (None, true) => "exact rational arithmetic throughout (--exact)".into(),
        (None, false) => "f64 with rigorous error bounds, exact rational fallback".into(),
    }
}

/// A small network shared by the report tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use crate::model::ir::dense_layer;
    use crate::model::{Model, Network};

    /// 2 → 3 (ReLU) → 2.
    pub fn tiny_model() -> Model {
        let l1 = dense_layer(
            3,
            2,
            vec![1.0, -1.0, 0.5, 1.0, -0.75, 0.25],
            vec![0.0, -0.25, 0.5],
            true,
        )
        .unwrap();
        let l2 = dense_layer(
            2,
            3,
            vec![1.0, 1.0, -0.5, 0.5, -1.0, 1.0],
            vec![0.1, 0.0],
            false,
        )
        .unwrap();
        Model::new(Network::new(vec![l1, l2]).unwrap())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::audit::{audit_sample, AuditSettings, Summary};

    fn summary() -> Summary {
        let model = tests_support::tiny_model();
        let settings = AuditSettings::default();
        let mut summary = Summary::new(model.net().layers().len());
        for i in 0..12 {
            let x = vec![0.25 + 0.5 * i as f64, 1.5 - 0.2 * i as f64];
            summary.add(&audit_sample(&model, &settings, i, &x, Some(0)).unwrap());
        }
        summary
    }

    /// The rows of the Markdown table after `heading`, split into cells.
    fn table_after(md: &str, heading: &str) -> Vec<Vec<String>> {
        let at = md
            .find(heading)
            .unwrap_or_else(|| panic!("no {heading} in\n{md}"));
        md[at..]
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .skip(2)
            .map(|l| {
                l.trim_matches('|')
                    .split('|')
                    .map(|c| c.trim().to_string())
                    .collect()
            })
            .collect()
    }

    fn count(cell: &str) -> u64 {
        cell.split_whitespace().next().unwrap().parse().unwrap()
    }

    #[test]
    fn ranges_cover_every_number_once() {
        let map = BTreeMap::from([(0, 5), (3, 2), (100, 1)]);
        let few = outside_count_ranges(&map, 200);
        assert_eq!(few.len(), 101);
        assert_eq!(few[3], (3, 3, 2));
        let grouped = outside_count_ranges(&map, 12);
        assert!(grouped.len() <= 12);
        assert_eq!(grouped[0].0, 0);
        assert_eq!(grouped.last().unwrap().1, 100);
        for w in grouped.windows(2) {
            assert_eq!(w[0].1 + 1, w[1].0);
        }
        assert_eq!(grouped.iter().map(|r| r.2).sum::<u64>(), 8);
        assert!(outside_count_ranges(&BTreeMap::new(), 12).is_empty());
        assert_eq!(range_text(3, 3), "3");
        assert_eq!(range_text(10, 19), "10–19");
    }

    #[test]
    fn markdown_counts_roots_outside_per_sample_and_the_relevance_they_carry() {
        let s = summary();
        let spec = crate::audit::spec::RunSpec {
            tool: "dtdcert".into(),
            version: "0".into(),
            model: crate::audit::spec::ModelInfo {
                path: "m.onnx".into(),
                fingerprint: "sha256:00".into(),
                architecture: "2-3-2".into(),
                question: None,
                question_text: None,
                keep_batch_norm: false,
                strip_softmax: false,
                split_residual: false,
            },
            inputs: crate::audit::spec::InputsInfo {
                path: "x.npy".into(),
                key: None,
                samples: 12,
                width: 2,
                fingerprint: "sha256:00".into(),
            },
            targets: crate::audit::spec::Targets::Index { index: 0 },
            settings: AuditSettings::default(),
            shard: None,
        };
        let md = audit_markdown(&SummaryDocument::new(&spec, &s));
        let per_sample = table_after(&md, "## Roots outside per sample");
        assert!(!per_sample.is_empty());
        assert_eq!(
            per_sample.iter().map(|r| count(&r[1])).sum::<u64>(),
            s.samples
        );
        let outside: u64 = per_sample.iter().map(|r| count(&r[0]) * count(&r[1])).sum();
        assert_eq!(outside, s.total.roots_outside);
        let shares = table_after(&md, "## Relevance carried by roots outside");
        assert_eq!(shares.len(), s.layers.len() + 1);
        for (row, h) in shares.iter().zip(
            s.layers
                .iter()
                .map(|l| &l.counts.outside_relevance_share)
                .chain([&s.total.outside_relevance_share]),
        ) {
            let classes: u64 = row[1..5].iter().map(|c| count(c)).sum();
            assert_eq!(classes, h.defined(), "{row:?}");
            assert_eq!(count(&row[5]), h.undefined);
        }
        assert!(!md.contains("## Certified answers"));
        let mut certified = spec.clone();
        certified.settings.certify = Some(CertifySettings {
            problem: Problem::NearestLinf,
            all: true,
            model_path: None,
            inputs_path: None,
        });
        let md = audit_markdown(&SummaryDocument::new(&certified, &s));
        let rows = table_after(&md, "## Certified answers");
        assert_eq!(rows.len(), s.layers.len() + 1);
        assert!(md.contains("--certify nearest-linf --certify-all"));
    }
}
