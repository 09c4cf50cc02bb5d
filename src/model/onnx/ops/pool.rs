//! Pooling (2-D, `ceil_mode` 0): AveragePool and GlobalAveragePool are sparse maps whose rows
//! average each window, with weights `1/count` each the f64 nearest it; MaxPool is a max-pool
//! layer, a gather of each window's inputs whose largest entry wins.

use std::borrow::Cow;

use onnx_protobuf::NodeProto;

use super::conv::{image, lowered, ReadWindow};
use super::{Op, Reads};
use crate::model::image::Window;
use crate::model::ir::{Activation, Affine, Layer, Sparse};
use crate::model::onnx::proto::attr_int;
use crate::model::onnx::state::{Data, Elem, Form, Output, Tracer};

pub(super) const OPS: &[Op] = &[
    Op {
        name: "AveragePool",
        attributes: &[
            "auto_pad",
            "ceil_mode",
            "count_include_pad",
            "dilations",
            "kernel_shape",
            "pads",
            "strides",
        ],
        reads: Reads::First,
        on_constants: false,
        translate: average_pool,
    },
    Op {
        name: "GlobalAveragePool",
        attributes: &[],
        reads: Reads::First,
        on_constants: false,
        translate: average_pool,
    },
    Op {
        name: "MaxPool",
        // `storage_order` concerns only the `Indices` output, which is refused when used.
        attributes: &[
            "auto_pad",
            "ceil_mode",
            "dilations",
            "kernel_shape",
            "pads",
            "storage_order",
            "strides",
        ],
        reads: Reads::First,
        on_constants: false,
        translate: max_pool,
    },
];

/// `AveragePool`, each window's mean over the input positions it covers (`count_include_pad`
/// 0) or over the whole kernel (1); `GlobalAveragePool`, the mean of each channel.
fn average_pool<'a>(t: &mut Tracer<'a>, node: &'a NodeProto) -> Result<Output<'a>, String> {
    let x = t.data(node, 0)?;
    let op = node.op_type.as_str();
    let [c, h, w] = image(&x, op)?;
    let (window, include_pad) = if op == "GlobalAveragePool" {
        let window = Window {
            kernel: [h, w],
            strides: [1, 1],
            pads: [0; 4],
        };
        (window, false)
    } else {
        if attr_int(node, "ceil_mode")?.unwrap_or(0) != 0 {
            return Err("ceil_mode = 1 is not supported; only 0 (floor) is".into());
        }
        let include = attr_int(node, "count_include_pad")?.unwrap_or(0) != 0;
        (Window::read(node, None)?, include)
    };
    let [ho, wo] = window.output(h, w)?;
    let rows = pool_rows(op, [c, h, w], &window, include_pad)?;
    let n = rows.len();
    Ok(Output::Data(t.linear(
        &x,
        rows,
        vec![0.0; n],
        vec![1, c, ho, wo],
    )?))
}

/// A max-pool layer gathering each window of `x`'s elements; `x` is first cut into a layer
/// when it is an affine map or holds constants.
fn max_pool<'a>(t: &mut Tracer<'a>, node: &'a NodeProto) -> Result<Output<'a>, String> {
    let x = t.data(node, 0)?;
    let [c, h, w] = image(&x, "MaxPool")?;
    let (window, [ho, wo]) = max_pool_window(node, [h, w])?;
    let (positions, size) = max_pool_positions([c, h, w], &window)?;
    let inputs = match &x.form {
        Form::Select(elems) if elems.iter().all(|e| matches!(e, Elem::Input(_))) => {
            Cow::Borrowed(elems)
        }
        _ => match t.cut(&x, None)?.form {
            Form::Select(e) => Cow::Owned(e),
            Form::Map(_) => unreachable!("a cut gives selected elements"),
        },
    };
    let gathered = positions
        .into_iter()
        .map(|p| match inputs[p as usize] {
            Elem::Input(i) => i,
            Elem::Const(_) => unreachable!("constants were cut into a layer"),
        })
        .collect();
    let affine = Sparse::gather(t.width, gathered)
        .map(Affine::Sparse)
        .map_err(|e| e.to_string())?;
    t.layers.push(Layer {
        affine,
        relu: false,
        activation: Activation::Relu,
        max_pool: Some(size),
        linear_tail: 0,
    });
    let out = c * ho * wo;
    t.width = out;
    Ok(Output::Data(Data {
        dims: vec![1, c, ho, wo],
        layer: t.layers.len(),
        form: Form::Select((0..out as u32).map(Elem::Input).collect()),
        bias_open: false,
    }))
}

/// A `MaxPool` node's window and output size.
fn max_pool_window(node: &NodeProto, [h, w]: [usize; 2]) -> Result<(Window, [usize; 2]), String> {
    if attr_int(node, "ceil_mode")?.unwrap_or(0) != 0 {
        return Err("ceil_mode = 1 is not supported; only 0 (floor) is".into());
    }
    let window = Window::read(node, None)?;
    let out = window.output(h, w)?;
    Ok((window, out))
}

/// The gather of a max pooling of a `[c, h, w]` image: for each output position, the input
/// position each window position copies (one row of the layer each), and the window size.
/// Padding never wins a max, so a window cut by the padding repeats its first input in the
/// padded places (a repeat after the original never wins a tie either).
fn max_pool_positions([c, h, w]: [usize; 3], window: &Window) -> Result<(Vec<u32>, usize), String> {
    let [ho, wo] = window.output(h, w)?;
    let inputs = c
        .checked_mul(h)
        .and_then(|n| n.checked_mul(w))
        .ok_or("MaxPool reads more values per sample than can be indexed")?;
    let size = window.kernel[0]
        .checked_mul(window.kernel[1])
        .ok_or("the MaxPool window has more positions than can be indexed")?;
    lowered("MaxPool", &[c, ho, wo, size], 1, inputs)?;
    let mut positions = Vec::with_capacity(c * ho * wo * size);
    for ch in 0..c {
        for i in 0..ho {
            for j in 0..wo {
                let start = positions.len();
                positions.extend(
                    window
                        .taps(i, j, h, w)
                        .into_iter()
                        .map(|(r, col, _, _)| ((ch * h + r) * w + col) as u32),
                );
                let Some(&first) = positions.get(start) else {
                    return Err("a window of MaxPool covers no input position".into());
                };
                positions.resize(start + size, first);
            }
        }
    }
    Ok((positions, size))
}

/// The rows of an average pooling of a `[c, h, w]` image: each window's mean over the input
/// positions it covers (`include_pad` false) or over the whole kernel (true).
fn pool_rows(
    op: &str,
    [c, h, w]: [usize; 3],
    window: &Window,
    include_pad: bool,
) -> Result<Vec<Vec<(u32, f64)>>, String> {
    let [ho, wo] = window.output(h, w)?;
    let inputs = c
        .checked_mul(h)
        .and_then(|n| n.checked_mul(w))
        .ok_or(format!(
            "{op} reads more values per sample than can be indexed"
        ))?;
    let per_row = window.kernel[0]
        .checked_mul(window.kernel[1])
        .ok_or(format!(
            "the {op} window has more positions than can be indexed"
        ))?;
    let n = lowered(op, &[c, ho, wo], per_row, inputs)?;
    let mut rows = Vec::with_capacity(n);
    for ch in 0..c {
        for i in 0..ho {
            for j in 0..wo {
                let taps = window.taps(i, j, h, w);
                let count = if include_pad {
                    window.kernel[0] * window.kernel[1]
                } else {
                    taps.len()
                };
                if count == 0 {
                    return Err(format!("a window of {op} covers no input position"));
                }
                let share = 1.0 / count as f64;
                // Taps come row by row, left to right: already in increasing input order.
                rows.push(
                    taps.into_iter()
                        .map(|(r, col, _, _)| (((ch * h + r) * w + col) as u32, share))
                        .collect(),
                );
            }
        }
    }
    Ok(rows)
}
