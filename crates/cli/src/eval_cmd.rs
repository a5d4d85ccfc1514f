//! `ember eval` and `ember report`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use ember_eval::report::{self, ReportData};
use ember_eval::{EvalOptions, Results, TaskResult, evaluate, parse_tasks};
use indicatif::{ProgressBar, ProgressStyle};

use crate::checks;
use crate::device_args::DeviceArgs;

/// Flags of `ember eval`.
#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Checkpoint directory to evaluate (repeat for several), or a run directory: its newest checkpoint.
    #[arg(long, required_unless_present = "run")]
    checkpoint: Vec<PathBuf>,
    /// Evaluate every complete checkpoint of this run, in step order; results go to RUN/eval/results.json and the report to RUN/report.html.
    #[arg(long, conflicts_with = "checkpoint")]
    run: Option<PathBuf>,
    /// Comma-separated tasks: text (alias bpb), sft-loss, dialogue-choice (reply ranking, chance 25%), context-gain (nats/token a reply gains from its own conversation), hellaswag, arc-easy, blimp, gsm8k, samples; or all.
    #[arg(long, default_value = "text")]
    tasks: String,
    /// At most N items per task (windows for text, conversations for the dialogue tasks; BLiMP takes them evenly across paradigms).
    #[arg(long, value_parser = checks::at_least_one)]
    limit: Option<usize>,
    /// Where to write results.json (default RUN/eval/results.json with --run, else results.json).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Text file for the text task (default: the run's validation split).
    #[arg(long)]
    text: Option<PathBuf>,
    /// Window stride for the text task (default: the context length, non-overlapping windows).
    #[arg(long, value_parser = checks::at_least_one)]
    stride: Option<usize>,
    /// Dialogue JSONL for sft-loss, dialogue-choice and context-gain (default: the SFT run's held-out conversations).
    #[arg(long)]
    dialogue: Option<PathBuf>,
    /// Directory holding hellaswag_val.jsonl, arc_easy_test.jsonl, blimp_200per.jsonl, gsm8k_test.jsonl
    /// (default: the small slices bundled in data/eval-mini; the full sets are a separate download).
    #[arg(long, default_value = "data/eval-mini")]
    eval_data: PathBuf,
    /// Number of generations for the samples task.
    #[arg(long, default_value_t = 6, value_parser = checks::at_least_one)]
    samples: usize,
    /// Seed for the samples task.
    #[arg(long, default_value_t = 1337)]
    seed: u64,
    /// A prompt for the samples task, instead of the fixed English ones (repeat for several;
    /// cycled through --samples generations): a text start, or a user message for a chat model.
    #[arg(long = "prompt", value_parser = checks::prompt)]
    prompts: Vec<String>,
    /// Most new tokens per generation (gsm8k; samples use at most 96).
    #[arg(long, default_value_t = 256, value_parser = checks::max_new_tokens)]
    max_new_tokens: usize,
    /// Also write every item's per-choice log-likelihoods to this JSONL file (replaced).
    #[arg(long)]
    details: Option<PathBuf>,
    /// Score every choice with its full context instead of running a shared context once (slower; for benchmarks).
    #[arg(long)]
    no_context_reuse: bool,
    /// Do not write the HTML/Markdown report.
    #[arg(long)]
    no_report: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

/// Flags of `ember report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Run directory (metrics.jsonl, config, eval/results.json when present).
    #[arg(long, required_unless_present = "results")]
    run: Option<PathBuf>,
    /// A results.json from `ember eval` (without a run).
    #[arg(long, conflicts_with = "run")]
    results: Option<PathBuf>,
    /// Output HTML file (the Markdown version goes beside it as .md); default RUN/report.html or RESULTS.html.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn bar() -> ProgressBar {
    let pb = ProgressBar::new(0);
    if let Ok(style) =
        ProgressStyle::with_template("{msg:>24} [{bar:30}] {pos}/{len} {per_sec} ETA {eta}")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

fn print_result(name: &str, r: &TaskResult) {
    let (value, chance) = report::headline(r);
    let chance = chance.map(|c| format!(" (chance {c})")).unwrap_or_default();
    let extra = match r {
        TaskResult::Text(t) => format!(" over {} tokens; {}", t.tokens, t.method),
        TaskResult::Choice(c) => format!(
            ", n = {}, {} malformed, {} ties",
            c.acc.n, c.malformed, c.ties
        ),
        TaskResult::Math(m) => format!(", n = {}, {} too long", m.acc.n, m.too_long),
        TaskResult::Samples(_) => String::new(),
        TaskResult::Gain(g) => format!(
            " (own context {:.4}, another conversation's {:.4}), {} replies",
            g.own_nll, g.shuffled_nll, g.replies
        ),
    };
    println!("  {name:<10} {value}{chance}{extra}");
    if let TaskResult::Samples(s) = r {
        for x in &s.samples {
            println!("    {:?} -> {:?}", x.prompt, x.text);
        }
    }
}

/// Runs `ember eval`.
pub fn run(a: EvalArgs) -> Result<()> {
    let tasks = parse_tasks(&a.tasks)?;
    let checkpoints: Vec<PathBuf> = match &a.run {
        Some(run) => {
            let list = ember_formats::run::list(run);
            if list.is_empty() {
                bail!(
                    "{}: no complete checkpoint in {}/checkpoints",
                    run.display(),
                    run.display()
                );
            }
            list.into_iter().map(|(_, p)| p).collect()
        }
        None => a
            .checkpoint
            .iter()
            .map(|p| ember_formats::resolve_checkpoint(p))
            .collect(),
    };
    // Everything that can be checked before a model is loaded is, so a bad flag or a missing
    // file fails before any output is touched.
    for task in &tasks {
        if let Some(file) = ember_eval::benchmark_file(task) {
            let path = a.eval_data.join(file);
            if !path.is_file() {
                bail!(
                    "{task}: data file {} not found; give --eval-data DIR (a directory holding {file})",
                    path.display()
                );
            }
        }
    }
    for (flag, path) in [("--text", &a.text), ("--dialogue", &a.dialogue)] {
        if let Some(p) = path.as_ref().filter(|p| !p.is_file()) {
            bail!("{flag} {}: no such file", p.display());
        }
    }
    for ck in &checkpoints {
        ember_model::checkpoint::verify(ck)
            .with_context(|| format!("checking {}", ck.display()))?;
    }
    let selected = a.device.select()?;
    // Per-item details are written beside their final name and moved there only when every
    // checkpoint has been evaluated: a failed evaluation leaves an existing file as it was.
    let details_tmp = a.details.as_ref().map(|d| partial_name(d));
    if let Some(t) = &details_tmp {
        let _ = std::fs::remove_file(t);
    }
    let opts = EvalOptions {
        tasks,
        limit: a.limit,
        text: a.text.clone(),
        stride: a.stride,
        dialogue: a.dialogue.clone(),
        eval_data: a.eval_data.clone(),
        samples: a.samples,
        prompts: a.prompts.clone(),
        seed: a.seed,
        max_new_tokens: a.max_new_tokens,
        details: details_tmp.clone(),
        reuse_context: !a.no_context_reuse,
    };
    let out = a.out.clone().unwrap_or_else(|| match &a.run {
        Some(run) => run.join("eval").join("results.json"),
        None => PathBuf::from("results.json"),
    });
    let mut results = Results::new(selected.to_string());
    // Results of a long series are saved after every checkpoint, beside the final name, so an
    // interrupted series keeps what it measured without replacing an earlier results.json.
    let partial = partial_name(&out);
    let pb = bar();
    for ck in &checkpoints {
        let mut progress = |task: &str, done: usize, total: usize| {
            pb.set_message(task.to_string());
            pb.set_length(total as u64);
            pb.set_position(done as u64);
        };
        let r = match evaluate(ck, &selected.device, &opts, &mut progress) {
            Ok(r) => r,
            Err(e) => {
                if let Some(t) = &details_tmp {
                    let _ = std::fs::remove_file(t);
                }
                let kept = if results.checkpoints.is_empty() {
                    String::new()
                } else {
                    format!(
                        " (the checkpoints evaluated before it are in {})",
                        partial.display()
                    )
                };
                return Err(e).with_context(|| format!("evaluating {}{kept}", ck.display()));
            }
        };
        pb.suspend(|| {
            println!(
                "{} ({:.2}M parameters)",
                ck.display(),
                r.params as f64 / 1e6
            );
            for (name, t) in &r.tasks {
                print_result(name, t);
            }
        });
        results.checkpoints.push(r);
        results.save(&partial)?;
    }
    pb.finish_and_clear();
    std::fs::rename(&partial, &out)
        .with_context(|| format!("moving {} to {}", partial.display(), out.display()))?;
    if let (Some(t), Some(d)) = (&details_tmp, &a.details)
        && t.exists()
    {
        std::fs::rename(t, d)
            .with_context(|| format!("moving {} to {}", t.display(), d.display()))?;
    }
    println!("results: {}", out.display());
    if !a.no_report {
        let data = match &a.run {
            Some(run) => {
                let mut d = report::gather_run(run)?;
                d.results = Some(results);
                d
            }
            None => report::gather_results(&out)?,
        };
        let html = match &a.run {
            Some(run) => run.join("report.html"),
            None => out.with_extension("html"),
        };
        announce(report::write(&data, &html)?);
    }
    Ok(())
}

/// `results.json` → `results.json.partial`: where a file is written until it is complete.
fn partial_name(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

fn announce((html, md): (PathBuf, PathBuf)) {
    println!("report: {} (and {})", html.display(), md.display());
}

/// Writes RUN/report.html after a training run; a failure is a warning, not a failed run.
pub fn report_after_training(run: &Path) {
    let written = report::gather_run(run).and_then(|d| report::write(&d, &run.join("report.html")));
    match written {
        Ok(paths) => announce(paths),
        Err(e) => eprintln!("warning: the report could not be written: {e}"),
    }
}

/// Runs `ember report`.
pub fn report_cmd(a: ReportArgs) -> Result<()> {
    let (data, html): (ReportData, PathBuf) = match (&a.run, &a.results) {
        (Some(run), _) => (report::gather_run(run)?, run.join("report.html")),
        (None, Some(r)) => (report::gather_results(r)?, r.with_extension("html")),
        (None, None) => bail!("give --run RUN_DIR or --results results.json"),
    };
    announce(report::write(&data, a.out.as_deref().unwrap_or(&html))?);
    Ok(())
}
