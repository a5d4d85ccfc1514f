//! The SFT config file: `[run]`, `[init]`, `[data]`, `[train]` (see `configs/sft.toml`).

use std::path::PathBuf;

use ember_train::TrainSection;
pub use ember_train::config::RunSection;
use serde::{Deserialize, Serialize};

/// A whole fine-tuning run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SftConfig {
    /// Where the run goes.
    pub run: RunSection,
    /// The pretrained model to start from.
    pub init: InitSection,
    /// The dialogue files.
    pub data: DataSection,
    /// Optimizer, schedule and cadence (the shared loop's section).
    #[serde(default)]
    pub train: TrainSection,
    /// Replies sampled from held-out prompts at the end.
    #[serde(default)]
    pub sample: crate::replies::SampleSection,
}

/// `[init]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InitSection {
    /// A checkpoint directory, or a run directory (its newest complete checkpoint).
    pub checkpoint: PathBuf,
}

/// One dialogue file and how much of it a run sees.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataFile {
    /// JSONL path.
    pub path: PathBuf,
    /// Passes over the file's training conversations per pass over the mix (fractions take a
    /// seeded subset; default 1).
    #[serde(default = "one")]
    pub epochs: f64,
}

fn one() -> f64 {
    1.0
}

/// `[data]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// The files of the mix.
    pub files: Vec<DataFile>,
    /// Fraction of each file's conversations held out for evaluation (seeded, by conversation).
    #[serde(default = "default_val")]
    pub val_fraction: f64,
    /// Most held-out conversations per file (keeps evaluation quick on large files).
    #[serde(default = "default_val_max")]
    pub val_max_per_file: usize,
    /// Skip invalid lines and count them, instead of stopping at the first.
    #[serde(default)]
    pub skip_invalid: bool,
}

fn default_val() -> f64 {
    0.05
}

fn default_val_max() -> usize {
    200
}
