//! Bad training input and settings: clear errors naming the file, value and expectation.

use std::path::PathBuf;

use ember_tokenizer::{TrainerConfig, train};

use crate::common::shakespeare;

fn train_err(paths: &[PathBuf], cfg: &TrainerConfig) -> String {
    match train(paths, cfg) {
        Ok(_) => "(trained without error)".into(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn missing_empty_and_directory_inputs_are_named() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap_or_else(|e| panic!("{e}"));
    let missing = dir.path().join("nope.txt");
    let cfg = TrainerConfig::new(512);
    let e = train_err(&[shakespeare(), missing.clone()], &cfg);
    assert!(e.contains("nope.txt") && e.contains("no such file"), "{e}");
    let e = train_err(&[empty], &cfg);
    assert!(e.contains("empty.txt") && e.contains("empty"), "{e}");
    let e = train_err(&[dir.path().to_path_buf()], &cfg);
    assert!(e.contains("directory"), "{e}");
    let e = train_err(&[], &cfg);
    assert!(e.contains("input"), "{e}");
}

#[test]
fn invalid_utf8_reports_file_and_offset_or_is_counted_when_lossy() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let bad = dir.path().join("latin1.txt");
    // Two chunks' worth of text so the bad byte sits past the first chunk.
    let mut bytes = "hello world\n".repeat(100_000).into_bytes();
    let offset = bytes.len() - 7;
    bytes[offset] = 0xE9; // 'é' in Latin-1
    std::fs::write(&bad, &bytes).unwrap_or_else(|e| panic!("{e}"));
    let e = train_err(std::slice::from_ref(&bad), &TrainerConfig::new(512));
    assert!(
        e.contains("latin1.txt")
            && e.contains(&format!("offset {offset}"))
            && e.contains("--lossy"),
        "{e}"
    );
    let mut lossy = TrainerConfig::new(512);
    lossy.lossy = true;
    let (_, report) = train(&[bad], &lossy).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.replaced, 1);
}

#[test]
fn vocab_size_out_of_range_is_refused() {
    for v in [0, 260, 1 << 21] {
        let e = train_err(&[shakespeare()], &TrainerConfig::new(v));
        assert!(
            e.contains("vocab_size") && e.contains(&v.to_string()) && e.contains("between 261"),
            "{e}"
        );
    }
    let mut dup = TrainerConfig::new(512);
    dup.specials = vec!["<|a|>".into(), "<|a|>".into()];
    assert!(train_err(&[shakespeare()], &dup).contains("specials"));
}
