//! `ember generate`: continue a prompt from a checkpoint, streaming the text.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use ember_model::{StopReason, checkpoint, generate};

pub use crate::sampling_args::SamplingArgs;
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
    #[command(flatten)]
    sampling: SamplingArgs,
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
    let path = ember_formats::resolve_checkpoint(&a.checkpoint);
    let ck = checkpoint::load(&path, &selected.device)
        .with_context(|| format!("loading {}", path.display()))?;
    let tok = &ck.tokenizer;
    let prompt = if a.allow_special {
        tok.encode_with_specials(&a.prompt)
    } else {
        tok.encode(&a.prompt)
    };
    let mut cfg = a.sampling.config();
    cfg.stop_ids = [ENDOFTEXT, END]
        .iter()
        .filter_map(|s| tok.token_to_id(s))
        .collect();
    cfg.stop_strings = a.stop.clone();
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
