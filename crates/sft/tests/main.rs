//! Integration tests of the SFT crate (one binary).

mod batches;
mod data;
