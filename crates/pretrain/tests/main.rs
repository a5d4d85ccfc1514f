//! Integration tests of data preparation, shards and pretraining runs (one binary).

// Tests unwrap: a panic carrying the error is how a test fails (clippy.toml, the same for unit tests).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod golden;
mod hybrid;
mod prepare;
mod runs;
mod shards;
mod stream;
