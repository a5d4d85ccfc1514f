//! End-to-end tests of the `ember` binary, as a user runs it.

// Tests unwrap: a panic carrying the error is how a test fails (clippy.toml, the same for unit tests).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod battery;
mod bench;
mod chat;
mod eval;
mod faults;
mod fuzz;
mod generate;
mod http;
mod mix;
mod pretrain;
mod regression;
mod serve;
mod serve_load;
mod sft;
mod stages;
mod tokenizer;
