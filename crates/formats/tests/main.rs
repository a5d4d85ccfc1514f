//! Integration tests of the on-disk formats.

// Tests unwrap: a panic carrying the error is how a test fails (clippy.toml, the same for unit tests).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod run;
