//! Integration tests of the SFT crate (one binary).

mod data;
