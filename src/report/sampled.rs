//! The table of a sampled-root audit (`--roots-per-layer`) in summary.md and the HTML: per
//! layer and in total, the roots available and judged, and the fractions of judged roots
//! outside their region and not valid, each with its 95 % Wilson interval.

use crate::audit::sampling::{Proportion, SampledLayer, SampledSummary};

/// The heading of the table.
pub(crate) const TITLE: &str = "Sampled roots";

/// The columns of the table.
pub(crate) const COLUMNS: [&str; 7] = [
    "layer",
    "roots available",
    "judged",
    "outside region",
    "95 % interval",
    "outside region or domain",
    "95 % interval",
];

/// The sentence that says how the judged roots were drawn.
pub(crate) fn sentence(r: &SampledSummary) -> String {
    format!(
        "The roots judged are a uniform random draw of up to {} per layer and sample (seed {}): \
         {} of {}. Each fraction is of the judged roots, pooled over the samples, with its 95 % \
         Wilson score interval.",
        r.roots_per_layer, r.seed, r.total.roots_judged, r.total.roots_available
    )
}

fn percent(v: f64) -> String {
    format!("{:.1} %", 100.0 * v)
}

fn cells_of(p: &Proportion) -> [String; 2] {
    let fraction = p.fraction.map_or_else(
        || "–".to_string(),
        |f| format!("{} ({})", p.count, percent(f)),
    );
    let interval = p.wilson_95.map_or_else(
        || "–".to_string(),
        |[lo, hi]| format!("{} – {}", percent(lo), percent(hi)),
    );
    [fraction, interval]
}

/// The cells of one row: the layer's number (or `total`) and the columns of [`COLUMNS`].
pub(crate) fn cells(l: &SampledLayer) -> [String; 7] {
    let [outside, outside_interval] = cells_of(&l.outside);
    let [invalid, invalid_interval] = cells_of(&l.invalid);
    [
        l.layer
            .map_or_else(|| "total".to_string(), |n| n.to_string()),
        l.roots_available.to_string(),
        l.roots_judged.to_string(),
        outside,
        outside_interval,
        invalid,
        invalid_interval,
    ]
}

/// The rows of the table: one per layer, then the total.
pub(crate) fn rows(r: &SampledSummary) -> Vec<[String; 7]> {
    r.layers
        .iter()
        .chain(std::iter::once(&r.total))
        .map(cells)
        .collect()
}

/// The section in Markdown.
pub(crate) fn markdown(out: &mut String, r: &SampledSummary) {
    use std::fmt::Write;
    let _ = writeln!(out, "\n## {TITLE}\n\n{}\n", sentence(r));
    let _ = writeln!(out, "| {} |", COLUMNS.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(COLUMNS.len()));
    for row in rows(r) {
        let _ = writeln!(out, "| {} |", row.join(" | "));
    }
}
