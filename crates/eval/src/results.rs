//! `results.json`: every task's result per checkpoint, machine-readable and versioned.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};
use crate::tasks::choice::ChoiceResult;
use crate::tasks::generation::{MathResult, SamplesResult};
use crate::tasks::reply::GainResult;
use crate::tasks::text::TextResult;

/// Format name in `results.json`.
pub const RESULTS_FORMAT: &str = "ember-eval-results";
/// Version this build writes and reads.
pub const RESULTS_VERSION: u32 = 1;

/// One task's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TaskResult {
    /// `text` and `sft-loss`.
    Text(TextResult),
    /// `hellaswag`, `arc-easy`, `blimp`.
    Choice(ChoiceResult),
    /// `gsm8k`.
    Math(MathResult),
    /// `samples`.
    Samples(SamplesResult),
    /// `context-gain`.
    Gain(GainResult),
}

/// Everything measured on one checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointResult {
    /// The checkpoint directory.
    pub checkpoint: String,
    /// Its training step, when it was saved by a run.
    pub step: Option<u64>,
    /// Tokens trained on by then.
    pub tokens_seen: Option<u64>,
    /// Parameters.
    pub params: u64,
    /// Task name → result.
    pub tasks: BTreeMap<String, TaskResult>,
    /// Task name → seconds it took (kept apart so repeated runs compare equal on `tasks`).
    pub seconds: BTreeMap<String, f64>,
    /// Task name → items scored per second.
    pub items_per_s: BTreeMap<String, f64>,
}

/// A whole `results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// [`RESULTS_FORMAT`].
    pub format: String,
    /// [`RESULTS_VERSION`].
    pub version: u32,
    /// The Ember version that wrote it.
    pub ember_version: String,
    /// The device evaluated on, as announced.
    pub device: String,
    /// Checkpoints, in step order for a run.
    pub checkpoints: Vec<CheckpointResult>,
}

impl Results {
    /// An empty result set for `device`.
    pub fn new(device: impl Into<String>) -> Results {
        Results {
            format: RESULTS_FORMAT.into(),
            version: RESULTS_VERSION,
            ember_version: env!("CARGO_PKG_VERSION").into(),
            device: device.into(),
            checkpoints: Vec::new(),
        }
    }

    /// Writes atomically as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| EvalError::Results {
            path: path.to_path_buf(),
            reason: format!("cannot serialise: {e}"),
        })?;
        ember_files::write_atomic(path, (text + "\n").as_bytes())?;
        Ok(())
    }

    /// Reads and checks format and version.
    pub fn load(path: &Path) -> Result<Results> {
        let bad = |reason: String| EvalError::Results {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, "read", e))?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| bad(format!("damaged JSON: {e}")))?;
        if v.get("format").and_then(|f| f.as_str()) != Some(RESULTS_FORMAT) {
            return Err(bad(format!(
                "format is {}, expected \"{RESULTS_FORMAT}\" (is this a file written by `ember eval`?)",
                v.get("format").cloned().unwrap_or_default()
            )));
        }
        if v.get("version").and_then(|f| f.as_u64()) != Some(RESULTS_VERSION as u64) {
            return Err(bad(format!(
                "version {} is not supported; this build reads version {RESULTS_VERSION}",
                v.get("version").cloned().unwrap_or_default()
            )));
        }
        serde_json::from_value(v).map_err(|e| bad(format!("unexpected content: {e}")))
    }
}
