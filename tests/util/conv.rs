//! Random small convolutional networks, written as the ONNX graphs `torch.onnx.export`
//! produces (Conv, Relu, AveragePool, GlobalAveragePool or MaxPool before or after the Relu,
//! Flatten, Gemm), with a direct evaluation in rationals.

use std::path::Path;

use dtdcert::exact::{Rational, Scalar as _};
use dtdcert::model::onnx::load_bytes;
use dtdcert::model::Model;
use onnx_protobuf::tensor_proto::DataType;
use proptest::prelude::*;
use protobuf::Message;

use super::onnx::{attr_int, attr_ints, doubles, model, node, value};
use super::weight;

/// The pooling after the convolution's ReLU.
#[derive(Clone, Copy, Debug)]
pub enum Pool {
    None,
    /// 2x2, stride 1, no padding.
    Average {
        include_pad: bool,
        pad: bool,
    },
    Global,
    /// 2x2, stride 1, padded at the bottom and right when `pad`; before the ReLU when
    /// `before_relu` (the same function: max and ReLU commute, but other layers).
    Max {
        pad: bool,
        before_relu: bool,
    },
}

/// A small convolutional network: its geometry and parameters.
#[derive(Clone, Debug)]
pub struct ConvNet {
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// top, left, bottom, right
    pub pads: [usize; 4],
    pub pool: Pool,
    pub outputs: usize,
    pub kernel_values: Vec<f64>,
    pub conv_bias: Vec<f64>,
    pub dense: Vec<f64>,
    pub dense_bias: Vec<f64>,
}

impl ConvNet {
    pub fn conv_out(&self) -> [usize; 2] {
        [
            (self.h + self.pads[0] + self.pads[2] - self.kernel[0]) / self.stride[0] + 1,
            (self.w + self.pads[1] + self.pads[3] - self.kernel[1]) / self.stride[1] + 1,
        ]
    }

    pub fn pool_out(&self) -> [usize; 2] {
        let [ho, wo] = self.conv_out();
        match self.pool {
            Pool::None => [ho, wo],
            Pool::Average { pad, .. } | Pool::Max { pad, .. } => {
                let p = usize::from(pad);
                [ho + p - 1, wo + p - 1]
            }
            Pool::Global => [1, 1],
        }
    }

    pub fn flat(&self) -> usize {
        let [a, b] = self.pool_out();
        self.c_out * a * b
    }

    /// The network evaluated directly in rationals, loop by loop.
    pub fn evaluate(&self, x: &[Rational]) -> Vec<Rational> {
        let [ho, wo] = self.conv_out();
        let at = |c: usize, r: i64, col: i64| -> Option<&Rational> {
            let inside = (0..self.h as i64).contains(&r) && (0..self.w as i64).contains(&col);
            inside.then(|| &x[(c * self.h + r as usize) * self.w + col as usize])
        };
        let mut conv = vec![Rational::from_f64(0.0); self.c_out * ho * wo];
        for o in 0..self.c_out {
            for i in 0..ho {
                for j in 0..wo {
                    let mut acc = Rational::from_f64(self.conv_bias[o]);
                    for c in 0..self.c_in {
                        for u in 0..self.kernel[0] {
                            for v in 0..self.kernel[1] {
                                let r = (i * self.stride[0] + u) as i64 - self.pads[0] as i64;
                                let col = (j * self.stride[1] + v) as i64 - self.pads[1] as i64;
                                if let Some(value) = at(c, r, col) {
                                    let k = ((o * self.c_in + c) * self.kernel[0] + u)
                                        * self.kernel[1]
                                        + v;
                                    acc += Rational::from_f64(self.kernel_values[k]) * value;
                                }
                            }
                        }
                    }
                    let relu = if acc > Rational::from_f64(0.0) {
                        acc
                    } else {
                        Rational::from_f64(0.0)
                    };
                    conv[(o * ho + i) * wo + j] = relu;
                }
            }
        }
        let [po, qo] = self.pool_out();
        let pooled: Vec<Rational> = match self.pool {
            Pool::None => conv,
            Pool::Global => (0..self.c_out)
                .map(|o| {
                    let sum = conv[o * ho * wo..(o + 1) * ho * wo]
                        .iter()
                        .fold(Rational::from_f64(0.0), |s, v| s + v);
                    sum * Rational::from_f64(1.0 / (ho * wo) as f64)
                })
                .collect(),
            Pool::Average { include_pad, pad } => {
                let mut out = Vec::with_capacity(self.c_out * po * qo);
                for o in 0..self.c_out {
                    for i in 0..po {
                        for j in 0..qo {
                            let mut sum = Rational::from_f64(0.0);
                            let mut n = 0;
                            for u in 0..2 {
                                for v in 0..2 {
                                    // Padding, when there is any, is at the bottom and right.
                                    let (r, c) = (i + u, j + v);
                                    if r < ho && c < wo {
                                        sum += &conv[(o * ho + r) * wo + c];
                                        n += 1;
                                    }
                                }
                            }
                            let count = if include_pad || !pad { 4 } else { n };
                            // The reader's weight is the f64 value of 1/count.
                            out.push(sum * Rational::from_f64(1.0 / count as f64));
                        }
                    }
                }
                out
            }
            Pool::Max { .. } => {
                let mut out = Vec::with_capacity(self.c_out * po * qo);
                for o in 0..self.c_out {
                    for i in 0..po {
                        for j in 0..qo {
                            let mut best: Option<&Rational> = None;
                            for u in 0..2 {
                                for v in 0..2 {
                                    let (r, c) = (i + u, j + v);
                                    if r < ho && c < wo {
                                        let value = &conv[(o * ho + r) * wo + c];
                                        if best.is_none_or(|b| value > b) {
                                            best = Some(value);
                                        }
                                    }
                                }
                            }
                            out.push(best.expect("a window covers the image").clone());
                        }
                    }
                }
                out
            }
        };
        (0..self.outputs)
            .map(|k| {
                let mut acc = Rational::from_f64(self.dense_bias[k]);
                for (i, v) in pooled.iter().enumerate() {
                    acc += Rational::from_f64(self.dense[k * pooled.len() + i]) * v;
                }
                acc
            })
            .collect()
    }

    pub fn onnx(&self) -> Vec<u8> {
        let i = |v: &[usize]| -> Vec<i64> { v.iter().map(|&x| x as i64).collect() };
        let mut nodes = vec![node(
            "Conv",
            "conv",
            &["input", "k", "kb"],
            &["c"],
            vec![
                attr_ints("kernel_shape", &i(&self.kernel)),
                attr_ints("strides", &i(&self.stride)),
                attr_ints("pads", &i(&self.pads)),
            ],
        )];
        if let Pool::Max {
            pad,
            before_relu: true,
        } = self.pool
        {
            let p = i64::from(pad);
            nodes.push(node(
                "MaxPool",
                "pool",
                &["c"],
                &["m"],
                vec![
                    attr_ints("kernel_shape", &[2, 2]),
                    attr_ints("pads", &[0, 0, p, p]),
                ],
            ));
            nodes.push(node("Relu", "relu", &["m"], &["p"], vec![]));
        } else {
            nodes.push(node("Relu", "relu", &["c"], &["r"], vec![]));
        }
        let pooled = match self.pool {
            Pool::None => "r",
            Pool::Max {
                before_relu: true, ..
            } => "p",
            Pool::Max { pad, .. } => {
                let p = i64::from(pad);
                nodes.push(node(
                    "MaxPool",
                    "pool",
                    &["r"],
                    &["p"],
                    vec![
                        attr_ints("kernel_shape", &[2, 2]),
                        attr_ints("pads", &[0, 0, p, p]),
                    ],
                ));
                "p"
            }
            Pool::Average { include_pad, pad } => {
                let p = i64::from(pad);
                nodes.push(node(
                    "AveragePool",
                    "pool",
                    &["r"],
                    &["p"],
                    vec![
                        attr_ints("kernel_shape", &[2, 2]),
                        attr_ints("pads", &[0, 0, p, p]),
                        attr_int("count_include_pad", i64::from(include_pad)),
                    ],
                ));
                "p"
            }
            Pool::Global => {
                nodes.push(node("GlobalAveragePool", "pool", &["r"], &["p"], vec![]));
                "p"
            }
        };
        nodes.push(node(
            "Flatten",
            "flatten",
            &[pooled],
            &["f"],
            vec![attr_int("axis", 1)],
        ));
        nodes.push(node(
            "Gemm",
            "fc",
            &["f", "w", "wb"],
            &["output"],
            vec![attr_int("transB", 1)],
        ));
        let dims =
            |v: &[usize]| -> Vec<Option<i64>> { v.iter().map(|&x| Some(x as i64)).collect() };
        let input = [vec![None], dims(&[self.c_in, self.h, self.w])].concat();
        let kernel = i(&[self.c_out, self.c_in, self.kernel[0], self.kernel[1]]);
        model(
            nodes,
            vec![
                doubles("k", &kernel, &self.kernel_values),
                doubles("kb", &i(&[self.c_out]), &self.conv_bias),
                doubles("w", &i(&[self.outputs, self.flat()]), &self.dense),
                doubles("wb", &i(&[self.outputs]), &self.dense_bias),
            ],
            value("input", &input, DataType::DOUBLE),
            value(
                "output",
                &[None, Some(self.outputs as i64)],
                DataType::DOUBLE,
            ),
        )
        .write_to_bytes()
        .unwrap()
    }
}

pub fn pool() -> impl Strategy<Value = Pool> {
    prop_oneof![
        Just(Pool::None),
        (any::<bool>(), any::<bool>())
            .prop_map(|(include_pad, pad)| Pool::Average { include_pad, pad }),
        Just(Pool::Global),
        (any::<bool>(), any::<bool>())
            .prop_map(|(pad, before_relu)| Pool::Max { pad, before_relu }),
    ]
}

/// A network and an input for it: geometry first (sizes that give a conv output of at least
/// 2x2), then the parameters and the input.
pub fn conv_net_and_input() -> impl Strategy<Value = (ConvNet, Vec<f64>)> {
    (
        1usize..=2,
        3usize..=5,
        3usize..=5,
        1usize..=3,
        (1usize..=3, 1usize..=3),
        (1usize..=2, 1usize..=2),
        prop::array::uniform4(0usize..=1),
        pool(),
        1usize..=3,
    )
        .prop_filter_map(
            "a conv output of at least 2x2",
            |(c_in, h, w, c_out, (kh, kw), (sh, sw), pads, pool, outputs)| {
                let net = ConvNet {
                    c_in,
                    h,
                    w,
                    c_out,
                    kernel: [kh, kw],
                    stride: [sh, sw],
                    pads,
                    pool,
                    outputs,
                    kernel_values: Vec::new(),
                    conv_bias: Vec::new(),
                    dense: Vec::new(),
                    dense_bias: Vec::new(),
                };
                let [ho, wo] = net.conv_out();
                (ho >= 2 && wo >= 2).then_some(net)
            },
        )
        .prop_flat_map(|net| {
            let params = (
                prop::collection::vec(
                    weight(),
                    net.c_out * net.c_in * net.kernel[0] * net.kernel[1],
                ),
                prop::collection::vec(weight(), net.c_out),
                prop::collection::vec(weight(), net.outputs * net.flat()),
                prop::collection::vec(weight(), net.outputs),
                prop::collection::vec(
                    prop_oneof![(-8i32..=8).prop_map(|k| k as f64 / 8.0), -1.0f64..1.0],
                    net.c_in * net.h * net.w,
                ),
            );
            (Just(net), params)
        })
        .prop_map(|(mut net, (k, kb, w, wb, x))| {
            net.kernel_values = k;
            net.conv_bias = kb;
            net.dense = w;
            net.dense_bias = wb;
            (net, x)
        })
}

/// The network as the ONNX reader loads it.
pub fn load(net: &ConvNet) -> Model {
    Model::new(load_bytes(&net.onnx(), Path::new("random.onnx")).expect("a valid conv net"))
}
