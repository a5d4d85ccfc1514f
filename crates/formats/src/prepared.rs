//! A prepared data directory opened for training: `meta.json` checked, the tokenizer's hash
//! checked against it and against every shard header, shards memory-mapped.

use std::path::{Path, PathBuf};

use ember_tokenizer::Tokenizer;
use serde_json::Value;

use crate::error::{FormatError, Result};
use crate::shards::{META_FORMAT, Shard};

/// One split's shards read as one stream of ids.
#[derive(Debug)]
pub struct TokenStream {
    shards: Vec<Shard>,
    starts: Vec<usize>,
    len: usize,
}

impl TokenStream {
    /// Total ids.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the split has no ids.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Ids `start..start + n` (clamped to the end), across shard boundaries.
    pub fn read(&self, start: usize, n: usize, out: &mut Vec<u32>) {
        let end = start.saturating_add(n).min(self.len);
        let mut pos = start;
        while pos < end {
            let k = self.starts.partition_point(|&s| s <= pos) - 1;
            let local = pos - self.starts[k];
            let take = (end - pos).min(self.shards[k].len() - local);
            self.shards[k].read(local, take, out);
            pos += take;
        }
    }
}

/// A prepared data directory.
#[derive(Debug)]
pub struct Prepared {
    /// The directory.
    pub dir: PathBuf,
    /// Its tokenizer.
    pub tokenizer: Tokenizer,
    /// The train split.
    pub train: TokenStream,
    /// The held-out split.
    pub val: TokenStream,
    /// `meta.json` as read.
    pub meta: Value,
}

fn bad(path: &Path, reason: impl Into<String>) -> FormatError {
    FormatError::damaged(path, reason)
}

impl Prepared {
    /// Opens a directory written by `ember prepare`.
    pub fn open(dir: &Path) -> Result<Prepared> {
        let mpath = dir.join("meta.json");
        let text = std::fs::read_to_string(&mpath).map_err(|e| {
            bad(
                &mpath,
                format!(
                    "cannot read ({e}); is {} a directory made by `ember prepare`?",
                    dir.display()
                ),
            )
        })?;
        let meta: Value =
            serde_json::from_str(&text).map_err(|e| bad(&mpath, format!("damaged JSON: {e}")))?;
        if meta.get("format").and_then(Value::as_str) != Some(META_FORMAT) {
            return Err(bad(
                &mpath,
                format!(
                    "format is {}, expected \"{META_FORMAT}\"",
                    meta.get("format").cloned().unwrap_or_default()
                ),
            ));
        }
        if meta.get("version").and_then(Value::as_u64) != Some(1) {
            return Err(bad(
                &mpath,
                format!(
                    "version {} is not supported; this build reads version 1",
                    meta.get("version").cloned().unwrap_or_default()
                ),
            ));
        }
        let tpath = dir.join("tokenizer.json");
        let tokenizer = Tokenizer::load(&tpath)?;
        let want = meta
            .get("tokenizer_sha256")
            .and_then(Value::as_str)
            .unwrap_or("");
        let sha = tokenizer.fingerprint();
        if sha != want {
            return Err(bad(
                &tpath,
                format!(
                    "SHA-256 is {sha}, meta.json says {want}: the tokenizer was replaced after `ember prepare`"
                ),
            ));
        }
        let stream = |split: &str| -> Result<TokenStream> {
            let entry = meta
                .pointer(&format!("/splits/{split}/shards"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let (mut shards, mut starts, mut len) = (Vec::new(), Vec::new(), 0usize);
            for s in entry {
                let file = s.get("file").and_then(Value::as_str).unwrap_or("");
                if file.is_empty() || file.contains('/') || file.contains('\\') {
                    return Err(bad(
                        &mpath,
                        format!("shard name {file:?} in split {split} is not a plain file name"),
                    ));
                }
                let shard = Shard::open(&dir.join(file), &sha)?;
                let vocab = tokenizer.vocab_size();
                if shard.header.vocab_size as usize != vocab {
                    return Err(bad(
                        shard.path(),
                        format!(
                            "header says the vocabulary has {} ids, the tokenizer has {vocab}: the shard is damaged; run `ember prepare` again",
                            shard.header.vocab_size
                        ),
                    ));
                }
                let listed = s.get("tokens").and_then(Value::as_u64);
                if listed != Some(shard.header.tokens) {
                    return Err(bad(
                        shard.path(),
                        format!(
                            "holds {} tokens, meta.json lists {listed:?}",
                            shard.header.tokens
                        ),
                    ));
                }
                starts.push(len);
                len += shard.len();
                shards.push(shard);
            }
            Ok(TokenStream {
                shards,
                starts,
                len,
            })
        };
        Ok(Prepared {
            dir: dir.to_path_buf(),
            train: stream("train")?,
            val: stream("val")?,
            tokenizer,
            meta,
        })
    }
}
