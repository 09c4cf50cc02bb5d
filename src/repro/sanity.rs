//! The measures of the relation-network sanity check (PAPER.md, C7): how much a saliency map
//! changes when the explained answer, the question or the network's weights change, and how
//! much of it lies on the objects a question is about.
//!
//! A map `R` holds each input value's relevance, `[3, H, W]`. Its pixel map is the sum over
//! the channels; the comparisons work on pixel maps:
//! - [`normalised`]: the reference's normalisation, `|s|` clipped to its 0.5 and 99.5
//!   percentiles and scaled to [0, 1]; [`fraction_differing`] counts the pixels whose
//!   normalised values differ by more than a threshold (the reference's 1/4);
//! - [`ssim`]: structural similarity of the normalised maps (Wang et al. 2004: Gaussian
//!   window 11×11 with σ 1.5, data range 1, `K1 = 0.01`, `K2 = 0.03`, the mean over the
//!   windows that fit inside the map);
//! - [`spearman`]: Spearman's rank correlation of the pixel maps, or of their absolute values
//!   (ties ranked by their mean rank).
//!
//! The ground-truth measures of CLEVR-XAI take the mask `M` of the question's objects:
//! [`mass_accuracy`] `Σ h·M / Σ h` with `h` the per-pixel sum over channels of `R²`, and
//! [`rank_accuracy`], the fraction of the `K = |M|` pixels of largest `h = max_c |R|` that lie
//! in the mask (ties: the earlier pixel in row-major order first).

use serde::Serialize;

/// The reference's threshold on normalised values.
pub const THRESHOLD: f64 = 0.25;

/// The sum over channels of a `[channels, pixels]` map.
pub fn pixel_map(r: &[f64], pixels: usize) -> Vec<f64> {
    let mut map = vec![0.0; pixels];
    for channel in r.chunks(pixels) {
        for (m, v) in map.iter_mut().zip(channel) {
            *m += v;
        }
    }
    map
}

/// The `p`-th percentile (0 to 100) of sorted values, interpolated linearly between ranks (as
/// NumPy's default).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    let position = p / 100.0 * (sorted.len() - 1) as f64;
    let (below, above) = (position.floor() as usize, position.ceil() as usize);
    let t = position - below as f64;
    sorted[below] + t * (sorted[above] - sorted[below])
}

/// `|s|` clipped to its 0.5 and 99.5 percentiles and scaled to [0, 1] (all zero where the
/// two percentiles are equal).
pub fn normalised(map: &[f64]) -> Vec<f64> {
    let abs: Vec<f64> = map.iter().map(|v| v.abs()).collect();
    let mut sorted = abs.clone();
    sorted.sort_by(f64::total_cmp);
    let (lo, hi) = (percentile(&sorted, 0.5), percentile(&sorted, 99.5));
    abs.iter()
        .map(|&v| {
            if hi > lo {
                (v.clamp(lo, hi) - lo) / (hi - lo)
            } else {
                0.0
            }
        })
        .collect()
}

/// The fraction of positions where `a` and `b` differ by more than `threshold`.
pub fn fraction_differing(a: &[f64], b: &[f64], threshold: f64) -> f64 {
    let differing = a
        .iter()
        .zip(b)
        .filter(|(x, y)| (*x - *y).abs() > threshold)
        .count();
    differing as f64 / a.len() as f64
}

/// The SSIM window's weights: a normalised 11×11 Gaussian of σ 1.5.
fn gaussian_window() -> [[f64; 11]; 11] {
    let g: Vec<f64> = (0..11)
        .map(|i| (-((i as f64 - 5.0).powi(2)) / (2.0 * 1.5 * 1.5)).exp())
        .collect();
    let total: f64 = g.iter().sum();
    let mut w = [[0.0; 11]; 11];
    for (r, row) in w.iter_mut().enumerate() {
        for (c, v) in row.iter_mut().enumerate() {
            *v = g[r] * g[c] / (total * total);
        }
    }
    w
}

/// Structural similarity of two `h × w` maps with values in [0, 1]; `None` for maps smaller
/// than the window.
pub fn ssim(a: &[f64], b: &[f64], h: usize, w: usize) -> Option<f64> {
    const SIDE: usize = 11;
    if h < SIDE || w < SIDE {
        return None;
    }
    let (c1, c2) = (0.01f64.powi(2), 0.03f64.powi(2));
    let window = gaussian_window();
    let mut total = 0.0;
    for r in 0..=h - SIDE {
        for c in 0..=w - SIDE {
            let (mut ma, mut mb, mut aa, mut bb, mut ab) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for (i, row) in window.iter().enumerate() {
                for (j, k) in row.iter().enumerate() {
                    let (x, y) = (a[(r + i) * w + c + j], b[(r + i) * w + c + j]);
                    ma += k * x;
                    mb += k * y;
                    aa += k * x * x;
                    bb += k * y * y;
                    ab += k * x * y;
                }
            }
            let (va, vb, cov) = (aa - ma * ma, bb - mb * mb, ab - ma * mb);
            total += (2.0 * ma * mb + c1) * (2.0 * cov + c2)
                / ((ma * ma + mb * mb + c1) * (va + vb + c2));
        }
    }
    Some(total / ((h - SIDE + 1) * (w - SIDE + 1)) as f64)
}

/// Ranks from 1, ties sharing their mean rank.
fn ranks(v: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..v.len()).collect();
    order.sort_by(|&i, &j| v[i].total_cmp(&v[j]));
    let mut ranks = vec![0.0; v.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && v[order[end]] == v[order[start]] {
            end += 1;
        }
        let mean = (start + end + 1) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = mean;
        }
        start = end;
    }
    ranks
}

/// Spearman's rank correlation; `None` where either side is constant.
pub fn spearman(a: &[f64], b: &[f64]) -> Option<f64> {
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let (ma, mb) = (ra.iter().sum::<f64>() / n, rb.iter().sum::<f64>() / n);
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        ab += (x - ma) * (y - mb);
        aa += (x - ma) * (x - ma);
        bb += (y - mb) * (y - mb);
    }
    (aa > 0.0 && bb > 0.0).then(|| ab / (aa * bb).sqrt())
}

/// Relevance mass accuracy of a `[channels, pixels]` map against a mask of `pixels`; `None`
/// for an all-zero map or an empty mask.
pub fn mass_accuracy(r: &[f64], mask: &[u8]) -> Option<f64> {
    let squares: Vec<f64> = r.iter().map(|v| v * v).collect();
    let h = pixel_map(&squares, mask.len());
    let total: f64 = h.iter().sum();
    let inside: f64 = h
        .iter()
        .zip(mask)
        .filter(|(_, &m)| m != 0)
        .map(|(v, _)| v)
        .sum();
    (total > 0.0 && mask.iter().any(|&m| m != 0)).then(|| inside / total)
}

/// Relevance rank accuracy of a `[channels, pixels]` map against a mask of `pixels`; `None`
/// for an empty mask.
pub fn rank_accuracy(r: &[f64], mask: &[u8]) -> Option<f64> {
    let pixels = mask.len();
    let mut h = vec![0.0f64; pixels];
    for channel in r.chunks(pixels) {
        for (m, v) in h.iter_mut().zip(channel) {
            *m = m.max(v.abs());
        }
    }
    let k = mask.iter().filter(|&&m| m != 0).count();
    if k == 0 {
        return None;
    }
    let mut order: Vec<usize> = (0..pixels).collect();
    order.sort_by(|&i, &j| h[j].total_cmp(&h[i]).then(i.cmp(&j)));
    let hits = order[..k].iter().filter(|&&i| mask[i] != 0).count();
    Some(hits as f64 / k as f64)
}

/// Counts of values in equal bins over `[lo, hi]` (the last bin closed).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Histogram {
    /// The `bins + 1` bin edges, from `lo` to `hi`.
    pub edges: Vec<f64>,
    /// Per bin, how many values fall into it (values outside `[lo, hi]` are not counted).
    pub counts: Vec<usize>,
}

impl Histogram {
    /// Bins `values` into `bins` equal bins over `[lo, hi]`.
    pub fn new(values: &[f64], lo: f64, hi: f64, bins: usize) -> Self {
        let edges = (0..=bins)
            .map(|k| lo + (hi - lo) * k as f64 / bins as f64)
            .collect();
        let mut counts = vec![0; bins];
        for &v in values {
            if (lo..=hi).contains(&v) {
                let k = (((v - lo) / (hi - lo)) * bins as f64) as usize;
                counts[k.min(bins - 1)] += 1;
            }
        }
        Self { edges, counts }
    }
}

/// A measure's values over the samples: the samples where it is defined, their mean,
/// median, standard deviation and histogram.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stats {
    /// How many samples the measure is defined on.
    pub samples: usize,
    /// The mean of the defined values.
    pub mean: f64,
    /// Their median (the 50th [`percentile`]).
    pub median: f64,
    /// Their standard deviation, over `n` (not `n − 1`).
    pub std: f64,
    /// The smallest defined value.
    pub min: f64,
    /// The largest defined value.
    pub max: f64,
    /// The defined values in 20 equal bins over the `[lo, hi]` given to [`Stats::of`].
    pub histogram: Histogram,
}

impl Stats {
    /// The statistics of the defined values, histogram over `[lo, hi]` in 20 bins; `None`
    /// where no value is defined.
    pub fn of(values: &[Option<f64>], lo: f64, hi: f64) -> Option<Self> {
        let mut v: Vec<f64> = values.iter().flatten().copied().collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len() as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        Some(Self {
            samples: v.len(),
            mean,
            median: percentile(&v, 50.0),
            std: var.sqrt(),
            min: v[0],
            max: v[v.len() - 1],
            histogram: Histogram::new(&v, lo, hi, 20),
        })
    }
}

/// How a changed map compares with the original one.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Similarity {
    /// Of the normalised maps, differing by more than [`THRESHOLD`].
    pub fraction_differing: f64,
    /// [`ssim`] of the normalised maps; `None` for maps smaller than its 11×11 window.
    pub ssim: Option<f64>,
    /// [`spearman`] of the pixel maps; `None` where either map is constant.
    pub spearman: Option<f64>,
    /// [`spearman`] of the pixel maps' absolute values; `None` where either is constant.
    pub spearman_abs: Option<f64>,
}

impl Similarity {
    /// Compares two `[channels, h·w]` maps.
    pub fn of(original: &[f64], changed: &[f64], h: usize, w: usize) -> Self {
        let (a, b) = (pixel_map(original, h * w), pixel_map(changed, h * w));
        let (na, nb) = (normalised(&a), normalised(&b));
        let abs = |m: &[f64]| m.iter().map(|v| v.abs()).collect::<Vec<_>>();
        Self {
            fraction_differing: fraction_differing(&na, &nb, THRESHOLD),
            ssim: ssim(&na, &nb, h, w),
            spearman: spearman(&a, &b),
            spearman_abs: spearman(&abs(&a), &abs(&b)),
        }
    }
}
