//! The hand-written splitter gives exactly the pieces of the split pattern run by a regex engine.

use ember_tokenizer::pretokenizer::split_with_regex;
use ember_tokenizer::split;
use proptest::prelude::*;

use crate::common::{read, shakespeare, shared};

fn regex_pieces(text: &str) -> Vec<&str> {
    split_with_regex(text).unwrap_or_else(|e| panic!("regex: {e}"))
}

fn assert_same(text: &str, what: &str) {
    let ours: Vec<&str> = split(text).collect();
    let theirs = regex_pieces(text);
    assert_eq!(ours.concat(), text, "{what}: pieces must cover the text");
    if ours != theirs {
        let i = ours
            .iter()
            .zip(&theirs)
            .position(|(a, b)| a != b)
            .unwrap_or(ours.len().min(theirs.len()));
        let lo = i.saturating_sub(3);
        panic!(
            "{what}: first difference at piece {i}: ours {:?} regex {:?}",
            &ours[lo..(i + 3).min(ours.len())],
            &theirs[lo..(i + 3).min(theirs.len())]
        );
    }
}

#[test]
fn matches_regex_on_english_and_chinese_corpora() {
    assert_same(&read(&shakespeare()), "tinyshakespeare");
    for name in [
        "gutenberg_en_valid.txt",
        "gutenberg_en_train.txt",
        "zh_hongloumeng.txt",
        "zh_shuihuzhuan.txt",
    ] {
        if let Some(path) = shared(name) {
            assert_same(&read(&path), name);
        }
    }
}

#[test]
fn matches_regex_on_edge_cases() {
    for text in [
        "",
        " ",
        "  ",
        "\n",
        "a",
        "'",
        "'s",
        "'S",
        "'ſ",
        "'ll'LL'Ll",
        "'ve're'd'm't",
        "don't",
        "x'",
        "''s",
        "   x",
        "x   ",
        "  \n  x",
        "\r\n\r\n",
        " \n \n",
        "\t\tx",
        "\u{3000}中",
        "a\u{a0}b",
        "\u{85}x",
        "1234567",
        "a1b22c333",
        " 12",
        "!!!\n\n\nx",
        " !x",
        "  !x",
        "e\u{301}",
        "\u{301}a",
        "🙂🙂 🙂",
    ] {
        assert_same(text, &format!("{text:?}"));
    }
}

/// Characters from every class the pattern distinguishes, with extra weight on the tricky ones.
fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::sample::select(vec![' ', ' ', '\n', '\r', '\t', '\'', 's', 'S', 't', 'l', 'L', 'v', 'e', 'r', 'd', 'm', 'ſ']),
        2 => prop::char::range('a', 'z'),
        1 => prop::char::range('0', '9'),
        2 => prop::sample::select(vec!['!', '.', ',', '-', '(', ')', '"', '?', '\u{0}', '\u{7f}', '\u{b}', '\u{c}']),
        2 => prop::sample::select(vec!['\u{3000}', '\u{a0}', '\u{85}', '\u{2028}', '\u{2003}', '中', '。', '，', 'é', '\u{301}', '²', 'Ⅻ', '🙂', 'ǅ', 'ʰ']),
        1 => any::<char>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn matches_regex_on_random_text(chars in prop::collection::vec(tricky_char(), 0..40)) {
        let text: String = chars.into_iter().collect();
        let ours: Vec<&str> = split(&text).collect();
        prop_assert_eq!(ours, regex_pieces(&text));
    }
}
