//! Integration tests of the model crate (one binary: each links all of Burn).

mod checkpoint;
mod common;
mod device;
mod export;
mod forward;
mod fused;
mod fused_norm;
mod generation;
mod reference;
