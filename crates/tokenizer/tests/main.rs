//! Integration tests of the tokenizer crate (one binary: each test binary links the whole crate).

// Tests unwrap: a panic carrying the error is how a test fails (clippy.toml, the same for unit tests).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod chat;
mod common;
mod errors;
mod format;
mod pathological;
mod roundtrip;
mod splitter;
mod training;
