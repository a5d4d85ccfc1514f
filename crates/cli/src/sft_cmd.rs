//! `ember sft`: fine-tune a pretrained checkpoint on dialogue, or resume a fine-tuning run.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use ember_sft::{SftOptions, sft};
use ember_train::FaultPlan;

use crate::device_args::DeviceArgs;
use crate::pretrain_cmd::stop_flag;

/// Options of `ember sft`.
#[derive(Args, Debug)]
pub struct SftArgs {
    /// Run config (TOML; see configs/sft.toml). Not needed with --resume.
    #[arg(long, required_unless_present = "resume")]
    pub config: Option<PathBuf>,
    /// The pretrained checkpoint (or run directory) to start from; overrides init.checkpoint.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Override a config value, e.g. --set train.max_steps=200 (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Continue this run directory from its newest complete checkpoint, exactly.
    #[arg(long, value_name = "RUN")]
    pub resume: Option<PathBuf>,
    /// Start over in a run directory that has checkpoints, deleting them and its metrics.
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    /// Device selection.
    #[command(flatten)]
    pub device: DeviceArgs,
}

/// Runs `ember sft`.
pub fn run(args: SftArgs) -> Result<()> {
    if matches!(args.device.dtype, crate::device_args::DtypeFlag::Bf16) {
        anyhow::bail!("--dtype bf16: training needs f32 master weights, which Ember's optimizer does not keep yet; use --dtype f32");
    }
    let opts = SftOptions {
        config: args.config,
        sets: args.sets,
        resume: args.resume,
        init: args.init,
        device: args.device.select()?,
        stop: stop_flag(),
        faults: FaultPlan::from_env(),
        restart: args.force,
    };
    let r = sft(opts).context("fine-tuning")?;
    let o = &r.outcome;
    println!(
        "{} at step {}; held-out assistant loss {} -> {}; checkpoint {}",
        if o.interrupted { "stopped" } else { "done" },
        o.step,
        r.base_loss.map_or("-".into(), |l| format!("{l:.4}")),
        o.last_eval.map_or("-".into(), |e| format!("{:.4}", e.0)),
        o.checkpoint.display()
    );
    println!(
        "data: {} training / {} held-out conversations; {} invalid lines skipped; {} shortened, {} too long for the context; padding {:.1}%",
        r.sizes.0, r.sizes.1, r.invalid_skipped, r.render.truncated, r.render.skipped_too_long, 100.0 * r.padding
    );
    let s = &r.replies;
    println!(
        "replies to held-out prompts: {}/{} ended with <|end|> within the token limit ({:.1}%); {} prompts too long; samples in {}",
        s.ended,
        s.answered,
        100.0 * s.rate(),
        s.too_long,
        o.checkpoint.parent().and_then(|p| p.parent()).map(|p| p.join("replies.jsonl").display().to_string()).unwrap_or_default()
    );
    Ok(())
}
