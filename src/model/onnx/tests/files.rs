//! Files: damaged, truncated or foreign bytes get one clear error; bytes load as files do.

use super::*;

fn valid_bytes() -> Vec<u8> {
    matmul_add_model(false).write_to_bytes().expect("serialise")
}

fn load_via_file(bytes: &[u8]) -> Result<Network> {
    let (_dir, path) = write_bytes(bytes);
    load(&path)
}

#[test]
fn damaged_files_get_one_clear_error() {
    let bytes = valid_bytes();
    // Every cut after the first field (ir_version) must read as a truncation.
    for end in 2..bytes.len() {
        let cut = load_via_file(&bytes[..end]).expect_err("truncated");
        assert_has(&cut.to_string(), &["model.onnx", "truncated"]);
    }
    let half = load_via_file(&bytes[..bytes.len() / 2])
        .expect_err("truncated")
        .to_string();
    assert_has(&half, &["truncated ONNX model (field 7 declares"]);

    let garbage =
        load_via_file(b"\xff\xfe this is not protobuf at all \x00\x01").expect_err("garbage");
    assert_has(&garbage.to_string(), &["model.onnx", "not an ONNX model"]);

    let text = load_via_file(b"{\"layers\": []}").expect_err("json");
    assert_has(&text.to_string(), &["not an ONNX model"]);

    let empty = load_via_file(b"").expect_err("empty");
    assert_has(&empty.to_string(), &["model.onnx", "empty file"]);

    let missing = load(Path::new("/nonexistent/dtdcert/model.onnx")).expect_err("missing");
    assert_has(
        &missing.to_string(),
        &["/nonexistent/dtdcert/model.onnx", "cannot read"],
    );
}

/// The in-memory entry point gives what `load` gives, for every checked-in fixture and
/// every prefix of a valid model.
#[test]
fn bytes_load_like_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/onnx");
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "onnx"))
        .collect();
    fixtures.sort();
    assert!(fixtures.len() > 5);
    let same = |path: &Path, bytes: &[u8]| {
        assert_eq!(
            load(path).map_err(|e| e.to_string()),
            load_bytes(bytes, path).map_err(|e| e.to_string()),
            "{}",
            path.display()
        );
    };
    for path in &fixtures {
        same(path, &std::fs::read(path).unwrap());
    }
    let bytes = valid_bytes();
    let (_dir, path) = write_bytes(&bytes);
    for end in 0..bytes.len() {
        std::fs::write(&path, &bytes[..end]).unwrap();
        same(&path, &bytes[..end]);
    }
}

#[test]
fn no_prefix_or_byte_damage_panics() {
    let bytes = valid_bytes();
    for end in 0..bytes.len() {
        let _ = load_via_file(&bytes[..end]);
    }
    // A fixed-seed LCG picks bytes to overwrite; every outcome must be Ok or Err.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..2000 {
        let mut damaged = bytes.clone();
        for _ in 0..3 {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let at = (state >> 33) as usize % damaged.len();
            damaged[at] = (state >> 17) as u8;
        }
        let _ = load_via_file(&damaged);
    }
}
