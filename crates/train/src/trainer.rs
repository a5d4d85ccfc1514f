//! The loop itself: accumulate, check, clip, update, log, evaluate, save, stop on request.
//!
//! Hand-written rather than burn-train's `Learner`: the Learner validates and checkpoints per
//! epoch only and resumes by epoch, without the data position (docs/burn.md, "Checkpoints and resume"), while a
//! run here must evaluate and save every N steps and resume bit-exactly mid-epoch.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;
use ember_model::{Gpt, GptConfig, SelectedDevice};
use ember_tokenizer::Tokenizer;

use crate::config::TrainSection;
use crate::error::{Result, TrainError};
pub use crate::faults::FaultPlan;
use crate::optim::{Optimizer, grad_norm, weights_finite};
use crate::progress::Progress;
use crate::schedule::lr_at;
use ember_formats::metrics::{MetricsLog, RankStats, Row};
use ember_formats::run::{self as run_dir, Stage, TrainState};

use crate::state::{self, SaveParts};
use crate::task::Task;

/// Where the weights come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// Fresh GPT-2 initialisation from the seed.
    Fresh,
    /// The weights of a checkpoint (fine-tuning); optimizer and step start afresh.
    Init(PathBuf),
    /// Continue the run directory's newest valid checkpoint exactly.
    Resume,
}

/// One training run.
pub struct Run<'a> {
    /// The run directory (config, metrics, plot, checkpoints).
    pub dir: PathBuf,
    /// The model's shape (checked against the checkpoint when resuming or initialising).
    pub model_config: GptConfig,
    /// The tokenizer (saved with every checkpoint; its hash is checked on resume).
    pub tokenizer: &'a Tokenizer,
    /// Optimizer, schedule and cadence.
    pub train: TrainSection,
    /// The resolved config, saved in the run directory and with every checkpoint.
    pub config_toml: String,
    /// Device to train on.
    pub device: SelectedDevice,
    /// Where the weights come from.
    pub start: Start,
    /// Set (by Ctrl-C) to save and stop after the current step.
    pub stop: Arc<AtomicBool>,
    /// Injected faults (tests).
    pub faults: FaultPlan,
    /// Title of the loss plot.
    pub title: String,
    /// What the run trains (recorded in every checkpoint's `train_state.json`).
    pub stage: Stage,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Optimizer steps done.
    pub step: u64,
    /// The last checkpoint written.
    pub checkpoint: PathBuf,
    /// Last held-out loss and bits per byte.
    pub last_eval: Option<(f64, f64)>,
    /// Stopped early on request (Ctrl-C).
    pub interrupted: bool,
    /// Steps skipped for non-finite values.
    pub skipped_steps: u64,
    /// Mean training throughput since this process started (or resumed) the run, tokens per second.
    pub tokens_per_s: f64,
}

struct Loop<'a, 'b> {
    /// Products with bfloat16 operands (`bf16_products`).
    bf16: bool,
    run: &'b Run<'a>,
    task: &'b dyn Task,
    device: Device,
    micro: usize,
    flops_per_token: f64,
    peak: Option<f64>,
    log: MetricsLog,
    progress: Progress,
    state: TrainState,
    optim: Optimizer,
}

/// Whether this run's products take bfloat16 operands: `train.precision = "bf16-mixed"` on
/// the CPU backend of a CPU that has the instructions.
pub(crate) fn bf16_products_here(run: &Run<'_>) -> bool {
    run.train.precision == crate::config::Precision::Bf16Mixed
        && !run.device.is_wgpu
        && ember_model::ops::bf16_products_available()
}

/// [`bf16_products_here`], said once at the start when bf16-mixed was asked for.
fn bf16_products(run: &Run<'_>) -> bool {
    if run.train.precision != crate::config::Precision::Bf16Mixed {
        return false;
    }
    let here = bf16_products_here(run);
    if here {
        println!(
            "precision: bf16-mixed (products with bfloat16 operands on {}; f32 weights)",
            ember_kernels::Tile::best().name()
        );
    } else {
        println!(
            "precision: bf16-mixed asked, but {}: products run in f32",
            if run.device.is_wgpu {
                "mixed precision is implemented for the CPU only"
            } else {
                "this CPU has no AVX-512 BF16 (or the fused kernels are off)"
            }
        );
    }
    here
}

/// Trains `run` on `task` until `max_steps` or a stop request.
pub fn train(run: &Run<'_>, task: &dyn Task) -> Result<Outcome> {
    let micro = run.train.validate(run.model_config.block_size)?;
    std::fs::create_dir_all(&run.dir)
        .map_err(|e| TrainError::io(&run.dir, "create run directory", e))?;
    let device = run.device.device.clone().autodiff();
    let (model, state, optim, resumed) = crate::resume::start(run, micro, &device)?;
    ember_files::write_atomic(&run.dir.join("config.toml"), run.config_toml.as_bytes())?;
    let log = MetricsLog::open(&run.dir, resumed.then_some(state.step))?;
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|n| *n > 0)
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1);
    let peak = crate::peak::run_peak(run.train.peak_flops, run.device.is_wgpu, threads);
    let mut system = ember_formats::SystemInfo::here(&run.device.to_string());
    if let Some(p) = &peak {
        system.peak_flops = Some(p.flops);
        system.peak_source = Some(p.source.clone());
    }
    system.save(&run.dir)?;
    if let Some(p) = &peak {
        println!("MFU peak: {}", p.source);
    }
    let peak = peak.map(|p| p.flops);
    let bf16 = bf16_products(run);
    let mut lp = Loop {
        bf16,
        run,
        task,
        device,
        micro,
        flops_per_token: run.model_config.flops_per_token(),
        peak,
        log,
        progress: Progress::new(state.step, run.train.max_steps, run.train.log_every),
        state,
        optim,
    };
    let result = lp.go(model, resumed);
    lp.progress.finish();
    result
}

/// Seed for micro-batch `micro` of step `step`: batches and dropout masks depend on nothing else.
pub fn mix_seed(seed: u64, step: u64, micro: u64) -> u64 {
    let mut z =
        seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ micro.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What one optimizer step produced.
enum StepResult {
    Updated {
        loss: f32,
        norm: f64,
        tokens: u64,
        positions: u64,
        rank: Option<RankStats>,
    },
    Skipped(String),
}

impl Loop<'_, '_> {
    fn go(&mut self, mut model: Gpt, resumed: bool) -> Result<Outcome> {
        let t = self.run.train.clone();
        self.progress.line(&format!(
            "training {} parameters for {} steps, {} micro-batch(es) of {} × {} tokens per step",
            model.num_params(),
            t.max_steps,
            self.micro,
            t.batch_size,
            self.run.model_config.block_size
        ));
        let mut last_eval = None;
        if !resumed {
            last_eval = Some(self.evaluate(&model)?);
        }
        let mut last_ck = run_dir::newest_valid(&self.run.dir)
            .map(|(_, d)| d)
            .unwrap_or_default();
        let session = Instant::now();
        let mut session_tokens = 0u64;
        let mut interrupted = false;
        while self.state.step < t.max_steps {
            let step = self.state.step;
            let lr = lr_at(&t, step);
            let t0 = Instant::now();
            let (next, result) = self.one_step(model, step, lr)?;
            model = next;
            let dt = t0.elapsed().as_secs_f64();
            self.state.step += 1;
            self.state.elapsed_s += dt;
            self.record(result, lr, dt, &mut session_tokens)?;
            let s = self.state.step;
            let done = s == t.max_steps;
            if (t.eval_every > 0 && s.is_multiple_of(t.eval_every)) || done {
                last_eval = Some(self.evaluate(&model)?);
            }
            interrupted = self.run.stop.load(Ordering::SeqCst) && !done;
            if (t.save_every > 0 && s.is_multiple_of(t.save_every)) || done || interrupted {
                last_ck = self.save(&model)?;
            }
            if interrupted {
                self.progress.line(&format!(
                    "stopped at step {s} on request; checkpoint {} saved. Continue with --resume {}",
                    last_ck.display(),
                    self.run.dir.display()
                ));
                break;
            }
        }
        let secs = session.elapsed().as_secs_f64().max(1e-9);
        // A resumed run that had already finished reports its last evaluation.
        if last_eval.is_none() {
            last_eval = self.log.rows().iter().rev().find_map(|r| match r {
                Row::Eval {
                    val_loss, val_bpb, ..
                } => Some((*val_loss, *val_bpb)),
                _ => None,
            });
        }
        Ok(Outcome {
            step: self.state.step,
            checkpoint: last_ck,
            last_eval,
            interrupted,
            skipped_steps: self.state.skipped_steps,
            tokens_per_s: session_tokens as f64 / secs,
        })
    }

    fn one_step(&mut self, model: Gpt, step: u64, lr: f64) -> Result<(Gpt, StepResult)> {
        let batches = (0..self.micro)
            .map(|m| self.task.train_batch(step, m))
            .collect::<Result<Vec<_>>>()?;
        let weight: f64 = batches.iter().map(|b| b.weight()).sum();
        let mut positions: u64 = batches.iter().map(|b| (b.batch * b.seq) as u64).sum();
        if weight == 0.0 {
            return Ok((
                model,
                StepResult::Skipped(
                    "every target of the step is masked out (nothing to train on)".into(),
                ),
            ));
        }
        let mut acc = GradientsAccumulator::new();
        let mut loss_sum = 0f32;
        let mut single = None;
        let mut rank: Option<RankStats> = None;
        for (m, hb) in batches.iter().enumerate() {
            let (x, y, mask) = hb.to_device(&self.device)?;
            // Dropout's draws come from the generator seeded here (see `with_seed`).
            let seed = mix_seed(self.state.seed, step, m as u64);
            let (nll, _) = ember_model::with_seed(&self.device, seed, || {
                ember_model::ops::with_bf16_products(self.bf16, || {
                    model.nll_sum_seeing(x, y, mask, &hb.visibility())
                })
            });
            let mut loss = nll.div_scalar(weight);
            if self.run.faults.nan_at.contains(&step) {
                loss = loss.mul_scalar(f32::NAN);
            }
            loss_sum += loss.clone().into_scalar::<f32>();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            let contrast = self.task.contrast_batch(step, m)?;
            if self.micro == 1 && contrast.is_none() {
                single = Some(grads);
            } else {
                acc.accumulate(&model, grads);
            }
            if let Some(cb) = contrast {
                // Its rows are computed too (throughput counts what the hardware did).
                positions += (cb.rows.batch * cb.rows.seq) as u64;
                let share = 1.0 / self.micro as f64;
                let (grads, stats) = ember_model::with_seed(&self.device, seed, || {
                    ember_model::ops::with_bf16_products(self.bf16, || {
                        crate::contrast::contrast_grads(&model, &cb, &self.device, share)
                    })
                })?;
                acc.accumulate(&model, grads);
                let r = rank.get_or_insert(RankStats {
                    loss: 0.0,
                    accuracy: 0.0,
                });
                r.loss += stats.loss * share as f32;
                r.accuracy += stats.accuracy * share as f32;
            }
        }
        if let Some(r) = rank.filter(|r| !r.loss.is_finite()) {
            return Ok((
                model,
                StepResult::Skipped(format!("ranking loss is {}", r.loss)),
            ));
        }
        if !loss_sum.is_finite() {
            return Ok((model, StepResult::Skipped(format!("loss is {loss_sum}"))));
        }
        let grads = single.unwrap_or_else(|| acc.grads());
        let norm = grad_norm(&model, &grads);
        if !norm.is_finite() {
            return Ok((
                model,
                StepResult::Skipped(format!("gradient norm is {norm}")),
            ));
        }
        let clip = self.run.train.grad_clip;
        let scale = if clip > 0.0 && norm > clip {
            clip / (norm + 1e-6)
        } else {
            1.0
        };
        let model = self.optim.step(model, grads, lr, scale);
        Ok((
            model,
            StepResult::Updated {
                loss: loss_sum,
                norm,
                tokens: weight as u64,
                positions,
                rank,
            },
        ))
    }

    fn record(
        &mut self,
        result: StepResult,
        lr: f64,
        dt: f64,
        session_tokens: &mut u64,
    ) -> Result<()> {
        let step = self.state.step;
        let total = self.run.train.max_steps;
        match result {
            StepResult::Updated {
                loss,
                norm,
                tokens,
                positions,
                rank,
            } => {
                self.state.tokens_seen += tokens;
                *session_tokens += positions;
                // Throughput and MFU count every position computed (padding included), which is
                // what the hardware did; `tokens` counts only the trained targets.
                let tps = positions as f64 / dt.max(1e-9);
                let mfu = self.peak.map(|p| self.flops_per_token * tps / p);
                let mfu_text = mfu
                    .map(|m| format!(" mfu {:.1}%", 100.0 * m))
                    .unwrap_or_default();
                let rank_text = rank
                    .map(|r| format!(" rank {:.3} ({:.0}%)", r.loss, 100.0 * r.accuracy))
                    .unwrap_or_default();
                self.progress.step(
                    step,
                    total,
                    &format!("loss {loss:.4}{rank_text} lr {lr:.2e} {tps:.0} tok/s{mfu_text}"),
                );
                self.log.push(Row::Train {
                    step,
                    tokens: self.state.tokens_seen,
                    loss,
                    lr,
                    grad_norm: norm,
                    tokens_per_s: tps,
                    mfu,
                    elapsed_s: self.state.elapsed_s,
                    rank,
                })?;
                Ok(())
            }
            StepResult::Skipped(reason) => {
                self.state.skipped_steps += 1;
                self.progress
                    .line(&format!("step {step}: skipped, {reason}; no update made"));
                self.log.push(Row::Skipped {
                    step,
                    reason: reason.clone(),
                })?;
                if self.state.skipped_steps > self.run.train.max_skipped_steps {
                    return Err(TrainError::Stopped {
                        step,
                        reason: format!(
                            "{} steps skipped for non-finite values (max_skipped_steps = {}); the last good checkpoint is intact in {}",
                            self.state.skipped_steps,
                            self.run.train.max_skipped_steps,
                            run_dir::checkpoints_dir(&self.run.dir).display()
                        ),
                    });
                }
                Ok(())
            }
        }
    }
}

impl Loop<'_, '_> {
    /// Held-out loss and bits per byte; prints one line and appends an eval row.
    fn evaluate(&mut self, model: &Gpt) -> Result<(f64, f64)> {
        let eval_model = model.valid();
        let inner = &self.run.device.device;
        let (mut nll, mut count, mut bytes) = (0f64, 0f64, 0u64);
        for i in 0..self.task.eval_batches() {
            let hb = self.task.eval_batch(i)?;
            let (x, y, mask) = hb.to_device(inner)?;
            let (s, _) = eval_model.nll_sum(x, y, mask);
            nll += f64::from(s.into_scalar::<f32>());
            count += hb.weight();
            bytes += hb.target_bytes;
        }
        let loss = nll / count.max(1.0);
        let bpb = nll / (std::f64::consts::LN_2 * (bytes.max(1)) as f64);
        self.progress.line(&format!(
            "eval step {}: val loss {loss:.4}, val bpb {bpb:.4} ({count} tokens)",
            self.state.step
        ));
        self.log.push(Row::Eval {
            step: self.state.step,
            tokens: self.state.tokens_seen,
            val_loss: loss,
            val_bpb: bpb,
            val_tokens: count as u64,
            elapsed_s: self.state.elapsed_s,
        })?;
        self.log.plot(&self.run.title)?;
        Ok((loss, bpb))
    }

    /// Saves a checkpoint unless the weights went non-finite (then the last good one stays).
    fn save(&mut self, model: &Gpt) -> Result<PathBuf> {
        let step = self.state.step;
        if !weights_finite(model) {
            return Err(TrainError::Stopped {
                step,
                reason: format!(
                    "the weights are not finite; not saving, so the last good checkpoint in {} stays the newest",
                    run_dir::checkpoints_dir(&self.run.dir).display()
                ),
            });
        }
        if self.run.faults.enospc_save_at == Some(step) {
            // Half the f32 weights: the disk fills in the middle of model.safetensors.
            ember_files::fail_writes_after(2 * self.run.model_config.num_params() as u64);
        }
        let dir = state::save(
            &self.run.dir,
            model,
            &self.run.model_config,
            self.run.tokenizer,
            SaveParts {
                optim: &self.optim,
                state: &self.state,
                config_toml: &self.run.config_toml,
            },
            self.run.train.keep_last,
            self.run.faults.abort_save_at == Some(step),
        )?;
        self.log.plot(&self.run.title)?;
        Ok(dir)
    }
}
