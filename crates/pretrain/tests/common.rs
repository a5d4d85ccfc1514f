//! Fixtures: a small corpus of documents and byte-level tokenizers.

use std::path::{Path, PathBuf};

use ember_pretrain::prepare::{PrepareOptions, ValSplit};
use ember_tokenizer::{Tokenizer, TrainerConfig, train_from_texts};

pub const SEP: &str = "\n\n\n";

/// Ten short "books" separated by three newlines.
pub fn corpus() -> String {
    (0..10)
        .map(|i| {
            format!(
                "Book {i}.\nIt was the {i}th night, and the wind was high.\nThe end of book {i}.\n"
            )
            .repeat(8)
        })
        .collect::<Vec<_>>()
        .join(SEP)
}

pub fn tokenizer(vocab: usize) -> Tokenizer {
    train_from_texts(&[corpus()], &TrainerConfig::new(vocab))
        .unwrap()
        .0
}

/// Writes the corpus and a tokenizer into `dir`; returns (corpus path, tokenizer path).
pub fn setup(dir: &Path, vocab: usize) -> (PathBuf, PathBuf) {
    let c = dir.join("corpus.txt");
    std::fs::write(&c, corpus()).unwrap();
    let t = dir.join("tok.json");
    tokenizer(vocab).save(&t, true).unwrap();
    (c, t)
}

pub fn options(dir: &Path, corpus: &Path, tok: &Path, out: &str) -> PrepareOptions {
    PrepareOptions {
        val: ValSplit::Fraction(0.2),
        doc_separator: Some(SEP.into()),
        shard_tokens: 1000,
        ..PrepareOptions::new(tok.to_path_buf(), vec![corpus.to_path_buf()], dir.join(out))
    }
}
