//! `ember pretrain`: config → data → the shared training loop.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use ember_formats::Prepared;
use ember_formats::run::Stage;
use ember_model::SelectedDevice;
use ember_train::config::ConfigSource;
use ember_train::{FaultPlan, Outcome, Run, Start};

use crate::config::{MixLoss, ModelSection, PretrainConfig};
use crate::error::Result;
use crate::objective::{Masking, ObjectiveKind};
use crate::replies::ReplyIds;
use crate::task::{Mixed, ShardTask};

/// What to run.
pub struct PretrainOptions {
    /// A config file (a new run); ignored when resuming.
    pub config: Option<PathBuf>,
    /// `section.key=value` overrides.
    pub sets: Vec<String>,
    /// Resume this run directory from its newest valid checkpoint.
    pub resume: Option<PathBuf>,
    /// The device to train on.
    pub device: SelectedDevice,
    /// Set to stop after the current step (Ctrl-C).
    pub stop: Arc<AtomicBool>,
    /// Injected faults (tests).
    pub faults: FaultPlan,
    /// Start over: delete the run directory's checkpoints and metrics first (a new run
    /// otherwise refuses a directory that has checkpoints).
    pub restart: bool,
}

/// Reads the config of a new run, or of the run being resumed (its saved `config.toml`; the
/// run directory wins over `run.out_dir`), with its source for errors that need the model.
pub fn load_config(opts: &PretrainOptions) -> Result<(PretrainConfig, ConfigSource)> {
    match (&opts.resume, &opts.config) {
        (Some(_), Some(config)) => Err(crate::error::PretrainError::Option {
            option: "--config",
            value: config.display().to_string(),
            expected: "no config with --resume (a run resumes with the config saved in it)".into(),
        }),
        (Some(run), None) => {
            let path = run.join("config.toml");
            if !path.is_file() {
                return Err(ember_train::TrainError::Resume {
                    path: run.clone(),
                    reason: "has no config.toml: not an Ember run directory (nothing to resume)"
                        .into(),
                }
                .into());
            }
            let (mut c, source): (PretrainConfig, _) =
                ember_train::config::load_with_source(&path, &opts.sets)?;
            c.run.out_dir = run.clone();
            Ok((c, source))
        }
        (None, Some(path)) => Ok(ember_train::config::load_with_source(path, &opts.sets)?),
        (None, None) => Err(crate::error::PretrainError::Option {
            option: "--config",
            value: "nothing".into(),
            expected: "a config file (see configs/) or --resume RUN".into(),
        }),
    }
}

/// Runs pretraining; prints the resolved config first.
pub fn pretrain(opts: PretrainOptions) -> Result<Outcome> {
    let (mut config, source) = load_config(&opts)?;
    let data = Prepared::open(&config.data.dir)?;
    let mixed: Vec<Prepared> = config
        .data
        .mix
        .iter()
        .map(|m| Prepared::open(&m.dir))
        .collect::<std::result::Result<_, _>>()?;
    for (m, p) in config.data.mix.iter().zip(&mixed) {
        if p.tokenizer.fingerprint() != data.tokenizer.fingerprint() {
            return Err(crate::error::PretrainError::Option {
                option: "data.mix",
                value: m.dir.display().to_string(),
                expected: format!(
                    "a directory prepared with the tokenizer of data.dir ({})",
                    config.data.dir.display()
                ),
            });
        }
    }
    let init = match (&opts.resume, &config.init) {
        (None, Some(i)) => Some(ember_formats::resolve_checkpoint(&i.checkpoint)),
        _ => None,
    };
    // The hybrid objective's mask token is the first id past the tokenizer's.
    let tokenizer_ids = data.tokenizer.vocab_size();
    let ids = tokenizer_ids + config.objective.extra_ids();
    let room = |vocab: usize| {
        if vocab >= ids {
            return Ok(());
        }
        Err(crate::error::PretrainError::Option {
            option: "model.vocab_size",
            value: vocab.to_string(),
            expected: if ids > tokenizer_ids {
                format!(
                    "at least {ids}: the tokenizer's {tokenizer_ids} ids and the hybrid objective's mask token"
                )
            } else {
                format!("at least the tokenizer's {ids} ids")
            },
        })
    };
    let model_config = match &init {
        Some(dir) if config.model == ModelSection::default() => {
            ember_model::checkpoint::verify(dir)?.config(dir)?
        }
        _ => {
            room(config.model.vocab_size.unwrap_or(ids))?;
            config.model.resolve(ids)?
        }
    };
    room(model_config.vocab_size)?;
    // The batch must be a whole number of context-long rows: checked before any data is read.
    config
        .train
        .check(model_config.block_size)
        .map_err(|e| source.error(e))?;
    config.model = ModelSection::resolved(&model_config);
    let config_toml = ember_train::config::to_toml(&config);
    println!("resolved config:\n{config_toml}");
    let t = &config.train;
    let task = ShardTask::new(
        &data,
        t.batch_size,
        model_config.block_size,
        t.seed,
        t.eval_tokens,
    )?
    .with_mix(
        config
            .data
            .mix
            .iter()
            .zip(&mixed)
            .map(|(m, p)| {
                let replies = match m.loss {
                    MixLoss::All => None,
                    MixLoss::Replies => Some(ReplyIds::of(&p.tokenizer).ok_or_else(|| {
                        crate::error::PretrainError::Option {
                            option: "data.mix.loss",
                            value: format!("\"replies\" for {}", m.dir.display()),
                            expected: "a tokenizer with the chat tokens <|assistant|> and <|end|> (or loss = \"all\")".into(),
                        }
                    })?),
                };
                Ok(Mixed {
                    data: p,
                    weight: m.weight,
                    start_step: m.start_step,
                    replies,
                })
            })
            .collect::<Result<Vec<_>>>()?,
    )?;
    let task = match config.objective.kind {
        ObjectiveKind::Causal => task,
        ObjectiveKind::Hybrid => task.with_masking(Masking {
            share: config.objective.masked_share,
            rate: config.objective.mask_rate,
            mask_id: tokenizer_ids as u32,
            ordinary: (0..tokenizer_ids as u32)
                .filter(|&id| data.tokenizer.text_len(id) > 0)
                .collect(),
        }),
    };
    println!(
        "data {}: {} train tokens, {} held-out tokens; model: {} parameters",
        data.dir.display(),
        data.train.len(),
        data.val.len(),
        model_config.num_params()
    );
    // Only now, with the config, the model and the data all checked, is the old run deleted.
    if opts.restart && opts.resume.is_none() {
        ember_formats::run::clear_run(&config.run.out_dir)?;
    }
    let run = Run {
        stage: Stage::Pretrain,
        dir: config.run.out_dir.clone(),
        title: format!("{} — loss", title_of(&config.run.out_dir)),
        model_config,
        tokenizer: &data.tokenizer,
        train: config.train.clone(),
        config_toml,
        device: opts.device,
        start: match (&opts.resume, init) {
            (Some(_), _) => Start::Resume,
            (None, Some(dir)) => Start::Init(dir),
            (None, None) => Start::Fresh,
        },
        stop: opts.stop,
        faults: opts.faults,
    };
    Ok(ember_train::train(&run, &task)?)
}

fn title_of(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "run".into())
}
