//! A 2-D convolution kept as its shared kernel: the map over the flattened
//! `[channels, height, width]` sample whose output `(o, y, x)` (channel-major) is the kernel of
//! channel `o` applied to the window at `(y, x)`. Its rows are built on demand, one output at a
//! time; the whole-layer applications unfold the windows and multiply them by the kernel, so
//! the layer holds its parameters only, whatever the image size (and a point's unfolded
//! windows while it is multiplied).

use std::borrow::Cow;
use std::sync::Arc;

use ndarray::{Array2, ArrayView1, ArrayView2};
use rayon::prelude::*;

use crate::error::{invalid, Result};
use crate::exact::Scalar;
use crate::model::gemm::product_into;

/// Unfolded points of at most this many numbers are unfolded in parallel, one buffer a worker.
const SMALL_UNFOLD: usize = 1 << 16;

/// The shape of a convolution: its input image, output channels, kernel, strides, pads,
/// dilations and groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    /// The input's channels, height and width.
    pub input: [usize; 3],
    /// The output channels.
    pub channels: usize,
    /// The kernel's height and width.
    pub kernel: [usize; 2],
    /// The vertical and horizontal strides.
    pub strides: [usize; 2],
    /// top, left, bottom, right
    pub pads: [usize; 4],
    /// The vertical and horizontal dilations.
    pub dilations: [usize; 2],
    /// The number of groups: each output channel reads `input[0] / groups` input channels
    /// (as many groups as input channels: a depthwise convolution).
    pub groups: usize,
}

impl ConvShape {
    /// The output height and width, or why there is none.
    pub fn output(&self) -> std::result::Result<[usize; 2], String> {
        let side = |axis: usize| {
            let reach = self.dilations[axis].checked_mul(self.kernel[axis] - 1)? + 1;
            let padded = self.input[axis + 1]
                .checked_add(self.pads[axis])?
                .checked_add(self.pads[axis + 2])?;
            padded
                .checked_sub(reach)
                .map(|span| span / self.strides[axis] + 1)
        };
        let sizes = [self.kernel, self.strides, self.dilations];
        if sizes.iter().flatten().any(|&v| v == 0) {
            return Err(format!(
                "kernel {:?}, strides {:?} and dilations {:?} must be positive",
                self.kernel, self.strides, self.dilations
            ));
        }
        match (side(0), side(1)) {
            (Some(a), Some(b)) => Ok([a, b]),
            _ => Err(format!(
                "the kernel {:?} (dilations {:?}) is larger than the padded {}×{} input",
                self.kernel, self.dilations, self.input[1], self.input[2]
            )),
        }
    }

    /// The number of kernel weights: `channels × input channels / groups × kernel area`.
    pub fn kernel_len(&self) -> Option<usize> {
        self.channels
            .checked_mul(self.input[0] / self.groups.max(1))?
            .checked_mul(self.kernel[0])?
            .checked_mul(self.kernel[1])
    }
}

/// A convolution with its kernel `[channels, input channels / groups, height, width]` and one
/// bias per output channel. Copies share the kernel until one of them changes it.
#[derive(Clone, Debug, PartialEq)]
pub struct Conv<T = f64> {
    shape: ConvShape,
    /// Output height and width.
    out: [usize; 2],
    kernel: Arc<Vec<T>>,
    bias: Vec<T>,
}

impl<T: Scalar> Conv<T> {
    /// Checks the shape (groups dividing both channel counts, an output of at least one
    /// position, at most 2^32 − 1 inputs and outputs), the kernel's length and one bias per
    /// output channel.
    pub fn new(shape: ConvShape, kernel: Vec<T>, bias: Vec<T>) -> Result<Self> {
        let [c_in, h, w] = shape.input;
        let g = shape.groups;
        if c_in == 0 || h == 0 || w == 0 || shape.channels == 0 {
            return Err(invalid(format!(
                "a convolution of {:?} inputs into {} channels is empty",
                shape.input, shape.channels
            )));
        }
        if g == 0 || !c_in.is_multiple_of(g) || !shape.channels.is_multiple_of(g) {
            return Err(invalid(format!(
                "{g} groups do not divide {c_in} input and {} output channels",
                shape.channels
            )));
        }
        let out = shape.output().map_err(invalid)?;
        let fits = |n: Option<usize>| n.is_some_and(|n| u32::try_from(n).is_ok());
        let inputs = c_in.checked_mul(h).and_then(|n| n.checked_mul(w));
        let outputs = shape
            .channels
            .checked_mul(out[0])
            .and_then(|n| n.checked_mul(out[1]));
        if !fits(inputs) || !fits(outputs) {
            return Err(invalid(format!(
                "a convolution of {:?} into {} channels of {}×{}: at most 2^32 - 1 inputs and \
                 outputs are supported",
                shape.input, shape.channels, out[0], out[1]
            )));
        }
        if Some(kernel.len()) != shape.kernel_len() || bias.len() != shape.channels {
            return Err(invalid(format!(
                "a convolution of shape {shape:?} needs {:?} kernel weights and {} biases, not \
                 {} and {}",
                shape.kernel_len(),
                shape.channels,
                kernel.len(),
                bias.len()
            )));
        }
        Ok(Self {
            shape,
            out,
            kernel: Arc::new(kernel),
            bias,
        })
    }

    /// The shape.
    pub fn shape(&self) -> &ConvShape {
        &self.shape
    }

    /// The output's channels, height and width.
    pub fn output(&self) -> [usize; 3] {
        [self.shape.channels, self.out[0], self.out[1]]
    }

    /// The kernel, `[channels, input channels / groups, height, width]` in row-major order.
    pub fn kernel(&self) -> &[T] {
        &self.kernel
    }

    /// The biases, one per output channel.
    pub fn channel_bias(&self) -> &[T] {
        &self.bias
    }

    /// The biases, one per output (each channel's repeated over its positions).
    pub fn biases(&self) -> Vec<T> {
        let area = self.out[0] * self.out[1];
        self.bias
            .iter()
            .flat_map(|b| std::iter::repeat_n(b.clone(), area))
            .collect()
    }

    /// The biases, one per output channel, to change.
    pub fn channel_bias_mut(&mut self) -> &mut [T] {
        &mut self.bias
    }

    /// The width of the input.
    pub fn in_dim(&self) -> usize {
        self.shape.input.iter().product()
    }

    /// The number of outputs.
    pub fn out_dim(&self) -> usize {
        self.shape.channels * self.out[0] * self.out[1]
    }

    /// The bias of output `j`.
    pub fn bias(&self, j: usize) -> &T {
        &self.bias[j / (self.out[0] * self.out[1])]
    }

    /// The kernel offsets `k` along `axis` (0: rows, 1: columns) whose input position
    /// `o · stride + k · dilation − pad` lies inside the image, for output position `o`.
    fn span(&self, o: usize, axis: usize) -> std::ops::Range<usize> {
        let (s, d, p) = (
            self.shape.strides[axis],
            self.shape.dilations[axis],
            self.shape.pads[axis],
        );
        let n = self.shape.input[axis + 1];
        let start = o * s;
        let lo = p.saturating_sub(start).div_ceil(d);
        let hi = (n + p).saturating_sub(start).div_ceil(d);
        let hi = hi.min(self.shape.kernel[axis]);
        lo..hi.max(lo)
    }

    /// `(input, kernel index)` of each weight of output `j`, in increasing input order; window
    /// positions in the padding are left out.
    pub fn taps(&self, j: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
        let [c_in, h, w] = self.shape.input;
        let [kh, kw] = self.shape.kernel;
        let (s, d, p) = (self.shape.strides, self.shape.dilations, self.shape.pads);
        let area = self.out[0] * self.out[1];
        let (o, at) = (j / area, j % area);
        let (y, x) = (at / self.out[1], at % self.out[1]);
        let per_group = c_in / self.shape.groups;
        let first = (o / (self.shape.channels / self.shape.groups)) * per_group;
        let (rows, cols) = (self.span(y, 0), self.span(x, 1));
        (0..per_group).flat_map(move |c| {
            let cols = cols.clone();
            rows.clone().flat_map(move |u| {
                let r = y * s[0] + u * d[0] - p[0];
                let base = ((first + c) * h + r) * w;
                let k = ((o * per_group + c) * kh + u) * kw;
                cols.clone()
                    .map(move |v| (base + x * s[1] + v * d[1] - p[1], k + v))
            })
        })
    }

    /// The number of weights output `j` lists (window positions in the padding left out).
    pub fn connected(&self, j: usize) -> usize {
        let area = self.out[0] * self.out[1];
        let at = j % area;
        let (y, x) = (at / self.out[1], at % self.out[1]);
        self.shape.input[0] / self.shape.groups * self.span(y, 0).len() * self.span(x, 1).len()
    }

    /// Adds to `counts[j]` the number of weights output `j` lists ([`Conv::connected`]), for
    /// every output `j`.
    ///
    /// # Panics
    ///
    /// When `counts` has not one entry per output.
    pub fn add_connected(&self, counts: &mut [usize]) {
        assert_eq!(counts.len(), self.out_dim(), "one count per output");
        let rows: Vec<usize> = (0..self.out[0]).map(|y| self.span(y, 0).len()).collect();
        let cols: Vec<usize> = (0..self.out[1]).map(|x| self.span(x, 1).len()).collect();
        let per_group = self.shape.input[0] / self.shape.groups;
        for plane in counts.chunks_mut(self.out[0] * self.out[1]) {
            for (row, &r) in plane.chunks_mut(self.out[1]).zip(&rows) {
                for (count, &c) in row.iter_mut().zip(&cols) {
                    *count += per_group * r * c;
                }
            }
        }
    }

    /// Output `j`'s listed inputs and their weights, built from the kernel.
    pub fn row(&self, j: usize) -> (Vec<u32>, Vec<T>) {
        self.taps(j)
            .map(|(i, k)| (i as u32, self.kernel[k].clone()))
            .unzip()
    }

    /// The number of weights its rows list in all (window positions in the padding left
    /// out): what the convolution would store as sparse rows.
    pub fn row_weights(&self) -> usize {
        let total =
            |axis: usize| -> usize { (0..self.out[axis]).map(|o| self.span(o, axis).len()).sum() };
        self.shape.channels * (self.shape.input[0] / self.shape.groups) * total(0) * total(1)
    }

    /// The most inputs any one output reads.
    pub fn max_connected(&self) -> usize {
        let widest = |axis: usize| {
            (0..self.out[axis])
                .map(|o| self.span(o, axis).len())
                .max()
                .unwrap_or(0)
        };
        self.shape.input[0] / self.shape.groups * widest(0) * widest(1)
    }

    /// `out = W a + b`, each output summed over its window in increasing input order.
    pub fn apply_into(&self, a: &[T], out: &mut Vec<T>) {
        out.clear();
        out.extend((0..self.out_dim()).map(|j| {
            T::affine_sum(
                self.taps(j).map(|(i, k)| (&self.kernel[k], &a[i])),
                self.bias(j),
            )
        }));
    }

    /// `out = Wᵀ v` (no bias): each input receives the weighted values of the outputs whose
    /// windows read it.
    pub fn apply_transposed_into(&self, v: &[T], out: &mut Vec<T>) {
        out.clear();
        out.resize(self.in_dim(), T::zero());
        for (j, vj) in v.iter().enumerate() {
            for (i, k) in self.taps(j) {
                T::mul_add_assign(&mut out[i], &self.kernel[k], vj);
            }
        }
    }

    /// `W` as a dense matrix.
    pub fn dense_matrix(&self) -> Array2<T> {
        let mut m = Array2::from_elem((self.out_dim(), self.in_dim()), T::zero());
        for j in 0..self.out_dim() {
            for (i, k) in self.taps(j) {
                m[[j, i]] = self.kernel[k].clone();
            }
        }
        m
    }

    /// Every kernel weight and bias of output channel `o` multiplied by `scale[o]`, and
    /// `shift[o]` added to the bias (a per-channel affine map after this one), rounding once.
    pub fn scale_channels(&mut self, scale: &[T], shift: &[T]) {
        let per_channel = self.kernel.len() / self.shape.channels;
        let kernel = Arc::make_mut(&mut self.kernel);
        for (o, chunk) in kernel.chunks_mut(per_channel).enumerate() {
            for v in chunk {
                *v = v.clone() * scale[o].clone();
            }
            self.bias[o] = self.bias[o].clone() * scale[o].clone() + shift[o].clone();
        }
    }

    /// The same convolution with every parameter mapped by `f`.
    pub fn map<U: Scalar>(&self, f: impl Fn(&T) -> U) -> Conv<U> {
        Conv {
            shape: self.shape,
            out: self.out,
            kernel: Arc::new(self.kernel.iter().map(&f).collect()),
            bias: self.bias.iter().map(&f).collect(),
        }
    }
}

impl Conv<f64> {
    /// `W g` (or `|W| g` with `absolute`) for a matrix `g` with one row per input: the
    /// convolution of each column of `g` ([`Conv::rows_product`] of `gᵀ`).
    pub fn times(&self, g: ArrayView2<'_, f64>, absolute: bool) -> Array2<f64> {
        let columns = self.rows_product(g.t(), absolute);
        columns.t().as_standard_layout().into_owned()
    }

    /// `h Wᵀ` for points `h` given as rows.
    pub fn apply_rows(&self, h: ArrayView2<'_, f64>) -> Array2<f64> {
        self.rows_product(h, false)
    }

    /// `h Wᵀ` (or `h |W|ᵀ` with `absolute`) for points `h` given as rows, by products: each
    /// point's windows unfolded into a matrix (one row per kernel weight of a group, one
    /// column per output position, zeros where a window covers padding), and one product of
    /// each group's kernel with it.
    pub fn rows_product(&self, h: ArrayView2<'_, f64>, absolute: bool) -> Array2<f64> {
        let kernel: Cow<'_, [f64]> = match absolute {
            true => self.kernel.iter().map(|v| v.abs()).collect(),
            false => Cow::Borrowed(&self.kernel),
        };
        let (groups, per_out, taps, area) = self.group_sizes();
        let mut out = Array2::zeros((h.nrows(), self.out_dim()));
        let point = |p: usize, row: &mut [f64], cols: &mut Vec<f64>| {
            for g in 0..groups {
                self.unfold(h.row(p), g, cols);
                let k = ArrayView2::from_shape((per_out, taps), &kernel[g * per_out * taps..])
                    .expect("a group's kernel rows");
                let c = ArrayView2::from_shape((taps, area), &cols[..]).expect("unfolded windows");
                let block = &mut row[g * per_out * area..(g + 1) * per_out * area];
                let block = ndarray::ArrayViewMut2::from_shape((per_out, area), block)
                    .expect("a group's output channels");
                product_into(k, c, block, false);
            }
        };
        self.each_point(&mut out, taps * area, point);
        out
    }

    /// `s W` for values `s` given as rows, one per output (`Wᵀ` applied to each row): per
    /// point and group, the kernel's transpose times the group's outputs, each product's
    /// windows then added back onto the inputs they read.
    pub fn transposed_rows(&self, s: ArrayView2<'_, f64>) -> Array2<f64> {
        let s = s.as_standard_layout();
        let (groups, per_out, taps, area) = self.group_sizes();
        let mut out = Array2::zeros((s.nrows(), self.in_dim()));
        let point = |p: usize, row: &mut [f64], cols: &mut Vec<f64>| {
            let values = s.row(p);
            let values = values.as_slice().expect("a standard-layout row");
            cols.resize(taps * area, 0.0);
            for g in 0..groups {
                let k = ArrayView2::from_shape((per_out, taps), &self.kernel[g * per_out * taps..])
                    .expect("a group's kernel rows");
                let v = ArrayView2::from_shape(
                    (per_out, area),
                    &values[g * per_out * area..(g + 1) * per_out * area],
                )
                .expect("a group's output channels");
                let c = ndarray::ArrayViewMut2::from_shape((taps, area), &mut cols[..])
                    .expect("unfolded windows");
                product_into(k.t(), v, c, false);
                self.fold_add(cols, g, row);
            }
        };
        self.each_point(&mut out, taps * area, point);
        out
    }

    /// Groups, output channels per group, kernel weights per output channel and output
    /// positions.
    fn group_sizes(&self) -> (usize, usize, usize, usize) {
        let groups = self.shape.groups;
        let taps = self.shape.input[0] / groups * self.shape.kernel[0] * self.shape.kernel[1];
        (
            groups,
            self.shape.channels / groups,
            taps,
            self.out[0] * self.out[1],
        )
    }

    /// Runs `point(p, row p of out, buffer)` for every row of `out`: in parallel over the
    /// points, each worker with its own buffer, when an unfolded point (`unfolded` numbers)
    /// is small; else one point after the other with one buffer, each product parallel
    /// itself, so that the buffers of a large image are never held once per thread.
    fn each_point(
        &self,
        out: &mut Array2<f64>,
        unfolded: usize,
        point: impl Fn(usize, &mut [f64], &mut Vec<f64>) + Sync,
    ) {
        let width = out.ncols();
        let Some(flat) = out.as_slice_mut() else {
            unreachable!("a new array is in standard layout")
        };
        if width == 0 {
            return;
        }
        if unfolded <= SMALL_UNFOLD {
            flat.par_chunks_mut(width)
                .enumerate()
                .for_each_init(Vec::new, |cols, (p, row)| point(p, row, cols));
        } else {
            let mut cols = Vec::new();
            for (p, row) in flat.chunks_mut(width).enumerate() {
                point(p, row, &mut cols);
            }
        }
    }

    /// Group `g`'s windows of one point `x` as a `taps × area` matrix in `cols` (row
    /// `(c·kh + u)·kw + v`: input channel `c` of the group at kernel offset `(u, v)`; column:
    /// the output position), zeros where a window covers padding.
    fn unfold(&self, x: ArrayView1<'_, f64>, g: usize, cols: &mut Vec<f64>) {
        let (_, _, taps, area) = self.group_sizes();
        cols.clear();
        cols.resize(taps * area, 0.0);
        self.each_tap(g, |at, i| cols[at] = x[i]);
    }

    /// Adds group `g`'s unfolded matrix `cols` (as [`Conv::unfold`] lays it out) onto the
    /// inputs its entries read; entries in the padding are dropped.
    fn fold_add(&self, cols: &[f64], g: usize, out: &mut [f64]) {
        self.each_tap(g, |at, i| out[i] += cols[at]);
    }

    /// Calls `f(place in the unfolded matrix, input)` for every window entry of group `g`
    /// that lies inside the image, row by row of the unfolded matrix.
    fn each_tap(&self, g: usize, mut f: impl FnMut(usize, usize)) {
        let [c_in, h, w] = self.shape.input;
        let [kh, kw] = self.shape.kernel;
        let (s, d, p) = (self.shape.strides, self.shape.dilations, self.shape.pads);
        let [oh, ow] = self.out;
        let per_group = c_in / self.shape.groups;
        // The output positions whose window reaches offset `k` inside the image along `axis`.
        let inside = |k: usize, axis: usize, n: usize, outs: usize| {
            let reach = k * d[axis];
            let lo = p[axis].saturating_sub(reach).div_ceil(s[axis]);
            let hi = (n + p[axis])
                .saturating_sub(reach)
                .div_ceil(s[axis])
                .min(outs);
            lo..hi.max(lo)
        };
        for c in 0..per_group {
            let channel = (g * per_group + c) * h * w;
            for u in 0..kh {
                let ys = inside(u, 0, h, oh);
                for v in 0..kw {
                    let xs = inside(v, 1, w, ow);
                    let row = ((c * kh + u) * kw + v) * oh * ow;
                    for y in ys.clone() {
                        let iy = y * s[0] + u * d[0] - p[0];
                        let base = channel + iy * w;
                        for x in xs.clone() {
                            f(row + y * ow + x, base + x * s[1] + v * d[1] - p[1]);
                        }
                    }
                }
            }
        }
    }

    /// The same convolution with every kernel weight `w` replaced by `f(w)` and zero biases.
    pub fn map_kernel(&self, f: impl Fn(f64) -> f64) -> Conv<f64> {
        Conv {
            shape: self.shape,
            out: self.out,
            kernel: Arc::new(self.kernel.iter().map(|&v| f(v)).collect()),
            bias: vec![0.0; self.bias.len()],
        }
    }

    /// The first kernel weight or bias that is not finite, as `(output, input, value)` for a
    /// weight (its first output) or `(output, None, value)` for a bias.
    pub fn first_non_finite(&self) -> Option<(usize, Option<usize>, f64)> {
        if let Some(k) = self.kernel.iter().position(|v| !v.is_finite()) {
            let per_channel = self.kernel.len() / self.shape.channels;
            let first = (k / per_channel) * self.out[0] * self.out[1];
            let at = (first..self.out_dim())
                .find_map(|j| self.taps(j).find(|&(_, kk)| kk == k).map(|(i, _)| (j, i)));
            let (j, i) = at.unwrap_or((first, 0));
            return Some((j, Some(i), self.kernel[k]));
        }
        let o = self.bias.iter().position(|v| !v.is_finite())?;
        Some((o * self.out[0] * self.out[1], None, self.bias[o]))
    }
}
