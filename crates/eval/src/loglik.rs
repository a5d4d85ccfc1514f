//! Log-likelihood of continuations, the one primitive behind every multiple-choice task.
//!
//! [`Scorer`] is a trait so the scoring rules (accuracy, length normalisation, ties) can be
//! tested against known numbers without a model; [`ModelScorer`] is the real one.
//!
//! As lm-evaluation-harness does, a request longer than the context window keeps its last
//! `block_size + 1` tokens (the context loses its beginning, never the continuation's end).

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use ember_model::{Gpt, KvCache};

use crate::error::{EvalError, Result};

/// Score `continuation` given `context` (token ids). `context` must not be empty: a task
/// without one passes the `<|endoftext|>` id, as lm-evaluation-harness passes the EOT token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Ids before the continuation.
    pub context: Vec<u32>,
    /// Ids whose log-probabilities are summed.
    pub continuation: Vec<u32>,
}

/// Summed natural-log probabilities of continuations.
pub trait Scorer {
    /// One sum per request, in order.
    fn loglik(&mut self, requests: &[Request]) -> Result<Vec<f64>>;
}

/// Scores with a model. Requests that share their context (the choices of one question) run
/// the context once and continue it from a copied KV cache; the rest are batched up to
/// `batch_tokens` positions per forward pass, longest first so rows of a batch pad little.
pub struct ModelScorer<'a> {
    model: &'a Gpt,
    block_size: usize,
    /// Most positions (rows × padded length) in one forward pass.
    pub batch_tokens: usize,
    /// Run a shared context once for all its continuations (off: every request in full).
    pub reuse_context: bool,
}

impl<'a> ModelScorer<'a> {
    /// A scorer for `model`, whose context window is `block_size`.
    pub fn new(model: &'a Gpt, block_size: usize) -> Self {
        ModelScorer {
            model,
            block_size,
            batch_tokens: 4096,
            reuse_context: true,
        }
    }

    fn device(&self) -> Device {
        self.model.wte.weight.device()
    }

    fn ids(&self, rows: &[Vec<u32>], len: usize) -> Tensor<2, Int> {
        let mut data = Vec::with_capacity(rows.len() * len);
        for r in rows {
            data.extend(r.iter().map(|&i| i as i32));
            data.extend(std::iter::repeat_n(0, len - r.len()));
        }
        Tensor::from_data(TensorData::new(data, [rows.len(), len]), &self.device())
    }

    /// Summed log-probabilities of `targets` under `logits [b, len, v]`, row i counting only
    /// positions `ranges[i]`: `[b]` on the host.
    fn masked_sums(
        &self,
        logits: Tensor<3>,
        targets: &[Vec<u32>],
        ranges: &[(usize, usize)],
        len: usize,
    ) -> Result<Vec<f64>> {
        let b = targets.len();
        let mut mask = vec![0f32; b * len];
        for (i, &(from, to)) in ranges.iter().enumerate() {
            mask[i * len + from..i * len + to].fill(1.0);
        }
        let mask = Tensor::<2>::from_data(TensorData::new(mask, [b, len]), &self.device());
        let logp = log_softmax(logits, 2)
            .gather(2, self.ids(targets, len).unsqueeze_dim::<3>(2))
            .reshape([b, len]);
        host((logp * mask).sum_dim(1).reshape([b]))
    }

    /// Requests `[i..j)` share one context: run it once, then every continuation at once.
    fn shared(&self, reqs: &[Request]) -> Result<Vec<f64>> {
        let ctx = &reqs[0].context;
        let mut cache = KvCache::new(self.model.h.len());
        let first = log_softmax(
            self.model
                .forward_cached_last(self.ids(std::slice::from_ref(ctx), ctx.len()), &mut cache),
            1,
        );
        let first = host_f32(first.reshape([self.model.wte.weight.dims()[0]]))?;
        let inputs: Vec<Vec<u32>> = reqs
            .iter()
            .map(|r| r.continuation[..r.continuation.len() - 1].to_vec())
            .collect();
        let targets: Vec<Vec<u32>> = reqs.iter().map(|r| r.continuation[1..].to_vec()).collect();
        let len = inputs.iter().map(Vec::len).max().unwrap_or(0);
        let rest = if len == 0 {
            vec![0.0; reqs.len()]
        } else {
            let mut cache = cache.repeat_batch(reqs.len());
            let logits = self
                .model
                .forward_cached(self.ids(&inputs, len), &mut cache);
            let ranges: Vec<(usize, usize)> = targets.iter().map(|t| (0, t.len())).collect();
            self.masked_sums(logits, &targets, &ranges, len)?
        };
        Ok(reqs
            .iter()
            .zip(rest)
            .map(|(r, s)| first[r.continuation[0] as usize] as f64 + s)
            .collect())
    }

    /// Independent requests, batched.
    fn batched(&self, reqs: &[&Request]) -> Result<Vec<f64>> {
        // (input, targets scored) per request after left truncation to block_size + 1.
        let rows: Vec<(Vec<u32>, Vec<u32>, usize)> = reqs
            .iter()
            .map(|r| {
                let full: Vec<u32> = r.context.iter().chain(&r.continuation).copied().collect();
                let full = &full[full.len().saturating_sub(self.block_size + 1)..];
                let scored = r.continuation.len().min(full.len() - 1);
                (full[..full.len() - 1].to_vec(), full[1..].to_vec(), scored)
            })
            .collect();
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(rows[i].0.len()));
        let mut out = vec![0.0; rows.len()];
        let mut k = 0;
        while k < order.len() {
            let len = rows[order[k]].0.len();
            let n = (self.batch_tokens / len.max(1))
                .clamp(1, 256)
                .min(order.len() - k);
            let batch = &order[k..k + n];
            let inputs: Vec<Vec<u32>> = batch.iter().map(|&i| rows[i].0.clone()).collect();
            let logits = self.model.forward(self.ids(&inputs, len));
            let targets: Vec<Vec<u32>> = batch.iter().map(|&i| rows[i].1.clone()).collect();
            let ranges: Vec<(usize, usize)> = batch
                .iter()
                .map(|&i| (rows[i].1.len() - rows[i].2, rows[i].1.len()))
                .collect();
            for (&i, s) in batch
                .iter()
                .zip(self.masked_sums(logits, &targets, &ranges, len)?)
            {
                out[i] = s;
            }
            k += n;
        }
        Ok(out)
    }
}

/// A 1-D float tensor copied to the host (the one device readback of every task).
pub(crate) fn host_f32(t: Tensor<1>) -> Result<Vec<f32>> {
    t.into_data().try_to_vec_as::<f32>().map_err(|e| {
        EvalError::Model(ember_model::ModelError::Device(format!(
            "reading results from the device: {e:?}"
        )))
    })
}

fn host(t: Tensor<1>) -> Result<Vec<f64>> {
    Ok(host_f32(t)?.into_iter().map(f64::from).collect())
}

/// A one-element tensor (a summed loss) on the host.
pub(crate) fn host_scalar(t: Tensor<1>) -> Result<f64> {
    Ok(host_f32(t)?.first().copied().map_or(f64::NAN, f64::from))
}

impl Scorer for ModelScorer<'_> {
    fn loglik(&mut self, requests: &[Request]) -> Result<Vec<f64>> {
        if let Some(r) = requests
            .iter()
            .find(|r| r.context.is_empty() || r.continuation.is_empty())
        {
            return Err(EvalError::Usage(format!(
                "a log-likelihood request needs a context and a continuation (got {} and {} ids)",
                r.context.len(),
                r.continuation.len()
            )));
        }
        let mut out = vec![0.0; requests.len()];
        let mut single = Vec::new();
        let mut i = 0;
        while i < requests.len() {
            let mut j = i + 1;
            while j < requests.len() && requests[j].context == requests[i].context {
                j += 1;
            }
            let group = &requests[i..j];
            let longest = group
                .iter()
                .map(|r| r.continuation.len())
                .max()
                .unwrap_or(0);
            if self.reuse_context
                && j - i > 1
                && group[0].context.len() + longest - 1 <= self.block_size
            {
                out[i..j].copy_from_slice(&self.shared(group)?);
            } else {
                single.extend(i..j);
            }
            i = j;
        }
        let refs: Vec<&Request> = single.iter().map(|&k| &requests[k]).collect();
        for (k, s) in single.iter().zip(self.batched(&refs)?) {
            out[*k] = s;
        }
        Ok(out)
    }
}
