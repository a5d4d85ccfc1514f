//! Sampling flags shared by `generate` and `chat`.

use clap::Args;
use ember_model::SamplingConfig;

use crate::checks;

/// How tokens are drawn.
#[derive(Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Most tokens to generate.
    #[arg(long, default_value_t = 256, value_parser = checks::max_new_tokens)]
    pub max_new_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.8, value_parser = checks::temperature)]
    pub temperature: f32,
    /// Sample only among the k most likely tokens (0: no limit).
    #[arg(long, default_value_t = 200, value_parser = checks::count)]
    pub top_k: usize,
    /// Sample only among the most likely tokens whose probabilities add up to p (1: no limit).
    #[arg(long, default_value_t = 1.0, value_parser = checks::top_p)]
    pub top_p: f32,
    /// Penalise tokens already in the text (1: off; 1.1–1.3 is typical).
    #[arg(long, default_value_t = 1.0, value_parser = checks::repetition_penalty)]
    pub repetition_penalty: f32,
    /// Random seed: the same seed gives the same text.
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
}

impl SamplingArgs {
    /// The sampling config (no stop ids or strings yet).
    pub fn config(&self) -> SamplingConfig {
        SamplingConfig {
            max_new_tokens: self.max_new_tokens,
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
            repetition_penalty: self.repetition_penalty,
            seed: self.seed,
            stop_ids: Vec::new(),
            stop_strings: Vec::new(),
            logit_bias: Vec::new(),
        }
    }
}
