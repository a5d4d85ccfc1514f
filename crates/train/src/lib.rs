//! Ember's training loop, written once and shared by pretraining and SFT.
//!
//! A stage implements [`Task`] (deterministic batches for `(step, micro-batch)` and a fixed
//! held-out set) and calls [`train`]. The loop does gradient accumulation to a token budget,
//! a NaN/Inf guard, global gradient-norm clipping, AdamW ([`optim`]) with decay on matrices
//! only or Muon for the blocks' matrices ([`muon`]), warmup + cosine/linear/WSD decay
//! ([`schedule`]), held-out loss and bits per byte,
//! `metrics.jsonl` + `loss.svg` (`ember_formats::metrics`), a progress bar, atomic checkpoints with
//! `keep_last` retention, exact resume ([`state`]) and a clean stop on Ctrl-C.
//!
//! ```
//! use ember_train::{TrainSection, lr_at};
//!
//! let t = TrainSection { lr: 1e-3, min_lr: 1e-4, warmup_steps: 10, max_steps: 110, ..Default::default() };
//! assert!((lr_at(&t, 0) - 1e-3 / 11.0).abs() < 1e-12);   // warmup starts low
//! assert!((lr_at(&t, 10) - 1e-3).abs() < 1e-12);          // peak after warmup
//! assert!((lr_at(&t, 110) - 1e-4).abs() < 1e-12);         // floor at the end
//! ```

pub mod config;
pub mod contrast;
mod error;
mod faults;
pub mod fused_adamw;
pub mod muon;
pub mod optim;
pub mod peak;
pub mod progress;
mod resume;
pub mod schedule;
mod sections;
pub mod state;
pub mod task;
pub mod trainer;

pub use config::{Cooldown, Decay, MuonNs, OptimizerKind, Precision, TrainSection};
pub use contrast::ContrastBatch;
pub use ember_model::HostBatch;
pub use error::{Result, TrainError};
pub use schedule::lr_at;
pub use task::Task;
pub use trainer::{FaultPlan, Outcome, Run, Start, mix_seed, train};
