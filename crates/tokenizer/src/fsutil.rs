//! Atomic file writes: a reader sees the old file or the new one, never half of either.

use std::io::Write;
use std::path::Path;
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};

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
        write_all(&mut f, bytes).map_err(|e| Error::io(&tmp, "write", e))?;
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

/// Bytes Ember's file writers may still write before they fail as a full disk would; no limit
/// unless a fault test sets one (`EMBER_FAULTS=enospc@BYTES`, or [`fail_writes_after`]).
static WRITE_BUDGET: AtomicU64 = AtomicU64::new(u64::MAX);
static READ_FAULTS: Once = Once::new();

/// From now on, writes through [`write_all`] fail with "no space left on device" once `bytes`
/// more bytes have been written (fault injection for tests of what a full disk leaves behind).
pub fn fail_writes_after(bytes: u64) {
    READ_FAULTS.call_once(|| {});
    WRITE_BUDGET.store(bytes, Ordering::SeqCst);
}

fn budget() -> &'static AtomicU64 {
    READ_FAULTS.call_once(|| {
        let faults = std::env::var("EMBER_FAULTS").unwrap_or_default();
        for part in faults.split(',') {
            if let Some(n) = part.trim().strip_prefix("enospc@")
                && let Ok(n) = n.parse::<u64>()
            {
                WRITE_BUDGET.store(n, Ordering::SeqCst);
            }
        }
    });
    &WRITE_BUDGET
}

/// `w.write_all(bytes)`, counted against the fault-injection budget: every file Ember writes
/// goes through here, so a test can fill the "disk" at any byte.
pub fn write_all(w: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    let b = budget();
    let mut allowed = bytes.len();
    if b.load(Ordering::SeqCst) != u64::MAX {
        let left = b
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| {
                Some(left.saturating_sub(bytes.len() as u64))
            })
            .unwrap_or(0);
        allowed = allowed.min(usize::try_from(left).unwrap_or(usize::MAX));
    }
    w.write_all(&bytes[..allowed])?;
    if allowed < bytes.len() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            "No space left on device (injected by EMBER_FAULTS)",
        ));
    }
    Ok(())
}
