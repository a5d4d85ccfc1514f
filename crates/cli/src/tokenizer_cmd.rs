//! `ember tokenizer ...`: train, encode, decode, stats.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use ember_tokenizer::{Feed, Tokenizer, TrainerConfig, train_with};

#[derive(Subcommand)]
/// `ember tokenizer` subcommands.
pub enum TokenizerCommand {
    /// Learn a byte-level BPE tokenizer from a corpus (text, JSONL or Parquet files,
    /// directories, globs) and save it as tokenizer.json.
    Train(TrainArgs),
    /// Print the token ids of a text, space-separated on one line.
    Encode(EncodeArgs),
    /// Print the text of a list of token ids.
    Decode(DecodeArgs),
    /// Measure a tokenizer on a text file: bytes per token, speed, vocabulary use.
    Stats(StatsArgs),
}

#[derive(Args)]
/// Flags of `ember tokenizer train`.
pub struct TrainArgs {
    /// Training inputs: files, directories (every file under them, sorted) or quoted glob
    /// patterns; plain UTF-8 text, JSONL (.jsonl), Parquet (.parquet), gzip (.gz) or zstd
    /// (.zst) compressed. Give several to train on all of them.
    #[arg(long, num_args = 1.., required_unless_present = "dialogue")]
    input: Vec<PathBuf>,
    /// Dialogue JSONL files ({"messages": [...]} per line, as `ember prepare --dialogue` and
    /// `ember sft` read them) whose messages are learned from too, each message one document:
    /// a model that will chat should have merges for conversational words, not only for its
    /// prose (the main job's chat model: 0.047 lower held-out reply bpb with them).
    #[arg(long, num_args = 1..)]
    dialogue: Vec<PathBuf>,
    /// The field of a JSONL record that holds its text.
    #[arg(long, default_value = "text")]
    text_field: String,
    /// The column of a Parquet file that holds the text.
    #[arg(long, default_value = "text")]
    text_column: String,
    /// Total vocabulary size: 256 byte tokens + merges + the 5 special tokens.
    #[arg(long, value_parser = crate::checks::at_least_one)]
    vocab_size: usize,
    /// Where to write the tokenizer (Hugging Face tokenizer.json format).
    #[arg(long)]
    out: PathBuf,
    /// Overwrite --out if it exists.
    #[arg(long)]
    force: bool,
    /// Replace invalid UTF-8 with U+FFFD (counted in the summary) instead of stopping.
    #[arg(long)]
    lossy: bool,
    /// Counting threads (default: all cores, or RAYON_NUM_THREADS).
    #[arg(long, default_value_t = 0, value_parser = crate::checks::threads_or_all)]
    threads: usize,
}

#[derive(Args)]
/// Flags of `ember tokenizer encode`.
pub struct EncodeArgs {
    /// The tokenizer.json to use.
    #[arg(long)]
    tokenizer: PathBuf,
    /// Text to encode.
    #[arg(long, conflicts_with = "input", required_unless_present = "input")]
    text: Option<String>,
    /// File whose whole content is encoded.
    #[arg(long)]
    input: Option<PathBuf>,
    /// Treat special-token strings such as <|endoftext|> in the text as special tokens.
    #[arg(long)]
    allow_special: bool,
}

#[derive(Args)]
/// Flags of `ember tokenizer decode`.
pub struct DecodeArgs {
    /// The tokenizer.json to use.
    #[arg(long)]
    tokenizer: PathBuf,
    /// Token ids separated by spaces or commas, e.g. "464 3290 13".
    #[arg(long)]
    ids: String,
}

#[derive(Args)]
/// Flags of `ember tokenizer stats`.
pub struct StatsArgs {
    /// The tokenizer.json to measure.
    #[arg(long)]
    tokenizer: PathBuf,
    /// UTF-8 text file to encode.
    #[arg(long)]
    input: PathBuf,
    /// Encoding threads: 1 encodes the text as one string; more encode ~64 KB line-aligned
    /// chunks in parallel.
    #[arg(long, default_value_t = 1, value_parser = crate::checks::threads)]
    threads: usize,
    /// Encode this many times and report the fastest (steadier speed figures).
    #[arg(long, default_value_t = 1, value_parser = crate::checks::at_least_one)]
    repeat: usize,
    /// Print the figures as one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs one `ember tokenizer` subcommand.
pub fn run(cmd: TokenizerCommand) -> Result<()> {
    match cmd {
        TokenizerCommand::Train(a) => train_cmd(a),
        TokenizerCommand::Encode(a) => encode_cmd(a),
        TokenizerCommand::Decode(a) => decode_cmd(a),
        TokenizerCommand::Stats(a) => stats_cmd(a),
    }
}

fn load(path: &Path) -> Result<Tokenizer> {
    Tokenizer::load(path).with_context(|| format!("loading tokenizer {}", path.display()))
}

fn read_text(path: &Path) -> Result<String> {
    Ok(ember_files::read_utf8(path)?)
}

fn train_cmd(a: TrainArgs) -> Result<()> {
    if a.out.exists() && !a.force {
        bail!(
            "{} already exists; pass --force to overwrite it",
            a.out.display()
        );
    }
    let mut cfg = TrainerConfig::new(a.vocab_size);
    cfg.lossy = a.lossy;
    cfg.threads = a.threads;
    cfg.progress = true;
    let start = Instant::now();
    let inputs = if a.input.is_empty() {
        Vec::new()
    } else {
        ember_corpus::expand(&a.input)?
    };
    // Dialogue files are read (and validated, errors naming file and line) before any counting.
    let mut dialogues = Vec::with_capacity(a.dialogue.len());
    for path in &a.dialogue {
        let loaded =
            ember_formats::dialogue::load(path, ember_formats::dialogue::InvalidPolicy::Stop)?;
        let bytes = std::fs::metadata(path).map_or(0, |m| m.len());
        dialogues.push((loaded, bytes));
    }
    let format = ember_corpus::Format {
        text_field: a.text_field.clone(),
        text_column: a.text_column.clone(),
        lossy: a.lossy,
        ..ember_corpus::Format::default()
    };
    let total = ember_corpus::total_bytes(&inputs) + dialogues.iter().map(|d| d.1).sum::<u64>();
    let (tok, report) = train_with(&cfg, total, |feed: &mut Feed<'_>| -> Result<()> {
        /// Each piece of each document goes to the counting workers.
        struct ToTrainer<'f, 'a>(&'f mut Feed<'a>);
        impl ember_corpus::Sink for ToTrainer<'_, '_> {
            fn piece(&mut self, p: ember_corpus::Piece<'_>) -> bool {
                self.0.text(p.text.to_string())
            }
            fn progress(&mut self, bytes: u64) {
                self.0.read(bytes, 0);
            }
        }
        if !inputs.is_empty() {
            let read = ember_corpus::read(&inputs, &format, &mut ToTrainer(feed))?;
            feed.read(0, read.iter().map(|i| i.replaced).sum());
        }
        for (loaded, bytes) in &dialogues {
            for message in loaded.conversations.iter().flat_map(|c| &c.messages) {
                if !message.content.is_empty() && !feed.text(message.content.clone()) {
                    return Ok(());
                }
            }
            feed.read(*bytes, 0);
        }
        Ok(())
    })?;
    tok.save(&a.out, a.force)?;
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "trained {} ids ({} merges) on {:.1} MB, {} pieces ({} distinct) in {secs:.2}s -> {}",
        tok.vocab_size(),
        report.merges,
        report.bytes as f64 / 1e6,
        report.pieces,
        report.distinct_pieces,
        a.out.display()
    );
    if report.replaced > 0 {
        eprintln!(
            "replaced {} invalid UTF-8 sequences with U+FFFD (--lossy)",
            report.replaced
        );
    }
    if report.stopped_early {
        eprintln!(
            "note: the corpus ran out of pairs to merge; the vocabulary has {} ids, not the {} asked for",
            tok.vocab_size(),
            a.vocab_size
        );
    }
    Ok(())
}

fn encode_cmd(a: EncodeArgs) -> Result<()> {
    let tok = load(&a.tokenizer)?;
    let text = match (a.text, a.input) {
        (Some(t), _) => t,
        (None, Some(p)) => read_text(&p)?,
        (None, None) => bail!("give --text or --input"),
    };
    let ids = if a.allow_special {
        tok.encode_with_specials(&text)
    } else {
        tok.encode(&text)
    };
    let line: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", line.join(" "))?;
    Ok(())
}

fn decode_cmd(a: DecodeArgs) -> Result<()> {
    let tok = load(&a.tokenizer)?;
    let mut ids = Vec::new();
    for part in a
        .ids
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
    {
        ids.push(
            part.parse::<u32>()
                .with_context(|| format!("--ids: {part:?} is not a token id (a whole number)"))?,
        );
    }
    let text = tok.decode(&ids)?;
    let mut out = std::io::stdout().lock();
    write!(out, "{text}")?;
    if !text.ends_with('\n') {
        writeln!(out)?;
    }
    Ok(())
}

/// Line-aligned chunks of about `size` bytes.
fn chunks(text: &str, size: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + size).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        if let Some(nl) = text[end..].find('\n') {
            end += nl + 1;
        } else {
            end = text.len();
        }
        out.push(&text[start..end]);
        start = end;
    }
    out
}

fn stats_cmd(a: StatsArgs) -> Result<()> {
    let tok = load(&a.tokenizer)?;
    let text = read_text(&a.input)?;
    if text.is_empty() {
        bail!("{}: is empty", a.input.display());
    }
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(a.threads.max(1))
        .build()?;
    let pieces = chunks(&text, 64 * 1024);
    let mut best = f64::INFINITY;
    let mut ids: Vec<u32> = Vec::new();
    for _ in 0..a.repeat.max(1) {
        let start = Instant::now();
        ids = if a.threads <= 1 {
            tok.encode(&text)
        } else {
            pool.install(|| tok.encode_batch(&pieces)).concat()
        };
        best = best.min(start.elapsed().as_secs_f64());
    }
    let mut used = vec![false; tok.vocab_size()];
    for &i in &ids {
        used[i as usize] = true;
    }
    let used = used.iter().filter(|&&u| u).count();
    let (bytes, tokens) = (text.len() as f64, ids.len() as f64);
    if a.json {
        println!(
            "{}",
            serde_json::json!({"bytes": text.len(), "tokens": ids.len(), "bytes_per_token": bytes / tokens,
                "seconds": best, "mb_per_s": bytes / best / 1e6, "tokens_per_s": tokens / best,
                "threads": a.threads, "vocab_size": tok.vocab_size(), "vocab_used": used})
        );
    } else {
        println!(
            "file            {} ({:.2} MB)",
            a.input.display(),
            bytes / 1e6
        );
        println!("tokens          {}", ids.len());
        println!("bytes/token     {:.3}", bytes / tokens);
        println!(
            "speed           {:.2} MB/s, {:.0} tokens/s ({} thread(s))",
            bytes / best / 1e6,
            tokens / best,
            a.threads
        );
        println!(
            "vocab used      {used} of {} ids ({:.1}%)",
            tok.vocab_size(),
            100.0 * used as f64 / tok.vocab_size() as f64
        );
    }
    Ok(())
}
