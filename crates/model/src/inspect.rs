//! Looking inside a trained model: which tokens its input embeddings place near each other.

use crate::error::{ModelError, Result};
use crate::gpt::Gpt;

/// The `k` tokens whose input embeddings are nearest (by cosine similarity) to the mean of the
/// embeddings of `query` (one token, or the tokens of a word that is several), leaving out
/// the query's own tokens and those in `skip` (special tokens, say); most similar first, ties
/// by id. Similarities are in [-1, 1].
pub fn neighbors(model: &Gpt, query: &[u32], k: usize, skip: &[u32]) -> Result<Vec<(u32, f32)>> {
    let w = model.wte.weight.val();
    let [vocab, d] = w.dims();
    let rows = w
        .into_data()
        .try_to_vec_as::<f32>()
        .map_err(|e| ModelError::Device(format!("reading the embedding from the device: {e:?}")))?;
    if let Some(&bad) = query.iter().find(|&&id| id as usize >= vocab) {
        return Err(ModelError::Generate(format!(
            "token id {bad} is outside the model's {vocab} ids"
        )));
    }
    if query.is_empty() {
        return Err(ModelError::Generate("the query has no tokens".into()));
    }
    let row = |i: usize| &rows[i * d..(i + 1) * d];
    let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
    let mut q = vec![0f32; d];
    for &id in query {
        for (a, b) in q.iter_mut().zip(row(id as usize)) {
            *a += b / query.len() as f32;
        }
    }
    let qn = norm(&q).max(f32::MIN_POSITIVE);
    let mut sims: Vec<(u32, f32)> = (0..vocab)
        .filter(|&i| !query.contains(&(i as u32)) && !skip.contains(&(i as u32)))
        .map(|i| {
            let r = row(i);
            let dot: f32 = q.iter().zip(r).map(|(a, b)| a * b).sum();
            (i as u32, dot / (qn * norm(r).max(f32::MIN_POSITIVE)))
        })
        .collect();
    sims.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    sims.truncate(k);
    Ok(sims)
}
