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

/// A config value out of range: its dotted key (`train.batch_size`), the value and what is
/// allowed. [`ConfigSource::error`] turns it into an error naming the line that set it.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// `section.key`, or `section.list[i].key` for a table in an array.
    pub key: String,
    /// The bad value, as written.
    pub value: String,
    /// What is allowed.
    pub expected: String,
}

impl FieldError {
    /// A field error.
    pub fn new(key: impl Into<String>, value: impl ToString, expected: impl Into<String>) -> Self {
        FieldError {
            key: key.into(),
            value: value.to_string(),
            expected: expected.into(),
        }
    }
}

/// A config whose every numeric field and enum can be checked on its own, at load time,
/// before anything is read or written.
pub trait Validate {
    /// The first field out of range.
    fn check(&self) -> std::result::Result<(), FieldError>;
}

/// Where a config came from (file text and `--set` overrides), so an out-of-range value is
/// reported at the line, or the `--set`, that gave it.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    /// The file's path as given.
    pub origin: String,
    text: String,
    sets: Vec<String>,
}

impl ConfigSource {
    /// A source for `text` read from `origin`, with `sets` applied on top.
    pub fn new(origin: impl Into<String>, text: impl Into<String>, sets: &[String]) -> Self {
        ConfigSource {
            origin: origin.into(),
            text: text.into(),
            sets: sets.to_vec(),
        }
    }

    /// `FILE:LINE` of the line that sets `key` (`section.key`; an index such as
    /// `data.files[1].epochs` finds the second `[[data.files]]` table), the `--set` that
    /// overrides it, or `FILE (default)` when neither sets it.
    pub fn locate(&self, key: &str) -> String {
        self.locate_value(key, "")
    }

    /// [`ConfigSource::locate`], preferring, where several lines set the field, the one that
    /// sets it to `value`.
    pub fn locate_value(&self, key: &str, value: &str) -> String {
        let plain = strip_indices(key);
        // A `--set` of the field itself, or of a table or array that holds it.
        if let Some(set) = self.sets.iter().rev().find(|s| {
            s.split_once('=').is_some_and(|(k, _)| {
                let k = k.trim();
                plain == k || plain.starts_with(&format!("{k}."))
            })
        }) {
            return format!("--set {set}");
        }
        match self.line_of(key, value) {
            Some(line) => format!("{}:{line}", self.origin),
            None => format!("{} (default)", self.origin),
        }
    }

    fn line_of(&self, key: &str, value: &str) -> Option<usize> {
        // `section.sub[i].field` → the table header `section.sub`, its i-th occurrence, `field`.
        let (table, field) = key.rsplit_once('.')?;
        let (table, index) = match table.split_once('[') {
            Some((t, rest)) => (t, rest.trim_end_matches(']').parse::<usize>().ok()?),
            None => (table, 0),
        };
        let mut seen: Option<usize> = None;
        let mut inside = false;
        for (i, raw) in self.text.lines().enumerate() {
            let line = raw.trim();
            if let Some(h) = line.strip_prefix('[') {
                let name = h
                    .trim_start_matches('[')
                    .split(']')
                    .next()
                    .unwrap_or("")
                    .trim();
                inside = name == table;
                if inside {
                    seen = Some(seen.map_or(0, |n| n + 1));
                }
                continue;
            }
            if inside && seen == Some(index) {
                let k = line
                    .split('=')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .trim_matches('"');
                if line.contains('=') && k == field {
                    return Some(i + 1);
                }
            }
        }
        // Inline tables (`files = [{ path = "a" }, { path = "b", epochs = -1 }]`): a line that
        // sets the field to the value, else the index-th line that sets it.
        let lines: Vec<usize> = self
            .text
            .lines()
            .enumerate()
            .filter(|(_, l)| sets_field(l, field, ""))
            .map(|(i, _)| i + 1)
            .collect();
        let with_value = self
            .text
            .lines()
            .enumerate()
            .find(|(_, l)| !value.is_empty() && sets_field(l, field, value))
            .map(|(i, _)| i + 1);
        with_value.or_else(|| lines.get(index).copied())
    }

    /// The error for a field out of range, at its line.
    pub fn error(&self, e: FieldError) -> TrainError {
        TrainError::Config {
            origin: self.locate_value(&e.key, &e.value),
            message: format!("{} = {}: expected {}", e.key, e.value, e.expected),
        }
    }
}

/// True when `line` has `field = value…` with `field` not part of a longer name (any value
/// when `value` is empty).
fn sets_field(line: &str, field: &str, value: &str) -> bool {
    let line = line.split('#').next().unwrap_or("");
    line.match_indices(field).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + field.len()..].trim_start();
        before.is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '.'))
            && after.starts_with('=')
            && !after.starts_with("==")
            && after[1..].trim_start().starts_with(value)
    })
}

fn strip_indices(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut depth = 0;
    for c in key.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            c if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Reads `path` as TOML into `T`, applying `sets` (`section.key=value`) on top, and checks
/// every field's range ([`Validate`]); errors name the file and line, or the `--set`.
pub fn load<T: DeserializeOwned + Validate>(path: &Path, sets: &[String]) -> Result<T> {
    load_with_source(path, sets).map(|(t, _)| t)
}

/// [`load`], also returning the source so that later checks (those needing the model's
/// shape) can still point at the line.
pub fn load_with_source<T: DeserializeOwned + Validate>(
    path: &Path,
    sets: &[String],
) -> Result<(T, ConfigSource)> {
    let origin = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| TrainError::Config {
        origin: origin.clone(),
        message: format!("cannot read: {e}"),
    })?;
    let text = ember_files::utf8(path, bytes)?;
    let config: T = from_str_with_sets(&text, &origin, sets)?;
    let source = ConfigSource::new(origin, text, sets);
    config.check().map_err(|e| source.error(e))?;
    Ok((config, source))
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
    /// Warmup-stable-decay (trapezoidal): stay at `lr`, then cool down to `min_lr` over the last
    /// `cooldown_fraction` of the steps after warmup, in the `cooldown` shape.
    Wsd,
}

/// The shape of a WSD schedule's cool-down.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Cooldown {
    /// A straight line from `lr` to `min_lr`.
    Linear,
    /// `1 − √x` of the way (falls fast at first), as in Hägele et al. 2024.
    Sqrt,
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
    /// With `decay = "wsd"`: the share of the steps after warmup spent cooling down.
    pub cooldown_fraction: f64,
    /// With `decay = "wsd"`: the cool-down's shape.
    pub cooldown: Cooldown,
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
    /// Peak FLOP/s of the device for the MFU estimate; unset: derived from the CPU's vector
    /// width and clock (`peak::cpu_peak`), and no MFU on GPUs.
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
            cooldown_fraction: 0.2,
            cooldown: Cooldown::Linear,
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
    /// Checks every field that does not depend on the model (ranges, NaN, ordering).
    // The negated comparisons are deliberate: they reject NaN, which every `<` test passes.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    pub fn check_fields(&self) -> std::result::Result<(), FieldError> {
        let bad = |field: &str, value: String, expected: &str| {
            Err(FieldError::new(format!("train.{field}"), value, expected))
        };
        if !(1..=1 << 16).contains(&self.batch_size) {
            return bad("batch_size", self.batch_size.to_string(), "1 to 65536");
        }
        if self.max_steps == 0 {
            return bad("max_steps", "0".into(), "at least 1");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("lr", self.lr.to_string(), "a positive number");
        }
        if !(self.min_lr >= 0.0 && self.min_lr <= self.lr) {
            return bad("min_lr", self.min_lr.to_string(), "between 0 and lr");
        }
        if !(self.cooldown_fraction > 0.0 && self.cooldown_fraction <= 1.0) {
            return bad(
                "cooldown_fraction",
                self.cooldown_fraction.to_string(),
                "a share above 0 and at most 1",
            );
        }
        if self.warmup_steps > self.max_steps {
            return bad(
                "warmup_steps",
                self.warmup_steps.to_string(),
                "at most max_steps",
            );
        }
        for (f, v) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&v) {
                return bad(f, v.to_string(), "in [0, 1)");
            }
        }
        if !(self.eps > 0.0 && self.eps.is_finite()) {
            return bad("eps", self.eps.to_string(), "a positive number");
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return bad("weight_decay", self.weight_decay.to_string(), "0 or more");
        }
        if !(self.grad_clip >= 0.0 && self.grad_clip.is_finite()) {
            return bad("grad_clip", self.grad_clip.to_string(), "0 (off) or more");
        }
        if self.keep_last == 0 {
            return bad(
                "keep_last",
                "0".into(),
                "at least 1 (the newest checkpoint is never deleted)",
            );
        }
        if let Some(p) = self.peak_flops.filter(|p| !(*p > 0.0 && p.is_finite())) {
            return bad("peak_flops", p.to_string(), "a positive number of FLOP/s");
        }
        if self.total_batch_tokens == Some(0) {
            return bad(
                "total_batch_tokens",
                "0".into(),
                "a positive multiple of batch_size × context",
            );
        }
        Ok(())
    }

    /// Checks the fields and that `total_batch_tokens` is a whole number of micro-batches of
    /// `context` tokens per sequence; returns the micro-batches per step.
    pub fn check(&self, context: usize) -> std::result::Result<usize, FieldError> {
        self.check_fields()?;
        let per_micro = self.batch_size.checked_mul(context);
        match (self.total_batch_tokens, per_micro) {
            (None, _) => Ok(1),
            (Some(t), Some(p)) if t >= p && t.is_multiple_of(p) => Ok(t / p),
            (Some(t), _) => Err(FieldError::new(
                "train.total_batch_tokens",
                t,
                format!(
                    "a positive multiple of batch_size × context = {} × {context} = {}",
                    self.batch_size,
                    per_micro.map_or_else(|| "too many".to_string(), |p| p.to_string())
                ),
            )),
        }
    }

    /// [`TrainSection::check`] as an error of this crate (for callers without the config's
    /// source; runs started from a file report the line instead).
    pub fn validate(&self, context: usize) -> Result<usize> {
        self.check(context).map_err(|e| TrainError::Config {
            origin: "[train]".into(),
            message: format!("{} = {}: expected {}", e.key, e.value, e.expected),
        })
    }
}
