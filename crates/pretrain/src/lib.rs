//! Ember pretraining: [`prepare`](prepare::prepare) turns text into token shards (the format,
//! and `Prepared` which opens them with every check, are `ember_formats::shards`),
//! [`ShardTask`] samples nanoGPT-style random windows (a pure function of seed
//! and step, so resume is exact) and [`pretrain`] runs the shared loop of `ember-train`.
//!
//! ```
//! use ember_pretrain::prepare::{PrepareOptions, ValSplit, prepare};
//! use ember_formats::Prepared;
//! use ember_tokenizer::{TrainerConfig, train_from_texts};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let text = "First Citizen:\nBefore we proceed any further, hear me speak.\n".repeat(50);
//! let corpus = dir.path().join("corpus.txt");
//! std::fs::write(&corpus, &text).unwrap();
//! let (tok, _) = train_from_texts(&[text.as_str()], &TrainerConfig::new(300)).unwrap();
//! tok.save(&dir.path().join("tok.json"), false).unwrap();
//!
//! let report = prepare(&PrepareOptions {
//!     val: ValSplit::Fraction(0.1),
//!     ..PrepareOptions::new(dir.path().join("tok.json"), vec![corpus], dir.path().join("data"))
//! }).unwrap();
//! let data = Prepared::open(&dir.path().join("data")).unwrap();
//! assert_eq!(data.train.len() as u64, report.train_tokens);
//! let mut ids = Vec::new();
//! data.train.read(0, 5, &mut ids);
//! assert_eq!(ids[0], data.tokenizer.token_to_id("<|endoftext|>").unwrap());
//! ```

pub mod config;
mod error;
pub mod objective;
pub mod prepare;
pub mod replies;
pub mod run;
pub mod task;

pub use config::PretrainConfig;
pub use error::{PretrainError, Result};
pub use run::{PretrainOptions, pretrain};
pub use task::ShardTask;
