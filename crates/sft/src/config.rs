//! The SFT config file: `[run]`, `[init]`, `[data]`, `[train]` (see `configs/sft.toml`).

use std::path::PathBuf;

use ember_train::TrainSection;
use ember_train::config::FieldError;
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
    /// A reply-ranking term beside the SFT loss (off unless `weight` > 0).
    #[serde(
        default,
        skip_serializing_if = "crate::contrast::ContrastSection::is_off"
    )]
    pub contrast: crate::contrast::ContrastSection,
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
    /// Files of held-out conversations, every one used for evaluation and none for training:
    /// a split made once, before any stage (e.g. before mid-training), stays the same here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub val_files: Vec<PathBuf>,
    /// Fraction of each training file's conversations held out for evaluation (seeded, by
    /// conversation); default 0.05, or 0 when `val_files` are given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_fraction: Option<f64>,
    /// Most held-out conversations per file (keeps evaluation quick on large files).
    #[serde(default = "default_val_max")]
    pub val_max_per_file: usize,
    /// Skip invalid lines and count them, instead of stopping at the first.
    #[serde(default)]
    pub skip_invalid: bool,
    /// Pack several conversations into each row (attention kept inside each) instead of
    /// padding one per row: the same steps then train on more conversations.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pack: bool,
    /// Conversations longer than the context: `"split"` into several rows so that every reply
    /// is trained (the default), or `"latest"`: keep only the latest exchanges that fit.
    #[serde(default)]
    pub long_conversations: ember_formats::dialogue::LongConversations,
}

impl DataSection {
    /// The fraction of each training file held out.
    pub fn val_fraction(&self) -> f64 {
        self.val_fraction
            .unwrap_or(if self.val_files.is_empty() { 0.05 } else { 0.0 })
    }
}

fn default_val_max() -> usize {
    200
}

// The negated comparisons are deliberate: they reject NaN, which every `<` test passes.
#[allow(clippy::neg_cmp_op_on_partial_ord)]
impl ember_train::config::Validate for SftConfig {
    fn check(&self) -> Result<(), FieldError> {
        self.train.check_fields()?;
        let d = &self.data;
        if d.files.is_empty() {
            return Err(FieldError::new(
                "data.files",
                "[]",
                "at least one [[data.files]] table with a path",
            ));
        }
        for (i, f) in d.files.iter().enumerate() {
            if !(f.epochs > 0.0 && f.epochs <= 1000.0) {
                return Err(FieldError::new(
                    format!("data.files[{i}].epochs"),
                    f.epochs,
                    "a number above 0 and at most 1000 (fractions take a seeded subset)",
                ));
            }
        }
        for (i, v) in d.val_files.iter().enumerate() {
            if d.files.iter().any(|f| f.path == *v) {
                return Err(FieldError::new(
                    format!("data.val_files[{i}]"),
                    v.display(),
                    "a file not also in data.files (its conversations would be trained on)",
                ));
            }
        }
        if !(d.val_fraction() >= 0.0 && d.val_fraction() < 1.0) {
            return Err(FieldError::new(
                "data.val_fraction",
                d.val_fraction(),
                "a fraction from 0 (no held-out conversations) to below 1",
            ));
        }
        self.contrast.check()?;
        let s = &self.sample;
        if s.max_new_tokens == 0 || s.max_new_tokens > 1 << 20 {
            return Err(FieldError::new(
                "sample.max_new_tokens",
                s.max_new_tokens,
                "1 to 1048576",
            ));
        }
        if !(s.temperature >= 0.0 && s.temperature <= 10.0) {
            return Err(FieldError::new(
                "sample.temperature",
                s.temperature,
                "a number from 0 (greedy) to 10",
            ));
        }
        Ok(())
    }
}
