//! The records file of a run: `records.jsonl`, or with `--compress` `records.jsonl.zst`,
//! written as one complete zstd frame per chunk of records. Concatenated frames are one valid
//! zstd stream, so the file read up to the end of any frame is the records of the chunks
//! before it, and a run stopped between chunks leaves a file that reads.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// The records file of a run without `--compress`.
pub const PLAIN: &str = "records.jsonl";
/// The records file of a run with `--compress`.
pub const COMPRESSED: &str = "records.jsonl.zst";
/// zstd's default level: about as fast as writing the JSON, a tenth of its size or less.
const LEVEL: i32 = 3;

/// The name of the records file of a run with (or without) `--compress`.
pub fn records_name(compress: bool) -> &'static str {
    if compress {
        COMPRESSED
    } else {
        PLAIN
    }
}

/// Opens a records file for reading line by line, decompressing a `.zst` one (an empty file,
/// of a run with no records yet, holds no frame and reads as no line).
pub fn open_records(path: &Path) -> Result<Box<dyn BufRead>> {
    let file = File::open(path).map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
    let empty = file
        .metadata()
        .map_err(|e| Error::file(path, format!("cannot read: {e}")))?
        .len()
        == 0;
    if empty {
        Ok(Box::new(io::empty()))
    } else if path.extension().is_some_and(|e| e == "zst") {
        let decoder = zstd::stream::read::Decoder::new(file)
            .map_err(|e| Error::file(path, format!("cannot read: {e}")))?;
        Ok(Box::new(BufReader::new(decoder)))
    } else {
        Ok(Box::new(BufReader::new(file)))
    }
}

/// Writes records, one line each, plain or as one zstd frame per chunk, to a file (a run's
/// records as they grow) or to any other sink (a run held in memory, written at once).
pub(crate) struct RecordsWriter<W: Write = File> {
    /// The sink between chunks (and throughout, for a plain file); `None` while a frame is
    /// open, or after an error closed the writer.
    file: Option<BufWriter<W>>,
    /// The frame of the chunk being written (`--compress`).
    frame: Option<zstd::stream::write::Encoder<'static, BufWriter<W>>>,
    compress: bool,
}

fn closed() -> io::Error {
    io::Error::other("the records file was closed by an earlier error")
}

impl<W: Write> RecordsWriter<W> {
    /// A writer appending to `file`.
    pub(crate) fn new(file: W, compress: bool) -> Self {
        Self {
            file: Some(BufWriter::new(file)),
            frame: None,
            compress,
        }
    }

    /// Writes one record line (without its line break).
    pub(crate) fn line(&mut self, line: &[u8]) -> io::Result<()> {
        let out: &mut dyn Write = if self.compress {
            if self.frame.is_none() {
                let file = self.file.take().ok_or_else(closed)?;
                self.frame = Some(zstd::stream::write::Encoder::new(file, LEVEL)?);
            }
            self.frame.as_mut().ok_or_else(closed)?
        } else {
            self.file.as_mut().ok_or_else(closed)?
        };
        out.write_all(line)?;
        out.write_all(b"\n")
    }

    /// Ends the chunk: closes its frame (`--compress`) and hands everything written to the
    /// sink (the operating system, for a file).
    pub(crate) fn end_chunk(&mut self) -> io::Result<()> {
        if let Some(frame) = self.frame.take() {
            self.file = Some(frame.finish()?);
        }
        self.file.as_mut().ok_or_else(closed)?.flush()
    }
}

impl RecordsWriter<File> {
    /// Ends the chunk and forces the file to the disk.
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        self.end_chunk()?;
        self.file.as_ref().ok_or_else(closed)?.get_ref().sync_data()
    }

    /// The file's length after [`RecordsWriter::end_chunk`]: every chunk written so far.
    pub(crate) fn written_len(&self) -> io::Result<u64> {
        Ok(self
            .file
            .as_ref()
            .ok_or_else(closed)?
            .get_ref()
            .metadata()?
            .len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every chunk is a complete frame: the file cut after any chunk reads back to exactly
    /// the lines of the chunks before the cut.
    #[test]
    fn a_compressed_file_cut_after_any_chunk_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(COMPRESSED);
        let mut w = RecordsWriter::new(File::create(&path).unwrap(), true);
        let mut ends = Vec::new();
        let mut lines = Vec::new();
        for chunk in 0..4 {
            for i in 0..50 {
                let line = format!("{{\"sample\":{},\"chunk\":{chunk}}}", chunk * 50 + i);
                w.line(line.as_bytes()).unwrap();
                lines.push(line);
            }
            w.end_chunk().unwrap();
            ends.push((w.written_len().unwrap(), lines.len()));
        }
        w.sync().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len() as u64, ends[3].0);
        for (cut, count) in ends {
            let part = dir.path().join(format!("part-{cut}.zst"));
            std::fs::write(&part, &bytes[..cut as usize]).unwrap();
            let read: Vec<String> = open_records(&part)
                .unwrap()
                .lines()
                .map(|l| l.unwrap())
                .collect();
            assert_eq!(read, &lines[..count]);
        }
        // An empty file is no records; a frame cut in its middle does not read as records.
        let empty = dir.path().join("empty.zst");
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(open_records(&empty).unwrap().lines().count(), 0);
        let torn = dir.path().join("torn.zst");
        std::fs::write(&torn, &bytes[..bytes.len() - 3]).unwrap();
        let all: io::Result<Vec<String>> = open_records(&torn).unwrap().lines().collect();
        assert!(all.is_err());
    }

    #[test]
    fn a_plain_file_is_the_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PLAIN);
        let mut w = RecordsWriter::new(File::create(&path).unwrap(), false);
        w.line(b"{}").unwrap();
        w.line(b"[]").unwrap();
        w.sync().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{}\n[]\n");
        assert_eq!(w.written_len().unwrap(), 6);
    }
}
