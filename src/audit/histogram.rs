//! Mergeable histograms for summaries and plots: magnitudes on a logarithmic scale, and
//! shares (fractions from 0 to 1) in tenths.

use serde::{Deserialize, Serialize};

/// Counts of `|v|` in bins `[10^(lo + i/per_decade), 10^(lo + (i+1)/per_decade))`, plus exact
/// zeros and values below or above the range. Adding two histograms with the same layout gives
/// the histogram of the union, so shard summaries merge exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogHistogram {
    /// The exponent of the lowest bin edge.
    pub lowest_exponent: i32,
    /// How many bins each factor of 10 is split into (2: half decades).
    pub bins_per_decade: u32,
    /// The count of each bin, lowest first.
    pub counts: Vec<u64>,
    /// Values exactly 0.
    pub zero: u64,
    /// Nonzero values below the lowest bin edge.
    pub below: u64,
    /// Values at or above the highest bin edge, and values that are not finite.
    pub above: u64,
}

impl Default for LogHistogram {
    /// 1e-16 to 1e4 in half decades.
    fn default() -> Self {
        Self::new(-16, 4, 2)
    }
}

impl LogHistogram {
    /// An empty histogram from `10^lowest_exponent` to `10^highest_exponent`, with
    /// `bins_per_decade` bins per factor of 10.
    pub fn new(lowest_exponent: i32, highest_exponent: i32, bins_per_decade: u32) -> Self {
        let bins = ((highest_exponent - lowest_exponent) as u32 * bins_per_decade) as usize;
        Self {
            lowest_exponent,
            bins_per_decade,
            counts: vec![0; bins],
            zero: 0,
            below: 0,
            above: 0,
        }
    }

    /// Counts `|v|` in its bin (or as zero, below or above).
    pub fn add(&mut self, v: f64) {
        let a = v.abs();
        if a == 0.0 {
            self.zero += 1;
            return;
        }
        let position = (a.log10() - self.lowest_exponent as f64) * self.bins_per_decade as f64;
        if position < 0.0 {
            self.below += 1;
        } else if position >= self.counts.len() as f64 || !position.is_finite() {
            self.above += 1;
        } else {
            self.counts[position as usize] += 1;
        }
    }

    /// Adds `other`'s counts; both must have the same layout.
    pub fn merge(&mut self, other: &LogHistogram) {
        debug_assert_eq!(self.counts.len(), other.counts.len());
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.zero += other.zero;
        self.below += other.below;
        self.above += other.above;
    }

    /// The number of values counted, zeros and values out of range included.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum::<u64>() + self.zero + self.below + self.above
    }

    /// The lower and upper edge of bin `i`.
    pub fn edges(&self, i: usize) -> (f64, f64) {
        let step = 1.0 / self.bins_per_decade as f64;
        let lo = self.lowest_exponent as f64 + i as f64 * step;
        (10f64.powf(lo), 10f64.powf(lo + step))
    }
}

/// Shares in `[0, 1]` counted exactly 0 or in ten bins `(0, 0.1]`, `(0.1, 0.2]`, …,
/// `(0.9, 1]`, plus the entries whose share is undefined (a zero denominator). Integer counts
/// only, so shard summaries merge exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShareHistogram {
    /// Entries with a zero denominator: no share to count.
    pub undefined: u64,
    /// Shares exactly 0.
    pub zero: u64,
    /// Shares in `(k/10, (k+1)/10]`, `k` = 0..9.
    pub tenths: Vec<u64>,
}

impl Default for ShareHistogram {
    fn default() -> Self {
        Self {
            undefined: 0,
            zero: 0,
            tenths: vec![0; 10],
        }
    }
}

impl ShareHistogram {
    /// Counts the share `part / whole` (`whole` 0: undefined); `part` is clamped to `whole`.
    pub fn add(&mut self, part: f64, whole: f64) {
        if whole <= 0.0 || !whole.is_finite() {
            self.undefined += 1;
        } else if part <= 0.0 {
            self.zero += 1;
        } else {
            let share = (part / whole).min(1.0);
            let bin = ((share * 10.0).ceil() as usize).clamp(1, 10) - 1;
            self.tenths[bin] += 1;
        }
    }

    /// Adds `other`'s counts.
    pub fn merge(&mut self, other: &ShareHistogram) {
        for (a, b) in self.tenths.iter_mut().zip(&other.tenths) {
            *a += b;
        }
        self.undefined += other.undefined;
        self.zero += other.zero;
    }

    /// The entries with a share (all but the undefined ones).
    pub fn defined(&self) -> u64 {
        self.zero + self.tenths.iter().sum::<u64>()
    }

    /// The entries whose share lies in `(lo/10, hi/10]` (`lo` < `hi` <= 10).
    pub fn between(&self, lo: usize, hi: usize) -> u64 {
        self.tenths[lo..hi].iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_fall_in_their_tenth() {
        let mut h = ShareHistogram::default();
        h.add(0.0, 0.0);
        h.add(0.0, 2.0);
        h.add(1e-300, 2.0);
        h.add(1.0, 4.0);
        h.add(1.0, 2.0);
        h.add(2.0, 2.0);
        h.add(3.0, 2.0);
        assert_eq!((h.undefined, h.zero), (1, 1));
        assert_eq!(h.tenths[0], 1);
        assert_eq!(h.tenths[2], 1);
        assert_eq!(h.tenths[4], 1);
        assert_eq!(h.tenths[9], 2);
        assert_eq!(h.defined(), 6);
        assert_eq!(h.between(0, 5), 3);
        let mut g = h.clone();
        g.merge(&h);
        assert_eq!(g.defined(), 12);
        assert_eq!(g.undefined, 2);
    }

    #[test]
    fn bins_and_merges() {
        let mut h = LogHistogram::default();
        for v in [0.0, 1e-20, 1e-16, -0.5, 0.5, 2.0, 1e5, f64::INFINITY] {
            h.add(v);
        }
        assert_eq!(h.zero, 1);
        assert_eq!(h.below, 1);
        assert_eq!(h.above, 2);
        assert_eq!(h.counts[0], 1);
        // 0.5 = 10^-0.30 lies in the bin starting at 10^-0.5.
        let i = ((-0.5 + 16.0) * 2.0) as usize;
        assert_eq!(h.counts[i], 2);
        assert!(h.edges(i).0 <= 0.5 && 0.5 < h.edges(i).1);
        let mut g = h.clone();
        g.merge(&h);
        assert_eq!(g.total(), 2 * h.total());
    }
}
