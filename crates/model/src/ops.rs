//! The one door between the model and its arithmetic. Every operation that has a fused CPU
//! kernel — GELU, layer norm, causal attention, the per-row cross-entropy — is called through
//! here, and only here is it decided which implementation runs: Ember's kernels (`fused`,
//! `fused_norm`, `fused_qkv`, plugged into Burn as backend extensions) for f32 tensors on the
//! CPU backend, Burn's own operations on every other device (WGPU fuses its own kernels) or
//! when `EMBER_FUSED_CPU=0`. Both give the same numbers to float rounding (tests in
//! `tests/fused.rs`), so the layers read like the maths, without branches.

use burn::backend::DType;
use burn::nn::RotaryEncoding;
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use burn::tensor::module::{attention as burn_attention, layer_norm as burn_layer_norm};
use burn::tensor::ops::AttentionModuleOptions;

use crate::attention::LayerKv;
use crate::{Visibility, fused, fused_bf16, fused_norm, fused_qkv, fused_rows};

/// The operations the CPU runs as fused kernels (shown in the device line). AdamW's fused
/// update is called from the training loop (`ember_train::fused_adamw`) on the same condition.
pub const FUSED_OPS: &str = "cross-entropy, GELU, layer norm, attention, AdamW and Muon";

/// The fused CPU kernels are on unless the environment sets `EMBER_FUSED_CPU=0` (Burn's own
/// operations then run everywhere: for A/B measurements, or to rule the kernels out when
/// chasing a problem). Read once per process. Results differ between the two settings by
/// float rounding, so a run resumed under the other setting is not bit-identical.
pub fn enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("EMBER_FUSED_CPU").map_or(true, |v| v.trim() != "0"))
}

/// The one condition: the kernels are [`enabled`] and `t` is f32 on Burn's CPU backend (with
/// or without autodiff).
pub fn fused_here<const D: usize>(t: &Tensor<D>) -> bool {
    enabled() && t.device() == Device::flex() && t.dtype() == DType::F32
}

/// `x [rows, d_in] · weight [d_in, d_out]` (+ `bias`): a linear layer. Training on the CPU
/// under [`with_bf16_products`] takes the bfloat16 product; inference on the CPU with at most
/// `ember_kernels::MAX_ROWS` rows — a decoding step, one row per sequence — the few-row
/// kernel; everything else Burn's product.
pub fn linear(x: Tensor<2>, layer: &burn::nn::Linear) -> Tensor<2> {
    let y = if bf16_here(&x) {
        fused_bf16::product_bf16(x, layer.weight.val(), false)
    } else if few_rows(&x) {
        fused_rows::rows_product(x, layer.weight.val(), false)
    } else {
        return layer.forward(x);
    };
    match &layer.bias {
        Some(b) => y + b.val().unsqueeze(),
        None => y,
    }
}

/// `x [rows, d] · weightᵀ` for `weight [n, d]` (a tied output layer), with the bfloat16 product
/// or the few-row kernel where [`linear`] would take them.
pub fn times_transposed(x: Tensor<2>, weight: Tensor<2>) -> Tensor<2> {
    if bf16_here(&x) {
        fused_bf16::product_bf16(x, weight, true)
    } else if few_rows(&x) {
        fused_rows::rows_product(x, weight, true)
    } else {
        x.matmul(weight.transpose())
    }
}

thread_local! {
    static BF16_PRODUCTS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `work` (a training forward pass) with this thread's linear-layer products in
/// bfloat16 when `on` ([`bf16_products_available`]; f32 otherwise). Each product records the
/// choice, so the backward pass follows it wherever it runs.
pub fn with_bf16_products<T>(on: bool, work: impl FnOnce() -> T) -> T {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            BF16_PRODUCTS.set(self.0);
        }
    }
    let _restore = Restore(BF16_PRODUCTS.replace(on));
    work()
}

/// Whether bfloat16 training products run here: the fused kernels are on and the CPU has
/// AVX-512 BF16 (`ember_kernels::bf16_available`).
pub fn bf16_products_available() -> bool {
    enabled() && ember_kernels::bf16_available()
}

/// Under [`with_bf16_products`], training on the CPU backend with the instructions.
fn bf16_here(x: &Tensor<2>) -> bool {
    BF16_PRODUCTS.get() && fused_here(x) && x.device().is_autodiff() && bf16_products_available()
}

fn few_rows(x: &Tensor<2>) -> bool {
    fused_here(x) && !x.device().is_autodiff() && x.dims()[0] <= ember_kernels::MAX_ROWS
}

/// GELU (erf form), any shape.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if fused_here(&x) {
        fused::gelu(x)
    } else {
        burn::tensor::activation::gelu(x)
    }
}

/// `max(x, 0)²` (the ReLU² MLP), any shape: Burn's `relu` then `x · x` off the CPU kernels.
pub fn relu2<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if fused_here(&x) {
        fused::relu2(x)
    } else {
        burn::tensor::activation::relu(x).powi_scalar(2)
    }
}

/// Layer norm over the last dimension with gain `gamma` and optional offset `beta` (`[width]`).
pub fn layer_norm<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Option<Tensor<1>>,
    eps: f64,
) -> Tensor<D> {
    if fused_here(&x) {
        fused_norm::layer_norm(x, gamma, beta, eps)
    } else {
        burn_layer_norm(x, gamma, beta, eps)
    }
}

/// `-log softmax(logits)[target]` per row: `logits [rows, vocab]`, `targets [rows]` → `[rows]`;
/// with `cap > 0`, of the soft-capped logits `cap · tanh(logits / cap)` ([`softcap`]).
pub fn nll_rows(logits: Tensor<2>, targets: Tensor<1, Int>, cap: f64) -> Tensor<1> {
    if fused_here(&logits) {
        fused::nll_rows(logits, targets, cap as f32)
    } else if cap > 0.0 {
        composed_nll_rows(softcap(logits, cap), targets)
    } else {
        composed_nll_rows(logits, targets)
    }
}

/// `cap · tanh(x / cap)`: soft-capped logits (`cap > 0`).
pub fn softcap<const D: usize>(x: Tensor<D>, cap: f64) -> Tensor<D> {
    x.div_scalar(cap).tanh().mul_scalar(cap)
}

/// The reference path of [`nll_rows`]: Burn's `log_softmax` and `gather`.
pub fn composed_nll_rows(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let [rows, _] = logits.dims();
    log_softmax(logits, 1)
        .gather(1, targets.reshape([rows, 1]))
        .reshape([rows])
        .neg()
}

/// Causal self-attention over `[batch, heads, seq, head_dim]`, scaled by 1/√head_dim. The
/// causal mask is aligned bottom-right, so with a KV cache (more keys than queries) the new
/// queries see every cached key. The kernel when training on the CPU with queries and keys of
/// one length; Burn's `attention` otherwise (its CPU inference path is fused already).
pub fn causal_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    let same = q.dims() == k.dims() && k.dims() == v.dims();
    if fused_here(&q) && q.device().is_autodiff() && same {
        fused::causal_attention(q, k, v)
    } else {
        let options = AttentionModuleOptions {
            is_causal: true,
            ..Default::default()
        };
        burn_attention(q, k, v, None, None, options)
    }
}

/// [`causal_attention`] whose first `bidirectional` batch rows see every key (Burn's operations
/// for those rows; the masked sequences of the hybrid objective).
fn partly_bidirectional(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    bidirectional: usize,
) -> Tensor<4> {
    let b = q.dims()[0];
    let m = bidirectional.min(b);
    let rows = |x: &Tensor<4>, r: std::ops::Range<usize>| x.clone().slice(s![r, .., .., ..]);
    let both = burn_attention(
        rows(&q, 0..m),
        rows(&k, 0..m),
        rows(&v, 0..m),
        None,
        None,
        AttentionModuleOptions::default(),
    );
    if m == b {
        return both;
    }
    let causal = causal_attention(rows(&q, m..b), rows(&k, m..b), rows(&v, m..b));
    Tensor::cat(vec![both, causal], 0)
}

/// Packed rows: Burn's attention with a mask keeping each query inside its document
/// (`starts [batch × seq]`, see [`Visibility::starts`]) and causal.
fn within_documents(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, starts: &[u32]) -> Tensor<4> {
    let [b, h, t, _] = q.dims();
    assert_eq!(starts.len(), b * t, "document starts must be [batch, seq]");
    // `true` marks a key the query must not see.
    let mut hidden = Vec::with_capacity(b * h * t * t);
    for row in starts.chunks(t) {
        for _ in 0..h {
            for (i, &s) in row.iter().enumerate() {
                hidden.extend((0..t).map(|j| j < s as usize || j > i));
            }
        }
    }
    let mask = Tensor::<4, Bool>::from_data(TensorData::new(hidden, [b, h, t, t]), &q.device());
    burn_attention(q, k, v, Some(mask), None, AttentionModuleOptions::default())
}

/// Multi-head causal self-attention from the packed projection `qkv [batch, seq, 3·d]`
/// (queries, keys, values side by side) → the heads' outputs side by side, `[batch, seq, d]`.
/// `start` is the position of the first token; rotary embeddings are applied when `rope` is
/// given; with a `cache`, keys and values of earlier calls are attended to and this call's are
/// appended. Training on the CPU (whole sequences, no cache) takes the packed kernel, which
/// splits heads and applies rotary embeddings in the same pass. Queries see the keys `seeing`
/// allows: rows attending both ways (the masked rows of the hybrid objective) or packed rows
/// kept inside each document need whole sequences and no cache.
pub fn attention(
    qkv: Tensor<3>,
    n_head: usize,
    start: usize,
    rope: Option<&RotaryEncoding>,
    mut cache: Option<&mut LayerKv>,
    seeing: &Visibility,
) -> Tensor<3> {
    if start == 0 && cache.is_none() && fused_here(&qkv) && qkv.device().is_autodiff() {
        return fused_qkv::qkv_attention(qkv, rope, n_head, seeing.clone());
    }
    assert!(
        seeing.is_causal() || (start == 0 && cache.is_none()),
        "bidirectional or packed rows are whole sequences without a cache"
    );
    if let Some(slot) = cache.as_deref_mut()
        && cached_rows_here(&qkv, std::slice::from_ref(&&*slot))
    {
        return attention_rows(qkv, n_head, rope, vec![slot]);
    }
    let [b, t, d3] = qkv.dims();
    let d = d3 / 3;
    let (q, mut k, mut v) = split_heads(qkv, n_head, start, rope);
    if let Some(slot) = cache {
        if let LayerKv::Tensors(kv) = std::mem::take(slot) {
            let (pk, pv) = *kv;
            k = Tensor::cat(vec![pk, k], 2);
            v = Tensor::cat(vec![pv, v], 2);
        }
        *slot = LayerKv::Tensors(Box::new((k.clone(), v.clone())));
    }
    let y = if !seeing.starts.is_empty() {
        assert_eq!(seeing.bidirectional, 0, "packed rows are causal");
        within_documents(q, k, v, &seeing.starts)
    } else if seeing.bidirectional == 0 {
        causal_attention(q, k, v)
    } else {
        partly_bidirectional(q, k, v, seeing.bidirectional)
    };
    y.swap_dims(1, 2).reshape([b, t, d])
}

/// Whether [`attention_rows`] runs for `qkv` continuing the caches `slots`: inference on the
/// CPU with the kernels on, and caches not already held as tensors.
pub fn cached_rows_here(qkv: &Tensor<3>, slots: &[&LayerKv]) -> bool {
    fused_here(qkv)
        && !qkv.device().is_autodiff()
        && !slots.iter().any(|s| matches!(s, LayerKv::Tensors(..)))
}

/// [`attention`] with caches for inference on the CPU: `qkv [rows, seq, 3·d]` continues the
/// caches in `slots` (one slot for all rows, or one per row, each at its own position) through
/// one call of [`ember_kernels::cached_attention`], instead of some twenty Burn operations per
/// row and layer. Only where [`cached_rows_here`].
pub fn attention_rows(
    qkv: Tensor<3>,
    n_head: usize,
    rope: Option<&RotaryEncoding>,
    mut slots: Vec<&mut LayerKv>,
) -> Tensor<3> {
    let [b, t, d3] = qkv.dims();
    let d = d3 / 3;
    let per_slot = b / slots.len().max(1);
    assert_eq!(
        per_slot * slots.len(),
        b,
        "attention_rows: {b} rows for {} caches",
        slots.len()
    );
    let device = qkv.device();
    let host = |x: Tensor<3>| -> Vec<f32> {
        x.into_data()
            .try_to_vec_as::<f32>()
            .unwrap_or_else(|e| panic!("attention_rows: reading a CPU tensor: {e:?}"))
    };
    let mut rows: Vec<&mut ember_kernels::KvRows> = Vec::with_capacity(b);
    for slot in slots.iter_mut() {
        if matches!(slot, LayerKv::Empty) {
            **slot = LayerKv::Rows(vec![Default::default(); per_slot]);
        }
        if let LayerKv::Rows(r) = &mut **slot {
            rows.extend(r.iter_mut());
        }
    }
    // Only the rotary rows this call uses: the first new position of any row to the last.
    let first = rows.iter().map(|r| r.len(d)).min().unwrap_or(0);
    let last = rows.iter().map(|r| r.len(d)).max().unwrap_or(0) + t;
    let freq = rope.map(|r| {
        let [max, hd, two] = r.freq_complex.dims();
        let (first, last) = (first.min(max), last.min(max));
        host(
            r.freq_complex
                .clone()
                .slice(s![first..last, .., ..])
                .reshape([1, (last - first) * hd, two]),
        )
    });
    let shape = ember_kernels::CachedShape {
        new: t,
        n_head,
        head_dim: d / n_head,
    };
    let mut out = vec![0.0f32; b * t * d];
    let freq = freq
        .as_deref()
        .map(|values| ember_kernels::RopeTable { values, first });
    ember_kernels::cached_attention(shape, &host(qkv), freq, &mut rows, &mut out);
    Tensor::from_data(TensorData::new(out, [b, t, d]), &device)
}

/// Queries, keys and values `[batch, heads, seq, head_dim]` from the packed projection, with
/// rotary embeddings from position `start` when `rope` is given.
fn split_heads(
    qkv: Tensor<3>,
    n_head: usize,
    start: usize,
    rope: Option<&RotaryEncoding>,
) -> (Tensor<4>, Tensor<4>, Tensor<4>) {
    let [b, t, d3] = qkv.dims();
    let d = d3 / 3;
    let hd = d / n_head;
    let heads = |m: Tensor<3>| m.reshape([b, t, n_head, hd]).swap_dims(1, 2); // [b, h, t, hd]
    let mut q = heads(qkv.clone().slice(s![.., .., 0..d]));
    let mut k = heads(qkv.clone().slice(s![.., .., d..2 * d]));
    let v = heads(qkv.slice(s![.., .., 2 * d..3 * d]));
    if let Some(rope) = rope {
        q = rope.apply(q, start);
        k = rope.apply(k, start);
    }
    (q, k, v)
}

/// [`attention`] of a whole sequence (positions from 0) with its weights made explicit:
/// `softmax(q·kᵀ / √head_dim)` over earlier positions, after rotary embeddings, then the
/// weighted sum of the values. Returns the output `[batch, seq, d]` and the weights
/// `[batch, heads, seq, seq]` (each row sums to 1, zero above the diagonal). Used to show
/// what a model attends to; it computes what [`attention`] computes, to float rounding.
pub fn attention_with_weights(
    qkv: Tensor<3>,
    n_head: usize,
    rope: Option<&RotaryEncoding>,
) -> (Tensor<3>, Tensor<4>) {
    let [b, t, d3] = qkv.dims();
    let d = d3 / 3;
    let (q, k, v) = split_heads(qkv, n_head, 0, rope);
    let hd = d / n_head;
    let scores = q.matmul(k.swap_dims(2, 3)) / (hd as f64).sqrt();
    // `tril_mask` is true strictly above the diagonal: the positions a query must not see.
    let future = Tensor::<2, Bool>::tril_mask([t, t], 0, &scores.device());
    let weights = burn::tensor::activation::softmax(
        scores.mask_fill(future.unsqueeze::<4>(), f32::NEG_INFINITY),
        3,
    );
    let y = weights.clone().matmul(v).swap_dims(1, 2).reshape([b, t, d]);
    (y, weights)
}
