//! Ember's on-disk formats, read and written in one place so that every stage — preparation,
//! pretraining, fine-tuning, evaluation — agrees on them:
//!
//! - [`shards`]: token shards (a 64-byte header, then u16/u32 ids) and [`Prepared`], a
//!   directory written by `ember prepare` opened with every check (meta.json, tokenizer hash,
//!   header, size, id range).
//! - [`dialogue`]: dialogue JSONL, validated line by line (`file:line: reason`), and the
//!   rendering of a conversation into a training or scoring row with the context policy.
//! - [`run`]: a run directory — checkpoints, `train_state.json` (which records the stage),
//!   the held-out conversations of a fine-tuning run — and [`metrics`] (`metrics.jsonl`,
//!   `loss.svg`) and [`system`] (`system.json`).
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

pub mod dialogue;
mod error;
pub mod metrics;
pub mod prepared;
pub mod run;
pub mod shards;
pub mod system;

pub use error::{FormatError, Result};
pub use prepared::{Prepared, TokenStream};
pub use run::{Stage, TrainState, resolve_checkpoint};
pub use system::SystemInfo;
