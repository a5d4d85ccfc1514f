//! Integration tests of data preparation, shards and pretraining runs (one binary).

mod common;
mod prepare;
mod runs;
mod shards;
