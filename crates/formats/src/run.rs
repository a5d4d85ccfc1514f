//! A run directory: `config.toml`, `metrics.jsonl`, `loss.svg`, `system.json`, and
//! `checkpoints/step-NNNNNNNN/` — each a model checkpoint plus `optimizer.safetensors`,
//! `train_state.json` and the resolved `run_config.toml`, all listed in its manifest and
//! written atomically. A fine-tuning run also keeps the conversations it held out
//! (`heldout.json`), so an evaluation scores exactly those.

use std::path::{Path, PathBuf};

use ember_model::checkpoint;
use ember_tokenizer::Tokenizer;
use serde::{Deserialize, Serialize};

use crate::dialogue::Conversation;
use crate::error::{FormatError, Result};

/// Format name of `train_state.json`.
pub const STATE_FORMAT: &str = "ember-train-state";

/// Version of `train_state.json` this build writes; it reads 1 and 2.
pub const STATE_VERSION: u32 = 2;

/// What a run trains: decides how its samples are prompted and how a report names it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Next-token pretraining (also continued pretraining from a checkpoint).
    Pretrain,
    /// Supervised fine-tuning on dialogue.
    Sft,
}

impl Stage {
    /// How a report names the stage.
    pub fn describe(self) -> &'static str {
        match self {
            Stage::Pretrain => "pretraining",
            Stage::Sft => "supervised fine-tuning",
        }
    }
}

/// Everything besides weights and optimizer moments that a resume needs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainState {
    /// Always [`STATE_FORMAT`].
    pub format: String,
    /// Format version ([`STATE_VERSION`]; version 1 had no `stage`).
    pub version: u32,
    /// What the run trains. Version-1 files do not say; [`read_state`] fills it in from the
    /// checkpoint's config (an SFT config is the one with a list of dialogue files).
    #[serde(default = "unknown_stage")]
    pub stage: Stage,
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
    /// The state at the start of a fresh run of `stage`.
    pub fn fresh(stage: Stage, seed: u64, micro_batches: usize, tokenizer: &Tokenizer) -> Self {
        TrainState {
            format: STATE_FORMAT.into(),
            version: STATE_VERSION,
            stage,
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

fn unknown_stage() -> Stage {
    Stage::Pretrain
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

/// Reads `train_state.json` from verified checkpoint files (version 1 or 2).
pub fn read_state(files: &checkpoint::VerifiedFiles, dir: &Path) -> Result<TrainState> {
    let path = dir.join("train_state.json");
    let mut state: TrainState = serde_json::from_slice(files.get("train_state.json"))
        .map_err(|e| FormatError::damaged(&path, format!("damaged train_state.json: {e}")))?;
    if state.format != STATE_FORMAT || !(1..=STATE_VERSION).contains(&state.version) {
        return Err(FormatError::damaged(
            &path,
            format!(
                "format {:?} version {} is not {STATE_FORMAT:?} version 1 to {STATE_VERSION}",
                state.format, state.version
            ),
        ));
    }
    if state.version == 1 {
        state.stage = stage_of_v1(files.get("run_config.toml"));
    }
    Ok(state)
}

/// The stage of a run saved before `train_state.json` recorded it: fine-tuning configs are
/// the ones whose `[data]` lists dialogue `files` (a pretraining `[data]` has only `dir`).
fn stage_of_v1(run_config: &[u8]) -> Stage {
    let table = std::str::from_utf8(run_config)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok());
    let sft = table
        .as_ref()
        .and_then(|t| t.get("data"))
        .and_then(|d| d.get("files"))
        .is_some();
    if sft { Stage::Sft } else { Stage::Pretrain }
}

/// The state of checkpoint `dir` (verified), or `None` when it has no readable one.
pub fn state_of(dir: &Path) -> Option<TrainState> {
    let files = checkpoint::verify(dir).ok()?;
    read_state(&files, dir).ok()
}

/// The run directory a checkpoint belongs to (`RUN` of `RUN/checkpoints/step-N`).
pub fn run_of(checkpoint: &Path) -> Option<&Path> {
    let parent = checkpoint.parent()?;
    (parent.file_name()? == "checkpoints").then(|| parent.parent())?
}

/// Deletes what a run wrote into `dir` (checkpoints, metrics, plot, config, sampled replies),
/// nothing else: `--force` of a new run in an old run directory.
pub fn clear_run(dir: &Path) -> Result<()> {
    let ck = checkpoints_dir(dir);
    if ck.exists() {
        std::fs::remove_dir_all(&ck).map_err(|e| FormatError::io(&ck, "delete", e))?;
    }
    for f in [
        "metrics.jsonl",
        "loss.svg",
        "config.toml",
        "replies.jsonl",
        HELD_OUT_FILE,
    ] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    Ok(())
}

/// The held-out conversations of a fine-tuning run, in its directory.
pub const HELD_OUT_FILE: &str = "heldout.json";
/// `format` of [`HELD_OUT_FILE`].
pub const HELD_OUT_FORMAT: &str = "ember-heldout";

/// One dialogue file of a fine-tuning run: which of its conversations were held out.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HeldOutSource {
    /// The file as the config named it.
    pub path: PathBuf,
    /// SHA-256 of its bytes when the run read it.
    pub sha256: String,
    /// 1-based lines of its held-out conversations.
    pub lines: Vec<usize>,
}

/// `RUN/heldout.json`: the conversations a fine-tuning run held out, written when it starts,
/// so that evaluating its held-out loss never re-derives the split from files that may have
/// changed since.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HeldOut {
    /// Always [`HELD_OUT_FORMAT`].
    pub format: String,
    /// Format version (1).
    pub version: u32,
    /// Where they came from.
    pub sources: Vec<HeldOutSource>,
    /// The conversations, as `{"messages": [...]}` objects, in the run's order.
    pub conversations: Vec<serde_json::Value>,
}

impl HeldOut {
    /// The record of `convs` held out of `sources`.
    pub fn new(sources: Vec<HeldOutSource>, convs: &[Conversation]) -> Self {
        HeldOut {
            format: HELD_OUT_FORMAT.into(),
            version: 1,
            sources,
            conversations: convs
                .iter()
                .map(|c| {
                    let msgs: Vec<serde_json::Value> = c
                        .messages
                        .iter()
                        .map(|m| serde_json::json!({"role": m.role.as_str(), "content": m.content}))
                        .collect();
                    serde_json::json!({"messages": msgs})
                })
                .collect(),
        }
    }

    /// Writes `RUN/heldout.json` atomically.
    pub fn save(&self, run: &Path) -> Result<()> {
        let text = serde_json::to_string(self).unwrap_or_default() + "\n";
        Ok(ember_files::write_atomic(
            &run.join(HELD_OUT_FILE),
            text.as_bytes(),
        )?)
    }

    /// Reads `RUN/heldout.json` and its conversations (validated as dialogue lines).
    pub fn load(run: &Path) -> Result<(HeldOut, Vec<Conversation>)> {
        let path = run.join(HELD_OUT_FILE);
        let text = ember_files::read_utf8(&path)?;
        let h: HeldOut = serde_json::from_str(&text)
            .map_err(|e| FormatError::damaged(&path, format!("damaged JSON: {e}")))?;
        if h.format != HELD_OUT_FORMAT || h.version != 1 {
            return Err(FormatError::damaged(
                &path,
                format!(
                    "format {:?} version {} is not {HELD_OUT_FORMAT:?} version 1",
                    h.format, h.version
                ),
            ));
        }
        let mut convs = Vec::with_capacity(h.conversations.len());
        for (i, v) in h.conversations.iter().enumerate() {
            let messages = crate::dialogue::parse_line(&v.to_string()).map_err(|reason| {
                FormatError::damaged(&path, format!("conversations[{i}]: {reason}"))
            })?;
            convs.push(Conversation {
                messages,
                line: i + 1,
            });
        }
        Ok((h, convs))
    }
}
