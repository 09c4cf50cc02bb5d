//! Image resizing as the reference pipeline does it: Pillow's `Image.resize(size, BILINEAR)`
//! (what torchvision's `Resize` calls on a PIL image), reproduced to the byte. Pillow resamples
//! with a triangle filter whose support widens with the scale when reducing (so it averages
//! rather than samples), one axis at a time (horizontal first), in fixed point with 22
//! fractional bits, rounding each pass back to 8 bits.

/// Fractional bits of Pillow's fixed-point coefficients for 8-bit images.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// For each output position along one axis: the first input index, and the fixed-point
/// weights of the inputs from there.
fn coefficients(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i32>)> {
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
            let fixed = weights
                .iter()
                .map(|&w| {
                    let w = if total != 0.0 { w / total } else { w };
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
    fn a_constant_image_stays_constant_and_sizes_are_kept() {
        let img = vec![77u8; 30 * 40 * 3];
        let out = resize_bilinear(&img, (30, 40, 3), (7, 11));
        assert_eq!(out.len(), 7 * 11 * 3);
        assert!(out.iter().all(|&v| v == 77));
        assert_eq!(resize_bilinear(&img, (30, 40, 3), (30, 40)), img);
    }
}
