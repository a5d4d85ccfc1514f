//! Ember's tokenizer: byte-level BPE with the GPT-4 split pattern, trained in parallel with
//! incremental pair counts, saved as a Hugging Face `tokenizer.json`.
//!
//! Stages, one module each (as in Hugging Face `tokenizers`): [`pretokenizer`] splits text into
//! pieces, [`model`] merges each piece's bytes into tokens, [`trainer`] learns the merges,
//! [`bytelevel`] spells bytes for the file format, and `serialization`/`validate` write and
//! check `tokenizer.json`.
//!
//! Every string encodes (no unknown token) and decodes back exactly. Special tokens
//! (`<|endoftext|>` and the chat tokens) are never produced from ordinary text: [`Tokenizer::encode`]
//! treats a literal `<|user|>` as text; [`Tokenizer::encode_with_specials`] recognises them.
//!
//! ```
//! use ember_tokenizer::{Tokenizer, TrainerConfig, train_from_texts};
//!
//! let corpus = ["the cat sat on the mat. the cat ate the rat.".repeat(20)];
//! let (tok, report) = train_from_texts(&corpus, &TrainerConfig::new(270)).unwrap();
//! assert_eq!(tok.vocab_size(), 270);
//! assert_eq!(report.merges, 270 - 256 - 5);
//!
//! let ids = tok.encode("the cat <|user|>");
//! assert_eq!(tok.decode(&ids).unwrap(), "the cat <|user|>");
//! assert!(!ids.contains(&tok.token_to_id("<|user|>").unwrap()));
//!
//! let again = Tokenizer::from_json(&tok.to_json(), "in memory").unwrap();
//! assert_eq!(again.encode("the rat"), tok.encode("the rat"));
//! ```

pub mod bytelevel;
pub mod chat;
mod error;
mod input;
pub mod model;
pub mod pretokenizer;
mod serialization;
mod tokenizer;
pub mod trainer;
mod validate;

pub use chat::{
    CHAT_TEMPLATE, ChatTokens, Keep, Message, Rendered, Role, fit_conversation, render_chat,
    render_prompt, stop_ids,
};
pub use error::{Error, Result};
pub use input::{cut_point, independent_ranges};
pub use pretokenizer::{SPLIT_PATTERN, split};
pub use tokenizer::{ASSISTANT, DEFAULT_SPECIALS, END, ENDOFTEXT, SYSTEM, Tokenizer, USER};
pub use trainer::{
    Feed, MAX_VOCAB, TrainReport, TrainerConfig, train, train_from_texts, train_with,
};
