//! Conv (2-D; group 1, dilation 1, explicit pads): a sparse map over the flattened
//! `[channels, height, width]` sample, one row per output channel and position listing the
//! inputs of its window, so no dense matrix is built; and the window attributes (kernel,
//! strides, pads) it shares with pooling.

use onnx_protobuf::NodeProto;

use super::{Op, Reads};
use crate::model::image::{conv_rows, Window};
use crate::model::onnx::proto::{
    attr_int, attr_ints, attr_string, bias_vector, required_input, Tensor,
};
use crate::model::onnx::state::{
    Data, Output, SparseRows, Tracer, MAX_IMAGE_SIDE, MAX_LOWERED_ENTRIES,
};

pub(super) const OPS: &[Op] = &[Op {
    name: "Conv",
    attributes: &[
        "auto_pad",
        "dilations",
        "group",
        "kernel_shape",
        "pads",
        "strides",
    ],
    reads: Reads::First,
    on_constants: false,
    translate: conv,
}];

/// `Conv` on `[batch, channels, height, width]` data.
fn conv<'a>(t: &mut Tracer<'a>, node: &'a NodeProto) -> Result<Output<'a>, String> {
    let x = t.data(node, 0)?;
    let image = image(&x, "Conv")?;
    let (rows, bias, [c_out, ho, wo]) = conv_layer(node, image, |name| t.floats(name))?;
    Ok(Output::Data(t.linear(
        &x,
        rows,
        bias,
        vec![1, c_out, ho, wo],
    )?))
}

/// The `[channels, height, width]` of the data reaching an image operator.
pub(super) fn image(x: &Data, op: &str) -> Result<[usize; 3], String> {
    match x.dims[..] {
        [1, c, h, w] => Ok([c, h, w]),
        _ => Err(format!(
            "{op} needs [batch, channels, height, width] data but the data has shape {:?}",
            x.dims
        )),
    }
}

/// The window geometry of a node, checked against the attributes this loader does not
/// implement.
pub(super) trait ReadWindow: Sized {
    fn read(node: &NodeProto, kernel: Option<[usize; 2]>) -> Result<Self, String>;
}

impl ReadWindow for Window {
    fn read(node: &NodeProto, kernel: Option<[usize; 2]>) -> Result<Self, String> {
        if let Some(mode) = attr_string(node, "auto_pad")? {
            if mode != "NOTSET" {
                return Err(format!(
                    "auto_pad = {mode} is not supported; export with explicit pads (auto_pad NOTSET)"
                ));
            }
        }
        if let Some(d) = attr_ints(node, "dilations")? {
            if d.iter().any(|&v| v != 1) {
                return Err(format!("dilations {d:?} are not supported; only 1 is"));
            }
        }
        let side = |v: i64| usize::try_from(v).ok().filter(|&v| v <= MAX_IMAGE_SIDE);
        let pair = |name: &str, v: Vec<i64>| -> Result<[usize; 2], String> {
            match v.as_slice() {
                [a, b] if *a > 0 && *b > 0 => match (side(*a), side(*b)) {
                    (Some(a), Some(b)) => Ok([a, b]),
                    _ => Err(format!("{name} {v:?}: values above 2^24 are not read")),
                },
                _ => Err(format!(
                    "{name} {v:?}: two positive values (height, width) are needed"
                )),
            }
        };
        let declared = attr_ints(node, "kernel_shape")?
            .map(|k| pair("kernel_shape", k))
            .transpose()?;
        let kernel = match (declared, kernel) {
            (Some(d), Some(w)) if d != w => {
                return Err(format!(
                    "kernel_shape {d:?} does not match the weight's kernel {w:?}"
                ))
            }
            (Some(k), _) | (None, Some(k)) => k,
            (None, None) => return Err("kernel_shape is missing".into()),
        };
        let strides = match attr_ints(node, "strides")? {
            Some(v) => pair("strides", v)?,
            None => [1, 1],
        };
        let pads = match attr_ints(node, "pads")?.as_deref() {
            None => [0; 4],
            Some(&[t, l, b, r]) if [t, l, b, r].iter().all(|&p| side(p).is_some()) => {
                [t as usize, l as usize, b as usize, r as usize]
            }
            Some(p) => {
                return Err(format!(
                "pads {p:?}: four values (top, left, bottom, right) between 0 and 2^24 are needed"
            ))
            }
        };
        Ok(Window {
            kernel,
            strides,
            pads,
        })
    }
}

/// Checks that an image layer with the product of `rows` rows, each listing at most
/// `per_row` weights, stays within [`MAX_LOWERED_ENTRIES`] and that its `inputs` can be
/// indexed; returns the number of rows.
pub(super) fn lowered(
    op: &str,
    rows: &[usize],
    per_row: usize,
    inputs: usize,
) -> Result<usize, String> {
    if u32::try_from(inputs).is_err() {
        return Err(format!(
            "{op} reads {inputs} values per sample, more than 2^32 - 1"
        ));
    }
    let count = rows.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    match count {
        Some(r)
            if r.checked_mul(per_row)
                .is_some_and(|n| n <= MAX_LOWERED_ENTRIES) =>
        {
            Ok(r)
        }
        _ => Err(format!(
            "{op} would store ({}) rows × {per_row} weights (more than 2^26); \
             image layers this large are not supported",
            rows.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("·"),
        )),
    }
}

/// A Conv node over a `[c_in, h, w]` image (its weights read with `floats`): its rows, one bias
/// per row, and the `[c_out, ho, wo]` output.
fn conv_layer(
    node: &NodeProto,
    [c_in, h, w]: [usize; 3],
    floats: impl Fn(&str) -> Result<Tensor, String>,
) -> Result<(SparseRows, Vec<f64>, [usize; 3]), String> {
    if let Some(g) = attr_int(node, "group")? {
        if g != 1 {
            return Err(format!("group = {g} is not supported; only 1 is"));
        }
    }
    let w_name = required_input(node, 1, "W")?;
    let k = floats(w_name)?;
    let [c_out, k_in, kh, kw] = k.dims[..] else {
        return Err(format!(
            "the weight '{w_name}' has shape {:?}; a 2-D convolution needs [out, in, height, width]",
            k.dims
        ));
    };
    if k_in != c_in {
        return Err(format!(
            "the weight '{w_name}' takes {k_in} channels but the data has {c_in}"
        ));
    }
    if [c_out, kh, kw]
        .iter()
        .any(|&d| d == 0 || d > MAX_IMAGE_SIDE)
    {
        return Err(format!(
            "the weight '{w_name}' has shape {:?}; every size must be between 1 and 2^24",
            k.dims
        ));
    }
    let window = Window::read(node, Some([kh, kw]))?;
    let [ho, wo] = window.output(h, w)?;
    let inputs = c_in
        .checked_mul(h)
        .and_then(|n| n.checked_mul(w))
        .ok_or("Conv reads more values per sample than can be indexed")?;
    let per_row = c_in
        .checked_mul(kh)
        .and_then(|n| n.checked_mul(kw))
        .ok_or("the Conv kernel has more weights than can be indexed")?;
    lowered("Conv", &[c_out, ho, wo], per_row, inputs)?;
    let rows = conv_rows(&k.data, [c_out, c_in], [h, w], &window);
    let bias = match node.input.get(2).filter(|n| !n.is_empty()) {
        Some(b_name) => {
            let b = bias_vector(b_name, floats(b_name)?, c_out)?;
            (0..c_out * ho * wo).map(|row| b[row / (ho * wo)]).collect()
        }
        None => vec![0.0; c_out * ho * wo],
    };
    Ok((rows, bias, [c_out, ho, wo]))
}
