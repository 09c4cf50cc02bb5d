//! The audit summary as one self-contained HTML page: the headline, the per-layer table of
//! summary.md, SVG plots (`plots.rs`), the certified answers of `--certify`, and the run's
//! identity and settings. Nothing is fetched when the page is opened (no scripts, fonts or
//! images), and the same summary gives the same bytes.

mod plots;
#[cfg(test)]
mod tests;

use std::fmt::Write;

use plots::{histogram_plot, outside_count_plot, outside_plot, relevance_share_plot, Plot};

use super::{pct, pow10};
use crate::audit::histogram::LogHistogram;
use crate::audit::spec::Targets;
use crate::audit::summary::Counts;
use crate::audit::SummaryDocument;

/// Title of the per-layer bar chart.
pub const TITLE_OUTSIDE: &str = "Roots outside their region, per layer";
/// Title of the plot of samples by their number of roots outside.
pub const TITLE_PER_SAMPLE: &str = "Roots outside per sample";
/// Title of the plot of the relevance carried by roots outside.
pub const TITLE_RELEVANCE: &str = "Relevance carried by roots outside, per layer";
/// Title of the certified answers of `--certify`.
pub const TITLE_CERTIFIED: &str = "Certified answers";
/// Title of the violation-margin histogram.
pub const TITLE_MARGINS: &str = "Violation margins |σz|, all layers";
/// Title of the conservation-error histogram.
pub const TITLE_CONSERVATION: &str = "Relevance conservation error, all layers";

/// Fits a 1280-pixel window: header cells wrap, number cells stay on one line, the key-value
/// tables share the width with long values wrapped, and a table still too wide scrolls
/// inside its own box instead of widening the page.
const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1d1d1f;\
max-width:70rem;margin:2rem auto;padding:0 1rem;line-height:1.45}\
h1{font-size:1.6rem;margin-bottom:.5rem}h2{font-size:1.2rem;margin-top:2rem}\
.table-wrap{max-width:100%;overflow-x:auto;margin:.5rem 0 1rem}\
table{border-collapse:collapse}\
th,td{border:1px solid #d0d0d5;padding:.25rem .5rem;text-align:left;vertical-align:top}\
th{background:#f2f2f5;font-weight:600}thead th{vertical-align:bottom}\
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}td.num{white-space:nowrap}\
tr.total td{font-weight:600;background:#fafafa}\
table.keys{table-layout:fixed;width:100%}table.keys th{width:16rem;overflow-wrap:anywhere}\
table.keys td{overflow-wrap:anywhere}\
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em;\
word-break:break-all}\
figure{margin:1rem 0 2rem}svg{max-width:100%;height:auto;display:block}\
figcaption,.note{color:#555;font-size:.92rem}\
.nodata{border:1px dashed #bbb;padding:1.5rem;color:#666;text-align:center;max-width:40rem}";

/// Escapes text for HTML content and attribute values.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// summary.html of an audit run.
pub fn audit_html(doc: &SummaryDocument<'_>) -> String {
    let s = doc.summary;
    let mut out = String::new();
    let _ = writeln!(out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>");
    let _ = writeln!(out, "<meta charset=\"utf-8\">");
    let _ = writeln!(
        out,
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
    );
    let _ = writeln!(
        out,
        "<title>dtdcert audit: {}</title>",
        escape(&doc.model.path.display().to_string())
    );
    let _ = writeln!(out, "<style>{STYLE}</style>\n</head>\n<body>");
    let _ = writeln!(out, "<h1>dtdcert audit</h1>");
    let _ = writeln!(
        out,
        "<p class=\"headline\">{}</p>",
        escape(&super::headline(s))
    );

    if let Some(r) = &doc.root_sample {
        let _ = writeln!(
            out,
            "<p class=\"note\">{}</p>",
            escape(&super::sampled::sentence(r))
        );
    }

    let _ = writeln!(out, "<h2>Roots per layer</h2>");
    layer_table(&mut out, doc);

    if let Some(r) = &doc.root_sample {
        sampled_table(&mut out, r);
    }

    let _ = writeln!(out, "<h2>{}</h2>", escape(TITLE_OUTSIDE));
    figure(
        &mut out,
        outside_plot(s),
        "Fraction of the roots of each layer that lie outside the input's linear region \
         P_l(x), whatever their domain status; the label gives the percentage and the count.",
    );

    let _ = writeln!(out, "<h2>{}</h2>", escape(TITLE_PER_SAMPLE));
    let with_some = s.total.samples_with_root_outside;
    figure(
        &mut out,
        outside_count_plot(s),
        &format!(
            "How many samples have 0, 1, 2, … roots outside their region, over all layers \
             (grey: none; bars of ranges where the numbers are many). {} of the {} samples ({}) \
             have at least one.",
            with_some,
            s.samples,
            pct(with_some, s.samples)
        ),
    );

    let shares = &s.total.outside_relevance_share;
    let _ = writeln!(out, "<h2>{}</h2>", escape(TITLE_RELEVANCE));
    figure(
        &mut out,
        relevance_share_plot(s),
        &format!(
            "For each layer, the samples by the share of the layer's relevance (Σ|R_j| over its \
             neurons) that the neurons whose root lies outside the region carry; percentages are \
             of the samples whose layer carries relevance. Over all layers and samples: {}.",
            super::share_classes(shares)
                .iter()
                .map(|(name, n)| format!("{name}: {}", pct(*n, shares.defined())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );

    if let Some(certify) = &doc.settings.certify {
        certified_section(&mut out, s, certify);
    }

    let margins = &s.total.margin_histogram;
    let _ = writeln!(out, "<h2>{}</h2>", escape(TITLE_MARGINS));
    figure(
        &mut out,
        histogram_plot(
            margins,
            false,
            "|σz| at the first violated constraint",
            "roots",
            "No root lies outside its region: there are no violation margins to plot.",
        ),
        &format!(
            "|σz| at the first violated constraint of every root outside its region, over all \
             layers and samples ({} roots); {}.",
            margins.total(),
            bin_note(margins)
        ),
    );

    let errors = &s.total.conservation_error_histogram;
    let _ = writeln!(out, "<h2>{}</h2>", escape(TITLE_CONSERVATION));
    figure(
        &mut out,
        histogram_plot(
            errors,
            true,
            "|ΣRˡ − ΣRˡ⁻¹ − unresolved|",
            "layers × samples",
            "No layer was explained: there are no conservation errors to plot.",
        ),
        &format!(
            "|ΣRˡ − ΣRˡ⁻¹ − unresolved| of every layer of every sample ({} values, {} \
             exactly 0); {}. Only rounding makes it non-zero.",
            errors.total(),
            errors.zero,
            bin_note(errors)
        ),
    );

    // What was run comes after what it found.
    let _ = writeln!(out, "<h2>Run</h2>");
    identity_table(&mut out, doc);
    let _ = writeln!(out, "<h2>Settings</h2>");
    settings_table(&mut out, doc);

    let _ = writeln!(out, "</body>\n</html>");
    out
}

fn row(out: &mut String, key: &str, value_html: &str) {
    // Dotted keys break after a dot where the column is too narrow for them.
    let _ = writeln!(
        out,
        "<tr><th>{}</th><td>{value_html}</td></tr>",
        escape(key).replace('.', ".<wbr>")
    );
}

fn identity_table(out: &mut String, doc: &SummaryDocument<'_>) {
    let s = doc.summary;
    let _ = writeln!(
        out,
        "<div class=\"table-wrap\">\n<table class=\"identity keys\">"
    );
    row(
        out,
        "model",
        &format!(
            "<code>{}</code>",
            escape(&doc.model.path.display().to_string())
        ),
    );
    row(out, "architecture", &escape(&doc.model.architecture));
    row(
        out,
        "model fingerprint",
        &format!("<code>{}</code>", escape(&doc.model.fingerprint)),
    );
    row(
        out,
        "inputs",
        &format!(
            "<code>{}</code> ({} samples of width {})",
            escape(&doc.inputs.path.display().to_string()),
            doc.inputs.samples,
            doc.inputs.width
        ),
    );
    row(
        out,
        "inputs fingerprint",
        &format!("<code>{}</code>", escape(&doc.inputs.fingerprint)),
    );
    if let Some(shard) = doc.shard {
        row(
            out,
            "shard",
            &format!(
                "{} of {} (the samples i with i mod {} = {})",
                shard.index,
                shard.count,
                shard.count,
                shard.index - 1
            ),
        );
    }
    let targets = match doc.targets {
        Targets::Top => "each sample's top output".to_string(),
        Targets::Index { index } => format!("output {index}"),
        Targets::File { path, .. } => format!(
            "one output per sample, from <code>{}</code>",
            escape(&path.display().to_string())
        ),
    };
    row(out, "explained output", &targets);
    row(out, "rule", &format!("<code>{}</code>", escape(&doc.rule)));
    row(
        out,
        "input-layer rule",
        &format!("<code>{}</code>", escape(&doc.input_rule)),
    );
    if !doc.settings.dtd.layer_rules_text().is_empty() {
        row(
            out,
            "per-layer rules",
            &format!(
                "<code>{}</code>",
                escape(&doc.settings.dtd.layer_rules_text())
            ),
        );
    }
    if !doc.layer_rules.is_empty() {
        row(
            out,
            "rule of each layer",
            &format!("<code>{}</code>", escape(&doc.layer_rules)),
        );
    }
    row(
        out,
        "verdicts",
        &escape(&super::verdicts_text(doc.settings)),
    );
    row(
        out,
        "samples audited",
        &format!(
            "{} ({} activation patterns needed exact arithmetic)",
            s.samples, s.pattern_exact_fallbacks
        ),
    );
    row(
        out,
        "version",
        &format!("{} {}", escape(doc.tool), escape(doc.version)),
    );
    let _ = writeln!(out, "</table>\n</div>");
}

/// Every setting as serialised into summary.json, nested fields as dotted keys, so the table
/// follows the settings struct without listing its fields here.
fn settings_table(out: &mut String, doc: &SummaryDocument<'_>) {
    let mut rows = Vec::new();
    match serde_json::to_value(doc.settings) {
        Ok(value) => flatten_json("", &value, &mut rows),
        Err(e) => rows.push(("error".to_string(), e.to_string())),
    }
    let _ = writeln!(
        out,
        "<div class=\"table-wrap\">\n<table class=\"settings keys\">"
    );
    for (key, value) in rows {
        row(out, &key, &format!("<code>{}</code>", escape(&value)));
    }
    let _ = writeln!(out, "</table>\n</div>");
}

fn flatten_json(prefix: &str, value: &serde_json::Value, rows: &mut Vec<(String, String)>) {
    use serde_json::Value;
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten_json(&key, v, rows);
            }
        }
        Value::Null => rows.push((prefix.to_string(), "none".to_string())),
        Value::String(s) => rows.push((prefix.to_string(), s.clone())),
        other => rows.push((prefix.to_string(), other.to_string())),
    }
}

fn layer_table(out: &mut String, doc: &SummaryDocument<'_>) {
    let s = doc.summary;
    let _ = writeln!(
        out,
        "<div class=\"table-wrap\">\n<table class=\"layers\">\n<thead><tr>"
    );
    for (i, h) in [
        "layer",
        "roots",
        "outside region",
        "out of domain",
        "valid",
        "on a face",
        "samples with a root outside",
        "neurons without root",
        "exact fallbacks",
        "max conservation error",
    ]
    .iter()
    .enumerate()
    {
        let class = if i == 0 { "" } else { " class=\"num\"" };
        let _ = write!(out, "<th{class}>{h}</th>");
    }
    let _ = writeln!(out, "</tr></thead>\n<tbody>");
    for l in &s.layers {
        counts_row(out, &l.layer.to_string(), &l.counts, s.samples, false);
    }
    counts_row(out, "total", &s.total, s.samples, true);
    let _ = writeln!(out, "</tbody>\n</table>\n</div>");
    let _ = writeln!(
        out,
        "<p class=\"note\">Layer 1 takes the network input. A root is valid when it lies in the \
         input's linear region P_l(x) and in the domain; one on a face of the region (some \
         constraint with equality) is inside, and counted under \"on a face\" too. Every verdict \
         is about the exact root. Activation patterns that needed exact arithmetic: {}.</p>",
        s.pattern_exact_fallbacks
    );
}

/// The per-layer fractions of a sampled-root audit with their Wilson intervals.
fn sampled_table(out: &mut String, r: &crate::audit::sampling::SampledSummary) {
    use super::sampled::{rows, COLUMNS, TITLE};
    let _ = writeln!(out, "<h2>{TITLE}</h2>");
    let _ = writeln!(
        out,
        "<div class=\"table-wrap\">\n<table class=\"sampled\">\n<thead><tr>"
    );
    for (i, h) in COLUMNS.iter().enumerate() {
        let class = if i == 0 { "" } else { " class=\"num\"" };
        let _ = write!(out, "<th{class}>{}</th>", escape(h));
    }
    let _ = writeln!(out, "</tr></thead>\n<tbody>");
    let rows = rows(r);
    let last = rows.len() - 1;
    for (i, row) in rows.into_iter().enumerate() {
        let class = if i == last { " class=\"total\"" } else { "" };
        let _ = write!(out, "<tr{class}><td>{}</td>", escape(&row[0]));
        for cell in &row[1..] {
            let _ = write!(out, "<td class=\"num\">{}</td>", escape(cell));
        }
        let _ = writeln!(out, "</tr>");
    }
    let _ = writeln!(out, "</tbody>\n</table>\n</div>");
}

fn counts_row(out: &mut String, name: &str, c: &Counts, samples: u64, total: bool) {
    let cells = [
        c.roots.to_string(),
        format!("{} ({})", c.roots_outside, pct(c.roots_outside, c.roots)),
        c.roots_out_of_domain.to_string(),
        c.roots_valid.to_string(),
        c.roots_on_face.to_string(),
        format!(
            "{} ({})",
            c.samples_with_root_outside,
            pct(c.samples_with_root_outside, samples)
        ),
        (c.no_root_zero_relevance
            + c.no_root_small_denominator
            + c.not_applicable
            + c.no_root_no_valid_root
            + c.no_root_uncertified)
            .to_string(),
        c.exact_fallbacks.to_string(),
        format!("{:.1e}", c.max_conservation_error),
    ];
    let class = if total { " class=\"total\"" } else { "" };
    let _ = write!(out, "<tr{class}><td>{}</td>", escape(name));
    for cell in cells {
        let _ = write!(out, "<td class=\"num\">{}</td>", escape(&cell));
    }
    let _ = writeln!(out, "</tr>");
}

fn figure(out: &mut String, plot: Result<Plot, String>, caption: &str) {
    let _ = writeln!(out, "<figure>");
    match plot {
        Ok(Plot::Svg(svg)) => {
            out.push_str(&svg);
            if !svg.ends_with('\n') {
                out.push('\n');
            }
        }
        Ok(Plot::NoData(note)) => {
            let _ = writeln!(out, "<p class=\"nodata\">{}</p>", escape(note));
        }
        Err(e) => {
            let _ = writeln!(
                out,
                "<p class=\"nodata\">The plot could not be drawn: {}</p>",
                escape(&e)
            );
        }
    }
    let _ = writeln!(
        out,
        "<figcaption>{}</figcaption>\n</figure>",
        escape(caption)
    );
}

fn bin_note(h: &LogHistogram) -> String {
    let highest = h.lowest_exponent as i64 + (h.counts.len() as i64) / h.bins_per_decade as i64;
    format!(
        "{} bins per decade from {} to {}, {} below and {} above that range",
        h.bins_per_decade,
        pow10(h.lowest_exponent),
        pow10(highest as i32),
        h.below,
        h.above
    )
}

/// `--certify`: the sentence, the per-layer table of answers and, for nearest problems, the
/// histogram of certified distances.
fn certified_section(
    out: &mut String,
    s: &crate::audit::Summary,
    certify: &crate::audit::CertifySettings,
) {
    let _ = writeln!(out, "<h2>{}</h2>", escape(TITLE_CERTIFIED));
    let _ = writeln!(
        out,
        "<p>{}</p>",
        escape(&super::certified_sentence(s, certify))
    );
    let _ = writeln!(
        out,
        "<div class=\"table-wrap\">\n<table class=\"certified\">\n<thead><tr><th>layer</th>\
         <th class=\"num\">invalid roots</th><th class=\"num\">valid root exists</th>\
         <th class=\"num\">no valid root</th><th class=\"num\">unknown</th></tr></thead>\n<tbody>"
    );
    for (name, c, total) in s
        .layers
        .iter()
        .map(|l| (l.layer.to_string(), &l.counts, false))
        .chain([("total".to_string(), &s.total, true)])
    {
        let class = if total { " class=\"total\"" } else { "" };
        let _ = write!(out, "<tr{class}><td>{}</td>", escape(&name));
        for n in super::certified_cells(c) {
            let _ = write!(out, "<td class=\"num\">{n}</td>");
        }
        let _ = writeln!(out, "</tr>");
    }
    let _ = writeln!(out, "</tbody>\n</table>\n</div>");
    if certify.problem == crate::check::Problem::Exists {
        return;
    }
    let distances = &s.total.certified_distance_histogram;
    figure(
        out,
        histogram_plot(
            distances,
            false,
            "certified distance to the nearest valid root",
            "roots",
            "No invalid root has a certified nearest valid root: there are no distances to plot.",
        ),
        &format!(
            "The certified distance ({}) from the layer input to the nearest valid root, the \
             upper end of its certified interval, for the {} invalid roots that have one; {}.",
            if certify.problem == crate::check::Problem::NearestLinf {
                "L∞"
            } else {
                "L1"
            },
            distances.total(),
            bin_note(distances)
        ),
    );
}
