//! The formats crate's error type: every variant names the file (and line) at fault.

use std::path::PathBuf;

/// A file of one of Ember's formats that is missing, damaged or of another format.
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    /// A file could not be read or written.
    #[error(transparent)]
    File(#[from] ember_files::FileError),
    /// A shard, `meta.json` or run file is damaged, of another version, or from another
    /// tokenizer.
    #[error("{}: {reason}", path.display())]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// A line of a JSONL file is invalid.
    #[error("{}:{line}: {reason}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 for the file as a whole).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// The tokenizer stored with the data failed to load.
    #[error(transparent)]
    Tokenizer(#[from] ember_tokenizer::Error),
    /// A checkpoint of the run failed to verify.
    #[error(transparent)]
    Model(#[from] ember_model::ModelError),
}

/// Result with [`FormatError`].
pub type Result<T, E = FormatError> = std::result::Result<T, E>;

impl FormatError {
    pub(crate) fn damaged(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        FormatError::Damaged {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub(crate) fn io(
        path: impl Into<PathBuf>,
        action: &'static str,
        error: std::io::Error,
    ) -> Self {
        FormatError::File(ember_files::FileError::io(path, action, error))
    }
}
