//! Input arrays (one row per input), class targets, and atomic writes of result arrays.
//!
//! Inputs come from NumPy files:
//! - `.npy`: memory-mapped. A little-endian, C-order, aligned float32/float64 array is read in
//!   place (rows are decoded from the mapped bytes on demand, [`Inputs::view`] gives a zero-copy
//!   `ndarray` view through ndarray-npy's view API); any other layout (big-endian, Fortran order,
//!   data not aligned) is read once into memory in its own dtype. The whole file is never
//!   converted to f64: rows are widened one at a time.
//! - `.npz`: the one array of the archive, or the array named by a key. It is read into memory.
//!
//! The format is recognised by the file's leading bytes (`\x93NUMPY` or a zip signature), not by
//! its extension. Shapes: `[N, d]` gives N inputs of width d, `[d]` one input, `[N, ...]` N inputs
//! each flattened in C order. Dtypes: float32 or float64. Values must be finite; a NaN or
//! infinity is reported, with its row and column, when the row is read.
//!
//! Every problem with a file — missing, empty, truncated, not NumPy, wrong dtype or shape — is
//! one [`Error::File`] naming the file and the problem; no file content makes these loaders
//! panic.
//!
//! Nothing is allocated at a size a file only announces. `.npy` files are checked against their
//! size before anything is read. An `.npz` member is read with the `zip` crate: first the fixed
//! start of its `.npy` header (magic bytes, version, header length), and a header announcing
//! more than 10 000 bytes (NumPy's own limit) is refused before its text is read; then, once the
//! header's dtype and shape are accepted, the data it describes, into a buffer that grows only
//! as the data arrive, so a member holding less than its header announces costs no more than it
//! holds. Bytes beyond the data are counted without being kept.

use std::fmt;
use std::fs::File;
use std::io::{self, Cursor, Read, Seek};
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use ndarray::{Array2, ArrayD, ArrayViewD, Axis, CowArray, Ix2, IxDyn, ShapeBuilder};
use ndarray_npy::npy::header::{Header, ReadHeaderError};
use ndarray_npy::ViewNpyExt;
#[cfg(test)]
use ndarray_npy::WriteNpyExt;
use zip::ZipArchive;

use crate::error::{Error, Result};

const NPY_MAGIC: &[u8; 6] = b"\x93NUMPY";
/// The longest header text accepted in an `.npy` file. Header dictionaries are a few dozen bytes;
/// this one is read in place from the mapped file, after checking that the file holds it.
const MAX_NPY_HEADER: usize = 1 << 20;
/// The longest header text accepted in an `.npz` member, checked before the text is read into
/// memory (its length field is a u32 in format versions 2 and 3, so it may announce 4 GiB).
/// NumPy's own limit: `numpy.load` refuses longer headers by default (`max_header_size`).
const MAX_NPZ_HEADER: usize = 10_000;
/// The fixed start of an `.npy` file at its longest: magic bytes, version, a 4-byte length.
const NPY_PREAMBLE_MAX: usize = 12;
/// Deeper bracket nesting than any real header has; refused before parsing, so that a crafted
/// header cannot exhaust the stack of the recursive literal parser.
const MAX_NPY_HEADER_NESTING: usize = 32;

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

/// The bytes of a `.npy` file: mapped from disk, or handed over in memory.
enum Bytes {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Mapped(map) => map,
            Bytes::Owned(bytes) => bytes,
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
    F32(CowArray<'a, f32, Ix2>),
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

fn byte_array<const N: usize>(chunk: &[u8]) -> [u8; N] {
    let mut a = [0; N];
    a.copy_from_slice(chunk);
    a
}

/// Decodes packed elements of `N` bytes.
fn decode<const N: usize, T>(bytes: &[u8], from: fn([u8; N]) -> T) -> Vec<T> {
    bytes.chunks_exact(N).map(|c| from(byte_array(c))).collect()
}

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

/// An opened NumPy file, recognised by its leading bytes.
enum Container<R: Read + Seek> {
    Npy(Bytes),
    Npz {
        archive: ZipArchive<R>,
        /// The member's index in the archive.
        index: usize,
        /// Its name as listed to the user (without `.npy`).
        member: String,
    },
}

/// What a NumPy file's leading bytes say it is.
enum Kind {
    Npy,
    Npz,
}

fn open(path: &Path, key: Option<&str>) -> Result<Container<File>> {
    let cannot = |e: io::Error| {
        let problem = match e.kind() {
            io::ErrorKind::NotFound => "no such file".to_string(),
            _ => format!("cannot read: {e}"),
        };
        Error::file(path, problem)
    };
    let mut file = File::open(path).map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    if meta.is_dir() {
        return Err(Error::file(path, "is a folder, not a .npy or .npz file"));
    }
    let mut lead = Vec::with_capacity(NPY_MAGIC.len());
    (&mut file)
        .take(NPY_MAGIC.len() as u64)
        .read_to_end(&mut lead)
        .map_err(cannot)?;
    match sniff(&lead, path, key)? {
        Kind::Npy => {
            // SAFETY: the map is read-only and private to this process; like every loader that
            // maps its input, we rely on the file not being truncated while the inputs are in use.
            let map = unsafe { Mmap::map(&file) }.map_err(cannot)?;
            Ok(Container::Npy(Bytes::Mapped(map)))
        }
        Kind::Npz => npz_container(file, path, key),
    }
}

/// [`open`] for a file's bytes already in memory.
fn open_bytes<'a>(
    bytes: &'a [u8],
    path: &Path,
    key: Option<&str>,
) -> Result<Container<Cursor<&'a [u8]>>> {
    let lead = &bytes[..bytes.len().min(NPY_MAGIC.len())];
    match sniff(lead, path, key)? {
        Kind::Npy => Ok(Container::Npy(Bytes::Owned(bytes.to_vec()))),
        Kind::Npz => npz_container(Cursor::new(bytes), path, key),
    }
}

/// Tells `.npy` from `.npz` by the first bytes of the file (up to the length of the magic).
fn sniff(lead: &[u8], path: &Path, key: Option<&str>) -> Result<Kind> {
    if lead.is_empty() {
        return Err(Error::file(path, "the file is empty"));
    }
    if NPY_MAGIC.starts_with(lead) {
        if let Some(key) = key {
            return Err(Error::file(
                path,
                format!("is a single .npy array; the key \"{key}\" can only choose an array in an .npz archive"),
            ));
        }
        return Ok(Kind::Npy);
    }
    if !lead.starts_with(b"PK") {
        return Err(Error::file(
            path,
            "not a NumPy file: it starts with neither the .npy magic bytes (\\x93NUMPY) nor an .npz (zip) signature",
        ));
    }
    Ok(Kind::Npz)
}

/// Opens the zip archive and picks the member: the one named by `key`, or the only one.
/// Members are named as NumPy names them, without their `.npy` suffix.
fn npz_container<R: Read + Seek>(
    reader: R,
    path: &Path,
    key: Option<&str>,
) -> Result<Container<R>> {
    let zip_err = |e: zip::result::ZipError| {
        Error::file(path, format!("not a readable .npz archive: zip error: {e}"))
    };
    let mut archive = ZipArchive::new(reader).map_err(zip_err)?;
    // Opening each member (not only listing the names) refuses, here, the members that could
    // not be read: encrypted ones, or unsupported compression methods.
    let names = (0..archive.len())
        .map(|i| {
            let file = archive.by_index(i)?;
            let name = file.name();
            Ok(name.strip_suffix(".npy").unwrap_or(name).to_owned())
        })
        .collect::<zip::result::ZipResult<Vec<String>>>()
        .map_err(zip_err)?;
    if names.is_empty() {
        return Err(Error::file(path, "the .npz archive holds no arrays"));
    }
    let listed = || {
        names
            .iter()
            .map(|n| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let member = match key {
        Some(k) if names.iter().any(|n| n == k) => k.to_string(),
        Some(k) => {
            return Err(Error::file(
                path,
                format!("no array named \"{k}\"; the archive holds {}", listed()),
            ))
        }
        None if names.len() == 1 => names[0].clone(),
        None => {
            return Err(Error::file(
                path,
                format!(
                    "the archive holds several arrays ({}); pass a key to choose one (for --inputs: --inputs-key NAME)",
                    listed()
                ),
            ))
        }
    };
    // A member stored under the key itself comes first, as in ndarray-npy's lookup.
    let index = archive
        .index_for_name(&member)
        .or_else(|| archive.index_for_name(&format!("{member}.npy")))
        .ok_or_else(|| Error::file(path, format!("no array named \"{member}\"")))?;
    Ok(Container::Npz {
        archive,
        index,
        member,
    })
}

/// Reads member `index` of an `.npz` archive as the bytes of an `.npy` file, allocating nothing
/// at a size the member only announces. The fixed start of its header comes first, and a
/// header longer than [`MAX_NPZ_HEADER`] is refused before its text is read. Then `accept`
/// judges the parsed header (dtype, shape) and answers the size of an element; only then are the
/// data read, no further than the header describes and into a buffer that grows as they arrive.
/// A member holding less or more than that is refused; bytes beyond are counted, not kept.
fn npz_member<R: Read + Seek>(
    archive: &mut ZipArchive<R>,
    index: usize,
    accept: impl FnOnce(&NpyHeader) -> std::result::Result<usize, String>,
) -> std::result::Result<Vec<u8>, String> {
    let mut member = archive
        .by_index(index)
        .map_err(|e| format!("zip error: {e}"))?;
    let mut bytes = Vec::new();
    // Reads on until `bytes` holds `len` bytes or the member ends.
    let mut fill_to = |bytes: &mut Vec<u8>, len: usize| {
        let more = len.saturating_sub(bytes.len()) as u64;
        (&mut member)
            .take(more)
            .read_to_end(bytes)
            .map_err(member_problem)
    };
    fill_to(&mut bytes, NPY_PREAMBLE_MAX)?;
    let (preamble, header_len) = match npy_preamble(&bytes)? {
        Some(found) => found,
        None if bytes.is_empty() => return Err("the member is empty".into()),
        None => return Err(member_header_truncated()),
    };
    if header_len > MAX_NPZ_HEADER {
        return Err(format!(
            "the .npy header is too long: it announces {header_len} bytes, more than the {MAX_NPZ_HEADER} allowed"
        ));
    }
    let data_offset = preamble + header_len;
    fill_to(&mut bytes, data_offset)?;
    if bytes.len() < data_offset {
        return Err(member_header_truncated());
    }
    let header = NpyHeader::parse(&bytes)?;
    let elem_size = accept(&header)?;
    let expected = header.data_len(elem_size)?;
    fill_to(&mut bytes, data_offset.saturating_add(expected))?;
    let beyond = io::copy(&mut member, &mut io::sink()).map_err(member_problem)?;
    let member_len = bytes
        .len()
        .saturating_add(usize::try_from(beyond).unwrap_or(usize::MAX));
    header.check_data_len(member_len, elem_size)?;
    Ok(bytes)
}

fn member_header_truncated() -> String {
    "truncated: the member ends inside its .npy header".into()
}

/// A failed read of an `.npz` member: damaged compressed data, a checksum that does not match.
fn member_problem(e: io::Error) -> String {
    format!("cannot read the member: {e}")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ByteOrder {
    Little,
    Big,
    /// One-byte types.
    NotApplicable,
}

/// An element type as written in an `.npy` header, such as `<f4`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Descr {
    text: String,
    order: ByteOrder,
    /// NumPy's kind character (`f`, `i`, `u`, `b`, …); 0 for structured dtypes.
    kind: u8,
    size: usize,
}

impl Descr {
    fn parse(text: &str) -> Self {
        let bytes = text.as_bytes();
        let native = if cfg!(target_endian = "little") {
            ByteOrder::Little
        } else {
            ByteOrder::Big
        };
        let (order, rest) = match bytes.first() {
            Some(b'<') => (ByteOrder::Little, &bytes[1..]),
            Some(b'>') => (ByteOrder::Big, &bytes[1..]),
            Some(b'|') => (ByteOrder::NotApplicable, &bytes[1..]),
            Some(b'=') => (native, &bytes[1..]),
            _ => (native, bytes),
        };
        let kind = rest
            .first()
            .copied()
            .filter(u8::is_ascii_alphabetic)
            .unwrap_or(0);
        let digits: String = rest
            .iter()
            .skip(1)
            .take_while(|c| c.is_ascii_digit())
            .map(|&c| char::from(c))
            .collect();
        let size = digits.parse().unwrap_or(0);
        let order = if size == 1 {
            ByteOrder::NotApplicable
        } else {
            order
        };
        Self {
            text: text.to_string(),
            order,
            kind,
            size,
        }
    }

    fn structured(text: &str) -> Self {
        Self {
            text: text.to_string(),
            order: ByteOrder::NotApplicable,
            kind: 0,
            size: 0,
        }
    }

    /// NumPy's name for the type, such as `int64`.
    fn name(&self) -> String {
        let bits = self.size * 8;
        match (self.kind, self.size) {
            (0, _) => format!("structured {}", self.text),
            (b'f', 2 | 4 | 8) => format!("float{bits}"),
            (b'f', _) => format!("longdouble ('{}')", self.text),
            (b'i', 1 | 2 | 4 | 8) => format!("int{bits}"),
            (b'u', 1 | 2 | 4 | 8) => format!("uint{bits}"),
            (b'c', 8 | 16) => format!("complex{bits}"),
            (b'b', 1) => "bool".into(),
            (b'U', _) => format!("str ('{}')", self.text),
            (b'S', _) => format!("bytes ('{}')", self.text),
            (b'O', _) => "object".into(),
            (b'M', _) => format!("datetime64 ('{}')", self.text),
            (b'm', _) => format!("timedelta64 ('{}')", self.text),
            _ => format!("'{}'", self.text),
        }
    }
}

/// Reads the fixed start of an `.npy` file from `lead`: magic bytes, format version, and the
/// length of the header text that follows. Answers the length of this preamble and that of the
/// header text, or `None` when `lead` ends first.
fn npy_preamble(lead: &[u8]) -> std::result::Result<Option<(usize, usize)>, String> {
    if !NPY_MAGIC.starts_with(&lead[..lead.len().min(NPY_MAGIC.len())]) {
        return Err("not a .npy file: wrong magic bytes".into());
    }
    let Some(&[major, minor]) = lead.get(6..8) else {
        return Ok(None);
    };
    let len_bytes = match (major, minor) {
        (1, 0) => 2,
        (2 | 3, 0) => 4,
        _ => return Err(format!("unsupported .npy format version {major}.{minor}")),
    };
    let preamble = 8 + len_bytes;
    let header_len = match lead.get(8..preamble) {
        Some(&[a, b]) => usize::from(u16::from_le_bytes([a, b])),
        Some(&[a, b, c, d]) => {
            usize::try_from(u32::from_le_bytes([a, b, c, d])).unwrap_or(usize::MAX)
        }
        _ => return Ok(None),
    };
    Ok(Some((preamble, header_len)))
}

/// The header of an `.npy` file, checked against the file's bytes.
struct NpyHeader {
    descr: Descr,
    fortran: bool,
    shape: Vec<usize>,
    data_offset: usize,
}

impl NpyHeader {
    fn parse(bytes: &[u8]) -> std::result::Result<Self, String> {
        let truncated = || "truncated: the file ends inside the .npy header".to_string();
        if bytes.is_empty() {
            return Err("the file is empty".into());
        }
        let (prefix, header_len) = npy_preamble(bytes)?.ok_or_else(truncated)?;
        if header_len > MAX_NPY_HEADER {
            return Err(format!(
                "malformed .npy header: it claims {header_len} bytes, more than the {MAX_NPY_HEADER} allowed"
            ));
        }
        let end = prefix + header_len;
        let dict = bytes.get(prefix..end).ok_or_else(truncated)?;
        let mut depth = 0usize;
        for &c in dict {
            match c {
                b'(' | b'[' | b'{' => {
                    depth += 1;
                    if depth > MAX_NPY_HEADER_NESTING {
                        return Err("malformed .npy header: brackets nested too deeply".into());
                    }
                }
                b')' | b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        let header = Header::from_reader(&mut &bytes[..end]).map_err(|e| match e {
            ReadHeaderError::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => truncated(),
            ReadHeaderError::Io(e) => format!("cannot read the .npy header: {e}"),
            ReadHeaderError::Parse(e) => format!("malformed .npy header: {e}"),
        })?;
        let descr = match header.type_descriptor.as_string() {
            Some(text) => Descr::parse(text),
            None => Descr::structured(&header.type_descriptor.to_string()),
        };
        Ok(Self {
            descr,
            fortran: header.layout.is_fortran(),
            shape: header.shape,
            data_offset: end,
        })
    }

    /// The length in bytes of the data the header describes, with elements of `elem_size` bytes.
    fn data_len(&self, elem_size: usize) -> std::result::Result<usize, String> {
        self.shape
            .iter()
            .try_fold(elem_size, |acc, &s| acc.checked_mul(s))
            .filter(|&n| n <= isize::MAX as usize)
            .ok_or_else(|| format!("shape {:?} is too large", self.shape))
    }

    /// Checks that exactly the data the header describes follow it.
    fn check_data_len(&self, file_len: usize, elem_size: usize) -> std::result::Result<(), String> {
        let expected = self.data_len(elem_size)?;
        let found = file_len - self.data_offset;
        if found < expected {
            Err(format!(
                "truncated: the header describes {} data of shape {:?} ({expected} bytes) but only {found} bytes follow it",
                self.descr.name(),
                self.shape
            ))
        } else if found > expected {
            Err(format!(
                "{} bytes follow the {expected} bytes of data that the header describes (shape {:?}, {})",
                found - expected,
                self.shape,
                self.descr.name()
            ))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{write_npy_f64_atomic, AtomicFile};
    use ndarray::{arr1, arr2, Array1, Array3};
    use ndarray_npy::NpzWriter;
    use std::io::Write;

    fn write<T: WriteNpyExt>(dir: &Path, name: &str, array: &T) -> PathBuf {
        let path = dir.join(name);
        array.write_npy(File::create(&path).unwrap()).unwrap();
        path
    }

    /// An `.npy` file with a hand-written header dictionary, padded so that the data start at
    /// `data_offset`.
    fn raw_npy(dict: &str, data_offset: usize, data: &[u8]) -> Vec<u8> {
        let header_len = data_offset - 10;
        let mut out = NPY_MAGIC.to_vec();
        out.extend([1, 0]);
        out.extend(u16::try_from(header_len).unwrap().to_le_bytes());
        let mut text = dict.to_string();
        while text.len() < header_len - 1 {
            text.push(' ');
        }
        text.push('\n');
        assert_eq!(text.len(), header_len);
        out.extend(text.as_bytes());
        out.extend(data);
        out
    }

    fn err(result: Result<impl fmt::Debug>) -> String {
        result.unwrap_err().to_string()
    }

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
        assert!(err(load_inputs(&path, None))
            .contains("truncated: the file ends inside the .npy header"));
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
}
