//! Integration tests of the model crate (one binary: each links all of Burn).

// Tests unwrap: a panic carrying the error is how a test fails (clippy.toml, the same for unit tests).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bf16;
mod checkpoint;
mod common;
mod device;
mod export;
mod forward;
mod fused;
mod fused_norm;
mod generation;
mod inspect;
mod packing;
mod reference;
