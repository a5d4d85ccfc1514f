//! Kernel tests against float64 references.

mod adamw;
mod attention;
mod exp;
mod gelu;
mod layer_norm;
mod softmax_xent;
