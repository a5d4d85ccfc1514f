//! Ember evaluation: held-out loss and bits per byte, zero-shot benchmarks scored as
//! lm-evaluation-harness scores them, generation tasks, a checkpoint series, a versioned
//! `results.json`, and a self-contained HTML + Markdown report.
//!
//! The scoring rules are independent of the model: [`loglik::Scorer`] gives summed
//! log-likelihoods, [`tasks::choice`] turns them into accuracies (ties count as wrong), and
//! [`stats`] adds 95% intervals.
//!
//! ```
//! use ember_eval::tasks::choice::ItemScores;
//! use ember_eval::stats::Accuracy;
//!
//! // Two choices: the gold one (index 0) has the higher total but, per character, the lower.
//! let item = ItemScores { logliks: vec![-6.0, -8.0], label: 0, chars: vec![3, 8] };
//! assert!(item.correct());
//! assert!(!item.correct_norm()); // -2.0 per char vs -1.0
//! let acc = Accuracy::of(60, 100);
//! assert!(acc.lo < 0.6 && 0.6 < acc.hi);
//! ```

pub mod data;
mod error;
pub mod evaluate;
pub mod inspect;
pub mod loglik;
pub mod plot;
pub mod report;
pub mod results;
pub mod stats;
pub mod tasks;

pub use data::benchmark_file;
pub use error::{EvalError, Result};
pub use evaluate::{EvalOptions, TASKS, evaluate, is_sft_checkpoint, parse_tasks};
pub use results::{CheckpointResult, Results, TaskResult};
