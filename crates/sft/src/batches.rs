//! Conversations → fixed-size training rows, and the [`Task`] the shared loop trains on.
//!
//! Padded or packed. Padded (the default): each row holds one conversation, padded with
//! masked targets to the longest row of its batch (rounded up to a multiple of 16 so few
//! distinct shapes occur). Packed (`[data] pack = true`): each micro-batch takes conversations
//! from the shuffled stream into its rows, first fit, until one has no room; attention stays
//! inside each conversation and positions restart at each (`HostBatch::doc_starts`), so a
//! packed conversation trains exactly as it would alone, and a row that let a reply attend to
//! another conversation — a context the chat never shows — cannot occur. Fine-tuning rows were
//! half padding (50.6% of positions on the Chinese conversations), which packing fills.
//! Micro-batch `m`'s first conversation depends on how many every earlier one took: the task
//! remembers those starts, so a resumed run recomputes them and continues exactly.
//!
//! Rendering a conversation and fitting it to the context is `ember_formats::dialogue`.

use std::sync::Mutex;

use ember_formats::dialogue::{Example, first_fit, pack_batch, pad_batch};
use ember_train::{ContrastBatch, HostBatch, Task, mix_seed};

use crate::contrast::Contrast;

/// Training examples visited in seeded shuffled epochs; held-out examples in fixed batches.
pub struct SftTask {
    train: Vec<Example>,
    val: Vec<Example>,
    batch: usize,
    micro_per_step: usize,
    seed: u64,
    pad: u32,
    /// Packed rows of this many positions (`None`: padded rows).
    pack: Option<usize>,
    /// Packed: the stream position of each micro-batch's first conversation so far.
    starts: Mutex<Vec<u64>>,
    /// The reply-ranking term's rows, if the run has one.
    contrast: Option<Contrast>,
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
            pack: None,
            starts: Mutex::new(vec![0]),
            contrast: None,
        }
    }

    /// The training examples, epochs repeated.
    pub fn train_examples(&self) -> &[Example] {
        &self.train
    }

    /// Adds the reply-ranking term's rows, drawn from the training examples.
    pub fn with_contrast(mut self, contrast: Contrast) -> Self {
        self.contrast = Some(contrast);
        self
    }

    /// Packs conversations into rows of `cap` positions (the model's context) instead of
    /// padding one per row.
    pub fn packed(mut self, cap: usize) -> Self {
        self.pack = Some(cap.max(1));
        self
    }

    /// Micro-batch `m` of the run (counted over all steps): its batch and padding positions.
    fn micro_batch(&self, m: u64) -> (HostBatch, usize) {
        let rows = self.batch;
        let Some(cap) = self.pack else {
            let ex: Vec<&Example> = (0..rows as u64)
                .map(|r| self.nth(m * rows as u64 + r))
                .collect();
            return pad_batch(&ex, self.pad);
        };
        let first = self.first_of(m, cap);
        let (ex, placed) = self.fit_from(first, cap);
        pack_batch(&ex, &placed, rows, cap, self.pad)
    }

    /// The conversations packed from stream position `first` and the row of each.
    fn fit_from(&self, first: u64, cap: usize) -> (Vec<&Example>, Vec<usize>) {
        // Enough candidates for rows full of the shortest conversations.
        let most = (self.batch * cap) as u64;
        let stream = (first..first + most).map(|i| self.nth(i));
        let placed = first_fit(stream.clone().map(|e| e.ids.len() - 1), self.batch, cap);
        (stream.take(placed.len()).collect(), placed)
    }

    /// Stream position of packed micro-batch `m`'s first conversation.
    fn first_of(&self, m: u64, cap: usize) -> u64 {
        let mut starts = self.starts.lock().unwrap_or_else(|e| e.into_inner());
        while starts.len() as u64 <= m {
            let last = *starts.last().unwrap_or(&0);
            let taken = self.fit_from(last, cap).1.len() as u64;
            starts.push(last + taken);
        }
        starts[m as usize]
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

    /// Fraction of padding positions over the first `micro_batches` micro-batches of the run.
    pub fn padding_fraction(&self, micro_batches: u64) -> f64 {
        let (mut pad, mut total) = (0usize, 0usize);
        for m in 0..micro_batches {
            let (hb, p) = self.micro_batch(m);
            pad += p;
            total += hb.batch * hb.seq;
        }
        pad as f64 / total.max(1) as f64
    }

    /// Conversations the first `micro_batches` micro-batches hold (their batch size when
    /// padded).
    pub fn conversations_in(&self, micro_batches: u64) -> u64 {
        match self.pack {
            None => micro_batches * self.batch as u64,
            Some(cap) => self.first_of(micro_batches, cap),
        }
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

impl Task for SftTask {
    fn train_batch(&self, step: u64, micro: usize) -> ember_train::Result<HostBatch> {
        Ok(self
            .micro_batch(step * self.micro_per_step as u64 + micro as u64)
            .0)
    }

    fn contrast_batch(
        &self,
        step: u64,
        micro: usize,
    ) -> ember_train::Result<Option<ContrastBatch>> {
        let m = step * self.micro_per_step as u64 + micro as u64;
        Ok(self.contrast.as_ref().map(|c| c.batch(&self.train, m)))
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
