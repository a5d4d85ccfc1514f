//! `ember neighbors`: the tokens a model's input embeddings place nearest to a word, and a map
//! of its most frequent tokens (the embeddings' first two principal components).

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
    #[arg(long, required_unless_present = "map")]
    token: Option<String>,
    /// Also (or instead) draw the most frequent tokens' embeddings on their first two principal
    /// components, as an SVG written here (replaced atomically).
    #[arg(long)]
    map: Option<PathBuf>,
    /// How many tokens the map shows: the tokenizer's first merges of whole text.
    #[arg(long, default_value_t = 300, value_parser = crate::checks::at_least_one)]
    map_tokens: usize,
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
    if a.token.as_ref().is_some_and(|t| t.is_empty()) {
        bail!("--token is empty; expected a word");
    }
    let selected = a.device.select()?;
    let path = ember_formats::resolve_checkpoint(&a.checkpoint);
    let ck = checkpoint::load(&path, &selected.device)
        .with_context(|| format!("loading {}", path.display()))?;
    if let Some(out) = &a.map {
        let points = ember_eval::inspect::embedding_map(&ck, a.map_tokens)?;
        let title = format!(
            "{}: input embeddings of the {} most frequent tokens, first two principal components",
            path.display(),
            points.len()
        );
        let svg =
            ember_eval::plot::labelled_scatter_svg(&title, "component 1", "component 2", &points);
        ember_files::write_atomic(out, svg.as_bytes())
            .with_context(|| format!("writing {}", out.display()))?;
        eprintln!("map of {} tokens: {}", points.len(), out.display());
    }
    let Some(word) = &a.token else {
        return Ok(());
    };
    let tok = &ck.tokenizer;
    let query = tok.encode(word);
    let near = ember_eval::inspect::neighbors(&ck, word, a.k)?;
    let text =
        |id: u32| String::from_utf8_lossy(tok.id_to_bytes(id).unwrap_or_default()).into_owned();
    if a.json {
        let rows: Vec<serde_json::Value> = near
            .iter()
            .map(|(id, t, s)| serde_json::json!({"id": id, "token": t, "similarity": s}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"query": word, "query_ids": query, "neighbors": rows})
        );
        return Ok(());
    }
    let pieces: Vec<String> = query.iter().map(|&id| format!("{:?}", text(id))).collect();
    println!(
        "{:?} = {} ({})",
        word,
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
