//! Kernel tests against float64 references.

mod exp;
mod softmax_xent;
