//! Sampled-root audits (`--roots-per-layer K [--seed S]`, DESIGN.md §1.4): in every layer of
//! every sample, a uniform random draw of `K` of the neurons that have a root is judged, and
//! each layer's fraction of judged roots outside their region is reported with its 95 % Wilson
//! score interval.
//!
//! The draw of a layer depends only on the seed, the sample's row in the inputs file and the
//! layer ([`draw_neurons`]), so a shard, a resumed run and a run on any number of threads judge
//! the same roots.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::summary::{Counts, Summary};

/// `--roots-per-layer K [--seed S]`: how many roots of each layer of each sample are judged,
/// and the seed of the draw.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootSample {
    /// `K`: roots judged per layer and sample (all of a layer's roots where it has fewer);
    /// at least 1.
    pub roots_per_layer: usize,
    /// `S`: the seed of the draws.
    pub seed: u64,
}

impl RootSample {
    /// The neurons of `candidates` (a layer's neurons with a root, in increasing order) that
    /// sample `sample` judges in 0-based layer `layer`: [`draw_neurons`] with this seed.
    pub fn pick(&self, sample: usize, layer: usize, candidates: &[usize]) -> Vec<usize> {
        draw_neurons(self.seed, sample, layer, candidates, self.roots_per_layer)
    }
}

/// Words of the generator each layer's draw may use before it would reach the next layer's:
/// 2^32 ChaCha blocks of 16 words.
const WORDS_PER_LAYER: u128 = 1 << 36;

/// A uniform random draw of `k` of `candidates` (all of them where there are no more than
/// `k`), in increasing order when `candidates` is: the neurons sample `sample` (its 0-based
/// row in the run) judges in 0-based layer `layer`. The draw reads ChaCha8 stream `1 + sample`
/// of `seed` from word `layer · 2^36` on, so it depends on nothing else: not on the other
/// layers, the order samples run in, the shard or an interruption.
pub fn draw_neurons(
    seed: u64,
    sample: usize,
    layer: usize,
    candidates: &[usize],
    k: usize,
) -> Vec<usize> {
    if candidates.len() <= k {
        return candidates.to_vec();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(1 + sample as u64);
    rng.set_word_pos(layer as u128 * WORDS_PER_LAYER);
    let mut drawn: Vec<usize> = rand::seq::index::sample(&mut rng, candidates.len(), k)
        .into_iter()
        .map(|i| candidates[i])
        .collect();
    drawn.sort_unstable();
    drawn
}

/// The standard normal quantile of 0.975: the `z` of a two-sided 95 % interval.
pub const Z_95: f64 = 1.959_963_984_540_054;

/// The 95 % Wilson score interval of a proportion of `k` successes in `n` trials:
/// `(p + z²/2n ± z √(p(1 − p)/n + z²/4n²)) / (1 + z²/n)` with `p = k/n` and `z` = [`Z_95`];
/// `None` for `n = 0`. Its lower end is exactly 0 at `k = 0` and its upper end exactly 1 at
/// `k = n`.
pub fn wilson(k: u64, n: u64) -> Option<[f64; 2]> {
    if n == 0 {
        return None;
    }
    let (k, n) = (k as f64, n as f64);
    let p = k / n;
    let z2 = Z_95 * Z_95;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = Z_95 / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    // At k = 0 (k = n) the lower (upper) end is 0 (1) exactly; computed, it may round off it.
    let lo = if k == 0.0 {
        0.0
    } else {
        (centre - half).max(0.0)
    };
    let hi = if k == n {
        1.0
    } else {
        (centre + half).min(1.0)
    };
    Some([lo, hi])
}

/// A proportion of judged roots: its count, the fraction and its 95 % Wilson interval (both
/// absent without judged roots).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Proportion {
    /// Judged roots counted.
    pub count: u64,
    /// `count / roots_judged`.
    pub fraction: Option<f64>,
    /// The 95 % Wilson score interval of the fraction.
    pub wilson_95: Option<[f64; 2]>,
}

impl Proportion {
    fn of(count: u64, judged: u64) -> Self {
        Self {
            count,
            fraction: (judged > 0).then(|| count as f64 / judged as f64),
            wilson_95: wilson(count, judged),
        }
    }
}

/// A layer's (or all layers') sampled roots, pooled over the samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampledLayer {
    /// 1-based; absent for the total.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<usize>,
    /// Neurons with a root, judged or not.
    pub roots_available: u64,
    /// Roots judged (drawn).
    pub roots_judged: u64,
    /// Judged roots outside their region.
    pub outside: Proportion,
    /// Judged roots outside their region or their domain (not valid).
    pub invalid: Proportion,
}

impl SampledLayer {
    fn of(layer: Option<usize>, c: &Counts) -> Self {
        Self {
            layer,
            roots_available: c.roots + c.roots_not_judged,
            roots_judged: c.roots,
            outside: Proportion::of(c.roots_outside, c.roots),
            invalid: Proportion::of(c.roots - c.roots_valid, c.roots),
        }
    }
}

/// What summary.json's `root_sample` holds: the draw's settings and, per layer and in total,
/// the fractions of judged roots outside their region and not valid, with their intervals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampledSummary {
    /// `--roots-per-layer`.
    pub roots_per_layer: usize,
    /// `--seed`.
    pub seed: u64,
    /// One per layer, layer 1 first.
    pub layers: Vec<SampledLayer>,
    /// Over all layers.
    pub total: SampledLayer,
}

impl SampledSummary {
    /// The fractions of `summary`'s counts, a run drawn by `sample`.
    pub fn new(sample: RootSample, summary: &Summary) -> Self {
        Self {
            roots_per_layer: sample.roots_per_layer,
            seed: sample.seed,
            layers: summary
                .layers
                .iter()
                .map(|l| SampledLayer::of(Some(l.layer), &l.counts))
                .collect(),
            total: SampledLayer::of(None, &summary.total),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The interval from its definition, term by term: the centre
    /// `(k + z²/2) / (n + z²)` and the half-width `z √(k(n − k)/n + z²/4) / (n + z²)`.
    fn by_definition(k: f64, n: f64) -> [f64; 2] {
        let z2 = Z_95 * Z_95;
        let centre = (k + z2 / 2.0) / (n + z2);
        let half = Z_95 * (k * (n - k) / n + z2 / 4.0).sqrt() / (n + z2);
        [centre - half, centre + half]
    }

    #[test]
    fn wilson_matches_hand_computed_values() {
        // 0 of 10: [0, z²/(n + z²)] = [0, 3.841459/13.841459].
        let [lo, hi] = wilson(0, 10).unwrap();
        assert_eq!(lo, 0.0);
        assert!((hi - 0.277_532).abs() < 1e-6, "{hi}");
        // 5 of 10: symmetric about 1/2, half-width z √(2.5 + z²/4) / (10 + z²) = 0.263407.
        let [lo, hi] = wilson(5, 10).unwrap();
        assert!((lo - 0.236_593).abs() < 1e-6, "{lo}");
        assert!((hi - 0.763_407).abs() < 1e-6, "{hi}");
        // 10 of 10 mirrors 0 of 10, its upper end exactly 1.
        let [lo, hi] = wilson(10, 10).unwrap();
        assert!((lo - 0.722_468).abs() < 1e-6, "{lo}");
        assert_eq!(hi, 1.0);
        // 1 of 1: [1/(1 + z²), 1].
        let [lo, hi] = wilson(1, 1).unwrap();
        assert!((lo - 1.0 / (1.0 + Z_95 * Z_95)).abs() < 1e-15, "{lo}");
        assert_eq!(hi, 1.0);
        assert_eq!(wilson(0, 0), None);
    }

    #[test]
    fn wilson_agrees_with_its_definition_and_contains_the_fraction() {
        for n in [1u64, 2, 3, 7, 10, 100, 1000, 123_457] {
            for k in [0, 1, n / 3, n / 2, n - 1, n] {
                let [lo, hi] = wilson(k, n).unwrap();
                let [dlo, dhi] = by_definition(k as f64, n as f64);
                assert!((lo - dlo.max(0.0)).abs() < 1e-12, "{k}/{n}: {lo} {dlo}");
                assert!((hi - dhi.min(1.0)).abs() < 1e-12, "{k}/{n}: {hi} {dhi}");
                let p = k as f64 / n as f64;
                assert!(0.0 <= lo && lo <= p && p <= hi && hi <= 1.0, "{k}/{n}");
                // Mirror symmetry: n − k successes give the reflected interval.
                let [mlo, mhi] = wilson(n - k, n).unwrap();
                assert!((mlo - (1.0 - hi)).abs() < 1e-12 && (mhi - (1.0 - lo)).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn draws_are_uniform_subsets_that_depend_only_on_seed_sample_and_layer() {
        let candidates: Vec<usize> = (0..40).map(|j| 3 * j + 1).collect();
        let a = draw_neurons(5, 2, 1, &candidates, 7);
        assert_eq!(a.len(), 7);
        assert!(a.windows(2).all(|w| w[0] < w[1]));
        assert!(a.iter().all(|j| candidates.contains(j)));
        // The same arguments draw the same neurons, whatever was drawn before.
        let _ = draw_neurons(5, 2, 0, &candidates, 7);
        assert_eq!(draw_neurons(5, 2, 1, &candidates, 7), a);
        // Another seed, sample or layer draws differently.
        assert_ne!(draw_neurons(6, 2, 1, &candidates, 7), a);
        assert_ne!(draw_neurons(5, 3, 1, &candidates, 7), a);
        assert_ne!(draw_neurons(5, 2, 2, &candidates, 7), a);
        // At most k candidates: all of them.
        assert_eq!(draw_neurons(5, 2, 1, &candidates[..7], 7), &candidates[..7]);
        assert_eq!(draw_neurons(5, 2, 1, &[], 3), Vec::<usize>::new());
        // Uniform: over many samples each of 10 candidates is drawn about 3 times in 10.
        let ten: Vec<usize> = (0..10).collect();
        let mut hits = [0u32; 10];
        for sample in 0..4000 {
            for j in draw_neurons(1, sample, 0, &ten, 3) {
                hits[j] += 1;
            }
        }
        // 1200 expected per candidate, standard deviation about 29.
        assert!(hits.iter().all(|&h| (1080..=1320).contains(&h)), "{hits:?}");
    }
}
