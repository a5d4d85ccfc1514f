//! Integration tests of the tokenizer crate (one binary: each test binary links the whole crate).

mod chat;
mod common;
mod errors;
mod format;
mod pathological;
mod roundtrip;
mod splitter;
mod training;
