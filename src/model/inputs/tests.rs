//! Tests of the input loader, and of what it shares with the target loader: the container, the
//! header, and the bounds on what a file may announce.

use std::fs::File;
use std::io::{Cursor, Write};

use ndarray::{arr1, arr2, Array3};
use ndarray_npy::NpzWriter;

use super::*;
use crate::io::npy::test_support::{err, raw_npy, write};
use crate::io::npy::{MAX_NPZ_HEADER, NPY_MAGIC};
use crate::io::{write_npy_f64_atomic, AtomicFile};
use crate::model::targets::{load_targets, load_targets_bytes, load_targets_keyed};

#[test]
fn f32_npy_is_mapped_and_widened_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let a = arr2(&[[0.1f32, -2.5, 3.0], [1e-30, 4.0, -0.0]]);
    let path = write(dir.path(), "x.npy", &a);
    let inputs = load_inputs(&path, None).unwrap();
    assert!(inputs.is_mapped());
    assert_eq!(
        (inputs.len(), inputs.dim(), inputs.dtype_name()),
        (2, 3, "float32")
    );
    assert_eq!(inputs.shape(), &[2, 3]);
    assert_eq!(inputs.row(0).unwrap(), vec![f64::from(0.1f32), -2.5, 3.0]);
    let mut row = vec![9.0; 7];
    inputs.row_into(1, &mut row).unwrap();
    assert_eq!(row, vec![f64::from(1e-30f32), 4.0, 0.0]);
    assert!(row[2].is_sign_negative());
    assert!(err(inputs.row(2)).contains("no row 2"));
    let both: Vec<f64> = a.iter().map(|&v| f64::from(v)).collect();
    assert_eq!(inputs.batch(0..2).unwrap(), both);
    assert_eq!(inputs.batch(1..2).unwrap(), both[3..]);
    assert!(inputs.batch(1..1).unwrap().is_empty());
    assert!(err(inputs.batch(1..3)).contains("no row 2"));
    match inputs.view().unwrap() {
        InputsView::F32(v) => assert_eq!(v, a),
        other => panic!("{other:?}"),
    }
}

#[test]
fn f64_npy_is_mapped() {
    let dir = tempfile::tempdir().unwrap();
    let a = arr2(&[[0.1f64, 0.2], [0.3, 0.4], [0.5, 0.6]]);
    let path = write(dir.path(), "x.npy", &a);
    let inputs = load_inputs(&path, None).unwrap();
    assert!(inputs.is_mapped());
    assert_eq!(
        (inputs.len(), inputs.dim(), inputs.dtype_name()),
        (3, 2, "float64")
    );
    for i in 0..3 {
        assert_eq!(inputs.row(i).unwrap(), a.row(i).to_vec());
    }
    match inputs.view().unwrap() {
        InputsView::F64(v) => {
            assert!(v.is_view());
            assert_eq!(v, a);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn one_d_is_one_input() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "x.npy", &arr1(&[1.0f64, 2.0, 3.0, 4.0]));
    let inputs = load_inputs(&path, None).unwrap();
    assert_eq!((inputs.len(), inputs.dim()), (1, 4));
    assert_eq!(inputs.row(0).unwrap(), vec![1.0, 2.0, 3.0, 4.0]);
}

#[test]
fn three_d_rows_are_flattened_in_c_order() {
    let dir = tempfile::tempdir().unwrap();
    let a = Array3::from_shape_fn((2, 2, 3), |(i, j, k)| (100 * i + 10 * j + k) as f32);
    let path = write(dir.path(), "x.npy", &a);
    let inputs = load_inputs(&path, None).unwrap();
    assert_eq!((inputs.len(), inputs.dim()), (2, 6));
    assert_eq!(
        inputs.row(1).unwrap(),
        vec![100.0, 101.0, 102.0, 110.0, 111.0, 112.0]
    );
    assert_eq!(
        err(inputs.check_width(&path, 10)),
        format!(
            "{}: inputs have width 6 (rows of shape [2, 3] flattened) but the model expects 10",
            path.display()
        )
    );

    // The same array in Fortran order is read into memory and gives the same rows.
    let f = Array3::from_shape_vec((2, 2, 3).f(), vec![0.0f32; 12]).unwrap();
    let mut f = f;
    f.assign(&a);
    let path = write(dir.path(), "f.npy", &f);
    let bytes = std::fs::read(&path).unwrap();
    assert!(String::from_utf8_lossy(&bytes[..128]).contains("'fortran_order': True"));
    let inputs = load_inputs(&path, None).unwrap();
    assert!(!inputs.is_mapped());
    assert_eq!(
        inputs.row(1).unwrap(),
        vec![100.0, 101.0, 102.0, 110.0, 111.0, 112.0]
    );
    match inputs.view().unwrap() {
        InputsView::F32(v) => {
            assert_eq!(v.row(0).to_vec(), vec![0.0, 1.0, 2.0, 10.0, 11.0, 12.0])
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn check_width_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "X.npy", &Array2::<f64>::zeros((2, 7)));
    let inputs = load_inputs(&path, None).unwrap();
    inputs.check_width(&path, 7).unwrap();
    assert_eq!(
        err(inputs.check_width(Path::new("X.npy"), 10)),
        "X.npy: inputs have width 7 but the model expects 10"
    );
}

#[test]
fn big_endian_and_misaligned_data_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let values = [1.5f32, -0.1, 7.0, 1e20];
    let be: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
    let path = dir.path().join("be.npy");
    let dict = "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }";
    std::fs::write(&path, raw_npy(dict, 128, &be)).unwrap();
    let inputs = load_inputs(&path, None).unwrap();
    assert!(!inputs.is_mapped());
    assert_eq!(inputs.row(1).unwrap(), vec![7.0, f64::from(1e20f32)]);

    let le: Vec<u8> = [0.25f64, 3.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let path = dir.path().join("odd.npy");
    let dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }";
    std::fs::write(&path, raw_npy(dict, 76, &le)).unwrap();
    let inputs = load_inputs(&path, None).unwrap();
    assert!(!inputs.is_mapped());
    assert_eq!(inputs.row(0).unwrap(), vec![0.25, 3.0]);
}

#[test]
fn npz_with_one_array() {
    let dir = tempfile::tempdir().unwrap();
    let a = arr2(&[[1.0f32, 2.0], [3.0, 4.0]]);
    for compressed in [false, true] {
        let path = dir.path().join(format!("x{compressed}.npz"));
        let file = File::create(&path).unwrap();
        let mut npz = if compressed {
            NpzWriter::new_compressed(file)
        } else {
            NpzWriter::new(file)
        };
        npz.add_array("data", &a).unwrap();
        npz.finish().unwrap();
        let inputs = load_inputs(&path, None).unwrap();
        assert!(!inputs.is_mapped());
        assert_eq!(
            (inputs.len(), inputs.dim(), inputs.dtype_name()),
            (2, 2, "float32")
        );
        assert_eq!(inputs.row(1).unwrap(), vec![3.0, 4.0]);
        let inputs = load_inputs(&path, Some("data")).unwrap();
        assert_eq!(inputs.row(0).unwrap(), vec![1.0, 2.0]);
    }
}

#[test]
fn npz_with_two_arrays_needs_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.npz");
    let mut npz = NpzWriter::new(File::create(&path).unwrap());
    npz.add_array("x", &arr2(&[[1.0f64, 2.0, 3.0]])).unwrap();
    npz.add_array("y", &arr1(&[2i64])).unwrap();
    npz.finish().unwrap();
    let e = err(load_inputs(&path, None));
    assert!(
        e.contains("several arrays (\"x\", \"y\")") && e.contains("pass a key"),
        "{e}"
    );
    let inputs = load_inputs(&path, Some("x")).unwrap();
    assert_eq!(inputs.row(0).unwrap(), vec![1.0, 2.0, 3.0]);
    let e = err(load_inputs(&path, Some("z")));
    assert!(
        e.contains("no array named \"z\"") && e.contains("\"x\", \"y\""),
        "{e}"
    );
    let e = err(load_inputs(&path, Some("y")));
    assert!(e.contains("array \"y\"") && e.contains("int64"), "{e}");
    assert_eq!(load_targets_keyed(&path, Some("y"), 1).unwrap(), vec![2]);
    assert!(err(load_targets(&path, 1)).contains("pass a key"));
}

#[test]
fn integer_inputs_are_refused_naming_the_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "int.npy", &arr2(&[[1i64, 2], [3, 4]]));
    let e = err(load_inputs(&path, None));
    assert!(e.starts_with(&path.display().to_string()), "{e}");
    assert!(
        e.contains("float32 or float64") && e.contains("int64"),
        "{e}"
    );
    let path = write(dir.path(), "u8.npy", &arr2(&[[1u8, 2]]));
    assert!(err(load_inputs(&path, None)).contains("uint8"));
}

#[test]
fn truncated_garbage_empty_and_missing_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "x.npy", &Array2::<f64>::ones((4, 3)));
    let bytes = std::fs::read(&path).unwrap();

    std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
    let e = err(load_inputs(&path, None));
    assert!(
        e.contains("x.npy: truncated") && e.contains("(96 bytes)") && e.contains("91"),
        "{e}"
    );

    std::fs::write(&path, &bytes[..40]).unwrap();
    assert!(
        err(load_inputs(&path, None)).contains("truncated: the file ends inside the .npy header")
    );
    std::fs::write(&path, &bytes[..3]).unwrap();
    assert!(err(load_inputs(&path, None)).contains("truncated"));

    let mut extra = bytes.clone();
    extra.extend([0; 8]);
    std::fs::write(&path, &extra).unwrap();
    assert!(err(load_inputs(&path, None)).contains("8 bytes follow"));

    std::fs::write(&path, b"this is not numpy at all").unwrap();
    let e = err(load_inputs(&path, None));
    assert!(e.contains("x.npy: not a NumPy file"), "{e}");

    std::fs::write(&path, b"\x93NUMPX\x01\x00").unwrap();
    assert!(err(load_inputs(&path, None)).contains("not a NumPy file"));

    std::fs::write(&path, b"PK\x03\x04garbage").unwrap();
    assert!(err(load_inputs(&path, None)).contains("not a readable .npz archive"));

    std::fs::write(&path, b"").unwrap();
    assert_eq!(
        err(load_inputs(&path, None)),
        format!("{}: the file is empty", path.display())
    );

    let missing = dir.path().join("missing.npy");
    assert_eq!(
        err(load_inputs(&missing, None)),
        format!("{}: no such file", missing.display())
    );
    assert!(err(load_inputs(dir.path(), None)).contains("is a folder"));
    assert!(err(load_targets(&missing, 3)).contains("no such file"));
}

#[test]
fn hostile_headers_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.npy");
    let cases = [
        // A shape far beyond the file: refused before any allocation.
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000000000, 1000000), }",
            "truncated",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (18446744073709551615, 2), }",
            "too large",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (), }",
            "scalar",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (0, 5), }",
            "no inputs",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (5, 0), }",
            "width 0",
        ),
        (
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3)",
            "malformed .npy header",
        ),
        (
            "{'descr': '<f8', 'shape': (2, 3), }",
            "malformed .npy header",
        ),
        (
            "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }",
            "structured",
        ),
        (
            "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }",
            "object",
        ),
        (
            "{'descr': '<U5', 'fortran_order': False, 'shape': (1,), }",
            "str",
        ),
    ];
    for (dict, expected) in cases {
        std::fs::write(&path, raw_npy(dict, 128, &[0; 8])).unwrap();
        let e = err(load_inputs(&path, None));
        assert!(e.contains(expected), "{dict}: {e}");
    }
    let deep = format!("{}{}", "(".repeat(5000), ")".repeat(5000));
    std::fs::write(&path, raw_npy(&deep, 10_048, &[])).unwrap();
    assert!(err(load_inputs(&path, None)).contains("nested too deeply"));

    let mut v2 = NPY_MAGIC.to_vec();
    v2.extend([2, 0]);
    v2.extend(u32::MAX.to_le_bytes());
    std::fs::write(&path, &v2).unwrap();
    assert!(err(load_inputs(&path, None)).contains("malformed .npy header"));
    v2[6] = 9;
    std::fs::write(&path, &v2).unwrap();
    assert!(err(load_inputs(&path, None)).contains("version 9.0"));
}

/// Every prefix of valid files, and files with bytes flipped, load or fail cleanly.
#[test]
fn damaged_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let npy = write(dir.path(), "x.npy", &arr2(&[[1.0f32, 2.0], [3.0, 4.0]]));
    let npz = dir.path().join("x.npz");
    let mut w = NpzWriter::new_compressed(File::create(&npz).unwrap());
    w.add_array("a", &arr2(&[[1.0f64, 2.0]])).unwrap();
    w.finish().unwrap();
    let target = dir.path().join("damaged");
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for source in [npy, npz] {
        let bytes = std::fs::read(&source).unwrap();
        for cut in 0..bytes.len() {
            std::fs::write(&target, &bytes[..cut]).unwrap();
            let _ = load_inputs(&target, None).map(|i| i.row(0));
            let _ = load_targets(&target, 2);
        }
        for _ in 0..300 {
            let mut damaged = bytes.clone();
            for _ in 0..3 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let at = (seed % damaged.len() as u64) as usize;
                damaged[at] = (seed >> 32) as u8;
            }
            std::fs::write(&target, &damaged).unwrap();
            if let Ok(inputs) = load_inputs(&target, None) {
                for i in 0..inputs.len() {
                    let _ = inputs.row(i);
                }
                let _ = inputs.view();
            }
            let _ = load_targets(&target, 2);
        }
    }
}

#[test]
fn non_finite_values_are_reported_with_row_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "nan.npy",
        &arr2(&[[1.0f32, 2.0], [3.0, f32::NAN], [f32::INFINITY, 0.0]]),
    );
    let inputs = load_inputs(&path, None).unwrap();
    assert_eq!(inputs.row(0).unwrap(), vec![1.0, 2.0]);
    assert_eq!(
        err(inputs.row(1)),
        format!(
            "{}: row 1, column 1 is NaN; inputs must be finite (rows and columns count from 0)",
            path.display()
        )
    );
    assert!(err(inputs.row(2)).contains("row 2, column 0 is inf"));
}

#[test]
fn key_on_npy_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "x.npy", &arr2(&[[1.0f64]]));
    assert!(err(load_inputs(&path, Some("x"))).contains("single .npy array"));
}

#[test]
fn atomic_npy_write_round_trips_and_leaves_no_temporaries() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.npy");
    let a = arr2(&[[0.1, -2.0, 1e300], [0.0, 5.0, -7.25]]);
    write_npy_f64_atomic(&path, &a).unwrap();
    write_npy_f64_atomic(&path, &a).unwrap();
    let inputs = load_inputs(&path, None).unwrap();
    assert_eq!(inputs.row(0).unwrap(), vec![0.1, -2.0, 1e300]);
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("out.npy")]);

    let e = write_npy_f64_atomic(&dir.path().join("no/such/dir/out.npy"), &a).unwrap_err();
    assert!(matches!(e, Error::Write { .. }), "{e}");
    let dropped = AtomicFile::create(&dir.path().join("dropped.npy")).unwrap();
    drop(dropped);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn checked_in_fixtures_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/npy");
    let first = vec![0.5, -1.0, 2.0];
    for name in ["inputs_f32_4x3.npy", "inputs_f64_4x3.npy"] {
        let inputs = load_inputs(&dir.join(name), None).unwrap();
        assert!(inputs.is_mapped());
        assert_eq!((inputs.len(), inputs.dim()), (4, 3));
        assert_eq!(inputs.row(0).unwrap(), first);
    }
    let npz = dir.join("dataset_x_y.npz");
    assert_eq!(load_inputs(&npz, Some("x")).unwrap().row(0).unwrap(), first);
    assert_eq!(
        load_targets_keyed(&npz, Some("y"), 4).unwrap(),
        vec![0, 1, 1, 0]
    );
    assert_eq!(
        load_targets(&dir.join("targets_i64_4.npy"), 4).unwrap(),
        vec![0, 1, 1, 0]
    );
}

/// The in-memory entry points give what the file ones give, for every checked-in fixture
/// (good and bad) and every prefix of one of each kind.
#[test]
fn bytes_load_like_files() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut sources: Vec<PathBuf> = ["npy", "bad"]
        .iter()
        .flat_map(|d| std::fs::read_dir(root.join(d)).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "npy" || e == "npz"))
        .collect();
    sources.sort();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut");
    let outcome = |r: Result<Inputs>| match r {
        Ok(i) => Ok((
            i.shape().to_vec(),
            (0..i.len())
                .map(|k| i.row(k).map_err(|e| e.to_string()))
                .collect::<Vec<_>>(),
        )),
        Err(e) => Err(e.to_string()),
    };
    let compare = |path: &Path, bytes: &[u8]| {
        for key in [None, Some("x"), Some("y")] {
            assert_eq!(
                outcome(load_inputs(path, key)),
                outcome(load_inputs_bytes(bytes, path, key)),
                "{} with key {key:?}",
                path.display()
            );
            assert_eq!(
                load_targets_keyed(path, key, 4).map_err(|e| e.to_string()),
                load_targets_bytes(bytes, path, key, 4).map_err(|e| e.to_string()),
                "{} with key {key:?}",
                path.display()
            );
        }
    };
    for source in &sources {
        let bytes = std::fs::read(source).unwrap();
        compare(source, &bytes);
    }
    for name in ["npy/inputs_f32_4x3.npy", "npy/dataset_x_y.npz"] {
        let bytes = std::fs::read(root.join(name)).unwrap();
        for end in 0..bytes.len() {
            std::fs::write(&cut, &bytes[..end]).unwrap();
            compare(&cut, &bytes[..end]);
        }
    }
    let bytes = std::fs::read(root.join("npy/inputs_f64_4x3.npy")).unwrap();
    assert!(!load_inputs_bytes(&bytes, Path::new("x.npy"), None)
        .unwrap()
        .is_mapped());
}

/// CRC-32 (IEEE), to keep a hand-edited zip member readable.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xedb8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// An `.npz` holding one stored member `x.npy` with a 1-element array written by `add`,
/// whose header is then edited to announce 2^40 elements, with the zip CRCs fixed up.
fn npz_announcing_2_pow_40(path: &Path, add: impl FnOnce(&mut NpzWriter<File>)) {
    let mut w = NpzWriter::new(File::create(path).unwrap());
    add(&mut w);
    w.finish().unwrap();
    let mut bytes = std::fs::read(path).unwrap();
    let (from, to): (&[u8], &[u8]) = (b"(1,)", b"(1099511627776,)");
    let at = bytes.windows(from.len()).position(|w| w == from).unwrap();
    // The header's space padding before its newline absorbs the longer shape.
    let end = at + bytes[at..].iter().position(|&c| c == b'\n').unwrap();
    let extra = to.len() - from.len();
    assert!(bytes[end - extra..end].iter().all(|&c| c == b' '));
    bytes.copy_within(at + from.len()..end - extra, at + to.len());
    bytes[at..at + to.len()].copy_from_slice(to);
    let start = 30 + usize::from(u16::from_le_bytes([bytes[26], bytes[27]]));
    let size = u32::from_le_bytes(bytes[22..26].try_into().unwrap()) as usize;
    let crc = crc32(&bytes[start..start + size]).to_le_bytes();
    bytes[14..18].copy_from_slice(&crc);
    let central = bytes.windows(4).position(|w| w == b"PK\x01\x02").unwrap();
    bytes[central + 16..central + 20].copy_from_slice(&crc);
    std::fs::write(path, bytes).unwrap();
}

/// Found while writing the `npy_load` fuzz target (and crashing it): a 200-byte `.npz` whose
/// member announces a huge shape made ndarray-npy allocate it (8 TiB here) before reading
/// anything, which aborts the process.
#[test]
fn npz_member_announcing_more_data_than_it_holds_is_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let f64s = dir.path().join("f64.npz");
    npz_announcing_2_pow_40(&f64s, |w| w.add_array("x", &arr1(&[1.0f64])).unwrap());
    let e = err(load_inputs(&f64s, None));
    assert!(e.contains("array \"x\": truncated"), "{e}");
    let e = err(load_targets(&f64s, 1 << 40));
    assert!(e.contains("truncated"), "{e}");

    let u8s = dir.path().join("u8.npz");
    npz_announcing_2_pow_40(&u8s, |w| w.add_array("x", &arr1(&[1u8])).unwrap());
    let e = err(load_inputs(&u8s, None));
    assert!(e.contains("dtype uint8"), "{e}");
    let e = err(load_targets(&u8s, 1 << 40));
    assert!(e.contains("truncated"), "{e}");

    let i64s = dir.path().join("i64.npz");
    npz_announcing_2_pow_40(&i64s, |w| w.add_array("x", &arr1(&[1i64])).unwrap());
    let e = err(load_targets(&i64s, 1 << 40));
    assert!(e.contains("truncated"), "{e}");
    let bytes = std::fs::read(&i64s).unwrap();
    let e = err(load_targets_bytes(&bytes, &i64s, None, 1 << 40));
    assert!(e.contains("truncated"), "{e}");

    // Intact members still load, and their damage is still told apart.
    let ok = dir.path().join("ok.npz");
    let mut w = NpzWriter::new(File::create(&ok).unwrap());
    w.add_array("x", &arr2(&[[1.0f32, 2.0], [3.0, 4.0]]))
        .unwrap();
    w.finish().unwrap();
    assert_eq!(
        load_inputs(&ok, None).unwrap().row(1).unwrap(),
        vec![3.0, 4.0]
    );
}

/// An `.npz` (in memory) holding one member `x.npy` with the bytes `member`.
fn npz_of(member: &[u8], compressed: bool) -> Vec<u8> {
    use zip::write::SimpleFileOptions;
    let method = if compressed {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    w.start_file(
        "x.npy",
        SimpleFileOptions::default().compression_method(method),
    )
    .unwrap();
    w.write_all(member).unwrap();
    w.finish().unwrap().into_inner()
}

/// A member's header length is a u32 in .npy versions 2 and 3: one announcing 4 GiB, over
/// a few bytes, is refused from its preamble, before its text is read (ndarray-npy used to
/// allocate it first). The bound is NumPy's own, and a header just within it still loads.
#[test]
fn npz_member_announcing_a_header_over_the_bound_is_refused_before_reading_it() {
    let name = Path::new("long_header.npz");
    let mut v3 = NPY_MAGIC.to_vec();
    v3.extend([3, 0]);
    v3.extend(0xFFFF_FFF0u32.to_le_bytes());
    v3.extend(b"{'descr': '<f8', ");
    for compressed in [false, true] {
        let npz = npz_of(&v3, compressed);
        let e = err(load_inputs_bytes(&npz, name, None));
        assert_eq!(
            e,
            "long_header.npz: array \"x\": the .npy header is too long: it announces \
             4294967280 bytes, more than the 10000 allowed"
        );
        let e = err(load_targets_bytes(&npz, name, Some("x"), 3));
        assert!(
            e.contains("array \"x\": the .npy header is too long"),
            "{e}"
        );
    }

    let dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2), }";
    let data: Vec<u8> = [1.5f64, -2.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let at_bound = raw_npy(dict, 10 + MAX_NPZ_HEADER, &data);
    let inputs = load_inputs_bytes(&npz_of(&at_bound, true), name, None).unwrap();
    assert_eq!(inputs.row(0).unwrap(), vec![1.5, -2.0]);
    let over = raw_npy(dict, 11 + MAX_NPZ_HEADER, &data);
    let e = err(load_inputs_bytes(&npz_of(&over, false), name, None));
    assert!(e.contains("it announces 10001 bytes"), "{e}");

    // The member's other damage is still told apart.
    let ok = raw_npy(dict, 128, &data);
    let cases: [(&[u8], &str); 5] = [
        (
            &ok[..ok.len() - 3],
            "truncated: the header describes float64",
        ),
        (
            &[ok.as_slice(), &[0; 8]].concat(),
            "8 bytes follow the 16 bytes",
        ),
        (
            &ok[..30],
            "truncated: the member ends inside its .npy header",
        ),
        (b"", "the member is empty"),
        (
            b"\x93NUMPY\x02\x00\x10",
            "truncated: the member ends inside",
        ),
    ];
    for (member, expected) in cases {
        for compressed in [false, true] {
            let e = err(load_inputs_bytes(&npz_of(member, compressed), name, None));
            assert!(e.contains(expected), "{expected}: {e}");
        }
    }
    let e = err(load_inputs_bytes(&npz_of(b"PK\x03\x04", false), name, None));
    assert!(e.contains("not a .npy file: wrong magic bytes"), "{e}");
}

#[test]
fn inputs_can_be_shared_across_threads() {
    fn check<T: Send + Sync>() {}
    check::<Inputs>();
}

#[test]
fn from_array_checks_rows() {
    let inputs = Inputs::from_array("generated", arr2(&[[1.0, 2.0]])).unwrap();
    assert_eq!(
        (inputs.len(), inputs.dim(), inputs.dtype_name()),
        (1, 2, "float64")
    );
    assert!(err(Inputs::from_array("generated", Array2::zeros((0, 2)))).contains("no inputs"));
}
