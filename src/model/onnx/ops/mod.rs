//! The operators the translator reads, one file per family, each a table of [`Op`] rows: the
//! attributes the translation understands (any other is an error, since ignoring an attribute
//! could change the function), where the node's data arrives, and the translation itself.
//!
//! - `linear.rs`: Gemm, MatMul
//! - `elementwise.rs`: Add, Sub, Mul, Div with a constant operand; Add of two computed tensors
//! - `activation.rs`: Relu, Clip, LeakyRelu, PRelu
//! - `conv.rs`: Conv, and the window attributes it shares with pooling
//! - `batch_norm.rs`: BatchNormalization
//! - `pool.rs`: AveragePool, GlobalAveragePool, MaxPool
//! - `shape.rs`: Flatten, Reshape, Transpose, Unsqueeze, Squeeze, Expand, Concat, Identity
//! - `reduce.rs`: ReduceSum, ReduceMean
//! - `dropout.rs`: Dropout
//! - `constant.rs`: Constant

use onnx_protobuf::NodeProto;

use super::is_default_domain;
use super::state::{Output, Tracer};

mod activation;
mod batch_norm;
mod constant;
mod conv;
mod dropout;
mod elementwise;
mod linear;
mod pool;
mod reduce;
mod shape;

/// Where a node's data arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reads {
    /// Nowhere: the node holds a constant.
    Nothing,
    /// Input 0; every later input is a constant parameter (weights, a shape).
    First,
    /// Any input, the others computed too or constant (elementwise operators, Concat).
    Any,
}

/// Translates one node; `Err` carries the problem and the driver prefixes the node's name.
pub(super) type Translate =
    for<'a> fn(&mut Tracer<'a>, &'a NodeProto) -> Result<Output<'a>, String>;

/// One operator the translator reads.
pub(super) struct Op {
    pub(super) name: &'static str,
    pub(super) attributes: &'static [&'static str],
    pub(super) reads: Reads,
    /// Whether a node whose every input is constant is read too (its output is then a
    /// constant); other operators read only tensors computed from the input.
    pub(super) on_constants: bool,
    pub(super) translate: Translate,
}

/// Every family's operators, in the order error messages list them.
const FAMILIES: &[&[Op]] = &[
    linear::OPS,
    elementwise::OPS,
    activation::OPS,
    conv::OPS,
    batch_norm::OPS,
    pool::OPS,
    shape::OPS,
    reduce::OPS,
    dropout::OPS,
    constant::OPS,
];

/// Operators of the standard domain whose functions are not piecewise linear, named as such
/// when refused.
const NOT_PIECEWISE_LINEAR: &[&str] = &[
    "Sigmoid",
    "Tanh",
    "Softmax",
    "LogSoftmax",
    "Exp",
    "Log",
    "Elu",
    "Selu",
    "Celu",
    "Gelu",
    "Softplus",
    "Softsign",
    "Mish",
    "HardSwish",
    "Erf",
    "Sqrt",
    "Pow",
    "Sin",
    "Cos",
];

fn all() -> impl Iterator<Item = &'static Op> {
    FAMILIES.iter().flat_map(|family| family.iter())
}

/// The operators read, for error messages.
pub(super) fn supported() -> String {
    all().map(|op| op.name).collect::<Vec<_>>().join(", ")
}

/// The row of `node`'s operator; an operator outside the table, or of another domain, is an
/// error naming it. `folded` says whether the operator is read on constants (and shapes).
pub(super) fn lookup(node: &NodeProto, folded: bool) -> Result<&'static Op, String> {
    let op = node.op_type.as_str();
    if !is_default_domain(&node.domain) {
        return Err(format!(
            "unsupported operator '{}::{op}' (only the standard ONNX domain is read; dtdcert reads {})",
            node.domain,
            supported()
        ));
    }
    all().find(|o| o.name == op).ok_or_else(|| {
        let hint = if folded {
            " (read on constants and shapes only, not on tensors computed from the input)"
        } else if NOT_PIECEWISE_LINEAR.contains(&op) {
            " (not piecewise linear: DTD's regions and roots are those of a piecewise-linear \
             network)"
        } else {
            ""
        };
        format!(
            "unsupported operator '{op}'{hint}; dtdcert reads {}",
            supported()
        )
    })
}

/// Refuses any attribute outside the operator's row: ignoring one could change the function.
pub(super) fn check_attributes(node: &NodeProto, op: &Op) -> Result<(), String> {
    match node
        .attribute
        .iter()
        .find(|a| !op.attributes.contains(&a.name.as_str()))
    {
        Some(a) => Err(format!(
            "attribute '{}' of {} is not supported (its meaning could change the function)",
            a.name, op.name
        )),
        None => Ok(()),
    }
}
