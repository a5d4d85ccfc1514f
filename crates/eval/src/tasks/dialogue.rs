//! `sft-loss`: held-out assistant-token loss on dialogue, with the chat template and the
//! context policy SFT trains with (oldest exchanges dropped to fit; too long even then:
//! counted, not scored).

use ember_formats::dialogue::Conversation;
use ember_formats::dialogue::{pad_batch, render_all};
use ember_model::Gpt;
use ember_tokenizer::{ChatTokens, Tokenizer};

use crate::error::Result;
use crate::loglik::host_scalar;
use crate::tasks::text::{TextResult, result};

/// Scores the assistant tokens (and their `<|end|>`) of `convs`.
pub fn score(
    model: &Gpt,
    tok: &Tokenizer,
    convs: &[Conversation],
    block: usize,
    source: String,
    invalid: u64,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<TextResult> {
    let chat = ChatTokens::of(tok)?;
    let (examples, stats) = render_all(tok, convs, block)?;
    let device = model.wte.weight.device();
    let (mut nll, mut tokens, mut bytes) = (0f64, 0u64, 0u64);
    let refs: Vec<_> = examples.iter().collect();
    let mut done = 0;
    for chunk in refs.chunks(16) {
        let (hb, _) = pad_batch(chunk, chat.bos);
        let (inputs, targets, mask) = hb.to_device(&device)?;
        let (sum, _) = model.nll_sum(inputs, targets, mask);
        nll += host_scalar(sum)?;
        tokens += hb.weight().round() as u64;
        bytes += hb.target_bytes;
        done += chunk.len();
        progress(done, refs.len());
    }
    Ok(result(
        source,
        nll,
        tokens,
        bytes,
        format!(
            "{} conversations, assistant tokens only ({} shortened to fit {block} tokens)",
            examples.len(),
            stats.truncated
        ),
        invalid + stats.skipped_too_long as u64,
    ))
}
