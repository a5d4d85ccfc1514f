//! The learning-rate schedule: linear warmup, then cosine, linear or warmup-stable-decay
//! (constant, then a cool-down over the last share of the steps) to a floor.
//!
//! A pure function of the step (nanoGPT's `get_lr`), so a resumed run needs no scheduler
//! state: Burn's schedulers keep state and its cosine rises again after its last step
//! (docs/burn.md, "Optimizer, schedule, clipping").

use crate::config::{Cooldown, Decay, TrainSection};

/// Learning rate for optimizer step `step` (0-based) of a run configured by `t`.
///
/// Warmup: `lr × (step + 1) / (warmup_steps + 1)` for `step < warmup_steps`; then the decay
/// takes the ratio `(step − warmup) / (max_steps − warmup)` from 0 to 1, ending at `min_lr`.
pub fn lr_at(t: &TrainSection, step: u64) -> f64 {
    if step < t.warmup_steps {
        return t.lr * (step + 1) as f64 / (t.warmup_steps + 1) as f64;
    }
    let span = t.max_steps.saturating_sub(t.warmup_steps).max(1);
    let ratio = ((step - t.warmup_steps) as f64 / span as f64).min(1.0);
    match t.decay {
        Decay::Constant => t.lr,
        Decay::Linear => t.min_lr + (1.0 - ratio) * (t.lr - t.min_lr),
        Decay::Cosine => {
            let coeff = 0.5 * (1.0 + (std::f64::consts::PI * ratio).cos());
            t.min_lr + coeff * (t.lr - t.min_lr)
        }
        Decay::Wsd => {
            let start = 1.0 - t.cooldown_fraction;
            if ratio <= start {
                return t.lr;
            }
            let x = ((ratio - start) / t.cooldown_fraction).min(1.0);
            let left = match t.cooldown {
                Cooldown::Linear => 1.0 - x,
                Cooldown::Sqrt => 1.0 - x.sqrt(),
            };
            t.min_lr + left * (t.lr - t.min_lr)
        }
    }
}
