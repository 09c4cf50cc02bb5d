//! Tests of the HTML page: self-contained, escaped, deterministic, its plots well formed.

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
            strip_softmax: false,
            split_residual: false,
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
    assert_eq!(html.matches("class=\"nodata\"").count(), 5);
    assert!(!html.contains("<svg"));
    for title in [
        TITLE_OUTSIDE,
        TITLE_PER_SAMPLE,
        TITLE_RELEVANCE,
        TITLE_MARGINS,
        TITLE_CONSERVATION,
    ] {
        assert!(html.contains(&escape(title)));
    }
}

/// Every table sits in its own scrolling box, header cells may wrap while number cells do
/// not, and the key-value tables share the page's width: nothing widens the page.
#[test]
fn tables_fit_the_window() {
    let model = crate::report::tests_support::tiny_model();
    let settings = AuditSettings::default();
    let summary = summary_of(&model, &settings, &inputs());
    let html = page(&model, &settings, &summary, "m.onnx");
    let tables = html.matches("<table").count();
    assert!(tables >= 3);
    assert_eq!(
        html.matches("<div class=\"table-wrap\">\n<table").count(),
        tables
    );
    let css = STYLE.replace(' ', "");
    assert!(css.contains(".table-wrap{max-width:100%;overflow-x:auto"));
    assert!(css.contains("td.num{white-space:nowrap}"));
    // No rule keeps header cells on one line.
    for rule in css.split('}') {
        if rule.contains("white-space:nowrap") {
            let selectors = rule.split('{').next().unwrap();
            assert!(!selectors.contains("th"), "{rule}");
        }
    }
    assert!(css.contains("table.keys{table-layout:fixed;width:100%}"));
    assert!(html.contains("<table class=\"identity keys\">"));
    assert!(html.contains("<table class=\"settings keys\">"));
}

/// The number of `<rect>`s of an SVG filled with `colour`.
fn filled(svg: &str, colour: plotters::style::RGBColor) -> usize {
    let hex = format!("#{:02x}{:02x}{:02x}", colour.0, colour.1, colour.2);
    svg.to_ascii_lowercase()
        .matches(&format!("fill=\"{hex}\""))
        .count()
}

#[test]
fn roots_outside_per_sample_and_the_relevance_they_carry_are_plotted() {
    let model = crate::report::tests_support::tiny_model();
    let settings = AuditSettings::default();
    let summary = summary_of(&model, &settings, &inputs());
    let html = page(&model, &settings, &summary, "m.onnx");
    for title in [TITLE_PER_SAMPLE, TITLE_RELEVANCE] {
        assert!(html.contains(&escape(title)), "{title}");
    }
    check_svg_balance(&html);
    // One bar per number of roots outside that some sample has, each number labelled.
    let by_count = &summary.total.samples_by_roots_outside;
    assert_eq!(by_count.values().sum::<u64>(), summary.samples);
    let Ok(Plot::Svg(svg)) = plots::outside_count_plot(&summary) else {
        panic!("a plot");
    };
    let largest = *by_count.keys().next_back().unwrap();
    for k in 0..=largest {
        assert!(svg.contains(&format!(">\n{k}\n</text>")), "label {k}");
    }
    let bars = filled(&svg, plots::BAR) + filled(&svg, plots::SPECIAL_BAR);
    assert_eq!(bars, by_count.values().filter(|&&n| n > 0).count());
    // Per layer, one segment per class that holds a sample, and the legend's four keys.
    let Ok(Plot::Svg(svg)) = plots::relevance_share_plot(&summary) else {
        panic!("a plot");
    };
    for (k, colour) in plots::SHARE_COLOURS.into_iter().enumerate() {
        let segments = summary
            .layers
            .iter()
            .filter(|l| crate::report::share_classes(&l.counts.outside_relevance_share)[k].1 > 0)
            .count();
        assert_eq!(filled(&svg, colour), segments + 1, "class {k}");
    }
    for (name, _) in crate::report::share_classes(&summary.total.outside_relevance_share) {
        assert!(svg.contains(&escape(name)), "legend {name}");
    }
}

#[test]
fn certified_answers_appear_only_when_the_run_certified() {
    use crate::audit::CertifySettings;
    use crate::check::Problem;

    let model = crate::report::tests_support::tiny_model();
    let settings = AuditSettings::default();
    let mut summary = summary_of(&model, &settings, &inputs());
    let plain = page(&model, &settings, &summary, "m.onnx");
    assert!(!plain.contains(TITLE_CERTIFIED));
    // Counts as a certified run would give them (the LP is not run here).
    for c in [&mut summary.layers[0].counts, &mut summary.total] {
        c.invalid_with_valid_alternative = 7;
        c.invalid_without_valid_root = 5;
        c.certify_unknown = 3;
        for d in [0.02, 0.3, 0.4] {
            c.certified_distance_histogram.add(d);
        }
    }
    for (problem, plots) in [(Problem::NearestL1, 1), (Problem::Exists, 0)] {
        let certified = AuditSettings {
            certify: Some(CertifySettings {
                problem,
                all: false,
                model_path: None,
                inputs_path: None,
            }),
            ..settings.clone()
        };
        let html = page(&model, &certified, &summary, "m.onnx");
        assert!(html.contains(TITLE_CERTIFIED));
        let sentence =
            crate::report::certified_sentence(&summary, certified.certify.as_ref().unwrap());
        assert!(html.contains(&escape(&sentence)), "{sentence}");
        assert!(sentence.contains(problem.name()));
        let table = &html[html.find("<table class=\"certified\">").unwrap()..];
        let table = &table[..table.find("</table>").unwrap()];
        assert_eq!(table.matches("<tr").count(), 1 + summary.layers.len() + 1);
        assert!(table.contains(
            "<td class=\"num\">7</td><td class=\"num\">5</td><td class=\"num\">3</td></tr>"
        ));
        assert_eq!(
            html.matches("<svg").count(),
            plain.matches("<svg").count() + plots,
            "{problem:?}"
        );
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
