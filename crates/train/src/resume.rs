//! Where a run's weights, optimizer and state come from: a fresh initialisation, a checkpoint
//! to fine-tune, or the newest valid checkpoint of the run itself (exact resume), with the
//! checks that refuse a changed model shape or tokenizer.

use std::path::Path;

use burn::prelude::*;
use ember_model::{Gpt, GptConfig, checkpoint};
use ember_tokenizer::Tokenizer;

use crate::config::OptimizerKind;
use crate::error::Result;
use crate::muon::MuonConfig;
use crate::optim::{AdamWConfig, Optimizer, RateScales, param_shapes};
use ember_formats::run::{self as run_dir, TrainState};

use crate::state::{config_diff, resume_error};
use crate::trainer::{Run, Start};

pub(crate) fn start(
    run: &Run<'_>,
    micro: usize,
    device: &Device,
) -> Result<(Gpt, TrainState, Optimizer, bool)> {
    let t = &run.train;
    let cfg = &run.model_config;
    let mut optim = Optimizer::new(
        AdamWConfig {
            beta1: t.beta1,
            beta2: t.beta2,
            eps: t.eps,
            weight_decay: t.weight_decay,
        },
        cfg.tie_embeddings,
    )
    .with_scales(RateScales {
        embedding: t.embedding_lr.unwrap_or(t.lr) / t.lr,
        head: t.head_lr.unwrap_or(t.lr) / t.lr,
        values: t.value_embed_lr.or(t.embedding_lr).unwrap_or(t.lr) / t.lr,
        scalars: t.scalar_lr.unwrap_or(t.lr) / t.lr,
    });
    if t.optimizer == OptimizerKind::Muon {
        optim = optim.with_muon(MuonConfig {
            lr: t.muon_lr,
            adamw_lr: t.lr,
            momentum: t.muon_momentum,
            momentum_start: t.muon_momentum_start,
            momentum_warmup: t.muon_momentum_warmup,
            weight_decay: t.muon_weight_decay,
            beta2: t.muon_beta2,
            orthogonalizer: crate::muon::orthogonalizer(t.muon_ns),
            bf16_products: crate::trainer::bf16_products_here(run),
        });
    }
    let fresh_state = TrainState::fresh(run.stage, t.seed, micro, run.tokenizer);
    match &run.start {
        Start::Fresh | Start::Init(_) => {
            if let Some((_, dir)) = run_dir::list(&run.dir).last() {
                return Err(resume_error(
                    &run.dir,
                    format!(
                        "already holds checkpoint {}; continue it with --resume, or choose another run directory (nothing was overwritten)",
                        dir.display()
                    ),
                ));
            }
            let model = match &run.start {
                Start::Init(path) => load_checked(path, cfg, run.tokenizer, device)?,
                _ => ember_model::with_seed(device, t.seed, || cfg.init(device).drawn()),
            };
            Ok((model, fresh_state, optim, false))
        }
        Start::Resume => resume(run, optim, device),
    }
}

fn load_checked(dir: &Path, cfg: &GptConfig, tok: &Tokenizer, device: &Device) -> Result<Gpt> {
    let ck = checkpoint::load(dir, device)?;
    let diff = config_diff(&ck.config, cfg);
    if !diff.is_empty() {
        return Err(resume_error(
            dir,
            format!("the model shape differs: {}", diff.join("; ")),
        ));
    }
    let (a, b) = (ck.tokenizer.fingerprint(), tok.fingerprint());
    if a != b {
        return Err(resume_error(
            dir,
            format!(
                "the tokenizer differs: checkpoint's tokenizer.json has SHA-256 {a}, the run's has {b}"
            ),
        ));
    }
    Ok(ck.model)
}

fn resume(
    run: &Run<'_>,
    mut optim: Optimizer,
    device: &Device,
) -> Result<(Gpt, TrainState, Optimizer, bool)> {
    run_dir::clean_interrupted_saves(&run.dir);
    let Some((_, dir)) = run_dir::newest_valid(&run.dir) else {
        return Err(resume_error(
            &run.dir,
            "no complete checkpoint to resume from (looked in checkpoints/step-*); start a new run without --resume",
        ));
    };
    let files = checkpoint::verify(&dir)?;
    let mut st = run_dir::read_state(&files, &dir)?;
    if st.stage != run.stage {
        return Err(resume_error(
            &dir,
            format!(
                "is a checkpoint of a {} run, not of {}; resume it with the command that started it",
                st.stage.describe(),
                run.stage.describe()
            ),
        ));
    }
    // A version-1 state is rewritten as the current version at the next save.
    st.version = run_dir::STATE_VERSION;
    let model = load_checked(&dir, &run.model_config, run.tokenizer, device)?;
    let shapes = param_shapes(&model);
    optim.load_bytes(
        files.get("optimizer.safetensors"),
        &shapes,
        &run.device.device,
        &dir.join("optimizer.safetensors"),
    )?;
    if st.step.checked_sub(st.skipped_steps) != Some(optim.steps()) {
        return Err(resume_error(
            &dir,
            format!(
                "optimizer has {} updates, train_state.json says {} steps with {} skipped",
                optim.steps(),
                st.step,
                st.skipped_steps
            ),
        ));
    }
    println!(
        "resuming from {} (step {}, {} tokens seen)",
        dir.display(),
        st.step,
        st.tokens_seen
    );
    Ok((model, st, optim, true))
}
