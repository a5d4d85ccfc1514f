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
/// How many tokens the report's embedding map shows.
pub const REPORT_MAP_TOKENS: usize = 150;

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
/// tokens, and ids past the tokenizer's (a hybrid model's mask token, say), left out.
pub fn neighbors(ck: &Checkpoint, word: &str, k: usize) -> Result<Vec<(u32, String, f32)>> {
    let tok = &ck.tokenizer;
    let mut skip: Vec<u32> = ember_tokenizer::DEFAULT_SPECIALS
        .iter()
        .filter_map(|s| tok.token_to_id(s))
        .collect();
    skip.extend(tok.vocab_size() as u32..ck.config.vocab_size as u32);
    let near = ember_model::inspect::neighbors(&ck.model, &tok.encode(word), k, &skip)?;
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

/// The first `n` tokens the tokenizer learned by merging (in merge order, so the most frequent
/// pairs of its training text first) that are whole characters, not spaces alone, with their
/// input embeddings projected on the first two principal components of those embeddings:
/// (token, x, y). A picture of which frequent tokens the model treats alike.
pub fn embedding_map(ck: &Checkpoint, n: usize) -> Result<Vec<(String, f64, f64)>> {
    let tok = &ck.tokenizer;
    let picked: Vec<(u32, String)> = (256..tok.vocab_size() as u32)
        .filter_map(|id| {
            let text = std::str::from_utf8(tok.id_to_bytes(id)?).ok()?;
            (tok.text_len(id) > 0 && !text.trim().is_empty()).then(|| (id, text.to_string()))
        })
        .take(n)
        .collect();
    if picked.len() < 3 {
        return Err(EvalError::Usage(format!(
            "the tokenizer has {} merged tokens of whole text; a map needs at least 3",
            picked.len()
        )));
    }
    let w = ck.model.wte.weight.val();
    let d = w.dims()[1];
    let rows = crate::loglik::host_f32(w.reshape([ck.config.vocab_size * d]))?;
    let mut x: Vec<Vec<f64>> = picked
        .iter()
        .map(|(id, _)| {
            let r = &rows[*id as usize * d..(*id as usize + 1) * d];
            r.iter().map(|&v| f64::from(v)).collect()
        })
        .collect();
    let m = x.len() as f64;
    let mean: Vec<f64> = (0..d)
        .map(|j| x.iter().map(|r| r[j]).sum::<f64>() / m)
        .collect();
    for r in &mut x {
        for (v, mu) in r.iter_mut().zip(&mean) {
            *v -= mu;
        }
    }
    let first = principal_axis(&x, None);
    let second = principal_axis(&x, Some(&first));
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
    Ok(picked
        .into_iter()
        .zip(&x)
        .map(|((_, text), r)| (text, dot(r, &first), dot(r, &second)))
        .collect())
}

/// The unit direction of largest variance of the (centred) rows `x`, orthogonal to `not`:
/// power iteration on `xᵀx`, from a fixed start so the map is the same every time.
fn principal_axis(x: &[Vec<f64>], not: Option<&[f64]>) -> Vec<f64> {
    let d = x[0].len();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
    let project_out = |v: &mut Vec<f64>| {
        if let Some(u) = not {
            let c = dot(v, u);
            for (a, b) in v.iter_mut().zip(u) {
                *a -= c * b;
            }
        }
        let n = dot(v, v).sqrt().max(f64::MIN_POSITIVE);
        for a in v.iter_mut() {
            *a /= n;
        }
    };
    let mut v: Vec<f64> = (0..d).map(|i| 1.0 + (i % 7) as f64 * 0.1).collect();
    project_out(&mut v);
    for _ in 0..300 {
        let mut next = vec![0.0; d];
        for r in x {
            let c = dot(r, &v);
            for (a, b) in next.iter_mut().zip(r) {
                *a += c * b;
            }
        }
        project_out(&mut next);
        v = next;
    }
    // A fixed sign: the largest component positive.
    let big = v
        .iter()
        .copied()
        .fold(0.0f64, |a, b| if b.abs() > a.abs() { b } else { a });
    if big < 0.0 {
        v.iter_mut().for_each(|a| *a = -*a);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::principal_axis;

    /// Points spread widely along one direction and narrowly along another: the first axis is
    /// the wide direction, the second the narrow one, as an eigen-decomposition gives them.
    #[test]
    fn principal_axes_are_the_directions_of_most_variance() {
        let s = std::f64::consts::FRAC_1_SQRT_2;
        let (wide, narrow) = ([s, s, 0.0], [s, -s, 0.0]);
        let x: Vec<Vec<f64>> = (0..40)
            .map(|i| {
                // Each position along `wide` twice, once either side along `narrow`: the two
                // directions are uncorrelated, so they are exactly the principal axes.
                let (a, b) = ((i / 2) as f64 - 9.5, if i % 2 == 0 { 0.3 } else { -0.3 });
                (0..3).map(|j| a * wide[j] + b * narrow[j]).collect()
            })
            .collect();
        let mean: Vec<f64> = (0..3)
            .map(|j| x.iter().map(|r| r[j]).sum::<f64>() / 40.0)
            .collect();
        let x: Vec<Vec<f64>> = x
            .iter()
            .map(|r| r.iter().zip(&mean).map(|(v, m)| v - m).collect())
            .collect();
        let first = principal_axis(&x, None);
        let second = principal_axis(&x, Some(&first));
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
        assert!((dot(&first, &wide).abs() - 1.0).abs() < 1e-9, "{first:?}");
        assert!(
            (dot(&second, &narrow).abs() - 1.0).abs() < 1e-6,
            "{second:?}"
        );
        assert!(dot(&first, &second).abs() < 1e-9);
    }
}
