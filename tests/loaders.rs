//! Loader conformance: the PyTorch-exported ONNX fixtures of `tests/data/onnx/` (listed in its
//! manifest.json, produced by `scripts/make_onnx_fixtures.py`) load, have the manifest's
//! shapes, and reproduce PyTorch's outputs; the invalid ones are refused naming the file; the
//! two encodings of the C6 example (ONNX and JSON + safetensors) are the same network.

use std::path::{Path, PathBuf};

use dtdcert::model::inputs::load_inputs;
use dtdcert::model::{forward, Model};
use ndarray::Array2;
use ndarray_npy::read_npy;
use serde_json::Value;

fn onnx_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/onnx")
}

fn manifest() -> Vec<Value> {
    let text = std::fs::read_to_string(onnx_dir().join("manifest.json")).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["files"].as_array().unwrap().clone()
}

/// The largest difference allowed between dtdcert's f64 forward pass and the reference
/// outputs, relative to the largest |output| of the same row (at least 1).
///
/// The references are PyTorch forward passes of a `.double()` copy of each module, so both
/// sides evaluate the same f64 weights (f32 widened exactly, or f64) on the same f64 inputs
/// and differ only in the order of summation: at most an ulp or two of the row's scale, 2^-53
/// ≈ 1.1e-16. 1e-15 leaves a margin of about 9 over the worst case measured (given beside each
/// case) and is still eight orders of magnitude tighter than the float32 ONNX runtime agrees
/// with the same references (`onnx_reference_max_abs_diff` in the manifest, up to 7e-8).
const TOLERANCES: &[(&str, f64)] = &[
    // float32 weights and inputs.
    ("mlp_10_10_10_2_relu_last_opset11.onnx", 1e-15), // measured 8.3e-17
    ("mlp_4_8_3_opset13.onnx", 1e-15),                // measured 1.1e-16
    ("mlp_6_5_4_opset17.onnx", 1e-15),                // measured 5.6e-17
    ("mlp_6_8_3_dynamo_opset18.onnx", 1e-15),         // measured 5.6e-17
    ("mlp_matmul_add_6_8_3_dynamo_opset20.onnx", 1e-15), // measured 2.8e-17
    ("mlp_matmul_add_5_6_3_opset13.onnx", 1e-15),     // measured 0
    ("mlp_reshape_4_6_2_opset13.onnx", 1e-15),        // measured 0
    // float64 throughout.
    ("mlp_5_7_3_f64_opset13.onnx", 1e-15), // measured 1.1e-16
    // Convolutions and pooling written as dense layers (sums in another order).
    ("conv_1x4x4_opset13.onnx", 1e-15),
    ("conv_strided_1x7x7_opset11.onnx", 1e-15),
    // Batch norm: the file stores epsilon as a float (1e-5 becomes 9.99999974738e-6) while
    // PyTorch's f64 reference uses 1e-5, which moves each scale 1/sqrt(var + eps) by up to
    // 2.5e-13 relative for the fixtures' var >= 0.5; folding rounds each weight once more.
    ("conv_bn_pool_2x6x6_f64_opset17.onnx", 5e-13), // measured 7.5e-15
    ("mlp_bn_after_relu_5_6_3_opset17.onnx", 5e-13), // measured 5.4e-14
    ("coord_set_1x5x5_opset17.onnx", 5e-13),
    ("coord_set_1x5x5_dynamo_opset18.onnx", 5e-13),
    // Max pooling copies values: the sums are the convolutions' and the last layer's.
    ("conv_maxpool_1x6x6_opset13.onnx", 1e-15),
    ("maxpool_coord_2x7x7_opset17.onnx", 1e-15),
    ("maxpool_coord_2x7x7_dynamo_opset18.onnx", 1e-15),
    // Residual connections: the two branches' rows are summed exactly, then evaluated in f64
    // in another order than PyTorch's (branch by branch).
    ("residual_conv_2x6x6_f64_opset17.onnx", 1e-14),
    ("residual_conv_2x6x6_f64_dynamo_opset18.onnx", 1e-14),
    ("residual_mlp_6_8_3_opset17.onnx", 1e-14),
];

fn tolerance(file: &str) -> f64 {
    TOLERANCES
        .iter()
        .find(|(name, _)| *name == file)
        .unwrap_or_else(|| panic!("{file}: a valid fixture without a tolerance in TOLERANCES"))
        .1
}

#[test]
fn every_valid_onnx_fixture_loads_with_the_manifest_shapes_and_matches_pytorch() {
    let mut checked = 0;
    for entry in manifest().iter().filter(|e| e["kind"] == "valid") {
        let file = entry["file"].as_str().unwrap();
        let tol = tolerance(file);
        let model = Model::load(&onnx_dir().join(file))
            .unwrap_or_else(|e| panic!("{file} does not load: {e}"));
        let net = model.net();

        let widths: Vec<usize> = entry["layer_sizes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(net.widths(), widths, "{file}: layer widths");
        assert_eq!(net.input_dim() as u64, entry["input_dim"], "{file}");
        assert_eq!(net.output_dim() as u64, entry["output_dim"], "{file}");
        let relus: Vec<bool> = net.layers().iter().map(|l| l.relu).collect();
        let expected_relus: Vec<bool> = match entry["relus"].as_array() {
            // Image models: pooling and batch-norm layers have no ReLU of their own.
            Some(listed) => listed.iter().map(|v| v.as_bool().unwrap()).collect(),
            None => {
                let mut r = vec![true; widths.len() - 1];
                *r.last_mut().unwrap() = entry["relu_last"].as_bool().unwrap();
                r
            }
        };
        assert_eq!(relus, expected_relus, "{file}: ReLU placement");
        let pools: Vec<Option<usize>> = net.layers().iter().map(|l| l.max_pool).collect();
        let expected_pools: Vec<Option<usize>> = match entry["max_pools"].as_array() {
            Some(listed) => listed
                .iter()
                .map(|v| v.as_u64().map(|w| w as usize))
                .collect(),
            None => vec![None; relus.len()],
        };
        assert_eq!(pools, expected_pools, "{file}: max-pool layers");
        let tails: Vec<usize> = net.layers().iter().map(|l| l.linear_tail).collect();
        let expected_tails: Vec<usize> = match entry["linear_tails"].as_array() {
            Some(listed) => listed
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect(),
            None => vec![0; relus.len()],
        };
        assert_eq!(tails, expected_tails, "{file}: outputs carried past a ReLU");

        let inputs_path = onnx_dir().join(entry["inputs"].as_str().unwrap());
        let inputs = load_inputs(&inputs_path, None).unwrap();
        assert_eq!(inputs.dtype_name(), entry["inputs_dtype"].as_str().unwrap());
        let outputs: Array2<f64> =
            read_npy(onnx_dir().join(entry["outputs"].as_str().unwrap())).unwrap();
        assert_eq!(inputs.len(), outputs.nrows(), "{file}: rows");
        assert_eq!(outputs.ncols(), net.output_dim(), "{file}: output width");

        let mut worst = 0.0f64;
        for (i, want) in outputs.rows().into_iter().enumerate() {
            let got = forward::output(net, &inputs.row(i).unwrap());
            let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            for (k, (g, w)) in got.iter().zip(want.iter()).enumerate() {
                let rel = (g - w).abs() / scale;
                worst = worst.max(rel);
                assert!(
                    rel <= tol,
                    "{file}: row {i}, output {k}: dtdcert {g:e}, PyTorch {w:e}, relative error {rel:e} > {tol:e}"
                );
            }
        }
        eprintln!("{file}: max relative error {worst:e} (tolerance {tol:e})");
        checked += 1;
    }
    assert_eq!(
        checked,
        TOLERANCES.len(),
        "every listed fixture was checked"
    );
}

#[test]
fn every_invalid_onnx_fixture_is_refused_naming_the_file() {
    let mut checked = 0;
    for entry in manifest().iter().filter(|e| e["kind"] == "invalid") {
        let file = entry["file"].as_str().unwrap();
        let err = Model::load(&onnx_dir().join(file))
            .err()
            .unwrap_or_else(|| panic!("{file} ({}) loads", entry["problem"]));
        let text = err.to_string();
        assert!(
            text.contains(file),
            "{file}: the error does not name it: {text}"
        );
        assert_eq!(err.exit_code(), 2, "{file}");
        checked += 1;
    }
    assert_eq!(checked, 6);
}

#[test]
fn c6_onnx_and_safetensors_encodings_are_the_same_network() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/c6");
    let onnx = Model::load(&dir.join("model.onnx")).unwrap();
    let json = Model::load(&dir.join("model.json")).unwrap();
    assert_eq!(onnx.fingerprint(), json.fingerprint());
    assert_eq!(onnx.net().widths(), vec![10, 10, 10, 2]);
    assert_eq!(onnx.net().widths(), json.net().widths());
    let inputs = load_inputs(&dir.join("inputs.npy"), None).unwrap();
    assert_eq!(inputs.len(), 100);
    for i in 0..inputs.len() {
        let x = inputs.row(i).unwrap();
        assert_eq!(
            forward::output(onnx.net(), &x),
            forward::output(json.net(), &x),
            "row {i}"
        );
    }
}

/// `--keep-batch-norm`: the batch norms of the fixtures become diagonal layers of their own
/// (one more layer each) and the network still matches PyTorch.
#[test]
fn batch_norm_kept_as_its_own_layer_matches_pytorch() {
    use dtdcert::model::LoadOptions;
    let keep = LoadOptions {
        keep_batch_norm: true,
        split_residual: false,
        question: None,
    };
    for (file, extra) in [
        ("conv_bn_pool_2x6x6_f64_opset17", 1),
        ("mlp_bn_after_relu_5_6_3_opset17", 0),
    ] {
        let path = onnx_dir().join(format!("{file}.onnx"));
        let folded = Model::load(&path).unwrap();
        let kept = Model::load_with(&path, &keep).unwrap();
        assert_eq!(
            kept.net().layers().len(),
            folded.net().layers().len() + extra,
            "{file}"
        );
        let inputs = load_inputs(&onnx_dir().join(format!("{file}.inputs.npy")), None).unwrap();
        let outputs: Array2<f64> =
            read_npy(onnx_dir().join(format!("{file}.outputs.npy"))).unwrap();
        for (i, want) in outputs.rows().into_iter().enumerate() {
            let got = forward::output(kept.net(), &inputs.row(i).unwrap());
            let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
            for (g, w) in got.iter().zip(want.iter()) {
                assert!((g - w).abs() / scale <= 5e-13, "{file}: {g} vs {w}");
            }
        }
    }
}
