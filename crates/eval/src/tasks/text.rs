//! Held-out text: loss, perplexity and bits per byte over windows of the model's context.
//!
//! Windows are non-overlapping by default: the stream is cut into `block_size`-token windows
//! and every target is scored once, with as much context as its window gives (the first token
//! of a window has none). With a stride `s < block_size` the windows overlap and each scores
//! only its last `s` targets, so every target after the first window sees at least
//! `block_size − s` tokens of context (Hugging Face's "strided perplexity"); lower loss, more
//! compute. Special tokens (document separators) are never targets and their bytes are not
//! counted, as in pretraining's own evaluation.

use burn::prelude::*;
use ember_model::Gpt;
use ember_tokenizer::Tokenizer;
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// Loss, perplexity and bits per byte on some text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextResult {
    /// What was scored (a file, a run's validation split, a dialogue file).
    pub source: String,
    /// Mean negative log-likelihood per target token (nats).
    pub loss: f64,
    /// exp(loss).
    pub perplexity: f64,
    /// Nats summed over targets / (ln 2 × their UTF-8 bytes).
    pub bpb: f64,
    /// Target tokens scored.
    pub tokens: u64,
    /// Their UTF-8 bytes.
    pub bytes: u64,
    /// How targets were grouped (windows, or conversations for sft-loss).
    pub method: String,
    /// Unusable input records (sft-loss: invalid lines and conversations too long to fit).
    pub malformed: u64,
}

/// Windows over `n_ids` ids: (first input position, length, targets scored at its end).
/// Target `j` is `ids[j + 1]`, predicted at input position `j`; every target is scored once.
pub fn windows(n_ids: usize, block: usize, stride: usize) -> Vec<(usize, usize, usize)> {
    let targets = n_ids.saturating_sub(1);
    let (block, stride) = (block.max(1), stride.clamp(1, block.max(1)));
    let mut out = Vec::new();
    let (mut begin, mut prev_end) = (0, 0);
    while prev_end < targets {
        let end = (begin + block).min(targets);
        if end > prev_end {
            out.push((begin, end - begin, end - prev_end));
        }
        prev_end = end;
        begin += stride;
    }
    out
}

/// Scores `ids` with `model`; `limit` caps the number of windows.
pub fn score_ids(
    model: &Gpt,
    tok: &Tokenizer,
    ids: &[u32],
    block: usize,
    stride: usize,
    limit: Option<usize>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(f64, u64, u64, usize)> {
    let mut wins = windows(ids.len(), block, stride);
    if let Some(l) = limit {
        wins.truncate(l);
    }
    let device = model.wte.weight.device();
    let per_batch = (8192 / block).max(1);
    let (mut nll, mut tokens, mut bytes) = (0f64, 0u64, 0u64);
    let mut done = 0;
    // Batches hold windows of one length (all but possibly the last are `block` long).
    let mut k = 0;
    while k < wins.len() {
        let len = wins[k].1;
        let mut j = k;
        while j < wins.len() && j - k < per_batch && wins[j].1 == len {
            j += 1;
        }
        let b = j - k;
        let (mut inputs, mut targets, mut mask) = (Vec::new(), Vec::new(), Vec::new());
        for &(start, len, scored) in &wins[k..j] {
            for p in 0..len {
                let t = ids[start + p + 1];
                inputs.push(ids[start + p] as i32);
                targets.push(t as i32);
                let text = tok.text_len(t) as u64; // 0 for special tokens: never targets
                let on = p >= len - scored && text > 0;
                mask.push(if on { 1f32 } else { 0.0 });
                if on {
                    tokens += 1;
                    bytes += text;
                }
            }
        }
        let tensor =
            |v: Vec<i32>| Tensor::<2, Int>::from_data(TensorData::new(v, [b, len]), &device);
        let mask = Tensor::<2>::from_data(TensorData::new(mask, [b, len]), &device);
        let (sum, _) = model.nll_sum(tensor(inputs), tensor(targets), mask);
        nll += crate::loglik::host_scalar(sum)?;
        done += b;
        progress(done, wins.len());
        k = j;
    }
    Ok((nll, tokens, bytes, wins.len()))
}

/// Packs sums into a result.
pub fn result(
    source: String,
    nll: f64,
    tokens: u64,
    bytes: u64,
    method: String,
    malformed: u64,
) -> TextResult {
    let loss = nll / tokens.max(1) as f64;
    TextResult {
        source,
        loss,
        perplexity: loss.exp(),
        bpb: nll / (std::f64::consts::LN_2 * bytes.max(1) as f64),
        tokens,
        bytes,
        method,
        malformed,
    }
}
