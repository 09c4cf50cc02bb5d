//! An affine map kept as parts placed in its input and output: each part an operator reading
//! a range of the input and adding into a range of the output (a convolution kept as its
//! kernel, or a copy), plus one bias per output. A convolution reading part of a wider layer
//! input, values carried beside it unchanged, and the sum of a residual block's last
//! convolution and its shortcut are such maps. Like [`Conv`], its rows are built on demand and
//! the whole-layer applications loop over the parts, so the layer holds the kernels and the
//! biases only.
//!
//! Parts that add into a common output read disjoint input ranges, so each row lists every
//! input once, in increasing order: the parts' rows one after the other, by input range.

use ndarray::{s, Array2, ArrayView2};

use crate::error::{invalid, Result};
use crate::exact::Scalar;
use crate::model::conv::Conv;

/// What one part computes from its input range.
#[derive(Clone, Debug, PartialEq)]
pub enum PartMap<T = f64> {
    /// A convolution kept as its kernel; its biases are all zero (the map's biases hold them).
    Conv(Conv<T>),
    /// This many inputs copied, each with weight 1.
    Copy(usize),
}

impl<T: Scalar> PartMap<T> {
    /// The width of the input range it reads.
    pub fn in_dim(&self) -> usize {
        match self {
            PartMap::Conv(c) => c.in_dim(),
            PartMap::Copy(n) => *n,
        }
    }

    /// The width of the output range it adds into.
    pub fn out_dim(&self) -> usize {
        match self {
            PartMap::Conv(c) => c.out_dim(),
            PartMap::Copy(n) => *n,
        }
    }
}

/// One part: `map` reads inputs `input .. input + map.in_dim()` and adds into outputs
/// `output .. output + map.out_dim()`.
#[derive(Clone, Debug, PartialEq)]
pub struct Part<T = f64> {
    /// The first input it reads.
    pub input: usize,
    /// The first output it adds into.
    pub output: usize,
    /// What it computes.
    pub map: PartMap<T>,
}

impl<T: Scalar> Part<T> {
    /// Whether it adds into output `j`.
    fn covers(&self, j: usize) -> bool {
        (self.output..self.output + self.map.out_dim()).contains(&j)
    }

    /// `(input, weight)` of its row for output `j` of the map (which it covers), in increasing
    /// input order; `one` is the weight of a copy.
    fn entries<'a>(
        &'a self,
        j: usize,
        one: &'a T,
    ) -> Box<dyn Iterator<Item = (usize, &'a T)> + 'a> {
        let (start, at) = (self.input, j - self.output);
        match &self.map {
            PartMap::Conv(c) => Box::new(c.taps(at).map(move |(i, k)| (start + i, &c.kernel()[k]))),
            PartMap::Copy(_) => Box::new(std::iter::once((start + at, one))),
        }
    }

    /// The number of weights its row for output `j` of the map lists.
    fn connected(&self, j: usize) -> usize {
        match &self.map {
            PartMap::Conv(c) => c.connected(j - self.output),
            PartMap::Copy(_) => 1,
        }
    }
}

/// The parts (given by the first output and the width of their output ranges, in order)
/// that add into outputs `start..end` alone, by index; `None` where one adds into outputs on
/// both sides of `start` or of `end`.
pub fn parts_inside(
    ranges: impl IntoIterator<Item = (usize, usize)>,
    start: usize,
    end: usize,
) -> Option<Vec<usize>> {
    let mut inside = Vec::new();
    for (k, (first, width)) in ranges.into_iter().enumerate() {
        let last = first + width;
        if first >= start && last <= end {
            inside.push(k);
        } else if first < end && last > start {
            return None;
        }
    }
    Some(inside)
}

/// An affine map of `in_dim` inputs made of placed parts and one bias per output.
#[derive(Clone, Debug, PartialEq)]
pub struct Blocks<T = f64> {
    in_dim: usize,
    /// By first input, then first output.
    parts: Vec<Part<T>>,
    bias: Vec<T>,
    one: T,
    max_connected: usize,
}

impl<T: Scalar> Blocks<T> {
    /// Checks that every part lies inside the input and the output (`bias.len()` outputs),
    /// that parts adding into a common output read disjoint inputs, and that a convolution
    /// part has zero biases; at most 2^32 − 1 inputs and outputs.
    pub fn new(in_dim: usize, mut parts: Vec<Part<T>>, bias: Vec<T>) -> Result<Self> {
        let out_dim = bias.len();
        if in_dim == 0 || out_dim == 0 || parts.is_empty() {
            return Err(invalid(format!(
                "a map of parts from {in_dim} inputs into {out_dim} outputs with {} parts is empty",
                parts.len()
            )));
        }
        if u32::try_from(in_dim).is_err() || u32::try_from(out_dim).is_err() {
            return Err(invalid(format!(
                "a map of parts from {in_dim} inputs into {out_dim} outputs: at most 2^32 - 1 \
                 inputs and outputs are supported"
            )));
        }
        for (n, p) in parts.iter().enumerate() {
            let (i, o) = (p.map.in_dim(), p.map.out_dim());
            if p.input.checked_add(i).is_none_or(|e| e > in_dim)
                || p.output.checked_add(o).is_none_or(|e| e > out_dim)
            {
                return Err(invalid(format!(
                    "part {n} reads inputs {}..{} and writes outputs {}..{} of a map from \
                     {in_dim} inputs into {out_dim} outputs",
                    p.input,
                    p.input.saturating_add(i),
                    p.output,
                    p.output.saturating_add(o)
                )));
            }
            if let PartMap::Conv(c) = &p.map {
                if c.channel_bias().iter().any(|b| *b != T::zero()) {
                    return Err(invalid(format!(
                        "part {n} is a convolution with biases of its own; the map holds them"
                    )));
                }
            }
        }
        parts.sort_by_key(|p| (p.input, p.output));
        let overlap = |a: (usize, usize), b: (usize, usize)| a.0 < b.1 && b.0 < a.1;
        for (a, p) in parts.iter().enumerate() {
            for q in &parts[a + 1..] {
                let outputs = (
                    (p.output, p.output + p.map.out_dim()),
                    (q.output, q.output + q.map.out_dim()),
                );
                let inputs = (
                    (p.input, p.input + p.map.in_dim()),
                    (q.input, q.input + q.map.in_dim()),
                );
                if overlap(outputs.0, outputs.1) && overlap(inputs.0, inputs.1) {
                    return Err(invalid(format!(
                        "two parts add into outputs {}..{} and {}..{} and both read inputs of \
                         {}..{}",
                        outputs.0 .0,
                        outputs.0 .1,
                        outputs.1 .0,
                        outputs.1 .1,
                        q.input,
                        inputs.0 .1
                    )));
                }
            }
        }
        let mut blocks = Self {
            in_dim,
            parts,
            bias,
            one: T::one(),
            max_connected: 0,
        };
        blocks.max_connected = blocks.connected_counts().into_iter().max().unwrap_or(0);
        Ok(blocks)
    }

    /// The number of weights each output lists ([`Blocks::connected`]), part by part.
    pub fn connected_counts(&self) -> Vec<usize> {
        let mut counts = vec![0usize; self.out_dim()];
        for p in &self.parts {
            let reach = &mut counts[p.output..p.output + p.map.out_dim()];
            match &p.map {
                PartMap::Conv(c) => c.add_connected(reach),
                PartMap::Copy(_) => reach.iter_mut().for_each(|n| *n += 1),
            }
        }
        counts
    }

    /// The input each output copies (one weight, of exactly 1, and a bias of exactly 0), or
    /// `None`: [`crate::model::ir::Affine::copied_input`] of every output, from the counts of
    /// [`Blocks::connected`], reading the one weight of an output that lists one.
    pub fn copied_inputs(&self) -> Vec<Option<usize>> {
        let counts = self.connected_counts();
        let mut copied = vec![None; self.out_dim()];
        for p in &self.parts {
            for j in p.output..p.output + p.map.out_dim() {
                if counts[j] != 1 || !self.bias[j].is_zero() {
                    continue;
                }
                // The part that lists output j's one weight (another covering it lists none).
                let weight = match &p.map {
                    PartMap::Copy(_) => Some((p.input + j - p.output, &self.one)),
                    PartMap::Conv(_) => p.entries(j, &self.one).next(),
                };
                if let Some((i, w)) = weight {
                    copied[j] = (*w == T::one()).then_some(i);
                }
            }
        }
        copied
    }

    /// The map of the outputs `start..end` alone (numbered from `start`), from the same input:
    /// the parts that add into them, and their biases. `None` where a part adds into outputs
    /// on both sides of `start` or of `end`, or none adds into them.
    pub fn outputs(&self, start: usize, end: usize) -> Option<Self> {
        let ranges = self.parts.iter().map(|p| (p.output, p.map.out_dim()));
        let parts = parts_inside(ranges, start, end)?
            .into_iter()
            .map(|k| {
                let p = &self.parts[k];
                Part {
                    input: p.input,
                    output: p.output - start,
                    map: p.map.clone(),
                }
            })
            .collect();
        let bias = self.bias.get(start..end)?.to_vec();
        Self::new(self.in_dim, parts, bias).ok()
    }

    /// The parts, by first input.
    pub fn parts(&self) -> &[Part<T>] {
        &self.parts
    }

    /// The biases, one per output.
    pub fn biases(&self) -> &[T] {
        &self.bias
    }

    /// The parts and the biases.
    pub fn into_parts(self) -> (Vec<Part<T>>, Vec<T>) {
        (self.parts, self.bias)
    }

    /// The width of the input.
    pub fn in_dim(&self) -> usize {
        self.in_dim
    }

    /// The number of outputs.
    pub fn out_dim(&self) -> usize {
        self.bias.len()
    }

    /// The bias of output `j`.
    pub fn bias(&self, j: usize) -> &T {
        &self.bias[j]
    }

    /// The number of stored weights: the kernels'.
    pub fn stored_weights(&self) -> usize {
        self.parts
            .iter()
            .map(|p| match &p.map {
                PartMap::Conv(c) => c.kernel().len(),
                PartMap::Copy(_) => 0,
            })
            .sum()
    }

    /// The number of weights output `j` lists.
    pub fn connected(&self, j: usize) -> usize {
        self.parts
            .iter()
            .filter(|p| p.covers(j))
            .map(|p| p.connected(j))
            .sum()
    }

    /// The most inputs any one output reads.
    pub fn max_connected(&self) -> usize {
        self.max_connected
    }

    /// `(input, weight)` of each weight of output `j`, in increasing input order.
    pub fn entries(&self, j: usize) -> impl Iterator<Item = (usize, &T)> + '_ {
        self.parts
            .iter()
            .filter(move |p| p.covers(j))
            .flat_map(move |p| p.entries(j, &self.one))
    }

    /// Output `j`'s listed inputs and their weights, built from the parts.
    pub fn row(&self, j: usize) -> (Vec<u32>, Vec<T>) {
        self.entries(j).map(|(i, w)| (i as u32, w.clone())).unzip()
    }

    /// `out = W a + b`, each output summed over its row in increasing input order.
    pub fn apply_into(&self, a: &[T], out: &mut Vec<T>) {
        out.clear();
        out.extend(
            (0..self.out_dim())
                .map(|j| T::affine_sum(self.entries(j).map(|(i, w)| (w, &a[i])), &self.bias[j])),
        );
    }

    /// `out = Wᵀ v` (no bias): each input receives the weighted values of the outputs whose
    /// rows list it, output by output.
    pub fn apply_transposed_into(&self, v: &[T], out: &mut Vec<T>) {
        out.clear();
        out.resize(self.in_dim, T::zero());
        for (j, vj) in v.iter().enumerate() {
            for (i, w) in self.entries(j) {
                T::mul_add_assign(&mut out[i], w, vj);
            }
        }
    }

    /// The same map with every parameter mapped by `f`.
    pub fn map<U: Scalar>(&self, f: impl Fn(&T) -> U) -> Blocks<U> {
        self.with_parts(|c| c.map(&f), self.bias.iter().map(&f).collect(), U::one())
    }

    /// The same placement of parts, each convolution replaced by `conv(c)`, with the biases
    /// `bias` and a copy's weight `one`.
    fn with_parts<U: Scalar>(
        &self,
        conv: impl Fn(&Conv<T>) -> Conv<U>,
        bias: Vec<U>,
        one: U,
    ) -> Blocks<U> {
        Blocks {
            in_dim: self.in_dim,
            parts: self
                .parts
                .iter()
                .map(|p| Part {
                    input: p.input,
                    output: p.output,
                    map: match &p.map {
                        PartMap::Conv(c) => PartMap::Conv(conv(c)),
                        PartMap::Copy(n) => PartMap::Copy(*n),
                    },
                })
                .collect(),
            bias,
            one,
            max_connected: self.max_connected,
        }
    }
}

impl Blocks<f64> {
    /// `W g` (or `|W| g` with `absolute`) for a matrix `g` with one row per input.
    pub fn times(&self, g: ArrayView2<'_, f64>, absolute: bool) -> Array2<f64> {
        let columns = self.rows_product(g.t(), absolute);
        columns.t().as_standard_layout().into_owned()
    }

    /// `h Wᵀ` for points `h` given as rows.
    pub fn apply_rows(&self, h: ArrayView2<'_, f64>) -> Array2<f64> {
        self.rows_product(h, false)
    }

    /// `h Wᵀ` (or `h |W|ᵀ` with `absolute`) for points `h` given as rows: each part's
    /// product on its input columns added into its output columns.
    pub fn rows_product(&self, h: ArrayView2<'_, f64>, absolute: bool) -> Array2<f64> {
        let mut out = Array2::zeros((h.nrows(), self.out_dim()));
        let one = if absolute { self.one.abs() } else { self.one };
        for p in &self.parts {
            let (i, o) = (p.map.in_dim(), p.map.out_dim());
            let input = h.slice(s![.., p.input..p.input + i]);
            let mut output = out.slice_mut(s![.., p.output..p.output + o]);
            match &p.map {
                PartMap::Conv(c) => output += &c.rows_product(input, absolute),
                PartMap::Copy(_) => output.scaled_add(one, &input),
            }
        }
        out
    }

    /// `s W` for values `s` given as rows, one per output (`Wᵀ` applied to each row): each
    /// part's transposed product on its output columns added into its input columns.
    pub fn transposed_rows(&self, s: ArrayView2<'_, f64>) -> Array2<f64> {
        let mut out = Array2::zeros((s.nrows(), self.in_dim));
        for p in &self.parts {
            let (i, o) = (p.map.in_dim(), p.map.out_dim());
            let values = s.slice(s![.., p.output..p.output + o]);
            let mut input = out.slice_mut(s![.., p.input..p.input + i]);
            match &p.map {
                PartMap::Conv(c) => input += &c.transposed_rows(values),
                PartMap::Copy(_) => input.scaled_add(self.one, &values),
            }
        }
        out
    }

    /// The same map with every weight `w` (a copy's 1 included) replaced by `f(w)` and zero
    /// biases.
    pub fn map_weights(&self, f: impl Fn(f64) -> f64) -> Blocks<f64> {
        let bias = vec![0.0; self.bias.len()];
        self.with_parts(|c| c.map_kernel(&f), bias, f(self.one))
    }

    /// The first weight or bias that is not finite, as `(output, input, value)` for a weight
    /// (its first output) or `(output, None, value)` for a bias.
    pub fn first_non_finite(&self) -> Option<(usize, Option<usize>, f64)> {
        let kernels_finite = self.parts.iter().all(|p| match &p.map {
            PartMap::Conv(c) => c.kernel().iter().all(|v| v.is_finite()),
            PartMap::Copy(_) => true,
        });
        if !kernels_finite {
            for j in 0..self.out_dim() {
                if let Some((i, &v)) = self.entries(j).find(|(_, v)| !v.is_finite()) {
                    return Some((j, Some(i), v));
                }
            }
        }
        let j = self.bias.iter().position(|v| !v.is_finite())?;
        Some((j, None, self.bias[j]))
    }
}
