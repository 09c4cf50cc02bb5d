//! Input arrays, one row per input, loaded from NumPy files (opened and their headers read by
//! [`crate::io::npy`]):
//! - `.npy`: memory-mapped. A little-endian, C-order, aligned float32/float64 array is read in
//!   place (rows are decoded from the mapped bytes on demand, [`Inputs::view`] gives a zero-copy
//!   `ndarray` view through ndarray-npy's view API); any other layout (big-endian, Fortran order,
//!   data not aligned) is read once into memory in its own dtype. The whole file is never
//!   converted to f64: rows are widened one at a time.
//! - `.npz`: the one array of the archive, or the array named by a key. It is read into memory.
//!
//! Shapes: `[N, d]` gives N inputs of width d, `[d]` one input, `[N, ...]` N inputs each
//! flattened in C order. Dtypes: float32 or float64. Values must be finite; a NaN or infinity is
//! reported, with its row and column, when the row is read.
//!
//! Every problem with a file — missing, empty, truncated, not NumPy, wrong dtype or shape — is
//! one [`Error::File`] naming the file and the problem; no file content makes these loaders
//! panic.

use std::fmt;
use std::io::{Read, Seek};
use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayD, ArrayViewD, Axis, CowArray, Ix2, IxDyn, ShapeBuilder};
use ndarray_npy::ViewNpyExt;

use crate::error::{Error, Result};
use crate::io::npy::{
    byte_array, decode, npz_member, open, open_bytes, ByteOrder, Bytes, Container, Descr, NpyHeader,
};

/// The float type of stored inputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Float {
    F32,
    F64,
}

impl Float {
    fn size(self) -> usize {
        match self {
            Float::F32 => 4,
            Float::F64 => 8,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Float::F32 => "float32",
            Float::F64 => "float64",
        }
    }
}

enum Data {
    /// A little-endian, C-order float array inside the bytes of a `.npy` file (mapped, or in
    /// memory), from byte `offset`, aligned for its element type.
    Mapped {
        map: Bytes,
        offset: usize,
        float: Float,
    },
    /// Arrays read into memory; axis 0 indexes the rows, any memory order.
    F32(ArrayD<f32>),
    F64(ArrayD<f64>),
}

/// Inputs to explain, one per row, in the dtype of the file they came from.
pub struct Inputs {
    path: PathBuf,
    shape: Vec<usize>,
    rows: usize,
    width: usize,
    data: Data,
}

/// All inputs as one `[N, d]` array in their stored dtype: borrowed from the file or the
/// loaded array when its memory is in C order, copied otherwise.
#[derive(Debug)]
pub enum InputsView<'a> {
    /// The rows of an f32 file, not converted.
    F32(CowArray<'a, f32, Ix2>),
    /// The rows of an f64 file.
    F64(CowArray<'a, f64, Ix2>),
}

impl fmt::Debug for Inputs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inputs")
            .field("path", &self.path)
            .field("shape", &self.shape)
            .field("dtype", &self.dtype_name())
            .field("mapped", &self.is_mapped())
            .finish()
    }
}

/// Loads the inputs in `path` (`.npy`, or `.npz` with `key` choosing among several arrays).
pub fn load_inputs(path: &Path, key: Option<&str>) -> Result<Inputs> {
    inputs_from(open(path, key)?, path)
}

/// [`load_inputs`] for the bytes of a `.npy` or `.npz` file already in memory (they are
/// copied); `path_for_messages` names them in errors and in [`Inputs::path`].
pub fn load_inputs_bytes(
    bytes: &[u8],
    path_for_messages: &Path,
    key: Option<&str>,
) -> Result<Inputs> {
    inputs_from(
        open_bytes(bytes, path_for_messages, key)?,
        path_for_messages,
    )
}

fn inputs_from<R: Read + Seek>(container: Container<R>, path: &Path) -> Result<Inputs> {
    match container {
        Container::Npy(map) => inputs_from_npy(path, map).map_err(|p| Error::file(path, p)),
        Container::Npz {
            mut archive,
            index,
            member,
        } => npz_member(&mut archive, index, |h| Ok(input_layout(h)?.0.size()))
            .and_then(|bytes| inputs_from_npy(path, Bytes::Owned(bytes)))
            .map_err(|problem| Error::file(path, format!("array \"{member}\": {problem}"))),
    }
}

/// The float type, rows and width of inputs stored under `header`, or why they cannot be inputs.
fn input_layout(header: &NpyHeader) -> std::result::Result<(Float, usize, usize), String> {
    let float = match (header.descr.kind, header.descr.size) {
        (b'f', 4) => Float::F32,
        (b'f', 8) => Float::F64,
        _ => return Err(wrong_input_dtype(&header.descr)),
    };
    let (rows, width) = rows_and_width(&header.shape)?;
    Ok((float, rows, width))
}

/// Inputs from the bytes of an `.npy` file (mapped, or in memory).
fn inputs_from_npy(path: &Path, map: Bytes) -> std::result::Result<Inputs, String> {
    let header = NpyHeader::parse(&map)?;
    let (float, rows, width) = input_layout(&header)?;
    header.check_data_len(map.len(), float.size())?;
    let offset = header.data_offset;
    let in_place = header.descr.order == ByteOrder::Little
        && cfg!(target_endian = "little")
        && (!header.fortran || header.shape.len() <= 1)
        && (map.as_ptr() as usize + offset).is_multiple_of(float.size());
    let viewable = in_place
        && match float {
            Float::F32 => ArrayViewD::<f32>::view_npy(&map).is_ok(),
            Float::F64 => ArrayViewD::<f64>::view_npy(&map).is_ok(),
        };
    let data = if viewable {
        Data::Mapped { map, offset, float }
    } else {
        let bytes = &map[offset..];
        let big = header.descr.order == ByteOrder::Big;
        let dim = IxDyn(&header.shape).set_f(header.fortran);
        let bad = |e: ndarray::ShapeError| format!("shape does not match data: {e}");
        match float {
            Float::F32 => {
                let values = decode(
                    bytes,
                    if big {
                        f32::from_be_bytes
                    } else {
                        f32::from_le_bytes
                    },
                );
                Data::F32(as_rows(ArrayD::from_shape_vec(dim, values).map_err(bad)?))
            }
            Float::F64 => {
                let values = decode(
                    bytes,
                    if big {
                        f64::from_be_bytes
                    } else {
                        f64::from_le_bytes
                    },
                );
                Data::F64(as_rows(ArrayD::from_shape_vec(dim, values).map_err(bad)?))
            }
        }
    };
    Ok(Inputs {
        path: path.to_path_buf(),
        shape: header.shape,
        rows,
        width,
        data,
    })
}

/// A 1-D array is one input: give it a row axis.
fn as_rows<T>(a: ArrayD<T>) -> ArrayD<T> {
    if a.ndim() == 1 {
        a.insert_axis(Axis(0))
    } else {
        a
    }
}

fn rows_and_width(shape: &[usize]) -> std::result::Result<(usize, usize), String> {
    let (rows, rest) = match shape {
        [] => {
            return Err(
                "the array is a scalar; inputs must be an array [N, d] (or [d] for one input)"
                    .into(),
            )
        }
        [d] => (1, std::slice::from_ref(d)),
        [n, rest @ ..] => (*n, rest),
    };
    let width = rest
        .iter()
        .try_fold(1usize, |acc, &s| acc.checked_mul(s))
        .ok_or_else(|| format!("shape {shape:?} is too large"))?;
    if rows == 0 {
        return Err(format!(
            "no inputs: the array has shape {shape:?}, with 0 rows"
        ));
    }
    if width == 0 {
        return Err(format!("the inputs have width 0 (shape {shape:?})"));
    }
    Ok((rows, width))
}

fn wrong_input_dtype(descr: &Descr) -> String {
    format!(
        "inputs must be float32 or float64, but the array has dtype {}",
        descr.name()
    )
}

impl Inputs {
    /// In-memory inputs (generated data, tests); `name` stands for a file in messages.
    pub fn from_array(name: impl Into<PathBuf>, array: Array2<f64>) -> Result<Self> {
        let path = name.into();
        let shape = array.shape().to_vec();
        let (rows, width) = rows_and_width(&shape).map_err(|p| Error::file(&path, p))?;
        Ok(Self {
            path,
            shape,
            rows,
            width,
            data: Data::F64(array.into_dyn()),
        })
    }

    /// The number of inputs (rows); never 0.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Always false: loading refuses files without rows.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The width of one input (the product of every axis but the first).
    pub fn dim(&self) -> usize {
        self.width
    }

    /// The array's shape as stored in the file.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// `"float32"` or `"float64"`.
    pub fn dtype_name(&self) -> &'static str {
        match &self.data {
            Data::Mapped { float, .. } => float.name(),
            Data::F32(_) => Float::F32.name(),
            Data::F64(_) => Float::F64.name(),
        }
    }

    /// The file the inputs came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the rows are read in place from a memory-mapped file.
    pub fn is_mapped(&self) -> bool {
        matches!(
            self.data,
            Data::Mapped {
                map: Bytes::Mapped(_),
                ..
            }
        )
    }

    /// Row `i` (from 0) widened to f64 (exact for f32) into `out`, replacing its contents.
    /// Fails, naming the file, row and column, when a value is NaN or infinite.
    pub fn row_into(&self, i: usize, out: &mut Vec<f64>) -> Result<()> {
        out.clear();
        if i >= self.rows {
            return Err(Error::Usage(format!(
                "{}: there is no row {i}; the file has {} rows",
                self.path.display(),
                self.rows
            )));
        }
        out.reserve(self.width);
        match &self.data {
            Data::Mapped { map, offset, float } => {
                let len = self.width * float.size();
                let start = offset + i * len;
                let bytes = map.get(start..start + len).ok_or_else(|| {
                    Error::file(
                        &self.path,
                        "the mapped file is shorter than its header says",
                    )
                })?;
                match float {
                    Float::F32 => out.extend(
                        bytes
                            .chunks_exact(4)
                            .map(|c| f64::from(f32::from_le_bytes(byte_array(c)))),
                    ),
                    Float::F64 => out.extend(
                        bytes
                            .chunks_exact(8)
                            .map(|c| f64::from_le_bytes(byte_array(c))),
                    ),
                }
            }
            Data::F32(a) => extend_row(a, i, out),
            Data::F64(a) => extend_row(a, i, out),
        }
        if let Some(j) = out.iter().position(|v| !v.is_finite()) {
            return Err(Error::file(
                &self.path,
                format!(
                    "row {i}, column {j} is {}; inputs must be finite (rows and columns count from 0)",
                    out[j]
                ),
            ));
        }
        Ok(())
    }

    /// Row `i` as a new vector; see [`Inputs::row_into`].
    pub fn row(&self, i: usize) -> Result<Vec<f64>> {
        let mut out = Vec::with_capacity(self.width);
        self.row_into(i, &mut out)?;
        Ok(out)
    }

    /// Rows `rows` one after another (row-major), as one batch; see [`Inputs::row_into`].
    pub fn batch(&self, rows: std::ops::Range<usize>) -> Result<Vec<f64>> {
        let mut out = Vec::with_capacity(rows.len() * self.width);
        let mut row = Vec::with_capacity(self.width);
        for i in rows {
            self.row_into(i, &mut row)?;
            out.extend_from_slice(&row);
        }
        Ok(out)
    }

    /// Checks that each input has the width the model expects; `path` names the inputs in the
    /// message.
    pub fn check_width(&self, path: &Path, expected: usize) -> Result<()> {
        if self.width == expected {
            return Ok(());
        }
        let flattened = if self.shape.len() > 2 {
            format!(" (rows of shape {:?} flattened)", &self.shape[1..])
        } else {
            String::new()
        };
        Err(Error::file(
            path,
            format!(
                "inputs have width {}{flattened} but the model expects {expected}",
                self.width
            ),
        ))
    }

    /// All inputs as an `[N, d]` array in their stored dtype, zero-copy when the memory is in C
    /// order (a mapped file is viewed through ndarray-npy's `view_npy`). Values are not checked
    /// for finiteness.
    pub fn view(&self) -> Result<InputsView<'_>> {
        let shape = (self.rows, self.width);
        let bad =
            |e: &dyn fmt::Display| Error::file(&self.path, format!("cannot view the inputs: {e}"));
        Ok(match &self.data {
            Data::Mapped { map, float, .. } => match float {
                Float::F32 => InputsView::F32(CowArray::from(
                    ArrayViewD::<f32>::view_npy(map)
                        .map_err(|e| bad(&e))?
                        .into_shape_with_order(shape)
                        .map_err(|e| bad(&e))?,
                )),
                Float::F64 => InputsView::F64(CowArray::from(
                    ArrayViewD::<f64>::view_npy(map)
                        .map_err(|e| bad(&e))?
                        .into_shape_with_order(shape)
                        .map_err(|e| bad(&e))?,
                )),
            },
            Data::F32(a) => InputsView::F32(cow_rows(a, shape).map_err(|e| bad(&e))?),
            Data::F64(a) => InputsView::F64(cow_rows(a, shape).map_err(|e| bad(&e))?),
        })
    }
}

fn cow_rows<T: Copy>(
    a: &ArrayD<T>,
    shape: (usize, usize),
) -> std::result::Result<CowArray<'_, T, Ix2>, ndarray::ShapeError> {
    match a.view().into_shape_with_order(shape) {
        Ok(view) => Ok(CowArray::from(view)),
        Err(_) => Ok(CowArray::from(Array2::from_shape_vec(
            shape,
            a.iter().copied().collect(),
        )?)),
    }
}

fn extend_row<T: Copy + Into<f64>>(a: &ArrayD<T>, i: usize, out: &mut Vec<f64>) {
    let row = a.index_axis(Axis(0), i);
    match row.as_slice() {
        Some(values) => out.extend(values.iter().map(|&v| v.into())),
        None => out.extend(row.iter().map(|&v| v.into())),
    }
}

#[cfg(test)]
mod tests;
