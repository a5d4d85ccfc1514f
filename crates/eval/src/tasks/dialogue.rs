//! `sft-loss`: held-out assistant-token loss on dialogue, with the chat template and the
//! context policy SFT trains with (oldest exchanges dropped to fit; too long even then:
//! counted, not scored).

use burn::prelude::*;
use ember_model::{Gpt, masked_nll_sum};
use ember_sft::batches::{pad_batch, render_all};
use ember_sft::data::Conversation;
use ember_tokenizer::{ChatTokens, Tokenizer};

use crate::error::{EvalError, Result};
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
        let ids = |v: &[u32]| {
            let v: Vec<i32> = v.iter().map(|&i| i as i32).collect();
            Tensor::<2, Int>::from_data(TensorData::new(v, [hb.batch, hb.seq]), &device)
        };
        let mask = Tensor::<2>::from_data(
            TensorData::new(hb.mask.clone(), [hb.batch, hb.seq]),
            &device,
        );
        let (sum, count) = masked_nll_sum(model.forward(ids(&hb.inputs)), ids(&hb.targets), mask);
        let read = |t: Tensor<1>| -> Result<f64> {
            t.into_data()
                .try_to_vec_as::<f32>()
                .map_err(|e| EvalError::Usage(format!("reading the loss from the device: {e:?}")))
                .map(|v| v.first().copied().unwrap_or(f32::NAN) as f64)
        };
        nll += read(sum)?;
        tokens += read(count)?.round() as u64;
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
