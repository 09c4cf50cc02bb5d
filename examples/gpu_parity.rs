//! The parity step of the GPU run (`scripts/gpu_run.sh`): the libtorch backend on a device
//! against the exact engine, on the shipped C6 example and the convolutional, max-pool,
//! residual and shared-layer fixtures of `tests/data/onnx/`, rules z+ and z. In f64 every
//! relevance must agree within 1e-12 (relative to its layer's scale) and every verdict must
//! be the exact engine's except where a deciding value lies within `1024 ε S` of zero (those
//! are counted); f32 is reported. `tests/torch_backend.rs` runs the same comparison on the
//! CPU.
//!
//! Usage: `gpu_parity --device cpu|cuda [--root DIR] [--tiny] OUT.json` (`--root`: the
//! repository, default the current folder; `--tiny`: C6's first 8 inputs and one fixture).
//! Exit code 0 when every f64 comparison passes, 1 when one fails, 2 for a bad request.

use std::path::{Path, PathBuf};
use std::time::Instant;

use dtdcert::audit::{AuditSettings, DeviceChoice};
use dtdcert::dtd::DtdSettings;
use dtdcert::model::inputs::load_inputs;
use dtdcert::model::Model;
use dtdcert::torch::parity::compare_audits;
use dtdcert::torch::Precision;
use serde_json::{json, Value};

struct Request {
    device: String,
    root: PathBuf,
    tiny: bool,
    out: PathBuf,
}

fn request() -> Result<Request, String> {
    let mut args = std::env::args().skip(1);
    let (mut device, mut root, mut tiny, mut out) = (None, PathBuf::from("."), false, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--device" => device = args.next(),
            "--root" => root = args.next().ok_or("--root needs a folder")?.into(),
            "--tiny" => tiny = true,
            _ if a.starts_with('-') => return Err(format!("unknown option {a}")),
            _ if out.is_none() => out = Some(PathBuf::from(a)),
            _ => return Err(format!("one output file, not also {a}")),
        }
    }
    Ok(Request {
        device: device.ok_or("--device cpu|cuda is required")?,
        root,
        tiny,
        out: out.ok_or("usage: gpu_parity --device cpu|cuda [--root DIR] [--tiny] OUT.json")?,
    })
}

/// A model and its inputs (the first `limit`).
fn case(model: &Path, inputs: &Path, limit: usize) -> Result<(Model, Vec<Vec<f64>>), String> {
    let m = Model::load(model).map_err(|e| e.to_string())?;
    let x = load_inputs(inputs, None).map_err(|e| e.to_string())?;
    let rows = (0..x.len().min(limit))
        .map(|i| x.row(i).map_err(|e| e.to_string()))
        .collect::<Result<_, _>>()?;
    Ok((m, rows))
}

fn run(r: &Request) -> Result<bool, String> {
    let device = dtdcert::torch::device(DeviceChoice::parse(&r.device).map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let limit = if r.tiny { 8 } else { usize::MAX };
    let c6 = r.root.join("examples/c6");
    let mut models = vec![(
        "c6".to_string(),
        case(&c6.join("model.onnx"), &c6.join("inputs.npy"), limit)?,
    )];
    let fixtures: &[&str] = if r.tiny {
        &["conv_bn_pool_2x6x6_f64_opset17"]
    } else {
        &[
            "conv_bn_pool_2x6x6_f64_opset17",
            "maxpool_coord_2x7x7_opset17",
            "residual_conv_2x6x6_f64_opset17",
            "coord_set_1x5x5_opset17",
        ]
    };
    let onnx = r.root.join("tests/data/onnx");
    for name in fixtures {
        let model = onnx.join(format!("{name}.onnx"));
        let inputs = onnx.join(format!("{name}.inputs.npy"));
        models.push((name.to_string(), case(&model, &inputs, limit)?));
    }
    let mut results = Vec::new();
    let mut passed = true;
    for (name, (model, xs)) in &models {
        for rule in ["z+", "z"] {
            let settings = AuditSettings {
                dtd: DtdSettings {
                    rule: rule.parse().map_err(|e: dtdcert::Error| e.to_string())?,
                    ..DtdSettings::default()
                },
                ..AuditSettings::default()
            };
            for (precision, tolerance, strict) in
                [(Precision::F64, 1e-12, true), (Precision::F32, 1e-5, false)]
            {
                let started = Instant::now();
                let got =
                    compare_audits(model, xs, &settings, precision, device, tolerance, strict);
                let seconds = started.elapsed().as_secs_f64();
                let ok = got.as_ref().is_ok_and(|p| p.outcomes == 0) || !strict;
                passed &= ok;
                let mut entry = json!({
                    "model": name, "samples": xs.len(), "rule": rule,
                    "precision": format!("{precision:?}").to_lowercase(),
                    "checked": strict, "passed": ok, "seconds": seconds,
                });
                match got {
                    Ok(p) => entry["parity"] = serde_json::to_value(p).unwrap_or(Value::Null),
                    Err(e) => entry["error"] = Value::String(e),
                }
                println!("{entry}");
                results.push(entry);
            }
        }
    }
    let report = json!({
        "device": format!("{device:?}"), "tiny": r.tiny, "passed": passed, "cases": results,
    });
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(&r.out, text).map_err(|e| format!("{}: cannot write: {e}", r.out.display()))?;
    Ok(passed)
}

fn main() {
    let code = match request().and_then(|r| run(&r)) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    };
    std::process::exit(code);
}
