//! A model as a JSON description plus safetensors weights: the format for MLPs trained
//! anywhere that can write safetensors (PyTorch, JAX, NumPy).
//!
//! # The description (`model.json`)
//!
//! ```json
//! {
//!   "format": "dtdcert-mlp",
//!   "version": 1,
//!   "weights": "net.safetensors",
//!   "layers": [
//!     {"type": "dense", "weight": "fc1.weight", "bias": "fc1.bias"},
//!     {"type": "relu"},
//!     {"type": "dense", "weight": "fc2.weight"}
//!   ]
//! }
//! ```
//!
//! - `format` must be `"dtdcert-mlp"` and `version` must be `1`.
//! - `weights` is the safetensors file, relative to the folder of the JSON file (an absolute
//!   path is used as it is).
//! - `layers` run in order, each an object with a `type`:
//!   - `{"type": "dense", "weight": W, "bias": B}`: `z = W a + b`. `W` names a tensor of shape
//!     `[out, in]` (PyTorch's `nn.Linear` convention), `B` a tensor of shape `[out]`. `bias` is
//!     optional; without it the bias is zero.
//!   - `{"type": "relu"}`: a ReLU after the preceding dense layer (a ReLU before any dense layer
//!     is an error; a second ReLU in a row changes nothing).
//!   - `{"type": "flatten"}`, `{"type": "identity"}` and `{"type": "dropout"}` (optionally with
//!     `"p": <number>`) are accepted and do nothing: inputs are flattened per row on loading,
//!     and dropout is the identity at inference.
//! - Tensors must be F32 or F64. Each dense layer's input width must equal the preceding dense
//!   layer's output width. The last ReLU is optional.
//! - Unknown fields, anywhere, are errors, so a misspelt `"bais"` is not silently ignored.
//!
//! Errors name the JSON file (or the safetensors file, for a file that is not valid
//! safetensors) and the place, such as `model.json: layers[2]: tensor "fc2.weight" is not in
//! net.safetensors`.
//!
//! [`save`] writes `<stem>.json`'s weights to `<stem>.safetensors` beside it, with tensors
//! `layers.{i}.weight` and `layers.{i}.bias` (`i` counts dense layers from 0), each in F32 when
//! every value is exactly an f32, else in F64, so loading gives back the identical network.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use ndarray::{Array1, Array2, ArrayViewD};
use safetensors::tensor::{Dtype, TensorView, View};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::io::AtomicFile;
use crate::model::ir::{Affine, Dense, Layer, Network, MAX_PARAMETERS};

/// The value of the description's `format` field.
pub const FORMAT: &str = "dtdcert-mlp";
/// The description version this build reads and writes.
pub const VERSION: u64 = 1;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Description<L> {
    format: String,
    version: u64,
    weights: String,
    layers: Vec<L>,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum LayerSpec {
    Dense {
        weight: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bias: Option<String>,
    },
    Relu {},
    Flatten {},
    Identity {},
    Dropout {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        p: Option<f64>,
    },
}

/// Loads the network described by the JSON file at `path`.
pub fn load(path: &Path) -> Result<Network> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::file(
            path,
            match e.kind() {
                io::ErrorKind::NotFound => "no such file".to_string(),
                io::ErrorKind::InvalidData => "not a text file (invalid UTF-8)".to_string(),
                _ => format!("cannot read: {e}"),
            },
        )
    })?;
    let description = parse_description(&text).map_err(|p| Error::file(path, p))?;
    let weights_path = weights_path(path, &description);
    let map = map_weights(path, &weights_path)?;
    from_parts(path, &description, &weights_path, &map)
}

/// [`load`] for a description and weights already in memory. `path_for_messages` names the
/// JSON file in errors; the weights are named as [`load`] would find them beside it.
pub fn load_bytes(json: &[u8], weights: &[u8], path_for_messages: &Path) -> Result<Network> {
    let path = path_for_messages;
    let text = std::str::from_utf8(json)
        .map_err(|_| Error::file(path, "not a text file (invalid UTF-8)"))?;
    let description = parse_description(text).map_err(|p| Error::file(path, p))?;
    let weights_path = weights_path(path, &description);
    if weights.is_empty() {
        return Err(Error::file(&weights_path, "the file is empty"));
    }
    from_parts(path, &description, &weights_path, weights)
}

/// The weights file: `weights` relative to the folder of the JSON file.
fn weights_path(json: &Path, description: &Description<LayerSpec>) -> PathBuf {
    json.parent()
        .unwrap_or(Path::new(""))
        .join(&description.weights)
}

fn from_parts(
    path: &Path,
    description: &Description<LayerSpec>,
    weights_path: &Path,
    weights: &[u8],
) -> Result<Network> {
    let tensors = SafeTensors::deserialize(weights)
        .map_err(|e| Error::file(weights_path, format!("not a valid safetensors file: {e}")))?;
    let layers = build_layers(description, &tensors).map_err(|p| Error::file(path, p))?;
    Network::new(layers).map_err(|e| e.in_file(path))
}

fn parse_description(text: &str) -> std::result::Result<Description<LayerSpec>, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let Value::Object(fields) = &value else {
        return Err("a model description must be a JSON object".into());
    };
    match fields.get("format") {
        Some(Value::String(f)) if f == FORMAT => {}
        Some(other) => return Err(format!("\"format\" is {other}, expected \"{FORMAT}\"")),
        None => {
            return Err(format!(
                "not a dtdcert model description: the \"format\": \"{FORMAT}\" field is missing"
            ))
        }
    }
    match fields.get("version") {
        Some(v) if v.as_u64() == Some(VERSION) => {}
        Some(other) => {
            return Err(format!(
                "version {other} is not supported; this build reads version {VERSION}"
            ))
        }
        None => return Err("the \"version\" field is missing".into()),
    }
    let description: Description<Value> =
        serde_json::from_value(value).map_err(|e| format!("invalid model description: {e}"))?;
    let layers = description
        .layers
        .into_iter()
        .enumerate()
        .map(|(i, v)| LayerSpec::deserialize(v).map_err(|e| format!("layers[{i}]: {e}")))
        .collect::<std::result::Result<_, _>>()?;
    Ok(Description {
        format: description.format,
        version: description.version,
        weights: description.weights,
        layers,
    })
}

pub(crate) fn map_weights(json: &Path, weights: &Path) -> Result<Mmap> {
    let file = File::open(weights).map_err(|e| {
        Error::file(
            weights,
            match e.kind() {
                io::ErrorKind::NotFound => {
                    format!("no such file (the weights named by {})", json.display())
                }
                _ => format!("cannot read: {e}"),
            },
        )
    })?;
    let meta = file
        .metadata()
        .map_err(|e| Error::file(weights, format!("cannot read: {e}")))?;
    if meta.is_dir() {
        return Err(Error::file(weights, "is a folder, not a safetensors file"));
    }
    if meta.len() == 0 {
        return Err(Error::file(weights, "the file is empty"));
    }
    // SAFETY: a read-only private map; like every loader that maps its input, we rely on the
    // file not being truncated while it is read.
    unsafe { Mmap::map(&file) }.map_err(|e| Error::file(weights, format!("cannot read: {e}")))
}

fn build_layers(
    description: &Description<LayerSpec>,
    tensors: &SafeTensors<'_>,
) -> std::result::Result<Vec<Layer>, String> {
    let file = &description.weights;
    let mut layers: Vec<Layer> = Vec::new();
    // The JSON index of the previous dense layer and its output width.
    let mut previous: Option<(usize, usize)> = None;
    let mut parameters = 0usize;
    for (i, spec) in description.layers.iter().enumerate() {
        let at = |problem: String| format!("layers[{i}]: {problem}");
        match spec {
            LayerSpec::Dense { weight, bias } => {
                let w = tensor(tensors, file, weight).map_err(at)?;
                let (out, inp) = match w.shape() {
                    &[out, inp] => (out, inp),
                    shape => {
                        return Err(at(format!(
                            "weight \"{weight}\" has shape {shape:?}; a dense weight must be 2-D [out, in]"
                        )))
                    }
                };
                if let Some((j, width)) = previous {
                    if inp != width {
                        return Err(at(format!(
                            "weight \"{weight}\" has shape [{out}, {inp}], {inp} inputs, but the dense layer before it (layers[{j}]) has {width} outputs"
                        )));
                    }
                }
                parameters = parameters
                    .saturating_add(out.saturating_mul(inp))
                    .saturating_add(out);
                if parameters > MAX_PARAMETERS {
                    return Err(at(format!(
                        "the network has more than {MAX_PARAMETERS} parameters, the limit"
                    )));
                }
                let b = match bias {
                    Some(name) => {
                        let b = tensor(tensors, file, name).map_err(at)?;
                        if b.shape() != [out] {
                            return Err(at(format!(
                                "bias \"{name}\" has shape {:?} but the weight \"{weight}\" has {out} outputs, so the bias must have shape [{out}]",
                                b.shape()
                            )));
                        }
                        Array1::from(values(&b))
                    }
                    None => Array1::zeros(out),
                };
                let w = Array2::from_shape_vec((out, inp), values(&w))
                    .map_err(|e| at(format!("weight \"{weight}\": {e}")))?;
                let dense = Dense::new(w, b).map_err(|e| at(e.to_string()))?;
                layers.push(Layer {
                    affine: Affine::Dense(dense),
                    relu: false,
                    activation: crate::model::Activation::Relu,
                    max_pool: None,
                    linear_tail: 0,
                });
                previous = Some((i, out));
            }
            LayerSpec::Relu {} => match layers.last_mut() {
                Some(last) => last.relu = true,
                None => {
                    return Err(at(
                        "relu before any dense layer; a ReLU must follow a dense layer".into(),
                    ))
                }
            },
            LayerSpec::Flatten {} | LayerSpec::Identity {} | LayerSpec::Dropout { .. } => {}
        }
    }
    Ok(layers)
}

/// A tensor of the file, checked to be F32 or F64.
pub(crate) fn tensor<'a>(
    tensors: &SafeTensors<'a>,
    file: &str,
    name: &str,
) -> std::result::Result<TensorView<'a>, String> {
    let t = tensors.tensor(name).map_err(|_| {
        let mut names = tensors.names();
        names.sort_unstable();
        let shown: Vec<String> = names.iter().take(20).map(|n| format!("\"{n}\"")).collect();
        let more = if names.len() > shown.len() {
            format!(", … ({} in all)", names.len())
        } else {
            String::new()
        };
        format!(
            "tensor \"{name}\" is not in {file} (it holds {}{more})",
            if shown.is_empty() {
                "no tensors".to_string()
            } else {
                shown.join(", ")
            }
        )
    })?;
    match t.dtype() {
        Dtype::F32 | Dtype::F64 => Ok(t),
        other => Err(format!(
            "tensor \"{name}\" in {file} has dtype {other}; only F32 and F64 are supported"
        )),
    }
}

/// The tensor's values widened to f64 (exact), in C order.
pub(crate) fn values(t: &TensorView<'_>) -> Vec<f64> {
    let bytes = t.data();
    match t.dtype() {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
            .collect(),
        _ => bytes
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect(),
    }
}

/// One tensor to write, in F32 when every value is exactly an f32.
struct Tensor<'a> {
    values: ArrayViewD<'a, f64>,
    dtype: Dtype,
}

impl<'a> Tensor<'a> {
    fn new(values: ArrayViewD<'a, f64>) -> Self {
        let exact_f32 = values
            .iter()
            .all(|&v| f64::from(v as f32).to_bits() == v.to_bits());
        Self {
            values,
            dtype: if exact_f32 { Dtype::F32 } else { Dtype::F64 },
        }
    }
}

impl View for Tensor<'_> {
    fn dtype(&self) -> Dtype {
        self.dtype
    }

    fn shape(&self) -> &[usize] {
        self.values.shape()
    }

    fn data(&self) -> Cow<'_, [u8]> {
        let mut bytes = Vec::with_capacity(self.data_len());
        for &v in &self.values {
            if self.dtype == Dtype::F32 {
                bytes.extend_from_slice(&(v as f32).to_le_bytes());
            } else {
                bytes.extend_from_slice(&v.to_le_bytes());
            }
        }
        Cow::Owned(bytes)
    }

    fn data_len(&self) -> usize {
        let size = if self.dtype == Dtype::F32 { 4 } else { 8 };
        self.values.len() * size
    }
}

/// Writes `net` as the description `json_path` and the weights `<stem>.safetensors` beside it.
/// Both files are written to temporary names and renamed into place, the weights first, so the
/// description never points at missing or partial weights.
pub fn save(net: &Network, json_path: &Path) -> Result<()> {
    let invalid_name = || {
        Error::write(
            json_path,
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "the description needs a UTF-8 file name to name its weights after",
            ),
        )
    };
    let stem = json_path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(invalid_name)?;
    let weights_name = format!("{stem}.safetensors");
    let weights_path = json_path.with_file_name(&weights_name);
    if weights_path == json_path {
        return Err(Error::write(
            json_path,
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "the description would overwrite its own weights; give it a .json name",
            ),
        ));
    }

    let mut tensors = Vec::new();
    let mut specs = Vec::new();
    for (i, layer) in net.layers().iter().enumerate() {
        match &layer.affine {
            Affine::Dense(d) => {
                let weight = format!("layers.{i}.weight");
                let bias = format!("layers.{i}.bias");
                tensors.push((weight.clone(), Tensor::new(d.weight().view().into_dyn())));
                tensors.push((bias.clone(), Tensor::new(d.bias().view().into_dyn())));
                specs.push(LayerSpec::Dense {
                    weight,
                    bias: Some(bias),
                });
            }
            Affine::Sparse(_) | Affine::Shared(_) | Affine::Conv(_) | Affine::Blocks(_) => {
                return Err(Error::write(
                    json_path,
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                            "layer {} is a sparse or shared layer; this JSON description holds \
                             dense layers only",
                            i + 1
                        ),
                    ),
                ))
            }
        }
        if layer.relu {
            specs.push(LayerSpec::Relu {});
        }
    }
    let bytes = safetensors::serialize(tensors, None)
        .map_err(|e| Error::write(&weights_path, io::Error::other(e.to_string())))?;
    let description = Description {
        format: FORMAT.to_string(),
        version: VERSION,
        weights: weights_name,
        layers: specs,
    };
    let mut json = serde_json::to_string_pretty(&description)
        .map_err(|e| Error::write(json_path, io::Error::other(e.to_string())))?;
    json.push('\n');

    let mut weights_file = AtomicFile::create(&weights_path)?;
    weights_file
        .write_all(&bytes)
        .map_err(|e| Error::write(&weights_path, e))?;
    let mut json_file = AtomicFile::create(json_path)?;
    json_file
        .write_all(json.as_bytes())
        .map_err(|e| Error::write(json_path, e))?;
    weights_file.commit()?;
    json_file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ir::dense_layer;
    use std::collections::HashMap;
    use std::path::PathBuf;

    fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// Writes a safetensors file of `(name, dtype, shape, bytes)` tensors.
    fn write_tensors(path: &Path, tensors: &[(&str, Dtype, Vec<usize>, Vec<u8>)]) {
        let views: HashMap<String, TensorView<'_>> = tensors
            .iter()
            .map(|(name, dtype, shape, bytes)| {
                (
                    name.to_string(),
                    TensorView::new(*dtype, shape.clone(), bytes).unwrap(),
                )
            })
            .collect();
        std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
    }

    /// A 3-4-2 PyTorch-style MLP: `fc1` (with bias), ReLU, `fc2` (without).
    fn torch_style(dir: &Path) -> PathBuf {
        write_tensors(
            &dir.join("net.safetensors"),
            &[
                ("fc1.weight", Dtype::F32, vec![4, 3], f32_bytes(&[0.5; 12])),
                (
                    "fc1.bias",
                    Dtype::F32,
                    vec![4],
                    f32_bytes(&[0.1, 0.2, 0.3, 0.4]),
                ),
                (
                    "fc2.weight",
                    Dtype::F64,
                    vec![2, 4],
                    [1.0f64; 8].iter().flat_map(|v| v.to_le_bytes()).collect(),
                ),
            ],
        );
        dir.join("model.json")
    }

    fn describe(layers: &str) -> String {
        format!(
            r#"{{"format": "dtdcert-mlp", "version": 1, "weights": "net.safetensors", "layers": [{layers}]}}"#
        )
    }

    const GOOD_LAYERS: &str = r#"{"type": "flatten"}, {"type": "dense", "weight": "fc1.weight", "bias": "fc1.bias"},
        {"type": "relu"}, {"type": "dropout", "p": 0.5}, {"type": "identity"}, {"type": "dense", "weight": "fc2.weight"}"#;

    fn load_err(json: &Path, text: &str) -> String {
        std::fs::write(json, text).unwrap();
        load(json).unwrap_err().to_string()
    }

    #[test]
    fn loads_a_torch_style_description() {
        let dir = tempfile::tempdir().unwrap();
        let json = torch_style(dir.path());
        std::fs::write(&json, describe(GOOD_LAYERS)).unwrap();
        let net = load(&json).unwrap();
        assert_eq!(net.widths(), vec![3, 4, 2]);
        let layers = net.layers();
        assert!(layers[0].relu && !layers[1].relu);
        match (&layers[0].affine, &layers[1].affine) {
            (Affine::Dense(a), Affine::Dense(b)) => {
                assert_eq!(
                    a.bias().to_vec(),
                    vec![
                        f64::from(0.1f32),
                        f64::from(0.2f32),
                        f64::from(0.3f32),
                        f64::from(0.4f32)
                    ]
                );
                assert_eq!(a.weight()[[3, 2]], 0.5);
                assert_eq!(b.bias().to_vec(), vec![0.0, 0.0]);
            }
            other => panic!("expected dense layers, got {other:?}"),
        }
        // Through the model front door too.
        assert_eq!(crate::model::Model::load(&json).unwrap().net(), &net);
    }

    #[test]
    fn checked_in_fixture_loads() {
        let json =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/safetensors/mlp_3_4_2.json");
        let net = load(&json).unwrap();
        assert_eq!(net.describe(), "3-4-2 (no ReLU after the last layer)");
        match &net.layers()[0].affine {
            Affine::Dense(d) => {
                assert_eq!(d.weight().row(2).to_vec(), vec![0.5, 0.5, -1.5]);
                assert_eq!(d.bias()[0], f64::from(0.1f32));
            }
            other => panic!("expected a dense layer, got {other:?}"),
        }
    }

    #[test]
    fn save_then_load_gives_the_identical_network() {
        let dir = tempfile::tempdir().unwrap();
        let net = Network::new(vec![
            dense_layer(
                3,
                2,
                vec![0.5, -1.0, 2.0, 0.25, -0.0, 3.0],
                vec![1.0, -2.0, 0.5],
                true,
            )
            .unwrap(),
            dense_layer(
                2,
                3,
                vec![0.1, 1e-310, -7.0, 1e300, 4.0, 5.0],
                vec![0.2, 0.0],
                false,
            )
            .unwrap(),
        ])
        .unwrap();
        let json = dir.path().join("saved.json");
        save(&net, &json).unwrap();
        let loaded = load(&json).unwrap();
        assert_eq!(loaded, net);
        assert_eq!(loaded.fingerprint(), net.fingerprint());

        let bytes = std::fs::read(dir.path().join("saved.safetensors")).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let dtype = |name: &str| st.tensor(name).unwrap().dtype();
        assert_eq!(dtype("layers.0.weight"), Dtype::F32);
        assert_eq!(dtype("layers.0.bias"), Dtype::F32);
        assert_eq!(dtype("layers.1.weight"), Dtype::F64);
        assert_eq!(dtype("layers.1.bias"), Dtype::F64);
        assert_eq!(st.tensor("layers.1.weight").unwrap().shape(), &[2, 3]);

        let text = std::fs::read_to_string(&json).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "format": "dtdcert-mlp",
                "version": 1,
                "weights": "saved.safetensors",
                "layers": [
                    {"type": "dense", "weight": "layers.0.weight", "bias": "layers.0.bias"},
                    {"type": "relu"},
                    {"type": "dense", "weight": "layers.1.weight", "bias": "layers.1.bias"}
                ]
            })
        );

        // Saving over existing files replaces them and leaves no temporaries.
        save(&net, &json).unwrap();
        let mut names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, vec!["saved.json", "saved.safetensors"]);

        let e = save(&net, &dir.path().join("w.safetensors"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("overwrite its own weights"), "{e}");
    }

    #[test]
    fn missing_tensor_names_the_layer_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let json = torch_style(dir.path());
        let e = load_err(
            &json,
            &describe(
                r#"{"type": "dense", "weight": "fc1.weight"}, {"type": "relu"}, {"type": "dense", "weight": "fc3.weight"}"#,
            ),
        );
        assert_eq!(
            e,
            format!(
                "{}: layers[2]: tensor \"fc3.weight\" is not in net.safetensors (it holds \"fc1.bias\", \"fc1.weight\", \"fc2.weight\")",
                json.display()
            )
        );
    }

    #[test]
    fn wrong_shapes_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let json = torch_style(dir.path());
        let e = load_err(
            &json,
            &describe(r#"{"type": "dense", "weight": "fc1.weight", "bias": "fc2.weight"}"#),
        );
        assert!(
            e.contains("layers[0]: bias \"fc2.weight\" has shape [2, 4]")
                && e.contains("must have shape [4]"),
            "{e}"
        );
        let e = load_err(
            &json,
            &describe(
                r#"{"type": "dense", "weight": "fc1.weight"}, {"type": "dense", "weight": "fc1.weight"}"#,
            ),
        );
        assert!(e.contains("layers[1]: weight \"fc1.weight\" has shape [4, 3], 3 inputs, but the dense layer before it (layers[0]) has 4 outputs"), "{e}");
        let e = load_err(
            &json,
            &describe(r#"{"type": "dense", "weight": "fc1.bias"}"#),
        );
        assert!(
            e.contains("layers[0]: weight \"fc1.bias\" has shape [4]; a dense weight must be 2-D"),
            "{e}"
        );
    }

    #[test]
    fn f16_and_other_dtypes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        write_tensors(
            &dir.path().join("net.safetensors"),
            &[
                ("w", Dtype::F16, vec![2, 2], vec![0; 8]),
                ("b", Dtype::I64, vec![2], vec![0; 16]),
            ],
        );
        let json = dir.path().join("m.json");
        let e = load_err(&json, &describe(r#"{"type": "dense", "weight": "w"}"#));
        assert!(e.contains("layers[0]: tensor \"w\" in net.safetensors has dtype F16; only F32 and F64 are supported"), "{e}");
        write_tensors(
            &dir.path().join("net.safetensors"),
            &[
                ("w", Dtype::F32, vec![2, 2], vec![0; 16]),
                ("b", Dtype::I64, vec![2], vec![0; 16]),
            ],
        );
        let e = load_err(
            &json,
            &describe(r#"{"type": "dense", "weight": "w", "bias": "b"}"#),
        );
        assert!(
            e.contains("tensor \"b\" in net.safetensors has dtype I64"),
            "{e}"
        );
    }

    #[test]
    fn bad_descriptions_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        let json = torch_style(dir.path());
        let cases = [
            ("{\"format\": ", "not valid JSON"),
            ("[1, 2]", "must be a JSON object"),
            (
                r#"{"version": 1}"#,
                "\"format\": \"dtdcert-mlp\" field is missing",
            ),
            (
                r#"{"format": "onnx", "version": 1}"#,
                "\"format\" is \"onnx\", expected \"dtdcert-mlp\"",
            ),
            (
                r#"{"format": "dtdcert-mlp", "version": 2}"#,
                "version 2 is not supported",
            ),
            (
                r#"{"format": "dtdcert-mlp"}"#,
                "\"version\" field is missing",
            ),
            (
                r#"{"format": "dtdcert-mlp", "version": 1, "layers": []}"#,
                "missing field `weights`",
            ),
            (
                r#"{"format": "dtdcert-mlp", "version": 1, "weights": "net.safetensors", "layers": [], "extra": 1}"#,
                "unknown field `extra`",
            ),
        ];
        for (text, expected) in cases {
            let e = load_err(&json, text);
            assert!(
                e.starts_with(&json.display().to_string()) && e.contains(expected),
                "{text}: {e}"
            );
        }
        let layer_cases = [
            (
                r#"{"type": "dense", "weight": "fc1.weight"}, {"type": "conv2d"}"#,
                "layers[1]: unknown variant `conv2d`",
            ),
            (
                r#"{"type": "dense", "weight": "fc1.weight", "bais": "fc1.bias"}"#,
                "layers[0]: unknown field `bais`",
            ),
            (
                r#"{"type": "relu", "inplace": true}"#,
                "layers[0]: unknown field `inplace`",
            ),
            (
                r#"{"weight": "fc1.weight"}"#,
                "layers[0]: missing field `type`",
            ),
            (r#"{"type": "dense"}"#, "layers[0]: missing field `weight`"),
            (
                r#"{"type": "relu"}, {"type": "dense", "weight": "fc1.weight"}"#,
                "layers[0]: relu before any dense layer",
            ),
            (r#"{"type": "flatten"}"#, "the network has no layers"),
        ];
        for (layers, expected) in layer_cases {
            let e = load_err(&json, &describe(layers));
            assert!(
                e.starts_with(&json.display().to_string()) && e.contains(expected),
                "{layers}: {e}"
            );
        }
        let missing = dir.path().join("none.json");
        assert_eq!(
            load(&missing).unwrap_err().to_string(),
            format!("{}: no such file", missing.display())
        );
    }

    #[test]
    fn bad_weight_files_name_the_weight_file() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("m.json");
        let weights = dir.path().join("net.safetensors");
        let text = describe(r#"{"type": "dense", "weight": "w"}"#);
        let e = load_err(&json, &text);
        assert!(
            e.starts_with(&weights.display().to_string()) && e.contains("no such file"),
            "{e}"
        );
        std::fs::write(&weights, b"").unwrap();
        assert!(load_err(&json, &text).contains("the file is empty"));
        std::fs::write(&weights, b"\x10\0\0\0\0\0\0\0{not json at all").unwrap();
        let e = load_err(&json, &text);
        assert!(
            e.starts_with(&weights.display().to_string())
                && e.contains("not a valid safetensors file"),
            "{e}"
        );
        // A valid file cut short.
        write_tensors(&weights, &[("w", Dtype::F32, vec![2, 2], vec![0; 16])]);
        let bytes = std::fs::read(&weights).unwrap();
        std::fs::write(&weights, &bytes[..bytes.len() - 3]).unwrap();
        assert!(load_err(&json, &text).contains("not a valid safetensors file"));
    }

    #[test]
    fn non_finite_weights_name_the_description() {
        let dir = tempfile::tempdir().unwrap();
        write_tensors(
            &dir.path().join("net.safetensors"),
            &[("w", Dtype::F32, vec![1, 2], f32_bytes(&[1.0, f32::NAN]))],
        );
        let json = dir.path().join("m.json");
        let e = load_err(&json, &describe(r#"{"type": "dense", "weight": "w"}"#));
        assert_eq!(
            e,
            format!(
                "{}: layer 1: weight [0, 1] is NaN, weights must be finite",
                json.display()
            )
        );
    }

    /// The in-memory entry point gives what `load` gives: the same network, or the same error
    /// naming the same file.
    #[test]
    fn bytes_load_like_files() {
        let dir = tempfile::tempdir().unwrap();
        let json = torch_style(dir.path());
        let weights_file = dir.path().join("net.safetensors");
        let weights = std::fs::read(&weights_file).unwrap();
        let cases = [
            describe(GOOD_LAYERS),
            describe(r#"{"type": "dense", "weight": "missing"}"#),
            describe(r#"{"type": "relu"}"#),
            "{not json".to_string(),
            "[]".to_string(),
        ];
        let same = |text: &[u8], weights: &[u8]| {
            std::fs::write(&json, text).unwrap();
            std::fs::write(&weights_file, weights).unwrap();
            assert_eq!(
                load(&json).map_err(|e| e.to_string()),
                load_bytes(text, weights, &json).map_err(|e| e.to_string()),
                "{}",
                String::from_utf8_lossy(text)
            );
        };
        for text in &cases {
            same(text.as_bytes(), &weights);
        }
        let good = describe(GOOD_LAYERS);
        same(b"\xff\xfe not utf-8", &weights);
        same(good.as_bytes(), b"");
        for end in (1..weights.len()).step_by(7) {
            same(good.as_bytes(), &weights[..end]);
        }
    }
}
