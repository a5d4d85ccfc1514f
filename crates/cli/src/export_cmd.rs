//! `ember export`: write a checkpoint in another ecosystem's format.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

/// Export formats.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ExportFormat {
    /// Hugging Face transformers `GPT2LMHeadModel` with its tokenizer files.
    HfGpt2,
}

/// Flags of `ember export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Checkpoint directory to export, or a run directory (its newest complete checkpoint).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Target format.
    #[arg(long, value_enum, default_value = "hf-gpt2")]
    format: ExportFormat,
    /// Output directory (loads with `GPT2LMHeadModel.from_pretrained(DIR)`).
    #[arg(long)]
    out: PathBuf,
    /// Replace --out if it exists.
    #[arg(long)]
    force: bool,
}

/// Runs `ember export`.
pub fn run(a: ExportArgs) -> Result<()> {
    match a.format {
        ExportFormat::HfGpt2 => {
            let ck = ember_formats::resolve_checkpoint(&a.checkpoint);
            ember_model::export::export_hf_gpt2(&ck, &a.out, a.force)
                .with_context(|| format!("exporting {} as hf-gpt2", ck.display()))?
        }
    }
    eprintln!(
        "wrote {} (transformers: GPT2LMHeadModel.from_pretrained / AutoTokenizer.from_pretrained)",
        a.out.display()
    );
    Ok(())
}
