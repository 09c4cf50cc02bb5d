//! Relevance heatmaps: one PNG per input, the relevance summed over channels and coloured
//! red–white–blue (matplotlib's `bwr`), symmetric about 0: the input's largest `|relevance|`
//! is full red (positive) or full blue (negative), 0 is white.

use std::path::{Path, PathBuf};

use ndarray::Array2;

use super::atomic::write_atomic;
use super::output_dir::OutputDir;
use crate::error::{Error, Result};

/// What `--heatmap` folders are called in their marker.
pub const HEATMAP_RUN: &str = "explain heatmap";

/// The name of input `i`'s heatmap in the folder.
pub fn heatmap_name(i: usize) -> String {
    format!("input_{i:05}.png")
}

/// `(channels, height, width)` of an input of declared shape `shape`: `[C, H, W]`, or `[H, W]`
/// with one channel; `None` for any other shape.
pub fn image_dims(shape: &[usize]) -> Option<(usize, usize, usize)> {
    match *shape {
        [c, h, w] => Some((c, h, w)),
        [h, w] => Some((1, h, w)),
        _ => None,
    }
}

/// The `bwr` colour of `v` in `[-1, 1]`: white at 0, pure red at 1, pure blue at −1.
pub fn bwr(v: f64) -> [u8; 3] {
    let v = if v.is_nan() { 0.0 } else { v.clamp(-1.0, 1.0) };
    let fade = |t: f64| (255.0 * (1.0 - t)).round() as u8;
    if v >= 0.0 {
        [255, fade(v), fade(v)]
    } else {
        [fade(-v), fade(-v), 255]
    }
}

/// The RGB pixels (row-major, three bytes each) of one input's relevances, laid out
/// channel-major as `channels × height × width`: summed over channels, divided by the
/// largest `|sum|` (all white when every sum is 0).
pub fn heatmap_rgb(relevance: &[f64], channels: usize, height: usize, width: usize) -> Vec<u8> {
    let plane = height * width;
    let summed: Vec<f64> = (0..plane)
        .map(|p| (0..channels).map(|c| relevance[c * plane + p]).sum())
        .collect();
    let largest = summed.iter().fold(0.0_f64, |m, v| m.max(v.abs()));
    summed
        .iter()
        .flat_map(|&v| bwr(if largest > 0.0 { v / largest } else { 0.0 }))
        .collect()
}

/// An 8-bit RGB PNG file of `height × width` pixels (`rgb` row-major, three bytes each).
pub fn rgb_png(rgb: &[u8], height: usize, width: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut encoder = png::Encoder::new(&mut bytes, width as u32, height as u32);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().expect("writing to memory");
    writer.write_image_data(rgb).expect("writing to memory");
    writer.finish().expect("writing to memory");
    bytes
}

/// Writes one heatmap per row of `relevances` (inputs of declared shape `shape`) into the
/// folder `dir`, which must be absent or empty, or with `force` an earlier heatmap folder
/// (replaced as a whole); every file is written atomically and the folder appears complete.
pub fn write_heatmaps(
    dir: &Path,
    relevances: &Array2<f64>,
    shape: &[usize],
    force: bool,
) -> Result<PathBuf> {
    let (c, h, w) = image_dims(shape).ok_or_else(|| {
        Error::Usage(format!(
            "--heatmap {}: the model's input is not an image (its declared shape per sample is \
             {shape:?}; a heatmap needs C×H×W or H×W)",
            dir.display()
        ))
    })?;
    if c * h * w != relevances.ncols() {
        return Err(Error::Usage(format!(
            "--heatmap {}: {} relevances per input do not fill a {c}×{h}×{w} image",
            dir.display(),
            relevances.ncols()
        )));
    }
    // The folder's checks speak of `--out`; here the folder is `--heatmap`'s.
    let out = OutputDir::prepare(dir, HEATMAP_RUN, force).map_err(|e| match e {
        Error::Usage(m) => Error::Usage(m.replacen("--out ", "--heatmap ", 1)),
        other => other,
    })?;
    for (i, row) in relevances.outer_iter().enumerate() {
        let rgb = heatmap_rgb(&row.to_vec(), c, h, w);
        write_atomic(&out.file(&heatmap_name(i)), &rgb_png(&rgb, h, w))?;
    }
    out.commit(HEATMAP_RUN)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes an 8-bit RGB PNG into (width, height, pixels).
    fn decode(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    #[test]
    fn heatmaps_are_white_at_zero_red_above_and_blue_below_summed_over_channels() {
        // Two channels of 2×3: the sums are [0, 4, -2; 1, -4, 0].
        let ch0 = [1.0, 3.0, -1.0, 0.5, -4.0, 0.0];
        let ch1 = [-1.0, 1.0, -1.0, 0.5, 0.0, 0.0];
        let relevance: Vec<f64> = ch0.iter().chain(&ch1).copied().collect();
        let (w, h, px) = decode(&rgb_png(&heatmap_rgb(&relevance, 2, 2, 3), 2, 3));
        assert_eq!((w, h, px.len()), (3, 2, 18));
        let pixel = |i: usize| [px[3 * i], px[3 * i + 1], px[3 * i + 2]];
        assert_eq!(pixel(0), [255, 255, 255]);
        assert_eq!(pixel(5), [255, 255, 255]);
        // The largest |sum| (4) is full red and full blue.
        assert_eq!(pixel(1), [255, 0, 0]);
        assert_eq!(pixel(4), [0, 0, 255]);
        // Half of it is half way to white; a quarter is a paler red.
        assert_eq!(pixel(2), [128, 128, 255]);
        let pale = pixel(3);
        assert!(
            pale[0] == 255 && pale[1] == pale[2] && pale[1] > 128,
            "{pale:?}"
        );
        // No relevance at all: white everywhere.
        let (_, _, blank) = decode(&rgb_png(&heatmap_rgb(&[0.0; 4], 1, 2, 2), 2, 2));
        assert!(blank.iter().all(|&b| b == 255));
    }

    #[test]
    fn heatmap_folders_hold_one_png_per_input_and_refuse_what_they_would_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("maps");
        let rel =
            Array2::from_shape_vec((2, 4), vec![1.0, -1.0, 0.0, 2.0, 0.0, 0.0, 0.0, -3.0]).unwrap();
        write_heatmaps(&target, &rel, &[1, 2, 2], false).unwrap();
        for i in 0..2 {
            let bytes = std::fs::read(target.join(heatmap_name(i))).unwrap();
            let (w, h, px) = decode(&bytes);
            assert_eq!((w, h), (2, 2));
            assert_eq!(&px[9..12], if i == 0 { [255, 0, 0] } else { [0, 0, 255] });
        }
        let e = write_heatmaps(&target, &rel, &[1, 2, 2], false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("--heatmap") && e.contains("--force"), "{e}");
        write_heatmaps(&target, &rel, &[4], true).unwrap_err();
        write_heatmaps(&target, &rel, &[2, 2], true).unwrap();
        // A folder that holds something else is never replaced.
        let other = dir.path().join("other");
        std::fs::create_dir(&other).unwrap();
        std::fs::write(other.join("keep.txt"), "mine").unwrap();
        write_heatmaps(&other, &rel, &[2, 2], true).unwrap_err();
        assert!(other.join("keep.txt").exists());
        let e = write_heatmaps(&dir.path().join("x"), &rel, &[3, 2, 2], false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("do not fill a 3×2×2 image"), "{e}");
    }
}
