//! The pretraining crate's error type; every variant names the file and what was wrong.

use std::path::PathBuf;

/// Errors from data preparation, shards and pretraining runs.
#[derive(Debug, thiserror::Error)]
pub enum PretrainError {
    /// A file of one of Ember's formats is missing, damaged or of another format.
    #[error(transparent)]
    Format(#[from] ember_formats::FormatError),
    /// A file could not be read or written (with the file and what was being done).
    #[error(transparent)]
    File(#[from] ember_files::FileError),
    /// A corpus input is unusable (with the file, and the line, record or offset).
    #[error(transparent)]
    Corpus(#[from] ember_corpus::Error),
    /// An input text file is unusable.
    #[error("{path}: {reason}")]
    Input {
        /// The file.
        path: PathBuf,
        /// What is wrong (with the byte offset where there is one).
        reason: String,
    },
    /// A shard or `meta.json` is missing, damaged or from another tokenizer.
    #[error("{path}: {reason}")]
    Shard {
        /// The file.
        path: PathBuf,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// A bad option value.
    #[error("{option} = {value}: expected {expected}")]
    Option {
        /// The option or config key.
        option: &'static str,
        /// The bad value.
        value: String,
        /// What is allowed.
        expected: String,
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
    /// A tokenizer error.
    #[error(transparent)]
    Tokenizer(#[from] ember_tokenizer::Error),
    /// A training-loop error.
    #[error(transparent)]
    Train(#[from] ember_train::TrainError),
    /// A model or device error.
    #[error(transparent)]
    Model(#[from] ember_model::ModelError),
}

/// Result with [`PretrainError`].
pub type Result<T, E = PretrainError> = std::result::Result<T, E>;

impl PretrainError {
    pub(crate) fn io(
        path: impl Into<PathBuf>,
        action: &'static str,
        error: std::io::Error,
    ) -> Self {
        PretrainError::Io {
            path: path.into(),
            action,
            error,
        }
    }
}
