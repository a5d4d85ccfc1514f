//! `ember prepare`: tokenize a corpus into token shards.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use ember_pretrain::prepare::{PrepareOptions, ValSplit, prepare};

/// Options of `ember prepare`.
#[derive(Args, Debug)]
pub struct PrepareArgs {
    /// The tokenizer.json to encode with (from `ember tokenizer train`).
    #[arg(long)]
    pub tokenizer: PathBuf,
    /// Training inputs: files, directories (every file under them, sorted) or quoted glob
    /// patterns ("shards/*.parquet"); plain UTF-8 text, JSONL (.jsonl), Parquet (.parquet),
    /// gzip (.gz) or zstd (.zst) compressed.
    #[arg(long, required = true, num_args = 1..)]
    pub input: Vec<PathBuf>,
    /// Output directory (shards, meta.json, tokenizer.json).
    #[arg(long)]
    pub out: PathBuf,
    /// Hold out about this fraction of the text as whole documents (a single-document corpus
    /// gives up its last fraction, as nanoGPT does).
    #[arg(long, conflicts_with = "val_input", value_parser = crate::checks::val_fraction)]
    pub val_fraction: Option<f64>,
    /// Held-out inputs, of the same kinds as --input (instead of --val-fraction).
    #[arg(long, num_args = 1..)]
    pub val_input: Vec<PathBuf>,
    /// Text that separates documents within a file, with \n escapes (e.g. "\n\n\n\n\n" for the
    /// Gutenberg corpus); each file is one document when unset.
    #[arg(long)]
    pub doc_separator: Option<String>,
    /// The field of a JSONL record that holds its text.
    #[arg(long, default_value = "text")]
    pub text_field: String,
    /// The column of a Parquet file that holds the text.
    #[arg(long, default_value = "text")]
    pub text_column: String,
    /// Most tokens per shard file.
    #[arg(long, default_value_t = 100_000_000, value_parser = crate::checks::at_least_one)]
    pub shard_tokens: usize,
    /// Seed of the held-out document choice.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Replace an existing output directory.
    #[arg(long)]
    pub force: bool,
    /// The inputs are dialogue JSONL ({"messages": [...]} per line): each conversation becomes
    /// one document rendered with the chat template, for mixing into pretraining ([data] mix).
    #[arg(long, conflicts_with = "doc_separator")]
    pub dialogue: bool,
}

fn unescape(s: &str) -> String {
    s.replace("\\n", "\n")
        .replace("\\t", "\t")
        .replace("\\r", "\r")
}

/// Runs `ember prepare`.
pub fn run(args: PrepareArgs) -> Result<()> {
    let val = match (args.val_fraction, args.val_input.is_empty()) {
        (Some(f), _) => ValSplit::Fraction(f),
        (None, false) => ValSplit::Files(args.val_input.clone()),
        (None, true) => ValSplit::None,
    };
    let opts = PrepareOptions {
        val,
        doc_separator: args.doc_separator.as_deref().map(unescape),
        text_field: args.text_field,
        text_column: args.text_column,
        shard_tokens: args.shard_tokens,
        seed: args.seed,
        overwrite: args.force,
        progress: true,
        dialogue: args.dialogue,
        ..PrepareOptions::new(args.tokenizer, args.input, args.out.clone())
    };
    let r = prepare(&opts).with_context(|| format!("preparing {}", args.out.display()))?;
    println!(
        "wrote {}: train {} tokens ({} documents), held-out {} tokens ({} documents); {:.1} MB in {:.2} s ({:.1} MB/s)",
        args.out.display(),
        r.train_tokens,
        r.train_docs,
        r.val_tokens,
        r.val_docs,
        r.bytes as f64 / 1e6,
        r.seconds,
        r.bytes as f64 / 1e6 / r.seconds.max(1e-9)
    );
    println!("held-out split: {}", r.val_policy);
    Ok(())
}
