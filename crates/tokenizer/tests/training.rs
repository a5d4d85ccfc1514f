//! Training: deterministic, independent of chunking and threads, and exactly the requested size.

use ember_tokenizer::{TrainerConfig, train, train_from_texts};

use crate::common::{read, shakespeare, shared};

fn cfg(vocab: usize, threads: usize) -> TrainerConfig {
    let mut c = TrainerConfig::new(vocab);
    c.threads = threads;
    c
}

#[test]
fn same_input_gives_byte_identical_files_whatever_the_threads() {
    let one = train(&[shakespeare()], &cfg(2000, 1))
        .map(|r| r.0.to_json())
        .unwrap_or_default();
    let two = train(&[shakespeare()], &cfg(2000, 2))
        .map(|r| r.0.to_json())
        .unwrap_or_default();
    let again = train(&[shakespeare()], &cfg(2000, 2))
        .map(|r| r.0.to_json())
        .unwrap_or_default();
    assert!(!one.is_empty());
    assert_eq!(one, two);
    assert_eq!(two, again);
}

#[test]
fn streamed_chunks_count_exactly_like_the_whole_text() {
    // Files are read in 1 MiB chunks cut between pieces; counts must equal the whole text's.
    let mut files = vec![shakespeare()];
    files.extend(shared("gutenberg_en_valid.txt"));
    files.extend(shared("zh_hongloumeng.txt"));
    for file in files {
        let whole = read(&file);
        let (streamed, rs) =
            train(std::slice::from_ref(&file), &cfg(1500, 2)).unwrap_or_else(|e| panic!("{e}"));
        let (in_memory, rm) =
            train_from_texts(&[whole.as_str()], &cfg(1500, 1)).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (rs.pieces, rs.distinct_pieces),
            (rm.pieces, rm.distinct_pieces),
            "{}",
            file.display()
        );
        assert_eq!(
            streamed.to_json(),
            in_memory.to_json(),
            "{}",
            file.display()
        );
    }
}

#[test]
fn vocab_has_bytes_merges_and_specials() {
    let (tok, report) = train(&[shakespeare()], &cfg(700, 0)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tok.vocab_size(), 700);
    assert_eq!(report.merges, 700 - 256 - 5);
    assert!(!report.stopped_early);
    for b in 0..=255u8 {
        assert!(
            tok.id_to_bytes(b as u32) == Some(&[b][..]),
            "byte {b} must be id {b}"
        );
    }
    let ids = tok.encode(" the");
    assert_eq!(
        ids.len(),
        1,
        "' the' is one token after 444 merges on Shakespeare"
    );
}

#[test]
fn a_tiny_corpus_stops_early_and_says_so() {
    let (tok, report) = train_from_texts(&["ab ab ab"], &TrainerConfig::new(5000))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(report.stopped_early);
    assert_eq!(tok.vocab_size(), 256 + report.merges + 5);
    assert_eq!(
        tok.decode(&tok.encode("ab ab")).unwrap_or_default(),
        "ab ab"
    );
}
