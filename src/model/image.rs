//! Image geometry shared by the loaders: the window of a 2-D convolution or pooling, and a
//! convolution written as sparse rows over the flattened `[channels, height, width]` sample.

/// The window geometry of a 2-D convolution or pooling: kernel, strides and (top, left,
/// bottom, right) pads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// The kernel's height and width.
    pub kernel: [usize; 2],
    /// The vertical and horizontal strides.
    pub strides: [usize; 2],
    /// top, left, bottom, right
    pub pads: [usize; 4],
}

impl Window {
    /// The output height and width for an input of `h × w`.
    pub fn output(&self, h: usize, w: usize) -> Result<[usize; 2], String> {
        let side = |n: usize, k: usize, s: usize, p0: usize, p1: usize| {
            (n + p0 + p1).checked_sub(k).map(|span| span / s + 1)
        };
        match (
            side(
                h,
                self.kernel[0],
                self.strides[0],
                self.pads[0],
                self.pads[2],
            ),
            side(
                w,
                self.kernel[1],
                self.strides[1],
                self.pads[1],
                self.pads[3],
            ),
        ) {
            (Some(a), Some(b)) => Ok([a, b]),
            _ => Err(format!(
                "the kernel {:?} is larger than the padded {h}×{w} input",
                self.kernel
            )),
        }
    }

    /// The input positions `(row, column)` of output `(i, j)`'s window that lie inside the
    /// `h × w` input, with their kernel offsets `(u, v)`.
    pub fn taps(
        &self,
        i: usize,
        j: usize,
        h: usize,
        w: usize,
    ) -> Vec<(usize, usize, usize, usize)> {
        // Kernel offsets whose position `start + u − pad` lies in `0..n`.
        let span = |start: usize, pad: usize, n: usize, k: usize| {
            let first = pad.saturating_sub(start);
            let end = (n + pad).saturating_sub(start).min(k);
            first..end.max(first)
        };
        let (r0, c0) = (i * self.strides[0], j * self.strides[1]);
        let mut out = Vec::new();
        for u in span(r0, self.pads[0], h, self.kernel[0]) {
            for v in span(c0, self.pads[1], w, self.kernel[1]) {
                out.push((r0 + u - self.pads[0], c0 + v - self.pads[1], u, v));
            }
        }
        out
    }
}

/// The rows of a 2-D convolution (group 1, dilation 1) with kernel `k` of shape
/// `[out, in, kernel height, kernel width]` over an `[in, h, w]` image: one row per output
/// channel and position (channel-major), listing the window's inputs in increasing order.
pub fn conv_rows(
    k: &[f64],
    [c_out, c_in]: [usize; 2],
    [h, w]: [usize; 2],
    window: &Window,
) -> Vec<Vec<(u32, f64)>> {
    let [kh, kw] = window.kernel;
    let [ho, wo] = window.output(h, w).unwrap_or([0, 0]);
    let mut rows = Vec::with_capacity(c_out * ho * wo);
    for o in 0..c_out {
        for i in 0..ho {
            for j in 0..wo {
                let mut row = Vec::new();
                for (r, c, u, v) in window.taps(i, j, h, w) {
                    for ch in 0..c_in {
                        let value = k[((o * c_in + ch) * kh + u) * kw + v];
                        row.push((((ch * h + r) * w + c) as u32, value));
                    }
                }
                row.sort_unstable_by_key(|&(col, _)| col);
                rows.push(row);
            }
        }
    }
    rows
}
