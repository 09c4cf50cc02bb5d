//! Conv (2-D; groups, dilation 1, explicit pads): a map over the flattened
//! `[channels, height, width]` sample, one output per channel and position reading the inputs
//! of its window. A small one is kept as sparse rows, a large one as its kernel
//! ([`crate::model::conv::Conv`]); no dense matrix is built. And the window attributes (kernel,
//! strides, pads) it shares with pooling.

use onnx_protobuf::NodeProto;

use super::{Op, Reads};
use crate::model::conv::{Conv, ConvShape};
use crate::model::image::Window;
use crate::model::onnx::proto::{
    attr_int, attr_ints, attr_string, bias_vector, required_input, Tensor,
};
use crate::model::onnx::state::Data;
use crate::model::onnx::state::{Output, Tracer, MAX_IMAGE_SIDE, MAX_LOWERED_ENTRIES};

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

/// `Conv` on `[batch, channels, height, width]` data: sparse rows up to
/// [`Tracer::conv_rows_up_to`] weights in all (2^23 unless the options lower it), the kernel
/// applied as an operator above.
fn conv<'a>(t: &mut Tracer<'a>, node: &'a NodeProto) -> Result<Output<'a>, String> {
    let x = t.data(node, 0)?;
    let image = image(&x, "Conv")?;
    let conv = conv_layer(node, image, |name| t.floats(name))?;
    let [c_out, ho, wo] = conv.output();
    let dims = vec![1, c_out, ho, wo];
    let as_kernel = conv.row_weights() > t.conv_rows_up_to;
    let (weights, bytes_each, form) = if as_kernel {
        (conv.kernel().len(), 8, "its kernel")
    } else {
        (conv.row_weights(), 12, "rows")
    };
    let outputs = conv.out_dim() as u64;
    t.check_memory(weights as u64 * bytes_each + 16 * outputs, || {
        format!("the convolution of {c_out}·{ho}·{wo} outputs, as {form} of {weights} weights,")
    })?;
    if as_kernel {
        return Ok(Output::Data(t.operator(&x, conv, dims)?));
    }
    let rows = (0..conv.out_dim())
        .map(|j| {
            conv.taps(j)
                .map(|(i, k)| (i as u32, conv.kernel()[k]))
                .collect()
        })
        .collect();
    let bias = conv.biases();
    Ok(Output::Data(t.linear(&x, rows, bias, dims)?))
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

/// A Conv node over a `[c_in, h, w]` image (its weights read with `floats`).
fn conv_layer(
    node: &NodeProto,
    input: [usize; 3],
    floats: impl Fn(&str) -> Result<Tensor, String>,
) -> Result<Conv, String> {
    let c_in = input[0];
    let groups = match attr_int(node, "group")? {
        None => 1,
        Some(g) if g > 0 && c_in.is_multiple_of(g as usize) => g as usize,
        Some(g) => {
            return Err(format!(
                "group = {g} does not divide the data's {c_in} channels"
            ))
        }
    };
    let w_name = required_input(node, 1, "W")?;
    let k = floats(w_name)?;
    let [c_out, k_in, kh, kw] = k.dims[..] else {
        return Err(format!(
            "the weight '{w_name}' has shape {:?}; a 2-D convolution needs [out, in, height, width]",
            k.dims
        ));
    };
    if k_in * groups != c_in {
        return Err(format!(
            "group = {groups}: the weight '{w_name}' takes {k_in} channels per group but the \
             data has {c_in}"
        ));
    }
    if [c_out, kh, kw]
        .iter()
        .any(|&d| d == 0 || d > MAX_IMAGE_SIDE)
        || !c_out.is_multiple_of(groups)
    {
        return Err(format!(
            "the weight '{w_name}' has shape {:?}; every size must be between 1 and 2^24, and \
             the {groups} groups must divide the output channels",
            k.dims
        ));
    }
    let window = Window::read(node, Some([kh, kw]))?;
    let shape = ConvShape {
        input,
        channels: c_out,
        kernel: [kh, kw],
        strides: window.strides,
        pads: window.pads,
        // The window has refused other dilations.
        dilations: [1, 1],
        groups,
    };
    let [ho, wo] = shape.output()?;
    let inputs = input.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    lowered(
        "Conv",
        &[c_out, ho, wo],
        1,
        inputs.ok_or("Conv reads more values per sample than can be indexed")?,
    )?;
    let bias = match node.input.get(2).filter(|n| !n.is_empty()) {
        Some(b_name) => bias_vector(b_name, floats(b_name)?, c_out)?.to_vec(),
        None => vec![0.0; c_out],
    };
    Conv::new(shape, k.data, bias).map_err(|e| e.to_string())
}
