//! Run configs: TOML files read into typed structs that reject unknown keys, with
//! `--set section.key=value` overrides applied on top.
//!
//! The file is first parsed on its own, so a typo is reported with the file's line and column;
//! then the overrides are applied and the result is parsed again, so a bad override is
//! reported with the `--set` that caused it.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

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

pub use crate::sections::{
    Cooldown, Decay, MuonNs, OptimizerKind, Precision, RunSection, TrainSection,
};
