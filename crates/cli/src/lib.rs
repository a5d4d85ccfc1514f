//! The `ember` command line: one subcommand per pipeline stage (tokenizer → pretrain → sft →
//! eval → chat), each with help on every flag. `main.rs` only parses and reports errors; the
//! commands live here so they can be tested and reused.
//!
//! ```
//! use clap::Parser;
//! use ember_cli::Cli;
//!
//! let cli = Cli::try_parse_from(["ember", "tokenizer", "decode", "--tokenizer", "t.json", "--ids", "1 2 3"]);
//! assert!(cli.is_ok());
//! let bad = Cli::try_parse_from(["ember", "tokenizer", "train", "--vocab-size", "many"]);
//! assert!(bad.is_err());
//! ```

use clap::{Parser, Subcommand};

pub mod attention_cmd;
pub mod bench_cmd;
pub mod bench_ops;
pub mod chat_cmd;
pub mod checks;
pub mod device_args;
pub mod eval_cmd;
pub mod export_cmd;
pub mod generate_cmd;
pub mod init_cmd;
pub mod neighbors_cmd;
pub mod prepare_cmd;
pub mod pretrain_cmd;
pub mod sampling_args;
pub mod serve_cmd;
pub mod sft_cmd;
pub mod tokenizer_cmd;

/// Train, fine-tune, evaluate and chat with small GPTs, from scratch in Rust.
#[derive(Parser)]
#[command(name = "ember", version, about)]
pub struct Cli {
    /// The stage to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The pipeline stages.
#[derive(Subcommand)]
pub enum Command {
    /// Train, inspect and use byte-level BPE tokenizers.
    #[command(subcommand)]
    Tokenizer(tokenizer_cmd::TokenizerCommand),
    /// Tokenize a text corpus into train/held-out token shards.
    Prepare(prepare_cmd::PrepareArgs),
    /// Pretrain a GPT on prepared shards (next-token prediction), or resume a run.
    Pretrain(pretrain_cmd::PretrainArgs),
    /// Fine-tune a pretrained model on dialogue (chat template, assistant-only loss).
    Sft(sft_cmd::SftArgs),
    /// Create a freshly initialised model checkpoint.
    Init(init_cmd::InitArgs),
    /// Continue a prompt with a trained model, streaming the text.
    Generate(generate_cmd::GenerateArgs),
    /// Chat with a fine-tuned model (interactive, or one reply with --message).
    Chat(chat_cmd::ChatArgs),
    /// Evaluate checkpoints: held-out loss/bpb, zero-shot benchmarks, generations; writes results.json and a report.
    Eval(eval_cmd::EvalArgs),
    /// Write the HTML + Markdown report of a run or of a results.json.
    Report(eval_cmd::ReportArgs),
    /// Write a checkpoint in another format (Hugging Face GPT-2).
    Export(export_cmd::ExportArgs),
    /// What each attention head attends to in a text: an SVG heat map, or JSON.
    Attention(attention_cmd::AttentionArgs),
    /// The tokens whose input embeddings are nearest to a word's (cosine similarity).
    Neighbors(neighbors_cmd::NeighborsArgs),
    /// Serve a checkpoint over HTTP: OpenAI-compatible API and a web chat page.
    Serve(serve_cmd::ServeArgs),
    /// Measure training-step and generation speed on this machine.
    Bench(bench_cmd::BenchArgs),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Tokenizer(cmd) => tokenizer_cmd::run(cmd),
        Command::Prepare(args) => prepare_cmd::run(args),
        Command::Pretrain(args) => pretrain_cmd::run(args),
        Command::Sft(args) => sft_cmd::run(args),
        Command::Init(args) => init_cmd::run(args),
        Command::Generate(args) => generate_cmd::run(args),
        Command::Chat(args) => chat_cmd::run(args),
        Command::Eval(args) => eval_cmd::run(args),
        Command::Report(args) => eval_cmd::report_cmd(args),
        Command::Export(args) => export_cmd::run(args),
        Command::Neighbors(args) => neighbors_cmd::run(args),
        Command::Attention(args) => attention_cmd::run(args),
        Command::Serve(args) => serve_cmd::run(args),
        Command::Bench(args) => bench_cmd::run(args),
    }
}
