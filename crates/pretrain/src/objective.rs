//! The training objective (`[objective]`): next-token prediction alone (`causal`, the default)
//! or GPT-BERT's hybrid (Charpentier & Samuel, BabyLM 2024), in which a share of the training
//! rows are masked sequences.
//!
//! A masked row hides a share of its tokens (BERT's recipe: 80% become the mask token, 10% a
//! random ordinary token, 10% stay) and attends both ways; each hidden token is predicted from
//! the position before it, as every token is in next-token prediction, so the same output layer
//! serves both ("masked next-token prediction"). Only the hidden tokens count in a masked row's
//! loss: with attention both ways, the others are visible to the position predicting them.
//!
//! The mask token is the first id past the tokenizer's (the model gets one more embedding row);
//! no text encodes to it, generation never samples it, and the held-out figures, which are
//! always causal, never see it. Which rows are masked and which of their tokens are hidden is a
//! pure function of (seed, step, micro-batch, row), so a resumed run masks exactly as an
//! uninterrupted one.

use ember_train::HostBatch;
use serde::{Deserialize, Serialize};

/// `[objective]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ObjectiveSection {
    /// `"causal"` (next token only) or `"hybrid"` (some rows masked, attended both ways).
    #[serde(default)]
    pub kind: ObjectiveKind,
    /// Share of the training rows that are masked sequences (hybrid only).
    #[serde(default = "default_share")]
    pub masked_share: f64,
    /// Share of a masked row's tokens hidden (hybrid only).
    #[serde(default = "default_rate")]
    pub mask_rate: f64,
}

/// What the model learns to predict.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ObjectiveKind {
    /// The next token, every row.
    #[default]
    Causal,
    /// The next token, and hidden tokens of masked rows.
    Hybrid,
}

/// One masked row in 16, as the issue that asked for the objective suggested.
fn default_share() -> f64 {
    1.0 / 16.0
}

/// BERT's share of hidden tokens.
fn default_rate() -> f64 {
    0.15
}

impl Default for ObjectiveSection {
    fn default() -> Self {
        ObjectiveSection {
            kind: ObjectiveKind::Causal,
            masked_share: default_share(),
            mask_rate: default_rate(),
        }
    }
}

impl ObjectiveSection {
    /// The default (written out only when it is not).
    pub fn is_default(&self) -> bool {
        *self == ObjectiveSection::default()
    }

    /// Ids the model needs beyond the tokenizer's: the mask token of the hybrid objective.
    pub fn extra_ids(&self) -> usize {
        match self.kind {
            ObjectiveKind::Causal => 0,
            ObjectiveKind::Hybrid => 1,
        }
    }

    /// Checks the shares.
    // The negated comparisons are deliberate: they reject NaN.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    pub fn check(&self) -> Result<(), ember_train::config::FieldError> {
        use ember_train::config::FieldError;
        if !(self.masked_share > 0.0 && self.masked_share < 1.0) {
            return Err(FieldError::new(
                "objective.masked_share",
                self.masked_share,
                "a share of the rows above 0 and below 1",
            ));
        }
        if !(self.mask_rate > 0.0 && self.mask_rate < 1.0) {
            return Err(FieldError::new(
                "objective.mask_rate",
                self.mask_rate,
                "a share of a row's tokens above 0 and below 1",
            ));
        }
        Ok(())
    }
}

/// The masking of the hybrid objective, ready to apply to batches.
#[derive(Debug, Clone)]
pub struct Masking {
    /// Share of rows masked.
    pub share: f64,
    /// Share of a masked row's tokens hidden.
    pub rate: f64,
    /// The mask token's id (the tokenizer's vocabulary size).
    pub mask_id: u32,
    /// Ordinary (non-special) ids, for the random replacements.
    pub ordinary: Vec<u32>,
}

/// A uniform draw in [0, 1) from 53 bits of `z`.
pub(crate) fn unit(z: u64) -> f64 {
    (z >> 11) as f64 / (1u64 << 53) as f64
}

impl Masking {
    /// Whether a row whose draws come from `seed` is masked.
    pub fn masks(&self, seed: u64) -> bool {
        unit(ember_train::mix_seed(seed, 3, 0)) < self.share
    }

    /// Hides tokens of row `r` of `hb` (whose draws come from `seed`): of the positions
    /// `1..seq` whose token is a weighted target (of the position before), `rate` of them
    /// (rounded, at least one) are hidden; only their targets keep their weight. Targets do not
    /// change: the target of position `p - 1` is the input at `p`.
    pub fn mask_row(&self, hb: &mut HostBatch, r: usize, seed: u64) {
        let t = hb.seq;
        let row = r * t..(r + 1) * t;
        let (inputs, mask) = (&mut hb.inputs[row.clone()], &mut hb.mask[row]);
        let mut candidates: Vec<usize> = (1..t).filter(|&p| mask[p - 1] > 0.0).collect();
        mask.fill(0.0);
        if candidates.is_empty() {
            return;
        }
        let k = ((self.rate * candidates.len() as f64).round() as usize).clamp(1, candidates.len());
        let mut z = ember_train::mix_seed(seed, 4, 0);
        let mut next = || {
            z = ember_train::mix_seed(z, 5, 0);
            z
        };
        // The first k of a partial Fisher-Yates shuffle.
        for i in 0..k {
            let j = i + (next() % (candidates.len() - i) as u64) as usize;
            candidates.swap(i, j);
            let p = candidates[i];
            mask[p - 1] = 1.0;
            let u = unit(next());
            if u < 0.8 {
                inputs[p] = self.mask_id;
            } else if u < 0.9 && !self.ordinary.is_empty() {
                inputs[p] = self.ordinary[(next() % self.ordinary.len() as u64) as usize];
            }
        }
    }
}
