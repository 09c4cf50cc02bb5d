//! The network IR: a validated sequence of layers, each an affine map followed by an optional
//! ReLU. It knows nothing of file formats; loaders translate into it.

use std::sync::Arc;

use ndarray::{Array1, Array2};
use sha2::{Digest, Sha256};

use crate::error::{invalid, Result};
use crate::exact::{Rational, Scalar};

/// The most parameters a model may declare; larger models are refused before allocation.
pub const MAX_PARAMETERS: usize = 1 << 31;

/// A dense affine map `z = W a + b`, `W` of shape (outputs, inputs).
#[derive(Clone, Debug, PartialEq)]
pub struct Dense<T = f64> {
    weight: Array2<T>,
    bias: Array1<T>,
    /// Which inputs each output is connected to, where that is not all of them (a
    /// convolution or pooling written as a dense layer: its window's positions). `None`:
    /// every input.
    connections: Option<Arc<Connections>>,
}

/// The inputs each output of a layer is connected to, row by row (compressed rows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Connections {
    offsets: Vec<usize>,
    inputs: Vec<u32>,
}

impl Connections {
    /// From one list of input indices per output.
    pub fn from_rows(rows: Vec<Vec<u32>>) -> Self {
        let mut offsets = Vec::with_capacity(rows.len() + 1);
        offsets.push(0);
        let mut inputs = Vec::new();
        for r in rows {
            inputs.extend(r);
            offsets.push(inputs.len());
        }
        Connections { offsets, inputs }
    }

    pub fn row(&self, j: usize) -> &[u32] {
        &self.inputs[self.offsets[j]..self.offsets[j + 1]]
    }

    fn rows(&self) -> usize {
        self.offsets.len() - 1
    }
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
        Ok(Self {
            weight: weight.as_standard_layout().into_owned(),
            bias,
            connections: None,
        })
    }

    /// [`Dense::new`] for a layer whose outputs see only some inputs (each listed input index
    /// must be in range; weights outside the lists must be zero).
    pub fn with_connections(
        weight: Array2<T>,
        bias: Array1<T>,
        connections: Connections,
    ) -> Result<Self> {
        let mut d = Self::new(weight, bias)?;
        if connections.rows() != d.weight.nrows() {
            return Err(invalid(format!(
                "connections for {} rows, the layer has {}",
                connections.rows(),
                d.weight.nrows()
            )));
        }
        let cols = d.weight.ncols();
        for j in 0..connections.rows() {
            let listed = connections.row(j);
            if listed.iter().any(|&i| i as usize >= cols) {
                return Err(invalid(format!("connections of row {j} out of range")));
            }
            let mut seen = vec![false; cols];
            for &i in listed {
                seen[i as usize] = true;
            }
            if let Some(i) = (0..cols).find(|&i| !seen[i] && !d.weight[[j, i]].is_zero()) {
                return Err(invalid(format!(
                    "row {j} has a weight at input {i}, which its connections do not list"
                )));
            }
        }
        d.connections = Some(Arc::new(connections));
        Ok(d)
    }

    pub fn weight(&self) -> &Array2<T> {
        &self.weight
    }

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

/// The affine part of a layer. Closed: every pass matches it exhaustively.
#[derive(Clone, Debug, PartialEq)]
pub enum Affine<T = f64> {
    Dense(Dense<T>),
}

impl<T: Scalar> Affine<T> {
    pub fn in_dim(&self) -> usize {
        match self {
            Affine::Dense(d) => d.weight.ncols(),
        }
    }

    pub fn out_dim(&self) -> usize {
        match self {
            Affine::Dense(d) => d.weight.nrows(),
        }
    }

    /// The weights of output `j` (the row `w_j` that DTD's rules act on).
    pub fn row(&self, j: usize) -> &[T] {
        match self {
            Affine::Dense(d) => d.row(j),
        }
    }

    /// The inputs output `j` is connected to, where that is not every input.
    pub fn connected(&self, j: usize) -> Option<&[u32]> {
        match self {
            Affine::Dense(d) => d.connections.as_ref().map(|c| c.row(j)),
        }
    }

    pub fn bias(&self, j: usize) -> &T {
        match self {
            Affine::Dense(d) => &d.bias[j],
        }
    }

    /// `out = W a + b`, summed left to right in `T`'s arithmetic.
    pub fn apply_into(&self, a: &[T], out: &mut Vec<T>) {
        out.clear();
        match self {
            Affine::Dense(d) => {
                for j in 0..d.weight.nrows() {
                    out.push(crate::exact::scalar::affine_dot(d.row(j), a, &d.bias[j]));
                }
            }
        }
    }

    fn parameters(&self) -> usize {
        match self {
            Affine::Dense(d) => d.weight.len() + d.bias.len(),
        }
    }

    fn map<U: Scalar>(&self, f: impl Fn(&T) -> U) -> Affine<U> {
        match self {
            Affine::Dense(d) => Affine::Dense(Dense {
                weight: d.weight.map(&f),
                bias: d.bias.map(&f),
                connections: d.connections.clone(),
            }),
        }
    }
}

/// One DTD layer: `z_l = affine(h_{l-1})`, `h_l = relu(z_l)` when `relu` is set.
#[derive(Clone, Debug, PartialEq)]
pub struct Layer<T = f64> {
    pub affine: Affine<T>,
    pub relu: bool,
}

/// A validated network. Layer `l` (1-based in reports) takes `h_{l-1}`; `h_0` is the input.
#[derive(Clone, Debug, PartialEq)]
pub struct Network<T = f64> {
    layers: Vec<Layer<T>>,
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
                let prev = layers[i - 1].affine.out_dim();
                if layer.affine.in_dim() != prev {
                    return Err(invalid(format!(
                        "layer {number} expects {} inputs but layer {i} has {prev} outputs",
                        layer.affine.in_dim()
                    )));
                }
            }
            parameters = parameters.saturating_add(layer.affine.parameters());
            match &layer.affine {
                Affine::Dense(d) => {
                    if let Some(((r, c), v)) = d.weight.indexed_iter().find(|(_, v)| !v.is_finite())
                    {
                        return Err(invalid(format!(
                            "layer {number}: weight [{r}, {c}] is {v}, weights must be finite"
                        )));
                    }
                    if let Some((j, v)) = d.bias.iter().enumerate().find(|(_, v)| !v.is_finite()) {
                        return Err(invalid(format!(
                            "layer {number}: bias [{j}] is {v}, biases must be finite"
                        )));
                    }
                }
            }
        }
        if parameters > MAX_PARAMETERS {
            return Err(invalid(format!(
                "the network has {parameters} parameters, more than the limit of {MAX_PARAMETERS}"
            )));
        }
        Ok(Self { layers })
    }

    /// The same network in exact rational arithmetic.
    pub fn to_exact(&self) -> Network<Rational> {
        Network {
            layers: self
                .layers
                .iter()
                .map(|l| Layer {
                    affine: l.affine.map(|&v| Rational::from_f64(v)),
                    relu: l.relu,
                })
                .collect(),
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
                    if let Some(c) = &d.connections {
                        h.update(b"connections");
                        for &o in &c.offsets {
                            h.update((o as u64).to_le_bytes());
                        }
                        for &i in &c.inputs {
                            h.update(i.to_le_bytes());
                        }
                    }
                }
            }
            h.update([u8::from(layer.relu)]);
        }
        format!("sha256:{:x}", h.finalize())
    }
}

impl<T: Scalar> Network<T> {
    pub fn layers(&self) -> &[Layer<T>] {
        &self.layers
    }

    pub fn input_dim(&self) -> usize {
        self.layers[0].affine.in_dim()
    }

    pub fn output_dim(&self) -> usize {
        self.layers[self.layers.len() - 1].affine.out_dim()
    }

    /// Widths `[input, layer 1, …, layer L]`.
    pub fn widths(&self) -> Vec<usize> {
        std::iter::once(self.input_dim())
            .chain(self.layers.iter().map(|l| l.affine.out_dim()))
            .collect()
    }

    /// A short description such as `10-10-10-2 (ReLU after every layer)`.
    pub fn describe(&self) -> String {
        let widths: Vec<String> = self.widths().iter().map(|w| w.to_string()).collect();
        let last_relu = self.layers.last().is_some_and(|l| l.relu);
        format!(
            "{} ({})",
            widths.join("-"),
            if last_relu {
                "ReLU after every layer"
            } else {
                "no ReLU after the last layer"
            }
        )
    }
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
    Ok(Layer {
        affine: Affine::Dense(Dense::new(weight, Array1::from(bias))?),
        relu,
    })
}
