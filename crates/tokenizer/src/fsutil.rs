//! Atomic file writes: a reader sees the old file or the new one, never half of either.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` through a temporary file in the same directory, fsynced, then
/// renamed over `path` (and the directory fsynced, so the rename survives a crash).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "create directory", e))?;
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, "create", e))?;
        f.write_all(bytes)
            .map_err(|e| Error::io(&tmp, "write", e))?;
        f.sync_all().map_err(|e| Error::io(&tmp, "fsync", e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, "rename into place", e))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all(); // best effort: not every filesystem can fsync a directory
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Where a buffer stops being UTF-8, for error messages: (1-based line, byte offset).
pub fn utf8_error_at(e: &std::string::FromUtf8Error) -> (usize, usize) {
    let at = e.utf8_error().valid_up_to();
    let line = 1 + e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count();
    (line, at)
}
