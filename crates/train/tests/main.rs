//! Integration tests of the shared training loop (one binary: each links all of Burn).

mod common;
mod config;
mod exact;
mod guards;
mod learning;
mod optim;
mod schedule;
