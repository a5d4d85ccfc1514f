//! Reading evaluation sets: JSONL, one item per line. A line that cannot be used is counted
//! and reported as `file:line: reason`; only a missing or unreadable file stops the task.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::error::{EvalError, Result};

/// Items read from a file and the lines that were not usable.
#[derive(Debug, Clone)]
pub struct Loaded<T> {
    /// The file.
    pub path: PathBuf,
    /// Usable items, in file order, with their 1-based line.
    pub items: Vec<(usize, T)>,
    /// `file:line: reason` of every unusable line.
    pub malformed: Vec<String>,
}

/// Where each task's file is found under an eval-data directory.
pub fn task_file(task: &str) -> &'static str {
    match task {
        "hellaswag" => "hellaswag_val.jsonl",
        "arc-easy" => "arc_easy_test.jsonl",
        "blimp" => "blimp_200per.jsonl",
        _ => "gsm8k_test.jsonl",
    }
}

/// The benchmark file a task reads from the eval-data directory; `None` for tasks that read
/// the run's own data (`text`, `sft-loss`) or none (`samples`).
pub fn benchmark_file(task: &str) -> Option<&'static str> {
    matches!(task, "hellaswag" | "arc-easy" | "blimp" | "gsm8k").then(|| task_file(task))
}

/// Reads `path` and converts each non-blank line with `parse`.
pub fn read_jsonl<T>(
    task: &str,
    path: &Path,
    parse: impl Fn(&Value) -> std::result::Result<T, String>,
) -> Result<Loaded<T>> {
    let bytes = std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            EvalError::MissingData {
                task: task.to_string(),
                path: path.to_path_buf(),
                hint: format!(
                    "point --eval-data at the directory holding {} (the full sets are listed in data/README.md; \
                     small slices ship in data/eval-mini)",
                    task_file(task)
                ),
            }
        } else {
            EvalError::io(path, "read", e)
        }
    })?;
    let text = utf8(path, bytes)?;
    let mut out = Loaded {
        path: path.to_path_buf(),
        items: Vec::new(),
        malformed: Vec::new(),
    };
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<Value>(line)
            .map_err(|e| format!("not JSON: {e}"))
            .and_then(|v| parse(&v));
        match parsed {
            Ok(item) => out.items.push((i + 1, item)),
            Err(reason) => out
                .malformed
                .push(format!("{}:{}: {reason}", path.display(), i + 1)),
        }
    }
    if out.items.is_empty() {
        return Err(EvalError::Data {
            path: path.to_path_buf(),
            line: 0,
            reason: format!(
                "no usable item ({} malformed lines{})",
                out.malformed.len(),
                out.malformed
                    .first()
                    .map(|m| format!("; first: {m}"))
                    .unwrap_or_default()
            ),
        });
    }
    Ok(out)
}

/// `bytes` read from `path` as text, or an error naming the line and offset where UTF-8 ends.
pub fn utf8(path: &Path, bytes: Vec<u8>) -> Result<String> {
    Ok(ember_files::utf8(path, bytes)?)
}

/// A string field, non-empty.
pub fn text(v: &Value, key: &str) -> std::result::Result<String, String> {
    match v.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(format!("field \"{key}\" is empty")),
        Some(other) => Err(format!("field \"{key}\" is {other}, expected a string")),
        None => Err(format!("missing field \"{key}\"")),
    }
}

/// A list of non-empty strings with at least two entries.
pub fn choices(v: &Value, key: &str) -> std::result::Result<Vec<String>, String> {
    let list = v
        .get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| format!("missing list \"{key}\""))?;
    let out: Vec<String> = list
        .iter()
        .map(|c| c.as_str().map(str::to_string))
        .collect::<Option<_>>()
        .ok_or_else(|| format!("\"{key}\" has a non-string entry"))?;
    if out.len() < 2 || out.iter().any(|c| c.trim().is_empty()) {
        return Err(format!(
            "\"{key}\" needs at least two non-empty choices, got {out:?}"
        ));
    }
    Ok(out)
}

/// An index into `n` choices (a JSON integer or a string holding one).
pub fn label(v: &Value, key: &str, n: usize) -> std::result::Result<usize, String> {
    let raw = v
        .get(key)
        .ok_or_else(|| format!("missing field \"{key}\""))?;
    let k = raw
        .as_u64()
        .or_else(|| raw.as_str().and_then(|s| s.trim().parse().ok()))
        .ok_or_else(|| format!("\"{key}\" is {raw}, expected a choice index"))?;
    if (k as usize) < n {
        Ok(k as usize)
    } else {
        Err(format!("\"{key}\" is {k} but there are only {n} choices"))
    }
}
