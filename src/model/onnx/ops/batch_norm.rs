//! BatchNormalization in inference: `y = s (x − mean) + B` per channel with
//! `s = scale / √(var + epsilon)`, the scale and the shift `t = B − mean · s` both computed in
//! f64. It folds into the affine map right before it (each weight `s · w` and bias `s · b + t`
//! rounded once) unless a ReLU, a max-pool layer or an open bias lies in between, and is a
//! diagonal map of its own otherwise, or always with `keep_batch_norm` (exact in `s` and `t`).

use std::rc::Rc;

use ndarray::{Array1, Array2};
use onnx_protobuf::NodeProto;

use super::{Op, Reads};
use crate::model::blocks::{Blocks, Part, PartMap};
use crate::model::onnx::proto::{attr_float, attr_int, required_input, Tensor};
use crate::model::onnx::state::{Form, Map, Output, Tracer};

pub(super) const OPS: &[Op] = &[Op {
    name: "BatchNormalization",
    attributes: &["epsilon", "momentum", "training_mode"],
    reads: Reads::First,
    on_constants: false,
    translate: batch_norm,
}];

/// Channels are dimension 1 of `[batch, channels, ...]` data.
fn batch_norm<'a>(t: &mut Tracer<'a>, node: &'a NodeProto) -> Result<Output<'a>, String> {
    let x = t.take_data(node, 0)?;
    if x.dims.len() < 2 {
        return Err("BatchNormalization needs [batch, channels, ...] data".into());
    }
    let channels = x.dims[1];
    let per_channel: usize = x.dims[2..].iter().product();
    let (s, shift) = batch_norm_parameters(node, channels, |name| t.floats(name))?;
    let n = channels * per_channel;
    let channel_of = |p: usize| (p / per_channel) % channels;
    if let (Form::Map(map), false, false) = (&x.form, t.keep_batch_norm, x.bias_open) {
        if foldable(map, &x.dims) {
            let dims = x.dims.clone();
            // The map itself when no other tensor holds it, else a copy.
            let map = match Rc::try_unwrap(x).map(|d| d.form) {
                Ok(Form::Map(map)) => map,
                Err(x) => match &x.form {
                    Form::Map(map) => map.clone(),
                    Form::Select(_) => unreachable!("a map was matched"),
                },
                Ok(Form::Select(_)) => unreachable!("a map was matched"),
            };
            let map = normalised(map, &dims, &s, &shift)?;
            return Ok(Output::Data(t.with(dims, Form::Map(map))));
        }
    }
    let x = match &x.form {
        Form::Map(_) => t.cut(&x, None)?,
        Form::Select(_) => x.as_ref().clone(),
    };
    let rows = (0..n).map(|p| vec![(p as u32, s[channel_of(p)])]).collect();
    let bias = (0..n).map(|p| shift[channel_of(p)]).collect();
    Ok(Output::Data(t.linear(&x, rows, bias, x.dims.clone())?))
}

/// Per channel, the scale `s = scale / sqrt(var + epsilon)` and shift `t = B − mean·s` of an
/// inference BatchNormalization, both computed in f64.
fn batch_norm_parameters(
    node: &NodeProto,
    channels: usize,
    floats: impl Fn(&str) -> Result<Tensor, String>,
) -> Result<(Vec<f64>, Vec<f64>), String> {
    if attr_int(node, "training_mode")?.unwrap_or(0) != 0 {
        return Err(
            "training_mode = 1 normalises with batch statistics; export the model after model.eval()"
                .into(),
        );
    }
    let eps = attr_float(node, "epsilon")?.unwrap_or(1e-5);
    let mut params = Vec::with_capacity(4);
    for (pos, what) in [(1, "scale"), (2, "B"), (3, "mean"), (4, "var")] {
        let name = required_input(node, pos, what)?;
        let t = floats(name)?;
        if t.data.len() != channels {
            return Err(format!(
                "'{name}' ({what}) has {} values for {channels} channels",
                t.data.len()
            ));
        }
        params.push(t.data);
    }
    let (scale, shift, mean, var) = (&params[0], &params[1], &params[2], &params[3]);
    let mut s = Vec::with_capacity(channels);
    let mut t = Vec::with_capacity(channels);
    for c in 0..channels {
        let d = (var[c] + eps).sqrt();
        if !(d.is_finite() && d > 0.0) {
            return Err(format!(
                "channel {c}: var + epsilon = {} has no positive square root",
                var[c] + eps
            ));
        }
        let sc = scale[c] / d;
        s.push(sc);
        t.push(shift[c] - mean[c] * sc);
    }
    Ok((s, t))
}

/// Whether batch norm folds into `map`: not into a shared map whose copies would need
/// different scales, nor into a map of parts that are not convolutions writing whole
/// channels of the tensor.
fn foldable(map: &Map, dims: &[usize]) -> bool {
    let channels = dims[1];
    let per_channel: usize = dims[2..].iter().product();
    let channel_of = |p: usize| (p / per_channel) % channels;
    match map {
        Map::Dense(..) | Map::Sparse(..) | Map::Conv(_) => true,
        Map::Blocks(blocks) => blocks.parts().iter().all(|part| match &part.map {
            PartMap::Conv(conv) => {
                let [_, h, w] = conv.output();
                h * w == per_channel && part.output % per_channel == 0
            }
            _ => false,
        }),
        Map::Shared(w, _, copies) => {
            let rows = w.nrows();
            (0..rows * copies).all(|j| channel_of(j) == channel_of(j % rows))
        }
    }
}

/// Batch norm folded into a map that [`foldable`] accepts (`s·w` and `s·b + t`, each rounded
/// once).
fn normalised(map: Map, dims: &[usize], s: &[f64], t: &[f64]) -> Result<Map, String> {
    let channels = dims[1];
    let per_channel: usize = dims[2..].iter().product();
    let channel_of = |p: usize| (p / per_channel) % channels;
    Ok(match map {
        Map::Dense(w, b) => {
            let (w, b) = scaled(w, b, channel_of, s, t);
            Map::Dense(w, b)
        }
        Map::Sparse(mut rows, mut b) => {
            for (j, row) in rows.iter_mut().enumerate() {
                let c = channel_of(j);
                row.iter_mut().for_each(|(_, v)| *v *= s[c]);
                b[j] = b[j] * s[c] + t[c];
            }
            Map::Sparse(rows, b)
        }
        Map::Conv(mut conv) => {
            conv.scale_channels(s, t);
            Map::Conv(conv)
        }
        Map::Blocks(blocks) => {
            // Each part a convolution whose output channels are channels of the tensor.
            let in_dim = blocks.in_dim();
            let (parts, mut b) = blocks.into_parts();
            let mut scaled_parts = Vec::with_capacity(parts.len());
            for part in parts {
                let PartMap::Conv(mut conv) = part.map else {
                    return Err("batch norm after a map of parts that are not convolutions".into());
                };
                let first = channel_of(part.output);
                let c = conv.output()[0];
                let scale: Vec<f64> = (0..c).map(|k| s[(first + k) % channels]).collect();
                conv.scale_channels(&scale, &vec![0.0; c]);
                scaled_parts.push(Part {
                    map: PartMap::Conv(conv),
                    ..part
                });
            }
            for (j, v) in b.iter_mut().enumerate() {
                let c = channel_of(j);
                *v = *v * s[c] + t[c];
            }
            Map::Blocks(Blocks::new(in_dim, scaled_parts, b).map_err(|e| e.to_string())?)
        }
        Map::Shared(w, b, copies) => {
            let (w, b) = scaled(w, b, channel_of, s, t);
            Map::Shared(w, b, copies)
        }
    })
}

/// `s·w` and `s·b + t` for each row `j` of a matrix, with the channel `channel_of(j)`.
fn scaled(
    mut w: Array2<f64>,
    mut b: Array1<f64>,
    channel_of: impl Fn(usize) -> usize,
    s: &[f64],
    t: &[f64],
) -> (Array2<f64>, Array1<f64>) {
    for (j, mut row) in w.rows_mut().into_iter().enumerate() {
        let c = channel_of(j);
        row.mapv_inplace(|v| v * s[c]);
        b[j] = b[j] * s[c] + t[c];
    }
    (w, b)
}
