//! Kernel tests against float64 references.

mod exp;
mod gelu;
mod softmax_xent;
