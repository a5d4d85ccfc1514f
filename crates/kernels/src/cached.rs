//! Attention of new tokens against a cache of earlier keys and values: the prompt and then
//! each step of generation.
//!
//! Burn's composition runs some twenty tensor operations per sequence and layer for this
//! (slices, rotary positions, concatenating the cache, product, mask, softmax, product), each
//! a few microseconds of fixed cost; when the server decodes eight sequences together those
//! fixed costs, not the arithmetic, were most of a step. Here a sequence's keys and values
//! live in growable vectors, token-major, and one call serves every sequence of a step.

use crate::attention::{AttnShape, causal_attention_forward, softmax_portable};
use crate::heads::rotate;
use crate::heads::{HeadLayout, heads_to_rows, rows_to_heads};
use crate::lanes;
use rayon::prelude::*;

/// One sequence's keys (after rotary positions) and values for one layer, token-major:
/// `[len, width]` each, `width = n_head · head_dim`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct KvRows {
    /// Keys, `[len, width]`.
    pub keys: Vec<f32>,
    /// Values, `[len, width]`.
    pub values: Vec<f32>,
}

impl KvRows {
    /// Positions cached, for rows `width` wide.
    pub fn len(&self, width: usize) -> usize {
        self.keys.len() / width.max(1)
    }
}

/// Sizes of one [`cached_attention`] call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CachedShape {
    /// New tokens per sequence.
    pub new: usize,
    /// Heads.
    pub n_head: usize,
    /// Width of one head.
    pub head_dim: usize,
}

/// A prompt of this many tokens or more on an empty cache runs as one causal attention per
/// head with `gemm` products ([`causal_attention_forward`]) rather than query by query: the
/// same work in blocks of query rows, as training runs it.
const PROMPT_ROWS: usize = 16;

/// Rotary tables for positions `first..`: `values` in Burn's `RotaryEncoding::freq_complex`
/// layout, `[positions, head_dim, 2]`, starting at position `first` (so a decoding step passes
/// only the rows it uses, not the table from position 0).
#[derive(Clone, Copy, Debug)]
pub struct RopeTable<'a> {
    /// The (cos, sin) entries, `[positions, head_dim, 2]`.
    pub values: &'a [f32],
    /// The position of the first entry.
    pub first: usize,
}

/// Below this many multiply-adds a call runs on one thread: spreading a few microseconds of
/// work over the pool costs more than it saves.
const PARALLEL_WORK: usize = 1 << 15;

/// For each sequence `r`: `qkv[r]` holds the packed projections `[new, 3 · width]` (queries,
/// keys, values side by side) of its next `new` tokens, whose positions start at the length
/// of `caches[r]`. Rotates queries and keys by `freq` when given, appends the keys and values to the cache,
/// and writes `out[r] = softmax(q·kᵀ / √head_dim) · v` over each token's own and earlier
/// positions, heads side by side: `[new, width]`.
///
/// Each query's result depends only on its own row and the keys before it, so a sequence
/// gets the same numbers, bit for bit, whether its tokens come one call at a time or all at
/// once, and whether other sequences share the call.
///
/// # Panics
/// If the slices do not match the shape, or `freq` does not cover the positions.
pub fn cached_attention(
    shape: CachedShape,
    qkv: &[f32],
    freq: Option<RopeTable>,
    caches: &mut [&mut KvRows],
    out: &mut [f32],
) {
    let CachedShape {
        new,
        n_head,
        head_dim: hd,
    } = shape;
    let width = n_head * hd;
    let rows = caches.len();
    assert_eq!(
        qkv.len(),
        rows * new * 3 * width,
        "qkv must be [rows, new, 3·width]"
    );
    assert_eq!(
        out.len(),
        rows * new * width,
        "out must be [rows, new, width]"
    );
    if rows * new * width == 0 {
        return;
    }
    // Queries of every row, rotated; keys and values appended to each cache.
    let mut queries = vec![0.0f32; rows * new * width];
    let mut starts = Vec::with_capacity(rows);
    for (r, cache) in caches.iter_mut().enumerate() {
        let start = cache.len(width);
        starts.push(start);
        for i in 0..new {
            let src = &qkv[(r * new + i) * 3 * width..][..3 * width];
            let q = &mut queries[(r * new + i) * width..][..width];
            q.copy_from_slice(&src[..width]);
            let at = cache.keys.len();
            cache.keys.extend_from_slice(&src[width..2 * width]);
            cache.values.extend_from_slice(&src[2 * width..]);
            if let Some(freq) = freq {
                let pos = start + i;
                let at_row = pos.checked_sub(freq.first).map(|p| p * hd * 2);
                let f = at_row
                    .and_then(|a| freq.values.get(a..a + hd * 2))
                    .unwrap_or_else(|| panic!("rope table does not cover position {pos}"));
                for h in 0..n_head {
                    rotate(&mut q[h * hd..(h + 1) * hd], f, false);
                    rotate(&mut cache.keys[at + h * hd..at + (h + 1) * hd], f, false);
                }
            }
        }
    }
    let scale = 1.0 / (hd as f32).sqrt();
    let caches: Vec<&KvRows> = caches.iter().map(|c| &**c).collect();
    if new >= PROMPT_ROWS && starts.iter().all(|&s| s == 0) {
        for (r, cache) in caches.iter().enumerate() {
            let q = &queries[r * new * width..(r + 1) * new * width];
            prompt(
                shape,
                [q, &cache.keys, &cache.values],
                scale,
                &mut out[r * new * width..][..new * width],
            );
        }
        return;
    }
    // One task per (row, head): its `new` outputs, `[new, head_dim]`.
    let task = |rh: usize| {
        let (r, h) = (rh / n_head, rh % n_head);
        let mut y = vec![0.0f32; new * hd];
        let mut p = Vec::with_capacity(starts[r] + new);
        for (i, yi) in y.chunks_exact_mut(hd).enumerate() {
            let seen = starts[r] + i + 1;
            let q = &queries[(r * new + i) * width + h * hd..][..hd];
            p.resize(seen, 0.0);
            one_query(q, caches[r], width, h * hd, scale, &mut p, yi);
        }
        y
    };
    let work: usize = starts.iter().map(|&s| (s + new) * new * width).sum();
    let heads: Vec<Vec<f32>> = if work >= PARALLEL_WORK {
        (0..rows * n_head).into_par_iter().map(task).collect()
    } else {
        (0..rows * n_head).map(task).collect()
    };
    for (rh, y) in heads.iter().enumerate() {
        let (r, h) = (rh / n_head, rh % n_head);
        for i in 0..new {
            out[(r * new + i) * width + h * hd..][..hd].copy_from_slice(&y[i * hd..(i + 1) * hd]);
        }
    }
}

/// Causal attention of a whole prompt: rotated queries and the cache's keys and values, all
/// `[new, width]`, into `out [new, width]`.
fn prompt(shape: CachedShape, [q, k, v]: [&[f32]; 3], scale: f32, out: &mut [f32]) {
    let CachedShape {
        new,
        n_head,
        head_dim,
    } = shape;
    let width = n_head * head_dim;
    let l = HeadLayout {
        batch: 1,
        seq: new,
        heads: n_head,
        head_dim,
    };
    let split = |x: &[f32]| {
        let mut h = vec![0.0f32; x.len()];
        rows_to_heads(l, x, width, 0, &mut h);
        h
    };
    let (qh, kh, vh) = (split(q), split(k), split(v));
    let mut probs = vec![0.0f32; n_head * new * new];
    let mut y = vec![0.0f32; q.len()];
    let heads = AttnShape {
        heads: n_head,
        seq: new,
        head_dim,
        bidirectional: 0,
        starts: &[],
    };
    causal_attention_forward(heads, [&qh, &kh, &vh], scale, &mut probs, &mut y);
    heads_to_rows(l, &y, out, width, 0);
}

with_avx2! {
    /// One query against the first `p.len()` cached positions, for the head whose elements
    /// start at `at` in each `width`-wide cache row: weights into `p`, output into `y`.
    fn one_query / one_query_avx2 (q: &[f32], cache: &KvRows, width: usize, at: usize, scale: f32, p: &mut [f32], y: &mut [f32]) = one_query_portable
}

#[inline(always)]
fn one_query_portable(
    q: &[f32],
    cache: &KvRows,
    width: usize,
    at: usize,
    scale: f32,
    p: &mut [f32],
    y: &mut [f32],
) {
    let hd = q.len();
    for (s, key) in p.iter_mut().zip(cache.keys.chunks_exact(width)) {
        *s = scale * lanes::dot(q, &key[at..at + hd]);
    }
    softmax_portable(p);
    for (&pj, value) in p.iter().zip(cache.values.chunks_exact(width)) {
        for (a, &b) in y.iter_mut().zip(&value[at..at + hd]) {
            *a += pj * b;
        }
    }
}
