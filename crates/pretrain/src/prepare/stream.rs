//! The streaming core of `prepare`: a reader thread cuts the corpus into batches of pieces
//! (~16 MB), the pool encodes each batch in parallel while the next one is read, and the ids
//! go to the shard writers in reading order. Memory: about three batches and their ids.

use std::path::Path;
use std::sync::mpsc::sync_channel;

use ember_corpus::{Format, Input, InputSummary, Piece, Sink};
use ember_tokenizer::{ENDOFTEXT, Tokenizer};
use indicatif::ProgressBar;
use rayon::prelude::*;
use serde_json::json;

use super::{Route, ShardWriter, bar, header_for};
use crate::error::Result;

/// Text per batch. 16 MB is 16 pieces of 1 MB, enough to keep every core busy, and little
/// enough that three batches stay far under the 512 MiB the corpus-size benchmark allows.
const BATCH: usize = 16 << 20;

/// What to encode and where it goes.
pub(super) struct Job<'a> {
    pub tok: &'a Tokenizer,
    pub format: &'a Format,
    pub inputs: &'a [Input],
    pub val_inputs: &'a [Input],
    pub route: Route,
    pub shard_tokens: usize,
    pub progress: bool,
}

/// One split as written.
#[derive(Debug, Default)]
pub(super) struct Split {
    pub documents: u64,
    pub bytes: u64,
    pub tokens: u64,
    pub shards: Vec<serde_json::Value>,
}

impl Split {
    /// The split's entry in `meta.json`.
    pub fn entry(&self) -> serde_json::Value {
        json!({"documents": self.documents, "bytes": self.bytes, "tokens": self.tokens, "shards": self.shards})
    }
}

/// What [`write`] wrote.
pub(super) struct Written {
    pub train: Split,
    pub val: Split,
    /// The inputs, training ones first.
    pub inputs: Vec<InputSummary>,
    /// The split's description when it was a one-document tail (known only once read).
    pub tail_policy: Option<String>,
}

/// The text length of every document of `inputs`, in order (the fraction split's plan).
pub(super) fn document_lengths(inputs: &[Input], format: &Format, show: bool) -> Result<Vec<u64>> {
    struct Lengths {
        lens: Vec<u64>,
        bar: ProgressBar,
    }
    impl Sink for Lengths {
        fn piece(&mut self, p: Piece<'_>) -> bool {
            if p.first {
                self.lens.push(0);
            }
            if let Some(l) = self.lens.last_mut() {
                *l += p.text.len() as u64;
            }
            true
        }
        fn progress(&mut self, bytes: u64) {
            self.bar.inc(bytes);
        }
    }
    let bar = bar(ember_corpus::total_bytes(inputs), show, "scanning");
    let mut sink = Lengths {
        lens: Vec::new(),
        bar,
    };
    ember_corpus::read(inputs, format, &mut sink)?;
    sink.bar.finish_and_clear();
    Ok(sink.lens)
}

/// A piece on its way to a split.
struct Item {
    val: bool,
    first: bool,
    text: String,
}

/// Turns pieces into batches of [`Item`]s, deciding each piece's split.
struct Batcher<'r> {
    route: &'r Route,
    all_val: bool,
    batch: Vec<Item>,
    bytes: usize,
    send: std::sync::mpsc::SyncSender<Vec<Item>>,
    bar: ProgressBar,
    /// For [`Route::Tail`]: bytes of the document seen so far, and where it was cut.
    seen: u64,
    cut: Option<u64>,
}

impl Batcher<'_> {
    fn push(&mut self, val: bool, first: bool, text: &str) -> bool {
        self.bytes += text.len();
        self.batch.push(Item {
            val,
            first,
            text: text.to_string(),
        });
        if self.bytes >= BATCH {
            return self.flush();
        }
        true
    }

    fn flush(&mut self) -> bool {
        self.bytes = 0;
        let batch = std::mem::take(&mut self.batch);
        batch.is_empty() || self.send.send(batch).is_ok()
    }

    /// Routes a piece of the single document of a [`Route::Tail`] split: before the cut to
    /// training, after it to the held-out split. The cut is the first line start at or after
    /// `from`, but never the document's end (the held-out side keeps at least its last
    /// character).
    fn tail(&mut self, p: Piece<'_>, from: u64, len: u64) -> bool {
        let start = self.seen;
        self.seen += p.text.len() as u64;
        if let Some(cut) = self.cut {
            debug_assert!(cut <= start);
            return self.push(true, false, p.text);
        }
        let bytes = p.text.as_bytes();
        let search = from.saturating_sub(start).min(bytes.len() as u64) as usize;
        let last_char = p
            .text
            .char_indices()
            .next_back()
            .map_or(0, |(i, _)| start + i as u64);
        let cut = memchr::memchr(b'\n', &bytes[search..])
            .map(|i| start + (search + i + 1) as u64)
            .filter(|&c| c < len)
            .or(p.last.then_some(last_char));
        match cut {
            None => self.push(false, p.first, p.text),
            Some(c) => {
                self.cut = Some(c);
                let at = (c - start) as usize;
                (at == 0 || self.push(false, p.first, &p.text[..at]))
                    && self.push(true, true, &p.text[at..])
            }
        }
    }
}

impl Sink for Batcher<'_> {
    fn piece(&mut self, p: Piece<'_>) -> bool {
        if self.all_val {
            return self.push(true, p.first, p.text);
        }
        match self.route {
            Route::Train => self.push(false, p.first, p.text),
            Route::Docs(is_val) => {
                let val = is_val.get(p.doc as usize).copied().unwrap_or(false);
                self.push(val, p.first, p.text)
            }
            Route::Tail { from, len } => {
                let (from, len) = (*from, *len);
                self.tail(p, from, len)
            }
        }
    }

    fn progress(&mut self, bytes: u64) {
        self.bar.inc(bytes);
    }
}

/// Encodes the job's inputs into shards in `dir`.
pub(super) fn write(job: &Job<'_>, dir: &Path) -> Result<Written> {
    let tok = job.tok;
    let eot = tok.token_to_id(ENDOFTEXT).unwrap_or(0);
    let header = header_for(tok);
    let mut train_w = ShardWriter::new(dir, "train", header.clone(), job.shard_tokens);
    let mut val_w = ShardWriter::new(dir, "val", header, job.shard_tokens);
    let (mut train, mut val) = (Split::default(), Split::default());
    let total = ember_corpus::total_bytes(job.inputs) + ember_corpus::total_bytes(job.val_inputs);
    let pb = bar(total, job.progress, "tokenizing");
    let (send, recv) = sync_channel::<Vec<Item>>(1);
    let (read, written) = std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut b = Batcher {
                route: &job.route,
                all_val: false,
                batch: Vec::new(),
                bytes: 0,
                send,
                bar: pb.clone(),
                seen: 0,
                cut: None,
            };
            let mut inputs = ember_corpus::read(job.inputs, job.format, &mut b)?;
            if !job.val_inputs.is_empty() {
                b.all_val = true;
                inputs.extend(ember_corpus::read(job.val_inputs, job.format, &mut b)?);
            }
            if !b.flush() {
                return Err(ember_corpus::Error::Stopped);
            }
            Ok((inputs, b.cut))
        });
        let written = (|| -> Result<()> {
            for batch in recv {
                let ids: Vec<Vec<u32>> = batch
                    .par_iter()
                    .map(|it| tok.encode_chunked(&it.text, ember_corpus::PIECE))
                    .collect();
                for (it, ids) in batch.iter().zip(ids) {
                    let (w, s) = if it.val {
                        (&mut val_w, &mut val)
                    } else {
                        (&mut train_w, &mut train)
                    };
                    if it.first {
                        w.push(&[eot])?;
                        s.documents += 1;
                    }
                    w.push(&ids)?;
                    s.bytes += it.text.len() as u64;
                }
            }
            Ok(())
        })();
        // On a write error the receiver is gone: the reader stops at its next batch.
        let read = reader.join().unwrap_or(Err(ember_corpus::Error::Stopped));
        (read, written)
    });
    written?;
    let (inputs, cut) = read?;
    pb.finish_and_clear();
    (train.tokens, train.shards) = train_w.finish()?;
    (val.tokens, val.shards) = val_w.finish()?;
    let tail_policy = match (&job.route, cut) {
        (Route::Tail { len, .. }, Some(cut)) => Some(format!(
            "one document: its last {:.1}% (from byte {cut}, a line start) is held out, as nanoGPT splits a single text",
            100.0 * (len - cut) as f64 / *len as f64
        )),
        _ => None,
    };
    Ok(Written {
        train,
        val,
        inputs,
        tail_policy,
    })
}
