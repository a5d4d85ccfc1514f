//! Causal multi-head self-attention with an optional KV cache for incremental decoding.

use burn::nn::{Dropout, DropoutConfig, Linear, RotaryEncoding};
use burn::prelude::*;

use crate::Visibility;
use crate::config::GptConfig;
use crate::layers::{apply, linear};
use crate::ops;

/// One layer's cached keys and values.
#[derive(Clone, Debug, Default)]
pub enum LayerKv {
    /// Nothing cached yet.
    #[default]
    Empty,
    /// Burn tensors `[batch, n_head, cached, head_dim]` (keys after rotary positions): every
    /// device but the CPU, or the CPU with the fused kernels off.
    Tensors(Box<(Tensor<4>, Tensor<4>)>),
    /// One token-major cache per batch row, for the CPU kernel ([`ember_kernels::cached_attention`]).
    Rows(Vec<ember_kernels::KvRows>),
}

/// Keys and values of earlier positions, one [`LayerKv`] per layer.
#[derive(Clone, Debug, Default)]
pub struct KvCache {
    layers: Vec<LayerKv>,
    len: usize,
}

impl KvCache {
    /// An empty cache for a model with `n_layer` blocks.
    pub fn new(n_layer: usize) -> Self {
        KvCache {
            layers: vec![LayerKv::Empty; n_layer],
            len: 0,
        }
    }

    /// Number of positions cached.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when nothing is cached yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The cache repeated `n` times along the batch: a shared prefix computed once (a
    /// multiple-choice question's context, say), then continued by `n` different rows.
    pub fn repeat_batch(&self, n: usize) -> KvCache {
        let layers = self.layers.iter().map(|l| match l {
            LayerKv::Empty => LayerKv::Empty,
            LayerKv::Tensors(kv) => LayerKv::Tensors(Box::new((
                kv.0.clone().repeat_dim(0, n),
                kv.1.clone().repeat_dim(0, n),
            ))),
            LayerKv::Rows(rows) => {
                LayerKv::Rows((0..n).flat_map(|_| rows.iter().cloned()).collect())
            }
        });
        KvCache {
            layers: layers.collect(),
            len: self.len,
        }
    }

    /// One cache per batch row, row `i` cut to its first `lens[i]` positions (prompts run
    /// together, each padded to the longest).
    ///
    /// # Panics
    /// If `lens` does not give one length, at most [`KvCache::len`], per batch row.
    pub fn split_rows(self, lens: &[usize]) -> Vec<KvCache> {
        assert!(
            lens.iter().all(|&l| l <= self.len),
            "split_rows: lengths {lens:?} beyond the {} cached",
            self.len
        );
        let mut out: Vec<KvCache> = (lens.iter())
            .map(|&len| KvCache {
                layers: Vec::with_capacity(self.layers.len()),
                len,
            })
            .collect();
        for layer in self.layers {
            match layer {
                LayerKv::Empty => out.iter_mut().for_each(|c| c.layers.push(LayerKv::Empty)),
                LayerKv::Tensors(kv) => {
                    let (k, v) = *kv;
                    assert_eq!(k.dims()[0], lens.len(), "split_rows: one length per row");
                    for (i, c) in out.iter_mut().enumerate() {
                        let cut = |t: &Tensor<4>| t.clone().slice(s![i..i + 1, .., 0..c.len, ..]);
                        c.layers
                            .push(LayerKv::Tensors(Box::new((cut(&k), cut(&v)))));
                    }
                }
                LayerKv::Rows(rows) => {
                    assert_eq!(rows.len(), lens.len(), "split_rows: one length per row");
                    for (c, mut r) in out.iter_mut().zip(rows) {
                        let width = r.keys.len() / self.len.max(1);
                        r.keys.truncate(c.len * width);
                        r.values.truncate(c.len * width);
                        c.layers.push(LayerKv::Rows(vec![r]));
                    }
                }
            }
        }
        out
    }

    pub(crate) fn layer(&mut self, i: usize) -> &mut LayerKv {
        &mut self.layers[i]
    }

    pub(crate) fn advance(&mut self, n: usize) {
        self.len += n;
    }
}

/// Multi-head causal self-attention (`ops::attention`: the fused kernels when training on the
/// CPU, Burn's attention otherwise).
#[derive(Module, Debug)]
pub struct CausalSelfAttention {
    /// Query, key and value projections in one: `[n_embd, 3 * n_embd]` (GPT-2's `c_attn`).
    pub c_attn: Linear,
    /// Output projection `[n_embd, n_embd]`, scaled at init by 1/√(2·n_layer) (or zero).
    pub c_proj: Linear,
    /// Dropout on the output.
    pub dropout: Dropout,
    /// Number of heads.
    pub n_head: usize,
    /// RMS-normalise queries and keys per head (`GptConfig::qk_norm`).
    pub qk_norm: bool,
}

impl CausalSelfAttention {
    /// Initialised as GPT-2.
    pub fn new(cfg: &GptConfig, device: &Device) -> Self {
        let d = cfg.n_embd;
        let proj_std = crate::config::proj_std(cfg);
        CausalSelfAttention {
            c_attn: linear(d, 3 * d, cfg.bias, 0.02, device),
            c_proj: linear(d, d, cfg.bias, proj_std, device),
            dropout: DropoutConfig::new(cfg.dropout).init(),
            n_head: cfg.n_head,
            qk_norm: cfg.qk_norm,
        }
    }

    /// Queries, keys and values side by side, `[batch, seq, 3 · n_embd]`; with QK-norm each
    /// head's query and key divided by its root mean square. (Rotary positions rotate each
    /// head's vector without changing its length, so normalising before them, as here, is
    /// normalising after them.) `values [batch, seq, n_embd]`, if any, is added to the values.
    fn projections(&self, x: Tensor<3>, values: Option<Tensor<3>>) -> Tensor<3> {
        let qkv = apply(&self.c_attn, x);
        if !self.qk_norm && values.is_none() {
            return qkv;
        }
        let [b, t, d3] = qkv.dims();
        let d = d3 / 3;
        let mut qk = qkv.clone().slice(s![.., .., 0..2 * d]);
        if self.qk_norm {
            let heads = qk.reshape([b, t, 2 * self.n_head, d / self.n_head]);
            let rms = (heads.clone().square().mean_dim(3) + crate::layers::NORM_EPS).sqrt();
            qk = (heads / rms).reshape([b, t, 2 * d]);
        }
        let v = qkv.slice(s![.., .., 2 * d..3 * d]);
        let v = match values {
            Some(e) => v + e,
            None => v,
        };
        Tensor::cat(vec![qk, v], 2)
    }

    /// `[rows, 1, n_embd] -> [rows, 1, n_embd]`: one new token per row, row `i` at position
    /// `starts[i]` continuing its own cache `slots[i]`. The projections run on all rows at once;
    /// attention per row, as [`CausalSelfAttention::forward`] with a cache would.
    pub fn forward_rows(
        &self,
        x: Tensor<3>,
        values: Option<Tensor<3>>,
        starts: &[usize],
        rope: Option<&RotaryEncoding>,
        slots: Vec<&mut LayerKv>,
    ) -> Tensor<3> {
        let qkv = self.projections(x, values);
        let held: Vec<&LayerKv> = slots.iter().map(|s| &**s).collect();
        let y = if ops::cached_rows_here(&qkv, &held) {
            ops::attention_rows(qkv, self.n_head, rope, slots)
        } else {
            let rows = slots
                .into_iter()
                .zip(starts)
                .enumerate()
                .map(|(i, (slot, &start))| {
                    let row = qkv.clone().slice(s![i..i + 1, .., ..]);
                    ops::attention(
                        row,
                        self.n_head,
                        start,
                        rope,
                        Some(slot),
                        &Visibility::causal(),
                    )
                })
                .collect();
            Tensor::cat(rows, 0)
        };
        self.dropout.forward(apply(&self.c_proj, y))
    }

    /// `[batch, seq, n_embd] -> [batch, seq, n_embd]`. `start` is the position of the first
    /// token of `x`; with a `cache`, keys and values of earlier calls are attended to and this
    /// call's are appended. With `record` (a whole sequence, no cache), the attention weights
    /// `[batch, heads, seq, seq]` are appended to it. Queries see the keys `seeing` allows
    /// (causal rows; or, for whole sequences without a cache, rows attending both ways or
    /// packed with several documents). `values`, if any, is added to the values (value
    /// embeddings).
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        x: Tensor<3>,
        values: Option<Tensor<3>>,
        start: usize,
        rope: Option<&RotaryEncoding>,
        cache: Option<&mut LayerKv>,
        record: Option<&mut Vec<Tensor<4>>>,
        seeing: &Visibility,
    ) -> Tensor<3> {
        let qkv = self.projections(x, values);
        let y = match record {
            Some(weights) => {
                let (y, w) = ops::attention_with_weights(qkv, self.n_head, rope);
                weights.push(w);
                y
            }
            None => ops::attention(qkv, self.n_head, start, rope, cache, seeing),
        };
        self.dropout.forward(apply(&self.c_proj, y))
    }
}
