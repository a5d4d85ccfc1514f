//! The `ember` binary: parses the command line and reports errors with their context.

use clap::Parser;

fn main() -> std::process::ExitCode {
    match ember_cli::run(ember_cli::Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
