//! Running the binary on relation-network data, shared by the `relnet` command tests.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

pub fn dtdcert(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dtdcert"))
        .args(args)
        .output()
        .unwrap()
}

/// `out`, after checking that the command succeeded (its stderr otherwise).
pub fn ok(out: Output) -> Output {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `dtdcert relnet COMMAND -q --model MODEL --data DATA --out OUT EXTRA…`.
pub fn relnet(command: &str, model: &Path, data: &Path, out: &Path, extra: &[&str]) -> Output {
    let args = [
        &[
            "relnet",
            command,
            "-q",
            "--model",
            s(model),
            "--data",
            s(data),
            "--out",
            s(out),
        ][..],
        extra,
    ]
    .concat();
    dtdcert(&args)
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A Sort-of-CLEVR set of `images` images from `seed` in `out`.
pub fn generate(out: &Path, images: usize, seed: u64) {
    let (images, seed) = (images.to_string(), seed.to_string());
    ok(dtdcert(&[
        "relnet",
        "generate",
        "-q",
        "--out",
        s(out),
        "--images",
        &images,
        "--seed",
        &seed,
    ]));
}
