//! Saving as Hugging Face `tokenizer.json`, and loading (with validation) the subset Ember uses.
//!
//! The file's format is named by its own fields: `"version": "1.0"` (the `tokenizers` format
//! version) and `model.type = "BPE"`. Hugging Face rejects unknown top-level keys, so Ember adds
//! none; the loader checks the version, the model type and every field it relies on, and
//! rejects the rest by name.

use std::path::Path;

use serde::Serialize;
use serde::ser::SerializeMap;
use serde_json::{Value, json};

use crate::bytelevel::{decode_str, encode_bytes};
use crate::error::{Error, Result};
use crate::model::Bpe;
use crate::pretokenizer::SPLIT_PATTERN;
use crate::tokenizer::Tokenizer;
use ember_files::write_atomic;

/// Vocabulary written as a JSON object in id order (as Hugging Face does), so files diff well.
struct VocabById<'a>(&'a [(String, u32)]);

impl Serialize for VocabById<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (token, id) in self.0 {
            map.serialize_entry(token, id)?;
        }
        map.end()
    }
}

impl Tokenizer {
    /// The tokenizer as `tokenizer.json` text (deterministic: same tokenizer, same bytes).
    pub fn to_json(&self) -> String {
        let vocab: Vec<(String, u32)> = self
            .bpe
            .tokens
            .iter()
            .enumerate()
            .filter_map(|(id, t)| t.as_ref().map(|t| (encode_bytes(t), id as u32)))
            .collect();
        let spell = |id: u32| {
            self.bpe.tokens[id as usize]
                .as_deref()
                .map(encode_bytes)
                .unwrap_or_default()
        };
        let merges: Vec<[String; 2]> = self
            .bpe
            .merges
            .iter()
            .map(|&(a, b, _)| [spell(a), spell(b)])
            .collect();
        let added: Vec<Value> = self
            .specials
            .iter()
            .map(|(content, id)| {
                json!({"id": id, "content": content, "single_word": false, "lstrip": false,
                       "rstrip": false, "normalized": false, "special": true})
            })
            .collect();
        let doc = json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": added,
            "normalizer": null,
            "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": SPLIT_PATTERN}, "behavior": "Isolated", "invert": false},
                {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
            ]},
            "post_processor": null,
            "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
            "model": {
                "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
                "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
                "ignore_merges": self.bpe.ignore_merges,
                "vocab": serde_json::to_value(VocabById(&vocab)).unwrap_or(Value::Null),
                "merges": merges,
            }
        });
        let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        text.push('\n');
        text
    }

    /// SHA-256 (hex) of [`to_json`](Self::to_json): identifies the tokenizer in shards and
    /// checkpoints.
    pub fn fingerprint(&self) -> String {
        ember_files::sha256_hex(self.to_json().as_bytes())
    }

    /// Writes `tokenizer.json` atomically (temp file, fsync, rename). Refuses to replace an
    /// existing file unless `overwrite`.
    pub fn save(&self, path: &Path, overwrite: bool) -> Result<()> {
        if !overwrite && path.exists() {
            return Err(Error::OutputExists {
                path: path.to_path_buf(),
            });
        }
        Ok(write_atomic(path, self.to_json().as_bytes())?)
    }

    /// Loads a `tokenizer.json`; see [`from_json`](Self::from_json) for what is accepted.
    pub fn load(path: &Path) -> Result<Tokenizer> {
        if path.is_dir() {
            return Err(Error::BadInput {
                path: path.to_path_buf(),
                reason: "is a directory, expected a tokenizer.json file".into(),
            });
        }
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, "read", e))?;
        let text = String::from_utf8(bytes).map_err(|e| Error::Format {
            source_name: path.display().to_string(),
            field: "(file)".into(),
            reason: format!(
                "not UTF-8 (bad byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        })?;
        Self::from_json(&text, &path.display().to_string())
    }

    /// Parses `tokenizer.json` text: a byte-level BPE with Ember's split pattern, as written by
    /// [`to_json`](Self::to_json) or by Hugging Face for such a tokenizer. Anything else (other
    /// model types, normalizers, missing byte tokens, merges naming unknown tokens, duplicate or
    /// out-of-range ids) is an [`Error::Format`] naming the field and the bad value.
    /// `source_name` names the text in errors.
    pub fn from_json(text: &str, source_name: &str) -> Result<Tokenizer> {
        let doc: Value = serde_json::from_str(text).map_err(|e| Error::Json {
            source_name: source_name.to_string(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        crate::validate::tokenizer_from_value(&doc, source_name)
    }
}

/// Builds a tokenizer from validated parts (shared by the loader and the trainer).
pub(crate) fn assemble(
    tokens: Vec<Option<Box<[u8]>>>,
    merges: &[(u32, u32)],
    specials: Vec<(String, u32)>,
    ignore_merges: bool,
) -> Tokenizer {
    Tokenizer::from_parts(Bpe::new(tokens, merges, ignore_merges), specials)
}

/// Reads a byte-level token spelling, for the validator.
pub(crate) fn spelled_bytes(s: &str) -> std::result::Result<Vec<u8>, char> {
    decode_str(s)
}
