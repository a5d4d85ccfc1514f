//! The evaluation crate's error type: each variant keeps the file, line or value at fault.

use std::path::PathBuf;

/// Errors from evaluation and reports.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file of one of Ember's formats is missing, damaged or of another format.
    #[error(transparent)]
    Format(#[from] ember_formats::FormatError),
    /// A file could not be read or written (with the file and what was being done).
    #[error(transparent)]
    File(#[from] ember_files::FileError),
    /// A task's data file is not where it was expected.
    #[error("{task}: data file {} not found; {hint}", path.display())]
    MissingData {
        /// The task.
        task: String,
        /// Where it was expected.
        path: PathBuf,
        /// How to get it or point Ember at it.
        hint: String,
    },
    /// A data file cannot be used at all (not UTF-8, no valid item).
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
    #[error("{}: {action} failed: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The operating system's error.
        error: std::io::Error,
    },
    /// A bad option (unknown task name, nothing to evaluate, ...).
    #[error("{0}")]
    Usage(String),
    /// A results file or run directory that cannot be read.
    #[error("{}: {reason}", path.display())]
    Results {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A model or checkpoint error.
    #[error(transparent)]
    Model(#[from] ember_model::ModelError),
    /// A tokenizer error.
    #[error(transparent)]
    Tokenizer(#[from] ember_tokenizer::Error),
}

/// Result with [`EvalError`].
pub type Result<T, E = EvalError> = std::result::Result<T, E>;

impl EvalError {
    pub(crate) fn io(
        path: impl Into<PathBuf>,
        action: &'static str,
        error: std::io::Error,
    ) -> Self {
        EvalError::Io {
            path: path.into(),
            action,
            error,
        }
    }
}
