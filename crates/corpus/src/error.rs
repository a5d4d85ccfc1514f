//! The corpus reader's errors; each names the file and, where there is one, the line, record or
//! byte offset, with the bad value and what was expected.

use std::path::PathBuf;

/// An input that cannot be read as a corpus.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading failed (with the file and what was being done).
    #[error(transparent)]
    File(#[from] ember_files::FileError),
    /// Nothing to read: no input given, a directory with no files, a glob with no match.
    #[error("{what}")]
    NoInput {
        /// What matched nothing.
        what: String,
    },
    /// An input is unusable as a whole (empty, a directory where a file was expected, ...).
    #[error("{}: {reason}", path.display())]
    Input {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Plain text that is not UTF-8.
    #[error(
        "{}: not UTF-8 text at byte offset {offset} (line {line}: bytes {bytes}); convert it to UTF-8 first, or pass --lossy where the command has it",
        path.display()
    )]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// 1-based line of the first invalid byte.
        line: u64,
        /// Its byte offset in the (decompressed) text.
        offset: u64,
        /// Up to four bytes from there, in hex.
        bytes: String,
    },
    /// A JSONL line that is not a record with a text field.
    #[error("{}:{line}: {reason}", path.display())]
    Record {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// What is wrong, and what was expected.
        reason: String,
    },
    /// A Parquet file without a usable text column, or whose data cannot be decoded.
    #[error("{}: {reason}", path.display())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// What is wrong (the column, row group and row where there is one).
        reason: String,
    },
    /// The receiver of the pieces stopped the read (its own error says why).
    #[error("reading stopped by its receiver")]
    Stopped,
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, action: &'static str, e: std::io::Error) -> Self {
        Error::File(ember_files::FileError::io(path, action, e))
    }
}
