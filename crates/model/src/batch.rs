//! A batch of token rows on the host, the form in which every stage hands data to the model.

use std::sync::Arc;

use burn::prelude::*;

use crate::error::{ModelError, Result};

/// One batch on the host: `inputs`/`targets` `[batch, seq]` row-major, and a weight per target
/// (1 where the position is trained; pretraining all ones, SFT ones on assistant tokens).
#[derive(Debug, Clone, PartialEq)]
pub struct HostBatch {
    /// Sequences in the batch.
    pub batch: usize,
    /// Tokens per sequence.
    pub seq: usize,
    /// Input ids, `batch × seq`.
    pub inputs: Vec<u32>,
    /// Next-token targets, `batch × seq`.
    pub targets: Vec<u32>,
    /// Weight of each target (0 or 1).
    pub mask: Vec<f32>,
    /// UTF-8 bytes of the weighted targets, special tokens excluded (for bits per byte).
    pub target_bytes: u64,
    /// The first `bidirectional` rows attend both ways: masked sequences of the hybrid
    /// objective (`Gpt::nll_sum_seeing`). 0 everywhere else.
    pub bidirectional: usize,
    /// Rows packed with several documents (fine-tuning conversations): `[batch, seq]`, the
    /// position where each token's document starts (see [`Visibility::starts`]). Empty: every
    /// row is one document.
    pub doc_starts: Vec<u32>,
}

impl HostBatch {
    /// Number of weighted targets.
    pub fn weight(&self) -> f64 {
        self.mask.iter().map(|&m| f64::from(m)).sum()
    }

    /// Uploads to `device`: inputs, targets, mask.
    pub fn to_device(
        &self,
        device: &Device,
    ) -> Result<(Tensor<2, Int>, Tensor<2, Int>, Tensor<2>)> {
        let n = self.batch * self.seq;
        let starts = self.doc_starts.len();
        if self.inputs.len() != n
            || self.targets.len() != n
            || self.mask.len() != n
            || (starts != 0 && starts != n)
        {
            return Err(ModelError::Batch(format!(
                "batch of {} × {} has {} inputs, {} targets, {} mask values, {} document starts",
                self.batch,
                self.seq,
                self.inputs.len(),
                self.targets.len(),
                self.mask.len(),
                starts
            )));
        }
        let ids = |v: &[u32]| {
            let v: Vec<i32> = v.iter().map(|&x| x as i32).collect();
            Tensor::<2, Int>::from_data(TensorData::new(v, [self.batch, self.seq]), device)
        };
        let mask = Tensor::<2>::from_data(
            TensorData::new(self.mask.clone(), [self.batch, self.seq]),
            device,
        );
        Ok((ids(&self.inputs), ids(&self.targets), mask))
    }
}

/// Which keys the queries of a training batch see: each row causally, unless said here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Visibility {
    /// The first `bidirectional` rows attend both ways (the hybrid objective's masked rows).
    pub bidirectional: usize,
    /// Packed rows, `[batch, seq]`: the position where each token's document starts; a query
    /// sees only the keys of its own document, and learned or sinusoidal positions count from
    /// the document's start, so a packed document trains as it would alone. Empty: every row is
    /// one document.
    pub starts: Arc<Vec<u32>>,
}

impl Visibility {
    /// Plain causal rows.
    pub fn causal() -> Self {
        Visibility::default()
    }

    /// Whether every row is causal and one document.
    pub fn is_causal(&self) -> bool {
        self.bidirectional == 0 && self.starts.is_empty()
    }
}

impl HostBatch {
    /// Which keys this batch's queries see.
    pub fn visibility(&self) -> Visibility {
        Visibility {
            bidirectional: self.bidirectional,
            starts: Arc::new(self.doc_starts.clone()),
        }
    }
}
