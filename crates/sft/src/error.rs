//! The SFT crate's error type; data errors are `file:line: reason`.

use std::path::PathBuf;

/// Errors from dialogue data and SFT runs.
#[derive(Debug, thiserror::Error)]
pub enum SftError {
    /// A line of a dialogue file is invalid.
    #[error("{}:{line}: {reason}", path.display())]
    Data {
        /// The file.
        path: PathBuf,
        /// 1-based line (0 for the file as a whole).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A file could not be read or written.
    #[error("{path}: {action} failed: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The operating system's error.
        error: std::io::Error,
    },
    /// A bad config or option.
    #[error("config: {0}")]
    Config(String),
    /// A training-loop error.
    #[error(transparent)]
    Train(#[from] ember_train::TrainError),
    /// A model or checkpoint error.
    #[error(transparent)]
    Model(#[from] ember_model::ModelError),
    /// A tokenizer error (a tokenizer without chat tokens, say).
    #[error(transparent)]
    Tokenizer(#[from] ember_tokenizer::Error),
}

/// Result with [`SftError`].
pub type Result<T, E = SftError> = std::result::Result<T, E>;

impl SftError {
    pub(crate) fn io(
        path: impl Into<PathBuf>,
        action: &'static str,
        error: std::io::Error,
    ) -> Self {
        SftError::Io {
            path: path.into(),
            action,
            error,
        }
    }
}
