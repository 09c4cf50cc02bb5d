//! A 2-D convolution kept as its shared kernel: the map over the flattened
//! `[channels, height, width]` sample whose output `(o, y, x)` (channel-major) is the kernel of
//! channel `o` applied to the window at `(y, x)`. Its rows are built on demand, one output at a
//! time; the whole-layer applications loop over the kernel directly, so the layer holds its
//! parameters only, whatever the image size.

use ndarray::{Array2, ArrayView2};

use crate::error::{invalid, Result};
use crate::exact::Scalar;

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
/// bias per output channel.
#[derive(Clone, Debug, PartialEq)]
pub struct Conv<T = f64> {
    shape: ConvShape,
    /// Output height and width.
    out: [usize; 2],
    kernel: Vec<T>,
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
            kernel,
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
        for (o, chunk) in self.kernel.chunks_mut(per_channel).enumerate() {
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
            kernel: self.kernel.iter().map(&f).collect(),
            bias: self.bias.iter().map(&f).collect(),
        }
    }
}

impl Conv<f64> {
    /// `W g` (or `|W| g` with `absolute`) for a matrix `g` with one row per input.
    pub fn times(&self, g: ArrayView2<'_, f64>, absolute: bool) -> Array2<f64> {
        times_by_entries(self.out_dim(), g, absolute, |j| {
            self.taps(j).map(|(i, k)| (i, self.kernel[k]))
        })
    }

    /// `h Wᵀ` for points `h` given as rows.
    pub fn apply_rows(&self, h: ArrayView2<'_, f64>) -> Array2<f64> {
        apply_rows_by_entries(self.out_dim(), h, |j| {
            self.taps(j).map(|(i, k)| (i, self.kernel[k]))
        })
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

/// `W g` (or `|W| g` with `absolute`) for a map of `out_dim` outputs whose output `j` has the
/// weights `entries(j)` lists as `(input, weight)`; shared by the maps kept without rows.
pub(crate) fn times_by_entries<I: Iterator<Item = (usize, f64)>>(
    out_dim: usize,
    g: ArrayView2<'_, f64>,
    absolute: bool,
    entries: impl Fn(usize) -> I,
) -> Array2<f64> {
    let mut out = Array2::zeros((out_dim, g.ncols()));
    for (j, mut o) in out.rows_mut().into_iter().enumerate() {
        for (i, w) in entries(j) {
            o.scaled_add(if absolute { w.abs() } else { w }, &g.row(i));
        }
    }
    out
}

/// `h Wᵀ` for points `h` given as rows, for a map of `out_dim` outputs whose output `j` has the
/// weights `entries(j)` lists as `(input, weight)`.
pub(crate) fn apply_rows_by_entries<I: Iterator<Item = (usize, f64)>>(
    out_dim: usize,
    h: ArrayView2<'_, f64>,
    entries: impl Fn(usize) -> I,
) -> Array2<f64> {
    let mut out = Array2::zeros((h.nrows(), out_dim));
    for (point, mut o) in h.rows().into_iter().zip(out.rows_mut()) {
        for (j, v) in o.iter_mut().enumerate() {
            *v = entries(j).fold(0.0, |acc, (i, w)| acc + w * point[i]);
        }
    }
    out
}
