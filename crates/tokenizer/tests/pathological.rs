//! Inputs that make other tokenizers slow or crash: one huge piece of a repeated character, a
//! megabyte of spaces. They must encode (in n log n) and round-trip.

use ember_tokenizer::{TrainerConfig, train_from_texts};

use crate::common::small;

#[test]
fn ten_megabyte_line_of_one_character_round_trips() {
    let tok = small();
    let text = "e".repeat(10 << 20);
    let ids = tok.encode(&text);
    assert!(ids.len() < text.len(), "repeated letters must merge");
    assert_eq!(tok.decode(&ids).unwrap_or_default().len(), text.len());
}

#[test]
fn a_megabyte_of_spaces_and_of_cjk_round_trips() {
    let tok = small();
    for text in [
        " ".repeat(1 << 20),
        "中".repeat(300_000),
        "!?".repeat(500_000),
    ] {
        let ids = tok.encode(&text);
        assert_eq!(tok.decode(&ids).unwrap_or_default(), text);
    }
}

#[test]
fn training_on_a_huge_single_piece_works() {
    let text = format!("{} end", "x".repeat(2 << 20));
    let (tok, report) = train_from_texts(&[text.as_str()], &TrainerConfig::new(300))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(report.distinct_pieces, 2);
    assert_eq!(tok.decode(&tok.encode(&text)).unwrap_or_default(), text);
}
