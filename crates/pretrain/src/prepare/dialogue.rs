//! `ember prepare --dialogue`: dialogue JSONL as pretraining documents (mid-training data).

use std::path::PathBuf;
use std::time::Instant;

use ember_tokenizer::{ENDOFTEXT, Tokenizer};
use serde_json::json;

use super::{
    META_FORMAT, PrepareOptions, PrepareReport, ShardWriter, ValSplit, finish, header_for,
    in_temporary_dir, splitmix,
};
use crate::error::{PretrainError, Result};

/// `ember prepare --dialogue`: conversations as pretraining documents. Each is rendered with
/// the chat template (`<|endoftext|>` first, then each turn between its role marker and
/// `<|end|>`), so a model pretrained on the mix has seen the template before fine-tuning; the
/// held-out split is whole conversations, chosen by a seeded shuffle (`--val-fraction`) or
/// given as files (`--val-input`). Every line is validated as `ember sft` validates it.
pub(super) fn prepare_dialogue(
    opts: &PrepareOptions,
    tok: &Tokenizer,
    t0: Instant,
) -> Result<PrepareReport> {
    use ember_formats::dialogue::{Conversation, InvalidPolicy, load};
    ember_tokenizer::ChatTokens::of(tok)?;
    let load_all = |paths: &[PathBuf]| -> Result<(Vec<Conversation>, Vec<serde_json::Value>, u64)> {
        let (mut convs, mut inputs, mut bytes) = (Vec::new(), Vec::new(), 0u64);
        for p in paths {
            let loaded = load(p, InvalidPolicy::Stop)?;
            let size = std::fs::metadata(p).map_or(0, |m| m.len());
            bytes += size;
            inputs.push(
                json!({"path": p.display().to_string(), "bytes": size, "sha256": loaded.sha256,
                "conversations": loaded.conversations.len()}),
            );
            convs.extend(loaded.conversations);
        }
        Ok((convs, inputs, bytes))
    };
    let (convs, mut inputs, mut bytes) = load_all(&opts.inputs)?;
    let (train, val, policy) = match &opts.val {
        ValSplit::None => (convs, Vec::new(), "none".to_string()),
        ValSplit::Fraction(f) => {
            let n = convs.len();
            let want = ((n as f64 * f).round() as usize).clamp(1, n.saturating_sub(1));
            let mut order: Vec<usize> = (0..n).collect();
            let mut s = opts.seed;
            for i in (1..n).rev() {
                let j = (splitmix(&mut s) % (i as u64 + 1)) as usize;
                order.swap(i, j);
            }
            let mut is_val = vec![false; n];
            for &i in order.iter().take(want) {
                is_val[i] = true;
            }
            let (mut tr, mut va) = (Vec::new(), Vec::new());
            for (c, v) in convs.into_iter().zip(is_val) {
                if v { va.push(c) } else { tr.push(c) }
            }
            let policy = format!(
                "{} of {n} whole conversations chosen by a shuffle with seed {}",
                va.len(),
                opts.seed
            );
            (tr, va, policy)
        }
        ValSplit::Files(files) => {
            let (v, more, b) = load_all(files)?;
            inputs.extend(more);
            bytes += b;
            (convs, v, "the given held-out files".to_string())
        }
    };
    if train.is_empty() {
        return Err(PretrainError::Input {
            path: opts.inputs[0].clone(),
            reason: "holds no conversation to train on once the held-out ones are set aside".into(),
        });
    }
    let header = header_for(tok);
    let (train_meta, val_meta) = in_temporary_dir(&opts.out, |tmp| {
        let split = |name: &'static str, convs: &[Conversation]| -> Result<serde_json::Value> {
            let mut w = ShardWriter::new(tmp, name, header.clone(), opts.shard_tokens);
            for c in convs {
                w.push(&ember_tokenizer::render_chat(tok, &c.messages)?.ids)?;
            }
            let (tokens, shards) = w.finish()?;
            Ok(json!({"documents": convs.len(), "tokens": tokens, "shards": shards}))
        };
        let (tr, va) = (split("train", &train)?, split("val", &val)?);
        let meta = json!({
            "format": META_FORMAT, "version": 1, "kind": "dialogue",
            "tokenizer": "tokenizer.json", "tokenizer_sha256": tok.fingerprint(),
            "vocab_size": tok.vocab_size(), "dtype": if header.width == 2 { "u16" } else { "u32" },
            "document_prefix": ENDOFTEXT, "template": "chat",
            "val_policy": policy, "inputs": inputs,
            "splits": {"train": tr, "val": va},
        });
        finish(tmp, &opts.out, tok, &meta)?;
        Ok((tr, va))
    })?;
    let n =
        |v: &serde_json::Value, k: &str| v.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    Ok(PrepareReport {
        train_tokens: n(&train_meta, "tokens"),
        val_tokens: n(&val_meta, "tokens"),
        train_docs: train.len(),
        val_docs: val.len(),
        bytes,
        seconds: t0.elapsed().as_secs_f64(),
        val_policy: policy,
    })
}
