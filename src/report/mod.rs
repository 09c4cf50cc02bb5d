//! Reports: the Markdown and HTML renderings of an audit's summary, and the per-root CSV.

pub mod csv;
pub mod html;

use std::fmt::Write;
use std::path::Path;

use crate::audit::summary::Counts;
use crate::audit::{ReportWriter, SummaryDocument};
use crate::error::Result;
use crate::io::write_atomic;

/// The reports of an audit run: `summary.md`, `summary.html` and, when asked, `roots.csv`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Reports;

impl ReportWriter for Reports {
    fn write(&self, dir: &Path, doc: &SummaryDocument, csv: bool) -> Result<()> {
        write_atomic(&dir.join("summary.md"), audit_markdown(doc).as_bytes())?;
        if csv {
            self.roots_csv(&dir.join("records.jsonl"), &dir.join("roots.csv"))?;
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
    if !doc.settings.dtd.layer_rules.is_empty() {
        let _ = writeln!(
            out,
            "- per-layer rules: `{}`",
            doc.settings.dtd.layer_rules_text()
        );
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
    out
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
