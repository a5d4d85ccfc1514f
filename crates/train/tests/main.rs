//! Integration tests of the shared training loop (one binary: each links all of Burn).

// Tests unwrap: a panic carrying the error is how a test fails (clippy.toml, the same for unit tests).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod config;
mod contrast;
mod exact;
mod guards;
mod learning;
mod optim;
mod reference;
mod schedule;
