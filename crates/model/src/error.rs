//! The model crate's error type; every variant names what was bad and where.

use std::path::PathBuf;

/// Errors from configs, devices, generation and checkpoints.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A file could not be read or written (with the file and what was being done).
    #[error(transparent)]
    File(#[from] ember_files::FileError),
    /// A config field is out of range.
    #[error("model config: {field} = {value}: expected {expected}")]
    Config {
        /// The field's name.
        field: &'static str,
        /// The bad value.
        value: String,
        /// What is allowed.
        expected: String,
    },
    /// The requested device is not available.
    #[error("device: {0}")]
    Device(String),
    /// A batch's rows do not have the sizes it claims.
    #[error("batch: {0}")]
    Batch(String),
    /// A generation request cannot be served.
    #[error("generate: {0}")]
    Generate(String),
    /// A checkpoint file is missing, damaged or of another format.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The file (or directory) at fault.
        path: PathBuf,
        /// What is wrong, and a hint where one helps.
        reason: String,
    },
    /// The tokenizer stored with a checkpoint failed to load.
    #[error(transparent)]
    Tokenizer(#[from] ember_tokenizer::Error),
}

/// Result with [`ModelError`].
pub type Result<T, E = ModelError> = std::result::Result<T, E>;

impl ModelError {
    pub(crate) fn checkpoint(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        ModelError::Checkpoint {
            path: path.into(),
            reason: reason.into(),
        }
    }
}
