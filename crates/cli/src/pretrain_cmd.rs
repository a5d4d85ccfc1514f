//! `ember pretrain`: next-token training from a config, or `--resume` of a run.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};
use clap::Args;
use ember_pretrain::{PretrainOptions, pretrain};
use ember_train::FaultPlan;

use crate::device_args::DeviceArgs;

/// Options of `ember pretrain`.
#[derive(Args, Debug)]
pub struct PretrainArgs {
    /// Config, overrides, resume.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Flags of every training command (`pretrain`, `sft`).
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Run config (TOML; see configs/). Not with --resume: a run resumes with its own config.
    #[arg(long, required_unless_present = "resume", conflicts_with = "resume")]
    pub config: Option<PathBuf>,
    /// Override a config value, e.g. --set train.max_steps=500 (repeatable).
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

impl RunArgs {
    /// The training device; bf16 is refused with the reason.
    pub fn training_device(&self) -> Result<ember_model::SelectedDevice> {
        if matches!(self.device.dtype, crate::device_args::DtypeFlag::Bf16) {
            anyhow::bail!(
                "--dtype bf16: training with every tensor in bf16 would lose updates smaller than bf16's precision (the weights must stay f32 master weights); train with --dtype f32, and for products with bf16 operands set train.precision = \"bf16-mixed\" in the config (CPUs with AVX-512 BF16); bf16 tensors are for generation"
            );
        }
        self.device.select()
    }
}

/// Ctrl-C (and SIGTERM) set the returned flag: the loop saves and stops after the current
/// step. A second Ctrl-C exits at once (the last complete checkpoint stays intact).
pub fn stop_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&flag));
        let _ = signal_hook::flag::register(sig, Arc::clone(&flag));
    }
    flag
}

/// Runs `ember pretrain`.
pub fn run(args: PretrainArgs) -> Result<()> {
    let args = args.run;
    let device = args.training_device()?;
    let opts = PretrainOptions {
        config: args.config,
        sets: args.sets,
        resume: args.resume,
        device,
        stop: stop_flag(),
        faults: FaultPlan::from_env(),
        restart: args.force,
    };
    let out = pretrain(opts).context("pretraining")?;
    if let Some(run) = out.checkpoint.parent().and_then(|p| p.parent()) {
        crate::eval_cmd::report_after_training(run);
    }
    let eval = out
        .last_eval
        .map(|(l, b)| format!(", val loss {l:.4}, val bpb {b:.4}"))
        .unwrap_or_default();
    println!(
        "{} at step {}{eval}; {:.0} tokens/s; checkpoint {}",
        if out.interrupted { "stopped" } else { "done" },
        out.step,
        out.tokens_per_s,
        out.checkpoint.display()
    );
    if out.skipped_steps > 0 {
        println!(
            "{} step(s) were skipped for non-finite values (see metrics.jsonl)",
            out.skipped_steps
        );
    }
    Ok(())
}
