//! What the user named → the files to read, in a stable order, each with its kind.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

/// How an input holds its text, from its file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// UTF-8 text (any other name).
    Text,
    /// One JSON object per line (`.jsonl`, `.ndjson`, `.json`).
    Jsonl,
    /// Apache Parquet (`.parquet`).
    Parquet,
}

impl Kind {
    /// The name `meta.json` records.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Jsonl => "jsonl",
            Kind::Parquet => "parquet",
        }
    }
}

/// Whole-file compression, from the last extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Stored as is.
    None,
    /// `.gz`.
    Gzip,
    /// `.zst` or `.zstd`.
    Zstd,
}

/// One file to read.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    /// The file.
    pub path: PathBuf,
    /// How it holds text.
    pub kind: Kind,
    /// How it is compressed.
    pub compression: Compression,
    /// Its size on disk.
    pub bytes: u64,
}

impl Input {
    /// Classifies `path` by its name and checks it is a readable, non-empty file.
    pub fn new(path: &Path) -> Result<Input> {
        let bad = |reason: &str| Error::Input {
            path: path.to_path_buf(),
            reason: reason.into(),
        };
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(bad("no such file")),
            Err(e) => return Err(Error::io(path, "stat", e)),
        };
        if meta.is_dir() {
            return Err(bad("is a directory, expected a file"));
        }
        if meta.len() == 0 {
            return Err(bad("is empty (no text to train on)"));
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        let (stem, compression) = if let Some(s) = name.strip_suffix(".gz") {
            (s, Compression::Gzip)
        } else if let Some(s) = name.strip_suffix(".zst").or(name.strip_suffix(".zstd")) {
            (s, Compression::Zstd)
        } else {
            (name.as_str(), Compression::None)
        };
        let ext = stem.rsplit_once('.').map_or("", |(_, e)| e);
        let kind = match ext {
            "jsonl" | "ndjson" | "json" => Kind::Jsonl,
            "parquet" => Kind::Parquet,
            _ => Kind::Text,
        };
        if kind == Kind::Parquet && compression != Compression::None {
            return Err(bad(
                "is a compressed Parquet file; Parquet compresses its own pages, so store it as .parquet",
            ));
        }
        Ok(Input {
            path: path.to_path_buf(),
            kind,
            compression,
            bytes: meta.len(),
        })
    }

    /// The file's bytes, decompressed, as a stream, and a count of the bytes read from disk.
    pub(crate) fn open(&self) -> Result<(Box<dyn Read + Send>, Arc<AtomicU64>)> {
        let f = std::fs::File::open(&self.path).map_err(|e| Error::io(&self.path, "open", e))?;
        let raw = Arc::new(AtomicU64::new(0));
        let f = Counted {
            inner: f,
            count: raw.clone(),
        };
        let f = std::io::BufReader::with_capacity(1 << 16, f);
        let stream: Box<dyn Read + Send> = match self.compression {
            Compression::None => Box::new(f),
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(f)),
            Compression::Zstd => Box::new(
                zstd::stream::read::Decoder::with_buffer(f)
                    .map_err(|e| Error::io(&self.path, "start zstd decoding", e))?,
            ),
        };
        Ok((stream, raw))
    }
}

/// Counts the bytes read through it (progress over compressed files).
struct Counted<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// SHA-256 of a file's bytes, in hex, read in 1 MiB blocks.
pub(crate) fn sha256_file(path: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, "open", e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, "read", e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(ember_files::hex(&h.finalize()))
}

fn is_pattern(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn hidden(p: &Path) -> bool {
    p.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

/// Expands what the user named into files, in a stable order: a file stays as it is; a
/// directory becomes every file under it (recursively, hidden names skipped, sorted by path); a
/// glob pattern (`data/*.parquet`, `books/**/*.txt`) becomes its matches, sorted. A directory
/// or pattern that yields no file is an error naming it.
pub fn expand(specs: &[PathBuf]) -> Result<Vec<Input>> {
    let mut out = Vec::new();
    for spec in specs {
        let s = spec.to_string_lossy();
        if spec.is_dir() {
            let mut files = Vec::new();
            for e in walkdir::WalkDir::new(spec)
                .follow_links(true)
                .sort_by_file_name()
                .into_iter()
                .filter_entry(|e| e.depth() == 0 || !hidden(e.path()))
            {
                let e = e.map_err(|e| Error::Input {
                    path: spec.clone(),
                    reason: format!("cannot list the directory: {e}"),
                })?;
                if e.file_type().is_file() {
                    files.push(e.into_path());
                }
            }
            if files.is_empty() {
                return Err(Error::NoInput {
                    what: format!("{s}: the directory holds no file"),
                });
            }
            for f in files {
                out.push(Input::new(&f)?);
            }
        } else if !spec.exists() && is_pattern(&s) {
            // As a shell does: `*` does not match a leading dot.
            let options = glob::MatchOptions {
                require_literal_leading_dot: true,
                ..glob::MatchOptions::new()
            };
            let paths = glob::glob_with(&s, options).map_err(|e| Error::NoInput {
                what: format!("{s}: not a valid pattern: {e}"),
            })?;
            let mut files = Vec::new();
            for p in paths {
                let p = p.map_err(|e| Error::Input {
                    path: e.path().to_path_buf(),
                    reason: format!("cannot read it while matching {s}: {}", e.error()),
                })?;
                if p.is_file() {
                    files.push(p);
                }
            }
            files.sort();
            if files.is_empty() {
                return Err(Error::NoInput {
                    what: format!("{s}: the pattern matches no file"),
                });
            }
            for f in files {
                out.push(Input::new(&f)?);
            }
        } else {
            out.push(Input::new(spec)?);
        }
    }
    if out.is_empty() {
        return Err(Error::NoInput {
            what: "no input was given".into(),
        });
    }
    Ok(out)
}
