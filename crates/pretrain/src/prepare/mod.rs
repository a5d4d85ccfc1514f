//! `ember prepare`: a corpus of any size (files, directories, globs; plain text, JSONL or
//! Parquet, gzip/zstd too) → documents → ids (in parallel) → train/val token shards, a copy of
//! the tokenizer and `meta.json`, written into a temporary directory and renamed into place.
//! The corpus is streamed (`stream.rs`): memory is a few 16 MB batches whatever its size. The
//! same inputs and options give byte-identical output.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ember_tokenizer::{ENDOFTEXT, Tokenizer};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use crate::error::{PretrainError, Result};

mod dialogue;
mod stream;
mod writer;
use ember_formats::shards::{Header, unhex32, width_for};
pub(crate) use writer::ShardWriter;

/// Format name in `meta.json`.
pub use ember_formats::shards::META_FORMAT;

/// How the held-out split is made.
#[derive(Debug, Clone, PartialEq)]
pub enum ValSplit {
    /// No held-out split.
    None,
    /// About this fraction of the text's bytes, as whole documents chosen with a seeded
    /// shuffle; a corpus of one document gives up its last fraction instead, cut at a line
    /// start (nanoGPT's contiguous 90/10 split).
    Fraction(f64),
    /// These files are the held-out split.
    Files(Vec<PathBuf>),
}

/// Options of [`prepare`].
#[derive(Debug, Clone)]
pub struct PrepareOptions {
    /// The tokenizer.json to encode with.
    pub tokenizer: PathBuf,
    /// Training inputs: files, directories (every file under them) or glob patterns, read in a
    /// stable order; plain UTF-8 text, JSONL (`.jsonl`) or Parquet (`.parquet`), gzip (`.gz`)
    /// or zstd (`.zst`) compressed.
    pub inputs: Vec<PathBuf>,
    /// Output directory.
    pub out: PathBuf,
    /// Held-out split.
    pub val: ValSplit,
    /// Text that separates documents inside a plain-text file (each file is one document when
    /// unset; JSONL and Parquet inputs are one document per record).
    pub doc_separator: Option<String>,
    /// The field of a JSONL record that holds its text.
    pub text_field: String,
    /// The column of a Parquet file that holds the text.
    pub text_column: String,
    /// Target size of the pieces a document is read in (tests use small ones).
    pub piece_bytes: usize,
    /// Most tokens per shard file.
    pub shard_tokens: usize,
    /// Seed of the document shuffle for `ValSplit::Fraction`.
    pub seed: u64,
    /// Replace an existing output directory.
    pub overwrite: bool,
    /// Show a progress bar.
    pub progress: bool,
    /// The inputs are dialogue JSONL: each conversation is one document, rendered with the
    /// tokenizer's chat template (its special tokens as ids), for mixing dialogue into
    /// pretraining; the held-out split is whole conversations.
    pub dialogue: bool,
}

impl PrepareOptions {
    /// Options with the defaults of `ember prepare`: no held-out split, each file one document,
    /// text in the field or column `text`, 100M-token shards, seed 0.
    pub fn new(tokenizer: PathBuf, inputs: Vec<PathBuf>, out: PathBuf) -> Self {
        PrepareOptions {
            tokenizer,
            inputs,
            out,
            val: ValSplit::None,
            doc_separator: None,
            text_field: "text".into(),
            text_column: "text".into(),
            piece_bytes: ember_corpus::PIECE,
            shard_tokens: 100_000_000,
            seed: 0,
            overwrite: false,
            progress: false,
            dialogue: false,
        }
    }
}

/// What [`prepare`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct PrepareReport {
    /// Tokens in the train split.
    pub train_tokens: u64,
    /// Tokens in the held-out split.
    pub val_tokens: u64,
    /// Documents in the train split.
    pub train_docs: usize,
    /// Documents in the held-out split.
    pub val_docs: usize,
    /// Text bytes read.
    pub bytes: u64,
    /// Wall time in seconds.
    pub seconds: f64,
    /// How the held-out split was made.
    pub val_policy: String,
}

/// Reads a text file, checking it is non-empty UTF-8 (the error names the byte offset and line).
pub fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).map_err(|e| PretrainError::io(path, "read", e))?;
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(PretrainError::Input {
            path: path.to_path_buf(),
            reason: "is empty (no text to train on)".into(),
        });
    }
    Ok(ember_files::utf8(path, bytes)?)
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Which documents are held out, decided before any is encoded.
pub(crate) enum Route {
    /// Every document of the training inputs is trained on (no split, or held-out files).
    Train,
    /// These documents (by index) are held out.
    Docs(Vec<bool>),
    /// The corpus is one document of `len` bytes: from the first line start at or after byte
    /// `from` on, it is held out (nanoGPT's contiguous split).
    Tail {
        /// Byte where the search for a line start begins.
        from: u64,
        /// The document's length.
        len: u64,
    },
}

/// Plans the `fraction` split from the documents' lengths (one pass over the corpus that keeps
/// 8 bytes per document): a corpus of one document gives up its last fraction; otherwise whole
/// documents are chosen by a seeded shuffle until they hold `fraction` of the bytes.
fn plan_fraction(lens: &[u64], fraction: f64, seed: u64) -> (Route, String) {
    if lens.len() == 1 {
        let len = lens[0];
        let from = ((1.0 - fraction) * len as f64) as u64;
        return (Route::Tail { from, len }, String::new());
    }
    let total: u64 = lens.iter().sum();
    let mut order: Vec<usize> = (0..lens.len()).collect();
    let mut s = seed;
    for i in (1..order.len()).rev() {
        let j = (splitmix(&mut s) % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    let mut is_val = vec![false; lens.len()];
    let (mut val_bytes, mut n_val) = (0u64, 0usize);
    for &i in &order {
        if (val_bytes as f64) >= fraction * total as f64 || n_val + 1 >= lens.len() {
            break;
        }
        is_val[i] = true;
        val_bytes += lens[i];
        n_val += 1;
    }
    let policy = format!(
        "{n_val} of {} whole documents ({:.1}% of the bytes) chosen by a shuffle with seed {seed}",
        lens.len(),
        100.0 * val_bytes as f64 / total as f64
    );
    (Route::Docs(is_val), policy)
}

/// A progress bar over input bytes, labelled with what is being done.
pub(crate) fn bar(total: u64, show: bool, label: &str) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(&format!("{label} {{bar:30.cyan/blue}} {{binary_bytes}}/{{binary_total_bytes}} {{binary_bytes_per_sec}} ETA {{eta}}"))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Tokenizes the corpus into shards; see the module docs.
pub fn prepare(opts: &PrepareOptions) -> Result<PrepareReport> {
    let t0 = Instant::now();
    if opts.inputs.is_empty() {
        return Err(PretrainError::Option {
            option: "--input",
            value: "nothing".into(),
            expected: "at least one text file".into(),
        });
    }
    if opts.shard_tokens == 0 {
        return Err(PretrainError::Option {
            option: "--shard-tokens",
            value: "0".into(),
            expected: "at least 1".into(),
        });
    }
    if opts.out.exists()
        && !opts.overwrite
        && std::fs::read_dir(&opts.out)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(PretrainError::Option {
            option: "--out",
            value: opts.out.display().to_string(),
            expected: "a new or empty directory (pass --force to replace it)".into(),
        });
    }
    let tok = Tokenizer::load(&opts.tokenizer)?;
    if tok.token_to_id(ENDOFTEXT).is_none() {
        return Err(PretrainError::Input {
            path: opts.tokenizer.clone(),
            reason: format!(
                "has no {ENDOFTEXT} token to separate documents; train it with `ember tokenizer train`"
            ),
        });
    }
    if opts.dialogue {
        return dialogue::prepare_dialogue(opts, &tok, t0);
    }
    let format = ember_corpus::Format {
        doc_separator: opts.doc_separator.clone(),
        text_field: opts.text_field.clone(),
        text_column: opts.text_column.clone(),
        lossy: false,
        piece_bytes: opts.piece_bytes,
    };
    let inputs = ember_corpus::expand(&opts.inputs)?;
    let (route, val_inputs, policy) = match &opts.val {
        ValSplit::None => (Route::Train, Vec::new(), "none".to_string()),
        ValSplit::Fraction(f) if !(*f > 0.0 && *f < 0.5) => {
            return Err(PretrainError::Option {
                option: "--val-fraction",
                value: f.to_string(),
                expected: "a fraction in (0, 0.5)".into(),
            });
        }
        ValSplit::Fraction(f) => {
            let lens = stream::document_lengths(&inputs, &format, opts.progress)?;
            let (route, policy) = plan_fraction(&lens, *f, opts.seed);
            (route, Vec::new(), policy)
        }
        ValSplit::Files(files) => {
            let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
            (
                Route::Train,
                ember_corpus::expand(files)?,
                format!("the given held-out files: {}", names.join(", ")),
            )
        }
    };
    let job = stream::Job {
        tok: &tok,
        format: &format,
        inputs: &inputs,
        val_inputs: &val_inputs,
        route,
        shard_tokens: opts.shard_tokens,
        progress: opts.progress,
    };
    let (written, policy) = in_temporary_dir(&opts.out, |tmp| {
        let w = stream::write(&job, tmp)?;
        let policy = w.tail_policy.clone().unwrap_or(policy);
        if w.train.documents == 0 {
            return Err(PretrainError::Input {
                path: opts.inputs[0].clone(),
                reason: "holds no document to train on".into(),
            });
        }
        let inputs: Vec<serde_json::Value> = w.inputs.iter().map(input_entry).collect();
        let meta = json!({
            "format": META_FORMAT, "version": 1,
            "tokenizer": "tokenizer.json", "tokenizer_sha256": tok.fingerprint(),
            "vocab_size": tok.vocab_size(), "dtype": if header_for(&tok).width == 2 { "u16" } else { "u32" },
            "document_separator": opts.doc_separator, "document_prefix": ENDOFTEXT,
            "val_policy": policy, "inputs": inputs,
            "splits": {"train": w.train.entry(), "val": w.val.entry()},
        });
        finish(tmp, &opts.out, &tok, &meta)?;
        Ok((w, policy))
    })?;
    Ok(PrepareReport {
        train_tokens: written.train.tokens,
        val_tokens: written.val.tokens,
        train_docs: written.train.documents as usize,
        val_docs: written.val.documents as usize,
        bytes: written.train.bytes + written.val.bytes,
        seconds: t0.elapsed().as_secs_f64(),
        val_policy: policy,
    })
}

/// `meta.json`'s entry for one input: as before for plain text; JSONL and Parquet inputs also
/// name their kind and field.
fn input_entry(i: &ember_corpus::InputSummary) -> serde_json::Value {
    let mut e = json!({"path": i.path.display().to_string(), "bytes": i.bytes, "sha256": i.sha256});
    if i.kind != ember_corpus::Kind::Text {
        e["kind"] = json!(i.kind.name());
        e["documents"] = json!(i.documents);
    }
    e
}

/// Runs `write` into a fresh temporary directory beside `out` (which it must swap into place
/// itself); on any failure (a full disk, say) the temporary directory is removed, so no
/// half-written directory is left, and an existing `out` stays as it was.
fn in_temporary_dir<T>(out: &Path, write: impl FnOnce(&Path) -> Result<T>) -> Result<T> {
    let tmp = out.with_file_name(format!(
        ".{}.tmp.{}",
        out.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&tmp);
    remove_stale_temporaries(out);
    std::fs::create_dir_all(&tmp).map_err(|e| PretrainError::io(&tmp, "create directory", e))?;
    let result = write(&tmp);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
}

/// Removes what a killed `prepare` into `out` left: `.{name}.tmp.{pid}` directories whose
/// process is gone. Where the system cannot say (no `/proc`), nothing is removed.
fn remove_stale_temporaries(out: &Path) {
    let (Some(parent), Some(name)) = (out.parent(), out.file_name()) else {
        return;
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    if !Path::new("/proc/self").exists() {
        return;
    }
    let prefix = format!(".{}.tmp.", name.to_string_lossy());
    for e in std::fs::read_dir(parent).into_iter().flatten().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = n.strip_prefix(&prefix).and_then(|p| p.parse::<u32>().ok())
            && !Path::new(&format!("/proc/{pid}")).exists()
        {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// The shard header for `tok`'s ids.
fn header_for(tok: &Tokenizer) -> Header {
    Header {
        width: width_for(tok.vocab_size()),
        tokens: 0,
        vocab_size: tok.vocab_size() as u32,
        tokenizer_sha256: unhex32(&tok.fingerprint()).unwrap_or([0; 32]),
    }
}

/// Writes `tokenizer.json` and `meta.json` into `tmp` and swaps it into place as `out`.
fn finish(tmp: &Path, out: &Path, tok: &Tokenizer, meta: &serde_json::Value) -> Result<()> {
    ember_files::write_atomic(&tmp.join("tokenizer.json"), tok.to_json().as_bytes())?;
    ember_files::write_atomic(
        &tmp.join("meta.json"),
        (serde_json::to_string_pretty(meta).unwrap_or_default() + "\n").as_bytes(),
    )?;
    ember_files::swap_dir(tmp, out)?;
    Ok(())
}
