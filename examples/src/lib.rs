//! Ember's examples: each `examples/*.rs` program uses the crates as a library.
//! Run one with `cargo run -p ember-examples --example NAME`.
//!
//! ```
//! // The examples are separate programs; this crate only hosts them.
//! assert!(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("train_tokenizer.rs").exists());
//! ```
