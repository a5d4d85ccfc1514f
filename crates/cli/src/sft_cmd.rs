//! `ember sft`: fine-tune a pretrained checkpoint on dialogue, or resume a fine-tuning run.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use ember_sft::{SftOptions, sft};
use ember_train::FaultPlan;

use crate::pretrain_cmd::{RunArgs, stop_flag};

/// Options of `ember sft`.
#[derive(Args, Debug)]
pub struct SftArgs {
    /// The pretrained checkpoint (or run directory) to start from; overrides init.checkpoint.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Config (see configs/sft.toml), overrides, resume.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Runs `ember sft`.
pub fn run(args: SftArgs) -> Result<()> {
    let init = args.init;
    let args = args.run;
    let opts = SftOptions {
        device: args.training_device()?,
        config: args.config,
        sets: args.sets,
        resume: args.resume,
        init,
        stop: stop_flag(),
        faults: FaultPlan::from_env(),
        restart: args.force,
    };
    let r = sft(opts).context("fine-tuning")?;
    let o = &r.outcome;
    if let Some(run) = o.checkpoint.parent().and_then(|p| p.parent()) {
        crate::eval_cmd::report_after_training(run);
    }
    println!(
        "{} at step {}; held-out assistant loss {} -> {}; checkpoint {}",
        if o.interrupted { "stopped" } else { "done" },
        o.step,
        r.base_loss.map_or("-".into(), |l| format!("{l:.4}")),
        o.last_eval.map_or("-".into(), |e| format!("{:.4}", e.0)),
        o.checkpoint.display()
    );
    println!(
        "data: {} training / {} held-out conversations; {} invalid lines skipped; {} split into {} rows, {} shortened, {} too long for the context; padding {:.1}%",
        r.sizes.0,
        r.sizes.1,
        r.invalid_skipped,
        r.render.split,
        r.render.windows,
        r.render.truncated,
        r.render.skipped_too_long,
        100.0 * r.padding
    );
    let s = &r.replies;
    println!(
        "replies to held-out prompts: {}/{} ended with <|end|> within the token limit ({:.1}%); {} prompts shortened to their last exchanges, {} too long; samples in {}",
        s.ended,
        s.answered,
        100.0 * s.rate(),
        s.trimmed,
        s.too_long,
        o.checkpoint
            .parent()
            .and_then(|p| p.parent())
            .map(|p| p.join("replies.jsonl").display().to_string())
            .unwrap_or_default()
    );
    Ok(())
}
