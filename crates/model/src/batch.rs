//! A batch of token rows on the host, the form in which every stage hands data to the model.

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
    /// objective (`Gpt::hybrid_nll_sum`). 0 everywhere else.
    pub bidirectional: usize,
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
        if self.inputs.len() != n || self.targets.len() != n || self.mask.len() != n {
            return Err(ModelError::Batch(format!(
                "batch of {} × {} has {} inputs, {} targets, {} mask values",
                self.batch,
                self.seq,
                self.inputs.len(),
                self.targets.len(),
                self.mask.len()
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
