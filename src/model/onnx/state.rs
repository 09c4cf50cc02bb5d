//! The translation state: every tensor computed so far, element by element, in terms of the
//! input of the layer under construction, and the layers cut so far.
//!
//! Between two cuts, each element of a tensor is either one input of the current layer or a
//! constant ([`Form::Select`]: shape operators only move and copy elements), or the output of
//! an affine map of the current layer input not yet cut into a layer ([`Form::Map`]). A ReLU
//! cuts the map into a layer and the next layer starts from its outputs. An affine operator
//! applied to selected elements composes exactly ([`Tracer::linear`]): each weight is
//! multiplied by 1, two weights landing on one input must sum exactly in f64, and the
//! constants join the bias as one exactly computed sum rounded once. An operator whose rows
//! read the whole layer input in order (a Gemm, Conv, pooling or batch norm right after a cut)
//! keeps its rows as they are. An affine operator applied to a map would round its products,
//! so the map is cut first into a layer without ReLU, except where an operator folds into it
//! (biases, batch norm, scaling by constants; see their files).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;

use ndarray::{Array1, Array2};
use onnx_protobuf::{NodeProto, TensorProto};

use super::proto::{float_tensor, int64_values, required_input, Tensor};
use crate::exact::dyadic::ExactSum;
use crate::model::blocks::{Blocks, Part, PartMap};
use crate::model::conv::Conv;
use crate::model::ir::{Activation, Affine, Dense, Layer, Shared, Sparse};
use crate::model::kind::LayerKind;
use crate::model::{layer_bytes, show_bytes};

/// Weights one step may store (2^26, 1.5 GiB with their indices), and values one tensor may
/// hold. A 24-channel 3×3 convolution of a 3×128×128 image stores 2.7 million.
pub(super) const MAX_LOWERED_ENTRIES: usize = 1 << 26;

/// The most weights a convolution's rows may list and be kept as sparse rows (2^23, 96 MiB
/// with their indices); a larger convolution is kept as its kernel ([`Map::Conv`]) and its
/// rows are built on demand. Up to it, the image networks read so far (the largest, a
/// 16-channel 3×3 convolution of a 3×128×128 image, lists 6.9 million) keep the rows they
/// had, which DTD reads without building anything; every convolution of a torchvision
/// network at 224×224 lists more than 5·10^7 and is kept as its kernel, 8 bytes a parameter
/// instead of 12 bytes a listed weight.
pub(super) const CONV_ROWS_UP_TO: usize = 1 << 23;

/// The largest image side, channel count, kernel side, stride or pad read (2^24): keeps every
/// size computed from them far from overflow.
pub(super) const MAX_IMAGE_SIDE: usize = 1 << 24;

/// The rows of a sparse map: for each output, `(input, weight)` in increasing input order.
pub(super) type SparseRows = Vec<Vec<(u32, f64)>>;

/// One element of a tensor made of selected elements.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Elem {
    /// Input `i` of the current layer, with weight 1.
    Input(u32),
    Const(f64),
}

/// The outputs of an affine map of the current layer input, one per element in row-major
/// order.
#[derive(Clone, Debug)]
pub(super) enum Map {
    /// `W` as [out, in] and the bias.
    Dense(Array2<f64>, Array1<f64>),
    /// One block for `copies` consecutive slices of the input.
    Shared(Array2<f64>, Array1<f64>, usize),
    Sparse(SparseRows, Vec<f64>),
    /// A convolution too large for rows (above [`CONV_ROWS_UP_TO`] weights), kept as its
    /// kernel.
    Conv(Conv),
    /// Convolutions kept as their kernels, reading ranges of a wider layer input, copies of
    /// carried values and their sums ([`Blocks`]).
    Blocks(Blocks),
}

impl Map {
    pub(super) fn len(&self) -> usize {
        match self {
            Map::Dense(w, _) => w.nrows(),
            Map::Shared(w, _, copies) => w.nrows() * copies,
            Map::Sparse(rows, _) => rows.len(),
            Map::Conv(c) => c.out_dim(),
            Map::Blocks(b) => b.out_dim(),
        }
    }
}

/// What the elements of a tensor are.
#[derive(Clone, Debug)]
pub(super) enum Form {
    Select(Vec<Elem>),
    Map(Map),
}

/// A tensor computed from the data: its shape (the batch of 1 included) and its elements, in
/// terms of the input of layer `layer` (the number of layers cut before it).
#[derive(Clone, Debug)]
pub(super) struct Data {
    pub(super) dims: Vec<usize>,
    pub(super) layer: usize,
    pub(super) form: Form,
    /// The output of an affine node without a bias (MatMul, Gemm without C): an Add right
    /// after it supplies the bias, and a BatchNormalization right after it is not folded.
    pub(super) bias_open: bool,
}

impl Data {
    /// Whether the tensor is expressed in the input of layer `layers` (the number of layers
    /// cut so far), or is made of constants only.
    pub(super) fn reads_layer(&self, layers: usize) -> bool {
        self.layer == layers || self.constant()
    }

    pub(super) fn constant(&self) -> bool {
        matches!(&self.form, Form::Select(e) if e.iter().all(|e| matches!(e, Elem::Const(_))))
    }

    /// The number of elements.
    pub(super) fn len(&self) -> usize {
        self.dims.iter().product()
    }
}

/// The graph input when its per-sample sizes are not all static (no declared shape, a dynamic
/// dimension after the batch, or sizes beyond what is read): it takes its width from the
/// first Gemm or MatMul (or Reshape to `[batch, k]`) that reads it, through operators that keep
/// each sample's vector as it is.
#[derive(Clone, Copy, Debug)]
pub(super) struct Unsized {
    /// The declared rank; `None` without a declared shape.
    pub(super) rank: Option<usize>,
    /// Values per sample, when every dimension after the batch is static.
    pub(super) width: Option<u64>,
    /// Every dimension is static, but there are more values than a tensor may hold.
    pub(super) oversized: bool,
}

/// What the graph input's batch dimension is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Batch {
    /// A rank-1 input: the whole tensor is one sample.
    Unbatched,
    /// A dynamic batch (read as a batch of 1).
    Dynamic,
    /// A static batch of this size (each sample read on its own).
    Static(u64),
}

/// An input of a node: computed from the data, or constant.
pub(super) enum Operand {
    Data(Rc<Data>),
    Const(Tensor),
}

/// What a node's first output becomes.
pub(super) enum Output<'a> {
    Data(Data),
    Unsized(Unsized),
    Const(Cow<'a, TensorProto>),
}

/// The translation state.
pub(super) struct Tracer<'a> {
    pub(super) consts: HashMap<&'a str, Cow<'a, TensorProto>>,
    pub(super) values: HashMap<&'a str, Rc<Data>>,
    /// The graph input (and its other names) while its sizes are not known.
    pub(super) unknown: HashMap<&'a str, Unsized>,
    /// Constants computed from the sizes of computed tensors (Shape and what is folded from
    /// it): their batch entry is the batch, whatever its size at run time.
    pub(super) from_sizes: HashSet<&'a str>,
    /// The index of the last node that reads each tensor's values (graph outputs and Shape
    /// nodes are not counted).
    pub(super) last_use: HashMap<&'a str, usize>,
    /// The index of the last node that reads each tensor, Shape nodes included.
    pub(super) last_read: HashMap<&'a str, usize>,
    /// The index of the node being translated.
    pub(super) at: usize,
    /// The graph output, never carried: a network output must end the graph.
    pub(super) output: &'a str,
    pub(super) layers: Vec<Layer>,
    /// The kind of each layer cut so far, one per layer.
    pub(super) kinds: Vec<LayerKind>,
    /// The kind the operators since the last cut give the next layer.
    pub(super) pending: LayerKind,
    /// The width of the current layer input.
    pub(super) width: usize,
    pub(super) keep_batch_norm: bool,
    /// An Add of two computed tensors cuts its summands into a layer of their own first.
    pub(super) split_residual: bool,
    /// The most weights a convolution's rows may list and be kept as rows
    /// ([`CONV_ROWS_UP_TO`] unless a test lowers it).
    pub(super) conv_rows_up_to: usize,
    /// The most bytes the network may take (`None`: no limit).
    pub(super) max_memory: Option<u64>,
    /// The opset of the default domain (Unsqueeze, Squeeze and ReduceSum changed at 13).
    pub(super) opset: i64,
    pub(super) batch: Batch,
}

/// `a + b` if f64 represents it exactly.
pub(super) fn exact_sum(a: f64, b: f64) -> Option<f64> {
    let s = a + b;
    let bb = s - a;
    let err = (a - (s - bb)) + (b - bb);
    (s.is_finite() && err == 0.0).then_some(s)
}

/// Sorts a row by input and merges the weights of a repeated input, which must sum exactly;
/// in place, and without sorting a row already strictly increasing.
pub(super) fn merge_row(mut row: Vec<(u32, f64)>) -> Result<Vec<(u32, f64)>, String> {
    if row.windows(2).all(|p| p[0].0 < p[1].0) {
        return Ok(row);
    }
    row.sort_by_key(|&(i, _)| i);
    let mut kept = 0usize;
    for k in 0..row.len() {
        let (i, w) = row[k];
        match kept.checked_sub(1).map(|last| &mut row[last]) {
            Some((j, v)) if *j == i => {
                *v = exact_sum(*v, w).ok_or_else(|| {
                    format!(
                        "the weights {v} and {w} reach input {i} together and do not sum exactly \
                         in f64"
                    )
                })?;
            }
            _ => {
                row[kept] = (i, w);
                kept += 1;
            }
        }
    }
    row.truncate(kept);
    Ok(row)
}

/// Whether `elems` are the inputs `0, 1, …, width − 1` in order.
pub(super) fn is_identity(elems: &[Elem], width: usize) -> bool {
    elems.len() == width
        && elems
            .iter()
            .enumerate()
            .all(|(i, e)| *e == Elem::Input(i as u32))
}

/// Why `op` cannot read the graph input while its sizes are unknown.
pub(super) fn unsized_problem(op: &str, u: &Unsized) -> String {
    let image = matches!(op, "Conv" | "AveragePool" | "GlobalAveragePool" | "MaxPool");
    match (op, u.rank) {
        (_, Some(r)) if image && r != 4 => {
            format!(
                "{op} needs [batch, channels, height, width] data but the data has rank {r} here"
            )
        }
        _ if image && u.oversized => format!(
            "{op} reads {} values per sample, more than 2^26: image layers this large are not \
             supported",
            u.width.unwrap_or_default()
        ),
        _ if image => format!(
            "{op} needs static [channels, height, width] sizes of at most 2^24 each; export the \
             model with a fixed image size (only the batch may be dynamic)"
        ),
        ("BatchNormalization", Some(2)) => {
            "BatchNormalization needs a static number of features".into()
        }
        ("BatchNormalization", _) => "BatchNormalization is read on [batch, features] or static \
             [batch, channels, height, width] data"
            .into(),
        ("Relu", _) => "Relu on the raw input; a Relu must follow an affine layer".into(),
        _ => format!(
            "{op} needs static sizes, and the graph input declares {}; export the model with \
             static sizes (only the batch may be dynamic)",
            match (u.rank, u.oversized) {
                (None, _) => "no shape",
                (Some(_), true) => "more than 2^26 values per sample",
                (Some(_), false) => "a dynamic or oversized dimension after the batch",
            }
        ),
    }
}

impl<'a> Tracer<'a> {
    /// Tags the layers cut since there were `before`: a max-pool layer as one, the first
    /// other one with the kind its operators gave it, any later one as `other`.
    pub(super) fn tag_layers(&mut self, before: usize) {
        for layer in &self.layers[before..] {
            let kind = match layer.max_pool {
                Some(_) => LayerKind::MaxPool,
                None => std::mem::replace(&mut self.pending, LayerKind::Other),
            };
            self.kinds.push(kind);
        }
    }

    /// Checks that a layer of `bytes` (`what` it is) keeps the network within the memory
    /// given, counting the layers cut so far as [`crate::model::estimated_bytes`] does.
    pub(super) fn check_memory(
        &self,
        bytes: u64,
        what: impl FnOnce() -> String,
    ) -> Result<(), String> {
        let Some(limit) = self.max_memory else {
            return Ok(());
        };
        let cut: u64 = self.layers.iter().map(|l| layer_bytes(&l.affine)).sum();
        let total = cut + bytes + 8 * self.width as u64;
        if total <= limit {
            return Ok(());
        }
        Err(format!(
            "{} takes about {} (the layers before it {}), more than the {} of --max-memory",
            what(),
            show_bytes(bytes),
            show_bytes(cut),
            show_bytes(limit)
        ))
    }

    /// Input `pos` of a node, which must be computed from the data and expressed in the
    /// current layer's input; a constant there reads as selected constants.
    pub(super) fn data(&self, node: &NodeProto, pos: usize) -> Result<Rc<Data>, String> {
        match self.operand(node, pos)? {
            Operand::Data(d) => Ok(d),
            Operand::Const(t) => Ok(Rc::new(self.with(
                t.dims,
                Form::Select(t.data.into_iter().map(Elem::Const).collect()),
            ))),
        }
    }

    /// Input `pos` of a node: computed data (readable from the current layer input) or a
    /// constant.
    pub(super) fn operand(&self, node: &NodeProto, pos: usize) -> Result<Operand, String> {
        let name = required_input(node, pos, "data")?;
        if let Some(u) = self.unknown.get(name) {
            return Err(unsized_problem(&node.op_type, u));
        }
        if let Some(d) = self.values.get(name) {
            if !d.reads_layer(self.layers.len()) {
                return Err(format!(
                    "'{name}' was computed before layer {} was cut and is read after it; values \
                     are carried past ReLU and affine layers (a residual connection) but not past \
                     a max-pool layer",
                    d.layer + 1
                ));
            }
            return Ok(Operand::Data(Rc::clone(d)));
        }
        Ok(Operand::Const(self.floats(name)?))
    }

    /// The float tensor a constant input holds.
    pub(super) fn floats(&self, name: &str) -> Result<Tensor, String> {
        float_tensor(name, self.consts.get(name).map(AsRef::as_ref))
    }

    /// The int64 tensor a constant input holds.
    pub(super) fn ints(&self, name: &str) -> Result<Vec<i64>, String> {
        int64_values(name, self.consts.get(name).map(AsRef::as_ref))
    }

    /// Drops the tensors that no node after the current one reads (the graph output is kept),
    /// so that a map or a layer input is not held past its last reader.
    pub(super) fn drop_spent(&mut self) {
        let (at, output, last_read) = (self.at, self.output, &self.last_read);
        self.values
            .retain(|name, _| *name == output || last_read.get(name).is_some_and(|&i| i > at));
    }

    /// Input `pos` of a node, as [`Tracer::data`], owned when no later node reads it and it
    /// is not the graph output (it is then dropped from the tensors kept), so that a layer cut
    /// from it takes its weights instead of copying them.
    pub(super) fn take_data(&mut self, node: &NodeProto, pos: usize) -> Result<Rc<Data>, String> {
        let x = self.data(node, pos)?;
        let name = required_input(node, pos, "data")?;
        let last = self.last_read.get(name).is_none_or(|&i| i <= self.at);
        if last && name != self.output && self.values.get(name).is_some_and(|d| Rc::ptr_eq(d, &x)) {
            self.values.remove(name);
        }
        Ok(x)
    }

    /// [`Tracer::cut`] of a tensor held nowhere else: a lone map becomes the layer without
    /// being copied.
    pub(super) fn cut_taken(
        &mut self,
        x: Rc<Data>,
        activation: Option<Activation>,
    ) -> Result<Data, String> {
        if !self.live_tensors().is_empty() {
            return self.cut(&x, activation);
        }
        match Rc::try_unwrap(x) {
            Ok(Data {
                dims,
                form: Form::Map(Map::Dense(w, b)),
                ..
            }) => {
                self.check_memory(w.len() as u64 * 8 + 16 * w.nrows() as u64, || {
                    format!("a layer of {} outputs", w.nrows())
                })?;
                self.finish_cut(dims, Dense::new(w, b).map(Affine::Dense), activation)
            }
            Ok(Data {
                dims,
                form: Form::Map(Map::Conv(c)),
                ..
            }) => {
                let outputs = c.out_dim() as u64;
                self.check_memory(c.kernel().len() as u64 * 8 + 16 * outputs, || {
                    format!("a layer of {outputs} outputs")
                })?;
                self.finish_cut(dims, Ok(Affine::Conv(c)), activation)
            }
            Ok(Data {
                dims,
                form: Form::Map(Map::Blocks(b)),
                ..
            }) => {
                let outputs = b.out_dim() as u64;
                self.check_memory(b.stored_weights() as u64 * 8 + 16 * outputs, || {
                    format!("a layer of {outputs} outputs")
                })?;
                self.finish_cut(dims, Ok(Affine::Blocks(b)), activation)
            }
            Ok(Data {
                dims,
                form: Form::Map(Map::Sparse(rows, bias)),
                ..
            }) => {
                let listed: usize = rows.iter().map(Vec::len).sum();
                self.check_memory(listed as u64 * 12 + 16 * rows.len() as u64, || {
                    format!("a layer of {} outputs", rows.len())
                })?;
                let sparse = Sparse::from_rows(self.width, rows, Array1::from(bias));
                self.finish_cut(dims, sparse.map(Affine::Sparse), activation)
            }
            Ok(data) => self.cut_alone(&data, activation),
            Err(x) => self.cut(&x, activation),
        }
    }

    /// A tensor of the current layer input.
    pub(super) fn with(&self, dims: Vec<usize>, form: Form) -> Data {
        Data {
            dims,
            layer: self.layers.len(),
            form,
            bias_open: false,
        }
    }

    /// The graph input, while its sizes are unknown, as a tensor of `k` values per sample: the
    /// width the first layer reading it (or a reshape to `[batch, k]`) gives it.
    pub(super) fn size_input(&mut self, u: &Unsized, k: usize) -> Result<Data, String> {
        if let Some(w) = u.width.filter(|&w| w != k as u64) {
            return Err(format!(
                "the graph input declares {w} values per sample but the first layer expects {k}"
            ));
        }
        if k == 0 || k > MAX_LOWERED_ENTRIES {
            return Err(format!(
                "a graph input of {k} values per sample is not read (at most 2^26)"
            ));
        }
        self.width = k;
        let dims = if self.batch == Batch::Unbatched {
            vec![k]
        } else {
            vec![1, k]
        };
        Ok(Data {
            dims,
            layer: 0,
            form: Form::Select((0..k as u32).map(Elem::Input).collect()),
            bias_open: false,
        })
    }

    /// Cuts `x` into a layer of the network (with `activation` when given) and returns its
    /// outputs as the new layer input, in `x`'s shape. Tensors of the current layer that a
    /// later node reads (the input of a residual connection) are carried into the new layer as
    /// extra outputs without activation, and read from there.
    pub(super) fn cut(&mut self, x: &Data, activation: Option<Activation>) -> Result<Data, String> {
        let carried = self.live_tensors();
        if carried.is_empty() {
            return self.cut_alone(x, activation);
        }
        let own = x.len();
        let mut places = Vec::with_capacity(carried.len());
        let mut at = own;
        for (names, data) in &carried {
            places.push((names, data, at, data.len()));
            at += data.len();
        }
        let out = at;
        if u32::try_from(out).is_err() {
            return Err(format!("a layer of {out} outputs is too wide"));
        }
        let affine = match self.carried_blocks(x, &carried) {
            Some(blocks) => {
                self.check_memory(blocks.stored_weights() as u64 * 8 + 16 * out as u64, || {
                    format!("a layer of {out} outputs")
                })?;
                Affine::Blocks(blocks)
            }
            None => {
                let (mut rows, mut bias) = form_rows(&x.form)?;
                for (_, data) in &carried {
                    let (r, b) = form_rows(&data.form)?;
                    rows.extend(r);
                    bias.extend(b);
                }
                let listed: usize = rows.iter().map(Vec::len).sum();
                self.check_memory(listed as u64 * 12 + 16 * out as u64, || {
                    format!("a layer of {out} outputs")
                })?;
                Sparse::from_rows(self.width, rows, Array1::from(bias))
                    .map(Affine::Sparse)
                    .map_err(|e| e.to_string())?
            }
        };
        let relu = activation.is_some();
        self.layers.push(Layer {
            affine,
            relu,
            activation: activation.unwrap_or(Activation::Relu),
            max_pool: None,
            linear_tail: if relu { out - own } else { 0 },
        });
        self.width = out;
        let layer = self.layers.len();
        for (names, data, first, len) in places {
            let moved = Rc::new(Data {
                dims: data.dims.clone(),
                layer,
                form: Form::Select(
                    (first..first + len)
                        .map(|i| Elem::Input(i as u32))
                        .collect(),
                ),
                bias_open: false,
            });
            for name in names {
                self.values.insert(name, Rc::clone(&moved));
            }
        }
        Ok(Data {
            dims: x.dims.clone(),
            layer,
            form: Form::Select((0..own as u32).map(Elem::Input).collect()),
            bias_open: false,
        })
    }

    /// `x` and the tensors carried beside it as one map of parts ([`Blocks`]), when one of
    /// them is kept as kernels and each is such a map or consecutive inputs; `None` otherwise
    /// (the layer is then written as rows).
    fn carried_blocks(&self, x: &Data, carried: &[(Vec<&'a str>, Rc<Data>)]) -> Option<Blocks> {
        if !is_operator(&x.form) && !carried.iter().any(|(_, d)| is_operator(&d.form)) {
            return None;
        }
        let (mut parts, mut bias) = form_parts(&x.form, 0)?;
        for (_, data) in carried {
            let (p, b) = form_parts(&data.form, bias.len())?;
            parts.extend(p);
            bias.extend(b);
        }
        Blocks::new(self.width, parts, bias).ok()
    }

    /// The tensors of the current layer input that a node after this one reads, each with the
    /// names it goes by, in the order of their first name.
    fn live_tensors(&self) -> Vec<(Vec<&'a str>, Rc<Data>)> {
        let layer = self.layers.len();
        let mut live: Vec<(Vec<&'a str>, Rc<Data>)> = Vec::new();
        let mut names: Vec<&'a str> = self
            .values
            .iter()
            .filter(|(name, d)| {
                d.layer == layer
                    && !d.constant()
                    && **name != self.output
                    && self.last_use.get(*name).is_some_and(|&i| i > self.at)
            })
            .map(|(name, _)| *name)
            .collect();
        names.sort_unstable();
        for name in names {
            let data = &self.values[name];
            match live.iter_mut().find(|(_, d)| Rc::ptr_eq(d, data)) {
                Some((names, _)) => names.push(name),
                None => live.push((vec![name], Rc::clone(data))),
            }
        }
        live
    }

    /// [`Tracer::cut`] when nothing is carried: the layer keeps `x`'s form (dense, shared or
    /// sparse).
    fn cut_alone(&mut self, x: &Data, activation: Option<Activation>) -> Result<Data, String> {
        let width = self.width;
        let (weights, index) = match &x.form {
            Form::Select(elems) => (elems.len(), 4),
            Form::Map(Map::Dense(w, _) | Map::Shared(w, _, _)) => (w.len(), 0),
            Form::Map(Map::Sparse(rows, _)) => (rows.iter().map(Vec::len).sum(), 4),
            Form::Map(Map::Conv(c)) => (c.kernel().len(), 0),
            Form::Map(Map::Blocks(b)) => (b.stored_weights(), 0),
        };
        let outputs = x.len() as u64;
        self.check_memory(weights as u64 * (8 + index) + 16 * outputs, || {
            format!("a layer of {outputs} outputs")
        })?;
        let affine = match &x.form {
            Form::Select(elems) => {
                let rows = elems
                    .iter()
                    .map(|e| match e {
                        Elem::Input(i) => vec![(*i, 1.0)],
                        Elem::Const(_) => Vec::new(),
                    })
                    .collect();
                let bias = elems
                    .iter()
                    .map(|e| match e {
                        Elem::Input(_) => 0.0,
                        Elem::Const(c) => *c,
                    })
                    .collect();
                Sparse::from_rows(width, rows, bias).map(Affine::Sparse)
            }
            Form::Map(Map::Dense(w, b)) => Dense::new(w.clone(), b.clone()).map(Affine::Dense),
            Form::Map(Map::Shared(w, b, copies)) => Dense::new(w.clone(), b.clone())
                .and_then(|block| Shared::new(block, *copies))
                .map(Affine::Shared),
            Form::Map(Map::Sparse(rows, bias)) => {
                Sparse::from_rows(width, rows.clone(), Array1::from(bias.clone()))
                    .map(Affine::Sparse)
            }
            Form::Map(Map::Conv(c)) => Ok(Affine::Conv(c.clone())),
            Form::Map(Map::Blocks(b)) => Ok(Affine::Blocks(b.clone())),
        };
        self.finish_cut(x.dims.clone(), affine, activation)
    }

    /// The layer `affine` pushed; its outputs, of shape `dims`, the new layer input.
    fn finish_cut(
        &mut self,
        dims: Vec<usize>,
        affine: crate::error::Result<Affine>,
        activation: Option<Activation>,
    ) -> Result<Data, String> {
        let affine = affine.map_err(|e| e.to_string())?;
        let out = affine.out_dim();
        if u32::try_from(out).is_err() {
            return Err(format!("a layer of {out} outputs is too wide"));
        }
        self.layers.push(Layer {
            relu: activation.is_some(),
            activation: activation.unwrap_or(Activation::Relu),
            ..Layer::new(affine, false)
        });
        self.width = out;
        Ok(Data {
            dims,
            layer: self.layers.len(),
            form: Form::Select((0..out as u32).map(Elem::Input).collect()),
            bias_open: false,
        })
    }

    /// Selected elements of `x` (a map is cut into a layer without ReLU first).
    pub(super) fn select<'x>(&mut self, x: &'x Data) -> Result<Cow<'x, [Elem]>, String> {
        match &x.form {
            Form::Select(e) => Ok(Cow::Borrowed(e)),
            Form::Map(_) => match self.cut(x, None)?.form {
                Form::Select(e) => Ok(Cow::Owned(e)),
                Form::Map(_) => unreachable!("a cut gives selected elements"),
            },
        }
    }

    /// The affine step whose output `o` is `Σ (position, weight) of rows[o]` over the elements
    /// of `x` plus `bias[o]`, composed exactly with `x`'s selected elements. Rows over the
    /// whole layer input in order, each strictly increasing (a whole-layer operator right after
    /// a cut), are kept as they are.
    pub(super) fn linear(
        &mut self,
        x: &Data,
        rows: SparseRows,
        bias: Vec<f64>,
        dims: Vec<usize>,
    ) -> Result<Data, String> {
        rows.iter()
            .try_fold(0usize, |a, r| a.checked_add(r.len()))
            .filter(|&n| n <= MAX_LOWERED_ENTRIES)
            .ok_or("the step would store more than 2^26 weights")?;
        let elems = self.select(x)?;
        let increasing = |r: &Vec<(u32, f64)>| r.windows(2).all(|p| p[0].0 < p[1].0);
        if is_identity(&elems, self.width) && rows.iter().all(increasing) {
            return Ok(self.with(dims, Form::Map(Map::Sparse(rows, bias))));
        }
        let mut out_rows = Vec::with_capacity(rows.len());
        let mut out_bias = Vec::with_capacity(rows.len());
        for (o, (mut inputs, b)) in rows.into_iter().zip(bias).enumerate() {
            let mut constant: Option<ExactSum> = None;
            // Each position becomes the input it selects (kept in place); a constant joins
            // the bias instead.
            inputs.retain_mut(|(pos, w)| match elems[*pos as usize] {
                Elem::Input(i) => {
                    *pos = i;
                    true
                }
                Elem::Const(c) => {
                    if c != 0.0 && *w != 0.0 {
                        constant
                            .get_or_insert_with(|| {
                                let mut s = ExactSum::new();
                                s.add(b);
                                s
                            })
                            .add_product(*w, c);
                    }
                    false
                }
            });
            let bias = match constant {
                None => b,
                Some(s) => s
                    .value()
                    .map(|v| v.to_f64())
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| format!("the bias of output {o} is not finite"))?,
            };
            out_rows.push(merge_row(inputs).map_err(|e| format!("output {o}: {e}"))?);
            out_bias.push(bias);
        }
        Ok(self.with(dims, Form::Map(Map::Sparse(out_rows, out_bias))))
    }

    /// A convolution kept as its kernel, applied to `x`, which must be the current layer
    /// input as it is (a map is cut into a layer first).
    pub(super) fn operator(
        &mut self,
        x: &Data,
        conv: Conv,
        dims: Vec<usize>,
    ) -> Result<Data, String> {
        let elems = self.select(x)?;
        if !is_identity(&elems, self.width) {
            if let Some(start) = input_range(&elems) {
                let bias = conv.biases();
                let part = Part {
                    input: start,
                    output: 0,
                    map: PartMap::Conv(unbiased(conv)),
                };
                let blocks =
                    Blocks::new(self.width, vec![part], bias).map_err(|e| e.to_string())?;
                return Ok(self.with(dims, Form::Map(Map::Blocks(blocks))));
            }
            return Err(format!(
                "the convolution lists {} weights in its rows (more than 2^23) and is kept as its \
                 kernel, which reads the layer input as it is; here its input is rearranged or \
                 padded with constants",
                conv.row_weights()
            ));
        }
        Ok(self.with(dims, Form::Map(Map::Conv(conv))))
    }

    /// Rearranges (and copies) the elements of `x`: output `p` is element `from[p]`. A map is
    /// cut first, unless the order is kept.
    pub(super) fn gather(
        &mut self,
        x: &Data,
        from: &[usize],
        dims: Vec<usize>,
    ) -> Result<Data, String> {
        let kept = from.len() == x.len() && from.iter().enumerate().all(|(p, &f)| p == f);
        if kept {
            return Ok(Data {
                dims,
                layer: x.layer,
                form: x.form.clone(),
                bias_open: false,
            });
        }
        let elems = self.select(x)?;
        let form = Form::Select(from.iter().map(|&f| elems[f]).collect());
        Ok(self.with(dims, form))
    }
}

/// Sparse rows over the current layer input and their biases.
pub(super) type Rows = (SparseRows, Vec<f64>);

/// The rows of an operand over the current layer input (a constant: rows without inputs).
pub(super) fn rows_of(part: &Operand) -> Result<Rows, String> {
    match part {
        Operand::Const(t) => Ok((vec![Vec::new(); t.data.len()], t.data.clone())),
        Operand::Data(d) => form_rows(&d.form),
    }
}

/// The rows of a tensor over the current layer input, and their biases.
pub(super) fn form_rows(form: &Form) -> Result<Rows, String> {
    Ok(match form {
        Form::Select(e) => e
            .iter()
            .map(|e| match e {
                Elem::Input(i) => (vec![(*i, 1.0)], 0.0),
                Elem::Const(c) => (Vec::new(), *c),
            })
            .unzip(),
        Form::Map(Map::Sparse(rows, bias)) => (rows.clone(), bias.clone()),
        Form::Map(Map::Conv(c)) => {
            if c.row_weights() > MAX_LOWERED_ENTRIES {
                return Err(format!(
                    "a convolution kept as its kernel ({} weights in its rows, more than 2^26) is \
                     combined here with other values (a residual connection, or a value carried \
                     past a layer), which needs its rows",
                    c.row_weights()
                ));
            }
            (0..c.out_dim())
                .map(|j| {
                    let row = c.taps(j).map(|(i, k)| (i as u32, c.kernel()[k])).collect();
                    (row, *c.bias(j))
                })
                .unzip()
        }
        Form::Map(Map::Blocks(b)) => {
            if b.out_dim() * b.max_connected() > MAX_LOWERED_ENTRIES {
                return Err(format!(
                    "a map of convolutions kept as their kernels (up to {} weights in each of \
                     its {} rows) is combined here with values it cannot hold beside it, which \
                     needs its rows",
                    b.max_connected(),
                    b.out_dim()
                ));
            }
            (0..b.out_dim())
                .map(|j| {
                    let row = b.entries(j).map(|(i, &w)| (i as u32, w)).collect();
                    (row, *b.bias(j))
                })
                .unzip()
        }
        Form::Map(Map::Dense(w, b)) => (
            w.rows()
                .into_iter()
                .map(|r| r.iter().enumerate().map(|(i, &v)| (i as u32, v)).collect())
                .collect(),
            b.to_vec(),
        ),
        Form::Map(map @ Map::Shared(w, b, copies)) => {
            let (rows, cols) = w.dim();
            map.len()
                .checked_mul(cols)
                .filter(|&e| e <= MAX_LOWERED_ENTRIES)
                .ok_or("the shared layer would store more than 2^26 weights")?;
            (0..rows * copies)
                .map(|j| {
                    let (p, r) = (j / rows, j % rows);
                    (
                        (0..cols)
                            .map(|c| ((p * cols + c) as u32, w[[r, c]]))
                            .collect(),
                        b[r],
                    )
                })
                .unzip()
        }
    })
}

/// The start of `elems` when they are consecutive inputs `s, s + 1, …` of the layer.
pub(super) fn input_range(elems: &[Elem]) -> Option<usize> {
    let Some(&Elem::Input(start)) = elems.first() else {
        return None;
    };
    let consecutive = elems.iter().zip(start..).all(|(e, i)| *e == Elem::Input(i));
    consecutive.then_some(start as usize)
}

/// `conv` with its biases set to zero (a part of a [`Blocks`] map, which holds them).
pub(super) fn unbiased(mut conv: Conv) -> Conv {
    conv.channel_bias_mut().iter_mut().for_each(|b| *b = 0.0);
    conv
}

/// Whether a tensor is a map kept as kernels rather than rows.
pub(super) fn is_operator(form: &Form) -> bool {
    matches!(form, Form::Map(Map::Conv(_) | Map::Blocks(_)))
}

/// A tensor of the current layer input (`width` values) as parts adding into its outputs
/// from `output` on, and its biases: consecutive inputs as a copy, a convolution kept as its
/// kernel, or such a map's parts; `None` for anything else (rows, constants, a rearrangement).
pub(super) fn form_parts(form: &Form, output: usize) -> Option<(Vec<Part>, Vec<f64>)> {
    let moved = |p: &Part| Part {
        output: p.output + output,
        ..p.clone()
    };
    match form {
        Form::Select(elems) => {
            let input = input_range(elems)?;
            let part = Part {
                input,
                output,
                map: PartMap::Copy(elems.len()),
            };
            Some((vec![part], vec![0.0; elems.len()]))
        }
        Form::Map(Map::Conv(c)) => {
            let bias = c.biases();
            let part = Part {
                input: 0,
                output,
                map: PartMap::Conv(unbiased(c.clone())),
            };
            Some((vec![part], bias))
        }
        Form::Map(Map::Blocks(b)) => {
            Some((b.parts().iter().map(moved).collect(), b.biases().to_vec()))
        }
        Form::Map(_) => None,
    }
}
