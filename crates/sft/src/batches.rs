//! Conversations → fixed-size training rows, and the [`Task`] the shared loop trains on.
//!
//! Padding, not packing: each row holds one conversation, padded with masked targets to the
//! longest row of its batch (rounded up to a multiple of 16 so few distinct shapes occur).
//! Packing several conversations into one row would need attention that cannot cross their
//! boundaries; the model's fused causal attention has no such mask, and a row that let a reply
//! attend to another conversation would train on a context the chat never shows. The padding
//! fraction is measured and reported instead.
//!
//! Rendering a conversation and fitting it to the context is `ember_formats::dialogue`.

use ember_formats::dialogue::{Example, pad_batch};
use ember_train::{HostBatch, Task, mix_seed};

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
