//! Kernel tests against float64 references.

// Tests unwrap: a panic carrying the error is how a test fails (clippy.toml, the same for unit tests).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod adamw;
mod attention;
mod bf16;
mod cached;
mod exp;
mod gelu;
mod ids;
mod layer_norm;
mod muon;
mod rows;
mod softmax_xent;
