//! Mergeable histograms of magnitudes on a logarithmic scale, for summaries and plots.

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

#[cfg(test)]
mod tests {
    use super::*;

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
