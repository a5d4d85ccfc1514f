//! Ember supervised fine-tuning. This release has the data stage: [`data`] reads and validates
//! dialogue JSONL (`file:line: reason` for every problem); rendering uses the tokenizer's chat
//! template ([`ember_tokenizer::render_chat`]); [`batches`] applies the context policy (drop the
//! oldest whole exchanges, or skip), pads rows with masked targets and hands the shared training
//! loop deterministic batches. [`sft`] fine-tunes a checkpoint with the shared loop (exact resume, metrics, held-out
//! assistant-token loss before training and at every evaluation).
//!
//! ```
//! use ember_sft::data::parse_line;
//! use ember_tokenizer::Role;
//!
//! let msgs = parse_line(r#"{"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello!"}]}"#).unwrap();
//! assert_eq!(msgs[1].role, Role::Assistant);
//! let err = parse_line(r#"{"messages":[{"role":"assistant","content":"Hello!"}]}"#).unwrap_err();
//! assert!(err.contains("starting with the user"));
//! ```

pub mod batches;
pub mod config;
pub mod data;
mod error;
pub mod replies;
pub mod run;

pub use config::SftConfig;
pub use error::{Result, SftError};
pub use run::{SftOptions, SftReport, sft};
