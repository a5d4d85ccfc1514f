//! End-to-end tests of the `ember` binary, as a user runs it.

mod bench;
mod chat;
mod eval;
mod generate;
mod pretrain;
mod regression;
mod sft;
mod tokenizer;
