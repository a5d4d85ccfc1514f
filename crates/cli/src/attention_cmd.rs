//! `ember attention`: what each head attends to in a text, as an SVG heat map or JSON.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;
use ember_model::checkpoint;

use crate::device_args::DeviceArgs;

/// Flags of `ember attention`.
#[derive(Args, Debug)]
pub struct AttentionArgs {
    /// Checkpoint directory, or a run directory (its newest complete checkpoint).
    #[arg(long)]
    checkpoint: PathBuf,
    /// The text to read (at most the model's context length in tokens).
    #[arg(long)]
    text: String,
    /// Only this layer (from 0); default: every layer.
    #[arg(long)]
    layer: Option<usize>,
    /// Only this head (from 0); default: every head.
    #[arg(long)]
    head: Option<usize>,
    /// Where to write the SVG (replaced atomically).
    #[arg(long, default_value = "attention.svg")]
    out: PathBuf,
    /// Print the weights as JSON instead of writing the SVG.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

/// Runs `ember attention`.
pub fn run(a: AttentionArgs) -> Result<()> {
    let selected = a.device.select()?;
    let path = ember_formats::resolve_checkpoint(&a.checkpoint);
    let ck = checkpoint::load(&path, &selected.device)
        .with_context(|| format!("loading {}", path.display()))?;
    let (cfg, tok) = (&ck.config, &ck.tokenizer);
    let ids = tok.encode(&a.text);
    if ids.is_empty() {
        bail!("--text is empty; expected some text to read");
    }
    if ids.len() > cfg.block_size {
        bail!(
            "--text is {} tokens, longer than the model's context of {}",
            ids.len(),
            cfg.block_size
        );
    }
    for (flag, v, n) in [
        ("--layer", a.layer, cfg.n_layer),
        ("--head", a.head, cfg.n_head),
    ] {
        if let Some(v) = v.filter(|&v| v >= n) {
            bail!("{flag} {v}: the model has {n} (0 to {})", n - 1);
        }
    }
    let maps = ember_eval::inspect::attention_maps(&ck, &a.text)?;
    let (tokens, weights) = (maps.tokens, maps.weights);
    let t = tokens.len();
    let panels: Vec<(usize, usize)> = (0..cfg.n_layer)
        .filter(|l| a.layer.is_none_or(|x| x == *l))
        .flat_map(|l| (0..cfg.n_head).map(move |h| (l, h)))
        .filter(|(_, h)| a.head.is_none_or(|x| x == *h))
        .collect();
    if a.json {
        let out: Vec<serde_json::Value> = panels
            .iter()
            .map(|&(l, h)| {
                let rows: Vec<&[f32]> = weights[l][h].chunks(t).collect();
                serde_json::json!({"layer": l, "head": h, "weights": rows})
            })
            .collect();
        println!("{}", serde_json::json!({"tokens": tokens, "maps": out}));
        return Ok(());
    }
    let svg = ember_eval::plot::attention_svg(&tokens, &weights, &panels);
    ember_files::write_atomic(&a.out, svg.as_bytes())?;
    println!(
        "{}: {} panel(s) of {t} tokens ({} layers × {} heads in the model)",
        a.out.display(),
        panels.len(),
        cfg.n_layer,
        cfg.n_head
    );
    Ok(())
}
