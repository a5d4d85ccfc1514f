//! Reading a training corpus of any size: the inputs a user names (files, directories, globs),
//! in any of the forms corpora are published in (plain UTF-8 text, JSONL with a text field,
//! Parquet with a text column; gzip or zstd compressed), streamed as documents in pieces of
//! about a megabyte. Memory stays at a few pieces whatever the corpus size.
//!
//! Pieces of one document are cut only where the tokenizer's split pattern always starts a new
//! piece ([`ember_tokenizer::cut_point`]), so encoding (or counting) the pieces one by one gives
//! exactly the ids of the whole document. Documents whose text is only whitespace are skipped,
//! as `ember prepare` always has; an input with no document at all is an error.
//!
//! ```
//! use ember_corpus::{Format, Piece, read};
//! let dir = tempfile::tempdir().unwrap();
//! std::fs::write(dir.path().join("a.jsonl"), "{\"text\": \"one\"}\n{\"text\": \"two\"}\n").unwrap();
//! std::fs::write(dir.path().join("b.txt"), "three\n\n\nfour\n").unwrap();
//! let inputs = ember_corpus::expand(&[dir.path().to_path_buf()]).unwrap();
//! let format = Format { doc_separator: Some("\n\n\n".into()), ..Format::default() };
//! let mut docs = Vec::new();
//! read(&inputs, &format, &mut |p: Piece<'_>| { docs.push(p.text.to_string()); true }).unwrap();
//! assert_eq!(docs, ["one", "two", "three", "four\n"]);
//! ```

use std::path::PathBuf;

mod error;
mod inputs;
mod records;
mod text;

pub use error::{Error, Result};
pub use inputs::{Compression, Input, Kind, expand};

/// Target size of a piece in bytes. Pieces grow past it only where no cut point is found (a
/// very long line); 1 MiB keeps a piece's encoding well inside the L2-sized work units that
/// `Tokenizer::encode_parallel` already uses.
pub const PIECE: usize = 1 << 20;

/// How the inputs' text is laid out.
#[derive(Debug, Clone)]
pub struct Format {
    /// Text that separates documents within a plain-text input (each file is one document when
    /// unset). JSONL and Parquet inputs are one document per record.
    pub doc_separator: Option<String>,
    /// The field of a JSONL record that holds its text.
    pub text_field: String,
    /// The column of a Parquet file that holds the text.
    pub text_column: String,
    /// Replace invalid UTF-8 in plain text with U+FFFD (counted) instead of stopping.
    pub lossy: bool,
    /// Target piece size in bytes (tests use small sizes to put many cuts in a text).
    pub piece_bytes: usize,
}

impl Default for Format {
    fn default() -> Self {
        Format {
            doc_separator: None,
            text_field: "text".into(),
            text_column: "text".into(),
            lossy: false,
            piece_bytes: PIECE,
        }
    }
}

/// Part of one document, in reading order.
#[derive(Debug, Clone, Copy)]
pub struct Piece<'a> {
    /// Index of the input (in the list given to [`read`]) it comes from.
    pub input: usize,
    /// Index of its document among all non-empty documents of the read, from 0.
    pub doc: u64,
    /// The text.
    pub text: &'a str,
    /// It starts its document.
    pub first: bool,
    /// It ends its document.
    pub last: bool,
}

/// What [`read`] saw of one input.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSummary {
    /// The file.
    pub path: PathBuf,
    /// Its kind.
    pub kind: Kind,
    /// Its size on disk.
    pub bytes: u64,
    /// SHA-256 of its bytes on disk, in hex.
    pub sha256: String,
    /// Non-empty documents it held.
    pub documents: u64,
    /// Bytes of text in them.
    pub text_bytes: u64,
    /// Invalid UTF-8 sequences replaced (lossy plain text only).
    pub replaced: u64,
}

/// Receives what [`read`] reads.
pub trait Sink {
    /// One piece; return `false` to stop reading (the read then ends with [`Error::Stopped`]).
    fn piece(&mut self, piece: Piece<'_>) -> bool;
    /// `bytes` more of the inputs (as stored on disk) have been read; for progress bars.
    fn progress(&mut self, _bytes: u64) {}
}

impl<F: FnMut(Piece<'_>) -> bool> Sink for F {
    fn piece(&mut self, piece: Piece<'_>) -> bool {
        self(piece)
    }
}

/// Total size on disk of `inputs` (the 100% of a progress bar).
pub fn total_bytes(inputs: &[Input]) -> u64 {
    inputs.iter().map(|i| i.bytes).sum()
}

/// Reads every input in order, handing each document's pieces to `sink`; returns what each
/// input held. Documents are numbered across all inputs of this call.
pub fn read(inputs: &[Input], format: &Format, sink: &mut impl Sink) -> Result<Vec<InputSummary>> {
    if inputs.is_empty() {
        return Err(Error::NoInput {
            what: "no input was given".into(),
        });
    }
    let mut next_doc = 0u64;
    let mut out = Vec::with_capacity(inputs.len());
    for (i, input) in inputs.iter().enumerate() {
        let mut docs = Docs {
            input: i,
            next_doc,
            text_bytes: 0,
            sink,
            stopped: false,
        };
        let (sha256, replaced) = match input.kind {
            Kind::Text => text::read(input, format, &mut docs)?,
            Kind::Jsonl => (records::read_jsonl(input, format, &mut docs)?, 0),
            Kind::Parquet => (records::read_parquet(input, format, &mut docs)?, 0),
        };
        if docs.stopped {
            return Err(Error::Stopped);
        }
        let documents = docs.next_doc - next_doc;
        let text_bytes = docs.text_bytes;
        next_doc = docs.next_doc;
        if documents == 0 {
            return Err(Error::Input {
                path: input.path.clone(),
                reason: match input.kind {
                    Kind::Text => "is empty (no text to train on)".into(),
                    _ => "holds no record with text (no text to train on)".into(),
                },
            });
        }
        out.push(InputSummary {
            path: input.path.clone(),
            kind: input.kind,
            bytes: input.bytes,
            sha256,
            documents,
            text_bytes,
            replaced,
        });
    }
    Ok(out)
}

/// Numbers documents and drops those that are only whitespace, for the readers of each kind.
pub(crate) struct Docs<'s, S: Sink> {
    input: usize,
    next_doc: u64,
    text_bytes: u64,
    sink: &'s mut S,
    stopped: bool,
}

impl<S: Sink> Docs<'_, S> {
    /// Hands over a whole document (a JSONL or Parquet record), cut into pieces of about
    /// `piece_bytes`; returns `false` once the sink has stopped.
    pub(crate) fn whole(&mut self, text: &str, piece_bytes: usize) -> bool {
        if text.trim().is_empty() {
            return !self.stopped;
        }
        let ranges = ember_tokenizer::independent_ranges(text, piece_bytes);
        let n = ranges.len();
        for (i, r) in ranges.into_iter().enumerate() {
            if !self.emit(&text[r], i == 0, i + 1 == n) {
                return false;
            }
        }
        true
    }

    /// Hands over one piece of the current document (the caller has checked that the document
    /// is not only whitespace before its first piece).
    pub(crate) fn emit(&mut self, text: &str, first: bool, last: bool) -> bool {
        if self.stopped {
            return false;
        }
        self.text_bytes += text.len() as u64;
        let ok = self.sink.piece(Piece {
            input: self.input,
            doc: self.next_doc,
            text,
            first,
            last,
        });
        if last {
            self.next_doc += 1;
        }
        self.stopped = !ok;
        ok
    }

    pub(crate) fn progress(&mut self, bytes: u64) {
        self.sink.progress(bytes);
    }
}
