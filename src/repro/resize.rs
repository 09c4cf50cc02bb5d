//! Image resizing as the reference pipeline does it: Pillow's `Image.resize(size, BILINEAR)`
//! (what torchvision's `Resize` calls on a PIL image), reproduced to the byte; and masks
//! resized as CLEVR-XAI's evaluation resizes them. Pillow resamples
//! with a triangle filter whose support widens with the scale when reducing (so it averages
//! rather than samples), one axis at a time (horizontal first), in fixed point with 22
//! fractional bits, rounding each pass back to 8 bits.

/// Fractional bits of Pillow's fixed-point coefficients for 8-bit images.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// For each output position along one axis: the first input index, and the normalised
/// weights of the inputs from there (Pillow's `precompute_coeffs`, in doubles).
fn weights(in_size: usize, out_size: usize) -> Vec<(usize, Vec<f64>)> {
    let scale = in_size as f64 / out_size as f64;
    let filter_scale = scale.max(1.0);
    // The bilinear (triangle) filter has support 1.
    let support = filter_scale;
    let triangle = |x: f64| if x.abs() < 1.0 { 1.0 - x.abs() } else { 0.0 };
    (0..out_size)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let ss = 1.0 / filter_scale;
            // (int) truncates towards zero, as in C.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let weights: Vec<f64> = (xmin..xmax)
                .map(|x| triangle((x as f64 - center + 0.5) * ss))
                .collect();
            let total: f64 = weights.iter().sum();
            let normalised = weights
                .iter()
                .map(|&w| if total != 0.0 { w / total } else { w })
                .collect();
            (xmin, normalised)
        })
        .collect()
}

/// [`weights`] in fixed point, as Pillow resamples 8-bit images.
fn coefficients(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i32>)> {
    weights(in_size, out_size)
        .into_iter()
        .map(|(xmin, w)| {
            let fixed = w
                .iter()
                .map(|&w| {
                    let scaled = w * f64::from(1u32 << PRECISION_BITS);
                    if w < 0.0 {
                        (-0.5 + scaled) as i32
                    } else {
                        (0.5 + scaled) as i32
                    }
                })
                .collect();
            (xmin, fixed)
        })
        .collect()
}

/// Resizes a boolean mask (`height × width`, row-major) as CLEVR-XAI's evaluation resizes a
/// ground truth to a heatmap's size: Pillow's bilinear resize of the mask as a float image,
/// then `> 0`. The triangle filter's weights are never negative, so an output pixel is set
/// where some set input pixel has a positive weight in both passes.
pub fn resize_mask(
    mask: &[bool],
    (height, width): (usize, usize),
    (out_height, out_width): (usize, usize),
) -> Vec<bool> {
    assert_eq!(mask.len(), height * width, "pixel count");
    let reach = |in_size: usize, out_size: usize| -> Vec<Vec<usize>> {
        if in_size == out_size {
            return (0..in_size).map(|i| vec![i]).collect();
        }
        weights(in_size, out_size)
            .into_iter()
            .map(|(start, w)| {
                (0..w.len())
                    .filter(|&i| w[i] > 0.0)
                    .map(|i| start + i)
                    .collect()
            })
            .collect()
    };
    let (rows, columns) = (reach(height, out_height), reach(width, out_width));
    let mut out = Vec::with_capacity(out_height * out_width);
    for from_rows in &rows {
        for from_columns in &columns {
            out.push(
                from_rows
                    .iter()
                    .any(|&r| from_columns.iter().any(|&c| mask[r * width + c])),
            );
        }
    }
    out
}

/// A fixed-point sum back to 8 bits, clipped.
fn clip8(sum: i64) -> u8 {
    (sum >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes an 8-bit image (`height × width × channels`, row-major, interleaved) to
/// `out_height × out_width`, as Pillow's bilinear resize does.
pub fn resize_bilinear(
    pixels: &[u8],
    (height, width, channels): (usize, usize, usize),
    (out_height, out_width): (usize, usize),
) -> Vec<u8> {
    assert_eq!(pixels.len(), height * width * channels, "pixel count");
    let half = 1i64 << (PRECISION_BITS - 1);
    // Horizontal pass (skipped when the width stays), then vertical (likewise).
    let horizontal = if out_width == width {
        pixels.to_vec()
    } else {
        let coeffs = coefficients(width, out_width);
        let mut out = Vec::with_capacity(height * out_width * channels);
        for y in 0..height {
            let row = &pixels[y * width * channels..(y + 1) * width * channels];
            for (xmin, k) in &coeffs {
                for c in 0..channels {
                    let sum = k.iter().enumerate().fold(half, |acc, (i, &w)| {
                        acc + i64::from(row[(xmin + i) * channels + c]) * i64::from(w)
                    });
                    out.push(clip8(sum));
                }
            }
        }
        out
    };
    if out_height == height {
        return horizontal;
    }
    let coeffs = coefficients(height, out_height);
    let stride = out_width * channels;
    let mut out = Vec::with_capacity(out_height * stride);
    for (ymin, k) in &coeffs {
        for x in 0..stride {
            let sum = k.iter().enumerate().fold(half, |acc, (i, &w)| {
                acc + i64::from(horizontal[(ymin + i) * stride + x]) * i64::from(w)
            });
            out.push(clip8(sum));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_in_fixed_point_within_rounding() {
        for (inp, out) in [(480, 128), (320, 128), (75, 128), (10, 3), (3, 10)] {
            for (_, k) in coefficients(inp, out) {
                let sum: i64 = k.iter().map(|&w| i64::from(w)).sum();
                assert!((sum - (1 << PRECISION_BITS)).abs() <= k.len() as i64);
            }
        }
    }

    #[test]
    fn masks_grow_by_the_filters_support() {
        // 4 → 2 on each axis: output 0 reads inputs 0..=2 (weights 3/7, 3/7, 1/7), output 1
        // inputs 1..=3.
        let one = |r: usize, c: usize| {
            let mut m = vec![false; 16];
            m[r * 4 + c] = true;
            resize_mask(&m, (4, 4), (2, 2))
        };
        assert_eq!(one(0, 0), [true, false, false, false]);
        assert_eq!(one(3, 3), [false, false, false, true]);
        assert_eq!(one(1, 2), [true, true, true, true]);
        assert_eq!(one(0, 3), [false, true, false, false]);
        // The same size: unchanged.
        let m: Vec<bool> = (0..12).map(|i| i % 5 == 0).collect();
        assert_eq!(resize_mask(&m, (3, 4), (3, 4)), m);
        // A CLEVR render's 320×480 rectangle at 128×128 covers the scaled rectangle and at
        // most the filter's reach (one output pixel) beyond it on each side.
        let (h, w) = (320, 480);
        let inside = |r: usize, c: usize| (100..160).contains(&r) && (120..300).contains(&c);
        let m: Vec<bool> = (0..h * w).map(|i| inside(i / w, i % w)).collect();
        let out = resize_mask(&m, (h, w), (128, 128));
        let (sy, sx) = (h as f64 / 128.0, w as f64 / 128.0);
        for r in 0..128 {
            for c in 0..128 {
                let (y, x) = ((r as f64 + 0.5) * sy, (c as f64 + 0.5) * sx);
                let centre_inside = (100.0..160.0).contains(&y) && (120.0..300.0).contains(&x);
                let near =
                    (100.0 - sy..160.0 + sy).contains(&y) && (120.0 - sx..300.0 + sx).contains(&x);
                if centre_inside {
                    assert!(out[r * 128 + c], "({r}, {c})");
                }
                if !near {
                    assert!(!out[r * 128 + c], "({r}, {c})");
                }
            }
        }
    }

    #[test]
    fn a_constant_image_stays_constant_and_sizes_are_kept() {
        let img = vec![77u8; 30 * 40 * 3];
        let out = resize_bilinear(&img, (30, 40, 3), (7, 11));
        assert_eq!(out.len(), 7 * 11 * 3);
        assert!(out.iter().all(|&v| v == 77));
        assert_eq!(resize_bilinear(&img, (30, 40, 3), (30, 40)), img);
    }
}
