//! `ember prepare`: text files → documents → ids (in parallel) → train/val token shards, a
//! copy of the tokenizer and `meta.json`, written into a temporary directory and renamed into
//! place. The same inputs and options give byte-identical output.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ember_tokenizer::{ENDOFTEXT, Tokenizer};
use indicatif::{ProgressBar, ProgressStyle};
use rayon::prelude::*;
use serde_json::json;

use crate::error::{PretrainError, Result};

mod dialogue;
use ember_formats::shards::{HEADER_LEN, Header, encode_ids, unhex32, width_for};

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
    /// Training text files (UTF-8).
    pub inputs: Vec<PathBuf>,
    /// Output directory.
    pub out: PathBuf,
    /// Held-out split.
    pub val: ValSplit,
    /// Text that separates documents inside a file (each file is one document when unset).
    pub doc_separator: Option<String>,
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

struct Doc {
    file: usize,
    range: std::ops::Range<usize>,
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

fn split_docs(text: &str, file: usize, sep: Option<&str>) -> Vec<Doc> {
    let mut docs = Vec::new();
    let mut push = |start: usize, end: usize| {
        if !text[start..end].trim().is_empty() {
            docs.push(Doc {
                file,
                range: start..end,
            });
        }
    };
    match sep.filter(|s| !s.is_empty()) {
        None => push(0, text.len()),
        Some(sep) => {
            let mut start = 0;
            for (i, _) in text.match_indices(sep) {
                push(start, i);
                start = i + sep.len();
            }
            push(start, text.len());
        }
    }
    docs
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Splits documents into (train, val) by `fraction` of bytes; see [`ValSplit::Fraction`].
fn split_fraction(
    texts: &[String],
    docs: Vec<Doc>,
    fraction: f64,
    seed: u64,
) -> (Vec<Doc>, Vec<Doc>, String) {
    if docs.len() == 1 {
        let d = &docs[0];
        let text = &texts[d.file][d.range.clone()];
        let target = ((1.0 - fraction) * text.len() as f64) as usize;
        let cut = text[target.min(text.len())..]
            .find('\n')
            .map(|i| target + i + 1)
            .unwrap_or(text.len())
            .min(text.len() - 1);
        let base = d.range.start;
        let policy = format!(
            "one document: its last {:.1}% (from byte {cut}, a line start) is held out, as nanoGPT splits a single text",
            100.0 * (text.len() - cut) as f64 / text.len() as f64
        );
        let train = Doc {
            file: d.file,
            range: base..base + cut,
        };
        let val = Doc {
            file: d.file,
            range: base + cut..d.range.end,
        };
        return (vec![train], vec![val], policy);
    }
    let total: usize = docs.iter().map(|d| d.range.len()).sum();
    let mut order: Vec<usize> = (0..docs.len()).collect();
    let mut s = seed;
    for i in (1..order.len()).rev() {
        let j = (splitmix(&mut s) % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    let mut is_val = vec![false; docs.len()];
    let (mut val_bytes, mut n_val) = (0usize, 0usize);
    for &i in &order {
        if (val_bytes as f64) >= fraction * total as f64 || n_val + 1 >= docs.len() {
            break;
        }
        is_val[i] = true;
        val_bytes += docs[i].range.len();
        n_val += 1;
    }
    let policy = format!(
        "{n_val} of {} whole documents ({:.1}% of the bytes) chosen by a shuffle with seed {seed}",
        docs.len(),
        100.0 * val_bytes as f64 / total as f64
    );
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (d, v) in docs.into_iter().zip(is_val) {
        if v { val.push(d) } else { train.push(d) }
    }
    (train, val, policy)
}

/// Collects ids into shard files of at most `max` tokens.
struct ShardWriter<'a> {
    dir: &'a Path,
    split: &'static str,
    header: Header,
    max: usize,
    pending: Vec<u32>,
    shards: Vec<serde_json::Value>,
    total: u64,
}

impl ShardWriter<'_> {
    fn push(&mut self, ids: &[u32]) -> Result<()> {
        let mut rest = ids;
        while !rest.is_empty() {
            let room = self.max - self.pending.len();
            let (now, later) = rest.split_at(room.min(rest.len()));
            self.pending.extend_from_slice(now);
            rest = later;
            if self.pending.len() == self.max {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let name = format!("{}-{:05}.bin", self.split, self.shards.len());
        let mut header = self.header.clone();
        header.tokens = self.pending.len() as u64;
        let mut bytes = Vec::with_capacity(HEADER_LEN + self.pending.len() * header.width as usize);
        bytes.extend_from_slice(&header.to_bytes());
        encode_ids(&self.pending, header.width, &mut bytes);
        let path = self.dir.join(&name);
        ember_files::write_atomic(&path, &bytes)?;
        self.shards.push(
            json!({"file": name, "tokens": header.tokens, "sha256": ember_files::sha256_hex(&bytes)}),
        );
        self.total += header.tokens;
        self.pending.clear();
        Ok(())
    }
}

fn bar(total: u64, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("tokenizing {bar:30.cyan/blue} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Encodes `docs` (each preceded by `<|endoftext|>`) into shards of `split`; returns the
/// split's `meta.json` entry.
fn write_split(
    tok: &Tokenizer,
    texts: &[String],
    docs: &[Doc],
    mut writer: ShardWriter<'_>,
    bar: &ProgressBar,
) -> Result<serde_json::Value> {
    let eot = tok.token_to_id(ENDOFTEXT).unwrap_or(0);
    // Groups of documents of ~8 MB: parallel within the group, written in order.
    let mut i = 0;
    while i < docs.len() {
        let mut j = i;
        let mut bytes = 0;
        while j < docs.len() && (j == i || bytes < 8 << 20) {
            bytes += docs[j].range.len();
            j += 1;
        }
        let ids: Vec<Vec<u32>> = docs[i..j]
            .par_iter()
            .map(|d| tok.encode_parallel(&texts[d.file][d.range.clone()]))
            .collect();
        for d in ids {
            writer.push(&[eot])?;
            writer.push(&d)?;
        }
        bar.inc(bytes as u64);
        i = j;
    }
    writer.flush()?;
    let bytes: usize = docs.iter().map(|d| d.range.len()).sum();
    Ok(
        json!({"documents": docs.len(), "bytes": bytes, "tokens": writer.total, "shards": writer.shards}),
    )
}

fn read_all(
    paths: &[PathBuf],
    sep: Option<&str>,
    first_file: usize,
) -> Result<(Vec<String>, Vec<Doc>)> {
    let mut texts = Vec::new();
    let mut docs = Vec::new();
    for (k, p) in paths.iter().enumerate() {
        let text = read_text(p)?;
        docs.extend(split_docs(&text, first_file + k, sep));
        texts.push(text);
    }
    Ok((texts, docs))
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
    let sep = opts.doc_separator.as_deref();
    let (mut texts, docs) = read_all(&opts.inputs, sep, 0)?;
    let (train_docs, val_docs, policy) = match &opts.val {
        ValSplit::None => (docs, Vec::new(), "none".to_string()),
        ValSplit::Fraction(f) if !(*f > 0.0 && *f < 0.5) => {
            return Err(PretrainError::Option {
                option: "--val-fraction",
                value: f.to_string(),
                expected: "a fraction in (0, 0.5)".into(),
            });
        }
        ValSplit::Fraction(f) => split_fraction(&texts, docs, *f, opts.seed),
        ValSplit::Files(files) => {
            let (vtexts, vdocs) = read_all(files, sep, texts.len())?;
            texts.extend(vtexts);
            let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
            (
                docs,
                vdocs,
                format!("the given held-out files: {}", names.join(", ")),
            )
        }
    };
    if train_docs.is_empty() {
        return Err(PretrainError::Input {
            path: opts.inputs[0].clone(),
            reason: "holds no document to train on".into(),
        });
    }
    let result = in_temporary_dir(&opts.out, |tmp| {
        write_prepared(opts, &tok, &texts, &train_docs, &val_docs, &policy, tmp)
    });
    let (train, val, total_bytes) = result?;
    let n =
        |v: &serde_json::Value, k: &str| v.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0);
    Ok(PrepareReport {
        train_tokens: n(&train, "tokens"),
        val_tokens: n(&val, "tokens"),
        train_docs: train_docs.len(),
        val_docs: val_docs.len(),
        bytes: total_bytes,
        seconds: t0.elapsed().as_secs_f64(),
        val_policy: policy,
    })
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
    std::fs::create_dir_all(&tmp).map_err(|e| PretrainError::io(&tmp, "create directory", e))?;
    let result = write(&tmp);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    result
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

/// Writes the shards, tokenizer and meta.json into `tmp` and swaps it into place; returns
/// the two splits' meta entries and the input bytes.
fn write_prepared(
    opts: &PrepareOptions,
    tok: &Tokenizer,
    texts: &[String],
    train_docs: &[Doc],
    val_docs: &[Doc],
    policy: &str,
    tmp: &Path,
) -> Result<(serde_json::Value, serde_json::Value, u64)> {
    let header = header_for(tok);
    let total_bytes: u64 = train_docs
        .iter()
        .chain(val_docs)
        .map(|d| d.range.len() as u64)
        .sum();
    let pb = bar(total_bytes, opts.progress);
    let writer = |split| ShardWriter {
        dir: tmp,
        split,
        header: header.clone(),
        max: opts.shard_tokens,
        pending: Vec::new(),
        shards: Vec::new(),
        total: 0,
    };
    let train = write_split(tok, texts, train_docs, writer("train"), &pb)?;
    let val = write_split(tok, texts, val_docs, writer("val"), &pb)?;
    pb.finish_and_clear();
    let inputs: Vec<serde_json::Value> = opts
        .inputs
        .iter()
        .chain(if let ValSplit::Files(f) = &opts.val { f.iter() } else { [].iter() })
        .zip(texts)
        .map(|(p, t)| json!({"path": p.display().to_string(), "bytes": t.len(), "sha256": ember_files::sha256_hex(t.as_bytes())}))
        .collect();
    let meta = json!({
        "format": META_FORMAT, "version": 1,
        "tokenizer": "tokenizer.json", "tokenizer_sha256": tok.fingerprint(),
        "vocab_size": tok.vocab_size(), "dtype": if header.width == 2 { "u16" } else { "u32" },
        "document_separator": opts.doc_separator, "document_prefix": ENDOFTEXT,
        "val_policy": policy, "inputs": inputs,
        "splits": {"train": train, "val": val},
    });
    finish(tmp, &opts.out, tok, &meta)?;
    Ok((train, val, total_bytes))
}
