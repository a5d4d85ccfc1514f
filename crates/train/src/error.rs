//! The training crate's error type; every variant names what was bad and where.

use std::path::PathBuf;

/// Errors from configs, checkpoints, data and the loop itself.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A file of one of Ember's formats is missing, damaged or of another format.
    #[error(transparent)]
    Format(#[from] ember_formats::FormatError),
    /// A file could not be read or written (with the file and what was being done).
    #[error(transparent)]
    File(#[from] ember_files::FileError),
    /// A config file or `--set` override is malformed or has a bad value.
    #[error("config {origin}: {message}")]
    Config {
        /// The file, or `--set KEY=VALUE`.
        origin: String,
        /// What is wrong (TOML errors carry line and column).
        message: String,
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
    /// A checkpoint cannot be resumed from.
    #[error("resume {path}: {reason}")]
    Resume {
        /// The run or checkpoint directory.
        path: PathBuf,
        /// What is wrong, naming the saved and the current value where they differ.
        reason: String,
    },
    /// The training data cannot produce a batch.
    #[error("data: {0}")]
    Data(String),
    /// Training cannot go on (non-finite values past the skip budget, and the like).
    #[error("training stopped at step {step}: {reason}")]
    Stopped {
        /// The optimizer step at which it stopped.
        step: u64,
        /// Why.
        reason: String,
    },
    /// A model, device or checkpoint error.
    #[error(transparent)]
    Model(#[from] ember_model::ModelError),
}

/// Result with [`TrainError`].
pub type Result<T, E = TrainError> = std::result::Result<T, E>;

impl TrainError {
    pub(crate) fn io(
        path: impl Into<PathBuf>,
        action: &'static str,
        error: std::io::Error,
    ) -> Self {
        TrainError::Io {
            path: path.into(),
            action,
            error,
        }
    }
}
