//! The GPT: token (and position) embeddings, pre-norm decoder blocks, final norm, LM head.
//! Field names follow GPT-2's checkpoint keys (`wte`, `wpe`, `h.0.attn.c_attn`, `ln_f`), so
//! export to Hugging Face is a renaming of `gamma`/`beta` to `weight`/`bias`.

use burn::module::{Initializer, Param};
use burn::nn::{Dropout, DropoutConfig, Embedding, RotaryEncoding, RotaryEncodingConfig};
use burn::prelude::*;

use crate::Visibility;
use crate::attention::{CausalSelfAttention, KvCache, LayerKv};
use crate::config::{GptConfig, Positions};
use crate::layers::{Mlp, Norm, linear};
use crate::ops;

/// One pre-norm decoder block: `x + attn(ln_1(x))`, then `x + mlp(ln_2(x))`.
#[derive(Module, Debug)]
pub struct Block {
    /// Norm before attention.
    pub ln_1: Norm,
    /// Causal self-attention.
    pub attn: CausalSelfAttention,
    /// Norm before the MLP.
    pub ln_2: Norm,
    /// Feed-forward block.
    pub mlp: Mlp,
}

impl Block {
    /// One new token per row, each row continuing its own cache (`slots[i]`, at position
    /// `starts[i]`): the norms, projections and MLP run on all rows at once, attention row by
    /// row (each row has its own length).
    fn forward_rows(
        &self,
        x: Tensor<3>,
        values: Option<Tensor<3>>,
        starts: &[usize],
        rope: Option<&RotaryEncoding>,
        slots: Vec<&mut LayerKv>,
    ) -> Tensor<3> {
        let h = self.ln_1.forward(x.clone());
        let x = x + self.attn.forward_rows(h, values, starts, rope, slots);
        x.clone() + self.mlp.forward(self.ln_2.forward(x))
    }

    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        x: Tensor<3>,
        values: Option<Tensor<3>>,
        start: usize,
        rope: Option<&RotaryEncoding>,
        cache: Option<&mut LayerKv>,
        record: Option<&mut Vec<Tensor<4>>>,
        seeing: &Visibility,
    ) -> Tensor<3> {
        let h = self.ln_1.forward(x.clone());
        let x = x + self
            .attn
            .forward(h, values, start, rope, cache, record, seeing);
        x.clone() + self.mlp.forward(self.ln_2.forward(x))
    }
}

/// A decoder-only transformer language model.
#[derive(Module, Debug)]
pub struct Gpt {
    /// Token embedding `[vocab_size, n_embd]`; also the output head when tied.
    pub wte: Embedding,
    /// Learned position embedding `[block_size, n_embd]` (learned positions only).
    pub wpe: Option<Embedding>,
    /// The blocks.
    pub h: Vec<Block>,
    /// Final norm.
    pub ln_f: Norm,
    /// Output head `[n_embd, vocab_size]` when not tied to `wte`.
    pub lm_head: Option<burn::nn::Linear>,
    /// Value embeddings `[vocab_size, n_embd]` (`GptConfig::value_embeds`; usually none).
    pub ve: Vec<Embedding>,
    /// Each block's weight on the residual stream `[n_layer]` (`GptConfig::residual_scalars`).
    pub resid_lambdas: Option<Param<Tensor<1>>>,
    /// Each block's weight on the embedded input `[n_layer]` (`GptConfig::residual_scalars`).
    pub x0_lambdas: Option<Param<Tensor<1>>>,
    /// Dropout on the embeddings.
    pub drop: Dropout,
    /// Fixed sine/cosine table `[block_size, n_embd]` (sinusoidal positions only; not saved).
    pub sinusoid: Option<Tensor<2>>,
    /// Rotary embedding tables (rope only; not saved).
    pub rope: Option<RotaryEncoding>,
    /// Context length.
    pub block_size: usize,
    /// Soft cap on the logits (`GptConfig::logit_softcap`; 0 = none).
    pub logit_softcap: f64,
}

impl GptConfig {
    /// Builds a GPT-2-initialised model on `device` (an autodiff device to train). Call
    /// `device.seed(s)` first for reproducible weights; parameters are drawn lazily, on first use.
    pub fn init(&self, device: &Device) -> Gpt {
        let emb = |n: usize| Embedding {
            weight: Initializer::Normal {
                mean: 0.0,
                std: 0.02,
            }
            .init([n, self.n_embd], device),
        };
        Gpt {
            wte: emb(self.vocab_size),
            wpe: (self.positions == Positions::Learned).then(|| emb(self.block_size)),
            h: (0..self.n_layer)
                .map(|_| Block {
                    ln_1: Norm::new(self, device),
                    attn: CausalSelfAttention::new(self, device),
                    ln_2: Norm::new(self, device),
                    mlp: Mlp::new(self, device),
                })
                .collect(),
            ln_f: Norm::new(self, device),
            lm_head: (!self.tie_embeddings)
                .then(|| linear(self.n_embd, self.vocab_size, false, 0.02, device)),
            ve: (0..self.value_embeds)
                .map(|_| emb(self.vocab_size))
                .collect(),
            resid_lambdas: self
                .residual_scalars
                .then(|| Initializer::Ones.init([self.n_layer], device)),
            x0_lambdas: self
                .residual_scalars
                .then(|| Initializer::Zeros.init([self.n_layer], device)),
            drop: DropoutConfig::new(self.dropout).init(),
            sinusoid: (self.positions == Positions::Sinusoidal)
                .then(|| sinusoid_table(self.block_size, self.n_embd, device)),
            rope: (self.positions == Positions::Rope)
                .then(|| RotaryEncodingConfig::new(self.block_size, self.head_dim()).init(device)),
            block_size: self.block_size,
            logit_softcap: self.logit_softcap,
        }
    }
}

/// `PE[p, 2i] = sin(p / 10000^(2i/d))`, `PE[p, 2i+1] = cos(p / 10000^(2i/d))`.
fn sinusoid_table(n: usize, d: usize, device: &Device) -> Tensor<2> {
    let mut v = vec![0f32; n * d];
    for p in 0..n {
        for i in 0..d {
            let angle = p as f64 / 10000f64.powf((i - i % 2) as f64 / d as f64);
            v[p * d + i] = if i % 2 == 0 { angle.sin() } else { angle.cos() } as f32;
        }
    }
    Tensor::from_data(TensorData::new(v, [n, d]), device)
}

impl Gpt {
    /// The model with every parameter drawn now. Burn initialises parameters lazily, at their
    /// first use (its `materialize` only merges low-rank adapters); a model made inside
    /// [`crate::with_seed`] must draw there, not wherever a parameter is first read — by then
    /// another thread may have seeded the shared generator (a training test beside others got
    /// other weights, off by 0.13, when the optimiser first read them).
    pub fn drawn(self) -> Self {
        struct Read;
        impl burn::module::ModuleVisitor for Read {
            fn visit_float<const D: usize>(&mut self, p: &burn::module::Param<Tensor<D>>) {
                let _ = p.val();
            }
        }
        self.visit(&mut Read);
        self
    }

    /// `tokens [batch, seq] -> logits [batch, seq, vocab_size]`, for `seq ≤ block_size`.
    pub fn forward(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        self.run(tokens, 0, None)
    }

    /// The summed negative log-likelihood of `targets [batch, seq]` weighted by `mask
    /// [batch, seq]`, and the sum of the weights (see [`masked_nll_sum`]). With a logit cap the
    /// cap is applied inside the loss operation (one fused step on the CPU, gradient included)
    /// rather than as separate operations on the logits.
    pub fn nll_sum(
        &self,
        tokens: Tensor<2, Int>,
        targets: Tensor<2, Int>,
        mask: Tensor<2>,
    ) -> (Tensor<1>, Tensor<1>) {
        self.nll_sum_seeing(tokens, targets, mask, &Visibility::causal())
    }

    /// [`Gpt::nll_sum`] with queries seeing the keys `seeing` allows: rows attending both ways
    /// (the masked sequences of the hybrid objective, whose hidden tokens are predicted, as
    /// every target is, from the position before them: GPT-BERT's masked next-token
    /// prediction), or rows packed with several conversations, each kept to itself.
    pub fn nll_sum_seeing(
        &self,
        tokens: Tensor<2, Int>,
        targets: Tensor<2, Int>,
        mask: Tensor<2>,
        seeing: &Visibility,
    ) -> (Tensor<1>, Tensor<1>) {
        let x = self.hidden(tokens, 0, None, None, seeing);
        let logits = self.uncapped_head(x);
        masked_nll_sum_capped(logits, targets, mask, self.logit_softcap)
    }

    /// Each row's mean negative log-likelihood over its weighted targets, `[batch]` (causal
    /// rows; a row with no weighted target gives NaN): the score `dialogue-choice` ranks
    /// replies by, as a differentiable tensor for a ranking loss (`[contrast]` in SFT).
    pub fn row_mean_nll(
        &self,
        tokens: Tensor<2, Int>,
        targets: Tensor<2, Int>,
        mask: Tensor<2>,
    ) -> Tensor<1> {
        let [b, t] = tokens.dims();
        let x = self.hidden(tokens, 0, None, None, &Visibility::causal());
        let logits = self.uncapped_head(x);
        let v = logits.dims()[2];
        let nll = ops::nll_rows(
            logits.reshape([b * t, v]),
            targets.reshape([b * t]),
            self.logit_softcap,
        )
        .reshape([b, t]);
        let count = mask.clone().sum_dim(1).reshape([b]);
        (nll * mask).sum_dim(1).reshape([b]) / count
    }

    /// Incremental decoding: `tokens [batch, new]` continue the sequence held in `cache`;
    /// returns the logits of the new positions `[batch, new, vocab_size]`.
    pub fn forward_cached(&self, tokens: Tensor<2, Int>, cache: &mut KvCache) -> Tensor<3> {
        let start = cache.len();
        let n = tokens.dims()[1];
        let logits = self.run(tokens, start, Some(cache));
        cache.advance(n);
        logits
    }

    /// As [`Gpt::forward_cached`], but only the last position's logits `[batch, vocab_size]`:
    /// the output layer runs on one position instead of all (prompt prefill, shared contexts).
    pub fn forward_cached_last(&self, tokens: Tensor<2, Int>, cache: &mut KvCache) -> Tensor<2> {
        let start = cache.len();
        let [b, n] = tokens.dims();
        let x = self.hidden(tokens, start, Some(cache), None, &Visibility::causal());
        cache.advance(n);
        let last = x.slice(s![.., n - 1..n, ..]);
        let v = self.wte.weight.dims()[0];
        self.head(last).reshape([b, v])
    }

    /// Several prompts run as one pass (a server's requests that arrive together): padded at
    /// the end to the longest, `[rows, longest]`, where causal attention keeps each prompt's
    /// numbers free of its padding. Returns each prompt's own cache and the logits of its last
    /// position, `[rows, vocab_size]`; row `i` is [`Gpt::forward_cached_last`] of prompt `i`
    /// alone (tested bit for bit on the CPU).
    ///
    /// # Panics
    /// If there are no prompts or one is empty.
    pub fn prefill(&self, prompts: &[&[u32]]) -> (Vec<KvCache>, Tensor<2>) {
        assert!(
            !prompts.is_empty() && prompts.iter().all(|p| !p.is_empty()),
            "prefill: no prompts, or an empty one"
        );
        let device = self.wte.weight.device();
        let (b, longest) = (
            prompts.len(),
            prompts.iter().map(|p| p.len()).max().unwrap_or(0),
        );
        let mut ids = Vec::with_capacity(b * longest);
        for p in prompts {
            ids.extend(p.iter().map(|&t| t as i32));
            ids.resize(ids.len() + longest - p.len(), 0);
        }
        let input = Tensor::<2, Int>::from_data(TensorData::new(ids, [b, longest]), &device);
        let mut cache = KvCache::new(self.h.len());
        let x = self.hidden(input, 0, Some(&mut cache), None, &Visibility::causal());
        cache.advance(longest);
        let d = x.dims()[2];
        let last: Vec<i32> = (prompts.iter().enumerate())
            .map(|(i, p)| (i * longest + p.len() - 1) as i32)
            .collect();
        let last = Tensor::<1, Int>::from_data(TensorData::new(last, [b]), &device);
        let x = x
            .reshape([b * longest, d])
            .select(0, last)
            .reshape([b, 1, d]);
        let v = self.wte.weight.dims()[0];
        let lens: Vec<usize> = prompts.iter().map(|p| p.len()).collect();
        (cache.split_rows(&lens), self.head(x).reshape([b, v]))
    }

    /// Batched decoding of independent sequences: row `i` adds `tokens[i]` to the sequence held
    /// in `caches[i]` (each of batch 1, any length). Returns the new positions' logits
    /// `[rows, vocab_size]`. The projections, MLPs and the output layer run as one product over
    /// all rows, so the weights are read once per step instead of once per sequence; attention
    /// runs per row. With one row it is [`Gpt::forward_cached_last`] exactly.
    pub fn decode_step(&self, tokens: &[u32], caches: &mut [&mut KvCache]) -> Tensor<2> {
        assert_eq!(tokens.len(), caches.len(), "one cache per token");
        let device = self.wte.weight.device();
        let n = tokens.len();
        let ids: Vec<i32> = tokens.iter().map(|&t| t as i32).collect();
        let input = Tensor::<2, Int>::from_data(TensorData::new(ids, [n, 1]), &device);
        if n == 1 {
            return self.forward_cached_last(input, caches[0]);
        }
        let starts: Vec<usize> = caches.iter().map(|c| c.len()).collect();
        let values = self.value_embeddings(&input);
        let mut x = self.wte.forward(input);
        let pos = || {
            let p: Vec<i32> = starts.iter().map(|&s| s as i32).collect();
            Tensor::<1, Int>::from_data(TensorData::new(p, [n]), &device)
        };
        if let Some(wpe) = &self.wpe {
            x = x + wpe.forward(pos().reshape([n, 1]));
        }
        if let Some(table) = &self.sinusoid {
            let d = table.dims()[1];
            x = x + table.clone().select(0, pos()).reshape([n, 1, d]);
        }
        let x0 = x.clone();
        for (i, block) in self.h.iter().enumerate() {
            let slots: Vec<&mut LayerKv> = caches.iter_mut().map(|c| c.layer(i)).collect();
            let v = self.values_of(&values, i);
            x = self.block_input(x, &x0, i);
            x = block.forward_rows(x, v, &starts, self.rope.as_ref(), slots);
        }
        for c in caches.iter_mut() {
            c.advance(1);
        }
        let v = self.wte.weight.dims()[0];
        self.head(x).reshape([n, v])
    }

    fn run(&self, tokens: Tensor<2, Int>, start: usize, cache: Option<&mut KvCache>) -> Tensor<3> {
        let x = self.hidden(tokens, start, cache, None, &Visibility::causal());
        self.head(x)
    }

    /// The logits of [`Gpt::forward`] together with every layer's attention weights
    /// `[batch, heads, seq, seq]`, computed by the same layers (rotary positions included).
    pub fn forward_with_attention(&self, tokens: Tensor<2, Int>) -> (Tensor<3>, Vec<Tensor<4>>) {
        let mut weights = Vec::with_capacity(self.h.len());
        let x = self.hidden(tokens, 0, None, Some(&mut weights), &Visibility::causal());
        (self.head(x), weights)
    }

    /// The final hidden states `[batch, seq, n_embd]` before `ln_f` and the output layer; the
    /// first `bidirectional` rows attend both ways.
    fn hidden(
        &self,
        tokens: Tensor<2, Int>,
        start: usize,
        mut cache: Option<&mut KvCache>,
        mut record: Option<&mut Vec<Tensor<4>>>,
        seeing: &Visibility,
    ) -> Tensor<3> {
        let [b, t] = tokens.dims();
        let device = tokens.device();
        let values = self.value_embeddings(&tokens);
        let mut x = self.wte.forward(tokens);
        // Packed rows count positions from each document's start.
        let restart = (!seeing.starts.is_empty()).then(|| {
            let pos: Vec<i32> = (seeing.starts.chunks(t.max(1)))
                .flat_map(|row| {
                    row.iter()
                        .enumerate()
                        .map(|(i, &s)| (i - s as usize) as i32)
                })
                .collect();
            Tensor::<2, Int>::from_data(TensorData::new(pos, [b, t]), &device)
        });
        if let Some(wpe) = &self.wpe {
            let pos = restart.clone().unwrap_or_else(|| {
                Tensor::<1, Int>::arange(start as i64..(start + t) as i64, &device).unsqueeze::<2>()
            });
            x = x + wpe.forward(pos);
        }
        if let Some(table) = &self.sinusoid {
            x = x + match &restart {
                Some(pos) => {
                    let d = table.dims()[1];
                    table
                        .clone()
                        .select(0, pos.clone().reshape([b * t]))
                        .reshape([b, t, d])
                }
                None => table
                    .clone()
                    .slice(s![start..start + t, ..])
                    .unsqueeze::<3>(),
            };
        }
        x = self.drop.forward(x);
        let x0 = x.clone();
        for (i, block) in self.h.iter().enumerate() {
            let slot = cache.as_deref_mut().map(|c| c.layer(i));
            x = self.block_input(x, &x0, i);
            x = block.forward(
                x,
                self.values_of(&values, i),
                start,
                self.rope.as_ref(),
                slot,
                record.as_deref_mut(),
                seeing,
            );
        }
        x
    }

    /// What block `layer` reads: `x`, or `r[layer] · x + z[layer] · x0` with residual scalars
    /// (`[batch, seq, n_embd]` each).
    fn block_input(&self, x: Tensor<3>, x0: &Tensor<3>, layer: usize) -> Tensor<3> {
        match (&self.resid_lambdas, &self.x0_lambdas) {
            (Some(r), Some(z)) => {
                let at =
                    |p: &Param<Tensor<1>>| p.val().slice(s![layer..layer + 1]).reshape([1, 1, 1]);
                x * at(r) + x0.clone() * at(z)
            }
            _ => x,
        }
    }

    /// Each value-embedding table's rows for `tokens [batch, seq]`: `[batch, seq, n_embd]`.
    fn value_embeddings(&self, tokens: &Tensor<2, Int>) -> Vec<Tensor<3>> {
        self.ve.iter().map(|e| e.forward(tokens.clone())).collect()
    }

    /// What block `layer` adds to its values (see [`GptConfig::value_embeds`]).
    fn values_of(&self, values: &[Tensor<3>], layer: usize) -> Option<Tensor<3>> {
        crate::config::value_table(self.h.len(), values.len(), layer).map(|j| values[j].clone())
    }

    /// `ln_f` and the output layer: `[batch, seq, n_embd] -> [batch, seq, vocab_size]`.
    fn head(&self, x: Tensor<3>) -> Tensor<3> {
        let logits = self.uncapped_head(x);
        match self.logit_softcap {
            0.0 => logits,
            cap => crate::ops::softcap(logits, cap),
        }
    }

    /// The logits before the soft cap.
    fn uncapped_head(&self, x: Tensor<3>) -> Tensor<3> {
        let x = self.ln_f.forward(x);
        match &self.lm_head {
            Some(head) => crate::layers::apply(head, x),
            None => {
                // One [batch·seq, n_embd] × [n_embd, vocab] product (see `layers::apply`).
                let [b, t, d] = x.dims();
                let logits = ops::times_transposed(x.reshape([b * t, d]), self.wte.weight.val());
                let v = logits.dims()[1];
                logits.reshape([b, t, v])
            }
        }
    }

    /// Number of parameters actually held (tied weights once).
    pub fn num_params(&self) -> usize {
        Module::num_params(self)
    }
}

/// Mean next-token loss over positions weighted by `mask`: `logits [b, t, v]`, `targets
/// [b, t]`, `mask [b, t]` (1 where the position is trained; pretraining passes all ones, SFT
/// ones on assistant tokens). Returns a one-element tensor; positions with weight 0 do not
/// contribute, and an all-zero mask gives 0, not NaN.
pub fn masked_loss(logits: Tensor<3>, targets: Tensor<2, Int>, mask: Tensor<2>) -> Tensor<1> {
    let (sum, count) = masked_nll_sum(logits, targets, mask);
    sum / count.clamp_min(1.0)
}

/// Sum of negative log-likelihoods weighted by `mask`, and the sum of the weights (for
/// evaluations that add over many batches, e.g. bits per byte).
pub fn masked_nll_sum(
    logits: Tensor<3>,
    targets: Tensor<2, Int>,
    mask: Tensor<2>,
) -> (Tensor<1>, Tensor<1>) {
    masked_nll_sum_capped(logits, targets, mask, 0.0)
}

/// [`masked_nll_sum`] of the logits soft-capped at `cap` (0 = no cap).
fn masked_nll_sum_capped(
    logits: Tensor<3>,
    targets: Tensor<2, Int>,
    mask: Tensor<2>,
    cap: f64,
) -> (Tensor<1>, Tensor<1>) {
    let [b, t, v] = logits.dims();
    let nll = crate::ops::nll_rows(logits.reshape([b * t, v]), targets.reshape([b * t]), cap);
    let mask = mask.reshape([b * t]);
    ((nll * mask.clone()).sum(), mask.sum())
}
