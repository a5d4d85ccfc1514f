//! Evaluating one checkpoint on a list of tasks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::Device;
use ember_formats::Prepared;
use ember_formats::dialogue::{Conversation, InvalidPolicy, load as load_dialogue};
use ember_formats::run::{HELD_OUT_FILE, HeldOut, Stage};
use ember_model::checkpoint::{self, Checkpoint};
use ember_tokenizer::Tokenizer;

use crate::data::{Loaded, task_file};
use crate::error::{EvalError, Result};
use crate::loglik::ModelScorer;
use crate::results::{CheckpointResult, TaskResult};
use crate::tasks::{choice, dialogue, generation, reply, text};

/// The tasks `ember eval` knows.
pub const TASKS: [&str; 9] = [
    "text",
    "sft-loss",
    "dialogue-choice",
    "context-gain",
    "hellaswag",
    "arc-easy",
    "blimp",
    "gsm8k",
    "samples",
];

/// Parses a comma-separated task list (`bpb` is another name for `text`, `all` is every task).
pub fn parse_tasks(list: &str) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let names: Vec<&str> = match name {
            "all" => TASKS.to_vec(),
            "bpb" => vec!["text"],
            n if TASKS.contains(&n) => vec![n],
            other => {
                return Err(EvalError::Usage(format!(
                    "--tasks: unknown task {other:?}; expected a comma-separated list of {} (or all)",
                    TASKS.join(", ")
                )));
            }
        };
        for n in names {
            if !out.iter().any(|o| o == n) {
                out.push(n.to_string());
            }
        }
    }
    if out.is_empty() {
        return Err(EvalError::Usage(format!(
            "--tasks: empty; expected some of {}",
            TASKS.join(", ")
        )));
    }
    Ok(out)
}

/// What to evaluate and how.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Task names (see [`TASKS`]).
    pub tasks: Vec<String>,
    /// At most this many items per task (windows for `text`, conversations for `sft-loss`).
    pub limit: Option<usize>,
    /// Text for `text` (default: the run's validation split).
    pub text: Option<PathBuf>,
    /// Window stride for `text` (default: the context length, i.e. non-overlapping).
    pub stride: Option<usize>,
    /// Dialogue JSONL for `sft-loss`, `dialogue-choice`, `context-gain` (default: an SFT run's
    /// held-out conversations).
    pub dialogue: Option<PathBuf>,
    /// Directory with the benchmark files.
    pub eval_data: PathBuf,
    /// Number of `samples`.
    pub samples: usize,
    /// Prompts of `samples`, cycled (empty: [`generation::TEXT_PROMPTS`] for a pretrained
    /// model, [`generation::CHAT_PROMPTS`] for a chat model).
    pub prompts: Vec<String>,
    /// Seed for `samples`.
    pub seed: u64,
    /// Most new tokens per generation (`gsm8k`, `samples`).
    pub max_new_tokens: usize,
    /// Per-item log-likelihoods are appended here as JSONL, if set.
    pub details: Option<PathBuf>,
    /// Score a question's context once for all its choices (off only to measure the gain).
    pub reuse_context: bool,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            tasks: vec!["text".into()],
            limit: None,
            text: None,
            stride: None,
            dialogue: None,
            eval_data: PathBuf::from("data/eval-mini"),
            samples: 6,
            prompts: Vec::new(),
            seed: 1337,
            max_new_tokens: 256,
            details: None,
            reuse_context: true,
        }
    }
}

/// Progress callback: (task, done, total).
pub type Progress<'a> = &'a mut dyn FnMut(&str, usize, usize);

/// The run config saved with a checkpoint, as TOML.
fn run_config(dir: &Path) -> Option<toml::Table> {
    let text = std::fs::read_to_string(dir.join("run_config.toml")).ok()?;
    text.parse::<toml::Table>().ok()
}

/// True when `dir` was saved by a fine-tuning run (the stage its `train_state.json` records).
pub fn is_sft_checkpoint(dir: &Path) -> bool {
    ember_formats::run::state_of(dir).is_some_and(|s| s.stage == Stage::Sft)
}

/// The prepared data directory behind a checkpoint: its own run's, or for an SFT run the
/// one its initial checkpoint was trained on.
fn prepared_dir(dir: &Path) -> Option<PathBuf> {
    let mut dir = dir.to_path_buf();
    for _ in 0..4 {
        let cfg = run_config(&dir)?;
        if let Some(d) = cfg
            .get("data")
            .and_then(|d| d.get("dir"))
            .and_then(|d| d.as_str())
        {
            return Some(PathBuf::from(d));
        }
        let init = cfg.get("init")?.get("checkpoint")?.as_str()?;
        dir = ember_formats::resolve_checkpoint(Path::new(init));
    }
    None
}

fn limited<T: Clone>(
    loaded: &Loaded<T>,
    limit: Option<usize>,
    group: impl Fn(&T) -> Option<String>,
) -> Vec<T> {
    let items: Vec<T> = loaded.items.iter().map(|(_, t)| t.clone()).collect();
    let Some(limit) = limit.filter(|&l| l < items.len()) else {
        return items;
    };
    // Grouped tasks take the first items of every group in turn, so a limit still covers all.
    let mut rank: BTreeMap<Option<String>, usize> = BTreeMap::new();
    let mut keyed: Vec<(usize, usize)> = items
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let r = rank.entry(group(t)).or_default();
            *r += 1;
            (*r, i)
        })
        .collect();
    keyed.sort();
    let mut chosen: Vec<usize> = keyed.into_iter().take(limit).map(|(_, i)| i).collect();
    chosen.sort();
    chosen.into_iter().map(|i| items[i].clone()).collect()
}

fn write_details(path: &Path, ck: &Path, task: &str, scores: &[choice::ItemScores]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| EvalError::io(dir, "create directory", e))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| EvalError::io(path, "open", e))?;
    let mut text = String::new();
    for (i, s) in scores.iter().enumerate() {
        let row = serde_json::json!({"checkpoint": ck.display().to_string(), "task": task, "item": i,
            "label": s.label, "logliks": s.logliks});
        text.push_str(&row.to_string());
        text.push('\n');
    }
    ember_files::write_all(&mut f, text.as_bytes()).map_err(|e| EvalError::io(path, "append", e))
}

/// Loads a checkpoint and runs every task of `opts` on it.
pub fn evaluate(
    dir: &Path,
    device: &Device,
    opts: &EvalOptions,
    progress: Progress,
) -> Result<CheckpointResult> {
    let ck = checkpoint::load(dir, device)?;
    // Read once per checkpoint: its step for the results, its stage for the tasks.
    let state = ember_formats::run::state_of(dir);
    let sft = state.as_ref().is_some_and(|s| s.stage == Stage::Sft);
    let mut out = CheckpointResult {
        checkpoint: dir.display().to_string(),
        step: state.as_ref().map(|s| s.step),
        tokens_seen: state.as_ref().map(|s| s.tokens_seen),
        params: ck.config.num_params() as u64,
        tasks: BTreeMap::new(),
        seconds: BTreeMap::new(),
        items_per_s: BTreeMap::new(),
    };
    if opts.limit == Some(0) {
        return Err(EvalError::Usage(
            "--limit 0: expected at least 1 item per task".into(),
        ));
    }
    for task in &opts.tasks {
        let start = Instant::now();
        let mut report = |done: usize, total: usize| progress(task, done, total);
        let (result, items) = run_task(task, dir, sft, &ck, opts, &mut report)?;
        // A score over nothing is not a score: an empty input is an error, never 0 or 100%.
        if items == 0 {
            return Err(EvalError::Usage(format!(
                "{task}: no items to score (the input is empty, or every item was invalid or too long for the {}-token context)",
                ck.config.block_size
            )));
        }
        let secs = start.elapsed().as_secs_f64();
        out.seconds.insert(task.clone(), secs);
        out.items_per_s
            .insert(task.clone(), items as f64 / secs.max(1e-9));
        out.tasks.insert(task.clone(), result);
    }
    Ok(out)
}

fn run_task(
    task: &str,
    dir: &Path,
    sft: bool,
    ck: &Checkpoint,
    opts: &EvalOptions,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(TaskResult, usize)> {
    let (model, tok, block) = (&ck.model, &ck.tokenizer, ck.config.block_size);
    match task {
        "text" => {
            let (ids, source) = text_ids(dir, tok, opts)?;
            let stride = opts.stride.unwrap_or(block);
            if stride == 0 || stride > block {
                return Err(EvalError::Usage(format!(
                    "--stride {stride}: expected 1 to the context length {block}"
                )));
            }
            let (nll, tokens, bytes, windows) =
                text::score_ids(model, tok, &ids, block, stride, opts.limit, progress)?;
            if tokens == 0 {
                return Err(EvalError::Usage(format!(
                    "text: {source} gives {} tokens, so there is nothing to predict; it needs at least 2 tokens of text",
                    ids.len()
                )));
            }
            let method = if stride == block {
                format!("{windows} non-overlapping windows of {block} tokens")
            } else {
                format!(
                    "{windows} windows of {block} tokens, stride {stride} (each scores its last {stride})"
                )
            };
            Ok((
                TaskResult::Text(text::result(source, nll, tokens, bytes, method, 0)),
                windows,
            ))
        }
        "sft-loss" => {
            let (mut convs, source, invalid) = dialogue_convs(dir, sft, opts)?;
            if let Some(l) = opts.limit {
                convs.truncate(l);
            }
            let n = convs.len();
            let r = dialogue::score(model, tok, &convs, block, source, invalid, progress)?;
            Ok((TaskResult::Text(r), n))
        }
        "dialogue-choice" | "context-gain" => {
            let (mut convs, source, _) = dialogue_convs(dir, sft, opts)?;
            if let Some(l) = opts.limit {
                convs.truncate(l);
            }
            let turns = reply::turns(tok, &convs)?;
            let mut scorer = ModelScorer::new(model, block);
            scorer.reuse_context = opts.reuse_context;
            if task == "context-gain" {
                let r = reply::context_gain(&mut scorer, &turns, opts.seed, source, progress)?;
                let n = r.replies as usize;
                return Ok((TaskResult::Gain(r), n));
            }
            let (items, left_out) = reply::rank_items(&turns, opts.seed);
            let (r, scores) =
                reply::dialogue_choice(&mut scorer, &turns, &items, source, left_out, progress)?;
            if let Some(p) = &opts.details {
                write_details(p, dir, task, &scores)?;
            }
            Ok((TaskResult::Choice(r), items.len()))
        }
        "hellaswag" | "arc-easy" | "blimp" => {
            let path = opts.eval_data.join(task_file(task));
            let loaded = match task {
                "hellaswag" => choice::load_hellaswag(&path)?,
                "arc-easy" => choice::load_arc(&path)?,
                _ => choice::load_blimp(&path)?,
            };
            let items = limited(&loaded, opts.limit, |i| i.group.clone());
            let mut scorer = ModelScorer::new(model, block);
            scorer.reuse_context = opts.reuse_context;
            let scores = choice::score(&mut scorer, tok, &items, progress)?;
            if let Some(p) = &opts.details {
                write_details(p, dir, task, &scores)?;
            }
            let n = items.len();
            Ok((
                TaskResult::Choice(choice::summarize(&items, &scores, &loaded)),
                n,
            ))
        }
        "gsm8k" => {
            let path = opts.eval_data.join(task_file(task));
            let loaded = generation::load_gsm8k(&path)?;
            let items = limited(&loaded, opts.limit, |_| None);
            let r = generation::gsm8k(
                model,
                tok,
                &items,
                &loaded,
                block,
                opts.max_new_tokens,
                progress,
            )?;
            Ok((TaskResult::Math(r), items.len()))
        }
        "samples" => {
            let chat = sft;
            let r = generation::samples(
                model,
                tok,
                chat,
                &opts.prompts,
                opts.samples,
                opts.seed,
                block,
                opts.max_new_tokens.min(96),
            )?;
            progress(opts.samples, opts.samples);
            Ok((TaskResult::Samples(r), opts.samples))
        }
        other => Err(EvalError::Usage(format!("unknown task {other:?}"))),
    }
}

fn text_ids(dir: &Path, tok: &Tokenizer, opts: &EvalOptions) -> Result<(Vec<u32>, String)> {
    if let Some(path) = &opts.text {
        let text = std::fs::read(path).map_err(|e| EvalError::io(path, "read", e))?;
        let text = crate::data::utf8(path, text)?;
        return Ok((tok.encode_parallel(&text), path.display().to_string()));
    }
    let Some(data) = prepared_dir(dir) else {
        return Err(EvalError::Usage(format!(
            "text: give --text FILE; {} has no run config naming a prepared data directory",
            dir.display()
        )));
    };
    let prepared = Prepared::open(&data)?;
    if prepared.tokenizer.fingerprint() != tok.fingerprint() {
        return Err(EvalError::Usage(format!(
            "text: {} was prepared with another tokenizer than {}'s; give --text FILE",
            data.display(),
            dir.display()
        )));
    }
    let mut ids = Vec::with_capacity(prepared.val.len());
    prepared.val.read(0, prepared.val.len(), &mut ids);
    Ok((ids, format!("{} (validation split)", data.display())))
}

/// `sft`: whether `dir` is a checkpoint of a fine-tuning run.
fn dialogue_convs(
    dir: &Path,
    sft: bool,
    opts: &EvalOptions,
) -> Result<(Vec<Conversation>, String, u64)> {
    if let Some(path) = &opts.dialogue {
        let loaded = load_dialogue(path, InvalidPolicy::Skip)?;
        return Ok((
            loaded.conversations,
            path.display().to_string(),
            loaded.skipped.len() as u64,
        ));
    }
    // A fine-tuning run records the conversations it held out; they are scored as recorded,
    // never re-derived from files that may have changed since.
    let run = ember_formats::run::run_of(dir)
        .filter(|_| sft)
        .ok_or_else(|| {
            EvalError::Usage(format!(
                "dialogue tasks: give --dialogue FILE; {} is not a checkpoint of a fine-tuning run, so it has no held-out conversations",
                dir.display()
            ))
        })?;
    if !run.join(HELD_OUT_FILE).is_file() {
        return Err(EvalError::Usage(format!(
            "dialogue tasks: give --dialogue FILE; {} has no {HELD_OUT_FILE} (runs made before it was recorded)",
            run.display()
        )));
    }
    let (held, convs) = HeldOut::load(run)?;
    let names: Vec<String> = held
        .sources
        .iter()
        .map(|s| s.path.display().to_string())
        .collect();
    Ok((
        convs,
        format!("held-out conversations of {}", names.join(", ")),
        0,
    ))
}
