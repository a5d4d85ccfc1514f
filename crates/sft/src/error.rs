//! The SFT crate's error type; data errors (`file:line: reason`) come from `ember_formats`.

/// Errors from dialogue data and SFT runs.
#[derive(Debug, thiserror::Error)]
pub enum SftError {
    /// A file of one of Ember's formats is missing, damaged or of another format.
    #[error(transparent)]
    Format(#[from] ember_formats::FormatError),
    /// A file could not be read or written (with the file and what was being done).
    #[error(transparent)]
    File(#[from] ember_files::FileError),
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
