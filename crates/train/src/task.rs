//! What a training stage supplies to the shared loop: deterministic batches.

use ember_model::HostBatch;

use crate::contrast::ContrastBatch;
use crate::error::Result;

/// A stage's data, as the loop sees it. Batches must be a pure function of their arguments,
/// which is what makes a resumed run identical to an uninterrupted one.
pub trait Task {
    /// Micro-batch `micro` of optimizer step `step`.
    fn train_batch(&self, step: u64, micro: usize) -> Result<HostBatch>;
    /// Number of held-out batches in one evaluation.
    fn eval_batches(&self) -> usize;
    /// Held-out batch `i` (the same every evaluation).
    fn eval_batch(&self, i: usize) -> Result<HostBatch>;
    /// Rows for a reply-ranking term beside micro-batch `micro` of step `step` (`None`: no such
    /// term, the default). Like the batches, a pure function of its arguments.
    fn contrast_batch(&self, _step: u64, _micro: usize) -> Result<Option<ContrastBatch>> {
        Ok(None)
    }
}
