//! Well-formed replies: sample the fine-tuned model's answer to held-out prompts and count the
//! replies that end with the end-of-turn token within the token limit (the SFT target is 95%).

use std::path::Path;

use ember_model::{Gpt, SamplingConfig, StopReason, generate};
use ember_tokenizer::{END, Keep, Role, Tokenizer, fit_conversation, render_prompt};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use ember_formats::dialogue::Conversation;

/// `[sample]`: how replies are sampled at the end of a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SampleSection {
    /// Held-out prompts to answer (0 = none).
    pub replies: usize,
    /// Token limit of a reply.
    pub max_new_tokens: usize,
    /// Sampling temperature.
    pub temperature: f32,
    /// Top-k.
    pub top_k: usize,
    /// Seed.
    pub seed: u64,
}

impl Default for SampleSection {
    fn default() -> Self {
        SampleSection {
            replies: 100,
            max_new_tokens: 128,
            temperature: 0.8,
            top_k: 200,
            seed: 1,
        }
    }
}

/// Counts of the sampled replies.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplyStats {
    /// Prompts answered.
    pub answered: usize,
    /// Replies that ended with `<|end|>` within the limit.
    pub ended: usize,
    /// Prompts whose oldest exchanges were dropped to fit the context (as `ember chat` does).
    pub trimmed: usize,
    /// Held-out prompts skipped because even the last user turn and the limit exceed the context.
    pub too_long: usize,
}

impl ReplyStats {
    /// Fraction of well-formed replies.
    pub fn rate(&self) -> f64 {
        self.ended as f64 / self.answered.max(1) as f64
    }
}

/// The prompt for `messages`, dropping the oldest exchanges (after a system message) until it
/// has at most `room` ids ([`fit_conversation`], the rule `ember chat` uses); `None` when even
/// the last user turn does not fit. The flag says whether anything was dropped.
pub fn fit_prompt(
    tok: &Tokenizer,
    messages: &[ember_tokenizer::Message],
    room: usize,
) -> Result<Option<(Vec<u32>, bool)>> {
    let mut ids = Vec::new();
    let start = fit_conversation(messages, Keep::LastTurn, |msgs| {
        ids = render_prompt(tok, msgs)?;
        Ok::<_, ember_tokenizer::Error>(ids.len() <= room)
    })?;
    let sys = usize::from(messages.first().is_some_and(|m| m.role == Role::System));
    Ok(start.map(|start| (ids, start > sys)))
}

/// Answers the last user turn of each held-out conversation (with its earlier turns as
/// context); writes `replies.jsonl` into `run` (prompt, reply, how it ended).
pub fn sample_replies(
    model: &Gpt,
    tok: &Tokenizer,
    held_out: &[Conversation],
    s: &SampleSection,
    run: &Path,
) -> Result<ReplyStats> {
    let mut stats = ReplyStats::default();
    let end = tok.token_to_id(END);
    let stop_ids = ember_tokenizer::stop_ids(tok);
    let mut lines = String::new();
    for (i, c) in held_out.iter().take(s.replies).enumerate() {
        let Some(last) = c.messages.iter().rposition(|m| m.role == Role::Assistant) else {
            continue;
        };
        let Some(prompt) = fit_prompt(
            tok,
            &c.messages[..last],
            model.block_size.saturating_sub(s.max_new_tokens),
        )?
        else {
            stats.too_long += 1;
            continue;
        };
        stats.trimmed += usize::from(prompt.1);
        let prompt = prompt.0;
        let cfg = SamplingConfig {
            max_new_tokens: s.max_new_tokens,
            temperature: s.temperature,
            top_k: s.top_k,
            top_p: 1.0,
            repetition_penalty: 1.0,
            seed: s.seed.wrapping_add(i as u64),
            stop_ids: stop_ids.clone(),
            stop_strings: vec![],
            logit_bias: Vec::new(),
        };
        let g = generate(model, tok, &prompt, &cfg, |_| true)?;
        let ended = matches!(g.stop, StopReason::StopToken(id) if Some(id) == end);
        stats.answered += 1;
        stats.ended += usize::from(ended);
        let row = serde_json::json!({"prompt": c.messages[last - 1].content, "reply": g.text, "reference": c.messages[last].content, "ended_with_end_of_turn": ended, "tokens": g.ids.len()});
        lines += &(row.to_string() + "\n");
    }
    let path = run.join("replies.jsonl");
    ember_files::write_atomic(&path, lines.as_bytes())?;
    Ok(stats)
}
