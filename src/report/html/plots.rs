//! The SVG plots of the HTML page, drawn with plotters: bar charts per layer, histograms on a
//! log scale, the roots outside per sample and the relevance they carry.

use std::ops::Range;

use plotters::coord::ranged1d::{KeyPointHint, NoDefaultFormatting, Ranged, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::audit::histogram::LogHistogram;
use crate::audit::summary::Counts;
use crate::report::pow10;

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
pub(super) const BAR: RGBColor = RGBColor(0x3B, 0x6E, 0xA8);
/// Bars that are not bins of the log scale: exact zeros, values below or above the range.
pub(super) const SPECIAL_BAR: RGBColor = RGBColor(0x9A, 0x9A, 0x9A);
/// The classes of [`crate::report::share_classes`], from none (light) to over half (dark).
pub(super) const SHARE_COLOURS: [RGBColor; 4] = [
    RGBColor(0xD9, 0xD9, 0xD9),
    RGBColor(0xA9, 0xC9, 0xE6),
    RGBColor(0x5B, 0x8F, 0xC7),
    RGBColor(0x1F, 0x3F, 0x77),
];
/// The classes of a share histogram with their counts.
type ShareClasses = [(&'static str, u64); 4];
/// Room above a plot for a legend written in one row.
const LEGEND_HEIGHT: u32 = 30;

/// A plot (or its "no data" note, or why it could not be drawn) and its caption.
pub(super) enum Plot {
    /// The SVG element.
    Svg(String),
    /// Nothing to plot: the note shown instead.
    NoData(&'static str),
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
pub(super) fn outside_plot(s: &crate::audit::Summary) -> Result<Plot, String> {
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
pub(super) fn histogram_plot(
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

/// Bar chart of the samples by their number of roots outside the region, over all layers: one
/// bar per number (or per range of numbers, when there are many).
pub(super) fn outside_count_plot(s: &crate::audit::Summary) -> Result<Plot, String> {
    let ranges = crate::report::outside_count_ranges(&s.total.samples_by_roots_outside, 40);
    if ranges.is_empty() {
        return Ok(Plot::NoData(
            "No sample was audited: there is nothing to plot.",
        ));
    }
    let n = ranges.len();
    // Every label where there is room for it, else every k-th.
    let widest = ranges
        .iter()
        .map(|&(lo, hi, _)| label_width(&crate::report::range_text(lo, hi)))
        .fold(0.0, f64::max);
    let px_per_bar = PLOT_AREA_WIDTH / n.max(8) as f64;
    let every = ((widest + LABEL_PADDING) / px_per_bar).ceil().max(1.0) as usize;
    let pad = (n.max(8) - n) as f64 / 2.0;
    let x_axis = LabelledAxis {
        range: (-0.5 - pad)..(n as f64 - 0.5 + pad),
        ticks: ranges
            .iter()
            .enumerate()
            .filter(|(i, _)| i % every == 0)
            .map(|(i, &(lo, hi, _))| (i as f64, crate::report::range_text(lo, hi)))
            .collect(),
    };
    let top = ranges.iter().map(|r| r.2).max().unwrap_or(1).max(1);
    let y_max = top + top.div_ceil(10).max(1);
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
            .x_desc("roots outside their region, all layers")
            .y_desc("samples")
            .light_line_style(TRANSPARENT)
            .label_style((FONT, LABEL_FONT))
            .axis_desc_style((FONT, DESC_FONT))
            .draw()?;
        let half = 0.4;
        chart.draw_series(ranges.iter().enumerate().filter(|(_, r)| r.2 > 0).map(
            |(i, &(_, hi, count))| {
                // Samples without a root outside in grey, apart from those with some.
                let colour = if hi == 0 { SPECIAL_BAR } else { BAR };
                Rectangle::new(
                    [(i as f64 - half, 0), (i as f64 + half, count)],
                    colour.filled(),
                )
            },
        ))?;
        Ok(())
    })
    .map(Plot::Svg)
}

/// Stacked bars, one per layer: of the samples whose layer carries relevance, the percentage
/// in each class of [`crate::report::share_classes`], with a legend above the plot.
pub(super) fn relevance_share_plot(s: &crate::audit::Summary) -> Result<Plot, String> {
    // Per layer: its number, the samples in each class, the samples with a share.
    let layers: Vec<(f64, ShareClasses, u64)> = s
        .layers
        .iter()
        .map(|l| {
            let h = &l.counts.outside_relevance_share;
            (l.layer as f64, crate::report::share_classes(h), h.defined())
        })
        .collect();
    if layers.iter().all(|l| l.2 == 0) {
        return Ok(Plot::NoData(
            "No layer carries relevance in this run: there are no shares to plot.",
        ));
    }
    let first = layers.first().map_or(1.0, |l| l.0);
    let last = layers.last().map_or(1.0, |l| l.0);
    let x_axis = LabelledAxis {
        range: (first - 0.5)..(last + 0.5),
        ticks: layers.iter().map(|l| (l.0, format!("{}", l.0))).collect(),
    };
    let y_axis = LabelledAxis {
        range: 0.0..100.0,
        ticks: [0.0, 25.0, 50.0, 75.0, 100.0]
            .into_iter()
            .map(|y| (y, format!("{y} %")))
            .collect(),
    };
    let names = layers[0].1.map(|(name, _)| name);
    svg(|root| {
        let legend_style = TextStyle::from((FONT, LABEL_FONT).into_font())
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center));
        let mut x = (MARGIN + Y_LABEL_AREA) as i32;
        let y = (MARGIN + LEGEND_HEIGHT / 2) as i32 - 4;
        root.draw(&Text::new(
            "relevance carried by roots outside:",
            (x, y),
            legend_style.clone(),
        ))?;
        x += label_width("relevance carried by roots outside:") as i32 + 12;
        for (name, colour) in names.iter().zip(SHARE_COLOURS) {
            root.draw(&Rectangle::new(
                [(x, y - 6), (x + 12, y + 6)],
                colour.filled(),
            ))?;
            root.draw(&Text::new(*name, (x + 16, y), legend_style.clone()))?;
            x += 16 + label_width(name) as i32 + 18;
        }
        let mut chart = ChartBuilder::on(root)
            .margin(MARGIN)
            .margin_top(MARGIN + LEGEND_HEIGHT)
            .x_label_area_size(X_LABEL_AREA)
            .y_label_area_size(Y_LABEL_AREA)
            .build_cartesian_2d(x_axis, y_axis)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("layer")
            .y_desc("samples")
            .light_line_style(TRANSPARENT)
            .label_style((FONT, LABEL_FONT))
            .axis_desc_style((FONT, DESC_FONT))
            .draw()?;
        let half = 0.32;
        for (x, classes, total) in &layers {
            if *total == 0 {
                continue;
            }
            let mut bottom = 0.0;
            for ((_, n), colour) in classes.iter().zip(SHARE_COLOURS) {
                let height = 100.0 * *n as f64 / *total as f64;
                if height > 0.0 {
                    chart.draw_series(std::iter::once(Rectangle::new(
                        [(x - half, bottom), (x + half, bottom + height)],
                        colour.filled(),
                    )))?;
                }
                bottom += height;
            }
        }
        Ok(())
    })
    .map(Plot::Svg)
}
