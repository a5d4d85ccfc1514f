//! Training checkpoints: the model checkpoint directory (model issue) plus
//! `optimizer.safetensors`, `train_state.json` and the resolved `run_config.toml`, all listed
//! in its manifest and written atomically. They live in `RUN/checkpoints/step-NNNNNNNN/`.

use std::path::{Path, PathBuf};

use ember_model::checkpoint;
use ember_model::{Gpt, GptConfig};
use ember_tokenizer::Tokenizer;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};
use crate::optim::AdamW;

/// Format name of `train_state.json`.
pub const STATE_FORMAT: &str = "ember-train-state";

/// Everything besides weights and optimizer moments that a resume needs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainState {
    /// Always [`STATE_FORMAT`].
    pub format: String,
    /// Format version (1).
    pub version: u32,
    /// Optimizer steps done (skipped steps included).
    pub step: u64,
    /// Tokens trained on.
    pub tokens_seen: u64,
    /// Steps skipped for a non-finite loss or gradient.
    pub skipped_steps: u64,
    /// Seconds of training, summed over resumes.
    pub elapsed_s: f64,
    /// The run's seed. Batch sampling and dropout draw from generators seeded with
    /// `(seed, step, micro-batch)`, so the step is the data cursor and the RNG state at once.
    pub seed: u64,
    /// Micro-batches per step when saved.
    pub micro_batches: usize,
    /// SHA-256 of the tokenizer the run trains with.
    pub tokenizer_sha256: String,
}

impl TrainState {
    /// The state at the start of a fresh run.
    pub fn fresh(seed: u64, micro_batches: usize, tokenizer: &Tokenizer) -> Self {
        TrainState {
            format: STATE_FORMAT.into(),
            version: 1,
            step: 0,
            tokens_seen: 0,
            skipped_steps: 0,
            elapsed_s: 0.0,
            seed,
            micro_batches,
            tokenizer_sha256: tokenizer.fingerprint(),
        }
    }
}

/// `RUN/checkpoints`.
pub fn checkpoints_dir(run: &Path) -> PathBuf {
    run.join("checkpoints")
}

/// `RUN/checkpoints/step-NNNNNNNN`.
pub fn checkpoint_dir(run: &Path, step: u64) -> PathBuf {
    checkpoints_dir(run).join(format!("step-{step:08}"))
}

/// Checkpoint directories of a run that have a manifest, by step (not yet verified).
pub fn list(run: &Path) -> Vec<(u64, PathBuf)> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(checkpoints_dir(run)) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(step) = name
                .strip_prefix("step-")
                .and_then(|s| s.parse::<u64>().ok())
                && e.path().join("manifest.json").is_file()
            {
                out.push((step, e.path()));
            }
        }
    }
    out.sort();
    out
}

/// The newest checkpoint of `run` whose files all verify. Damaged newer ones are reported on
/// stderr and passed over; `None` when there is no valid one.
pub fn newest_valid(run: &Path) -> Option<(u64, PathBuf)> {
    for (step, dir) in list(run).into_iter().rev() {
        match checkpoint::verify(&dir) {
            Ok(files) if !files.get("train_state.json").is_empty() => return Some((step, dir)),
            Ok(_) => eprintln!(
                "warning: {} has no train_state.json; skipped",
                dir.display()
            ),
            Err(e) => eprintln!("warning: {e}; trying an older checkpoint"),
        }
    }
    None
}

/// Resolves a path given to `generate`, `sft --init` and the like: a checkpoint directory as
/// is, or a run directory's newest valid checkpoint.
pub fn resolve_checkpoint(path: &Path) -> PathBuf {
    if path.join("manifest.json").is_file() {
        return path.to_path_buf();
    }
    newest_valid(path)
        .map(|(_, d)| d)
        .unwrap_or_else(|| path.to_path_buf())
}

/// What `save` writes besides the model.
pub struct SaveParts<'a> {
    /// Optimizer state.
    pub optim: &'a AdamW,
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

/// Removes temporary directories left by a save that was interrupted.
pub fn clean_interrupted_saves(run: &Path) {
    if let Ok(entries) = std::fs::read_dir(checkpoints_dir(run)) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".step-") && (name.contains(".tmp.") || name.contains(".old.")) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// Reads `train_state.json` from verified checkpoint files.
pub fn read_state(files: &checkpoint::VerifiedFiles, dir: &Path) -> Result<TrainState> {
    let path = dir.join("train_state.json");
    let state: TrainState =
        serde_json::from_slice(files.get("train_state.json")).map_err(|e| TrainError::Resume {
            path: path.clone(),
            reason: format!("damaged train_state.json: {e}"),
        })?;
    if state.format != STATE_FORMAT || state.version != 1 {
        return Err(TrainError::Resume {
            path,
            reason: format!(
                "format {:?} version {} is not {STATE_FORMAT:?} version 1",
                state.format, state.version
            ),
        });
    }
    Ok(state)
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

/// Deletes what a run wrote into `dir` (checkpoints, metrics, plot, config, sampled replies),
/// nothing else: `--force` of a new run in an old run directory.
pub fn clear_run(dir: &Path) -> Result<()> {
    let ck = checkpoints_dir(dir);
    if ck.exists() {
        std::fs::remove_dir_all(&ck).map_err(|e| TrainError::io(&ck, "delete", e))?;
    }
    for f in ["metrics.jsonl", "loss.svg", "config.toml", "replies.jsonl"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    Ok(())
}
