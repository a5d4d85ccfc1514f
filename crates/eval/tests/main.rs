//! Tests of ember-eval: scoring rules against known numbers, the model scorer against a
//! direct computation, data robustness, repeatability and the report.

// Tests unwrap: a panic carrying the error is how a test fails (clippy.toml, the same for unit tests).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod data;
mod model;
mod reply;
mod report;
mod scoring;
