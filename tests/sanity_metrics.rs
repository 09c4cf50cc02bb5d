//! The sanity check's measures against values worked out by hand.

use dtdcert::repro::sanity::{
    fraction_differing, mass_accuracy, normalised, percentile, pixel_map, rank_accuracy, spearman,
    ssim, Histogram, Similarity, Stats,
};

/// A smooth `h × w` test pattern.
fn pattern(h: usize, w: usize, phase: f64) -> Vec<f64> {
    (0..h * w)
        .map(|p| {
            let (r, c) = ((p / w) as f64, (p % w) as f64);
            0.5 + 0.5 * ((r * 0.3 + phase).sin() * (c * 0.2).cos())
        })
        .collect()
}

#[test]
fn percentiles_interpolate_between_ranks() {
    let v = [1.0, 2.0, 3.0, 4.0, 5.0];
    assert_eq!(percentile(&v, 0.0), 1.0);
    assert_eq!(percentile(&v, 50.0), 3.0);
    assert_eq!(percentile(&v, 100.0), 5.0);
    assert_eq!(percentile(&v, 12.5), 1.5);
}

#[test]
fn normalisation_clips_to_the_percentiles_and_scales_to_the_unit_interval() {
    // 1000 values: |v| = 0 .. 999 with signs alternating; the 0.5 and 99.5 percentiles of
    // |v| are 4.995 and 994.005.
    let map: Vec<f64> = (0..1000)
        .map(|i| if i % 2 == 0 { i as f64 } else { -(i as f64) })
        .collect();
    let n = normalised(&map);
    assert_eq!(n[0], 0.0);
    assert_eq!(n[999], 1.0);
    assert_eq!(n[4], 0.0);
    let expected = (500.0 - 4.995) / (994.005 - 4.995);
    assert!((n[500] - expected).abs() < 1e-12);
    assert!((n[501] - (501.0 - 4.995) / (994.005 - 4.995)).abs() < 1e-12);
    assert!(normalised(&[3.0; 50]).iter().all(|&v| v == 0.0));
}

#[test]
fn the_fraction_differing_counts_differences_above_the_threshold() {
    let a = [0.0, 0.5, 1.0, 0.2];
    let b = [0.3, 0.5, 0.7, 0.2];
    assert_eq!(fraction_differing(&a, &b, 0.25), 0.5);
    assert_eq!(fraction_differing(&a, &b, 0.31), 0.0);
}

#[test]
fn ssim_is_one_for_equal_maps_symmetric_and_lower_for_different_ones() {
    let (h, w) = (20, 24);
    let a = pattern(h, w, 0.0);
    let b = pattern(h, w, 1.3);
    assert!((ssim(&a, &a, h, w).unwrap() - 1.0).abs() < 1e-12);
    let ab = ssim(&a, &b, h, w).unwrap();
    assert!((ab - ssim(&b, &a, h, w).unwrap()).abs() < 1e-12);
    assert!(ab < 0.9, "{ab}");
    // Constant maps: only the luminance term remains, (2 μa μb + C1) / (μa² + μb² + C1).
    let (c, d) = (vec![0.2; h * w], vec![0.6; h * w]);
    let expected = (2.0 * 0.2 * 0.6 + 1e-4) / (0.04 + 0.36 + 1e-4);
    assert!((ssim(&c, &d, h, w).unwrap() - expected).abs() < 1e-12);
    assert_eq!(ssim(&a[..100], &a[..100], 10, 10), None);
}

#[test]
fn spearman_ranks_ties_by_their_mean_rank() {
    let a = [1.0, 2.0, 3.0, 4.0, 5.0];
    assert!((spearman(&a, &[2.0, 4.0, 9.0, 16.0, 100.0]).unwrap() - 1.0).abs() < 1e-12);
    assert!((spearman(&a, &[5.0, 4.0, 3.0, 2.0, 1.0]).unwrap() + 1.0).abs() < 1e-12);
    // Ranks (1, 2.5, 2.5, 4) and (1, 3, 2, 4): Pearson = 4.5 / √(4.5 · 5).
    let r = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 3.0, 2.0, 4.0]).unwrap();
    assert!((r - 4.5 / (4.5f64 * 5.0).sqrt()).abs() < 1e-12, "{r}");
    assert_eq!(spearman(&a, &[1.0; 5]), None);
}

#[test]
fn ground_truth_accuracies_weigh_the_mask() {
    // Two channels over four pixels; the mask is pixels 0 and 1.
    let mask = [1, 1, 0, 0];
    let r = [1.0, 0.0, 2.0, 0.0, /* channel 2 */ 1.0, -1.0, 0.0, 0.0];
    // h = Σ_c R²: (2, 1, 4, 0); mass = 3 / 7.
    assert!((mass_accuracy(&r, &mask).unwrap() - 3.0 / 7.0).abs() < 1e-15);
    // h = max_c |R|: (1, 1, 2, 0); the two largest: pixel 2, then pixel 0 (tie with 1,
    // the earlier first): one of two in the mask.
    assert_eq!(rank_accuracy(&r, &mask), Some(0.5));
    assert_eq!(rank_accuracy(&r, &[1, 0, 1, 0]), Some(1.0));
    assert_eq!(mass_accuracy(&[0.0; 8], &mask), None);
    assert_eq!(rank_accuracy(&r, &[0; 4]), None);
    assert_eq!(pixel_map(&r, 4), vec![2.0, -1.0, 2.0, 0.0]);
}

#[test]
fn similarity_of_a_map_with_itself_and_with_its_negation() {
    let (h, w) = (16, 16);
    let a: Vec<f64> = pattern(h, w, 0.4).iter().map(|v| v - 0.5).collect();
    let same = Similarity::of(&a, &a, h, w);
    assert_eq!(same.fraction_differing, 0.0);
    assert!((same.ssim.unwrap() - 1.0).abs() < 1e-12);
    assert!((same.spearman.unwrap() - 1.0).abs() < 1e-12);
    // The negated map has the same absolute values: normalised maps equal, signed ranks
    // reversed.
    let neg: Vec<f64> = a.iter().map(|v| -v).collect();
    let s = Similarity::of(&a, &neg, h, w);
    assert_eq!(s.fraction_differing, 0.0);
    assert!((s.spearman.unwrap() + 1.0).abs() < 1e-12);
    assert!((s.spearman_abs.unwrap() - 1.0).abs() < 1e-12);
}

#[test]
fn statistics_skip_undefined_values() {
    let s = Stats::of(&[Some(0.0), None, Some(1.0), Some(0.5)], 0.0, 1.0).unwrap();
    assert_eq!(
        (s.samples, s.mean, s.median, s.min, s.max),
        (3, 0.5, 0.5, 0.0, 1.0)
    );
    assert!((s.std - (1.0f64 / 6.0).sqrt()).abs() < 1e-15);
    assert_eq!(s.histogram.counts.iter().sum::<usize>(), 3);
    assert_eq!(s.histogram.counts[0], 1);
    assert_eq!(s.histogram.counts[19], 1);
    assert_eq!(s.histogram.counts[10], 1);
    assert!(Stats::of(&[None], 0.0, 1.0).is_none());
    let h = Histogram::new(&[-0.5, 2.0], -1.0, 1.0, 4);
    assert_eq!(h.counts, vec![0, 1, 0, 0]);
}
