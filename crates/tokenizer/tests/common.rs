//! Shared helpers: the bundled corpus, `../shared/data`, and a small trained tokenizer.

use std::path::PathBuf;
use std::sync::OnceLock;

use ember_tokenizer::{Tokenizer, TrainerConfig, train};

/// Repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The bundled training corpus.
pub fn shakespeare() -> PathBuf {
    root().join("data/tinyshakespeare.txt")
}

/// A file of `../shared/data` (or `$EMBER_SHARED_DATA`), or `None` with a loud note when the
/// shared data is not there, so that a missing corpus is never mistaken for a pass.
pub fn shared(name: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("EMBER_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/data"));
    let path = dir.join(name);
    if path.is_file() {
        Some(path)
    } else {
        eprintln!(
            "SKIPPED PART: {} is missing (set EMBER_SHARED_DATA to the shared data folder)",
            path.display()
        );
        None
    }
}

/// Vocabulary 1024 trained on the bundled corpus, once per test binary.
pub fn small() -> &'static Tokenizer {
    static TOK: OnceLock<Tokenizer> = OnceLock::new();
    TOK.get_or_init(|| {
        train(&[shakespeare()], &TrainerConfig::new(1024))
            .map(|(t, _)| t)
            .unwrap_or_else(|e| panic!("{e}"))
    })
}

/// Reads a text file that the test needs.
pub fn read(path: &PathBuf) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
