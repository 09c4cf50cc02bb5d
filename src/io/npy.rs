//! NumPy files as the loaders above read them (inputs, class targets): the file opened as a
//! `.npy` array or as a member of an `.npz` archive, and the `.npy` header parsed and checked
//! against the data that follow it.
//!
//! The format is recognised by the file's leading bytes (`\x93NUMPY` or a zip signature), not by
//! its extension. A `.npy` file is memory-mapped, or its bytes, already in memory, are kept; an
//! `.npz` archive gives the one array it holds, or the array named by a key, read into memory.
//! Element types are parsed, not judged: each loader decides which dtypes and shapes it takes.
//!
//! A file that cannot be opened as NumPy — missing, empty, not NumPy, no such array — is an
//! [`Error::File`] naming the file; a problem in the header or the data is a message the loader
//! reports against its file. No file content makes this code panic.
//!
//! Nothing is allocated at a size a file only announces. `.npy` files are checked against their
//! size before anything is read. An `.npz` member is read with the `zip` crate: first the fixed
//! start of its `.npy` header (magic bytes, version, header length), and a header announcing
//! more than 10 000 bytes (NumPy's own limit) is refused before its text is read; then, once the
//! header's dtype and shape are accepted, the data it describes, into a buffer that grows only
//! as the data arrive, so a member holding less than its header announces costs no more than it
//! holds. Bytes beyond the data are counted without being kept.

use std::fs::File;
use std::io::{self, Cursor, Read, Seek};
use std::path::Path;

use memmap2::Mmap;
use ndarray_npy::npy::header::{Header, ReadHeaderError};
use zip::ZipArchive;

use crate::error::{Error, Result};

pub(crate) const NPY_MAGIC: &[u8; 6] = b"\x93NUMPY";
/// The longest header text accepted in an `.npy` file. Header dictionaries are a few dozen bytes;
/// this one is read in place from the mapped file, after checking that the file holds it.
const MAX_NPY_HEADER: usize = 1 << 20;
/// The longest header text accepted in an `.npz` member, checked before the text is read into
/// memory (its length field is a u32 in format versions 2 and 3, so it may announce 4 GiB).
/// NumPy's own limit: `numpy.load` refuses longer headers by default (`max_header_size`).
pub(crate) const MAX_NPZ_HEADER: usize = 10_000;
/// The fixed start of an `.npy` file at its longest: magic bytes, version, a 4-byte length.
const NPY_PREAMBLE_MAX: usize = 12;
/// Deeper bracket nesting than any real header has; refused before parsing, so that a crafted
/// header cannot exhaust the stack of the recursive literal parser.
const MAX_NPY_HEADER_NESTING: usize = 32;

/// The bytes of a `.npy` file: mapped from disk, or handed over in memory.
pub(crate) enum Bytes {
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

/// An opened NumPy file, recognised by its leading bytes.
pub(crate) enum Container<R: Read + Seek> {
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

pub(crate) fn open(path: &Path, key: Option<&str>) -> Result<Container<File>> {
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
pub(crate) fn open_bytes<'a>(
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
pub(crate) fn npz_member<R: Read + Seek>(
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
pub(crate) enum ByteOrder {
    Little,
    Big,
    /// One-byte types.
    NotApplicable,
}

/// An element type as written in an `.npy` header, such as `<f4`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Descr {
    text: String,
    pub(crate) order: ByteOrder,
    /// NumPy's kind character (`f`, `i`, `u`, `b`, …); 0 for structured dtypes.
    pub(crate) kind: u8,
    pub(crate) size: usize,
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
    pub(crate) fn name(&self) -> String {
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
pub(crate) struct NpyHeader {
    pub(crate) descr: Descr,
    pub(crate) fortran: bool,
    pub(crate) shape: Vec<usize>,
    pub(crate) data_offset: usize,
}

impl NpyHeader {
    pub(crate) fn parse(bytes: &[u8]) -> std::result::Result<Self, String> {
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
    pub(crate) fn check_data_len(
        &self,
        file_len: usize,
        elem_size: usize,
    ) -> std::result::Result<(), String> {
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

pub(crate) fn byte_array<const N: usize>(chunk: &[u8]) -> [u8; N] {
    let mut a = [0; N];
    a.copy_from_slice(chunk);
    a
}

/// Decodes packed elements of `N` bytes.
pub(crate) fn decode<const N: usize, T>(bytes: &[u8], from: fn([u8; N]) -> T) -> Vec<T> {
    bytes.chunks_exact(N).map(|c| from(byte_array(c))).collect()
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Builders and checks shared by the tests of the NumPy loaders.

    use std::fmt;
    use std::fs::File;
    use std::path::{Path, PathBuf};

    use ndarray_npy::WriteNpyExt;

    use super::NPY_MAGIC;
    use crate::error::Result;

    pub(crate) fn write<T: WriteNpyExt>(dir: &Path, name: &str, array: &T) -> PathBuf {
        let path = dir.join(name);
        array.write_npy(File::create(&path).unwrap()).unwrap();
        path
    }

    /// An `.npy` file with a hand-written header dictionary, padded so that the data start at
    /// `data_offset`.
    pub(crate) fn raw_npy(dict: &str, data_offset: usize, data: &[u8]) -> Vec<u8> {
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

    pub(crate) fn err(result: Result<impl fmt::Debug>) -> String {
        result.unwrap_err().to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use ndarray::arr1;
    use ndarray_npy::{NpzWriter, WriteNpyExt};

    use super::test_support::raw_npy;
    use super::*;

    /// Why `bytes`, named `a.npy`, cannot be opened.
    fn refused(bytes: &[u8], key: Option<&str>) -> String {
        match open_bytes(bytes, Path::new("a.npy"), key) {
            Ok(_) => panic!("opened with key {key:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn leading_bytes_tell_npy_from_npz() {
        assert_eq!(refused(b"", None), "a.npy: the file is empty");
        assert!(refused(b"GIF89a", None).starts_with("a.npy: not a NumPy file"));
        assert!(refused(b"\x93NUM", Some("x")).contains("the key \"x\" can only choose"));
        assert!(matches!(
            open_bytes(b"\x93NUM", Path::new("a.npy"), None),
            Ok(Container::Npy(Bytes::Owned(_)))
        ));
        assert!(refused(b"PK\x03\x04", None).contains("not a readable .npz archive"));
    }

    #[test]
    fn npz_members_are_chosen_by_key_and_read_whole() {
        let mut npz = NpzWriter::new(Cursor::new(Vec::new()));
        npz.add_array("x", &arr1(&[1.0f64, 2.0])).unwrap();
        npz.add_array("y", &arr1(&[3i64])).unwrap();
        let bytes = npz.finish().unwrap().into_inner();
        assert!(refused(&bytes, None).contains("several arrays (\"x\", \"y\")"));
        assert!(refused(&bytes, Some("z")).contains("no array named \"z\""));

        let Ok(Container::Npz {
            mut archive,
            index,
            member,
        }) = open_bytes(&bytes, Path::new("a.npz"), Some("y"))
        else {
            panic!("no member y");
        };
        assert_eq!(member, "y");
        let read = npz_member(&mut archive, index, |h| {
            assert_eq!((h.descr.kind, h.descr.size), (b'i', 8));
            assert_eq!(h.shape, vec![1]);
            Ok(h.descr.size)
        })
        .unwrap();
        let mut expected = Vec::new();
        arr1(&[3i64]).write_npy(&mut expected).unwrap();
        assert_eq!(read, expected);
        assert_eq!(
            npz_member(&mut archive, index, |_| Err("refused".into())),
            Err("refused".to_string())
        );
    }

    #[test]
    fn preamble_gives_the_header_length_by_version() {
        assert_eq!(
            npy_preamble(b"\x93NUMPY\x01\x00\x76\x00"),
            Ok(Some((10, 118)))
        );
        assert_eq!(
            npy_preamble(b"\x93NUMPY\x03\x00\x10\x00\x00\x01"),
            Ok(Some((12, 0x0100_0010)))
        );
        assert_eq!(npy_preamble(b"\x93NUMPY\x02\x00\x10"), Ok(None));
        assert_eq!(npy_preamble(b"\x93NU"), Ok(None));
        assert_eq!(
            npy_preamble(b"\x93NUMPY\x09\x00"),
            Err("unsupported .npy format version 9.0".to_string())
        );
        assert_eq!(
            npy_preamble(b"PK\x03\x04"),
            Err("not a .npy file: wrong magic bytes".to_string())
        );
    }

    #[test]
    fn descr_names_numpy_types() {
        let cases = [
            ("<f4", ByteOrder::Little, b'f', 4, "float32"),
            (">i8", ByteOrder::Big, b'i', 8, "int64"),
            ("<i1", ByteOrder::NotApplicable, b'i', 1, "int8"),
            ("|b1", ByteOrder::NotApplicable, b'b', 1, "bool"),
            ("<U5", ByteOrder::Little, b'U', 5, "str ('<U5')"),
            ("|O", ByteOrder::NotApplicable, b'O', 0, "object"),
        ];
        for (text, order, kind, size, name) in cases {
            let d = Descr::parse(text);
            assert_eq!((d.order, d.kind, d.size), (order, kind, size), "{text}");
            assert_eq!(d.name(), name);
        }
        assert_eq!(
            Descr::structured("[('a', '<f4')]").name(),
            "structured [('a', '<f4')]"
        );
    }

    #[test]
    fn header_is_checked_against_the_data() {
        let dict = "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }";
        let file = raw_npy(dict, 128, &[0; 48]);
        let header = NpyHeader::parse(&file).unwrap();
        assert_eq!(header.descr.name(), "float64");
        assert!(header.fortran);
        assert_eq!(
            (header.shape.as_slice(), header.data_offset),
            (&[2, 3][..], 128)
        );
        assert_eq!(header.data_len(8), Ok(48));
        header.check_data_len(file.len(), 8).unwrap();
        assert_eq!(
            header.check_data_len(file.len() - 8, 8),
            Err(
                "truncated: the header describes float64 data of shape [2, 3] (48 bytes) but \
                 only 40 bytes follow it"
                    .to_string()
            )
        );
        assert_eq!(
            header.check_data_len(file.len() + 8, 8),
            Err(
                "8 bytes follow the 48 bytes of data that the header describes (shape [2, 3], \
                 float64)"
                    .to_string()
            )
        );
        assert_eq!(
            NpyHeader::parse(&file[..30]).err().unwrap(),
            "truncated: the file ends inside the .npy header"
        );
        assert_eq!(NpyHeader::parse(b"").err().unwrap(), "the file is empty");
        let mut v2 = NPY_MAGIC.to_vec();
        v2.extend([2, 0]);
        v2.extend(u32::MAX.to_le_bytes());
        assert_eq!(
            NpyHeader::parse(&v2).err().unwrap(),
            "malformed .npy header: it claims 4294967295 bytes, more than the 1048576 allowed"
        );
    }
}
