//! Graphs that are not a single chain: a relation network as `torch.onnx.export` writes it
//! (objects concatenated with coordinates, all ordered pairs with a question, a shared MLP over
//! the pairs, a sum), and anything else built from the same operators.
//!
//! The translation follows every tensor element by element. Between two ReLUs, each element is
//! either one input of the current layer or a constant (shape operators only move and copy
//! elements: [`Form::Select`]), or the output of an affine map of the current layer input not
//! yet cut into a layer ([`Form::Map`]). A ReLU cuts the map into a layer of the chain and the
//! next layer starts from its outputs. An affine operator applied to selected elements composes
//! exactly: each weight is multiplied by 1, two weights landing on one input must sum exactly
//! in f64 (the self-pairs of a relation network), and the constants (coordinates, the question)
//! join the bias as one exactly computed sum rounded once. An affine operator applied to a map
//! would round its products, so the map is cut first into a layer without ReLU, except batch
//! norm and biases, which fold as in the chain translation.
//!
//! The first graph input is the explained input; a second one (the question) is a constant
//! given with `--question`. Shape arithmetic on constants and on the static sizes of computed
//! tensors is evaluated once ([`super::fold`]). A tensor computed before a cut and read after it
//! (a residual connection) is refused: the IR is a chain.

use std::rc::Rc;

use super::fold::{self, axis, broadcast_positions, count, reshaped, strides};
use super::*;
use crate::exact::dyadic::ExactSum;
use crate::model::ir::Shared;

/// Operators only this translation reads: a graph using one of them is not a chain.
pub(super) const GRAPH_OPS: &[&str] = &[
    "Concat",
    "Transpose",
    "Unsqueeze",
    "Squeeze",
    "Expand",
    "ReduceSum",
    "ReduceMean",
];

/// Every operator the graph translation reads, for error messages.
const READ: &[&str] = &[
    "Gemm",
    "MatMul",
    "Add",
    "Relu",
    "Conv",
    "BatchNormalization",
    "AveragePool",
    "GlobalAveragePool",
    "MaxPool",
    "Flatten",
    "Reshape",
    "Transpose",
    "Unsqueeze",
    "Squeeze",
    "Expand",
    "Concat",
    "ReduceSum",
    "ReduceMean",
    "Identity",
    "Dropout",
    "Constant",
];

/// One element of a tensor made of selected elements.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Elem {
    /// Input `i` of the current layer, with weight 1.
    Input(u32),
    Const(f64),
}

/// The outputs of an affine map of the current layer input, one per element in row-major
/// order.
#[derive(Clone, Debug)]
enum Map {
    /// `W` as [out, in] and the bias.
    Dense(Array2<f64>, Array1<f64>),
    /// One block for `copies` consecutive slices of the input.
    Shared(Array2<f64>, Array1<f64>, usize),
    Sparse(Vec<Vec<(u32, f64)>>, Vec<f64>),
}

impl Map {
    fn len(&self) -> usize {
        match self {
            Map::Dense(w, _) => w.nrows(),
            Map::Shared(w, _, copies) => w.nrows() * copies,
            Map::Sparse(rows, _) => rows.len(),
        }
    }
}

#[derive(Clone, Debug)]
enum Form {
    Select(Vec<Elem>),
    Map(Map),
}

/// A tensor computed from the data: its shape (the batch of 1 included) and its elements, in
/// terms of the input of layer `layer` (the number of layers cut before it).
#[derive(Clone, Debug)]
struct Data {
    dims: Vec<usize>,
    layer: usize,
    form: Form,
}

impl Data {
    /// Whether the tensor is expressed in the input of layer `layers` (the number of layers
    /// cut so far), or is made of constants only.
    fn reads_layer(&self, layers: usize) -> bool {
        self.layer == layers || self.constant()
    }

    fn constant(&self) -> bool {
        matches!(&self.form, Form::Select(e) if e.iter().all(|e| matches!(e, Elem::Const(_))))
    }
}

/// An input of a node: computed from the data, or constant.
enum Operand {
    Data(Rc<Data>),
    Const(Tensor),
}

struct Tracer<'a> {
    consts: HashMap<&'a str, Cow<'a, TensorProto>>,
    values: HashMap<&'a str, Rc<Data>>,
    /// The index of the last node that reads each tensor's values (graph outputs and Shape
    /// nodes are not counted).
    last_use: HashMap<&'a str, usize>,
    /// The index of the node being translated.
    at: usize,
    /// The graph output, never carried: a network output must end the graph.
    output: &'a str,
    layers: Vec<Layer>,
    /// The width of the current layer input.
    width: usize,
    keep_batch_norm: bool,
    /// The opset of the default domain (Unsqueeze, Squeeze and ReduceSum changed at 13).
    opset: i64,
}

/// `a + b` if f64 represents it exactly.
fn exact_sum(a: f64, b: f64) -> Option<f64> {
    let s = a + b;
    let bb = s - a;
    let err = (a - (s - bb)) + (b - bb);
    (s.is_finite() && err == 0.0).then_some(s)
}

/// Sorts a row by input and merges the weights of a repeated input, which must sum exactly.
fn merge_row(mut row: Vec<(u32, f64)>) -> Result<Vec<(u32, f64)>, String> {
    row.sort_by_key(|&(i, _)| i);
    let mut out: Vec<(u32, f64)> = Vec::with_capacity(row.len());
    for (i, w) in row {
        match out.last_mut() {
            Some((j, v)) if *j == i => {
                *v = exact_sum(*v, w).ok_or_else(|| {
                    format!(
                        "the weights {v} and {w} reach input {i} together and do not sum exactly \
                         in f64"
                    )
                })?;
            }
            _ => out.push((i, w)),
        }
    }
    Ok(out)
}

pub(super) fn translate<'a>(
    graph: &'a GraphProto,
    consts: HashMap<&'a str, Cow<'a, TensorProto>>,
    inputs: &[&'a ValueInfoProto],
    output: &ValueInfoProto,
    options: &OnnxOptions,
    opset: i64,
) -> Result<Vec<Layer>, String> {
    let (input, constant_input) = match inputs {
        [one] => (*one, None),
        [one, two] => (*one, Some(*two)),
        many => {
            let names: Vec<String> = many.iter().map(|v| format!("'{}'", v.name)).collect();
            return Err(format!(
                "the graph has {} data inputs ({}); at most two are read (the input and a \
                 question given with --question)",
                many.len(),
                names.join(", ")
            ));
        }
    };
    // A Shape reads only sizes, which are static: it keeps nothing alive.
    let mut last_use = HashMap::new();
    for (i, node) in graph.node.iter().enumerate() {
        if node.op_type == "Shape" {
            continue;
        }
        for name in &node.input {
            last_use.insert(name.as_str(), i);
        }
    }
    let mut tracer = Tracer {
        consts,
        values: HashMap::new(),
        last_use,
        at: 0,
        output: output.name.as_str(),
        layers: Vec::new(),
        width: 0,
        keep_batch_norm: options.keep_batch_norm,
        opset,
    };
    let dims = sample_dims(input)?;
    let width = count(&dims)?;
    if u32::try_from(width).is_err() || width == 0 {
        return Err(format!(
            "the graph input '{}' has {width} values per sample",
            input.name
        ));
    }
    tracer.width = width;
    let identity = (0..width as u32).map(Elem::Input).collect();
    tracer.values.insert(
        input.name.as_str(),
        Rc::new(Data {
            dims,
            layer: 0,
            form: Form::Select(identity),
        }),
    );
    match (constant_input, &options.question) {
        (Some(q), Some(values)) => {
            let dims = sample_dims(q)?;
            let n = count(&dims)?;
            if values.len() != n {
                return Err(format!(
                    "the graph's second input '{}' takes {n} values per sample, but --question \
                     gives {}",
                    q.name,
                    values.len()
                ));
            }
            let mut t = TensorProto::new();
            t.data_type = DataType::DOUBLE as i32;
            t.dims = dims.iter().map(|&d| d as i64).collect();
            t.double_data.clone_from(values);
            tracer.consts.insert(q.name.as_str(), Cow::Owned(t));
        }
        (Some(q), None) => {
            let n = sample_dims(q).and_then(|d| count(&d)).unwrap_or(0);
            return Err(format!(
                "the graph has a second input '{}' ({n} values per sample), the question of a \
                 relation network: give its values with --question",
                q.name
            ));
        }
        (None, _) => {}
    }

    for (i, node) in graph.node.iter().enumerate() {
        let label = node_label(node, i);
        tracer.at = i;
        tracer
            .node(node)
            .map_err(|problem| format!("{label}: {problem}"))?;
    }
    let Some(last) = tracer.values.get(output.name.as_str()).cloned() else {
        return Err(format!(
            "the graph output '{}' is not computed from the input '{}'",
            output.name, input.name
        ));
    };
    if !last.reads_layer(tracer.layers.len()) {
        return Err(format!(
            "the graph output '{}' was computed before layer {} was cut and a later node reads \
             it; a network output must end the graph",
            output.name,
            last.layer + 1
        ));
    }
    let declared = sample_dims(output).ok().and_then(|d| count(&d).ok());
    let width = last.dims.iter().product::<usize>();
    if let Some(d) = declared.filter(|&d| d != width) {
        return Err(format!(
            "the graph output '{}' declares {d} values per sample but the network computes {width}",
            output.name
        ));
    }
    let identity = matches!(&last.form, Form::Select(e) if is_identity(e, tracer.width));
    if !identity || tracer.layers.is_empty() {
        tracer
            .cut(&last, false)
            .map_err(|problem| format!("the graph output '{}': {problem}", output.name))?;
    }
    Ok(tracer.layers)
}

/// The static dimensions of a graph input or output, with a batch of 1 first: the leading
/// dimension may be dynamic or 1.
fn sample_dims(value: &ValueInfoProto) -> Result<Vec<usize>, String> {
    let name = &value.name;
    let Some(type_proto::Value::TensorType(tensor)) =
        value.type_.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err(format!("'{name}' declares no tensor type"));
    };
    let Some(shape) = tensor.shape.as_ref() else {
        return Err(format!(
            "'{name}' declares no shape; a graph read tensor by tensor needs static sizes"
        ));
    };
    let mut dims = Vec::with_capacity(shape.dim.len());
    for (k, d) in shape.dim.iter().enumerate() {
        match (k, static_dim(d)) {
            (0, None | Some(1)) => dims.push(1),
            (0, Some(b)) => {
                return Err(format!(
                "'{name}' has a static batch of {b}; export with a batch of 1 or a dynamic batch"
            ))
            }
            (_, Some(v)) if v as usize <= MAX_IMAGE_SIDE => dims.push(v as usize),
            _ => {
                return Err(format!(
                "'{name}' has a dynamic or oversized dimension {k}; only the batch may be dynamic"
            ))
            }
        }
    }
    if dims.len() < 2 {
        return Err(format!(
            "'{name}' has rank {}; [batch, ...] with at least one dimension per sample is needed",
            dims.len()
        ));
    }
    Ok(dims)
}

fn is_identity(elems: &[Elem], width: usize) -> bool {
    elems.len() == width
        && elems
            .iter()
            .enumerate()
            .all(|(i, e)| *e == Elem::Input(i as u32))
}

impl<'a> Tracer<'a> {
    fn node(&mut self, node: &'a NodeProto) -> Result<(), String> {
        let op = node.op_type.as_str();
        if op == "Constant" {
            let out = first_output(node)?;
            let tensor = constant_tensor(node)?;
            self.consts.insert(out, tensor);
            return Ok(());
        }
        if let Some(unknown) = node.input.iter().find(|n| {
            !n.is_empty()
                && !self.values.contains_key(n.as_str())
                && !self.consts.contains_key(n.as_str())
        }) {
            return Err(format!(
                "it reads '{unknown}', which no graph input, initializer or earlier node defines"
            ));
        }
        // Shape arithmetic on constants (and the static sizes of computed tensors) is folded.
        let inputs = node.input.iter().filter(|n| !n.is_empty());
        let constant = inputs.clone().count() > 0
            && inputs.clone().all(|n| self.consts.contains_key(n.as_str()));
        if is_default_domain(&node.domain)
            && fold::FOLDED.contains(&op)
            && (constant || op == "Shape")
        {
            let sizes = |name: &str| self.values.get(name).map(|d| d.dims.clone());
            let t = fold::fold(node, &self.consts, &sizes, self.opset)?;
            self.consts.insert(first_output(node)?, Cow::Owned(t));
            return Ok(());
        }
        if !is_default_domain(&node.domain) || !READ.contains(&op) {
            let hint = match op {
                o if fold::FOLDED.contains(&o) => {
                    " (read on constants and shapes only, not on tensors computed from the input)"
                }
                _ => "",
            };
            return Err(format!(
                "unsupported operator '{op}'{hint}; dtdcert reads {}",
                READ.join(", ")
            ));
        }
        let data_inputs = node
            .input
            .iter()
            .filter(|n| self.values.contains_key(n.as_str()))
            .count();
        if data_inputs == 0 {
            if matches!(op, "Identity" | "Dropout") {
                let (from, to) = (required_input(node, 0, "input")?, first_output(node)?);
                let t = self
                    .consts
                    .get(from)
                    .cloned()
                    .ok_or_else(|| format!("it reads '{from}', which is not defined"))?;
                self.consts.insert(to, t);
                return Ok(());
            }
            return Err(format!(
                "every input is a constant; {op} is read only on tensors computed from the input \
                 (export with constant folding)"
            ));
        }
        let out = match op {
            "Identity" => self.data(node, 0)?.as_ref().clone(),
            "Dropout" => self.dropout(node)?,
            "Relu" => {
                let x = self.data(node, 0)?;
                self.cut(&x, true)?
            }
            "Gemm" => self.gemm(node)?,
            "MatMul" => self.matmul(node)?,
            "Add" => self.add(node)?,
            "Conv" => self.conv(node)?,
            "BatchNormalization" => self.batch_norm(node)?,
            "AveragePool" | "GlobalAveragePool" => self.average_pool(node)?,
            "MaxPool" => self.max_pool(node)?,
            "Flatten" => self.flatten(node)?,
            "Reshape" => self.reshape(node)?,
            "Transpose" => self.transpose(node)?,
            "Unsqueeze" | "Squeeze" => self.squeeze(node)?,
            "Expand" => self.expand(node)?,
            "Concat" => self.concat(node)?,
            "ReduceSum" | "ReduceMean" => self.reduce(node)?,
            _ => unreachable!("every operator of READ is translated"),
        };
        let name = first_output(node)?;
        if self.values.insert(name, Rc::new(out)).is_some() || self.consts.contains_key(name) {
            return Err(format!("its output '{name}' is already defined"));
        }
        Ok(())
    }

    /// Input `pos` of a node, which must be computed from the data and expressed in the
    /// current layer's input.
    fn data(&self, node: &NodeProto, pos: usize) -> Result<Rc<Data>, String> {
        match self.operand(node, pos)? {
            Operand::Data(d) => Ok(d),
            // A constant where the data is expected: selected constants.
            Operand::Const(t) => Ok(Rc::new(self.with(
                t.dims,
                Form::Select(t.data.into_iter().map(Elem::Const).collect()),
            ))),
        }
    }

    fn operand(&self, node: &NodeProto, pos: usize) -> Result<Operand, String> {
        let name = required_input(node, pos, "data")?;
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

    fn floats(&self, name: &str) -> Result<Tensor, String> {
        float_tensor(name, self.consts.get(name).map(AsRef::as_ref))
    }

    fn ints(&self, name: &str) -> Result<Vec<i64>, String> {
        int64_values(name, self.consts.get(name).map(AsRef::as_ref))
    }

    /// Cuts `x` into a layer of the chain (with a ReLU when `relu`) and returns its outputs as
    /// the new layer input, in `x`'s shape. Tensors of the current layer that a later node
    /// reads (the input of a residual connection) are carried into the new layer as extra
    /// outputs without ReLU, and read from there.
    fn cut(&mut self, x: &Data, relu: bool) -> Result<Data, String> {
        let carried = self.live_tensors();
        if carried.is_empty() {
            return self.cut_alone(x, relu);
        }
        let (mut rows, mut bias) = form_rows(&x.form)?;
        let own = rows.len();
        let mut places = Vec::with_capacity(carried.len());
        for (names, data) in &carried {
            let (r, b) = form_rows(&data.form)?;
            places.push((names, data, rows.len(), r.len()));
            rows.extend(r);
            bias.extend(b);
        }
        let out = rows.len();
        if u32::try_from(out).is_err() {
            return Err(format!("a layer of {out} outputs is too wide"));
        }
        let affine = Sparse::from_rows(self.width, rows, Array1::from(bias))
            .map(Affine::Sparse)
            .map_err(|e| e.to_string())?;
        self.layers.push(Layer {
            affine,
            relu,
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
            });
            for name in names {
                self.values.insert(name, Rc::clone(&moved));
            }
        }
        Ok(Data {
            dims: x.dims.clone(),
            layer,
            form: Form::Select((0..own as u32).map(Elem::Input).collect()),
        })
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
    fn cut_alone(&mut self, x: &Data, relu: bool) -> Result<Data, String> {
        let width = self.width;
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
        }
        .map_err(|e| e.to_string())?;
        let out = affine.out_dim();
        if u32::try_from(out).is_err() {
            return Err(format!("a layer of {out} outputs is too wide"));
        }
        self.layers.push(Layer::new(affine, relu));
        self.width = out;
        Ok(Data {
            dims: x.dims.clone(),
            layer: self.layers.len(),
            form: Form::Select((0..out as u32).map(Elem::Input).collect()),
        })
    }

    /// Selected elements of `x` (a map is cut into a layer without ReLU first).
    fn select(&mut self, x: &Data) -> Result<Vec<Elem>, String> {
        match &x.form {
            Form::Select(e) => Ok(e.clone()),
            Form::Map(_) => match self.cut(x, false)?.form {
                Form::Select(e) => Ok(e),
                Form::Map(_) => unreachable!("a cut gives selected elements"),
            },
        }
    }

    fn with(&self, dims: Vec<usize>, form: Form) -> Data {
        Data {
            dims,
            layer: self.layers.len(),
            form,
        }
    }

    /// The affine step whose output `o` is `Σ (position, weight) of rows[o]` over the elements
    /// of `x` plus `bias[o]`, composed exactly with `x`'s selected elements.
    fn linear(
        &mut self,
        x: &Data,
        rows: Vec<Vec<(usize, f64)>>,
        bias: Vec<f64>,
        dims: Vec<usize>,
    ) -> Result<Data, String> {
        rows.iter()
            .try_fold(0usize, |a, r| a.checked_add(r.len()))
            .filter(|&n| n <= MAX_LOWERED_ENTRIES)
            .ok_or("the step would store more than 2^26 weights")?;
        let elems = self.select(x)?;
        let mut out_rows = Vec::with_capacity(rows.len());
        let mut out_bias = Vec::with_capacity(rows.len());
        for (o, (row, b)) in rows.into_iter().zip(bias).enumerate() {
            let mut inputs = Vec::with_capacity(row.len());
            let mut constant: Option<ExactSum> = None;
            for (pos, w) in row {
                match elems[pos] {
                    Elem::Input(i) => inputs.push((i, w)),
                    Elem::Const(c) if c != 0.0 && w != 0.0 => constant
                        .get_or_insert_with(|| {
                            let mut s = ExactSum::new();
                            s.add(b);
                            s
                        })
                        .add_product(w, c),
                    Elem::Const(_) => {}
                }
            }
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

    /// Rearranges (and copies) the elements of `x`: output `p` is element `from[p]`. A map is
    /// cut first, unless the order is kept.
    fn gather(&mut self, x: &Data, from: &[usize], dims: Vec<usize>) -> Result<Data, String> {
        let kept = from.len() == x.dims.iter().product::<usize>()
            && from.iter().enumerate().all(|(p, &f)| p == f);
        if kept {
            return Ok(Data {
                dims,
                layer: x.layer,
                form: x.form.clone(),
            });
        }
        let elems = self.select(x)?;
        let form = Form::Select(from.iter().map(|&f| elems[f]).collect());
        Ok(self.with(dims, form))
    }

    fn dropout(&mut self, node: &NodeProto) -> Result<Data, String> {
        inference_dropout(node, &self.consts)?;
        Ok(self.data(node, 0)?.as_ref().clone())
    }

    /// `alpha · A · op(B) + beta · C` on data `A` of shape [M, K].
    fn gemm(&mut self, node: &NodeProto) -> Result<Data, String> {
        check_only(node, &["alpha", "beta", "transA", "transB"])?;
        let x = self.data(node, 0)?;
        let (weight, bias) = gemm_weights(node, |name| self.floats(name))?;
        let [m, k] = x.dims[..] else {
            return Err(format!(
                "Gemm needs [rows, features] data but the data has shape {:?}",
                x.dims
            ));
        };
        self.affine_rows(&x, m, k, weight, bias)
    }

    /// `A · B` on data `A` of shape [..., K] with a constant [K, N] matrix `B`.
    fn matmul(&mut self, node: &NodeProto) -> Result<Data, String> {
        let x = self.data(node, 0)?;
        let weight = matmul_weight(node, |name| self.floats(name))?;
        let Some((&k, lead)) = x.dims.split_last() else {
            return Err("MatMul of a scalar".into());
        };
        let m = lead.iter().product();
        let mut dims = lead.to_vec();
        dims.push(k);
        let out = weight.nrows();
        let mut y = self.affine_rows(&x, m, k, weight, Array1::zeros(out))?;
        dims.pop();
        dims.push(out);
        y.dims = dims;
        Ok(y)
    }

    /// The same affine map on each of the `m` rows of `k` values of `x`: one dense layer for a
    /// single row, one shared block for several, composed sparse rows when the elements are not
    /// the layer input itself.
    fn affine_rows(
        &mut self,
        x: &Data,
        m: usize,
        k: usize,
        weight: Array2<f64>,
        bias: Array1<f64>,
    ) -> Result<Data, String> {
        if weight.ncols() != k {
            return Err(format!(
                "the weight takes {} values per row but the data has {k}",
                weight.ncols()
            ));
        }
        let n = weight.nrows();
        let dims = vec![m, n];
        let elems = self.select(x)?;
        if is_identity(&elems, self.width) {
            let form = if m == 1 {
                Form::Map(Map::Dense(weight, bias))
            } else {
                Form::Map(Map::Shared(weight, bias, m))
            };
            return Ok(self.with(dims, form));
        }
        m.checked_mul(n)
            .and_then(|r| r.checked_mul(k))
            .filter(|&e| e <= MAX_LOWERED_ENTRIES)
            .ok_or_else(|| format!("{m}·{n} rows of {k} weights are more than 2^26"))?;
        let mut rows = Vec::with_capacity(m * n);
        let mut b = Vec::with_capacity(m * n);
        for r in 0..m {
            for j in 0..n {
                rows.push((0..k).map(|c| (r * k + c, weight[[j, c]])).collect());
                b.push(bias[j]);
            }
        }
        let selected = self.with(x.dims.clone(), Form::Select(elems));
        self.linear(&selected, rows, b, dims)
    }

    /// Data plus a constant (broadcast to the data's shape), or data plus data of one shape.
    fn add(&mut self, node: &NodeProto) -> Result<Data, String> {
        let (a, b) = (self.operand(node, 0)?, self.operand(node, 1)?);
        match (a, b) {
            (Operand::Data(x), Operand::Const(c)) | (Operand::Const(c), Operand::Data(x)) => {
                let at = broadcast_positions(&c.dims, &x.dims)?;
                let shift: Vec<f64> = at.iter().map(|&p| c.data[p]).collect();
                if let Form::Map(map) = &x.form {
                    if let Some(map) = shifted(map, &shift) {
                        return Ok(self.with(x.dims.clone(), Form::Map(map)));
                    }
                }
                let rows = (0..shift.len()).map(|p| vec![(p, 1.0)]).collect();
                self.linear(&x, rows, shift, x.dims.clone())
            }
            (Operand::Data(x), Operand::Data(y)) => {
                if x.dims != y.dims {
                    return Err(format!(
                        "Add of computed tensors of shapes {:?} and {:?}; only equal shapes are read",
                        x.dims, y.dims
                    ));
                }
                if let (Form::Select(ex), Form::Select(ey)) = (&x.form, &y.form) {
                    let n = ex.len();
                    let both = self.with(
                        vec![2 * n],
                        Form::Select(ex.iter().chain(ey).copied().collect()),
                    );
                    let rows = (0..n).map(|p| vec![(p, 1.0), (n + p, 1.0)]).collect();
                    return self.linear(&both, rows, vec![0.0; n], x.dims.clone());
                }
                // An affine map plus another tensor of the same layer input (the two branches
                // of a residual connection): the rows added entry by entry, exactly; the two
                // biases summed and rounded once (as the constants of `linear`).
                let ((rx, bx), (ry, by)) = (form_rows(&x.form)?, form_rows(&y.form)?);
                let mut rows = Vec::with_capacity(rx.len());
                let mut bias = Vec::with_capacity(rx.len());
                for ((a, b), (ba, bb)) in rx.into_iter().zip(ry).zip(bx.into_iter().zip(by)) {
                    rows.push(merge_row(a.into_iter().chain(b).collect())?);
                    let sum = ba + bb;
                    if !sum.is_finite() {
                        return Err(format!("the biases {ba} and {bb} sum beyond f64"));
                    }
                    bias.push(sum);
                }
                Ok(self.with(x.dims.clone(), Form::Map(Map::Sparse(rows, bias))))
            }
            (Operand::Const(_), Operand::Const(_)) => unreachable!("one input is data"),
        }
    }

    fn image(&self, x: &Data, op: &str) -> Result<[usize; 3], String> {
        match x.dims[..] {
            [1, c, h, w] => Ok([c, h, w]),
            _ => Err(format!(
                "{op} needs [batch, channels, height, width] data but the data has shape {:?}",
                x.dims
            )),
        }
    }

    fn conv(&mut self, node: &NodeProto) -> Result<Data, String> {
        check_only(
            node,
            &[
                "auto_pad",
                "dilations",
                "group",
                "kernel_shape",
                "pads",
                "strides",
            ],
        )?;
        let x = self.data(node, 0)?;
        let image = self.image(&x, "Conv")?;
        let (rows, bias, [c_out, ho, wo]) = conv_layer(node, image, |name| self.floats(name))?;
        let rows = rows
            .into_iter()
            .map(|r| r.into_iter().map(|(i, v)| (i as usize, v)).collect())
            .collect();
        self.linear(&x, rows, bias, vec![1, c_out, ho, wo])
    }

    fn average_pool(&mut self, node: &NodeProto) -> Result<Data, String> {
        let x = self.data(node, 0)?;
        let op = node.op_type.as_str();
        let [c, h, w] = self.image(&x, op)?;
        let (window, include_pad) = if op == "GlobalAveragePool" {
            check_only(node, &[])?;
            let window = Window {
                kernel: [h, w],
                strides: [1, 1],
                pads: [0; 4],
            };
            (window, false)
        } else {
            check_only(
                node,
                &[
                    "auto_pad",
                    "ceil_mode",
                    "count_include_pad",
                    "dilations",
                    "kernel_shape",
                    "pads",
                    "strides",
                ],
            )?;
            if attr_int(node, "ceil_mode")?.unwrap_or(0) != 0 {
                return Err("ceil_mode = 1 is not supported; only 0 (floor) is".into());
            }
            let include = attr_int(node, "count_include_pad")?.unwrap_or(0) != 0;
            (Window::read(node, None)?, include)
        };
        let [ho, wo] = window.output(h, w)?;
        let rows = pool_rows(op, [c, h, w], &window, include_pad)?
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|(i, v)| (i as usize, v))
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>();
        let n = rows.len();
        self.linear(&x, rows, vec![0.0; n], vec![1, c, ho, wo])
    }

    /// A max-pool layer gathering each window of `x`'s elements; `x` is first cut into a
    /// layer when it is an affine map or holds constants.
    fn max_pool(&mut self, node: &NodeProto) -> Result<Data, String> {
        check_only(node, MAX_POOL_ATTRIBUTES)?;
        let x = self.data(node, 0)?;
        let [c, h, w] = self.image(&x, "MaxPool")?;
        let (window, [ho, wo]) = max_pool_window(node, [h, w])?;
        let (rows, size) = max_pool_rows([c, h, w], &window)?;
        let inputs = match &x.form {
            Form::Select(elems) if elems.iter().all(|e| matches!(e, Elem::Input(_))) => {
                elems.clone()
            }
            _ => match self.cut(&x, false)?.form {
                Form::Select(e) => e,
                Form::Map(_) => unreachable!("a cut gives selected elements"),
            },
        };
        let rows: Vec<Vec<(u32, f64)>> = rows
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .map(|(p, v)| match inputs[p as usize] {
                        Elem::Input(i) => (i, v),
                        Elem::Const(_) => unreachable!("constants were cut into a layer"),
                    })
                    .collect()
            })
            .collect();
        let n = rows.len();
        let affine = Sparse::from_rows(self.width, rows, Array1::zeros(n))
            .map(Affine::Sparse)
            .map_err(|e| e.to_string())?;
        self.layers.push(Layer {
            affine,
            relu: false,
            max_pool: Some(size),
            linear_tail: 0,
        });
        let out = c * ho * wo;
        self.width = out;
        Ok(Data {
            dims: vec![1, c, ho, wo],
            layer: self.layers.len(),
            form: Form::Select((0..out as u32).map(Elem::Input).collect()),
        })
    }

    fn batch_norm(&mut self, node: &NodeProto) -> Result<Data, String> {
        check_only(node, &["epsilon", "momentum", "training_mode"])?;
        let x = self.data(node, 0)?;
        if x.dims.len() < 2 {
            return Err("BatchNormalization needs [batch, channels, ...] data".into());
        }
        let channels = x.dims[1];
        let per_channel: usize = x.dims[2..].iter().product();
        let (s, t) = batch_norm_parameters(node, channels, |name| self.floats(name))?;
        let n = channels * per_channel;
        let channel_of = |p: usize| (p / per_channel) % channels;
        if let (Form::Map(map), false) = (&x.form, self.keep_batch_norm) {
            if let Some(map) = normalised(map, &x.dims, &s, &t) {
                return Ok(self.with(x.dims.clone(), Form::Map(map)));
            }
        }
        let x = match &x.form {
            Form::Map(_) => self.cut(&x, false)?,
            Form::Select(_) => x.as_ref().clone(),
        };
        let rows = (0..n).map(|p| vec![(p, s[channel_of(p)])]).collect();
        let bias = (0..n).map(|p| t[channel_of(p)]).collect();
        self.linear(&x, rows, bias, x.dims.clone())
    }

    fn flatten(&mut self, node: &NodeProto) -> Result<Data, String> {
        check_only(node, &["axis"])?;
        let x = self.data(node, 0)?;
        let a = match attr_int(node, "axis")?.unwrap_or(1) {
            v if v == x.dims.len() as i64 => x.dims.len(),
            v => axis(v, x.dims.len(), "axis")?,
        };
        let dims = vec![x.dims[..a].iter().product(), x.dims[a..].iter().product()];
        let n = x.dims.iter().product();
        self.gather(&x, &(0..n).collect::<Vec<_>>(), dims)
    }

    fn reshape(&mut self, node: &NodeProto) -> Result<Data, String> {
        check_only(node, &["allowzero"])?;
        let x = self.data(node, 0)?;
        let shape_name = required_input(node, 1, "shape")?;
        let target = self.ints(shape_name)?;
        let allow_zero = attr_int(node, "allowzero")?.unwrap_or(0) != 0;
        let dims = reshaped(&x.dims, &target, allow_zero)?;
        let n = count(&dims)?;
        self.gather(&x, &(0..n).collect::<Vec<_>>(), dims)
    }

    fn transpose(&mut self, node: &NodeProto) -> Result<Data, String> {
        check_only(node, &["perm"])?;
        let x = self.data(node, 0)?;
        let (dims, from) = fold::transposed(node, &x.dims)?;
        self.gather(&x, &from, dims)
    }

    /// Unsqueeze and Squeeze: the elements keep their order.
    fn squeeze(&mut self, node: &NodeProto) -> Result<Data, String> {
        check_only(node, &["axes"])?;
        let x = self.data(node, 0)?;
        let axes = match node.input.get(1).filter(|n| !n.is_empty()) {
            Some(name) if self.opset >= 13 => Some(self.ints(name)?),
            Some(name) => return Err(format!("axes as an input ('{name}') before opset 13")),
            None => attr_ints(node, "axes")?,
        };
        let dims = fold::squeezed(&node.op_type, &x.dims, axes, 1)?;
        let n = x.dims.iter().product();
        self.gather(&x, &(0..n).collect::<Vec<_>>(), dims)
    }

    fn expand(&mut self, node: &NodeProto) -> Result<Data, String> {
        let x = self.data(node, 0)?;
        let shape_name = required_input(node, 1, "shape")?;
        let shape = self.ints(shape_name)?;
        let rank = shape.len().max(x.dims.len());
        let mut dims = vec![1usize; rank];
        for (k, d) in dims.iter_mut().enumerate() {
            let from = (k + x.dims.len()).checked_sub(rank).map(|i| x.dims[i]);
            let to = (k + shape.len()).checked_sub(rank).map(|i| shape[i]);
            *d = match (from, to) {
                (Some(a), None) => a,
                (Some(a), Some(b)) if b == 1 || b as usize == a => a,
                (Some(1) | None, Some(b)) if b >= 1 => b as usize,
                _ => {
                    return Err(format!(
                        "Expand of shape {:?} to {shape:?} does not broadcast",
                        x.dims
                    ))
                }
            };
        }
        if dims[0] != 1 {
            return Err(format!("Expand to {shape:?} makes a batch of {}", dims[0]));
        }
        let from = broadcast_positions(&x.dims, &dims)?;
        self.gather(&x, &from, dims)
    }

    fn concat(&mut self, node: &NodeProto) -> Result<Data, String> {
        check_only(node, &["axis"])?;
        if node.input.is_empty() {
            return Err("Concat without inputs".into());
        }
        let parts: Vec<Operand> = (0..node.input.len())
            .map(|pos| self.operand(node, pos))
            .collect::<Result<_, _>>()?;
        let shapes: Vec<&[usize]> = parts
            .iter()
            .map(|p| match p {
                Operand::Data(d) => &d.dims[..],
                Operand::Const(t) => &t.dims[..],
            })
            .collect();
        let rank = shapes[0].len();
        let a = axis(
            attr_int(node, "axis")?.ok_or("Concat without an axis")?,
            rank,
            "axis",
        )?;
        for s in &shapes {
            let same = s.len() == rank && (0..rank).all(|k| k == a || s[k] == shapes[0][k]);
            if !same {
                return Err(format!(
                    "Concat along axis {a} of shapes {shapes:?}: the other dimensions differ"
                ));
            }
        }
        let mut dims = shapes[0].to_vec();
        dims[a] = shapes.iter().map(|s| s[a]).sum();
        let n = count(&dims)?;
        let selected = parts.iter().all(|p| match p {
            Operand::Data(d) => matches!(d.form, Form::Select(_)),
            Operand::Const(_) => true,
        });
        // Each part's elements, and where each output element comes from.
        let outer: usize = dims[..a].iter().product();
        let inner: usize = dims[a + 1..].iter().product();
        let mut source = Vec::with_capacity(n);
        for o in 0..outer {
            for (t, s) in shapes.iter().enumerate() {
                for i in 0..s[a] * inner {
                    source.push((t, o * s[a] * inner + i));
                }
            }
        }
        if selected {
            let elems: Vec<Vec<Elem>> = parts
                .iter()
                .map(|p| match p {
                    Operand::Data(d) => match &d.form {
                        Form::Select(e) => e.clone(),
                        Form::Map(_) => unreachable!("checked above"),
                    },
                    Operand::Const(t) => t.data.iter().map(|&v| Elem::Const(v)).collect(),
                })
                .collect();
            let form = Form::Select(source.iter().map(|&(t, i)| elems[t][i]).collect());
            return Ok(self.with(dims, form));
        }
        // Parts that are maps: their rows, concatenated into one map.
        let mut rows = Vec::with_capacity(n);
        let mut bias = Vec::with_capacity(n);
        let materialised: Vec<Rows> = parts.iter().map(rows_of).collect::<Result<_, _>>()?;
        for (t, i) in source {
            rows.push(materialised[t].0[i].clone());
            bias.push(materialised[t].1[i]);
        }
        Ok(self.with(dims, Form::Map(Map::Sparse(rows, bias))))
    }

    /// ReduceSum, or ReduceMean (the sum with weights `1/count`, each the f64 nearest it, as in
    /// average pooling).
    fn reduce(&mut self, node: &NodeProto) -> Result<Data, String> {
        check_only(node, &["axes", "keepdims", "noop_with_empty_axes"])?;
        let op = node.op_type.as_str();
        let x = self.data(node, 0)?;
        let rank = x.dims.len();
        // The axes became an input at opset 13 for ReduceSum, at 18 for ReduceMean.
        let axes_input = if op == "ReduceSum" { 13 } else { 18 };
        let axes = match node.input.get(1).filter(|n| !n.is_empty()) {
            Some(name) if self.opset >= axes_input => Some(self.ints(name)?),
            Some(name) => {
                return Err(format!(
                    "axes as an input ('{name}') before opset {axes_input}"
                ))
            }
            None => attr_ints(node, "axes")?,
        };
        let noop = attr_int(node, "noop_with_empty_axes")?.unwrap_or(0) != 0;
        let mut reduced: Vec<usize> = match axes {
            Some(a) if !a.is_empty() => a
                .iter()
                .map(|&v| axis(v, rank, "axis"))
                .collect::<Result<_, _>>()?,
            _ if noop => return Ok(x.as_ref().clone()),
            _ => (0..rank).collect(),
        };
        reduced.sort_unstable();
        reduced.dedup();
        if reduced.contains(&0) {
            return Err(format!("{op} over the batch dimension mixes samples"));
        }
        let count: usize = reduced.iter().map(|&k| x.dims[k]).product();
        let weight = if op == "ReduceSum" {
            1.0
        } else {
            1.0 / count as f64
        };
        let keep = attr_int(node, "keepdims")?.unwrap_or(1) != 0;
        let kept_dims: Vec<usize> = (0..rank)
            .map(|k| if reduced.contains(&k) { 1 } else { x.dims[k] })
            .collect();
        let outputs: usize = kept_dims.iter().product();
        let (si, so) = (strides(&x.dims), strides(&kept_dims));
        let n: usize = x.dims.iter().product();
        let mut rows: Vec<Vec<(usize, f64)>> = vec![Vec::new(); outputs];
        for p in 0..n {
            let o: usize = (0..rank)
                .map(|k| {
                    let i = (p / si[k]) % x.dims[k];
                    if reduced.contains(&k) {
                        0
                    } else {
                        i * so[k]
                    }
                })
                .sum();
            rows[o].push((p, weight));
        }
        let dims = if keep {
            kept_dims
        } else {
            (0..rank)
                .filter(|k| !reduced.contains(k))
                .map(|k| x.dims[k])
                .collect()
        };
        self.linear(&x, rows, vec![0.0; outputs], dims)
    }
}

/// Sparse rows over the current layer input and their biases.
type Rows = (Vec<Vec<(u32, f64)>>, Vec<f64>);

/// The rows of an operand over the current layer input (a constant: rows without inputs).
fn rows_of(part: &Operand) -> Result<Rows, String> {
    match part {
        Operand::Const(t) => Ok((vec![Vec::new(); t.data.len()], t.data.clone())),
        Operand::Data(d) => form_rows(&d.form),
    }
}

/// The rows of a tensor over the current layer input, and their biases.
fn form_rows(form: &Form) -> Result<Rows, String> {
    Ok(match form {
        Form::Select(e) => e
            .iter()
            .map(|e| match e {
                Elem::Input(i) => (vec![(*i, 1.0)], 0.0),
                Elem::Const(c) => (Vec::new(), *c),
            })
            .unzip(),
        Form::Map(Map::Sparse(rows, bias)) => (rows.clone(), bias.clone()),
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

/// `b + shift` entry by entry (`shift` may be longer: a shared block's copies), or `None`
/// when a sum rounds.
fn shifted_bias<'a>(b: impl IntoIterator<Item = &'a f64>, shift: &[f64]) -> Option<Vec<f64>> {
    b.into_iter()
        .zip(shift)
        .map(|(&x, &s)| exact_sum(x, s))
        .collect()
}

/// `map + shift` with each bias entry summed exactly, or `None` when a sum rounds.
fn shifted(map: &Map, shift: &[f64]) -> Option<Map> {
    match map {
        Map::Dense(w, b) => Some(Map::Dense(w.clone(), Array1::from(shifted_bias(b, shift)?))),
        Map::Sparse(rows, b) => Some(Map::Sparse(rows.clone(), shifted_bias(b, shift)?)),
        Map::Shared(w, b, copies) => {
            // One block: the shift must be the same for every copy.
            let rows = w.nrows();
            let same = (0..shift.len()).all(|j| shift[j] == shift[j % rows]);
            if !same {
                return None;
            }
            let b = shifted_bias(b, shift)?;
            Some(Map::Shared(w.clone(), Array1::from(b), *copies))
        }
    }
}

/// Batch norm folded into a map as the chain translation folds it (`s·w` and `s·b + t`, each
/// rounded once), or `None` for a shared map whose copies would need different scales.
fn normalised(map: &Map, dims: &[usize], s: &[f64], t: &[f64]) -> Option<Map> {
    let channels = dims[1];
    let per_channel: usize = dims[2..].iter().product();
    let channel_of = |p: usize| (p / per_channel) % channels;
    match map {
        Map::Dense(w, b) => {
            let (w, b) = scaled(w, b, channel_of, s, t);
            Some(Map::Dense(w, b))
        }
        Map::Sparse(rows, b) => {
            let mut rows = rows.clone();
            let mut b = b.clone();
            for (j, row) in rows.iter_mut().enumerate() {
                let c = channel_of(j);
                row.iter_mut().for_each(|(_, v)| *v *= s[c]);
                b[j] = b[j] * s[c] + t[c];
            }
            Some(Map::Sparse(rows, b))
        }
        Map::Shared(w, b, copies) => {
            let rows = w.nrows();
            let same = (0..rows * copies).all(|j| channel_of(j) == channel_of(j % rows));
            if !same {
                return None;
            }
            let (w, b) = scaled(w, b, channel_of, s, t);
            Some(Map::Shared(w, b, *copies))
        }
    }
}

/// `s·w` and `s·b + t` for each row `j` of a matrix, with the channel `channel_of(j)`.
fn scaled(
    w: &Array2<f64>,
    b: &Array1<f64>,
    channel_of: impl Fn(usize) -> usize,
    s: &[f64],
    t: &[f64],
) -> (Array2<f64>, Array1<f64>) {
    let (mut w, mut b) = (w.clone(), b.clone());
    for (j, mut row) in w.rows_mut().into_iter().enumerate() {
        let c = channel_of(j);
        row.mapv_inplace(|v| v * s[c]);
        b[j] = b[j] * s[c] + t[c];
    }
    (w, b)
}

fn first_output(node: &NodeProto) -> Result<&str, String> {
    node.output
        .first()
        .filter(|n| !n.is_empty())
        .map(String::as_str)
        .ok_or_else(|| "it has no output".to_string())
}

/// Refuses any attribute outside `known`: ignoring one could change the function.
fn check_only(node: &NodeProto, known: &[&str]) -> Result<(), String> {
    match node
        .attribute
        .iter()
        .find(|a| !known.contains(&a.name.as_str()))
    {
        Some(a) => Err(format!(
            "attribute '{}' of {} is not supported",
            a.name, node.op_type
        )),
        None => Ok(()),
    }
}
