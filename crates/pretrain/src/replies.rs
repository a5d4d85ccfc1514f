//! Loss on the assistant's replies only, for rendered conversations mixed into pretraining
//! (`[[data.mix]] loss = "replies"`): a target counts when the tokens before it, within the
//! conversation, last opened an assistant turn — the reply's tokens and the `<|end|>` that
//! closes it, as fine-tuning trains them.
//!
//! A window starts anywhere in the stream, so whether its first target is inside a reply is
//! read from the tokens before it: the nearest role or end token within [`LOOKBACK`] tokens
//! (none found: not a reply, so an unknown position is never trained on).

use ember_formats::TokenStream;
use ember_tokenizer::{ASSISTANT, END, ENDOFTEXT, SYSTEM, Tokenizer, USER};

/// Most tokens read back from a window's start to find the turn it begins in.
pub const LOOKBACK: usize = 8192;

/// The ids that open and close an assistant turn.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplyIds {
    assistant: u32,
    /// Ids that end a reply: `<|end|>`, another role, `<|endoftext|>`.
    closers: Vec<u32>,
}

impl ReplyIds {
    /// The tokenizer's chat ids; `None` if it has no `<|assistant|>` or `<|end|>`.
    pub fn of(tok: &Tokenizer) -> Option<Self> {
        let assistant = tok.token_to_id(ASSISTANT)?;
        let end = tok.token_to_id(END)?;
        let mut closers = vec![end];
        closers.extend(
            [USER, SYSTEM, ENDOFTEXT]
                .iter()
                .filter_map(|s| tok.token_to_id(s)),
        );
        Some(ReplyIds { assistant, closers })
    }

    /// `Some(true)` if `id` opens a reply, `Some(false)` if it closes one, `None` otherwise.
    fn turn(&self, id: u32) -> Option<bool> {
        if id == self.assistant {
            Some(true)
        } else if self.closers.contains(&id) {
            Some(false)
        } else {
            None
        }
    }

    /// Whether position `start` of `stream` lies inside a reply (read from the tokens before).
    pub fn inside_at(&self, stream: &TokenStream, start: usize) -> bool {
        let mut buf = Vec::new();
        let mut end = start;
        let floor = start.saturating_sub(LOOKBACK);
        while end > floor {
            let from = end.saturating_sub(512).max(floor);
            buf.clear();
            stream.read(from, end - from, &mut buf);
            if let Some(t) = buf.iter().rev().find_map(|&id| self.turn(id)) {
                return t;
            }
            end = from;
        }
        false
    }

    /// The mask of `window`'s targets (`window[1..]`, predicted from `window[..n]`), given
    /// whether its first token lies inside a reply: 1 for a target inside a reply or closing
    /// it, 0 otherwise.
    pub fn mask(&self, window: &[u32], mut inside: bool, out: &mut Vec<f32>) {
        for pair in window.windows(2) {
            // The input token moves the turn; the target counts if the turn is a reply then.
            if let Some(t) = self.turn(pair[0]) {
                inside = t;
            }
            out.push(if inside { 1.0 } else { 0.0 });
        }
    }
}
