//! Dialogue data: JSONL files, one conversation per line, validated before any training.
//!
//! Two line formats: `{"messages":[{"role":"system"|"user"|"assistant","content":"…"},…]}`
//! and `{"prompt":"…","completion":"…"}` (a user turn and an assistant turn). Other keys on a
//! line or in a message (ids, names, metadata) are ignored. A conversation is valid when every
//! message has a known role and non-empty text, a system message comes only first, the turns
//! then alternate starting with the user, and at least one assistant turn exists. Blank lines
//! are skipped. Every problem is reported as `file:line: reason`.
//!
//! Rendering ([`render_all`]) turns a conversation into one row with the tokenizer's chat
//! template and a loss mask on the assistant's text. Too long for the context: the oldest whole
//! exchanges after the system message are dropped until it fits
//! ([`ember_tokenizer::chat::fit_conversation`], the same rule `ember chat` uses for prompts);
//! if even the last exchange does not fit, the conversation is skipped. Both are counted.
//! Training rows can instead keep every exchange ([`render_windows`], `ember sft`'s default):
//! a long conversation becomes several rows, consecutive windows of whole exchanges, so that
//! every reply is trained once rather than only the latest ones.

use std::path::{Path, PathBuf};

use ember_tokenizer::{Message, Role};
use serde_json::Value;

use ember_model::HostBatch;
use ember_tokenizer::{Keep, Tokenizer, fit_conversation, render_chat};

use crate::error::{FormatError, Result};

/// What to do with an invalid line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidPolicy {
    /// Stop at the first invalid line (the default).
    Stop,
    /// Skip invalid lines and count them (the count is reported in the run summary).
    Skip,
}

/// A conversation and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    /// Its messages.
    pub messages: Vec<Message>,
    /// 1-based line in its file.
    pub line: usize,
}

/// The valid conversations of one file, and the lines skipped.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The file.
    pub path: PathBuf,
    /// Valid conversations, in file order.
    pub conversations: Vec<Conversation>,
    /// `file:line: reason` of each skipped line (only with [`InvalidPolicy::Skip`]).
    pub skipped: Vec<String>,
    /// SHA-256 of the file's bytes (recorded with a run's held-out conversations).
    pub sha256: String,
}

/// Reads and validates a JSONL file.
pub fn load(path: &Path, policy: InvalidPolicy) -> Result<Loaded> {
    let text = std::fs::read(path).map_err(|e| FormatError::io(path, "read", e))?;
    let sha256 = ember_files::sha256_hex(&text);
    let text = ember_files::utf8(path, text)?;
    let mut out = Loaded {
        path: path.to_path_buf(),
        conversations: Vec::new(),
        skipped: Vec::new(),
        sha256,
    };
    for (i, line) in text.split('\n').enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(line) {
            Ok(messages) => out.conversations.push(Conversation {
                messages,
                line: i + 1,
            }),
            Err(reason) => {
                let err = FormatError::Line {
                    path: path.to_path_buf(),
                    line: i + 1,
                    reason,
                };
                match policy {
                    InvalidPolicy::Stop => return Err(err),
                    InvalidPolicy::Skip => out.skipped.push(err.to_string()),
                }
            }
        }
    }
    if out.conversations.is_empty() {
        return Err(FormatError::Line {
            path: path.to_path_buf(),
            line: 0,
            reason: "holds no valid conversation".into(),
        });
    }
    Ok(out)
}

/// Parses and validates one line; the error is the reason (without file and line).
pub fn parse_line(line: &str) -> std::result::Result<Vec<Message>, String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not valid JSON: {e}"))?;
    let Some(obj) = v.as_object() else {
        return Err(format!("expected a JSON object, found {}", kind(&v)));
    };
    let messages = match (
        obj.get("messages"),
        obj.get("prompt"),
        obj.get("completion"),
    ) {
        (Some(m), None, None) => messages(m)?,
        (None, Some(p), Some(c)) => vec![
            Message::new(Role::User, text_field(p, "prompt")?),
            Message::new(Role::Assistant, text_field(c, "completion")?),
        ],
        (None, Some(_), None) => return Err("has `prompt` but no `completion`".into()),
        (None, None, Some(_)) => return Err("has `completion` but no `prompt`".into()),
        (Some(_), _, _) => {
            return Err(
                "has both `messages` and `prompt`/`completion`; use one format per line".into(),
            );
        }
        (None, None, None) => return Err("has neither `messages` nor `prompt`/`completion`".into()),
    };
    check_order(&messages)?;
    Ok(messages)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn text_field(v: &Value, name: &str) -> std::result::Result<String, String> {
    let s = v
        .as_str()
        .ok_or_else(|| format!("`{name}` must be a string, found {}", kind(v)))?;
    if s.trim().is_empty() {
        return Err(format!("`{name}` is empty"));
    }
    Ok(s.to_string())
}

fn messages(v: &Value) -> std::result::Result<Vec<Message>, String> {
    let arr = v
        .as_array()
        .ok_or_else(|| format!("`messages` must be an array, found {}", kind(v)))?;
    if arr.is_empty() {
        return Err("`messages` is empty".into());
    }
    arr.iter()
        .enumerate()
        .map(|(i, m)| {
            let obj = m.as_object().ok_or_else(|| format!("messages[{i}] must be an object, found {}", kind(m)))?;
            let role = obj.get("role").ok_or_else(|| format!("messages[{i}] has no `role`"))?;
            let role_s = role.as_str().ok_or_else(|| format!("messages[{i}].role must be a string, found {}", kind(role)))?;
            let role = Role::parse(role_s).ok_or_else(|| format!("messages[{i}].role {role_s:?} is not one of \"system\", \"user\", \"assistant\""))?;
            let content = obj.get("content").ok_or_else(|| format!("messages[{i}] has no `content`"))?;
            let content = text_field(content, &format!("messages[{i}].content"))?;
            Ok(Message { role, content })
        })
        .collect()
}

fn check_order(messages: &[Message]) -> std::result::Result<(), String> {
    let mut expect = Role::User;
    for (i, m) in messages.iter().enumerate() {
        if m.role == Role::System {
            if i != 0 {
                return Err(format!(
                    "messages[{i}] is a system message; only the first message may be one"
                ));
            }
            continue;
        }
        if m.role != expect {
            return Err(format!(
                "messages[{i}] is {:?} but {:?} was expected: turns alternate user/assistant, starting with the user",
                m.role.as_str(),
                expect.as_str()
            ));
        }
        expect = if expect == Role::User {
            Role::Assistant
        } else {
            Role::User
        };
    }
    if !messages.iter().any(|m| m.role == Role::Assistant) {
        return Err("has no assistant turn (nothing to train on)".into());
    }
    Ok(())
}

// ---- Rendering: a conversation as a row of token ids, with the context policy.

/// A rendered conversation ready for a row: `ids.len() <= context + 1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// Token ids.
    pub ids: Vec<u32>,
    /// 1 on trained targets (aligned with `ids`).
    pub mask: Vec<u8>,
    /// UTF-8 bytes of the trained ordinary tokens (for bits per byte).
    pub target_bytes: u64,
}

/// How rendering went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderStats {
    /// Conversations that fit as they are.
    pub whole: usize,
    /// Conversations shortened by dropping their oldest exchanges.
    pub truncated: usize,
    /// Conversations skipped because their last exchange alone does not fit.
    pub skipped_too_long: usize,
    /// Conversations cut into several windows ([`render_windows`]).
    pub split: usize,
    /// Rows the split conversations gave.
    pub windows: usize,
}

impl std::ops::AddAssign<&RenderStats> for RenderStats {
    fn add_assign(&mut self, o: &RenderStats) {
        self.whole += o.whole;
        self.truncated += o.truncated;
        self.skipped_too_long += o.skipped_too_long;
        self.split += o.split;
        self.windows += o.windows;
    }
}

/// What training does with a conversation longer than the context.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LongConversations {
    /// Cut it into consecutive windows of whole exchanges, each as long as fits: every reply is
    /// trained once ([`render_windows`]).
    #[default]
    Split,
    /// Keep its latest exchanges that fit and drop the older ones ([`render_all`]).
    Latest,
}

/// Renders conversations for training rows under `policy`.
pub fn render_rows(
    tok: &Tokenizer,
    convs: &[Conversation],
    context: usize,
    policy: LongConversations,
) -> Result<(Vec<Example>, RenderStats)> {
    match policy {
        LongConversations::Split => render_windows(tok, convs, context),
        LongConversations::Latest => render_all(tok, convs, context),
    }
}

/// Renders conversations for a model with `context` positions keeping every exchange: one that
/// does not fit becomes several rows, each the system message (if any) and a run of whole
/// consecutive exchanges, taken from the end as [`render_all`] takes its one row, then again
/// from what was left before it, until nothing is. An exchange too long to fit alone is left
/// out (the conversation counts as `truncated`); a conversation left with nothing counts as
/// `skipped_too_long`. Rows come in the conversation's order.
pub fn render_windows(
    tok: &Tokenizer,
    convs: &[Conversation],
    context: usize,
) -> Result<(Vec<Example>, RenderStats)> {
    let mut stats = RenderStats::default();
    let mut out = Vec::with_capacity(convs.len());
    for c in convs {
        let msgs = &c.messages;
        let sys = usize::from(msgs.first().is_some_and(|m| m.role == Role::System));
        let (mut end, mut rows, mut lost) = (msgs.len(), Vec::new(), false);
        while msgs[sys..end].iter().any(|m| m.role == Role::Assistant) {
            match fit_row(tok, &msgs[..end], context)? {
                Some((start, row)) => {
                    rows.push(row);
                    end = start;
                }
                None => {
                    // The last exchange alone does not fit: leave it out (back to its user turn).
                    lost = true;
                    let a = msgs[..end]
                        .iter()
                        .rposition(|m| m.role == Role::Assistant)
                        .unwrap_or(sys);
                    end = msgs[sys..a]
                        .iter()
                        .rposition(|m| m.role == Role::User)
                        .map_or(sys, |u| sys + u);
                }
            }
        }
        match rows.len() {
            0 => stats.skipped_too_long += 1,
            n => {
                if lost {
                    stats.truncated += 1;
                } else if n == 1 {
                    stats.whole += 1;
                }
                if n > 1 {
                    stats.split += 1;
                    stats.windows += n;
                }
            }
        }
        out.extend(rows.into_iter().rev());
    }
    Ok((out, stats))
}

/// Renders conversations for a model with `context` positions, applying the truncation policy.
pub fn render_all(
    tok: &Tokenizer,
    convs: &[Conversation],
    context: usize,
) -> Result<(Vec<Example>, RenderStats)> {
    let mut stats = RenderStats::default();
    let mut out = Vec::with_capacity(convs.len());
    for c in convs {
        match fit_row(tok, &c.messages, context)? {
            Some((start, row)) => {
                let sys = usize::from(c.messages.first().is_some_and(|m| m.role == Role::System));
                if start > sys {
                    stats.truncated += 1;
                } else {
                    stats.whole += 1;
                }
                out.push(row);
            }
            None => stats.skipped_too_long += 1,
        }
    }
    Ok((out, stats))
}

/// One training row of `messages`: their latest exchanges that fit `context` positions
/// ([`fit_conversation`]), with the index of the first message kept; `None` when even the last
/// exchange does not fit.
fn fit_row(
    tok: &Tokenizer,
    messages: &[Message],
    context: usize,
) -> Result<Option<(usize, Example)>> {
    let mut rendered = None;
    let start = fit_conversation(messages, Keep::AReply, |m| {
        let r = render_chat(tok, m)?;
        let fits = r.ids.len() <= context + 1;
        rendered = fits.then_some(r);
        Ok::<_, ember_tokenizer::Error>(fits)
    })?;
    Ok(match (start, rendered) {
        (Some(start), Some(r)) => Some((start, example(tok, r.ids, r.mask))),
        _ => None,
    })
}

fn example(tok: &Tokenizer, ids: Vec<u32>, mask: Vec<u8>) -> Example {
    let target_bytes = ids
        .iter()
        .zip(&mask)
        .filter(|(_, m)| **m == 1)
        .map(|(id, _)| tok.text_len(*id) as u64)
        .sum();
    Example {
        ids,
        mask,
        target_bytes,
    }
}

/// Builds one padded batch from examples; returns it and its count of padding positions.
pub fn pad_batch(examples: &[&Example], pad: u32) -> (HostBatch, usize) {
    let longest = examples.iter().map(|e| e.ids.len() - 1).max().unwrap_or(1);
    let seq = longest.div_ceil(16) * 16;
    let mut hb = HostBatch {
        batch: examples.len(),
        seq,
        inputs: Vec::new(),
        targets: Vec::new(),
        mask: Vec::new(),
        target_bytes: 0,
        bidirectional: 0,
        doc_starts: Vec::new(),
    };
    let mut padding = 0;
    for e in examples {
        let n = e.ids.len() - 1;
        hb.inputs.extend_from_slice(&e.ids[..n]);
        hb.targets.extend_from_slice(&e.ids[1..]);
        hb.mask.extend(e.mask[1..].iter().map(|&m| f32::from(m)));
        hb.inputs.resize(hb.inputs.len() + seq - n, pad);
        hb.targets.resize(hb.targets.len() + seq - n, pad);
        hb.mask.resize(hb.mask.len() + seq - n, 0.0);
        hb.target_bytes += e.target_bytes;
        padding += seq - n;
    }
    (hb, padding)
}

/// Packs examples, in order, into `rows` rows of at most `cap` positions each: every example
/// goes into the first row with room for it, and packing stops at the first example no row has
/// room for (the next batch starts there). Returns the row of each packed example, a prefix of
/// `lengths` (positions per example: its ids less one). An example longer than `cap` is packed
/// alone into an empty row, so a batch always takes at least one.
pub fn first_fit(lengths: impl IntoIterator<Item = usize>, rows: usize, cap: usize) -> Vec<usize> {
    let mut used = vec![0usize; rows.max(1)];
    let mut placed = Vec::new();
    for n in lengths {
        let row = used.iter().position(|&u| u + n <= cap);
        let row = match row {
            Some(r) => r,
            None if placed.is_empty() => 0,
            None => break,
        };
        used[row] += n;
        placed.push(row);
    }
    placed
}

/// Builds one batch of `rows` rows packed with `examples` placed by [`first_fit`] (`rows_of`),
/// each row's conversations side by side with their document starts (`HostBatch::doc_starts`)
/// so that attention stays inside each; rows are padded to the longest (rounded up to a
/// multiple of 16, within `cap`). Returns the batch and its count of padding positions.
pub fn pack_batch(
    examples: &[&Example],
    rows_of: &[usize],
    rows: usize,
    cap: usize,
    pad: u32,
) -> (HostBatch, usize) {
    let rows = rows.max(1);
    let mut parts: Vec<Vec<&Example>> = vec![Vec::new(); rows];
    for (e, &r) in examples.iter().zip(rows_of) {
        parts[r].push(e);
    }
    let len = |r: &Vec<&Example>| r.iter().map(|e| e.ids.len() - 1).sum::<usize>();
    let longest = parts.iter().map(len).max().unwrap_or(1).max(1);
    let seq = (longest.div_ceil(16) * 16).min(cap.max(longest));
    let mut hb = HostBatch {
        batch: rows,
        seq,
        inputs: Vec::with_capacity(rows * seq),
        targets: Vec::with_capacity(rows * seq),
        mask: Vec::with_capacity(rows * seq),
        target_bytes: 0,
        bidirectional: 0,
        doc_starts: Vec::with_capacity(rows * seq),
    };
    let mut padding = 0;
    for part in &parts {
        let row_start = hb.inputs.len();
        for e in part {
            let n = e.ids.len() - 1;
            let start = (hb.inputs.len() - row_start) as u32;
            hb.inputs.extend_from_slice(&e.ids[..n]);
            hb.targets.extend_from_slice(&e.ids[1..]);
            hb.mask.extend(e.mask[1..].iter().map(|&m| f32::from(m)));
            hb.doc_starts.extend(std::iter::repeat_n(start, n));
            hb.target_bytes += e.target_bytes;
        }
        // Padding positions are one-token documents of their own, with no weight.
        let used = hb.inputs.len() - row_start;
        hb.inputs.resize(row_start + seq, pad);
        hb.targets.resize(row_start + seq, pad);
        hb.mask.resize(row_start + seq, 0.0);
        hb.doc_starts.extend((used..seq).map(|i| i as u32));
        padding += seq - used;
    }
    (hb, padding)
}
