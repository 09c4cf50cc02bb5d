//! Audit runs of the shipped C6 example, in the library and on the command line, for the tests
//! of resuming, merging and records.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use dtdcert::audit::spec::{RunSpec, Shard, Targets};
use dtdcert::audit::{AuditSettings, OutputOptions, Runner};
use dtdcert::model::inputs::{load_inputs, Inputs};
use dtdcert::model::Model;
use dtdcert::report::Reports;

/// The shipped C6 model.
pub const MODEL: &str = "examples/c6/model.onnx";
/// Its 100 inputs.
pub const INPUTS: &str = "examples/c6/inputs.npy";

/// The C6 model, its inputs and the specification of a run explaining output 0 with
/// `settings`, whole or as `shard`.
pub fn c6_run(settings: AuditSettings, shard: Option<Shard>) -> (Model, Inputs, RunSpec) {
    let model = Model::load(Path::new(MODEL)).unwrap();
    let inputs = load_inputs(Path::new(INPUTS), None).unwrap();
    let spec = RunSpec::new(
        &model,
        Path::new(MODEL),
        &inputs,
        Path::new(INPUTS),
        Targets::Index { index: 0 },
        settings,
        shard,
    )
    .unwrap();
    (model, inputs, spec)
}

/// The files a finished audit with `--csv` writes.
pub const OUTPUTS: [&str; 6] = [
    "run.json",
    "records.jsonl",
    "summary.json",
    "summary.md",
    "summary.html",
    "roots.csv",
];

/// File `name` of folder `dir`.
pub fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(name).display()))
}

/// Asserts that two run folders hold the same [`OUTPUTS`], byte for byte.
pub fn assert_same_outputs(a: &Path, b: &Path) {
    for name in OUTPUTS {
        assert!(
            read(a, name) == read(b, name),
            "{name} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

/// A run on the exact engine, with the reports of `report`.
pub fn runner(options: OutputOptions) -> Runner<'static> {
    Runner {
        backend: None,
        reports: &Reports,
        options,
    }
}

/// A C6 network and `n` inputs in `dir` (model.json, inputs.npy), and a command line auditing
/// them into `--out DIR` or `--resume DIR` with `extra` arguments.
pub fn c6_workload(
    dir: &Path,
    n: usize,
    extra: &'static [&'static str],
) -> impl Fn(&str, &Path) -> Command {
    use dtdcert::repro::mlp_roots::{c6_inputs, c6_network};
    use rand::SeedableRng;

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let net = c6_network(&mut rng, 2.744, -1.96).unwrap();
    let xs = c6_inputs(&net, &mut rng, n, 0, 0.1).unwrap();
    let model_path = dir.join("model.json");
    dtdcert::model::safetensors_json::save(&net, &model_path).unwrap();
    let inputs_path = dir.join("inputs.npy");
    let flat: Vec<f64> = xs.iter().flatten().copied().collect();
    let array = ndarray::Array2::from_shape_vec((xs.len(), 10), flat).unwrap();
    dtdcert::io::write_npy_f64_atomic(&inputs_path, &array).unwrap();
    move |dest: &str, out: &Path| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_dtdcert"));
        c.args(["audit", "--quiet", "--explain", "0", "--model"])
            .arg(&model_path)
            .arg("--inputs")
            .arg(&inputs_path)
            .args(extra)
            .arg(dest)
            .arg(out);
        c
    }
}

/// Waits until `done` holds, or a minute has passed.
pub fn wait_until(done: impl Fn() -> bool) {
    let started = Instant::now();
    while !done() && started.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(2));
    }
}
