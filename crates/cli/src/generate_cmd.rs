//! `ember generate`: continue a prompt from a checkpoint, streaming the text.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use ember_model::{SamplingConfig, StopReason, checkpoint, generate};
use ember_tokenizer::{END, ENDOFTEXT};

use crate::device_args::DeviceArgs;

/// Flags of `ember generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// Checkpoint directory (with manifest.json), or a run directory: its newest complete checkpoint.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Text to continue.
    #[arg(long)]
    prompt: String,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 256)]
    max_new_tokens: usize,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.8)]
    temperature: f32,
    /// Sample only among the k most likely tokens (0: no limit).
    #[arg(long, default_value_t = 200)]
    top_k: usize,
    /// Sample only among the most likely tokens whose probabilities add up to p (1: no limit).
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    /// Penalise tokens already in the text (1: off; 1.1–1.3 is typical).
    #[arg(long, default_value_t = 1.0)]
    repetition_penalty: f32,
    /// Random seed: the same seed gives the same text.
    #[arg(long, default_value_t = 1337)]
    seed: u64,
    /// Stop when this string appears (may be given several times).
    #[arg(long)]
    stop: Vec<String>,
    /// Read special-token strings in the prompt (e.g. <|user|>) as special tokens.
    #[arg(long)]
    allow_special: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

/// Runs `ember generate`.
pub fn run(a: GenerateArgs) -> Result<()> {
    let selected = a.device.select()?;
    let path = ember_train::resolve_checkpoint(&a.checkpoint);
    let ck = checkpoint::load(&path, &selected.device)
        .with_context(|| format!("loading {}", path.display()))?;
    let tok = &ck.tokenizer;
    let prompt = if a.allow_special {
        tok.encode_with_specials(&a.prompt)
    } else {
        tok.encode(&a.prompt)
    };
    let cfg = SamplingConfig {
        max_new_tokens: a.max_new_tokens,
        temperature: a.temperature,
        top_k: a.top_k,
        top_p: a.top_p,
        repetition_penalty: a.repetition_penalty,
        seed: a.seed,
        stop_ids: [ENDOFTEXT, END]
            .iter()
            .filter_map(|s| tok.token_to_id(s))
            .collect(),
        stop_strings: a.stop.clone(),
    };
    let mut out = std::io::stdout().lock();
    write!(out, "{}", a.prompt)?;
    out.flush()?;
    let result = generate(&ck.model, tok, &prompt, &cfg, |piece| {
        write!(out, "{piece}").and_then(|_| out.flush()).is_ok()
    })?;
    writeln!(out)?;
    let why = match &result.stop {
        StopReason::MaxTokens => "max new tokens".to_string(),
        StopReason::StopToken(id) => format!(
            "stop token {:?}",
            String::from_utf8_lossy(tok.id_to_bytes(*id).unwrap_or_default())
        ),
        StopReason::StopString(s) => format!("stop string {s:?}"),
        StopReason::Cancelled => "output closed".to_string(),
    };
    eprintln!(
        "[{} tokens, {:.1} tokens/s, stopped at {why}]",
        result.ids.len(),
        result.tokens_per_sec
    );
    Ok(())
}
