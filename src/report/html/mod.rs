//! The audit summary as one self-contained HTML page: the run's identity and settings, the
//! per-layer table of summary.md, and SVG plots drawn with plotters. Nothing is fetched when
//! the page is opened (no scripts, fonts or images), and the same summary gives the same bytes.

use std::fmt::Write;
use std::ops::Range;

use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::pct;
use crate::audit::histogram::LogHistogram;
use crate::audit::spec::Targets;
use crate::audit::summary::Counts;
use crate::audit::SummaryDocument;

/// Title of the per-layer bar chart.
pub const TITLE_OUTSIDE: &str = "Roots outside their region, per layer";
/// Title of the violation-margin histogram.
pub const TITLE_MARGINS: &str = "Violation margins |σz|, all layers";
/// Title of the conservation-error histogram.
pub const TITLE_CONSERVATION: &str = "Relevance conservation error, all layers";

const PLOT_SIZE: (u32, u32) = (800, 360);
const MARGIN: u32 = 14;
const Y_LABEL_AREA: u32 = 66;
const X_LABEL_AREA: u32 = 50;
/// The width of the plotting area, for placing labels.
const PLOT_AREA_WIDTH: f64 = (PLOT_SIZE.0 - 2 * MARGIN - Y_LABEL_AREA) as f64;
const FONT: &str = "sans-serif";
/// Font sizes as plotters takes them; SVG text comes out at size / 1.24 pixels.
const LABEL_FONT: f64 = 15.0;
const DESC_FONT: f64 = 16.0;
const LABEL_FONT_PX: f64 = LABEL_FONT / 1.24;
/// Decade labels of a histogram are at least this far apart, in pixels.
const MIN_LABEL_SPACING: f64 = 60.0;
const LABEL_PADDING: f64 = 8.0;
const BAR: RGBColor = RGBColor(0x3B, 0x6E, 0xA8);
/// Bars that are not bins of the log scale: exact zeros, values below or above the range.
const SPECIAL_BAR: RGBColor = RGBColor(0x9A, 0x9A, 0x9A);

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1d1d1f;\
max-width:70rem;margin:2rem auto;padding:0 1rem;line-height:1.45}\
h1{font-size:1.6rem;margin-bottom:.5rem}h2{font-size:1.2rem;margin-top:2rem}\
table{border-collapse:collapse;margin:.5rem 0 1rem}\
th,td{border:1px solid #d0d0d5;padding:.25rem .6rem;text-align:left;vertical-align:top}\
th{background:#f2f2f5;font-weight:600}td.num,th.num{text-align:right;white-space:nowrap;\
font-variant-numeric:tabular-nums}tr.total td{font-weight:600;background:#fafafa}\
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

/// `10` with the exponent in Unicode superscripts (`10⁻¹⁶`).
fn pow10(exponent: i32) -> String {
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

    let _ = writeln!(out, "<h2>Roots per layer</h2>");
    layer_table(&mut out, doc);

    let _ = writeln!(out, "<h2>{}</h2>", escape(TITLE_OUTSIDE));
    figure(
        &mut out,
        outside_plot(s),
        "Fraction of the roots of each layer that lie outside the input's linear region \
         P_l(x), whatever their domain status; the label gives the percentage and the count.",
    );

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
    let _ = writeln!(
        out,
        "<tr><th>{}</th><td>{value_html}</td></tr>",
        escape(key)
    );
}

fn identity_table(out: &mut String, doc: &SummaryDocument<'_>) {
    let s = doc.summary;
    let _ = writeln!(out, "<table class=\"identity\">");
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
    if !doc.settings.dtd.layer_rules.is_empty() {
        row(
            out,
            "per-layer rules",
            &format!(
                "<code>{}</code>",
                escape(&doc.settings.dtd.layer_rules_text())
            ),
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
    let _ = writeln!(out, "</table>");
}

/// Every setting as serialised into summary.json, nested fields as dotted keys, so the table
/// follows the settings struct without listing its fields here.
fn settings_table(out: &mut String, doc: &SummaryDocument<'_>) {
    let mut rows = Vec::new();
    match serde_json::to_value(doc.settings) {
        Ok(value) => flatten_json("", &value, &mut rows),
        Err(e) => rows.push(("error".to_string(), e.to_string())),
    }
    let _ = writeln!(out, "<table class=\"settings\">");
    for (key, value) in rows {
        row(out, &key, &format!("<code>{}</code>", escape(&value)));
    }
    let _ = writeln!(out, "</table>");
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
    let _ = writeln!(out, "<table class=\"layers\">\n<thead><tr>");
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
    let _ = writeln!(out, "</tbody>\n</table>");
    let _ = writeln!(
        out,
        "<p class=\"note\">Layer 1 takes the network input. A root is valid when it lies in the \
         input's linear region P_l(x) and in the domain; one on a face of the region (some \
         constraint with equality) is inside, and counted under \"on a face\" too. Every verdict \
         is about the exact root. Activation patterns that needed exact arithmetic: {}.</p>",
        s.pattern_exact_fallbacks
    );
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

/// A plot (or its "no data" note, or why it could not be drawn) and its caption.
enum Plot {
    Svg(String),
    NoData(&'static str),
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

/// A linear f64 axis whose ticks are exactly the given points, each with its own label (bin
/// edges as powers of ten, a "0" bar beside them, layer numbers).
struct LabelledAxis {
    range: Range<f64>,
    ticks: Vec<(f64, String)>,
}

impl Ranged for LabelledAxis {
    type FormatOption = NoDefaultFormatting;
    type ValueType = f64;

    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        let t = (value - self.range.start) / (self.range.end - self.range.start);
        limit.0 + (f64::from(limit.1 - limit.0) * t + 1e-3).floor() as i32
    }

    fn key_points<Hint: KeyPointHint>(&self, hint: Hint) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.iter().map(|t| t.0).collect()
        }
    }

    fn range(&self) -> Range<f64> {
        self.range.clone()
    }
}

impl ValueFormatter<f64> for LabelledAxis {
    fn format_ext(&self, value: &f64) -> String {
        self.ticks
            .iter()
            .find(|(p, _)| (p - value).abs() < 1e-9)
            .map_or_else(String::new, |(_, label)| label.clone())
    }
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Draws into an SVG string of [`PLOT_SIZE`].
fn svg(
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> DrawResult,
) -> Result<String, String> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, PLOT_SIZE).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        draw(&root).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(buf)
}

/// Bar chart of the fraction of roots outside the region, one bar per layer.
fn outside_plot(s: &crate::audit::Summary) -> Result<Plot, String> {
    if s.total.roots == 0 {
        return Ok(Plot::NoData(
            "No neuron has a root in this run (zero relevance, small denominators, or rules \
             without roots): nothing to plot.",
        ));
    }
    let layers: Vec<(f64, &Counts)> = s
        .layers
        .iter()
        .map(|l| (l.layer as f64, &l.counts))
        .collect();
    let first = layers.first().map_or(1.0, |l| l.0);
    let last = layers.last().map_or(1.0, |l| l.0);
    let x_axis = LabelledAxis {
        range: (first - 0.5)..(last + 0.5),
        ticks: layers.iter().map(|l| (l.0, format!("{}", l.0))).collect(),
    };
    let y_axis = LabelledAxis {
        range: 0.0..112.0,
        ticks: [0.0, 25.0, 50.0, 75.0, 100.0]
            .into_iter()
            .map(|y| (y, format!("{y} %")))
            .collect(),
    };
    let annotate = layers.len() <= 16;
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .margin(MARGIN)
            .x_label_area_size(X_LABEL_AREA)
            .y_label_area_size(Y_LABEL_AREA)
            .build_cartesian_2d(x_axis, y_axis)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("layer")
            .y_desc("roots outside the region")
            .light_line_style(TRANSPARENT)
            .label_style((FONT, LABEL_FONT))
            .axis_desc_style((FONT, DESC_FONT))
            .draw()?;
        let half = 0.32;
        chart.draw_series(layers.iter().filter(|(_, c)| c.roots > 0).map(|(x, c)| {
            Rectangle::new(
                [(x - half, 0.0), (x + half, 100.0 * c.fraction_outside())],
                BAR.filled(),
            )
        }))?;
        if annotate {
            let style = TextStyle::from((FONT, LABEL_FONT).into_font())
                .color(&BLACK)
                .pos(Pos::new(HPos::Center, VPos::Bottom));
            chart.draw_series(layers.iter().map(|(x, c)| {
                let text = if c.roots == 0 {
                    "no roots".to_string()
                } else {
                    format!(
                        "{:.1} % ({}/{})",
                        100.0 * c.fraction_outside(),
                        c.roots_outside,
                        c.roots
                    )
                };
                Text::new(
                    text,
                    (*x, 100.0 * c.fraction_outside() + 1.5),
                    style.clone(),
                )
            }))?;
        }
        Ok(())
    })
    .map(Plot::Svg)
}

/// One bar of a histogram plot, in bin-index units along x.
struct Bar {
    x: f64,
    count: u64,
    special: bool,
}

/// The estimated width in pixels of an axis label (plotters does not measure SVG text).
fn label_width(label: &str) -> f64 {
    label.chars().count() as f64 * 0.6 * LABEL_FONT_PX
}

/// Histogram on the log scale of `h`: one bar per bin, from the first to the last decade that
/// holds a value, bin edges labelled as powers of ten; exact zeros (`show_zero`, or whenever
/// there are any) and values outside the range as separate grey bars.
fn histogram_plot(
    h: &LogHistogram,
    show_zero: bool,
    x_desc: &str,
    y_desc: &str,
    empty: &'static str,
) -> Result<Plot, String> {
    if h.total() == 0 {
        return Ok(Plot::NoData(empty));
    }
    let bpd = h.bins_per_decade.max(1) as usize;
    let lowest = h.lowest_exponent;
    let highest = lowest + (h.counts.len() / bpd) as i32;
    // Whole decades from the first to the last bin that holds a value.
    let decades = match (
        h.counts.iter().position(|&c| c > 0),
        h.counts.iter().rposition(|&c| c > 0),
    ) {
        (Some(first), Some(last)) => Some((first / bpd * bpd, (last / bpd + 1) * bpd)),
        _ => None,
    };
    // Grey bars sit one decade (at least two bins) away from the log-scale bins.
    let gap = bpd.max(2) as f64;
    let mut bars = Vec::new();
    let mut specials: Vec<(f64, String)> = Vec::new();
    let mut x = 0.0;
    let mut special = |x: &mut f64, count: u64, label: String| {
        bars.push(Bar {
            x: *x,
            count,
            special: true,
        });
        specials.push((*x + 0.5, label));
        *x += 1.0 + gap;
    };
    if show_zero || h.zero > 0 {
        special(&mut x, h.zero, "0".to_string());
    }
    if h.below > 0 {
        special(&mut x, h.below, format!("<{}", pow10(lowest)));
    }
    let regular_at = x;
    if let Some((start, end)) = decades {
        x += (end - start) as f64 + gap;
    }
    if h.above > 0 {
        special(&mut x, h.above, format!("≥{}", pow10(highest)));
    }
    if let Some((start, end)) = decades {
        for (offset, &count) in h.counts[start..end].iter().enumerate() {
            if count > 0 {
                bars.push(Bar {
                    x: regular_at + offset as f64,
                    count,
                    special: false,
                });
            }
        }
    }
    // A short axis is padded on both sides so that bars keep a sensible width.
    let used = x - gap;
    let pad = ((12.0 - used) / 2.0).max(0.0) + 0.5;
    let (x0, x1) = (-pad, used + pad);
    let px_per_bin = PLOT_AREA_WIDTH / (x1 - x0);
    let mut labels = specials;
    if let Some((start, end)) = decades {
        let count = (end - start) / bpd;
        let step = (1..=count.max(1))
            .find(|s| (s * bpd) as f64 * px_per_bin >= MIN_LABEL_SPACING)
            .unwrap_or(count.max(1));
        for d in (0..=count).step_by(step) {
            let at = regular_at + (d * bpd) as f64;
            let label = pow10(lowest + (start / bpd + d) as i32);
            let clear = labels.iter().all(|(p, l)| {
                (p - at).abs() * px_per_bin
                    >= (label_width(l) + label_width(&label)) / 2.0 + LABEL_PADDING
            });
            if clear {
                labels.push((at, label));
            }
        }
    }
    labels.sort_by(|a, b| a.0.total_cmp(&b.0));
    let top = bars.iter().map(|b| b.count).max().unwrap_or(1);
    let y_max = top + top.div_ceil(10).max(1);
    let x_axis = LabelledAxis {
        range: x0..x1,
        ticks: labels,
    };
    svg(|root| {
        let mut chart = ChartBuilder::on(root)
            .margin(MARGIN)
            .x_label_area_size(X_LABEL_AREA)
            .y_label_area_size(Y_LABEL_AREA)
            .build_cartesian_2d(x_axis, 0u64..y_max)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .y_label_formatter(&|y| y.to_string())
            .x_desc(x_desc)
            .y_desc(y_desc)
            .light_line_style(TRANSPARENT)
            .label_style((FONT, LABEL_FONT))
            .axis_desc_style((FONT, DESC_FONT))
            .draw()?;
        let inset = 0.06;
        chart.draw_series(bars.iter().map(|b| {
            let color = if b.special { SPECIAL_BAR } else { BAR };
            Rectangle::new(
                [(b.x + inset, 0), (b.x + 1.0 - inset, b.count)],
                color.filled(),
            )
        }))?;
        Ok(())
    })
    .map(Plot::Svg)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::audit::spec::{InputsInfo, ModelInfo, RunSpec};
    use crate::audit::{audit_sample, AuditSettings, Summary};
    use crate::model::Model;

    fn summary_of(model: &Model, settings: &AuditSettings, inputs: &[Vec<f64>]) -> Summary {
        let mut summary = Summary::new(model.net().layers().len());
        for (i, x) in inputs.iter().enumerate() {
            summary.add(&audit_sample(model, settings, i, x, Some(0)).unwrap());
        }
        summary
    }

    fn page(model: &Model, settings: &AuditSettings, summary: &Summary, path: &str) -> String {
        let spec = RunSpec {
            tool: "dtdcert".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            model: ModelInfo {
                path: PathBuf::from(path),
                fingerprint: model.fingerprint().to_string(),
                architecture: model.net().describe(),
                question: None,
                question_text: None,
                keep_batch_norm: false,
            },
            inputs: InputsInfo {
                path: PathBuf::from("in\"puts.npy"),
                key: None,
                samples: summary.samples as usize,
                width: 2,
                fingerprint: "sha256:00".into(),
            },
            targets: Targets::Index { index: 0 },
            settings: settings.clone(),
            shard: None,
        };
        audit_html(&SummaryDocument::new(&spec, summary))
    }

    fn inputs() -> Vec<Vec<f64>> {
        (0..12)
            .map(|i| vec![0.25 + 0.5 * i as f64, 1.5 - 0.2 * i as f64])
            .collect()
    }

    /// Every `<svg` opens a balanced SVG element: tags of the SVG part nest properly.
    fn check_svg_balance(html: &str) {
        let opens = html.matches("<svg").count();
        assert_eq!(opens, html.matches("</svg>").count());
        let mut rest = html;
        while let Some(start) = rest.find("<svg") {
            let end = rest[start..].find("</svg>").expect("closing </svg>") + start + 6;
            let part = &rest[start..end];
            let mut stack: Vec<&str> = Vec::new();
            let mut s = part;
            while let Some(lt) = s.find('<') {
                let gt = s[lt..].find('>').expect("tag closes") + lt;
                let tag = &s[lt + 1..gt];
                if let Some(name) = tag.strip_prefix('/') {
                    assert_eq!(stack.pop(), Some(name.trim()), "in {part}");
                } else if !tag.ends_with('/') {
                    let name = tag.split_whitespace().next().unwrap();
                    stack.push(name);
                }
                s = &s[gt + 1..];
            }
            assert!(stack.is_empty(), "unclosed {stack:?}");
            rest = &rest[end..];
        }
    }

    #[test]
    fn page_is_self_contained_escaped_and_deterministic() {
        let model = crate::report::tests_support::tiny_model();
        let settings = AuditSettings::default();
        let summary = summary_of(&model, &settings, &inputs());
        assert!(summary.total.roots > 0);
        let path = "runs/<a&b>\"c\".onnx";
        let html = page(&model, &settings, &summary, path);
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.trim_end().ends_with("</html>"));
        for title in [TITLE_OUTSIDE, TITLE_MARGINS, TITLE_CONSERVATION] {
            assert!(html.contains(&escape(title)), "missing {title}");
        }
        assert!(html.contains("runs/&lt;a&amp;b&gt;&quot;c&quot;.onnx"));
        assert!(!html.contains("<a&b>"));
        assert!(html.contains("in&quot;puts.npy"));
        assert!(!html.to_ascii_lowercase().contains("<script"));
        for external in ["http-equiv", "<link", "<img", "src=", "@import", "url("] {
            assert!(!html.contains(external), "{external}");
        }
        check_svg_balance(&html);
        // The conservation histogram always has a plot, with its zero bar labelled "0".
        assert!(html.matches("<svg").count() >= 2);
        assert!(html.contains(">\n0\n</text>"));
        assert!(html.contains("denominator_threshold"));
        assert_eq!(html, page(&model, &settings, &summary, path));
    }

    #[test]
    fn empty_histograms_show_a_note() {
        let model = crate::report::tests_support::tiny_model();
        let settings = AuditSettings::default();
        let summary = Summary::new(2);
        let html = page(&model, &settings, &summary, "m.onnx");
        assert_eq!(html.matches("class=\"nodata\"").count(), 3);
        assert!(!html.contains("<svg"));
        for title in [TITLE_OUTSIDE, TITLE_MARGINS, TITLE_CONSERVATION] {
            assert!(html.contains(&escape(title)));
        }
    }

    #[test]
    fn histogram_labels_are_powers_of_ten_and_special_bars() {
        let mut h = LogHistogram::default();
        for v in [0.0, 1e-20, 3e-3, 0.04, 0.5, 2e5] {
            h.add(v);
        }
        let Ok(Plot::Svg(svg)) = histogram_plot(&h, true, "x", "y", "none") else {
            panic!("a plot");
        };
        for label in ["0", "&lt;10⁻¹⁶", "10⁻³", "10⁰", "≥10⁴"] {
            assert!(svg.contains(&format!(">\n{label}\n</text>")), "{label}");
        }
        assert_eq!(pow10(-16), "10⁻¹⁶");
        assert_eq!(pow10(4), "10⁴");
    }
}
