//! `ember sft`: load and validate the dialogue mix, render it with the chat template, and
//! fine-tune a pretrained checkpoint with the shared training loop.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use ember_formats::dialogue::{
    Conversation, Example, InvalidPolicy, RenderStats, load, render_all, render_rows,
};
use ember_formats::run::{HELD_OUT_FILE, HeldOut, HeldOutSource, Stage};
use ember_model::{SelectedDevice, checkpoint};
use ember_tokenizer::{ChatTokens, Tokenizer};
use ember_train::config::ConfigSource;
use ember_train::{FaultPlan, Outcome, Run, Start, mix_seed};

use crate::batches::SftTask;
use crate::config::SftConfig;
use crate::error::{Result, SftError};

/// What to run.
pub struct SftOptions {
    /// A config file (a new run); ignored when resuming.
    pub config: Option<PathBuf>,
    /// `section.key=value` overrides.
    pub sets: Vec<String>,
    /// Resume this run directory exactly.
    pub resume: Option<PathBuf>,
    /// Overrides `init.checkpoint`.
    pub init: Option<PathBuf>,
    /// The device to train on.
    pub device: SelectedDevice,
    /// Set to stop after the current step (Ctrl-C).
    pub stop: Arc<AtomicBool>,
    /// Injected faults (tests).
    pub faults: FaultPlan,
    /// Start over in a run directory that has checkpoints (deleting them and its metrics).
    pub restart: bool,
}

/// What the run did besides training.
#[derive(Debug, Clone)]
pub struct SftReport {
    /// The loop's outcome.
    pub outcome: Outcome,
    /// Held-out assistant-token loss of the starting model.
    pub base_loss: Option<f64>,
    /// Invalid lines skipped (`skip_invalid`).
    pub invalid_skipped: usize,
    /// Rendering counts (whole, truncated, too long).
    pub render: RenderStats,
    /// Training conversations and held-out conversations.
    pub sizes: (usize, usize),
    /// Fraction of padding positions in the first 100 micro-batches.
    pub padding: f64,
    /// Replies sampled from held-out prompts with the final model.
    pub replies: crate::replies::ReplyStats,
}

/// Reads the config of a new run or of the run being resumed, with its source for errors
/// that need the model.
pub fn load_config(opts: &SftOptions) -> Result<(SftConfig, ConfigSource)> {
    let bad = |m: String| SftError::Config(m);
    let (mut c, source): (SftConfig, ConfigSource) = match (&opts.resume, &opts.config) {
        (Some(_), Some(config)) => {
            return Err(bad(format!(
                "--config {}: not with --resume (a run resumes with the config saved in it)",
                config.display()
            )));
        }
        (Some(run), None) => {
            let p = run.join("config.toml");
            if !p.is_file() {
                return Err(bad(format!(
                    "{}: has no config.toml: not an Ember run directory (nothing to resume)",
                    run.display()
                )));
            }
            let (mut c, source): (SftConfig, _) =
                ember_train::config::load_with_source(&p, &opts.sets)?;
            c.run.out_dir = run.clone();
            (c, source)
        }
        (None, Some(p)) => ember_train::config::load_with_source(p, &opts.sets)?,
        (None, None) => {
            return Err(bad(
                "--config: a config file (see configs/sft.toml) or --resume RUN is needed".into(),
            ));
        }
    };
    if let Some(i) = &opts.init {
        c.init.checkpoint = i.clone();
    }
    Ok((c, source))
}

/// Splits one file's conversations into (train, held-out) by a seeded choice.
fn split(
    convs: Vec<Conversation>,
    frac: f64,
    max: usize,
    seed: u64,
) -> (Vec<Conversation>, Vec<Conversation>) {
    let n = convs.len();
    let want = ((n as f64 * frac).round() as usize)
        .min(max)
        .min(n.saturating_sub(1));
    let mut keyed: Vec<(u64, usize)> = (0..n).map(|i| (mix_seed(seed, i as u64, 7), i)).collect();
    keyed.sort();
    let mut is_val = vec![false; n];
    for (_, i) in keyed.into_iter().take(want) {
        is_val[i] = true;
    }
    let (mut tr, mut va) = (Vec::new(), Vec::new());
    for (c, v) in convs.into_iter().zip(is_val) {
        if v { va.push(c) } else { tr.push(c) }
    }
    (tr, va)
}

/// Repeats a file's examples `epochs` times (a fractional part takes a seeded subset).
fn weighted(ex: Vec<Example>, epochs: f64, seed: u64) -> Vec<Example> {
    let whole = epochs.floor() as usize;
    let extra = ((epochs - epochs.floor()) * ex.len() as f64).round() as usize;
    let mut out = Vec::with_capacity(ex.len() * whole + extra);
    for _ in 0..whole {
        out.extend(ex.iter().cloned());
    }
    let mut keyed: Vec<(u64, usize)> = (0..ex.len())
        .map(|i| (mix_seed(seed, i as u64, 11), i))
        .collect();
    keyed.sort();
    out.extend(keyed.into_iter().take(extra).map(|(_, i)| ex[i].clone()));
    out
}

/// One dialogue file of a run, split into training and held-out conversations.
#[derive(Debug, Clone)]
pub struct FileSplit {
    /// The file.
    pub path: PathBuf,
    /// How many times a run sees its training part.
    pub epochs: f64,
    /// The file's seed (split and epoch subsets).
    pub seed: u64,
    /// Training conversations.
    pub train: Vec<Conversation>,
    /// Held-out conversations.
    pub val: Vec<Conversation>,
    /// `file:line: reason` of invalid lines skipped (with `data.skip_invalid`).
    pub skipped: Vec<String>,
    /// SHA-256 of the file as read.
    pub sha256: String,
}

/// Reads and splits every file of a config exactly as the run does, so an evaluation of the
/// run's held-out conversations sees the same ones.
pub fn file_splits(config: &SftConfig) -> Result<Vec<FileSplit>> {
    let policy = if config.data.skip_invalid {
        InvalidPolicy::Skip
    } else {
        InvalidPolicy::Stop
    };
    let mut out = Vec::new();
    for (k, f) in config.data.files.iter().enumerate() {
        let loaded = load(&f.path, policy)?;
        let seed = mix_seed(config.train.seed, k as u64, 3);
        let (train, val) = split(
            loaded.conversations,
            config.data.val_fraction(),
            config.data.val_max_per_file,
            seed,
        );
        out.push(FileSplit {
            path: f.path.clone(),
            epochs: f.epochs,
            seed,
            train,
            val,
            skipped: loaded.skipped,
            sha256: loaded.sha256,
        });
    }
    // Held-out files: every conversation evaluated, none trained.
    for p in &config.data.val_files {
        let loaded = load(p, policy)?;
        out.push(FileSplit {
            path: p.clone(),
            epochs: 0.0,
            seed: 0,
            train: Vec::new(),
            val: loaded.conversations,
            skipped: loaded.skipped,
            sha256: loaded.sha256,
        });
    }
    Ok(out)
}

/// Runs fine-tuning; prints the resolved config and the data summary first.
pub fn sft(opts: SftOptions) -> Result<SftReport> {
    let (config, source) = load_config(&opts)?;
    let ck_dir = ember_formats::resolve_checkpoint(&config.init.checkpoint);
    let files = checkpoint::verify(&ck_dir)?;
    let model_config = files.config(&ck_dir)?;
    let tokenizer = Tokenizer::from_json(
        &String::from_utf8_lossy(files.get("tokenizer.json")),
        &ck_dir.join("tokenizer.json").display().to_string(),
    )?;
    let chat = ChatTokens::of(&tokenizer)?;
    let context = model_config.block_size;
    let micro = config.train.check(context).map_err(|e| source.error(e))?;
    let (mut train, mut val, mut render, mut invalid) =
        (Vec::new(), Vec::new(), RenderStats::default(), 0);
    let (mut n_train, mut n_val) = (0, 0);
    let mut held_out: Vec<Conversation> = Vec::new();
    let mut sources = Vec::new();
    for f in file_splits(&config)? {
        sources.push(HeldOutSource {
            path: f.path.clone(),
            sha256: f.sha256.clone(),
            lines: f.val.iter().map(|c| c.line).collect(),
        });
        invalid += f.skipped.len();
        for s in &f.skipped {
            eprintln!("skipped {s}");
        }
        n_train += f.train.len();
        n_val += f.val.len();
        let (tr_ex, st1) = render_rows(
            &tokenizer,
            &f.train,
            context,
            config.data.long_conversations,
        )?;
        // Held-out loss keeps one row per conversation (its latest exchanges), as `ember eval`
        // scores it, so the two figures agree.
        let (va_ex, _) = render_all(&tokenizer, &f.val, context)?;
        held_out.extend(f.val.iter().cloned());
        render += &st1;
        if f.train.is_empty() {
            println!(
                "{}: {} held-out conversations (a validation file; {} of them fit {context} tokens)",
                f.path.display(),
                f.val.len(),
                va_ex.len()
            );
        } else {
            println!(
                "{}: {} training conversations (× {} epochs, {} rows), {} held out; {} split into {} rows to fit {context} tokens, {} shortened, {} too long",
                f.path.display(),
                f.train.len(),
                f.epochs,
                tr_ex.len(),
                f.val.len(),
                st1.split,
                st1.windows,
                st1.truncated,
                st1.skipped_too_long
            );
        }
        train.extend(weighted(tr_ex, f.epochs, f.seed));
        val.extend(va_ex);
    }
    if train.is_empty() || val.is_empty() {
        return Err(SftError::Config(format!(
            "the data mix gives {} training and {} held-out conversations; both must be non-empty",
            train.len(),
            val.len()
        )));
    }
    let task = SftTask::new(
        train,
        val,
        config.train.batch_size,
        micro,
        config.train.seed,
        chat.bos,
    );
    let task = if config.data.pack {
        task.packed(context)
    } else {
        task
    };
    let task = if config.contrast.on() {
        let c = crate::contrast::Contrast::new(
            config.contrast.clone(),
            task.train_examples(),
            mix_seed(config.train.seed, 0, 13),
            context,
            chat.bos,
        )
        .map_err(SftError::Config)?;
        println!(
            "contrast: {} replies a micro-batch each ranked against {} of {} distinct training replies, weight {}, scale {}",
            config.contrast.replies,
            config.contrast.negatives,
            c.pool_size(),
            config.contrast.weight,
            config.contrast.scale
        );
        task.with_contrast(c)
    } else {
        task
    };
    let padding = task.padding_fraction(100);
    let per_row = task.conversations_in(100) as f64 / (100 * config.train.batch_size) as f64;
    println!(
        "padding: {:.1}% of row positions ({}; {per_row:.2} conversations per row)",
        100.0 * padding,
        if config.data.pack {
            "rows packed, attention kept inside each conversation"
        } else {
            "rows padded, one conversation each; [data] pack = true packs them"
        }
    );
    let config_toml = ember_train::config::to_toml(&config);
    println!("resolved config:\n{config_toml}");
    // Only now, with the config, the model and the data all checked, is the old run deleted.
    if opts.restart && opts.resume.is_none() {
        ember_formats::run::clear_run(&config.run.out_dir)?;
    }
    let held = HeldOut::new(sources, &held_out);
    let out_dir = &config.run.out_dir;
    if opts.resume.is_some() && out_dir.join(HELD_OUT_FILE).is_file() {
        // A resumed run must see the data it started with: the split is a function of the
        // files, so a changed file would change what is held out (and trained on).
        let (before, _) = HeldOut::load(out_dir)?;
        for (was, now) in before.sources.iter().zip(&held.sources) {
            if was.sha256 != now.sha256 {
                return Err(SftError::Config(format!(
                    "{}: changed since the run started (SHA-256 {} then, {} now); resume with the same data, or start a new run",
                    now.path.display(),
                    was.sha256,
                    now.sha256
                )));
            }
        }
    } else {
        held.save(out_dir)?;
    }
    let run = Run {
        stage: Stage::Sft,
        dir: config.run.out_dir.clone(),
        title: "SFT — held-out assistant loss".into(),
        model_config,
        tokenizer: &tokenizer,
        train: config.train.clone(),
        config_toml,
        device: opts.device,
        start: if opts.resume.is_some() {
            Start::Resume
        } else {
            Start::Init(ck_dir)
        },
        stop: opts.stop,
        faults: opts.faults,
    };
    let outcome = ember_train::train(&run, &task)?;
    let base_loss = std::fs::read_to_string(run.dir.join("metrics.jsonl"))
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .filter(|v| v["kind"] == "eval" && v["step"] == 0)
            })
        })
        .and_then(|v| v["val_loss"].as_f64());
    let final_model = checkpoint::load(&outcome.checkpoint, &run.device.device)?;
    // Interleave the files' held-out prompts so a short sample still covers every file.
    let mut order: Vec<(u64, Conversation)> = held_out
        .into_iter()
        .map(|c| (mix_seed(config.sample.seed, c.line as u64, 5), c))
        .collect();
    order.sort_by_key(|(k, _)| *k);
    let prompts: Vec<Conversation> = order.into_iter().map(|(_, c)| c).collect();
    let replies = crate::replies::sample_replies(
        &final_model.model,
        &tokenizer,
        &prompts,
        &config.sample,
        &run.dir,
    )?;
    Ok(SftReport {
        outcome,
        base_loss,
        invalid_skipped: invalid,
        render,
        sizes: (n_train, n_val),
        padding,
        replies,
    })
}
