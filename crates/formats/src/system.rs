//! `RUN/system.json`: the machine and device a run trained on, for reports. Rewritten at
//! every start, so a run resumed elsewhere records where it finished.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Where a run (or an evaluation) ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SystemInfo {
    /// The device as announced (`cpu (flex, f32)`, an adapter name, ...).
    pub device: String,
    /// CPU model name (from /proc/cpuinfo where there is one).
    pub cpu: String,
    /// Threads available to the process.
    pub threads: usize,
    /// Operating system and architecture.
    pub os: String,
    /// Ember version.
    pub ember_version: String,
    /// Peak FLOP/s that MFU is measured against (absent in runs made before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_flops: Option<f64>,
    /// How the peak was obtained.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_source: Option<String>,
}

impl SystemInfo {
    /// This machine, running on `device`.
    pub fn here(device: &str) -> SystemInfo {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        SystemInfo {
            device: device.to_string(),
            cpu,
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            os: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            ember_version: env!("CARGO_PKG_VERSION").to_string(),
            peak_flops: None,
            peak_source: None,
        }
    }

    /// Writes `DIR/system.json`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).unwrap_or_default() + "\n";
        Ok(ember_files::write_atomic(
            &dir.join("system.json"),
            text.as_bytes(),
        )?)
    }

    /// Reads `DIR/system.json`, if there is a readable one.
    pub fn load(dir: &Path) -> Option<SystemInfo> {
        let text = std::fs::read_to_string(dir.join("system.json")).ok()?;
        serde_json::from_str(&text).ok()
    }
}
