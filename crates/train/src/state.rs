//! Saving training checkpoints into a run directory (its layout and `train_state.json` are
//! `ember_formats::run`): the model checkpoint plus `optimizer.safetensors`,
//! `train_state.json` and the resolved `run_config.toml`, written atomically, and the
//! retention of the newest `keep_last`.

use std::path::{Path, PathBuf};

use ember_formats::TrainState;
use ember_formats::run::{checkpoint_dir, checkpoints_dir, list};
use ember_model::checkpoint;
use ember_model::{Gpt, GptConfig};
use ember_tokenizer::Tokenizer;

use crate::error::{Result, TrainError};
use crate::optim::Optimizer;

/// What `save` writes besides the model.
pub struct SaveParts<'a> {
    /// Optimizer state.
    pub optim: &'a Optimizer,
    /// Loop state.
    pub state: &'a TrainState,
    /// The resolved run config.
    pub config_toml: &'a str,
}

/// Writes checkpoint `step` of `run` atomically, then deletes all but the newest `keep_last`
/// complete checkpoints (the new one is never deleted). With `abort_before_rename` the process
/// aborts after writing the files but before the rename, as a crash there would (fault test).
pub fn save(
    run: &Path,
    model: &Gpt,
    config: &GptConfig,
    tokenizer: &Tokenizer,
    parts: SaveParts<'_>,
    keep_last: usize,
    abort_before_rename: bool,
) -> Result<PathBuf> {
    let dir = checkpoint_dir(run, parts.state.step);
    let state_json = serde_json::to_string_pretty(parts.state).unwrap_or_default() + "\n";
    let extra = vec![
        ("optimizer.safetensors".to_string(), parts.optim.to_bytes()?),
        ("train_state.json".to_string(), state_json.into_bytes()),
        (
            "run_config.toml".to_string(),
            parts.config_toml.as_bytes().to_vec(),
        ),
    ];
    if abort_before_rename {
        let tmp = checkpoints_dir(run).join(format!(
            ".step-{:08}.tmp.{}",
            parts.state.step,
            std::process::id()
        ));
        let _ = checkpoint::save(&tmp, model, config, tokenizer, &extra);
        eprintln!(
            "fault injection: aborting during the save of step {}",
            parts.state.step
        );
        std::process::abort();
    }
    checkpoint::save(&dir, model, config, tokenizer, &extra)?;
    retain(run, keep_last, &dir);
    Ok(dir)
}

/// Deletes older checkpoints beyond the newest `keep_last`, never `keep`.
fn retain(run: &Path, keep_last: usize, keep: &Path) {
    let all = list(run);
    let n = all.len();
    for (_, dir) in all.into_iter().take(n.saturating_sub(keep_last.max(1))) {
        if dir != keep
            && let Err(e) = std::fs::remove_dir_all(&dir)
        {
            eprintln!(
                "warning: could not delete old checkpoint {}: {e}",
                dir.display()
            );
        }
    }
}

/// Differences between a checkpoint's model config and the current one, as
/// `field: checkpoint X, now Y` (empty when equal).
pub fn config_diff(saved: &GptConfig, now: &GptConfig) -> Vec<String> {
    let a = serde_json::to_value(saved).unwrap_or_default();
    let b = serde_json::to_value(now).unwrap_or_default();
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return vec![];
    };
    a.iter()
        .filter(|(k, v)| b.get(*k) != Some(v))
        .map(|(k, v)| {
            format!(
                "model.{k}: checkpoint {v}, now {}",
                b.get(k).cloned().unwrap_or_default()
            )
        })
        .collect()
}

/// Error for an invalid resume request.
pub fn resume_error(path: &Path, reason: impl Into<String>) -> TrainError {
    TrainError::Resume {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}
