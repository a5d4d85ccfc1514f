//! File plumbing every Ember crate shares, in one place: writes that a reader sees whole or not
//! at all ([`write_atomic`], [`write_dir_atomic`], [`swap_dir`]), a byte budget that makes them
//! fail as a full disk would ([`fail_writes_after`], for fault tests), SHA-256 in hex
//! ([`sha256_hex`]) and UTF-8 reading that says where a file stops being text
//! ([`read_utf8`]).
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("notes.txt");
//! ember_files::write_atomic(&path, b"line one\n").unwrap();
//! assert_eq!(ember_files::read_utf8(&path).unwrap(), "line one\n");
//! std::fs::write(&path, b"ok\n\xff").unwrap();
//! let err = ember_files::read_utf8(&path).unwrap_err().to_string();
//! assert!(err.contains("line 2") && err.contains("byte offset 3") && err.contains("0xff"), "{err}");
//! assert_eq!(&ember_files::sha256_hex(b"")[..8], "e3b0c442");
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

/// A file operation that failed: the path, what was being done, and the system's error (or,
/// for text, where the bytes stop being UTF-8).
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Reading, writing, renaming or deleting failed.
    #[error("{}: {action} failed: {error}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The operating system's error (in the message, not repeated as a source).
        error: std::io::Error,
    },
    /// A file expected to be text is not UTF-8.
    #[error(
        "{}: not UTF-8 text at byte offset {offset} (line {line}: bytes {bytes}); convert it to UTF-8 first",
        path.display()
    )]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// 1-based line of the first invalid byte.
        line: usize,
        /// Its byte offset in the file.
        offset: usize,
        /// Up to four bytes from there, in hex (`0xe9 0x20 …`).
        bytes: String,
    },
}

impl FileError {
    /// An I/O failure of `action` on `path`.
    pub fn io(path: impl Into<PathBuf>, action: &'static str, error: std::io::Error) -> Self {
        FileError::Io {
            path: path.into(),
            action,
            error,
        }
    }
}

/// Result with [`FileError`].
pub type Result<T, E = FileError> = std::result::Result<T, E>;

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Raw bytes of a 64-character hex SHA-256.
pub fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// SHA-256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Where a buffer stops being UTF-8, for error messages: (1-based line, byte offset).
pub fn utf8_error_at(e: &std::string::FromUtf8Error) -> (usize, usize) {
    let at = e.utf8_error().valid_up_to();
    let line = 1 + e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count();
    (line, at)
}

/// `bytes` read from `path` as UTF-8; the error gives the line and offset of the first bad byte.
pub fn utf8(path: &Path, bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|e| {
        let (line, offset) = utf8_error_at(&e);
        let raw = e.as_bytes();
        let bytes: Vec<String> = raw[offset..raw.len().min(offset + 4)]
            .iter()
            .map(|b| format!("{b:#04x}"))
            .collect();
        FileError::NotUtf8 {
            path: path.to_path_buf(),
            line,
            offset,
            bytes: bytes.join(" "),
        }
    })
}

/// Reads a whole UTF-8 text file.
pub fn read_utf8(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| FileError::io(path, "read", e))?;
    utf8(path, bytes)
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

fn sync_dir(dir: &Path) {
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all(); // best effort: not every filesystem can fsync a directory
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory, fsynced, then
/// renamed over `path` (and the directory fsynced, so the rename survives a crash). A reader
/// sees the old file or the new one, never half of either; on failure nothing is left behind.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    std::fs::create_dir_all(dir).map_err(|e| FileError::io(dir, "create directory", e))?;
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(|e| FileError::io(&tmp, "create", e))?;
        write_all(&mut f, bytes).map_err(|e| FileError::io(&tmp, "write", e))?;
        f.sync_all().map_err(|e| FileError::io(&tmp, "fsync", e))?;
        std::fs::rename(&tmp, path).map_err(|e| FileError::io(path, "rename into place", e))?;
        sync_dir(dir);
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// `.NAME.TAG.PID` beside `dir`.
fn sibling(dir: &Path, tag: &str) -> PathBuf {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "dir".into());
    dir.with_file_name(format!(".{name}.{tag}.{}", std::process::id()))
}

/// Writes `files` (name, bytes) into a new directory `dir`, replacing an existing one only once
/// every file is written and fsynced. On failure (a full disk, say) the half-written directory
/// is removed and whatever `dir` held before stays as it was.
pub fn write_dir_atomic(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<()> {
    let tmp = sibling(dir, "tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    let written = (|| {
        std::fs::create_dir_all(&tmp).map_err(|e| FileError::io(&tmp, "create directory", e))?;
        for (name, bytes) in files {
            let path = tmp.join(name);
            let mut f =
                std::fs::File::create(&path).map_err(|e| FileError::io(&path, "create", e))?;
            write_all(&mut f, bytes).map_err(|e| FileError::io(&path, "write", e))?;
            f.sync_all().map_err(|e| FileError::io(&path, "fsync", e))?;
        }
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    sync_dir(&tmp);
    swap_dir(&tmp, dir)
}

/// Moves the complete directory `tmp` to `dir`. A directory cannot be renamed over a non-empty
/// one, so an existing `dir` is moved aside first and deleted only once the new one is in
/// place (put back if the rename fails).
pub fn swap_dir(tmp: &Path, dir: &Path) -> Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| FileError::io(parent, "create directory", e))?;
    }
    let old = sibling(dir, "old");
    let had_old = dir.exists();
    if had_old {
        let _ = std::fs::remove_dir_all(&old);
        std::fs::rename(dir, &old).map_err(|e| FileError::io(dir, "move aside", e))?;
    }
    if let Err(e) = std::fs::rename(tmp, dir) {
        if had_old {
            let _ = std::fs::rename(&old, dir);
        }
        return Err(FileError::io(dir, "rename into place", e));
    }
    if let Some(parent) = dir.parent() {
        sync_dir(parent);
    }
    if had_old {
        let _ = std::fs::remove_dir_all(&old);
    }
    Ok(())
}
