//! The network IR: a validated sequence of layers, each an affine map followed by an optional
//! piecewise-linear activation ([`Activation`]: ReLU, Clip, LeakyRelu, PRelu). It knows nothing
//! of file formats; loaders translate into it.

use std::borrow::Cow;

use ndarray::{Array1, Array2, ArrayView2};
use sha2::{Digest, Sha256};

use super::kind::LayerKind;
use crate::error::{invalid, Result};
use crate::exact::{Rational, Scalar};
use crate::model::blocks::{Blocks, PartMap};
use crate::model::conv::Conv;
use crate::model::gemm::{product, product_into};

pub use super::activation::Activation;

/// The most parameters a model may declare; larger models are refused before allocation.
pub const MAX_PARAMETERS: usize = 1 << 31;

/// A dense affine map `z = W a + b`, `W` of shape (outputs, inputs).
#[derive(Clone, Debug, PartialEq)]
pub struct Dense<T = f64> {
    weight: Array2<T>,
    bias: Array1<T>,
}

impl<T: Scalar> Dense<T> {
    /// Checks that the bias has one entry per output row.
    pub fn new(weight: Array2<T>, bias: Array1<T>) -> Result<Self> {
        if weight.nrows() != bias.len() {
            return Err(invalid(format!(
                "weight has {} rows but bias has {} entries",
                weight.nrows(),
                bias.len()
            )));
        }
        if weight.nrows() == 0 || weight.ncols() == 0 {
            return Err(invalid(format!(
                "dense layer of shape {}x{} is empty",
                weight.nrows(),
                weight.ncols()
            )));
        }
        // A matrix already in standard layout is kept, not copied.
        let weight = if weight.is_standard_layout() {
            weight
        } else {
            weight.as_standard_layout().into_owned()
        };
        Ok(Self { weight, bias })
    }

    /// `W`, of shape (outputs, inputs), in standard (row-major) layout.
    pub fn weight(&self) -> &Array2<T> {
        &self.weight
    }

    /// `b`, one entry per output.
    pub fn bias(&self) -> &Array1<T> {
        &self.bias
    }

    /// Row `j` of `W` as a slice (the weights are stored row-major).
    pub fn row(&self, j: usize) -> &[T] {
        self.weight
            .row(j)
            .to_slice()
            .expect("weights are stored in standard layout")
    }
}

/// An affine map whose outputs each see a few inputs (a convolution, a pooling window, batch
/// norm on an image): compressed rows, so no dense matrix is ever built. Each row lists its
/// inputs in increasing order with their weights; an input a row does not list has weight 0
/// and is not connected to it (the flat rule shares only over listed inputs).
#[derive(Clone, Debug, PartialEq)]
pub struct Sparse<T = f64> {
    in_dim: usize,
    offsets: Vec<usize>,
    inputs: Vec<u32>,
    values: Vec<T>,
    bias: Array1<T>,
}

impl<T: Scalar> Sparse<T> {
    /// One `(input, weight)` list per output. Checks that every input is below `in_dim`
    /// (itself below 2^32), that each list is strictly increasing, and that the bias has one
    /// entry per row.
    pub fn from_rows(in_dim: usize, rows: Vec<Vec<(u32, T)>>, bias: Array1<T>) -> Result<Self> {
        if rows.is_empty() || in_dim == 0 {
            return Err(invalid(format!(
                "sparse layer with {} outputs and {in_dim} inputs is empty",
                rows.len()
            )));
        }
        if u32::try_from(in_dim).is_err() {
            return Err(invalid(format!(
                "a sparse layer has at most 2^32 inputs, this one {in_dim}"
            )));
        }
        if rows.len() != bias.len() {
            return Err(invalid(format!(
                "{} rows but the bias has {} entries",
                rows.len(),
                bias.len()
            )));
        }
        let total = rows.iter().map(Vec::len).sum();
        let mut offsets = Vec::with_capacity(rows.len() + 1);
        let mut inputs = Vec::with_capacity(total);
        let mut values = Vec::with_capacity(total);
        offsets.push(0);
        for (j, row) in rows.into_iter().enumerate() {
            let mut last: Option<u32> = None;
            for (i, v) in row {
                if i as usize >= in_dim || last.is_some_and(|l| l >= i) {
                    return Err(invalid(format!(
                        "row {j}: input {i} is out of range or out of order"
                    )));
                }
                last = Some(i);
                inputs.push(i);
                values.push(v);
            }
            offsets.push(inputs.len());
        }
        Ok(Self {
            in_dim,
            offsets,
            inputs,
            values,
            bias,
        })
    }

    /// Output `j` copies input `inputs[j]` (weight 1, bias 0): a gather, as a max-pool layer's
    /// map. Checks that every input is below `in_dim` (itself below 2^32).
    pub fn gather(in_dim: usize, inputs: Vec<u32>) -> Result<Self> {
        if inputs.is_empty() || in_dim == 0 || u32::try_from(in_dim).is_err() {
            return Err(invalid(format!(
                "a gather of {} outputs from {in_dim} inputs: between 1 and 2^32 - 1 of each",
                inputs.len()
            )));
        }
        if let Some((j, i)) = inputs
            .iter()
            .enumerate()
            .find(|(_, &i)| i as usize >= in_dim)
        {
            return Err(invalid(format!("row {j}: input {i} is out of range")));
        }
        let n = inputs.len();
        Ok(Self {
            in_dim,
            offsets: (0..=n).collect(),
            inputs,
            values: vec![T::one(); n],
            bias: Array1::from_elem(n, T::zero()),
        })
    }

    /// The number of outputs.
    pub fn rows(&self) -> usize {
        self.offsets.len() - 1
    }

    /// Every listed weight, row after row.
    pub fn values(&self) -> &[T] {
        &self.values
    }

    /// The bias, one entry per output.
    pub fn bias(&self) -> &Array1<T> {
        &self.bias
    }

    fn row(&self, j: usize) -> WeightRow<'_, T> {
        let range = self.offsets[j]..self.offsets[j + 1];
        WeightRow {
            len: self.in_dim,
            values: Held::Borrowed(&self.values[range.clone()]),
            inputs: Inputs::Listed(&self.inputs[range]),
        }
    }

    /// Multiplies every weight and the bias of row `j` by `scale[j]` and adds `shift[j]` to
    /// the bias (an affine map applied after this one, output by output), rounding once.
    pub fn scale_rows(&mut self, scale: impl Fn(usize) -> T, shift: impl Fn(usize) -> T) {
        for j in 0..self.rows() {
            let s = scale(j);
            for v in &mut self.values[self.offsets[j]..self.offsets[j + 1]] {
                *v = v.clone() * s.clone();
            }
            self.bias[j] = self.bias[j].clone() * s + shift(j);
        }
    }
}

/// One dense block applied to each of `copies` consecutive slices of the input: a
/// block-diagonal map whose blocks share their weights (a relation network's MLP `g`, applied
/// to every object pair). Output `p · rows + k` is the block's output `k` on slice `p`.
#[derive(Clone, Debug, PartialEq)]
pub struct Shared<T = f64> {
    block: Dense<T>,
    copies: usize,
}

impl<T: Scalar> Shared<T> {
    /// `copies` of `block`; fails for no copies, or for more than 2^32 − 1 inputs or outputs
    /// in all.
    pub fn new(block: Dense<T>, copies: usize) -> Result<Self> {
        let too_many = copies
            .checked_mul(block.weight.ncols().max(block.weight.nrows()))
            .is_none_or(|n| u32::try_from(n).is_err());
        if copies == 0 || too_many {
            return Err(invalid(format!(
                "{copies} copies of a {}x{} block: between 1 and 2^32 - 1 inputs and outputs are supported",
                block.weight.nrows(),
                block.weight.ncols()
            )));
        }
        Ok(Self { block, copies })
    }

    /// The dense block every copy applies.
    pub fn block(&self) -> &Dense<T> {
        &self.block
    }

    /// How many consecutive input slices the block is applied to.
    pub fn copies(&self) -> usize {
        self.copies
    }

    fn row(&self, j: usize) -> WeightRow<'_, T> {
        let (rows, cols) = self.block.weight.dim();
        WeightRow {
            len: cols * self.copies,
            values: Held::Borrowed(self.block.row(j % rows)),
            inputs: Inputs::From((j / rows) * cols),
        }
    }
}

/// The weights of one output: every input's (a dense row), or some inputs' (a sparse, shared
/// or convolution row, where every other input has weight 0 and is not connected). Dense,
/// sparse and shared rows borrow the layer's weights; a convolution's row is built on demand
/// from its kernel and holds its own.
#[derive(Clone, Debug)]
pub struct WeightRow<'a, T> {
    len: usize,
    values: Held<'a, T>,
    inputs: Inputs<'a>,
}

/// A row's listed weights: the layer's own, or built for the row.
#[derive(Clone, Debug)]
enum Held<'a, T> {
    Borrowed(&'a [T]),
    Owned(Vec<T>),
}

/// Where a row's listed weights sit among the layer's inputs.
#[derive(Clone, Debug)]
enum Inputs<'a> {
    /// Every input, in order.
    All,
    /// The inputs listed, in increasing order.
    Listed(&'a [u32]),
    /// The inputs listed, in increasing order, built for the row.
    Owned(Vec<u32>),
    /// Consecutive inputs from this one on.
    From(usize),
}

impl<'a, T: Scalar> WeightRow<'a, T> {
    /// A dense row over every input.
    pub fn from_dense(values: &'a [T]) -> Self {
        WeightRow {
            len: values.len(),
            values: Held::Borrowed(values),
            inputs: Inputs::All,
        }
    }

    /// A row of a layer of `len` inputs built on demand: `values[k]` is the weight of input
    /// `inputs[k]`, the inputs strictly increasing and below `len`.
    pub fn from_owned(len: usize, inputs: Vec<u32>, values: Vec<T>) -> Self {
        debug_assert_eq!(inputs.len(), values.len());
        debug_assert!(inputs.windows(2).all(|p| p[0] < p[1]));
        debug_assert!(inputs.last().is_none_or(|&i| (i as usize) < len));
        WeightRow {
            len,
            values: Held::Owned(values),
            inputs: Inputs::Owned(inputs),
        }
    }

    /// The number of inputs of the layer (not of listed weights).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the layer has no inputs (never for a validated layer).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The listed weights: all of them for a dense row.
    #[inline]
    pub fn values(&self) -> &[T] {
        match &self.values {
            Held::Borrowed(v) => v,
            Held::Owned(v) => v,
        }
    }

    /// Whether the row lists every input of the layer, in order.
    pub fn is_dense(&self) -> bool {
        matches!(self.inputs, Inputs::All)
    }

    /// The input of the `k`-th listed weight.
    #[inline]
    pub fn position(&self, k: usize) -> usize {
        match &self.inputs {
            Inputs::All => k,
            Inputs::Listed(ix) => ix[k] as usize,
            Inputs::Owned(ix) => ix[k] as usize,
            Inputs::From(start) => start + k,
        }
    }

    /// How many inputs the output is connected to.
    pub fn connected(&self) -> usize {
        self.values().len()
    }

    /// `(input, weight)` for each listed weight.
    pub fn entries(&self) -> impl Iterator<Item = (usize, &T)> + '_ {
        self.values()
            .iter()
            .enumerate()
            .map(move |(k, v)| (self.position(k), v))
    }

    /// The whole row with its zeros: borrowed for a dense row.
    pub fn dense(&self) -> Cow<'a, [T]> {
        match (&self.inputs, &self.values) {
            (Inputs::All, Held::Borrowed(v)) => return Cow::Borrowed(v),
            (Inputs::All, Held::Owned(v)) => return Cow::Owned(v.clone()),
            _ => {}
        }
        let mut out = vec![T::zero(); self.len];
        for (i, v) in self.entries() {
            out[i] = v.clone();
        }
        Cow::Owned(out)
    }

    /// `a` at the listed inputs, in their order (borrowed for a dense or shared row).
    pub fn gather<'b>(&self, a: &'b [T]) -> Cow<'b, [T]> {
        match &self.inputs {
            Inputs::All => Cow::Borrowed(a),
            Inputs::From(start) => Cow::Borrowed(&a[*start..start + self.connected()]),
            Inputs::Listed(ix) => Cow::Owned(ix.iter().map(|&i| a[i as usize].clone()).collect()),
            Inputs::Owned(ix) => Cow::Owned(ix.iter().map(|&i| a[i as usize].clone()).collect()),
        }
    }

    /// `w · a + b`, summed left to right over the listed weights in `T`'s arithmetic.
    pub fn affine_dot(&self, a: &[T], b: &T) -> T {
        let values = self.values();
        match &self.inputs {
            Inputs::All => crate::exact::scalar::affine_dot(values, a, b),
            Inputs::From(start) => {
                crate::exact::scalar::affine_dot(values, &a[*start..start + values.len()], b)
            }
            Inputs::Listed(ix) => {
                T::affine_sum(values.iter().zip(ix.iter().map(|&i| &a[i as usize])), b)
            }
            Inputs::Owned(ix) => {
                T::affine_sum(values.iter().zip(ix.iter().map(|&i| &a[i as usize])), b)
            }
        }
    }

    /// `w · a`.
    pub fn dot(&self, a: &[T]) -> T {
        self.affine_dot(a, &T::zero())
    }
}

/// The affine part of a layer. Closed: every pass matches it exhaustively.
#[derive(Clone, Debug, PartialEq)]
pub enum Affine<T = f64> {
    /// A full weight matrix `W` and bias `b`.
    Dense(Dense<T>),
    /// Compressed rows, each listing the few inputs it sees.
    Sparse(Sparse<T>),
    /// One dense block repeated over consecutive input slices (a relation network's `g`).
    Shared(Shared<T>),
    /// A 2-D convolution kept as its shared kernel; its rows are built on demand.
    Conv(Conv<T>),
    /// Operators placed in the input and output (a convolution reading part of the input,
    /// copied values, their sums), with one bias per output; its rows are built on demand.
    Blocks(Blocks<T>),
}

impl<T: Scalar> Affine<T> {
    /// The width of the map's input.
    pub fn in_dim(&self) -> usize {
        match self {
            Affine::Dense(d) => d.weight.ncols(),
            Affine::Sparse(s) => s.in_dim,
            Affine::Shared(s) => s.block.weight.ncols() * s.copies,
            Affine::Conv(c) => c.in_dim(),
            Affine::Blocks(b) => b.in_dim(),
        }
    }

    /// The number of outputs (of `z_l`; a max-pool layer's `h_l` has fewer).
    pub fn out_dim(&self) -> usize {
        match self {
            Affine::Dense(d) => d.weight.nrows(),
            Affine::Sparse(s) => s.rows(),
            Affine::Shared(s) => s.block.weight.nrows() * s.copies,
            Affine::Conv(c) => c.out_dim(),
            Affine::Blocks(b) => b.out_dim(),
        }
    }

    /// The weights of output `j` (the row `w_j` that DTD's rules act on).
    pub fn row(&self, j: usize) -> WeightRow<'_, T> {
        match self {
            Affine::Dense(d) => WeightRow {
                len: d.weight.ncols(),
                values: Held::Borrowed(d.row(j)),
                inputs: Inputs::All,
            },
            Affine::Sparse(s) => s.row(j),
            Affine::Shared(s) => s.row(j),
            Affine::Conv(c) => {
                let (inputs, values) = c.row(j);
                WeightRow::from_owned(c.in_dim(), inputs, values)
            }
            Affine::Blocks(b) => {
                let (inputs, values) = b.row(j);
                WeightRow::from_owned(b.in_dim(), inputs, values)
            }
        }
    }

    /// The bias `b_j` of output `j`.
    pub fn bias(&self, j: usize) -> &T {
        match self {
            Affine::Dense(d) => &d.bias[j],
            Affine::Sparse(s) => &s.bias[j],
            Affine::Shared(s) => &s.block.bias[j % s.block.bias.len()],
            Affine::Conv(c) => c.bias(j),
            Affine::Blocks(b) => b.bias(j),
        }
    }

    /// Every output's bias, in order ([`Affine::bias`] of each).
    pub fn biases(&self) -> Array1<T> {
        match self {
            Affine::Dense(d) => d.bias.clone(),
            Affine::Sparse(s) => s.bias.clone(),
            Affine::Shared(s) => s
                .block
                .bias
                .iter()
                .cloned()
                .cycle()
                .take(self.out_dim())
                .collect(),
            Affine::Conv(c) => Array1::from(c.biases()),
            Affine::Blocks(b) => Array1::from(b.biases().to_vec()),
        }
    }

    /// [`Affine::copied_input`] of every output, in order; a map of parts counts each
    /// output's weights part by part instead of reading its row.
    pub fn copied_inputs(&self) -> Vec<Option<usize>> {
        match self {
            Affine::Blocks(b) => b.copied_inputs(),
            Affine::Conv(c) if c.channel_bias().iter().all(|b| !b.is_zero()) => {
                vec![None; c.out_dim()]
            }
            _ => (0..self.out_dim()).map(|j| self.copied_input(j)).collect(),
        }
    }

    /// The input output `j` copies: `Some(i)` when its row lists exactly one weight, of exactly
    /// 1 (on input `i`), and its bias is exactly 0; `None` otherwise. A convolution's or a map
    /// of parts' row is not built: only the weights it lists are counted, and a lone one read.
    /// The answer is read from the row, not from where it came from: a dense row lists every
    /// weight, so it is never a copy, and a convolution's border output whose one in-bounds tap
    /// is exactly 1 with a bias of exactly 0 (a 2×2 kernel with padding 1, say) is one.
    pub fn copied_input(&self, j: usize) -> Option<usize> {
        if !self.bias(j).is_zero() {
            return None;
        }
        let (i, w) = match self {
            Affine::Conv(c) if c.connected(j) == 1 => {
                let (i, k) = c.taps(j).next()?;
                (i, &c.kernel()[k])
            }
            Affine::Conv(_) => return None,
            Affine::Blocks(b) if b.connected(j) == 1 => b.entries(j).next()?,
            Affine::Blocks(_) => return None,
            Affine::Dense(_) | Affine::Sparse(_) | Affine::Shared(_) => {
                let row = self.row(j);
                if row.connected() != 1 {
                    return None;
                }
                return (row.values()[0] == T::one()).then(|| row.position(0));
            }
        };
        (*w == T::one()).then_some(i)
    }

    /// The number of stored weights (`rows × columns` for a dense layer, the block's for a
    /// shared one, the kernel's for a convolution).
    pub fn stored_weights(&self) -> usize {
        match self {
            Affine::Dense(d) => d.weight.len(),
            Affine::Sparse(s) => s.values.len(),
            Affine::Shared(s) => s.block.weight.len(),
            Affine::Conv(c) => c.kernel().len(),
            Affine::Blocks(b) => b.stored_weights(),
        }
    }

    /// How many inputs each output is connected to ([`WeightRow::connected`] of every row),
    /// counted without building a row.
    pub fn connected_counts(&self) -> Vec<usize> {
        match self {
            Affine::Dense(d) => vec![d.weight.ncols(); d.weight.nrows()],
            Affine::Sparse(s) => s.offsets.windows(2).map(|w| w[1] - w[0]).collect(),
            Affine::Shared(s) => vec![s.block.weight.ncols(); self.out_dim()],
            Affine::Conv(c) => {
                let mut counts = vec![0; c.out_dim()];
                c.add_connected(&mut counts);
                counts
            }
            Affine::Blocks(b) => b.connected_counts(),
        }
    }

    /// The most inputs any one output is connected to (the number of products in its sum).
    pub fn max_connected(&self) -> usize {
        match self {
            Affine::Dense(d) => d.weight.ncols(),
            Affine::Sparse(s) => s.offsets.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0),
            Affine::Shared(s) => s.block.weight.ncols(),
            Affine::Conv(c) => c.max_connected(),
            Affine::Blocks(b) => b.max_connected(),
        }
    }

    /// The number of stored biases.
    fn stored_biases(&self) -> usize {
        match self {
            Affine::Dense(d) => d.bias.len(),
            Affine::Sparse(s) => s.bias.len(),
            Affine::Shared(s) => s.block.bias.len(),
            Affine::Conv(c) => c.channel_bias().len(),
            Affine::Blocks(b) => b.biases().len(),
        }
    }

    /// `W` as a dense matrix, when it has at most `limit` entries (borrowed for a dense
    /// layer); `None` when larger.
    pub fn dense_matrix(&self, limit: usize) -> Option<Cow<'_, Array2<T>>> {
        let (rows, cols) = (self.out_dim(), self.in_dim());
        if rows.checked_mul(cols).is_none_or(|n| n > limit) {
            return None;
        }
        match self {
            Affine::Dense(d) => return Some(Cow::Borrowed(&d.weight)),
            Affine::Conv(c) => return Some(Cow::Owned(c.dense_matrix())),
            _ => {}
        }
        let mut m = Array2::from_elem((rows, cols), T::zero());
        for j in 0..rows {
            for (i, v) in self.row(j).entries() {
                m[[j, i]] = v.clone();
            }
        }
        Some(Cow::Owned(m))
    }

    /// `out = W a + b`, summed left to right in `T`'s arithmetic.
    pub fn apply_into(&self, a: &[T], out: &mut Vec<T>) {
        match self {
            Affine::Conv(c) => return c.apply_into(a, out),
            Affine::Blocks(b) => return b.apply_into(a, out),
            _ => {}
        }
        out.clear();
        for j in 0..self.out_dim() {
            out.push(self.row(j).affine_dot(a, self.bias(j)));
        }
    }

    fn parameters(&self) -> usize {
        self.stored_weights() + self.stored_biases()
    }

    fn map<U: Scalar>(&self, f: impl Fn(&T) -> U) -> Affine<U> {
        match self {
            Affine::Dense(d) => Affine::Dense(Dense {
                weight: d.weight.map(&f),
                bias: d.bias.map(&f),
            }),
            Affine::Sparse(s) => Affine::Sparse(Sparse {
                in_dim: s.in_dim,
                offsets: s.offsets.clone(),
                inputs: s.inputs.clone(),
                values: s.values.iter().map(&f).collect(),
                bias: s.bias.map(&f),
            }),
            Affine::Shared(s) => Affine::Shared(Shared {
                block: Dense {
                    weight: s.block.weight.map(&f),
                    bias: s.block.bias.map(&f),
                },
                copies: s.copies,
            }),
            Affine::Conv(c) => Affine::Conv(c.map(f)),
            Affine::Blocks(b) => Affine::Blocks(b.map(f)),
        }
    }
}

impl Affine<f64> {
    /// `W g` (or `|W| g` with `absolute`) for a matrix `g` with one row per input of the
    /// layer: a composed map one layer further.
    pub fn times(&self, g: ArrayView2<'_, f64>, absolute: bool) -> Array2<f64> {
        match self {
            Affine::Dense(d) if absolute => product(d.weight.mapv(f64::abs).view(), g),
            Affine::Dense(d) => product(d.weight.view(), g),
            Affine::Conv(c) => c.times(g, absolute),
            Affine::Blocks(b) => b.times(g, absolute),
            Affine::Sparse(_) | Affine::Shared(_) => {
                let mut out = Array2::zeros((self.out_dim(), g.ncols()));
                for (j, mut o) in out.rows_mut().into_iter().enumerate() {
                    for (i, &w) in self.row(j).entries() {
                        let w = if absolute { w.abs() } else { w };
                        o.scaled_add(w, &g.row(i));
                    }
                }
                out
            }
        }
    }

    /// `h Wᵀ` for points `h` given as rows: the layer's linear part applied to each point.
    pub fn apply_rows(&self, h: ArrayView2<'_, f64>) -> Array2<f64> {
        match self {
            Affine::Dense(d) => product(h, d.weight.t()),
            Affine::Conv(c) => c.apply_rows(h),
            Affine::Blocks(b) => b.apply_rows(h),
            // One product per copy: the block against the copy's slice of every point.
            Affine::Shared(s) => {
                let (rows, cols) = s.block.weight.dim();
                let mut out = Array2::zeros((h.nrows(), rows * s.copies));
                for p in 0..s.copies {
                    let slice = h.slice(ndarray::s![.., p * cols..(p + 1) * cols]);
                    let target = out.slice_mut(ndarray::s![.., p * rows..(p + 1) * rows]);
                    product_into(slice, s.block.weight.t(), target, false);
                }
                out
            }
            Affine::Sparse(s) => {
                let mut out = Array2::zeros((h.nrows(), s.rows()));
                for (point, mut o) in h.rows().into_iter().zip(out.rows_mut()) {
                    for (j, v) in o.iter_mut().enumerate() {
                        let row = s.row(j);
                        *v = row.entries().fold(0.0, |acc, (i, &w)| acc + w * point[i]);
                    }
                }
                out
            }
        }
    }

    /// `s W` for values `s` given as rows, one per output: `Wᵀ` applied to each row (what
    /// the rules pass back to a layer's inputs).
    pub fn transposed_rows(&self, s: ArrayView2<'_, f64>) -> Array2<f64> {
        match self {
            Affine::Dense(d) => product(s, d.weight.view()),
            Affine::Conv(c) => c.transposed_rows(s),
            Affine::Blocks(b) => b.transposed_rows(s),
            Affine::Shared(sh) => {
                let (rows, cols) = sh.block.weight.dim();
                let mut out = Array2::zeros((s.nrows(), cols * sh.copies));
                for p in 0..sh.copies {
                    let slice = s.slice(ndarray::s![.., p * rows..(p + 1) * rows]);
                    let target = out.slice_mut(ndarray::s![.., p * cols..(p + 1) * cols]);
                    product_into(slice, sh.block.weight.view(), target, false);
                }
                out
            }
            Affine::Sparse(sp) => {
                let mut out = Array2::zeros((s.nrows(), sp.in_dim));
                for (values, mut o) in s.rows().into_iter().zip(out.rows_mut()) {
                    for (j, &v) in values.iter().enumerate() {
                        if v != 0.0 {
                            for (i, &w) in sp.row(j).entries() {
                                o[i] += w * v;
                            }
                        }
                    }
                }
                out
            }
        }
    }

    /// The same map with every weight `w` it lists replaced by `f(w)` (an unlisted weight
    /// stays unlisted) and zero biases: the maps the rules multiply by (`W⁺`, `W²`, the
    /// connection pattern).
    pub fn map_weights(&self, f: impl Fn(f64) -> f64) -> Affine<f64> {
        let mapped = |w: &f64| f(*w);
        match self {
            Affine::Dense(d) => Affine::Dense(Dense {
                weight: d.weight.map(mapped),
                bias: Array1::zeros(d.bias.len()),
            }),
            Affine::Sparse(s) => Affine::Sparse(Sparse {
                in_dim: s.in_dim,
                offsets: s.offsets.clone(),
                inputs: s.inputs.clone(),
                values: s.values.iter().map(mapped).collect(),
                bias: Array1::zeros(s.bias.len()),
            }),
            Affine::Shared(s) => Affine::Shared(Shared {
                block: Dense {
                    weight: s.block.weight.map(mapped),
                    bias: Array1::zeros(s.block.bias.len()),
                },
                copies: s.copies,
            }),
            Affine::Conv(c) => Affine::Conv(c.map_kernel(f)),
            Affine::Blocks(b) => Affine::Blocks(b.map_weights(f)),
        }
    }
}

/// One DTD layer: `z_l = affine(h_{l-1})`, `h_l = act(z_l)` when `relu` is set (`act` the
/// layer's [`Activation`], ReLU unless the model says otherwise), and with
/// `max_pool: Some(w)` output `g` is the largest of `z_l`'s entries `g·w .. (g+1)·w` (a max-pool
/// window; the layer's affine map is then a gather of its input, one weight of 1 a row, so that
/// which entry wins is the layer's part of the activation pattern). The last `linear_tail`
/// outputs of a ReLU layer skip the ReLU: values carried past it unchanged, such as the input
/// of a residual connection.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer<T = f64> {
    /// The affine map `z_l = affine(h_{l-1})`.
    pub affine: Affine<T>,
    /// Whether an activation follows the affine map (on all outputs but the `linear_tail`).
    pub relu: bool,
    /// The activation applied when `relu` is set ([`Activation::Relu`] for a ReLU layer, and
    /// for a layer without activation).
    pub activation: Activation<T>,
    /// The window size `w` of a max-pool layer; `None` for every other layer.
    pub max_pool: Option<usize>,
    /// How many of the last outputs of a ReLU layer skip the ReLU (0: none).
    pub linear_tail: usize,
}

impl<T: Scalar> Layer<T> {
    /// An affine layer, with or without ReLU.
    pub fn new(affine: Affine<T>, relu: bool) -> Self {
        Self {
            affine,
            relu,
            activation: Activation::Relu,
            max_pool: None,
            linear_tail: 0,
        }
    }

    /// The activation other than ReLU that the layer applies, if any.
    pub fn other_activation(&self) -> Option<&Activation<T>> {
        Some(&self.activation).filter(|a| self.relu && !a.is_relu())
    }

    /// The number of leading outputs with an activation (all of them, unless some are
    /// carried).
    pub fn relu_count(&self) -> usize {
        if self.relu {
            self.affine.out_dim() - self.linear_tail
        } else {
            0
        }
    }

    /// The input that output `j` copies when it is an *identity neuron*: a value carried past
    /// the layer beside what the layer computes. That is an output without activation (one
    /// of the `linear_tail`, or any output of a layer without activation), never a max-pool
    /// layer's entry, whose row is one weight of exactly 1 and whose bias is exactly 0
    /// ([`Affine::copied_input`]), in a layer that is not made of such copies alone (a
    /// reshape, a replication or a pooling of windows of one is an operation of the network,
    /// and takes its rule). An identity is no neuron of the network it stands for (a value
    /// kept for a residual connection, a shortcut): every rule passes its relevance whole to
    /// that input, and it has no root. [`Layer::identities`] answers for every output at once.
    /// This reads the whole layer when output `j` is a copy in a layer without activation;
    /// [`Network::identity`] answers from what the network computed once.
    pub fn identity(&self, j: usize) -> Option<usize> {
        self.identity_given(j, || self.only_copies())
    }

    /// Whether the layer has no activation and every output of its affine map copies one
    /// input ([`Affine::copied_input`]): an operation of the network, not carried values.
    fn only_copies(&self) -> bool {
        self.max_pool.is_none()
            && self.relu_count() == 0
            && (0..self.affine.out_dim()).all(|k| self.affine.copied_input(k).is_some())
    }

    /// [`Layer::identity`] with [`Layer::only_copies`] given.
    fn identity_given(&self, j: usize, only_copies: impl FnOnce() -> bool) -> Option<usize> {
        if self.max_pool.is_some() || j < self.relu_count() {
            return None;
        }
        let i = self.affine.copied_input(j)?;
        (self.relu_count() > 0 || !only_copies()).then_some(i)
    }

    /// [`Layer::identity`] of every output of the affine map, in order; all `None`, without
    /// reading a row, for a layer whose outputs all have an activation.
    pub fn identities(&self) -> Vec<Option<usize>> {
        let n = self.affine.out_dim();
        let first = self.relu_count();
        if self.max_pool.is_some() || first == n {
            return vec![None; n];
        }
        let mut copies = self.affine.copied_inputs();
        copies[..first].iter_mut().for_each(|c| *c = None);
        if first == 0 && copies.iter().all(Option::is_some) {
            return vec![None; n];
        }
        copies
    }

    /// Whether some output is an identity neuron ([`Layer::identity`]).
    pub fn has_identities(&self) -> bool {
        self.identities().iter().any(Option::is_some)
    }

    /// The width of `h_l`: the affine map's outputs, one per window for a max-pool layer.
    pub fn out_dim(&self) -> usize {
        self.affine.out_dim() / self.max_pool.unwrap_or(1)
    }

    /// For a max-pool layer, the input that entry `j` of `z_l` copies.
    pub fn gathered(&self, j: usize) -> usize {
        self.affine.row(j).position(0)
    }
}

/// `h = max over windows of z`: the largest entry of each window, and the index (into `z`) of
/// the first entry that reaches it.
pub fn max_pool<T: Scalar>(z: &[T], window: usize) -> (Vec<T>, Vec<u32>) {
    let groups = z.len() / window;
    let (mut h, mut selected) = (Vec::with_capacity(groups), Vec::with_capacity(groups));
    for g in 0..groups {
        let mut best = g * window;
        for o in best + 1..(g + 1) * window {
            if z[o] > z[best] {
                best = o;
            }
        }
        h.push(z[best].clone());
        selected.push(best as u32);
    }
    (h, selected)
}

/// A validated network. Layer `l` (1-based in reports) takes `h_{l-1}`; `h_0` is the input.
#[derive(Clone, Debug, PartialEq)]
pub struct Network<T = f64> {
    layers: Vec<Layer<T>>,
    /// Per layer, whether it is made of copies alone ([`Layer::identity`]), read once.
    only_copies: Vec<bool>,
    /// What each layer was in the model file (one per layer; inferred when not recorded).
    kinds: Vec<LayerKind>,
    /// The shape of one input sample as the model file declares it (`[C, H, W]` for an
    /// image), when it declares one.
    input_shape: Option<Vec<usize>>,
}

impl Network<f64> {
    /// Checks that consecutive shapes agree, that every weight is finite, and that the model
    /// is within [`MAX_PARAMETERS`].
    pub fn new(layers: Vec<Layer<f64>>) -> Result<Self> {
        if layers.is_empty() {
            return Err(invalid("the network has no layers"));
        }
        let mut parameters = 0usize;
        for (i, layer) in layers.iter().enumerate() {
            let number = i + 1;
            if i > 0 {
                let prev = layers[i - 1].out_dim();
                if layer.affine.in_dim() != prev {
                    return Err(invalid(format!(
                        "layer {number} expects {} inputs but layer {i} has {prev} outputs",
                        layer.affine.in_dim()
                    )));
                }
            }
            if let Some(window) = layer.max_pool {
                check_max_pool(layer, window)
                    .map_err(|e| invalid(format!("layer {number}: {e}")))?;
            }
            if layer.linear_tail > 0 && (!layer.relu || layer.linear_tail > layer.affine.out_dim())
            {
                return Err(invalid(format!(
                    "layer {number}: {} outputs skipping the ReLU, of a layer with {} outputs{}",
                    layer.linear_tail,
                    layer.affine.out_dim(),
                    if layer.relu { "" } else { " and no ReLU" }
                )));
            }
            if layer.relu {
                layer
                    .activation
                    .check(layer.relu_count())
                    .map_err(|e| invalid(format!("layer {number}: {e}")))?;
            } else if !layer.activation.is_relu() {
                return Err(invalid(format!(
                    "layer {number}: a {} without its layer's activation flag",
                    layer.activation.name()
                )));
            }
            parameters = parameters.saturating_add(layer.affine.parameters());
            let affine = &layer.affine;
            let operator = match affine {
                Affine::Conv(c) => Some(c.first_non_finite()),
                Affine::Blocks(b) => Some(b.first_non_finite()),
                _ => None,
            };
            if let Some(first) = operator {
                if let Some((j, i, v)) = first {
                    return Err(invalid(match i {
                        Some(i) => format!(
                            "layer {number}: weight [{j}, {i}] is {v}, weights must be finite"
                        ),
                        None => {
                            format!("layer {number}: bias [{j}] is {v}, biases must be finite")
                        }
                    }));
                }
                continue;
            }
            for j in 0..affine.out_dim() {
                if let Some((i, v)) = affine.row(j).entries().find(|(_, v)| !v.is_finite()) {
                    return Err(invalid(format!(
                        "layer {number}: weight [{j}, {i}] is {v}, weights must be finite"
                    )));
                }
                let b = affine.bias(j);
                if !b.is_finite() {
                    return Err(invalid(format!(
                        "layer {number}: bias [{j}] is {b}, biases must be finite"
                    )));
                }
            }
        }
        if parameters > MAX_PARAMETERS {
            return Err(invalid(format!(
                "the network has {parameters} parameters, more than the limit of {MAX_PARAMETERS}"
            )));
        }
        let kinds = layers.iter().map(LayerKind::infer).collect();
        let only_copies = layers.iter().map(Layer::only_copies).collect();
        Ok(Self {
            layers,
            only_copies,
            kinds,
            input_shape: None,
        })
    }

    /// The same network with the kind of each layer recorded (one per layer).
    pub fn with_kinds(mut self, kinds: Vec<LayerKind>) -> Result<Self> {
        if kinds.len() != self.layers.len() {
            return Err(invalid(format!(
                "{} layer kinds for {} layers",
                kinds.len(),
                self.layers.len()
            )));
        }
        self.kinds = kinds;
        Ok(self)
    }

    /// The same network with the declared shape of one input sample; it must hold exactly
    /// the network's input width.
    pub fn with_input_shape(mut self, shape: Vec<usize>) -> Result<Self> {
        if shape.iter().product::<usize>() != self.input_dim() {
            return Err(invalid(format!(
                "an input of shape {shape:?} for a network of {} inputs",
                self.input_dim()
            )));
        }
        self.input_shape = Some(shape);
        Ok(self)
    }

    /// The same network in exact rational arithmetic.
    pub fn to_exact(&self) -> Network<Rational> {
        self.to_scalar()
    }

    /// The same network with every weight and bias the exact value of its f64 in `T`.
    pub fn to_scalar<T: Scalar>(&self) -> Network<T> {
        Network {
            layers: self
                .layers
                .iter()
                .map(|l| Layer {
                    affine: l.affine.map(|&v| T::from_f64(v)),
                    relu: l.relu,
                    activation: l.activation.map(|&v| T::from_f64(v)),
                    max_pool: l.max_pool,
                    linear_tail: l.linear_tail,
                })
                .collect(),
            only_copies: self.only_copies.clone(),
            kinds: self.kinds.clone(),
            input_shape: self.input_shape.clone(),
        }
    }

    /// SHA-256 of the architecture and the bit patterns of every parameter: names the model in
    /// reports and certificates.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for layer in &self.layers {
            match &layer.affine {
                Affine::Dense(d) => {
                    h.update(b"dense");
                    h.update((d.weight.nrows() as u64).to_le_bytes());
                    h.update((d.weight.ncols() as u64).to_le_bytes());
                    for v in d.weight.iter().chain(d.bias.iter()) {
                        h.update(v.to_bits().to_le_bytes());
                    }
                }
                Affine::Sparse(s) => {
                    h.update(b"sparse");
                    h.update((s.rows() as u64).to_le_bytes());
                    h.update((s.in_dim as u64).to_le_bytes());
                    for &o in &s.offsets {
                        h.update((o as u64).to_le_bytes());
                    }
                    for &i in &s.inputs {
                        h.update(i.to_le_bytes());
                    }
                    for v in s.values.iter().chain(s.bias.iter()) {
                        h.update(v.to_bits().to_le_bytes());
                    }
                }
                Affine::Conv(c) => {
                    h.update(b"conv");
                    conv_fingerprint(&mut h, c);
                }
                Affine::Blocks(b) => {
                    h.update(b"blocks");
                    h.update((b.in_dim() as u64).to_le_bytes());
                    h.update((b.out_dim() as u64).to_le_bytes());
                    for p in b.parts() {
                        h.update((p.input as u64).to_le_bytes());
                        h.update((p.output as u64).to_le_bytes());
                        match &p.map {
                            PartMap::Conv(c) => {
                                h.update(b"conv");
                                conv_fingerprint(&mut h, c);
                            }
                            PartMap::Copy(n) => {
                                h.update(b"copy");
                                h.update((*n as u64).to_le_bytes());
                            }
                        }
                    }
                    for v in b.biases() {
                        h.update(v.to_bits().to_le_bytes());
                    }
                }
                Affine::Shared(s) => {
                    h.update(b"shared");
                    h.update((s.copies as u64).to_le_bytes());
                    let b = &s.block;
                    h.update((b.weight.nrows() as u64).to_le_bytes());
                    h.update((b.weight.ncols() as u64).to_le_bytes());
                    for v in b.weight.iter().chain(b.bias.iter()) {
                        h.update(v.to_bits().to_le_bytes());
                    }
                }
            }
            h.update([u8::from(layer.relu)]);
            layer.activation.fingerprint(&mut h);
            if let Some(window) = layer.max_pool {
                h.update(b"max-pool");
                h.update((window as u64).to_le_bytes());
            }
            if layer.linear_tail > 0 {
                h.update(b"linear-tail");
                h.update((layer.linear_tail as u64).to_le_bytes());
            }
        }
        format!("sha256:{:x}", h.finalize())
    }
}

/// A convolution's shape, kernel and biases, into the fingerprint.
fn conv_fingerprint(h: &mut Sha256, c: &Conv) {
    let shape = c.shape();
    let sizes = shape.input.iter().chain([&shape.channels, &shape.groups]);
    let window = [shape.kernel, shape.strides, shape.dilations];
    for &v in sizes.chain(window.iter().flatten()).chain(&shape.pads) {
        h.update((v as u64).to_le_bytes());
    }
    for v in c.kernel().iter().chain(c.channel_bias()) {
        h.update(v.to_bits().to_le_bytes());
    }
}

impl<T: Scalar> Network<T> {
    /// The layers, first to last (index `l - 1` holds layer `l`).
    pub fn layers(&self) -> &[Layer<T>] {
        &self.layers
    }

    /// [`Layer::identity`] of output `j` of 0-based layer `index`, without reading the
    /// layer's other outputs.
    pub fn identity(&self, index: usize, j: usize) -> Option<usize> {
        self.layers[index].identity_given(j, || self.only_copies[index])
    }

    /// What each layer was in the model file, first to last.
    pub fn kinds(&self) -> &[LayerKind] {
        &self.kinds
    }

    /// The shape of one input sample as the model file declares it, if it does.
    pub fn input_shape(&self) -> Option<&[usize]> {
        self.input_shape.as_deref()
    }

    /// The width of the network input `h_0`.
    pub fn input_dim(&self) -> usize {
        self.layers[0].affine.in_dim()
    }

    /// The width of the network output `h_L`.
    pub fn output_dim(&self) -> usize {
        self.layers[self.layers.len() - 1].out_dim()
    }

    /// Widths `[input, layer 1, …, layer L]`.
    pub fn widths(&self) -> Vec<usize> {
        std::iter::once(self.input_dim())
            .chain(self.layers.iter().map(Layer::out_dim))
            .collect()
    }

    /// Whether some layer is a max-pool layer.
    pub fn has_max_pool(&self) -> bool {
        self.layers.iter().any(|l| l.max_pool.is_some())
    }

    /// Whether `h_l` (0-based layer `index`) is non-negative for every input: the layer has a
    /// ReLU on every output, or it max-pools a non-negative input.
    pub fn output_nonnegative(&self, index: usize) -> bool {
        let layer = &self.layers[index];
        (layer.relu && layer.linear_tail == 0 && layer.activation.nonnegative())
            || (layer.max_pool.is_some() && index > 0 && self.output_nonnegative(index - 1))
    }

    /// A short description such as `10-10-10-2 (ReLU after every layer)`.
    pub fn describe(&self) -> String {
        let widths: Vec<String> = self.widths().iter().map(|w| w.to_string()).collect();
        let last_relu = self.layers.last().is_some_and(|l| l.relu);
        let others: Vec<String> = self
            .layers
            .iter()
            .enumerate()
            .filter_map(|(i, l)| {
                Some(format!(
                    "{} at layer {}",
                    l.other_activation()?.name(),
                    i + 1
                ))
            })
            .collect();
        format!(
            "{} ({}{}{})",
            widths.join("-"),
            if last_relu {
                "ReLU after every layer"
            } else {
                "no ReLU after the last layer"
            },
            if others.is_empty() { "" } else { "; " },
            others.join(", ")
        )
    }

    /// The first layer (0-based) whose activation is not ReLU, with that activation.
    pub fn first_other_activation(&self) -> Option<(usize, &Activation<T>)> {
        self.layers
            .iter()
            .enumerate()
            .find_map(|(i, l)| Some((i, l.other_activation()?)))
    }

    /// Refuses a network with an activation other than ReLU, for the parts of the tool that
    /// read only ReLU networks (`what` names the part): one error naming the layer and the
    /// activation.
    pub fn require_relu(&self, what: &str) -> Result<()> {
        match self.first_other_activation() {
            None => Ok(()),
            Some((i, act)) => Err(invalid(format!(
                "layer {} applies {}: {what} reads ReLU networks only (audit, explain, region, \
                 the linear programs and the libtorch backend read Clip, LeakyRelu and PRelu too)",
                i + 1,
                act.name()
            ))),
        }
    }
}

/// A max-pool layer is a gather: each row one weight of exactly 1 and no bias, no ReLU, and
/// whole windows.
fn check_max_pool(layer: &Layer, window: usize) -> std::result::Result<(), String> {
    let rows = layer.affine.out_dim();
    if window == 0 || rows % window != 0 {
        return Err(format!(
            "a max-pool window of {window} does not divide the layer's {rows} entries"
        ));
    }
    if layer.relu {
        return Err("a max-pool layer has no ReLU of its own".into());
    }
    if !matches!(layer.affine, Affine::Sparse(_)) {
        return Err("a max-pool layer's gather is a sparse layer".into());
    }
    for j in 0..rows {
        let row = layer.affine.row(j);
        let entries: Vec<(usize, &f64)> = row.entries().collect();
        if entries.len() != 1 || *entries[0].1 != 1.0 || *layer.affine.bias(j) != 0.0 {
            return Err(format!(
                "row {j} of a max-pool layer is not a copy of one input (one weight of 1, bias 0)"
            ));
        }
    }
    Ok(())
}

/// Convenience constructor for a dense layer from row-major data.
pub fn dense_layer(
    rows: usize,
    cols: usize,
    weight: Vec<f64>,
    bias: Vec<f64>,
    relu: bool,
) -> Result<Layer> {
    let weight = Array2::from_shape_vec((rows, cols), weight)
        .map_err(|e| invalid(format!("weight shape {rows}x{cols}: {e}")))?;
    Ok(Layer::new(
        Affine::Dense(Dense::new(weight, Array1::from(bias))?),
        relu,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3-output, 5-input sparse layer and its dense twin.
    fn pair() -> (Affine, Affine) {
        let rows = vec![
            vec![(0, 1.5), (3, -2.0)],
            vec![],
            vec![(1, 0.25), (2, 0.0), (4, -0.5)],
        ];
        let bias = Array1::from(vec![0.5, -1.0, 2.0]);
        let sparse = Affine::Sparse(Sparse::from_rows(5, rows.clone(), bias.clone()).unwrap());
        let mut w = Array2::zeros((3, 5));
        for (j, row) in rows.iter().enumerate() {
            for &(i, v) in row {
                w[[j, i as usize]] = v;
            }
        }
        (sparse, Affine::Dense(Dense::new(w, bias).unwrap()))
    }

    #[test]
    fn sparse_rows_compute_what_their_dense_matrix_computes() {
        let (sparse, dense) = pair();
        assert_eq!(
            *sparse.dense_matrix(usize::MAX).unwrap(),
            *dense.dense_matrix(usize::MAX).unwrap()
        );
        assert!(sparse.dense_matrix(14).is_none());
        let x = [1.0, -2.0, 3.5, 0.25, 8.0];
        let (mut a, mut b) = (Vec::new(), Vec::new());
        sparse.apply_into(&x, &mut a);
        dense.apply_into(&x, &mut b);
        assert_eq!(a, b);
        let points = ndarray::arr2(&[x, [0.5, 0.0, -1.0, 2.0, 1.0]]);
        let with_bias = |m: Array2<f64>| m + &Array1::from(vec![0.5, -1.0, 2.0]);
        assert_eq!(
            with_bias(sparse.apply_rows(points.view())).row(0).to_vec(),
            a
        );
        assert_eq!(
            sparse.apply_rows(points.view()),
            dense.apply_rows(points.view())
        );
        let g = ndarray::Array2::from_shape_fn((5, 4), |(i, j)| i as f64 - 1.5 * j as f64);
        for absolute in [false, true] {
            assert_eq!(
                sparse.times(g.view(), absolute),
                dense.times(g.view(), absolute)
            );
        }
        for j in 0..3 {
            let (s, d) = (sparse.row(j), dense.row(j));
            assert_eq!(s.dense(), d.dense());
            assert_eq!(s.dot(&x), d.dot(&x));
        }
        // Only listed inputs are connected, explicit zeros included.
        assert_eq!(
            (0..3)
                .map(|j| sparse.row(j).connected())
                .collect::<Vec<_>>(),
            vec![2, 0, 3]
        );
        assert_eq!(sparse.stored_weights(), 5);
    }

    #[test]
    fn sparse_layers_are_checked_when_built() {
        let bias = || Array1::from(vec![0.0, 0.0]);
        for (rows, words) in [
            (vec![vec![(1, 1.0), (0, 1.0)], vec![]], "out of order"),
            (vec![vec![(2, 1.0), (2, 1.0)], vec![]], "out of order"),
            (vec![vec![(3, 1.0)], vec![]], "out of range"),
        ] {
            let e = Sparse::from_rows(3, rows, bias()).unwrap_err().to_string();
            assert!(e.contains(words), "{e}");
        }
        let e = Sparse::from_rows(3, vec![vec![(0, 1.0)]], bias())
            .unwrap_err()
            .to_string();
        assert!(e.contains("bias has 2 entries"), "{e}");
        let e = Sparse::<f64>::from_rows(0, vec![vec![], vec![]], bias())
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty"), "{e}");
        // Non-finite weights are refused by the network, naming the place.
        let s = Sparse::from_rows(3, vec![vec![(2, f64::NAN)], vec![]], bias()).unwrap();
        let e = Network::new(vec![Layer {
            affine: Affine::Sparse(s),
            relu: true,
            activation: Activation::Relu,
            max_pool: None,
            linear_tail: 0,
        }])
        .unwrap_err()
        .to_string();
        assert!(e.contains("weight [0, 2] is NaN"), "{e}");
    }

    #[test]
    fn max_pool_layers_are_whole_windows_of_copies() {
        let gather = |rows: Vec<Vec<(u32, f64)>>, bias: f64| {
            let n = rows.len();
            Affine::Sparse(Sparse::from_rows(3, rows, Array1::from_elem(n, bias)).unwrap())
        };
        let copies = || {
            vec![
                vec![(0, 1.0)],
                vec![(2, 1.0)],
                vec![(1, 1.0)],
                vec![(1, 1.0)],
            ]
        };
        let layer = |affine, relu, window| Layer {
            affine,
            relu,
            activation: Activation::Relu,
            max_pool: Some(window),
            linear_tail: 0,
        };
        // A gather built from its inputs is the same map as its rows.
        let rows = Sparse::from_rows(3, copies(), Array1::zeros(4)).unwrap();
        assert_eq!(Sparse::gather(3, vec![0, 2, 1, 1]).unwrap(), rows);
        for (in_dim, inputs, words) in [
            (3, vec![0, 3], "row 1: input 3 is out of range"),
            (3, vec![], "a gather of 0 outputs"),
            (0, vec![0], "from 0 inputs"),
        ] {
            let e = Sparse::<f64>::gather(in_dim, inputs)
                .unwrap_err()
                .to_string();
            assert!(e.contains(words), "{e}");
        }
        let net = Network::new(vec![layer(gather(copies(), 0.0), false, 2)]).unwrap();
        assert_eq!(net.widths(), vec![3, 2]);
        assert_eq!(
            crate::model::forward::output(&net, &[1.0, -2.0, 0.5]),
            vec![1.0, -2.0]
        );
        let mut scaled = copies();
        scaled[3] = vec![(1, 2.0)];
        let (_, dense) = pair();
        for (l, words) in [
            (layer(gather(copies(), 0.0), false, 3), "does not divide"),
            (layer(gather(copies(), 0.0), true, 2), "no ReLU"),
            (layer(gather(copies(), 0.5), false, 2), "row 0"),
            (layer(gather(scaled, 0.0), false, 2), "row 3"),
            (layer(dense, false, 1), "sparse layer"),
        ] {
            let e = Network::new(vec![l]).unwrap_err().to_string();
            assert!(e.contains("layer 1") && e.contains(words), "{e}");
        }
    }

    #[test]
    fn the_fingerprint_tells_sparse_from_dense_and_sees_every_index() {
        let (sparse, dense) = pair();
        let net = |a: Affine| {
            Network::new(vec![Layer {
                affine: a,
                relu: false,
                activation: Activation::Relu,
                max_pool: None,
                linear_tail: 0,
            }])
            .unwrap()
            .fingerprint()
        };
        let moved = Affine::Sparse(
            Sparse::from_rows(
                5,
                vec![
                    vec![(0, 1.5), (4, -2.0)],
                    vec![],
                    vec![(1, 0.25), (2, 0.0), (4, -0.5)],
                ],
                Array1::from(vec![0.5, -1.0, 2.0]),
            )
            .unwrap(),
        );
        let (a, b, c) = (net(sparse), net(dense), net(moved));
        assert!(a != b && a != c && b != c);
    }
}
