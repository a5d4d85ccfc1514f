//! BPE training: count distinct pre-token pieces (streamed, in parallel), then merge the most
//! frequent adjacent pair repeatedly, updating pair counts incrementally.
//!
//! Memory is bounded by the number of distinct pieces, not by corpus size: files are read in
//! chunks ([`crate::input`]) and only the piece → count table is kept. Ties between pairs of
//! equal count go to the smaller (left id, right id), so the result is deterministic whatever
//! the thread count.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::PathBuf;
use std::sync::{Mutex, mpsc};

use indicatif::{ProgressBar, ProgressStyle};
use rustc_hash::FxHashMap;

use crate::error::{Error, Result};
use crate::input::{ChunkReader, check_input};
use crate::pretokenizer::split;
use crate::serialization::assemble;
use crate::tokenizer::{DEFAULT_SPECIALS, Tokenizer};

/// Largest vocabulary [`train`] accepts.
pub const MAX_VOCAB: usize = 1 << 20;

/// Settings for [`train`].
#[derive(Clone, Debug)]
pub struct TrainerConfig {
    /// Total ids: 256 bytes + merges + special tokens.
    pub vocab_size: usize,
    /// Special tokens, given ids after the merges in this order.
    pub specials: Vec<String>,
    /// Replace invalid UTF-8 with U+FFFD (and count it) instead of failing.
    pub lossy: bool,
    /// Worker threads for counting; 0 uses rayon's pool size (`RAYON_NUM_THREADS` or all cores).
    pub threads: usize,
    /// Draw progress bars on stderr (only when it is a terminal).
    pub progress: bool,
}

impl TrainerConfig {
    /// `vocab_size` ids with Ember's default special tokens, strict UTF-8, all cores, no bars.
    pub fn new(vocab_size: usize) -> Self {
        TrainerConfig {
            vocab_size,
            specials: DEFAULT_SPECIALS.iter().map(|s| s.to_string()).collect(),
            lossy: false,
            threads: 0,
            progress: false,
        }
    }
}

/// What a training run saw and did.
#[derive(Clone, Debug, Default)]
pub struct TrainReport {
    /// Bytes of text counted (after U+FFFD replacement, in lossy mode).
    pub bytes: u64,
    /// Pre-token pieces counted.
    pub pieces: u64,
    /// Distinct pieces (the memory the trainer needs scales with this).
    pub distinct_pieces: usize,
    /// Invalid UTF-8 sequences replaced (lossy mode).
    pub replaced: u64,
    /// Merges learned.
    pub merges: usize,
    /// True when the corpus ran out of pairs before `vocab_size` was reached.
    pub stopped_early: bool,
}

type Counts = FxHashMap<Vec<u8>, u64>;

fn count_into(text: &str, counts: &mut Counts) -> u64 {
    let mut n = 0;
    for piece in split(text) {
        n += 1;
        match counts.get_mut(piece.as_bytes()) {
            Some(c) => *c += 1,
            None => {
                counts.insert(piece.as_bytes().to_vec(), 1);
            }
        }
    }
    n
}

fn check_config(cfg: &TrainerConfig) -> Result<()> {
    let min = 256 + cfg.specials.len();
    if cfg.vocab_size < min || cfg.vocab_size > MAX_VOCAB {
        return Err(Error::BadSetting {
            field: "vocab_size",
            value: cfg.vocab_size.to_string(),
            expected: format!(
                "between {min} (256 bytes + {} special tokens) and {MAX_VOCAB}",
                cfg.specials.len()
            ),
        });
    }
    for (i, s) in cfg.specials.iter().enumerate() {
        if s.is_empty() || cfg.specials[..i].contains(s) {
            return Err(Error::BadSetting {
                field: "specials",
                value: format!("{s:?}"),
                expected: "non-empty, distinct strings".into(),
            });
        }
    }
    Ok(())
}

fn bar(progress: bool, len: u64, template: &str) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style);
    }
    pb
}

/// Trains a tokenizer on UTF-8 text files (each read whole as one text, in chunks).
pub fn train(paths: &[PathBuf], cfg: &TrainerConfig) -> Result<(Tokenizer, TrainReport)> {
    if paths.is_empty() {
        return Err(Error::BadSetting {
            field: "input",
            value: "(none)".into(),
            expected: "at least one text file".into(),
        });
    }
    let mut total = 0;
    for p in paths {
        total += check_input(p)?;
    }
    train_with(cfg, total, |feed: &mut Feed<'_>| -> Result<()> {
        for p in paths {
            let mut reader = ChunkReader::open(p, cfg.lossy)?;
            while let Some(chunk) = reader.next_chunk()? {
                feed.read(chunk.bytes as u64, chunk.replaced);
                if !feed.text(chunk.text) {
                    break;
                }
            }
        }
        Ok(())
    })
}

/// Hands text to the counting workers of [`train_with`].
pub struct Feed<'a> {
    tx: mpsc::SyncSender<String>,
    report: &'a mut TrainReport,
    bar: &'a ProgressBar,
}

impl Feed<'_> {
    /// Counts the pieces of `text`, which must split at its ends as it does in its place in the
    /// corpus: a whole document, or a part cut at [`crate::cut_point`]s. Returns `false` if
    /// the workers have stopped.
    pub fn text(&mut self, text: String) -> bool {
        self.report.bytes += text.len() as u64;
        self.tx.send(text).is_ok()
    }

    /// `bytes` more of the inputs were read (the progress bar), with `replaced` invalid UTF-8
    /// sequences replaced by U+FFFD.
    pub fn read(&mut self, bytes: u64, replaced: u64) {
        self.bar.inc(bytes);
        self.report.replaced += replaced;
    }
}

/// Trains on text that `feed` hands over through a [`Feed`] (streamed from any source: the
/// corpus reader's files, directories, JSONL and Parquet), counted in parallel while it reads;
/// `total` is the input size for the progress bar. Memory is the piece → count table.
pub fn train_with<E: From<Error>>(
    cfg: &TrainerConfig,
    total: u64,
    feed: impl FnOnce(&mut Feed<'_>) -> std::result::Result<(), E>,
) -> std::result::Result<(Tokenizer, TrainReport), E> {
    check_config(cfg)?;
    let pb = bar(
        cfg.progress,
        total,
        "reading {bar:30} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
    );
    let threads = if cfg.threads == 0 {
        rayon::current_num_threads()
    } else {
        cfg.threads
    }
    .max(1);
    let (tx, rx) = mpsc::sync_channel::<String>(threads * 2);
    let rx = Mutex::new(rx);
    let mut report = TrainReport::default();
    let (counts, pieces) = std::thread::scope(|scope| -> std::result::Result<(Counts, u64), E> {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut counts = Counts::default();
                    let mut n = 0;
                    while let Ok(text) = rx
                        .lock()
                        .map_err(|_| ())
                        .and_then(|r| r.recv().map_err(|_| ()))
                    {
                        n += count_into(&text, &mut counts);
                    }
                    (counts, n)
                })
            })
            .collect();
        let read = feed(&mut Feed {
            tx,
            report: &mut report,
            bar: &pb,
        });
        let parts: Vec<(Counts, u64)> = workers.into_iter().filter_map(|w| w.join().ok()).collect();
        read?;
        Ok(merge_counts(parts))
    })?;
    pb.finish_and_clear();
    if report.bytes == 0 {
        return Err(Error::BadSetting {
            field: "input",
            value: "no text".into(),
            expected: "at least one non-empty text to train on".into(),
        }
        .into());
    }
    report.pieces = pieces;
    Ok(learn(counts, cfg, report)?)
}

/// Trains on in-memory texts (tests, examples, small corpora). Each text is split on its own.
pub fn train_from_texts<S: AsRef<str>>(
    texts: &[S],
    cfg: &TrainerConfig,
) -> Result<(Tokenizer, TrainReport)> {
    check_config(cfg)?;
    let mut counts = Counts::default();
    let mut report = TrainReport::default();
    for t in texts {
        report.bytes += t.as_ref().len() as u64;
        report.pieces += count_into(t.as_ref(), &mut counts);
    }
    learn(counts, cfg, report)
}

fn merge_counts(parts: Vec<(Counts, u64)>) -> (Counts, u64) {
    let mut iter = parts.into_iter();
    let (mut all, mut n) = iter.next().unwrap_or_default();
    for (counts, m) in iter {
        n += m;
        for (k, v) in counts {
            *all.entry(k).or_insert(0) += v;
        }
    }
    (all, n)
}

fn learn(
    counts: Counts,
    cfg: &TrainerConfig,
    mut report: TrainReport,
) -> Result<(Tokenizer, TrainReport)> {
    report.distinct_pieces = counts.len();
    let mut pieces: Vec<(Vec<u8>, u64)> = counts.into_iter().collect();
    pieces.sort_unstable_by(|a, b| a.0.cmp(&b.0)); // hash order differs run to run; sorted does not
    let target = cfg.vocab_size - cfg.specials.len() - 256;
    let pb = bar(
        cfg.progress,
        target as u64,
        "merging {bar:30} {pos}/{len} merges, ETA {eta}",
    );
    let merges = Merger::new(&pieces).run(target, &pb);
    pb.finish_and_clear();
    report.merges = merges.len();
    report.stopped_early = merges.len() < target;
    let mut tokens: Vec<Option<Box<[u8]>>> = (0..=255u8)
        .map(|b| Some(vec![b].into_boxed_slice()))
        .collect();
    for &(a, b) in &merges {
        let joined = [tokens[a as usize].as_deref(), tokens[b as usize].as_deref()]
            .map(|t| t.unwrap_or_default())
            .concat();
        tokens.push(Some(joined.into_boxed_slice()));
    }
    let first_special = tokens.len() as u32;
    let specials = cfg
        .specials
        .iter()
        .enumerate()
        .map(|(i, s)| (s.clone(), first_special + i as u32))
        .collect();
    tokens.extend(cfg.specials.iter().map(|_| None));
    Ok((assemble(tokens, &merges, specials, true), report))
}

#[inline(always)]
fn key(a: u32, b: u32) -> u64 {
    (a as u64) << 32 | b as u64
}

/// State of the merge loop: words as symbol arrays with their counts, the count of every
/// adjacent pair, which words hold each pair (a superset: stale entries are skipped), and a
/// max-heap of pairs whose stale entries are refreshed when popped.
struct Merger {
    words: Vec<Vec<u32>>,
    counts: Vec<i64>,
    pair_count: FxHashMap<u64, i64>,
    where_: FxHashMap<u64, Vec<u32>>,
    heap: BinaryHeap<(i64, Reverse<u64>)>,
}

impl Merger {
    fn new(pieces: &[(Vec<u8>, u64)]) -> Self {
        let words: Vec<Vec<u32>> = pieces
            .iter()
            .map(|(p, _)| p.iter().map(|&b| b as u32).collect())
            .collect();
        let counts: Vec<i64> = pieces.iter().map(|(_, c)| *c as i64).collect();
        let mut pair_count: FxHashMap<u64, i64> = FxHashMap::default();
        let mut where_: FxHashMap<u64, Vec<u32>> = FxHashMap::default();
        for (w, word) in words.iter().enumerate() {
            for pair in word.windows(2) {
                let k = key(pair[0], pair[1]);
                *pair_count.entry(k).or_insert(0) += counts[w];
                let list = where_.entry(k).or_default();
                if list.last() != Some(&(w as u32)) {
                    list.push(w as u32);
                }
            }
        }
        let heap = pair_count.iter().map(|(&k, &c)| (c, Reverse(k))).collect();
        Merger {
            words,
            counts,
            pair_count,
            where_,
            heap,
        }
    }

    /// Learns up to `target` merges; returns them as (left, right) ids, new ids from 256 on.
    fn run(mut self, target: usize, pb: &ProgressBar) -> Vec<(u32, u32)> {
        let mut merges = Vec::with_capacity(target);
        let mut stamp = vec![u32::MAX; self.words.len()];
        let mut delta: FxHashMap<u64, i64> = FxHashMap::default();
        while merges.len() < target {
            let Some((count, Reverse(k))) = self.heap.pop() else {
                break;
            };
            let current = self.pair_count.get(&k).copied().unwrap_or(0);
            if current != count {
                if current > 0 {
                    self.heap.push((current, Reverse(k)));
                }
                continue;
            }
            let (a, b) = ((k >> 32) as u32, k as u32);
            let new = 256 + merges.len() as u32;
            merges.push((a, b));
            self.pair_count.remove(&k);
            for w in self.where_.remove(&k).unwrap_or_default() {
                if stamp[w as usize] != new {
                    stamp[w as usize] = new;
                    self.merge_word(w, a, b, new, &mut delta);
                }
            }
            for (k, d) in delta.drain() {
                if d == 0 {
                    continue;
                }
                let c = self.pair_count.entry(k).or_insert(0);
                *c += d;
                let c = *c;
                if c <= 0 {
                    self.pair_count.remove(&k);
                } else if (k >> 32) as u32 == new || k as u32 == new {
                    self.heap.push((c, Reverse(k)));
                }
            }
            if merges.len() % 64 == 0 {
                pb.set_position(merges.len() as u64);
            }
        }
        merges
    }

    /// Replaces every (a, b) in word `w` by `new`, left to right, recording pair-count changes.
    fn merge_word(&mut self, w: u32, a: u32, b: u32, new: u32, delta: &mut FxHashMap<u64, i64>) {
        let word = &mut self.words[w as usize];
        let c = self.counts[w as usize];
        let len = word.len();
        let (mut r, mut out) = (0, 0);
        let mut touch = |k: u64, d: i64, where_: &mut FxHashMap<u64, Vec<u32>>| {
            *delta.entry(k).or_insert(0) += d;
            if d > 0 {
                let list = where_.entry(k).or_default();
                if list.last() != Some(&w) {
                    list.push(w);
                }
            }
        };
        while r < len {
            if r + 1 < len && word[r] == a && word[r + 1] == b {
                if out > 0 {
                    let x = word[out - 1];
                    touch(key(x, a), -c, &mut self.where_);
                    touch(key(x, new), c, &mut self.where_);
                }
                if r + 2 < len {
                    let y = word[r + 2];
                    touch(key(b, y), -c, &mut self.where_);
                    touch(key(new, y), c, &mut self.where_);
                }
                word[out] = new;
                r += 2;
            } else {
                word[out] = word[r];
                r += 1;
            }
            out += 1;
        }
        word.truncate(out);
    }
}
