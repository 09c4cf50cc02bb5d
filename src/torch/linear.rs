//! A layer's weights `W` (without bias) on the device, in the layout that suits its affine map:
//! a dense matrix, a shared block applied to every copy of its input, sparse rows (short ones
//! padded and gathered, longer ones a list of `(row, column, weight)`), a convolution kept as
//! its kernel, or a map of parts (kernel
//! convolutions and copies, each reading an input range and adding into an output range).
//! Every rule is a few products with `W` or with a map of it (`W ⊙ 1[W >= 0]`, `W²`, the
//! connection pattern), forwards (`a ↦ a Wᵀ`) and backwards (`t ↦ t W`); a convolution's are
//! `conv2d` and `conv_transpose2d`, so a 224×224 network holds its kernels, not its rows.
//!
//! At the interface a batch is `batch × features` in every layout; a convolution views its
//! rows as `batch × channels × height × width`, the channel-major order of
//! [`crate::model::conv`].

use tch::{Device, Kind, Tensor};

use crate::model::blocks::{parts_inside, Blocks, PartMap};
use crate::model::conv::Conv;
use crate::model::ir::Affine;

/// A layer's weights `W` (without bias) in one of five layouts, chosen by the kind of its
/// [`Affine`] map.
pub enum Linear {
    /// `out × in`.
    Dense(Tensor),
    /// One `rows × cols` block applied to each of `copies` consecutive slices of the input.
    Shared {
        /// The block, `rows × cols`.
        block: Tensor,
        /// The number of slices it is applied to.
        copies: i64,
    },
    /// Entries `W[r, c]` listed row by row: short rows padded to the longest and gathered,
    /// longer ones as COO matrices of `W` and its transpose.
    Sparse(Box<SparseLinear>),
    /// A 2-D convolution kept as its kernel.
    Conv(Box<ConvLinear>),
    /// Parts placed in the input and the output.
    Blocks(Box<BlocksLinear>),
}

/// A sparse layer's weights: rows of at most [`PADDED_WIDTH`] entries as a padded gather,
/// longer ones as COO matrices.
pub struct SparseLinear {
    out: i64,
    inp: i64,
    layout: SparseLayout,
}

/// Rows with at most this many entries are kept padded to the longest (a max-pool's gather,
/// a residual sum, an average over a few inputs); longer ones as COO matrices.
const PADDED_WIDTH: usize = 16;

enum SparseLayout {
    /// Every row's entries padded to the longest row's `width`: the inputs each slot reads
    /// (`out · width`, row by row) and their weights (`out × width`). With `padded`, some row
    /// is shorter: its free slots read an extra input column that is always 0 (and the
    /// transpose adds into it, then cuts it off), so whatever a map makes of their weight,
    /// they add nothing.
    Gather {
        inputs: Tensor,
        weights: Tensor,
        width: i64,
        padded: bool,
    },
    /// The listed entries in row order (`vals`) at `at` (`2 × nnz`: rows, then columns), and
    /// the transpose's entries at `t_at` in its own row order, whose values are `vals[perm]`;
    /// both as coalesced COO matrices (`out × in` and `in × out`).
    Coo {
        at: Tensor,
        t_at: Tensor,
        perm: Tensor,
        vals: Tensor,
        matrix: Tensor,
        transposed: Tensor,
    },
}

impl SparseLinear {
    /// `affine`'s rows, gathered when every row has at most `gather_width` entries.
    fn new(affine: &Affine, kind: Kind, device: Device, gather_width: usize) -> Self {
        let (out, inp) = (affine.out_dim(), affine.in_dim());
        let widest = affine.max_connected();
        let layout = if widest <= gather_width {
            Self::gather(affine, widest.max(1), kind, device)
        } else {
            Self::coo(affine, kind, device)
        };
        SparseLinear {
            out: out as i64,
            inp: inp as i64,
            layout,
        }
    }

    fn gather(affine: &Affine, width: usize, kind: Kind, device: Device) -> SparseLayout {
        let (out, inp) = (affine.out_dim(), affine.in_dim());
        let mut inputs: Vec<i64> = Vec::with_capacity(out * width);
        let mut weights: Vec<f64> = Vec::with_capacity(out * width);
        let mut padded = false;
        for j in 0..out {
            let row = affine.row(j);
            for (i, &w) in row.entries() {
                inputs.push(i as i64);
                weights.push(w);
            }
            let free = width - row.connected();
            padded |= free > 0;
            inputs.extend(std::iter::repeat_n(inp as i64, free));
            weights.extend(std::iter::repeat_n(0.0, free));
        }
        SparseLayout::Gather {
            inputs: Tensor::from_slice(&inputs).to_device(device),
            weights: Tensor::from_slice(&weights)
                .view([out as i64, width as i64])
                .to_kind(kind)
                .to_device(device),
            width: width as i64,
            padded,
        }
    }

    fn coo(affine: &Affine, kind: Kind, device: Device) -> SparseLayout {
        let out = affine.out_dim();
        let (mut rows, mut cols, mut vals) = (Vec::new(), Vec::new(), Vec::new());
        let mut entries: Vec<(usize, usize, usize)> = Vec::new();
        for j in 0..out {
            for (i, &w) in affine.row(j).entries() {
                entries.push((i, j, rows.len()));
                rows.push(j as i64);
                cols.push(i as i64);
                vals.push(w);
            }
        }
        // The transpose: entries by column, then row.
        entries.sort_unstable();
        let t_rows: Vec<i64> = entries.iter().map(|&(i, _, _)| i as i64).collect();
        let t_cols: Vec<i64> = entries.iter().map(|&(_, j, _)| j as i64).collect();
        let perm: Vec<i64> = entries.iter().map(|&(_, _, e)| e as i64).collect();
        let index = |v: &[i64]| Tensor::from_slice(v).to_device(device);
        let pair = |a: &[i64], b: &[i64]| Tensor::stack(&[index(a), index(b)], 0);
        let vals = Tensor::from_slice(&vals).to_kind(kind).to_device(device);
        Self::coo_with_values(
            pair(&rows, &cols),
            pair(&t_rows, &t_cols),
            index(&perm),
            vals,
            [out as i64, affine.in_dim() as i64],
        )
    }

    /// The COO layout of the entries at `at` (transpose at `t_at`, in the order `perm`) with
    /// the values `vals` (in row order).
    fn coo_with_values(
        at: Tensor,
        t_at: Tensor,
        perm: Tensor,
        vals: Tensor,
        [out, inp]: [i64; 2],
    ) -> SparseLayout {
        let (kind, device) = (vals.kind(), vals.device());
        let coo = |at: &Tensor, values: &Tensor, size: [i64; 2]| {
            Tensor::sparse_coo_tensor_indices_size(at, values, size, (kind, device), true)
        };
        let matrix = coo(&at, &vals, [out, inp]);
        let transposed = coo(&t_at, &vals.index_select(0, &perm), [inp, out]);
        SparseLayout::Coo {
            at,
            t_at,
            perm,
            vals,
            matrix,
            transposed,
        }
    }

    /// The same structure with every listed weight `w` replaced by `f(w)`.
    fn map(&self, f: &impl Fn(&Tensor) -> Tensor) -> Self {
        let layout = match &self.layout {
            SparseLayout::Gather {
                inputs,
                weights,
                width,
                padded,
            } => SparseLayout::Gather {
                inputs: inputs.shallow_clone(),
                weights: f(weights),
                width: *width,
                padded: *padded,
            },
            SparseLayout::Coo {
                at,
                t_at,
                perm,
                vals,
                ..
            } => Self::coo_with_values(
                at.shallow_clone(),
                t_at.shallow_clone(),
                perm.shallow_clone(),
                f(vals),
                [self.out, self.inp],
            ),
        };
        SparseLinear {
            out: self.out,
            inp: self.inp,
            layout,
        }
    }

    fn kind(&self) -> Kind {
        match &self.layout {
            SparseLayout::Gather { weights, .. } => weights.kind(),
            SparseLayout::Coo { vals, .. } => vals.kind(),
        }
    }

    /// `a Wᵀ` for a batch `a` (`batch × in`).
    fn forward(&self, a: &Tensor) -> Tensor {
        let batch = a.size()[0];
        match &self.layout {
            SparseLayout::Gather {
                inputs,
                weights,
                width,
                padded,
            } => {
                let source = match padded {
                    true => Tensor::cat(&[a.shallow_clone(), a.zeros_like().narrow(1, 0, 1)], 1),
                    false => a.shallow_clone(),
                };
                let taken = source
                    .index_select(1, inputs)
                    .view([batch, self.out, *width]);
                match width {
                    1 => (taken * weights).view([batch, self.out]),
                    _ => (taken * weights).sum_dim_intlist(&[2][..], false, None),
                }
            }
            // (W aᵀ)ᵀ: sparse times dense.
            SparseLayout::Coo { matrix, .. } => matrix.mm(&a.tr()).tr(),
        }
    }

    /// `t W` for a batch `t` (`batch × out`).
    fn backward(&self, t: &Tensor) -> Tensor {
        let batch = t.size()[0];
        match &self.layout {
            SparseLayout::Gather {
                inputs,
                weights,
                width,
                padded,
            } => {
                let spread = (t.unsqueeze(2) * weights).view([batch, self.out * width]);
                let columns = self.inp + i64::from(*padded);
                let g = Tensor::zeros([batch, columns], (t.kind(), t.device()))
                    .index_add(1, inputs, &spread);
                match padded {
                    true => g.narrow(1, 0, self.inp),
                    false => g,
                }
            }
            SparseLayout::Coo { transposed, .. } => transposed.mm(&t.tr()).tr(),
        }
    }

    /// Rows `j` of `W` as a dense `rows × in` matrix.
    pub(crate) fn rows(&self, j: &Tensor) -> Tensor {
        match &self.layout {
            SparseLayout::Gather {
                inputs,
                weights,
                width,
                ..
            } => {
                let at = inputs.view([self.out, *width]).index_select(0, j);
                let values = weights.index_select(0, j);
                let n = at.size()[0];
                Tensor::zeros([n, self.inp + 1], (values.kind(), values.device()))
                    .scatter_add(1, &at, &values)
                    .narrow(1, 0, self.inp)
            }
            SparseLayout::Coo { matrix, .. } => matrix.index_select(0, j).to_dense(None, false),
        }
    }
}

/// A convolution's weights as its kernel, `channels × input channels / groups × height ×
/// width`, with what `conv2d` and `conv_transpose2d` need to apply it and its transpose.
pub struct ConvLinear {
    kernel: Tensor,
    /// The input's channels, height and width.
    input: [i64; 3],
    /// The output's channels, height and width.
    output: [i64; 3],
    strides: [i64; 2],
    dilations: [i64; 2],
    groups: i64,
    /// The padding both sides of an axis share (vertical, horizontal), which the convolution
    /// applies itself.
    padding: [i64; 2],
    /// The rest of the pads (left, right, top, bottom: `constant_pad_nd`'s order), written
    /// out with zeros before the convolution and cut off after its transpose.
    extra: [i64; 4],
    /// The padded input's rows and columns beyond the last window's reach (fewer than a
    /// stride): the transpose adds them back so that it yields the whole padded input.
    output_padding: [i64; 2],
}

impl ConvLinear {
    fn new(conv: &Conv, kind: Kind, device: Device) -> Self {
        let shape = conv.shape();
        let wide = |v: usize| v as i64;
        let [c_in, h, w] = shape.input.map(wide);
        let [c_out, oh, ow] = conv.output().map(wide);
        let [kh, kw] = shape.kernel.map(wide);
        let [top, left, bottom, right] = shape.pads.map(wide);
        let (strides, dilations) = (shape.strides.map(wide), shape.dilations.map(wide));
        let groups = wide(shape.groups);
        let padding = [top.min(bottom), left.min(right)];
        let extra = [
            left - padding[1],
            right - padding[1],
            top - padding[0],
            bottom - padding[0],
        ];
        // The padded size less what the windows reach: (out − 1)·stride + (k − 1)·dilation + 1.
        let beyond = |size: i64, pads: i64, k: i64, axis: usize, out: i64| {
            size + pads - ((out - 1) * strides[axis] + (k - 1) * dilations[axis] + 1)
        };
        let output_padding = [
            beyond(h, top + bottom, kh, 0, oh),
            beyond(w, left + right, kw, 1, ow),
        ];
        let kernel = Tensor::from_slice(conv.kernel())
            .view([c_out, c_in / groups, kh, kw])
            .to_kind(kind)
            .to_device(device);
        ConvLinear {
            kernel,
            input: [c_in, h, w],
            output: [c_out, oh, ow],
            strides,
            dilations,
            groups,
            padding,
            extra,
            output_padding,
        }
    }

    fn in_dim(&self) -> i64 {
        self.input.iter().product()
    }

    fn out_dim(&self) -> i64 {
        self.output.iter().product()
    }

    /// The same convolution with the kernel `f(kernel)`.
    fn map(&self, f: &impl Fn(&Tensor) -> Tensor) -> Self {
        ConvLinear {
            kernel: f(&self.kernel),
            ..*self
        }
    }

    /// `a Wᵀ` for a batch `a` (`batch × in`).
    fn forward(&self, a: &Tensor) -> Tensor {
        let batch = a.size()[0];
        let [c, h, w] = self.input;
        let mut x = a.reshape([batch, c, h, w]);
        if self.extra.iter().any(|&p| p > 0) {
            x = x.constant_pad_nd(self.extra);
        }
        x.conv2d::<Tensor>(
            &self.kernel,
            None,
            self.strides,
            self.padding,
            self.dilations,
            self.groups,
        )
        .reshape([batch, -1])
    }

    /// `t W` for a batch `t` (`batch × out`): the transposed convolution, which spreads each
    /// output over its window, in-bounds and padding positions alike; the padding's share is
    /// cut off.
    fn backward(&self, t: &Tensor) -> Tensor {
        let batch = t.size()[0];
        let [c, h, w] = self.input;
        let [oc, oh, ow] = self.output;
        let [left, _, top, _] = self.extra;
        t.reshape([batch, oc, oh, ow])
            .conv_transpose2d::<Tensor>(
                &self.kernel,
                None,
                self.strides,
                self.padding,
                self.output_padding,
                self.groups,
                self.dilations,
            )
            .narrow(2, top, h)
            .narrow(3, left, w)
            .reshape([batch, c * h * w])
    }
}

/// A map of parts' weights: each part's convolution or copy, placed.
pub struct BlocksLinear {
    inp: i64,
    out: i64,
    parts: Vec<PartLinear>,
    /// Where the parts' output ranges tile the outputs (no gap, no overlap): the parts in
    /// output order, so that the product is their outputs side by side.
    tiling: Option<Vec<usize>>,
}

/// One part: its map reads inputs `input ..` and adds into outputs `output ..`.
struct PartLinear {
    input: i64,
    output: i64,
    map: PartLayout,
}

enum PartLayout {
    Conv(ConvLinear),
    /// `n` inputs copied with the weight `weight` (a one-element tensor: 1, or what a map of
    /// the weights made of 1).
    Copy {
        n: i64,
        weight: Tensor,
        /// Whether `weight` is the copy's own 1 (no map applied): the copied values are then
        /// the inputs themselves.
        unit: bool,
    },
}

impl PartLayout {
    fn in_dim(&self) -> i64 {
        match self {
            PartLayout::Conv(c) => c.in_dim(),
            PartLayout::Copy { n, .. } => *n,
        }
    }

    fn out_dim(&self) -> i64 {
        match self {
            PartLayout::Conv(c) => c.out_dim(),
            PartLayout::Copy { n, .. } => *n,
        }
    }

    /// The same part with each weight tensor replaced by `f` of it; a copy stays marked as
    /// its own 1 only with `keeps_unit` (where `f` hands its argument back).
    fn mapped(&self, f: &impl Fn(&Tensor) -> Tensor, keeps_unit: bool) -> Self {
        match self {
            PartLayout::Conv(c) => PartLayout::Conv(c.map(f)),
            PartLayout::Copy { n, weight, unit } => PartLayout::Copy {
                n: *n,
                weight: f(weight),
                unit: *unit && keeps_unit,
            },
        }
    }
}

impl BlocksLinear {
    fn new(blocks: &Blocks, kind: Kind, device: Device) -> Self {
        let parts = blocks
            .parts()
            .iter()
            .map(|p| PartLinear {
                input: p.input as i64,
                output: p.output as i64,
                map: match &p.map {
                    PartMap::Conv(c) => PartLayout::Conv(ConvLinear::new(c, kind, device)),
                    PartMap::Copy(n) => PartLayout::Copy {
                        n: *n as i64,
                        weight: Tensor::ones([1], (kind, device)),
                        unit: true,
                    },
                },
            })
            .collect();
        Self::placed(blocks.in_dim() as i64, blocks.out_dim() as i64, parts)
    }

    /// The map of `parts` from `inp` inputs into `out` outputs.
    fn placed(inp: i64, out: i64, parts: Vec<PartLinear>) -> Self {
        let mut order: Vec<usize> = (0..parts.len()).collect();
        order.sort_by_key(|&k| parts[k].output);
        let mut next = 0;
        let tiles = order.iter().all(|&k| {
            let p = &parts[k];
            let fits = p.output == next;
            next = p.output + p.map.out_dim();
            fits
        }) && next == out;
        BlocksLinear {
            inp,
            out,
            parts,
            tiling: tiles.then_some(order),
        }
    }

    fn map(&self, f: &impl Fn(&Tensor) -> Tensor) -> Self {
        let parts = self
            .parts
            .iter()
            .map(|p| PartLinear {
                input: p.input,
                output: p.output,
                map: p.map.mapped(f, false),
            })
            .collect();
        Self::placed(self.inp, self.out, parts)
    }

    /// The map of the outputs `start..end` alone (numbered from `start`): the parts that add
    /// into them; `None` where a part adds into outputs on both sides of `start` or `end`.
    fn outputs(&self, start: i64, end: i64) -> Option<Self> {
        // Offsets and widths come from a map's (unsigned) sizes.
        let ranges = self
            .parts
            .iter()
            .map(|p| (p.output as usize, p.map.out_dim() as usize));
        let parts = parts_inside(ranges, start as usize, end as usize)?
            .into_iter()
            .map(|k| {
                let p = &self.parts[k];
                PartLinear {
                    input: p.input,
                    output: p.output - start,
                    map: p.map.mapped(&Tensor::shallow_clone, true),
                }
            })
            .collect();
        Some(Self::placed(self.inp, end - start, parts))
    }

    /// `a Wᵀ`: each part's product with its input range, added into its output range (where
    /// the parts tile the outputs, their products side by side).
    fn forward(&self, a: &Tensor) -> Tensor {
        let product = |p: &PartLinear| {
            let piece = a.narrow(1, p.input, p.map.in_dim());
            match &p.map {
                PartLayout::Conv(c) => c.forward(&piece),
                PartLayout::Copy { unit: true, .. } => piece,
                PartLayout::Copy { weight, .. } => piece * weight,
            }
        };
        if let Some(order) = &self.tiling {
            let pieces: Vec<Tensor> = order.iter().map(|&k| product(&self.parts[k])).collect();
            return Tensor::cat(&pieces, 1);
        }
        let batch = a.size()[0];
        let z = Tensor::zeros([batch, self.out], (a.kind(), a.device()));
        for p in &self.parts {
            let _ = z.narrow(1, p.output, p.map.out_dim()).g_add_(&product(p));
        }
        z
    }

    /// `t W`: each part's transposed product with its output range, added into its input
    /// range.
    fn backward(&self, t: &Tensor) -> Tensor {
        let batch = t.size()[0];
        let g = Tensor::zeros([batch, self.inp], (t.kind(), t.device()));
        self.add_backward(t, &g);
        g
    }

    /// `into += t W`, part by part into `into`'s input ranges.
    fn add_backward(&self, t: &Tensor, into: &Tensor) {
        for p in &self.parts {
            let piece = t.narrow(1, p.output, p.map.out_dim());
            let mut range = into.narrow(1, p.input, p.map.in_dim());
            let _ = match &p.map {
                PartLayout::Conv(c) => range.g_add_(&c.backward(&piece)),
                PartLayout::Copy { unit: true, .. } => range.g_add_(&piece),
                PartLayout::Copy { weight, .. } => range.g_add_(&(piece * weight)),
            };
        }
    }
}

impl Linear {
    /// `affine`'s weights as tensors of `kind` on `device`: dense, shared, convolutions and
    /// maps of parts in their own layouts, sparse rows gathered (at most [`PADDED_WIDTH`]
    /// entries each) or as a sparse matrix.
    pub fn of(affine: &Affine, kind: Kind, device: Device) -> Self {
        let tensor = |values: &[f64], shape: &[i64]| {
            Tensor::from_slice(values)
                .view(shape)
                .to_kind(kind)
                .to_device(device)
        };
        match affine {
            Affine::Dense(d) => {
                let (r, c) = d.weight().dim();
                let w = d.weight().as_standard_layout();
                Linear::Dense(tensor(
                    w.as_slice().expect("standard layout"),
                    &[r as i64, c as i64],
                ))
            }
            Affine::Shared(s) => {
                let (r, c) = s.block().weight().dim();
                let w = s.block().weight().as_standard_layout();
                Linear::Shared {
                    block: tensor(
                        w.as_slice().expect("standard layout"),
                        &[r as i64, c as i64],
                    ),
                    copies: s.copies() as i64,
                }
            }
            Affine::Conv(c) => Linear::Conv(Box::new(ConvLinear::new(c, kind, device))),
            Affine::Blocks(b) => Linear::Blocks(Box::new(BlocksLinear::new(b, kind, device))),
            Affine::Sparse(_) => Linear::Sparse(Box::new(SparseLinear::new(
                affine,
                kind,
                device,
                PADDED_WIDTH,
            ))),
        }
    }

    /// `affine`'s weights as its sparse rows, whatever its kind (what [`Self::of`] does for
    /// sparse rows; for the others, a reference to compare their layouts with).
    pub fn of_rows(affine: &Affine, kind: Kind, device: Device) -> Self {
        let coo = SparseLinear::new(affine, kind, device, 0);
        Linear::Sparse(Box::new(coo))
    }

    /// `affine`'s weights as its rows padded to the longest, gathered, whatever its kind and
    /// however long its rows (the layout [`Self::of`] takes for short sparse rows).
    pub fn of_gathered_rows(affine: &Affine, kind: Kind, device: Device) -> Self {
        let gathered = SparseLinear::new(affine, kind, device, usize::MAX);
        Linear::Sparse(Box::new(gathered))
    }

    /// Whether this is a sparse layout kept as a padded gather.
    pub fn is_gathered(&self) -> bool {
        matches!(self, Linear::Sparse(s) if matches!(s.layout, SparseLayout::Gather { .. }))
    }

    /// The map of the outputs `start..end` alone (numbered from `start`), for a map of parts
    /// whose every part adds into outputs on one side of `start` and of `end`; `None`
    /// otherwise.
    pub fn outputs(&self, start: i64, end: i64) -> Option<Self> {
        match self {
            Linear::Blocks(blocks) => Some(Linear::Blocks(Box::new(blocks.outputs(start, end)?))),
            _ => None,
        }
    }

    /// The number of outputs.
    pub fn out_dim(&self) -> i64 {
        match self {
            Linear::Dense(w) => w.size()[0],
            Linear::Shared { block, copies } => block.size()[0] * copies,
            Linear::Sparse(sparse) => sparse.out,
            Linear::Conv(conv) => conv.out_dim(),
            Linear::Blocks(blocks) => blocks.out,
        }
    }

    /// The number of inputs.
    pub fn in_dim(&self) -> i64 {
        match self {
            Linear::Dense(w) => w.size()[1],
            Linear::Shared { block, copies } => block.size()[1] * copies,
            Linear::Sparse(sparse) => sparse.inp,
            Linear::Conv(conv) => conv.in_dim(),
            Linear::Blocks(blocks) => blocks.inp,
        }
    }

    /// The weights' tensor kind.
    pub fn kind(&self) -> Kind {
        match self {
            Linear::Dense(w) => w.kind(),
            Linear::Shared { block, .. } => block.kind(),
            Linear::Sparse(sparse) => sparse.kind(),
            Linear::Conv(conv) => conv.kernel.kind(),
            Linear::Blocks(blocks) => match &blocks.parts[0].map {
                PartLayout::Conv(conv) => conv.kernel.kind(),
                PartLayout::Copy { weight, .. } => weight.kind(),
            },
        }
    }

    /// The same layout with every listed weight `w` replaced by `f(w)` (elementwise): a
    /// convolution's kernel, a copy's weight 1. A convolution's window positions in the
    /// padding are no weights: they stay zero.
    pub fn map(&self, f: impl Fn(&Tensor) -> Tensor) -> Self {
        match self {
            Linear::Dense(w) => Linear::Dense(f(w)),
            Linear::Shared { block, copies } => Linear::Shared {
                block: f(block),
                copies: *copies,
            },
            Linear::Sparse(sparse) => Linear::Sparse(Box::new(sparse.map(&f))),
            Linear::Conv(conv) => Linear::Conv(Box::new(conv.map(&f))),
            Linear::Blocks(blocks) => Linear::Blocks(Box::new(blocks.map(&f))),
        }
    }

    /// `a Wᵀ` for a batch `a` (`batch × in`).
    pub fn forward(&self, a: &Tensor) -> Tensor {
        let batch = a.size()[0];
        match self {
            Linear::Dense(w) => a.matmul(&w.tr()),
            Linear::Shared { block, copies } => {
                let cols = block.size()[1];
                a.view([batch, *copies, cols])
                    .matmul(&block.tr())
                    .view([batch, -1])
            }
            Linear::Sparse(sparse) => sparse.forward(a),
            Linear::Conv(conv) => conv.forward(a),
            Linear::Blocks(blocks) => blocks.forward(a),
        }
    }

    /// `t W` for a batch `t` (`batch × out`).
    pub fn backward(&self, t: &Tensor) -> Tensor {
        let batch = t.size()[0];
        match self {
            Linear::Dense(w) => t.matmul(w),
            Linear::Shared { block, copies } => {
                let rows = block.size()[0];
                t.view([batch, *copies, rows])
                    .matmul(block)
                    .view([batch, -1])
            }
            Linear::Sparse(sparse) => sparse.backward(t),
            Linear::Conv(conv) => conv.backward(t),
            Linear::Blocks(blocks) => blocks.backward(t),
        }
    }

    /// `into += t W` for a batch `t` (`batch × out`), `into` being `batch × in`: a map of
    /// parts adds each part's share in place.
    pub fn add_backward(&self, t: &Tensor, into: &mut Tensor) {
        match self {
            Linear::Blocks(blocks) => blocks.add_backward(t, into),
            _ => {
                let _ = into.g_add_(&self.backward(t));
            }
        }
    }
}
