//! Class targets, one per input: a 1-D array of integer class indices (or floats holding whole
//! numbers), from an `.npy` file or an `.npz` archive (opened and their headers read by
//! [`crate::io::npy`]). Every problem with a file — missing, not NumPy, wrong dtype or length, a
//! negative or fractional index — is one [`Error::File`] naming the file and the problem; no file
//! content makes these loaders panic.

use std::io::{Read, Seek};
use std::path::Path;

use crate::error::{Error, Result};
use crate::io::npy::{
    decode, npz_member, open, open_bytes, ByteOrder, Container, Descr, NpyHeader,
};

/// Loads class indices for `n` inputs: a 1-D integer array (or floats holding whole numbers)
/// of length `n`, from an `.npy` file or an `.npz` archive holding one array.
pub fn load_targets(path: &Path, n: usize) -> Result<Vec<usize>> {
    load_targets_keyed(path, None, n)
}

/// [`load_targets`] with a key choosing the array of an `.npz` archive that holds several.
pub fn load_targets_keyed(path: &Path, key: Option<&str>, n: usize) -> Result<Vec<usize>> {
    targets_from(open(path, key)?, path, n)
}

/// [`load_targets_keyed`] for the bytes of a `.npy` or `.npz` file already in memory;
/// `path_for_messages` names them in errors.
pub fn load_targets_bytes(
    bytes: &[u8],
    path_for_messages: &Path,
    key: Option<&str>,
    n: usize,
) -> Result<Vec<usize>> {
    targets_from(
        open_bytes(bytes, path_for_messages, key)?,
        path_for_messages,
        n,
    )
}

fn targets_from<R: Read + Seek>(
    container: Container<R>,
    path: &Path,
    n: usize,
) -> Result<Vec<usize>> {
    let (targets, member) = match container {
        Container::Npy(map) => (targets_from_npy(&map, n), None),
        Container::Npz {
            mut archive,
            index,
            member,
        } => (
            npz_member(&mut archive, index, |h| target_layout(h, n))
                .and_then(|bytes| targets_from_npy(&bytes, n)),
            Some(member),
        ),
    };
    targets.map_err(|problem| match member {
        Some(m) => Error::file(path, format!("array \"{m}\": {problem}")),
        None => Error::file(path, problem),
    })
}

/// The element size of `n` targets stored under `header`, or why they cannot be targets.
fn target_layout(header: &NpyHeader, n: usize) -> std::result::Result<usize, String> {
    let d = &header.descr;
    if !matches!(
        (d.kind, d.size),
        (b'i' | b'u', 1 | 2 | 4 | 8) | (b'f', 4 | 8)
    ) {
        return Err(wrong_target_dtype(d));
    }
    check_target_shape(&header.shape, n)?;
    Ok(d.size)
}

fn targets_from_npy(bytes: &[u8], n: usize) -> std::result::Result<Vec<usize>, String> {
    let header = NpyHeader::parse(bytes)?;
    let size = target_layout(&header, n)?;
    header.check_data_len(bytes.len(), size)?;
    let d = &header.descr;
    let data = &bytes[header.data_offset..];
    let big = d.order == ByteOrder::Big;
    macro_rules! ints {
        ($t:ty) => {
            decode(
                data,
                if big {
                    <$t>::from_be_bytes
                } else {
                    <$t>::from_le_bytes
                },
            )
            .into_iter()
            .enumerate()
            .map(|(k, v)| int_target(k, i128::from(v)))
            .collect()
        };
    }
    match (d.kind, d.size) {
        (b'i', 1) => ints!(i8),
        (b'i', 2) => ints!(i16),
        (b'i', 4) => ints!(i32),
        (b'i', 8) => ints!(i64),
        (b'u', 1) => ints!(u8),
        (b'u', 2) => ints!(u16),
        (b'u', 4) => ints!(u32),
        (b'u', 8) => ints!(u64),
        (b'f', 4) => decode(
            data,
            if big {
                f32::from_be_bytes
            } else {
                f32::from_le_bytes
            },
        )
        .into_iter()
        .enumerate()
        .map(|(k, v)| float_target(k, f64::from(v)))
        .collect(),
        _ => decode(
            data,
            if big {
                f64::from_be_bytes
            } else {
                f64::from_le_bytes
            },
        )
        .into_iter()
        .enumerate()
        .map(|(k, v)| float_target(k, v))
        .collect(),
    }
}

fn wrong_target_dtype(descr: &Descr) -> String {
    format!(
        "targets must be integer class indices (or floats holding whole numbers), but the array has dtype {}",
        descr.name()
    )
}

fn check_target_shape(shape: &[usize], n: usize) -> std::result::Result<(), String> {
    match shape {
        [len] if *len == n => Ok(()),
        [len] => Err(format!(
            "expected {n} targets (one per input) but found {len}"
        )),
        _ => Err(format!(
            "targets must be a 1-D array of {n} class indices, but the array has shape {shape:?}"
        )),
    }
}

fn int_target(position: usize, v: i128) -> std::result::Result<usize, String> {
    usize::try_from(v).map_err(|_| {
        format!("target at position {position} is {v}; class indices must be non-negative")
    })
}

fn float_target(position: usize, v: f64) -> std::result::Result<usize, String> {
    // 2^53: beyond it not every whole number is representable, and no model has that many classes.
    if v.is_finite() && v.fract() == 0.0 && (0.0..=9_007_199_254_740_992.0).contains(&v) {
        Ok(v as usize)
    } else {
        Err(format!(
            "target at position {position} is {v}; class indices must be non-negative whole numbers"
        ))
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use ndarray::{arr1, arr2, Array1};
    use ndarray_npy::NpzWriter;

    use super::*;
    use crate::io::npy::test_support::{err, raw_npy, write};

    #[test]
    fn targets_in_int64_and_float() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "t.npy", &arr1(&[0i64, 3, 1]));
        assert_eq!(load_targets(&path, 3).unwrap(), vec![0, 3, 1]);
        let e = err(load_targets(&path, 4));
        assert!(
            e.contains("expected 4 targets (one per input) but found 3"),
            "{e}"
        );

        let path = write(dir.path(), "f.npy", &arr1(&[2.0f32, 0.0]));
        assert_eq!(load_targets(&path, 2).unwrap(), vec![2, 0]);
        let path = write(dir.path(), "g.npy", &arr1(&[2.0f64, 1.5]));
        assert!(err(load_targets(&path, 2)).contains("position 1 is 1.5"));
        let path = write(dir.path(), "h.npy", &arr1(&[f64::NAN]));
        assert!(err(load_targets(&path, 1)).contains("position 0 is NaN"));

        let path = write(dir.path(), "neg.npy", &arr1(&[1i32, 0, -2]));
        let e = err(load_targets(&path, 3));
        assert!(
            e.contains("position 2 is -2") && e.contains("non-negative"),
            "{e}"
        );

        for (name, result) in [
            (
                "u8",
                load_targets(&write(dir.path(), "u8.npy", &arr1(&[255u8, 0])), 2),
            ),
            (
                "u64",
                load_targets(&write(dir.path(), "u64.npy", &arr1(&[7u64, 1])), 2),
            ),
            (
                "i16",
                load_targets(&write(dir.path(), "i16.npy", &arr1(&[7i16, 1])), 2),
            ),
        ] {
            assert!(result.is_ok(), "{name}: {result:?}");
        }

        let path = write(dir.path(), "two_d.npy", &arr2(&[[1i64], [2]]));
        assert!(err(load_targets(&path, 2)).contains("1-D array of 2 class indices"));
        let path = write(dir.path(), "b.npy", &Array1::from(vec![true, false]));
        assert!(err(load_targets(&path, 2)).contains("dtype bool"));

        let be = dir.path().join("be.npy");
        let dict = "{'descr': '>i4', 'fortran_order': False, 'shape': (2,), }";
        let data: Vec<u8> = [5i32, 6].iter().flat_map(|v| v.to_be_bytes()).collect();
        std::fs::write(&be, raw_npy(dict, 128, &data)).unwrap();
        assert_eq!(load_targets(&be, 2).unwrap(), vec![5, 6]);

        let npz = dir.path().join("t.npz");
        let mut w = NpzWriter::new_compressed(File::create(&npz).unwrap());
        w.add_array("labels", &arr1(&[4i32, 0, 9])).unwrap();
        w.finish().unwrap();
        assert_eq!(load_targets(&npz, 3).unwrap(), vec![4, 0, 9]);
        assert!(err(load_targets(&npz, 2)).contains("array \"labels\": expected 2 targets"));
    }
}
