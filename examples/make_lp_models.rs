//! The generator behind `lp_models/` (run by `scripts/make_lp_models.sh`).
//!
//! ```text
//! make_lp_models models DIR
//!     Writes the two generated networks and their inputs into DIR:
//!     mlp784.json (+ .safetensors), a random 784-256-256-128-10 ReLU MLP, and
//!     mlp784-inputs.npy (4 inputs in [0, 1]); c6-scaled.json (+ .safetensors), the network
//!     of examples/c6 with its layers' weights scaled by 1e4, 1e-4 and 1e4 (biases so that
//!     every layer computes the same function up to a positive factor: same patterns, same
//!     regions, badly scaled programs).
//! make_lp_models search [--samples N] [--layers L,L,...] -- EXPORT-LP-ARGS
//!     Solves the root problem of every neuron of the first N samples (default: all) and the
//!     given layers (default: all) with the built-in solver, and prints one line each:
//!     sample, layer, neuron, relevance, status, objective. EXPORT-LP-ARGS are the arguments
//!     of `dtdcert export-lp` without --sample, --layer, --neuron and -o.
//! make_lp_models manifest DIR
//!     Reads every DIR/*.lp, solves it with the built-in solver (microlp), and writes
//!     DIR/manifest.json: file, status (optimal or infeasible), objective (null when
//!     infeasible) and the program's size.
//! ```
//!
//! Weights of the generated MLP are multiples of 1e-4 and its inputs multiples of 1/256, so the
//! LP files print short numbers.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use dtdcert::cli::{export_lp, Cli, Command};
use dtdcert::io::write_npy_f64_atomic;
use dtdcert::lp::lpfile::read_lp_file;
use dtdcert::lp::{solve, SolveOptions, Solved};
use dtdcert::model::inputs::load_inputs;
use dtdcert::model::ir::dense_layer;
use dtdcert::model::{safetensors_json, Affine, Model, Network};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};
use serde_json::{json, Value};

type Fallible<T> = Result<T, Box<dyn std::error::Error>>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("models") if args.len() == 2 => models(Path::new(&args[1])),
        Some("search") => search(&args[1..]),
        Some("manifest") if args.len() == 2 => manifest(Path::new(&args[1])),
        _ => Err("usage: make_lp_models models DIR | search [--samples N] [--layers L,..] -- ARGS | manifest DIR".into()),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(2);
    }
}

/// `x` rounded to the nearest `k / scale`, the f64 nearest to that fraction (which prints as
/// a short decimal when `scale` is a power of 10).
fn grid(x: f64, scale: f64) -> f64 {
    (x * scale).round() / scale
}

fn models(dir: &Path) -> Fallible<()> {
    std::fs::create_dir_all(dir)?;
    // A random MLP: N(0, 1/fan_in) weights, small biases, rounded to multiples of 1e-4.
    let mut rng = ChaCha8Rng::seed_from_u64(784);
    let widths = [784usize, 256, 256, 128, 10];
    let mut layers = Vec::new();
    for (k, w) in widths.windows(2).enumerate() {
        let (fan_in, fan_out) = (w[0], w[1]);
        let normal = Normal::new(0.0, 1.0 / (fan_in as f64).sqrt())?;
        let weight: Vec<f64> = (0..fan_in * fan_out)
            .map(|_| grid(normal.sample(&mut rng), 1e4))
            .collect();
        let bias: Vec<f64> = (0..fan_out)
            .map(|_| grid(0.05 * normal.sample(&mut rng), 1e4))
            .collect();
        let relu = k + 2 < widths.len();
        layers.push(dense_layer(fan_out, fan_in, weight, bias, relu)?);
    }
    safetensors_json::save(&Network::new(layers)?, &dir.join("mlp784.json"))?;
    let inputs = Array2::from_shape_fn((4, 784), |_| rng.random_range(0..=256) as f64 / 256.0);
    write_npy_f64_atomic(&dir.join("mlp784-inputs.npy"), &inputs)?;

    // examples/c6 with weights scaled by 1e4, 1e-4, 1e4: the biases follow the running
    // product, so every pre-activation is the original one times a positive factor.
    let c6 = Model::load(Path::new("examples/c6/model.onnx"))?;
    let factors = [1e4, 1e-4, 1e4];
    let mut running = 1.0;
    let mut scaled = Vec::new();
    for (layer, factor) in c6.net().layers().iter().zip(factors) {
        running *= factor;
        let Affine::Dense(d) = &layer.affine else {
            return Err("the C6 network has dense layers only".into());
        };
        let (rows, cols) = d.weight().dim();
        let weight: Vec<f64> = d.weight().iter().map(|w| w * factor).collect();
        let bias: Vec<f64> = d.bias().iter().map(|b| b * running).collect();
        scaled.push(dense_layer(rows, cols, weight, bias, layer.relu)?);
    }
    safetensors_json::save(&Network::new(scaled)?, &dir.join("c6-scaled.json"))?;
    Ok(())
}

/// The export of `args` plus the sample, layer and neuron.
fn export(
    args: &[String],
    sample: usize,
    layer: usize,
    neuron: usize,
) -> Fallible<export_lp::Exported> {
    let mut line = vec!["dtdcert".to_string(), "export-lp".to_string()];
    line.extend(args.iter().cloned());
    for (flag, v) in [
        ("--sample", sample),
        ("--layer", layer),
        ("--neuron", neuron),
    ] {
        line.push(flag.into());
        line.push(v.to_string());
    }
    line.extend(["-o".to_string(), "unused.lp".to_string()]);
    let Command::ExportLp(a) = Cli::try_parse_from(line)?.command else {
        unreachable!("export-lp parses as export-lp")
    };
    Ok(export_lp::build(&a)?)
}

fn flag_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn search(args: &[String]) -> Fallible<()> {
    let split = args
        .iter()
        .position(|a| a == "--")
        .ok_or("search needs `--` before the export-lp arguments")?;
    let (own, rest) = (&args[..split], &args[split + 1..]);
    let model = Model::load(Path::new(flag_value(rest, "--model").ok_or("--model")?))?;
    let inputs = load_inputs(
        Path::new(flag_value(rest, "--inputs").ok_or("--inputs")?),
        flag_value(rest, "--inputs-key"),
    )?;
    let samples = match flag_value(own, "--samples") {
        Some(n) => n.parse::<usize>()?.min(inputs.len()),
        None => inputs.len(),
    };
    let layers: Vec<usize> = match flag_value(own, "--layers") {
        Some(list) => list.split(',').map(str::parse).collect::<Result<_, _>>()?,
        None => (1..=model.net().layers().len()).collect(),
    };
    println!("sample layer neuron relevance status objective");
    for sample in 0..samples {
        for &layer in &layers {
            let width = model.net().layers()[layer - 1].affine.out_dim();
            for neuron in 0..width {
                let e = export(rest, sample, layer, neuron)?;
                let (status, objective) = match solve(&e.program, &SolveOptions::default()) {
                    Solved::Optimal { objective, .. } => ("optimal".to_string(), objective),
                    Solved::Infeasible => ("infeasible".to_string(), f64::NAN),
                    other => (format!("{other:?}"), f64::NAN),
                };
                println!(
                    "{sample} {layer} {neuron} {:e} {status} {objective:e}",
                    e.relevance.unwrap_or(f64::NAN)
                );
            }
        }
    }
    Ok(())
}

fn manifest(dir: &Path) -> Fallible<()> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "lp"));
    files.sort();
    let mut entries: Vec<Value> = Vec::new();
    for path in &files {
        let lp = read_lp_file(path)?;
        let started = Instant::now();
        let solved = solve(&lp, &SolveOptions::default());
        let seconds = started.elapsed().as_secs_f64();
        let (status, objective) = match solved {
            Solved::Optimal { objective, .. } => ("optimal", json!(objective)),
            Solved::Infeasible => ("infeasible", Value::Null),
            other => return Err(format!("{}: {other:?}", path.display()).into()),
        };
        let file = path
            .file_name()
            .expect("a file")
            .to_string_lossy()
            .into_owned();
        eprintln!("{file}: {status} {objective} ({seconds:.2} s)");
        entries.push(json!({
            "file": file,
            "status": status,
            "objective": objective,
            "variables": lp.num_vars(),
            "constraints": lp.num_rows(),
            "nonzeros": lp.nonzeros(),
        }));
    }
    let text = serde_json::to_string_pretty(&Value::Array(entries))? + "\n";
    std::fs::write(dir.join("manifest.json"), text)?;
    Ok(())
}
