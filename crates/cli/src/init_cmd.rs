//! `ember init`: a freshly initialised model checkpoint (GPT-2 initialisation), the starting
//! point for training and a quick way to try generation and export end to end.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use burn::prelude::*;
use clap::Args;
use ember_model::{GptConfig, PRESETS, checkpoint};
use ember_tokenizer::Tokenizer;

/// Flags of `ember init`.
#[derive(Args, Debug)]
pub struct InitArgs {
    /// The tokenizer.json the model will use; the vocabulary size is taken from it.
    #[arg(long)]
    tokenizer: PathBuf,
    /// Model shape: gpt2-small (124M), tiny (tests) or nano (nanoGPT's CPU Shakespeare shape).
    #[arg(long, default_value = "nano")]
    preset: String,
    /// Override the preset's number of blocks.
    #[arg(long, value_parser = crate::checks::at_least_one)]
    n_layer: Option<usize>,
    /// Override the preset's attention heads per block.
    #[arg(long, value_parser = crate::checks::at_least_one)]
    n_head: Option<usize>,
    /// Override the preset's residual width.
    #[arg(long, value_parser = crate::checks::at_least_one)]
    n_embd: Option<usize>,
    /// Override the preset's context length.
    #[arg(long, value_parser = crate::checks::at_least_one)]
    block_size: Option<usize>,
    /// Weight initialisation seed.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Checkpoint directory to create.
    #[arg(long)]
    out: PathBuf,
    /// Replace --out if it exists.
    #[arg(long)]
    force: bool,
}

/// Runs `ember init`.
pub fn run(a: InitArgs) -> Result<()> {
    if a.out.exists() && !a.force {
        bail!(
            "{} already exists; pass --force to replace it",
            a.out.display()
        );
    }
    let tok = Tokenizer::load(&a.tokenizer)
        .with_context(|| format!("loading tokenizer {}", a.tokenizer.display()))?;
    let Some(mut cfg) = GptConfig::preset(&a.preset, tok.vocab_size()) else {
        bail!(
            "--preset {:?} is not a preset; choose one of {}",
            a.preset,
            PRESETS.join(", ")
        );
    };
    cfg.n_layer = a.n_layer.unwrap_or(cfg.n_layer);
    cfg.n_head = a.n_head.unwrap_or(cfg.n_head);
    cfg.n_embd = a.n_embd.unwrap_or(cfg.n_embd);
    cfg.block_size = a.block_size.unwrap_or(cfg.block_size);
    cfg.validate()?;
    let device = Device::flex();
    device.seed(a.seed);
    let model = cfg.init(&device);
    checkpoint::save(&a.out, &model, &cfg, &tok, &[])?;
    eprintln!(
        "wrote {} ({} parameters, preset {})",
        a.out.display(),
        cfg.num_params(),
        a.preset
    );
    Ok(())
}
