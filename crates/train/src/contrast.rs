//! A reply-ranking term for fine-tuning: each ranked reply is scored, in its own context,
//! against replies taken from other conversations, and the loss is the cross-entropy of
//! picking it (InfoNCE over the group). The score is the reply's mean log-probability per
//! token — the one `dialogue-choice` ranks by — so the term teaches what that measure asks:
//! a reply that fits its conversation is likelier than one that fits another. Plain SFT
//! raises the true reply's probability and, as much, every fluent reply's (held-out ranking
//! moved 1–3 points under any SFT recipe; benches/RESULTS.md, "Dialogue (English)").
//!
//! A stage supplies the rows ([`crate::Task::contrast_batch`]); the loop adds the term's
//! gradient to the step's.

use burn::optim::GradientsParams;
use burn::prelude::*;
use ember_formats::metrics::RankStats;
use ember_model::{Gpt, HostBatch};

use crate::error::Result;

/// Rows for the ranking term: `groups × group` rows, each group the true reply first and
/// then the others, every row's mask on its reply's tokens (its `<|end|>` included).
#[derive(Debug, Clone)]
pub struct ContrastBatch {
    /// The rows.
    pub rows: HostBatch,
    /// Rows per group: the true reply and its negatives.
    pub group: usize,
    /// Multiplies the scores (nats per token) before the softmax: an inverse temperature.
    pub scale: f64,
    /// The term's weight beside the SFT loss.
    pub weight: f64,
}

/// `mean_nll [groups × group]` (row-major, true reply first in each group) → the mean over
/// groups of `logsumexp(scale·s) − scale·s₀` with `s = −mean_nll`: `[1]`.
pub fn ranking_loss(mean_nll: Tensor<1>, group: usize, scale: f64) -> Tensor<1> {
    let n = mean_nll.dims()[0];
    let s = mean_nll.reshape([n / group, group]).mul_scalar(-scale);
    let top = s.clone().max_dim(1).detach();
    let lse = (s.clone() - top.clone()).exp().sum_dim(1).log() + top;
    let first = s.narrow(1, 0, 1);
    (lse - first).mean().reshape([1])
}

/// The same in f64 on the host (a reference for tests, and the accuracy).
pub fn ranking_loss_host(mean_nll: &[f64], group: usize, scale: f64) -> (f64, f64) {
    let (mut loss, mut first) = (0.0, 0usize);
    let groups = mean_nll.len() / group;
    for g in mean_nll.chunks(group) {
        let s: Vec<f64> = g.iter().map(|x| -scale * x).collect();
        let top = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = top + s.iter().map(|x| (x - top).exp()).sum::<f64>().ln();
        loss += lse - s[0];
        first += usize::from(s[1..].iter().all(|&x| x < s[0]));
    }
    (loss / groups as f64, first as f64 / groups as f64)
}

/// The term's gradient for `model`, scaled by `cb.weight × share` (`share`: the micro-batch's
/// part of the step), with its statistics.
pub fn contrast_grads(
    model: &Gpt,
    cb: &ContrastBatch,
    device: &Device,
    share: f64,
) -> Result<(GradientsParams, RankStats)> {
    let (x, y, mask) = cb.rows.to_device(device)?;
    let mean_nll = model.row_mean_nll(x, y, mask);
    let host: Vec<f64> = mean_nll
        .clone()
        .into_data()
        .iter::<f32>()
        .map(f64::from)
        .collect();
    // The statistics come from the scores already on the host: one read of the device a step.
    let (value, accuracy) = ranking_loss_host(&host, cb.group, cb.scale);
    let loss = ranking_loss(mean_nll, cb.group, cb.scale);
    let grads = GradientsParams::from_grads(loss.mul_scalar(cb.weight * share).backward(), model);
    Ok((
        grads,
        RankStats {
            loss: value as f32,
            accuracy: accuracy as f32,
        },
    ))
}
