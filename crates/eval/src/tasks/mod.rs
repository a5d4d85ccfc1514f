//! The evaluation tasks, one module per kind.

pub mod choice;
pub mod dialogue;
pub mod generation;
pub mod reply;
pub mod text;
