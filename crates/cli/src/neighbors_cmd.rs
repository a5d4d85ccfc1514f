//! `ember neighbors`: the tokens a model's input embeddings place nearest to a word.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use ember_model::checkpoint;

use crate::device_args::DeviceArgs;

/// Flags of `ember neighbors`.
#[derive(Args, Debug)]
pub struct NeighborsArgs {
    /// Checkpoint directory, or a run directory (its newest complete checkpoint).
    #[arg(long)]
    checkpoint: PathBuf,
    /// The word (or any text): one token, or several whose embeddings are averaged.
    #[arg(long)]
    token: String,
    /// How many neighbours.
    #[arg(long, default_value_t = 10, value_parser = crate::checks::at_least_one)]
    k: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

/// Runs `ember neighbors`.
pub fn run(a: NeighborsArgs) -> Result<()> {
    if a.token.is_empty() {
        bail!("--token is empty; expected a word");
    }
    let selected = a.device.select()?;
    let path = ember_formats::resolve_checkpoint(&a.checkpoint);
    let ck = checkpoint::load(&path, &selected.device)
        .with_context(|| format!("loading {}", path.display()))?;
    let tok = &ck.tokenizer;
    let query = tok.encode(&a.token);
    let near = ember_eval::inspect::neighbors(&ck, &a.token, a.k)?;
    let text =
        |id: u32| String::from_utf8_lossy(tok.id_to_bytes(id).unwrap_or_default()).into_owned();
    if a.json {
        let rows: Vec<serde_json::Value> = near
            .iter()
            .map(|(id, t, s)| serde_json::json!({"id": id, "token": t, "similarity": s}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"query": a.token, "query_ids": query, "neighbors": rows})
        );
        return Ok(());
    }
    let pieces: Vec<String> = query.iter().map(|&id| format!("{:?}", text(id))).collect();
    println!(
        "{:?} = {} ({})",
        a.token,
        pieces.join(" + "),
        if query.len() == 1 {
            "one token".to_string()
        } else {
            format!("mean of {} token embeddings", query.len())
        }
    );
    for (id, t, s) in near {
        println!("  {s:+.3}  {t:?} (id {id})");
    }
    Ok(())
}
