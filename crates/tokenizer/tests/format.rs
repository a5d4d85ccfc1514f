//! tokenizer.json: Hugging Face parity fixture, save/load round trip, and rejection of files
//! Ember cannot use, each error naming the field and value.

use ember_tokenizer::{Tokenizer, TrainerConfig, train};
use proptest::prelude::*;
use serde_json::Value;

use crate::common::{root, shakespeare, small};

#[test]
fn matches_ids_from_hugging_face_tokenizers() {
    let path = root().join("crates/tokenizer/tests/fixtures/hf_parity.json");
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let vocab = fixture["training"]["vocab_size"].as_u64().unwrap_or(0) as usize;
    let (tok, _) =
        train(&[shakespeare()], &TrainerConfig::new(vocab)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        tok.fingerprint(),
        fixture["tokenizer_sha256"].as_str().unwrap_or(""),
        "training or tokenizer.json changed: rerun benches/tokenizer/make_hf_fixture.py if that was meant"
    );
    let cases = fixture["cases"]
        .as_array()
        .map(|c| c.as_slice())
        .unwrap_or(&[]);
    assert!(cases.len() >= 10);
    for case in cases {
        let text = case["text"].as_str().unwrap_or_default();
        let want: Vec<u32> = case["ids"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_u64())
            .map(|v| v as u32)
            .collect();
        let got = if case["specials"] == Value::Bool(true) {
            tok.encode_with_specials(text)
        } else {
            tok.encode(text)
        };
        assert_eq!(got, want, "text {text:?}");
    }
}

#[test]
fn save_and_load_round_trip_and_refuse_to_overwrite() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("tokenizer.json");
    let tok = small();
    tok.save(&path, false).unwrap_or_else(|e| panic!("{e}"));
    let loaded = Tokenizer::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.to_json(), tok.to_json());
    assert_eq!(
        loaded.encode("Wherefore art thou"),
        tok.encode("Wherefore art thou")
    );
    let err = tok
        .save(&path, false)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    tok.save(&path, true).unwrap_or_else(|e| panic!("{e}"));
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    assert_eq!(leftovers.len(), 1, "no temp files left behind");
}

/// Applies `edit` to the small tokenizer's JSON and returns the load error.
fn load_error(edit: impl Fn(&mut Value)) -> String {
    let mut doc: Value = serde_json::from_str(&small().to_json()).unwrap_or(Value::Null);
    edit(&mut doc);
    match Tokenizer::from_json(&doc.to_string(), "t.json") {
        Ok(_) => String::from("(loaded without error)"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn rejects_what_it_cannot_use_naming_field_and_value() {
    type Case = (Box<dyn Fn(&mut Value)>, &'static [&'static str]);
    let cases: Vec<Case> = vec![
        (
            Box::new(|d| d["model"]["type"] = "WordPiece".into()),
            &["model.type", "WordPiece", "BPE"],
        ),
        (
            Box::new(|d| d["version"] = "2.0".into()),
            &["version", "2.0"],
        ),
        (
            Box::new(|d| d["normalizer"] = serde_json::json!({"type": "NFC"})),
            &["normalizer", "NFC"],
        ),
        (
            Box::new(|d| {
                d["model"]["vocab"]
                    .as_object_mut()
                    .map(|m| m.remove("Ċ"))
                    .map(|_| ())
                    .unwrap_or(())
            }),
            &["model.vocab", "0x0A"],
        ),
        (
            Box::new(|d| d["model"]["merges"][3] = serde_json::json!(["zzz", "t"])),
            &["model.merges[3]", "zzz"],
        ),
        (
            Box::new(|d| d["model"]["merges"][2] = serde_json::json!(["a", "Ġ"])),
            &["model.merges[2]", "aĠ"],
        ),
        (
            Box::new(|d| d["model"]["merges"][5] = d["model"]["merges"][0].clone()),
            &["model.merges[5]", "repeats"],
        ),
        (
            Box::new(|d| d["model"]["vocab"]["e"] = 5.into()),
            &["model.vocab", "id 5"],
        ),
        (
            Box::new(|d| d["model"]["vocab"]["e"] = (-1).into()),
            &["model.vocab[\"e\"]", "-1"],
        ),
        (
            Box::new(|d| d["model"]["vocab"]["e"] = 99999.into()),
            &["model.vocab", "unused"],
        ),
        (
            Box::new(|d| d["model"]["vocab"]["\u{3000}"] = 5000.into()),
            &["U+3000", "byte-level"],
        ),
        (
            Box::new(|d| d["added_tokens"][0]["id"] = 7.into()),
            &["added_tokens[0].id", "7"],
        ),
        (
            Box::new(|d| d["added_tokens"][1]["lstrip"] = true.into()),
            &["added_tokens[1].lstrip", "true"],
        ),
        (
            Box::new(|d| {
                d["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "\\w+".into()
            }),
            &["pattern", "\\\\w+"],
        ),
        (
            Box::new(|d| {
                d["pre_tokenizer"] =
                    serde_json::json!({"type": "ByteLevel", "add_prefix_space": false})
            }),
            &["pre_tokenizer.type", "ByteLevel"],
        ),
        (
            Box::new(|d| d["model"]["byte_fallback"] = true.into()),
            &["model.byte_fallback", "true"],
        ),
        (
            Box::new(|d| d["model"]["merges"] = "x".into()),
            &["model.merges", "\"x\""],
        ),
        (
            Box::new(|d| *d = serde_json::json!([1, 2])),
            &["top level", "[1,2]"],
        ),
    ];
    for (i, (edit, needles)) in cases.into_iter().enumerate() {
        let err = load_error(edit);
        for n in needles {
            assert!(
                err.contains(n),
                "case {i}: error should mention {n:?}: {err}"
            );
        }
        assert!(
            err.starts_with("t.json"),
            "case {i}: error should name the file: {err}"
        );
    }
}

#[test]
fn accepts_the_older_space_separated_merge_spelling() {
    let mut doc: Value = serde_json::from_str(&small().to_json()).unwrap_or(Value::Null);
    let merges: Vec<Value> = doc["model"]["merges"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            Value::from(format!(
                "{} {}",
                m[0].as_str().unwrap_or(""),
                m[1].as_str().unwrap_or("")
            ))
        })
        .collect();
    doc["model"]["merges"] = Value::Array(merges);
    let tok = Tokenizer::from_json(&doc.to_string(), "old.json").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        tok.encode("To be, or not to be"),
        small().encode("To be, or not to be")
    );
}

#[test]
fn truncated_files_fail_with_a_hint_never_a_panic() {
    let text = small().to_json();
    for cut in [0, 1, 10, text.len() / 3, text.len() / 2, text.len() - 2] {
        let err = Tokenizer::from_json(&text[..cut], "cut.json")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("cut.json") && err.contains("truncated"),
            "cut at {cut}: {err}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn damaged_files_never_panic(pos in 0usize..100_000, byte in any::<u8>(), cut in 0usize..200_000) {
        let mut bytes = small().to_json().into_bytes();
        let p = pos % bytes.len();
        bytes[p] = byte;
        bytes.truncate(cut.max(p + 1).min(bytes.len()));
        let text = String::from_utf8_lossy(&bytes);
        let _ = Tokenizer::from_json(&text, "damaged.json");
    }
}
