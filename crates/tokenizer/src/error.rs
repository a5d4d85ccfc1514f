//! The tokenizer's error type: every variant keeps the bad value and where it was found.

use std::path::PathBuf;

/// Everything that can go wrong while training, loading, saving or using a tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written (with the file and what was being done).
    #[error(transparent)]
    File(#[from] ember_files::FileError),
    /// A file could not be opened, read or written.
    #[error("{path}: {action} failed: {error}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// What was being done ("read", "write", "rename", ...).
        action: &'static str,
        /// The operating system's error (in the message, not repeated as a source).
        error: std::io::Error,
    },
    /// A training input is unusable (missing, a directory, empty).
    #[error("{path}: {reason}")]
    BadInput {
        /// The input file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A training input holds bytes that are not UTF-8.
    #[error(
        "{path}: invalid UTF-8 at byte offset {offset} (bytes {bytes}); \
         convert the file to UTF-8, or pass --lossy to replace bad bytes with U+FFFD"
    )]
    InvalidUtf8 {
        /// The input file.
        path: PathBuf,
        /// Byte offset of the first invalid byte.
        offset: u64,
        /// The offending bytes, in hex.
        bytes: String,
    },
    /// A training setting is out of range.
    #[error("{field} = {value}: {expected}")]
    BadSetting {
        /// The setting's name.
        field: &'static str,
        /// The value given.
        value: String,
        /// What was expected instead.
        expected: String,
    },
    /// The output file exists and overwriting was not asked for.
    #[error("{path} already exists; pass --force to overwrite it")]
    OutputExists {
        /// The output path.
        path: PathBuf,
    },
    /// A tokenizer file is not valid JSON.
    #[error(
        "{source_name}: not valid JSON at line {line}, column {column}: {message} \
         (is the file truncated or not a tokenizer.json?)"
    )]
    Json {
        /// Where the text came from (a path, or a description).
        source_name: String,
        /// Line of the error (1-based).
        line: usize,
        /// Column of the error (1-based).
        column: usize,
        /// serde_json's description.
        message: String,
    },
    /// A tokenizer file is valid JSON but not a tokenizer Ember can use.
    #[error("{source_name}: field `{field}`: {reason}")]
    Format {
        /// Where the text came from.
        source_name: String,
        /// JSON path of the bad field, e.g. `model.merges[17]`.
        field: String,
        /// What is wrong, quoting the bad value.
        reason: String,
    },
    /// The tokenizer lacks a special token a feature needs (the chat tokens, say).
    #[error(
        "the tokenizer has no {token} token, which {needed_for} needs; train it with `ember tokenizer train` (it adds Ember's special tokens)"
    )]
    MissingSpecial {
        /// The special token's text.
        token: String,
        /// What needs it.
        needed_for: &'static str,
    },
    /// A token id outside the vocabulary was given to `decode`.
    #[error("token id {id} is out of range: the vocabulary has {vocab_size} ids (0..{vocab_size})")]
    UnknownId {
        /// The bad id.
        id: u32,
        /// The vocabulary size.
        vocab_size: usize,
    },
}

/// Result with the tokenizer's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(
        path: impl Into<PathBuf>,
        action: &'static str,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            path: path.into(),
            action,
            error: source,
        }
    }
}
