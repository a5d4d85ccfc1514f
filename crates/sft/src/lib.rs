//! Ember supervised fine-tuning. Dialogue JSONL is read and validated, and conversations are
//! rendered with the chat template and the context policy, by `ember_formats::dialogue`;
//! [`batches`] hands the shared training loop deterministic batches of padded rows. [`sft`] fine-tunes a checkpoint with the shared loop (exact resume, metrics, held-out
//! assistant-token loss before training and at every evaluation).
//!
//! ```
//! use ember_formats::dialogue::parse_line;
//! use ember_tokenizer::Role;
//!
//! let msgs = parse_line(r#"{"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello!"}]}"#).unwrap();
//! assert_eq!(msgs[1].role, Role::Assistant);
//! let err = parse_line(r#"{"messages":[{"role":"assistant","content":"Hello!"}]}"#).unwrap_err();
//! assert!(err.contains("starting with the user"));
//! ```

pub mod batches;
pub mod config;
pub mod contrast;
mod error;
pub mod replies;
pub mod run;

pub use config::SftConfig;
pub use error::{Result, SftError};
pub use run::{SftOptions, SftReport, sft};
