//! Pretraining batches: random windows of the train stream (nanoGPT's sampler), fixed
//! non-overlapping windows of the held-out stream.

use ember_train::{HostBatch, Result, Task, TrainError, mix_seed};

use ember_formats::Prepared;

/// The [`Task`] the shared loop trains on.
pub struct ShardTask<'a> {
    data: &'a Prepared,
    batch: usize,
    seq: usize,
    seed: u64,
    eval_windows: usize,
    eval_batch: usize,
    all_windows: usize,
    /// UTF-8 length of each id; 0 for special tokens, which bpb leaves out.
    byte_len: Vec<u32>,
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
            batch,
            seq,
            seed,
            eval_windows,
            eval_batch,
            all_windows: all,
            byte_len,
        })
    }

    fn assemble(
        &self,
        starts: &[usize],
        stream: &ember_formats::TokenStream,
        eval: bool,
    ) -> HostBatch {
        let (b, t) = (starts.len(), self.seq);
        let mut hb = HostBatch {
            batch: b,
            seq: t,
            inputs: Vec::with_capacity(b * t),
            targets: Vec::with_capacity(b * t),
            mask: Vec::with_capacity(b * t),
            target_bytes: 0,
        };
        let mut w = Vec::with_capacity(t + 1);
        for &s in starts {
            w.clear();
            stream.read(s, t + 1, &mut w);
            w.resize(t + 1, 0);
            hb.inputs.extend_from_slice(&w[..t]);
            for &y in &w[1..] {
                let bytes = self.byte_len.get(y as usize).copied().unwrap_or(0);
                // Training predicts every next token, document boundaries included; the
                // held-out figures leave special tokens out so bits per byte means text.
                let m = if eval && bytes == 0 { 0.0 } else { 1.0 };
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
        let span = (self.data.train.len() - self.seq) as u64;
        let mut state = mix_seed(self.seed ^ 0x5EED_DA7A, step, micro as u64);
        let starts: Vec<usize> = (0..self.batch)
            .map(|_| {
                state = mix_seed(state, 1, 0);
                (state % span) as usize
            })
            .collect();
        Ok(self.assemble(&starts, &self.data.train, false))
    }

    fn eval_batches(&self) -> usize {
        self.eval_windows / self.eval_batch
    }

    /// Windows spread evenly over the whole held-out stream (not just its first books), never
    /// overlapping.
    fn eval_batch(&self, i: usize) -> Result<HostBatch> {
        let starts: Vec<usize> = (i * self.eval_batch..(i + 1) * self.eval_batch)
            .map(|w| w * self.all_windows / self.eval_windows * self.seq)
            .collect();
        Ok(self.assemble(&starts, &self.data.val, true))
    }
}
