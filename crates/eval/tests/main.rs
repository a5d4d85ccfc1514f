//! Tests of ember-eval: scoring rules against known numbers, the model scorer against a
//! direct computation, data robustness, repeatability and the report.

mod common;
mod data;
mod model;
mod report;
mod scoring;
