//! Conversations → fixed-size training rows, and the [`Task`] the shared loop trains on.
//!
//! Padding, not packing: each row holds one conversation, padded with masked targets to the
//! longest row of its batch (rounded up to a multiple of 16 so few distinct shapes occur).
//! Packing several conversations into one row would need attention that cannot cross their
//! boundaries; the model's fused causal attention has no such mask, and a row that let a reply
//! attend to another conversation would train on a context the chat never shows. The padding
//! fraction is measured and reported instead.
//!
//! Too long for the context: the oldest whole exchanges (user turn + assistant reply) after the
//! system message are dropped until the conversation fits; if even the system message and the
//! last exchange do not fit, the conversation is skipped. Both are counted. No turn is ever cut
//! in the middle.

use ember_tokenizer::{Message, Role, Tokenizer, render_chat};
use ember_train::{HostBatch, Task, mix_seed};

use crate::data::Conversation;
use crate::error::Result;

/// A rendered conversation ready for a row: `ids.len() <= context + 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// Token ids.
    pub ids: Vec<u32>,
    /// 1 on trained targets (aligned with `ids`).
    pub mask: Vec<u8>,
    /// UTF-8 bytes of the trained ordinary tokens (for bits per byte).
    pub target_bytes: u64,
}

/// How rendering went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderStats {
    /// Conversations that fit as they are.
    pub whole: usize,
    /// Conversations shortened by dropping their oldest exchanges.
    pub truncated: usize,
    /// Conversations skipped because their last exchange alone does not fit.
    pub skipped_too_long: usize,
}

/// Renders conversations for a model with `context` positions, applying the truncation policy.
pub fn render_all(
    tok: &Tokenizer,
    convs: &[Conversation],
    context: usize,
) -> Result<(Vec<Example>, RenderStats)> {
    let mut stats = RenderStats::default();
    let mut out = Vec::with_capacity(convs.len());
    for c in convs {
        let mut msgs: &[Message] = &c.messages;
        let system: Vec<Message> = msgs
            .iter()
            .take(1)
            .filter(|m| m.role == Role::System)
            .cloned()
            .collect();
        msgs = &msgs[system.len()..];
        let mut dropped = false;
        loop {
            let all: Vec<Message> = system.iter().chain(msgs).cloned().collect();
            let r = render_chat(tok, &all)?;
            if r.ids.len() <= context + 1 {
                if dropped {
                    stats.truncated += 1
                } else {
                    stats.whole += 1
                }
                out.push(example(tok, r.ids, r.mask));
                break;
            }
            // Drop the oldest exchange: up to and including the first assistant turn.
            match msgs.iter().position(|m| m.role == Role::Assistant) {
                Some(a) if msgs[a + 1..].iter().any(|m| m.role == Role::Assistant) => {
                    msgs = &msgs[a + 1..];
                    dropped = true;
                }
                _ => {
                    stats.skipped_too_long += 1;
                    break;
                }
            }
        }
    }
    Ok((out, stats))
}

fn example(tok: &Tokenizer, ids: Vec<u32>, mask: Vec<u8>) -> Example {
    let target_bytes = ids
        .iter()
        .zip(&mask)
        .filter(|(_, m)| **m == 1)
        .map(|(id, _)| tok.text_len(*id) as u64)
        .sum();
    Example {
        ids,
        mask,
        target_bytes,
    }
}

/// Builds one padded batch from examples; returns it and its count of padding positions.
pub fn pad_batch(examples: &[&Example], pad: u32) -> (HostBatch, usize) {
    let longest = examples.iter().map(|e| e.ids.len() - 1).max().unwrap_or(1);
    let seq = longest.div_ceil(16) * 16;
    let mut hb = HostBatch {
        batch: examples.len(),
        seq,
        inputs: Vec::new(),
        targets: Vec::new(),
        mask: Vec::new(),
        target_bytes: 0,
    };
    let mut padding = 0;
    for e in examples {
        let n = e.ids.len() - 1;
        hb.inputs.extend_from_slice(&e.ids[..n]);
        hb.targets.extend_from_slice(&e.ids[1..]);
        hb.mask.extend(e.mask[1..].iter().map(|&m| f32::from(m)));
        hb.inputs.resize(hb.inputs.len() + seq - n, pad);
        hb.targets.resize(hb.targets.len() + seq - n, pad);
        hb.mask.resize(hb.mask.len() + seq - n, 0.0);
        hb.target_bytes += e.target_bytes;
        padding += seq - n;
    }
    (hb, padding)
}

/// Training examples visited in seeded shuffled epochs; held-out examples in fixed batches.
pub struct SftTask {
    train: Vec<Example>,
    val: Vec<Example>,
    batch: usize,
    micro_per_step: usize,
    seed: u64,
    pad: u32,
}

impl SftTask {
    /// A task over rendered examples with `batch` rows per micro-batch and `micro_per_step`
    /// micro-batches per optimizer step; `pad` fills rows (its targets are masked out).
    pub fn new(
        train: Vec<Example>,
        val: Vec<Example>,
        batch: usize,
        micro_per_step: usize,
        seed: u64,
        pad: u32,
    ) -> Self {
        SftTask {
            train,
            val,
            batch,
            micro_per_step: micro_per_step.max(1),
            seed,
            pad,
        }
    }

    /// Example at position `i` of the endless sequence of shuffled epochs.
    fn nth(&self, i: u64) -> &Example {
        let n = self.train.len() as u64;
        let (epoch, k) = (i / n, i % n);
        // A seeded permutation per epoch without storing it: rank every index by a hash of
        // (seed, epoch, index) — O(n) per lookup would be slow, so use a Feistel-free trick:
        // an affine map with a multiplier coprime to n, offset by the hash.
        let h = mix_seed(self.seed, epoch, 0);
        let mut a = ((h >> 32) % n.max(1)) | 1;
        while gcd(a, n) != 1 {
            a += 2;
        }
        &self.train[((a * k + h % n) % n) as usize]
    }

    /// Fraction of padding positions over the first `steps` micro-batches of the run.
    pub fn padding_fraction(&self, micro_batches: u64) -> f64 {
        let (mut pad, mut total) = (0usize, 0usize);
        for m in 0..micro_batches {
            let ex: Vec<&Example> = (0..self.batch as u64)
                .map(|r| self.nth(m * self.batch as u64 + r))
                .collect();
            let (hb, p) = pad_batch(&ex, self.pad);
            pad += p;
            total += hb.batch * hb.seq;
        }
        pad as f64 / total.max(1) as f64
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl Task for SftTask {
    fn train_batch(&self, step: u64, micro: usize) -> ember_train::Result<HostBatch> {
        let start = (step * self.micro_per_step as u64 + micro as u64) * self.batch as u64;
        let ex: Vec<&Example> = (0..self.batch as u64)
            .map(|r| self.nth(start + r))
            .collect();
        Ok(pad_batch(&ex, self.pad).0)
    }

    fn eval_batches(&self) -> usize {
        self.val.len().div_ceil(self.batch)
    }

    fn eval_batch(&self, i: usize) -> ember_train::Result<HostBatch> {
        let lo = i * self.batch;
        let ex: Vec<&Example> = self.val[lo..(lo + self.batch).min(self.val.len())]
            .iter()
            .collect();
        Ok(pad_batch(&ex, self.pad).0)
    }
}
