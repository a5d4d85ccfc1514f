//! Reads training files as a stream of UTF-8 chunks, cut where the split pattern is sure to
//! start a new piece, so that counting pieces per chunk gives exactly the counts of the whole
//! file while memory stays at a few chunks, whatever the file size.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::pretokenizer::{Class, class_at};

/// Target chunk size. Chunks grow past it only when no cut point is found (a very long line).
const CHUNK: usize = 1 << 20;

/// One piece of a file, as text.
pub(crate) struct Chunk {
    pub text: String,
    /// Bytes read from the file for this chunk.
    pub bytes: usize,
    /// Invalid UTF-8 sequences replaced by U+FFFD (lossy mode only).
    pub replaced: u64,
}

/// Streams one file as [`Chunk`]s.
pub(crate) struct ChunkReader {
    path: PathBuf,
    file: File,
    buf: Vec<u8>,
    /// File offset of `buf[0]`.
    offset: u64,
    eof: bool,
    lossy: bool,
}

/// Checks that `path` is a readable, non-empty regular file; returns its size.
pub(crate) fn check_input(path: &Path) -> Result<u64> {
    let bad = |reason: &str| Error::BadInput {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(bad("no such file")),
        Err(e) => return Err(Error::io(path, "stat", e)),
    };
    if meta.is_dir() {
        return Err(bad("is a directory, expected a text file"));
    }
    if meta.len() == 0 {
        return Err(bad("is empty; a training file needs text"));
    }
    Ok(meta.len())
}

impl ChunkReader {
    pub(crate) fn open(path: &Path, lossy: bool) -> Result<Self> {
        check_input(path)?;
        let file = File::open(path).map_err(|e| Error::io(path, "open", e))?;
        Ok(ChunkReader {
            path: path.to_path_buf(),
            file,
            buf: Vec::new(),
            offset: 0,
            eof: false,
            lossy,
        })
    }

    /// The next chunk, or `None` at the end of the file.
    pub(crate) fn next_chunk(&mut self) -> Result<Option<Chunk>> {
        let mut want = CHUNK;
        loop {
            while !self.eof && self.buf.len() < want {
                let start = self.buf.len();
                self.buf.resize(want, 0);
                let n = self
                    .file
                    .read(&mut self.buf[start..])
                    .map_err(|e| Error::io(&self.path, "read", e))?;
                self.buf.truncate(start + n);
                self.eof = n == 0;
            }
            if self.buf.is_empty() {
                return Ok(None);
            }
            let cut = if self.eof {
                Some(self.buf.len())
            } else {
                cut_point(&self.buf)
            };
            match cut {
                Some(cut) => return self.take(cut).map(Some),
                None => want = self.buf.len() * 2,
            }
        }
    }

    fn take(&mut self, cut: usize) -> Result<Chunk> {
        let rest = self.buf.split_off(cut);
        let bytes = std::mem::replace(&mut self.buf, rest);
        let start = self.offset;
        self.offset += cut as u64;
        let n = bytes.len();
        match String::from_utf8(bytes) {
            Ok(text) => Ok(Chunk {
                text,
                bytes: n,
                replaced: 0,
            }),
            Err(e) if self.lossy => {
                let replaced = e
                    .as_bytes()
                    .utf8_chunks()
                    .filter(|c| !c.invalid().is_empty())
                    .count() as u64;
                let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
                Ok(Chunk {
                    text,
                    bytes: n,
                    replaced,
                })
            }
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                let bad = &e.as_bytes()[at..(at + 4).min(n)];
                let hex: Vec<String> = bad.iter().map(|b| format!("{b:02x}")).collect();
                Err(Error::InvalidUtf8 {
                    path: self.path.clone(),
                    offset: start + at as u64,
                    bytes: hex.join(" "),
                })
            }
        }
    }
}

/// Cuts `text` into ranges of about `target` bytes at [`cut_point`]s, so that encoding the
/// ranges separately gives exactly the ids of encoding the whole text.
pub fn independent_ranges(text: &str, target: usize) -> Vec<std::ops::Range<usize>> {
    let buf = text.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut want = target.max(1);
    while start < buf.len() {
        let end = start.saturating_add(want);
        if end >= buf.len() {
            out.push(start..buf.len());
            break;
        }
        match cut_point(&buf[start..end]) {
            Some(p) if p > 0 => {
                out.push(start..start + p);
                start += p;
                want = target.max(1);
            }
            _ => want = want.saturating_mul(2),
        }
    }
    out
}

/// The last position `p` with `buf[p - 1] == b'\n'` and a whole non-whitespace character at `p`:
/// text cut there encodes (and counts) in two parts exactly as it does whole.
/// A newline followed by a non-space always ends a piece (no alternative of the pattern can
/// continue across it), and the piece before it ends the same way whether the text goes on or
/// stops there, so the two sides split independently.
pub fn cut_point(buf: &[u8]) -> Option<usize> {
    let mut end = buf.len();
    while let Some(nl) = memchr::memrchr(b'\n', &buf[..end]) {
        let p = nl + 1;
        if p < buf.len() && starts_non_space(&buf[p..]) {
            return Some(p);
        }
        end = nl;
    }
    None
}

fn starts_non_space(b: &[u8]) -> bool {
    let len = match b[0] {
        0x00..=0x7F => 1,
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => return true, // invalid UTF-8: reported (or replaced by U+FFFD, not a space) later
    };
    match b.get(..len).map(std::str::from_utf8) {
        Some(Ok(s)) => class_at(s.as_bytes(), 0) != Class::Space,
        Some(Err(_)) => true,
        None => false, // character cut off by the buffer's end: not a usable cut
    }
}
