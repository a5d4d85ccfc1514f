//! decode(encode(s)) == s for every string; specials never come from ordinary text.

use ember_tokenizer::{ENDOFTEXT, USER};
use proptest::prelude::*;

use crate::common::{read, shared, small};

#[test]
fn round_trips_english_and_chinese_files() {
    let tok = small();
    let mut texts = vec![read(&crate::common::shakespeare())];
    for name in ["gutenberg_en_valid.txt", "zh_hongloumeng.txt"] {
        if let Some(p) = shared(name) {
            texts.push(read(&p));
        }
    }
    for text in texts {
        let ids = tok.encode(&text);
        assert!(ids.iter().all(|&i| (i as usize) < tok.vocab_size()));
        assert_eq!(tok.decode(&ids).unwrap_or_default(), text);
    }
}

#[test]
fn special_strings_in_user_text_stay_ordinary_unless_allowed() {
    let tok = small();
    let text = format!("hi {USER} there{ENDOFTEXT}");
    let user = tok.token_to_id(USER).unwrap_or_else(|| panic!("no {USER}"));
    let eot = tok
        .token_to_id(ENDOFTEXT)
        .unwrap_or_else(|| panic!("no {ENDOFTEXT}"));
    let plain = tok.encode(&text);
    assert!(
        !plain.contains(&user) && !plain.contains(&eot),
        "ordinary encode produced a special id"
    );
    assert_eq!(tok.decode(&plain).unwrap_or_default(), text);
    let with = tok.encode_with_specials(&text);
    assert_eq!(with.iter().filter(|&&i| i == user || i == eot).count(), 2);
    assert_eq!(*with.last().unwrap_or(&0), eot);
    assert_eq!(tok.decode(&with).unwrap_or_default(), text);
}

#[test]
fn special_tokens_have_ids_after_the_merges() {
    let tok = small();
    let ids: Vec<u32> = tok.specials().map(|(_, id)| id).collect();
    assert_eq!(ids, (1019..1024).collect::<Vec<u32>>());
    assert_eq!(tok.token_to_id(" the").map(|id| id < 1019), Some(true));
    assert_eq!(tok.id_to_bytes(1019), Some(ENDOFTEXT.as_bytes()));
}

#[test]
fn decode_rejects_out_of_range_ids_and_marks_cut_characters() {
    let tok = small();
    let err = tok
        .decode(&[1, 1024])
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("1024") && err.contains("out of range"),
        "{err}"
    );
    // The first byte of '中' alone decodes to U+FFFD; the bytes themselves are kept.
    let first = tok.encode("中")[0];
    assert_eq!(tok.decode_bytes(&[first]).map(|b| b.len()).ok(), Some(1));
    assert_eq!(tok.decode(&[first]).ok().as_deref(), Some("\u{FFFD}"));
}

#[test]
fn batch_encoding_equals_one_by_one() {
    let tok = small();
    let texts = ["First, citizen.", "  中文 text\n\n", "", "<|end|>"];
    let batch = tok.encode_batch(&texts);
    for (t, ids) in texts.iter().zip(batch) {
        assert_eq!(ids, tok.encode(t));
    }
}

#[test]
fn chunked_parallel_encoding_equals_whole_text_encoding() {
    let tok = small();
    let mut texts = vec![read(&crate::common::shakespeare())];
    if let Some(p) = shared("zh_hongloumeng.txt") {
        texts.push(read(&p));
    }
    texts.push("a\n \n\n  b\n\tc\n\n\n\nd  \n e\r\nf\n".repeat(300));
    for text in &texts {
        let whole = tok.encode(text);
        for chunk in [1, 7, 100, 4096] {
            assert_eq!(tok.encode_chunked(text, chunk), whole, "chunk size {chunk}");
        }
        assert_eq!(tok.encode_parallel(text), whole);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]
    #[test]
    fn chunked_encoding_of_any_string_equals_encode(text in "[a-c \\n\\t.]{0,200}", chunk in 1usize..40) {
        let tok = small();
        prop_assert_eq!(tok.encode_chunked(&text, chunk), tok.encode(&text));
    }

    #[test]
    fn any_string_round_trips(text in any::<String>()) {
        let tok = small();
        prop_assert_eq!(tok.decode(&tok.encode(&text)).unwrap_or_default(), text.clone());
        prop_assert_eq!(tok.decode(&tok.encode_with_specials(&text)).unwrap_or_default(), text);
    }

}
