//! `ember`: the command-line front end of the Ember pipeline (tokenizer → pretrain → sft →
//! eval → chat). Each stage is one subcommand; `ember help <stage>` lists its flags.

use clap::{Parser, Subcommand};

mod tokenizer_cmd;

#[derive(Parser)]
#[command(name = "ember", version, about = "Train, fine-tune, evaluate and chat with small GPTs, from scratch in Rust")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train, inspect and use byte-level BPE tokenizers.
    #[command(subcommand)]
    Tokenizer(tokenizer_cmd::TokenizerCommand),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Tokenizer(cmd) => tokenizer_cmd::run(cmd),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
