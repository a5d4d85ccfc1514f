//! Run configs: TOML files read into typed structs that reject unknown keys, with
//! `--set section.key=value` overrides applied on top.
//!
//! The file is first parsed on its own, so a typo is reported with the file's line and column;
//! then the overrides are applied and the result is parsed again, so a bad override is
//! reported with the `--set` that caused it.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// Reads `path` as TOML into `T`, applying `sets` (`section.key=value`) on top.
pub fn load<T: DeserializeOwned>(path: &Path, sets: &[String]) -> Result<T> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::Config {
        origin: origin.clone(),
        message: format!("cannot read: {e}"),
    })?;
    from_str_with_sets(&text, &origin, sets)
}

/// Like [`load`], from TOML text; `origin` names the text in errors.
pub fn from_str_with_sets<T: DeserializeOwned>(
    text: &str,
    origin: &str,
    sets: &[String],
) -> Result<T> {
    let bad = |message: String| TrainError::Config {
        origin: origin.to_string(),
        message,
    };
    toml::from_str::<T>(text).map_err(|e| bad(e.to_string().trim_end().to_string()))?;
    if sets.is_empty() {
        return toml::from_str::<T>(text).map_err(|e| bad(e.to_string()));
    }
    let mut table: toml::Table = toml::from_str(text).map_err(|e| bad(e.to_string()))?;
    for set in sets {
        apply_set(&mut table, set)?;
    }
    T::deserialize(toml::Value::Table(table)).map_err(|e| TrainError::Config {
        origin: format!("{origin} with --set {}", sets.join(" --set ")),
        message: e.to_string().trim_end().to_string(),
    })
}

/// Applies one `section.key=value` override. The value is read as a TOML value (`0.1`,
/// `true`, `"text"`, `[1, 2]`), and as a plain string when it is not one (`decay=linear`).
pub fn apply_set(table: &mut toml::Table, set: &str) -> Result<()> {
    let bad = |message: String| TrainError::Config {
        origin: format!("--set {set}"),
        message,
    };
    let Some((key, raw)) = set.split_once('=') else {
        return Err(bad("expected KEY=VALUE, e.g. train.lr=3e-4".into()));
    };
    let key = key.trim();
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(bad(format!("key {key:?} is not of the form section.key")));
    }
    let value = match toml::from_str::<toml::Table>(&format!("v = {}", raw.trim())) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or(toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.trim().to_string()),
    };
    let (last, sections) = parts.split_last().ok_or_else(|| bad("empty key".into()))?;
    let mut cur = table;
    for part in sections {
        let entry = cur
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = match entry {
            toml::Value::Table(t) => t,
            other => {
                return Err(bad(format!(
                    "{part} is a {}, not a section",
                    other.type_str()
                )));
            }
        };
    }
    cur.insert(last.to_string(), value);
    Ok(())
}

/// Serialises a resolved config for printing and saving with checkpoints.
pub fn to_toml<T: Serialize>(config: &T) -> String {
    toml::to_string_pretty(config).unwrap_or_else(|e| format!("# config not serialisable: {e}\n"))
}

/// `[run]` of every training config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// Run directory: config, metrics.jsonl, loss.svg, checkpoints/.
    pub out_dir: std::path::PathBuf,
}

/// How the learning rate falls after warmup.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Decay {
    /// Half a cosine from `lr` down to `min_lr` (nanoGPT, Chinchilla).
    Cosine,
    /// A straight line from `lr` down to `min_lr`.
    Linear,
    /// Stay at `lr`.
    Constant,
}

/// The `[train]` section: optimizer, schedule, batch, cadence. Shared by pretraining and SFT.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSection {
    /// Sequences per micro-batch (one forward/backward).
    pub batch_size: usize,
    /// Tokens per optimizer step; gradients of `total_batch_tokens / (batch_size × context)`
    /// micro-batches are accumulated. Unset: one micro-batch per step.
    pub total_batch_tokens: Option<usize>,
    /// Optimizer steps in the run.
    pub max_steps: u64,
    /// Peak learning rate.
    pub lr: f64,
    /// Learning rate at the end of the decay.
    pub min_lr: f64,
    /// Steps of linear warmup from `lr / (warmup_steps + 1)` to `lr`.
    pub warmup_steps: u64,
    /// Shape of the decay after warmup.
    pub decay: Decay,
    /// Decoupled weight decay, applied to weight matrices only (see `optim`).
    pub weight_decay: f64,
    /// AdamW β₁.
    pub beta1: f64,
    /// AdamW β₂.
    pub beta2: f64,
    /// AdamW ε.
    pub eps: f64,
    /// Clip the global gradient norm (over all parameters) to this; 0 turns clipping off.
    pub grad_clip: f64,
    /// Seed for initialisation, batch sampling and dropout.
    pub seed: u64,
    /// Evaluate every this many steps (and at the start and the end); 0 = only at the end.
    pub eval_every: u64,
    /// Held-out tokens per evaluation (0 = the whole held-out split).
    pub eval_tokens: usize,
    /// Save a checkpoint every this many steps (and at the end); 0 = only at the end.
    pub save_every: u64,
    /// Checkpoints kept; older ones are deleted after a newer one is complete.
    pub keep_last: usize,
    /// Print a progress line every this many steps when the output is not a terminal.
    pub log_every: u64,
    /// Steps with a non-finite loss or gradient norm that may be skipped before the run stops.
    pub max_skipped_steps: u64,
    /// Peak FLOP/s of the device for the MFU estimate; unset: an estimate for CPUs
    /// (80 GFLOP/s per core, AVX2 FMA at 2.5 GHz) and no MFU on GPUs.
    pub peak_flops: Option<f64>,
}

impl Default for TrainSection {
    fn default() -> Self {
        TrainSection {
            batch_size: 12,
            total_batch_tokens: None,
            max_steps: 1000,
            lr: 6e-4,
            min_lr: 6e-5,
            warmup_steps: 100,
            decay: Decay::Cosine,
            weight_decay: 0.1,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            grad_clip: 1.0,
            seed: 1337,
            eval_every: 250,
            eval_tokens: 65_536,
            save_every: 500,
            keep_last: 2,
            log_every: 10,
            max_skipped_steps: 10,
            peak_flops: None,
        }
    }
}

impl TrainSection {
    /// Checks ranges and returns the number of micro-batches per step for `context` tokens
    /// per sequence.
    // The negated comparisons are deliberate: they reject NaN, which every `<` test passes.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    pub fn validate(&self, context: usize) -> Result<usize> {
        let bad = |field: &str, value: String, expected: &str| TrainError::Config {
            origin: "[train]".into(),
            message: format!("{field} = {value}: expected {expected}"),
        };
        if self.batch_size == 0 {
            return Err(bad("batch_size", "0".into(), "at least 1"));
        }
        if self.max_steps == 0 {
            return Err(bad("max_steps", "0".into(), "at least 1"));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(bad("lr", self.lr.to_string(), "a positive number"));
        }
        if !(self.min_lr >= 0.0 && self.min_lr <= self.lr) {
            return Err(bad("min_lr", self.min_lr.to_string(), "between 0 and lr"));
        }
        if self.warmup_steps > self.max_steps {
            return Err(bad(
                "warmup_steps",
                self.warmup_steps.to_string(),
                "at most max_steps",
            ));
        }
        for (f, v) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&v) {
                return Err(bad(f, v.to_string(), "in [0, 1)"));
            }
        }
        if !(self.eps > 0.0) {
            return Err(bad("eps", self.eps.to_string(), "a positive number"));
        }
        if !(self.weight_decay >= 0.0) || !(self.grad_clip >= 0.0) {
            return Err(bad(
                "weight_decay/grad_clip",
                format!("{}/{}", self.weight_decay, self.grad_clip),
                "0 or more",
            ));
        }
        if self.keep_last == 0 {
            return Err(bad(
                "keep_last",
                "0".into(),
                "at least 1 (the newest checkpoint is never deleted)",
            ));
        }
        let per_micro = self.batch_size * context;
        match self.total_batch_tokens {
            None => Ok(1),
            Some(t) if t >= per_micro && t % per_micro == 0 => Ok(t / per_micro),
            Some(t) => Err(bad(
                "total_batch_tokens",
                t.to_string(),
                &format!(
                    "a positive multiple of batch_size × context = {} × {context} = {per_micro}",
                    self.batch_size
                ),
            )),
        }
    }
}
