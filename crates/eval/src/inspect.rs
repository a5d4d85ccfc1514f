//! What a trained model learned, in forms a person can look at: every head's attention weights
//! over a text, and the tokens its input embeddings place near a word. Used by
//! `ember attention`, `ember neighbors` and the report of a run.

use burn::prelude::*;
use ember_model::checkpoint::Checkpoint;

use crate::error::{EvalError, Result};

/// The sentence the report shows attention for (an antecedent to find: "it" → "the trophy").
pub const REPORT_SENTENCE: &str = "The trophy did not fit in the suitcase because it was too big.";
/// The words the report lists neighbours of.
pub const REPORT_WORDS: [&str; 4] = [" king", " love", " said", " good"];

/// A text's tokens (as text) and `weights[layer][head]`, each row-major `[t, t]` (query rows).
pub struct AttentionMaps {
    /// The tokens, decoded one by one.
    pub tokens: Vec<String>,
    /// Per layer, per head, the `[t, t]` causal attention weights.
    pub weights: Vec<Vec<Vec<f32>>>,
}

/// The attention weights of `text` under `ck`'s model (at most its context length in tokens;
/// longer texts keep their beginning).
pub fn attention_maps(ck: &Checkpoint, text: &str) -> Result<AttentionMaps> {
    let tok = &ck.tokenizer;
    let mut ids = tok.encode(text);
    ids.truncate(ck.config.block_size);
    if ids.is_empty() {
        return Err(EvalError::Usage(
            "the text is empty; expected some text to read".into(),
        ));
    }
    let device = ck.model.wte.weight.device();
    let input = Tensor::<2, Int>::from_data(
        TensorData::new(
            ids.iter().map(|&i| i as i32).collect::<Vec<_>>(),
            [1, ids.len()],
        ),
        &device,
    );
    let (_, maps) = ck.model.forward_with_attention(input);
    let t = ids.len();
    let mut weights = Vec::with_capacity(maps.len());
    for m in maps {
        let flat = crate::loglik::host_f32(m.reshape([ck.config.n_head * t * t]))?;
        weights.push(flat.chunks(t * t).map(<[f32]>::to_vec).collect());
    }
    let tokens = ids
        .iter()
        .map(|&id| String::from_utf8_lossy(tok.id_to_bytes(id).unwrap_or_default()).into_owned())
        .collect();
    Ok(AttentionMaps { tokens, weights })
}

/// The `k` nearest tokens (id, text, cosine similarity) to `word` by input embedding; special
/// tokens left out.
pub fn neighbors(ck: &Checkpoint, word: &str, k: usize) -> Result<Vec<(u32, String, f32)>> {
    let tok = &ck.tokenizer;
    let specials: Vec<u32> = ember_tokenizer::DEFAULT_SPECIALS
        .iter()
        .filter_map(|s| tok.token_to_id(s))
        .collect();
    let near = ember_model::inspect::neighbors(&ck.model, &tok.encode(word), k, &specials)?;
    Ok(near
        .into_iter()
        .map(|(id, s)| {
            (
                id,
                String::from_utf8_lossy(tok.id_to_bytes(id).unwrap_or_default()).into_owned(),
                s,
            )
        })
        .collect())
}
