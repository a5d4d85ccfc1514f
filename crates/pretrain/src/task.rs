//! Pretraining batches: random windows of the train stream (nanoGPT's sampler), fixed
//! non-overlapping windows of the held-out stream. With mixed sources (`[[data.mix]]`), each
//! training row first draws its source — a mixed one with its share once its start step has
//! come, else the main data — from a stream of its own, so the main data's windows are the same
//! draws as without a mix, and every row stays a pure function of (seed, step, micro-batch).

use ember_train::{HostBatch, Result, Task, TrainError, mix_seed};

use ember_formats::{Prepared, TokenStream};

use crate::objective::Masking;
use crate::replies::ReplyIds;

/// A prepared directory mixed into the training rows.
pub struct Mixed<'a> {
    /// The data.
    pub data: &'a Prepared,
    /// Share of the rows once started.
    pub weight: f64,
    /// First step that draws from it.
    pub start_step: u64,
    /// Train on the assistant's replies only (`loss = "replies"`); `None`: every token.
    pub replies: Option<ReplyIds>,
}

/// A row's start, its stream, and the reply ids if only replies count.
type Start<'s> = (usize, &'s TokenStream, Option<&'s ReplyIds>);

/// The [`Task`] the shared loop trains on.
pub struct ShardTask<'a> {
    data: &'a Prepared,
    mix: Vec<Mixed<'a>>,
    batch: usize,
    seq: usize,
    seed: u64,
    eval_windows: usize,
    eval_batch: usize,
    all_windows: usize,
    /// UTF-8 length of each id; 0 for special tokens, which bpb leaves out.
    byte_len: Vec<u32>,
    /// The hybrid objective's masking; `None`: every row causal.
    masking: Option<Masking>,
}

impl<'a> ShardTask<'a> {
    /// Batches of `batch` windows of `seq` tokens; evaluation covers `eval_tokens` held-out
    /// targets (0 = all of them), in whole batches.
    pub fn new(
        data: &'a Prepared,
        batch: usize,
        seq: usize,
        seed: u64,
        eval_tokens: usize,
    ) -> Result<Self> {
        let need = seq + 1;
        if data.train.len() < need {
            return Err(TrainError::Data(format!(
                "{}: the train split has {} tokens, fewer than one window of context + 1 = {need}",
                data.dir.display(),
                data.train.len()
            )));
        }
        if data.val.len() < need {
            return Err(TrainError::Data(format!(
                "{}: the held-out split has {} tokens, fewer than one window of {need}; prepare with --val-fraction or --val-input",
                data.dir.display(),
                data.val.len()
            )));
        }
        let all = (data.val.len() - 1) / seq;
        let eval_batch = batch.min(all);
        let want = if eval_tokens == 0 {
            all
        } else {
            eval_tokens.div_ceil(seq).min(all)
        };
        let eval_windows =
            (want.div_ceil(eval_batch) * eval_batch).min(all / eval_batch * eval_batch);
        let tok = &data.tokenizer;
        let byte_len = (0..tok.vocab_size() as u32)
            .map(|id| tok.text_len(id) as u32)
            .collect();
        Ok(ShardTask {
            data,
            mix: Vec::new(),
            batch,
            seq,
            seed,
            eval_windows,
            eval_batch,
            all_windows: all,
            byte_len,
            masking: None,
        })
    }

    /// Trains with the hybrid objective: a share of the training rows masked (the held-out
    /// batches stay causal).
    pub fn with_masking(mut self, masking: Masking) -> Self {
        self.masking = Some(masking);
        self
    }

    /// Mixes `sources` into the training rows; each must hold at least one window.
    pub fn with_mix(mut self, sources: Vec<Mixed<'a>>) -> Result<Self> {
        for m in &sources {
            if m.data.train.len() < self.seq + 1 {
                return Err(TrainError::Data(format!(
                    "{}: the train split has {} tokens, fewer than one window of {}",
                    m.data.dir.display(),
                    m.data.train.len(),
                    self.seq + 1
                )));
            }
        }
        self.mix = sources;
        Ok(self)
    }

    /// The stream a training row of `step` draws from, given a uniform draw `u` in [0, 1),
    /// with its reply ids if only replies count.
    fn source(&self, step: u64, u: f64) -> (&'a TokenStream, Option<&ReplyIds>) {
        let mut acc = 0.0;
        for m in self.mix.iter().filter(|m| step >= m.start_step) {
            acc += m.weight;
            if u < acc {
                return (&m.data.train, m.replies.as_ref());
            }
        }
        (&self.data.train, None)
    }

    fn assemble(&self, starts: &[Start<'_>], eval: bool) -> HostBatch {
        let (b, t) = (starts.len(), self.seq);
        let mut hb = HostBatch {
            batch: b,
            seq: t,
            inputs: Vec::with_capacity(b * t),
            targets: Vec::with_capacity(b * t),
            mask: Vec::with_capacity(b * t),
            target_bytes: 0,
            bidirectional: 0,
            doc_starts: Vec::new(),
        };
        let mut w = Vec::with_capacity(t + 1);
        let mut reply = Vec::with_capacity(t);
        for &(s, stream, replies) in starts {
            w.clear();
            stream.read(s, t + 1, &mut w);
            w.resize(t + 1, 0);
            hb.inputs.extend_from_slice(&w[..t]);
            reply.clear();
            match replies {
                Some(r) => r.mask(&w, r.inside_at(stream, s), &mut reply),
                None => reply.resize(t, 1.0),
            }
            for (&y, &r) in w[1..].iter().zip(&reply) {
                let bytes = self.byte_len.get(y as usize).copied().unwrap_or(0);
                // Training predicts every next token, document boundaries included (only the
                // replies of a `loss = "replies"` source); the held-out figures leave special
                // tokens out so bits per byte means text.
                let m = if eval && bytes == 0 { 0.0 } else { r };
                if m > 0.0 {
                    hb.target_bytes += u64::from(bytes);
                }
                hb.targets.push(y);
                hb.mask.push(m);
            }
        }
        hb
    }
}

impl Task for ShardTask<'_> {
    fn train_batch(&self, step: u64, micro: usize) -> Result<HostBatch> {
        let mut state = mix_seed(self.seed ^ 0x5EED_DA7A, step, micro as u64);
        let rows: Vec<(Start<'_>, u64)> = (0..self.batch)
            .map(|_| {
                state = mix_seed(state, 1, 0);
                let (stream, replies) = if self.mix.is_empty() {
                    (&self.data.train, None)
                } else {
                    // The source's draw comes from a stream of its own (53 bits → [0, 1)).
                    self.source(step, crate::objective::unit(mix_seed(state, 2, 0)))
                };
                let span = (stream.len() - self.seq) as u64;
                (((state % span) as usize, stream, replies), state)
            })
            .collect();
        // Masked rows first (the attention sees the first `bidirectional` rows both ways; the
        // order of rows does not change the loss). Without masking every row stays in order.
        let (masked, causal): (Vec<_>, Vec<_>) = rows
            .into_iter()
            .partition(|(_, seed)| self.masking.as_ref().is_some_and(|m| m.masks(*seed)));
        let starts: Vec<Start<'_>> = masked.iter().chain(&causal).map(|(s, _)| *s).collect();
        let mut hb = self.assemble(&starts, false);
        if let Some(masking) = self.masking.as_ref().filter(|_| !masked.is_empty()) {
            for (r, (_, seed)) in masked.iter().enumerate() {
                masking.mask_row(&mut hb, r, *seed);
            }
            hb.bidirectional = masked.len();
            hb.target_bytes = hb
                .targets
                .iter()
                .zip(&hb.mask)
                .filter(|(_, m)| **m > 0.0)
                .map(|(&y, _)| u64::from(self.byte_len.get(y as usize).copied().unwrap_or(0)))
                .sum();
        }
        Ok(hb)
    }

    fn eval_batches(&self) -> usize {
        self.eval_windows / self.eval_batch
    }

    /// Windows spread evenly over the whole held-out stream (not just its first books), never
    /// overlapping.
    fn eval_batch(&self, i: usize) -> Result<HostBatch> {
        let starts: Vec<Start<'_>> = (i * self.eval_batch..(i + 1) * self.eval_batch)
            .map(|w| {
                (
                    w * self.all_windows / self.eval_windows * self.seq,
                    &self.data.val,
                    None,
                )
            })
            .collect();
        Ok(self.assemble(&starts, true))
    }
}
