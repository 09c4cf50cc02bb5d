//! Writes the workload of `benches/wide_audit.rs` as files, for timing the command line and
//! the Python package on it: the 784-256-256-128-10 MLP (random weights, seed 1) as
//! `wide.json` + `wide.safetensors`, and its 1000 inputs as `inputs.npy` (float64), into the
//! folder given (created).
//!
//!     cargo run --release --example wide_mlp -- DIR
//!     dtdcert audit --model DIR/wide.json --inputs DIR/inputs.npy --quiet --out DIR/audit

#[path = "../benches/common/mod.rs"]
mod common;

use std::path::PathBuf;

use common::{wide_mlp, WIDTHS};
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SAMPLES: usize = 1000;

fn main() -> dtdcert::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .expect("usage: wide_mlp DIR (the folder to write into)"),
    );
    std::fs::create_dir_all(&dir).map_err(|e| dtdcert::Error::write(&dir, e))?;
    // The same draws, in the same order, as the benchmark.
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let net = wide_mlp(&mut rng);
    let inputs = Array2::from_shape_fn((SAMPLES, WIDTHS[0]), |_| rng.random::<f32>() as f64);
    dtdcert::model::safetensors_json::save(&net, &dir.join("wide.json"))?;
    dtdcert::io::write_npy_f64_atomic(&dir.join("inputs.npy"), &inputs)?;
    println!("{}: {} and {SAMPLES} inputs", dir.display(), net.describe());
    Ok(())
}
