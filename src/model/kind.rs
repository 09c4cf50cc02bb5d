//! What each layer of a network was in the model it came from: a convolution, a dense layer,
//! a pooling, … The network computes the same whatever the tags say; they let settings choose
//! a relevance rule per kind of layer, as composites of LRP libraries do.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::ir::{Affine, Layer};
use crate::exact::Scalar;

/// The kind of one layer of the IR, named by the operator that gave it its affine map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LayerKind {
    /// `conv`: a convolution (with whatever was folded into it: batch norm, a bias, a
    /// residual addition).
    Conv,
    /// `dense`: a fully connected layer (ONNX Gemm or MatMul; every layer of an MLP).
    Dense,
    /// `pool`: average pooling, or a sum or mean over an axis (a relation network's sum over
    /// pairs).
    Pool,
    /// `maxpool`: a max-pool layer (relevance goes to each window's winner whatever the rule).
    MaxPool,
    /// `batchnorm`: batch norm kept as a layer of its own (not folded into the layer before).
    BatchNorm,
    /// `add`: a layer whose affine map is the sum of two computed tensors and nothing more
    /// principal (a residual addition after a cut).
    Add,
    /// `other`: a layer of copies and constants only (a reshape, a normalisation of the
    /// input), or one whose origin is not known.
    Other,
}

impl LayerKind {
    /// Every kind, in the order errors list them.
    pub const ALL: [LayerKind; 7] = [
        LayerKind::Conv,
        LayerKind::Dense,
        LayerKind::Pool,
        LayerKind::MaxPool,
        LayerKind::BatchNorm,
        LayerKind::Add,
        LayerKind::Other,
    ];

    /// The name the command line and reports use.
    pub fn name(self) -> &'static str {
        match self {
            LayerKind::Conv => "conv",
            LayerKind::Dense => "dense",
            LayerKind::Pool => "pool",
            LayerKind::MaxPool => "maxpool",
            LayerKind::BatchNorm => "batchnorm",
            LayerKind::Add => "add",
            LayerKind::Other => "other",
        }
    }

    /// The kind a layer's shape suggests when its origin is not recorded: a max-pool layer,
    /// a dense or shared (dense block) map, a convolution kept as its kernel, or `other`.
    pub fn infer<T: Scalar>(layer: &Layer<T>) -> Self {
        match (&layer.affine, layer.max_pool) {
            (_, Some(_)) => LayerKind::MaxPool,
            (Affine::Dense(_) | Affine::Shared(_), None) => LayerKind::Dense,
            (Affine::Conv(_) | Affine::Blocks(_), None) => LayerKind::Conv,
            (Affine::Sparse(_), None) => LayerKind::Other,
        }
    }

    /// Which of two operators names a layer both contributed to: a convolution or a dense map
    /// before a pooling, before batch norm, before an addition, before anything else.
    pub fn rank(self) -> u8 {
        match self {
            LayerKind::Conv | LayerKind::Dense => 5,
            LayerKind::MaxPool => 4,
            LayerKind::Pool => 3,
            LayerKind::BatchNorm => 2,
            LayerKind::Add => 1,
            LayerKind::Other => 0,
        }
    }

    /// Every name, comma-separated (for error messages).
    pub fn names() -> String {
        let names: Vec<&str> = Self::ALL.iter().map(|k| k.name()).collect();
        names.join(", ")
    }
}

impl fmt::Display for LayerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for LayerKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s.trim().to_ascii_lowercase())
            .ok_or_else(|| format!("unknown layer kind '{s}' (valid: {})", Self::names()))
    }
}

impl Serialize for LayerKind {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for LayerKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_read_back_their_names_and_refuse_others_listing_the_valid_ones() {
        for k in LayerKind::ALL {
            assert_eq!(k.name().parse::<LayerKind>(), Ok(k));
            assert_eq!(k.to_string().to_uppercase().parse::<LayerKind>(), Ok(k));
        }
        let e = "linear".parse::<LayerKind>().unwrap_err();
        assert!(
            e.contains("'linear'") && e.contains("conv, dense, pool"),
            "{e}"
        );
    }
}
