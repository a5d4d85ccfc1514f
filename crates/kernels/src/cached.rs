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
    // One task per row and group of heads: its `new` outputs, `[new, heads · head_dim]`. A
    // row's heads share a task so its cache streams past once, in order: one task per head read
    // each cache row in four strided pieces, and that was as long as all the linear layers of a
    // step with eight sequences (a fifth of the server's time each; `perf`, AMD EPYC 2-core).
    // Heads split into groups only where rows are fewer than threads; a head's numbers do not
    // depend on its group.
    let work: usize = starts.iter().map(|&s| (s + new) * new * width).sum();
    let parallel = work >= PARALLEL_WORK;
    let groups = if parallel {
        rayon::current_num_threads().div_ceil(rows).clamp(1, n_head)
    } else {
        1
    };
    let per_group = n_head.div_ceil(groups);
    let tasks: Vec<(usize, usize, usize)> = (0..rows)
        .flat_map(|r| {
            (0..n_head)
                .step_by(per_group)
                .map(move |h0| (r, h0, (h0 + per_group).min(n_head)))
        })
        .collect();
    let task = |&(r, h0, h1): &(usize, usize, usize)| {
        let heads = h1 - h0;
        let mut y = vec![0.0f32; new * heads * hd];
        let mut p = Vec::with_capacity(heads * (starts[r] + new));
        for (i, yi) in y.chunks_exact_mut(heads * hd).enumerate() {
            let seen = starts[r] + i + 1;
            let q = &queries[(r * new + i) * width + h0 * hd..][..heads * hd];
            p.resize(heads * seen, 0.0);
            one_query(q, hd, caches[r], width, h0 * hd, &mut p, yi);
        }
        y
    };
    let parts: Vec<Vec<f32>> = if parallel {
        tasks.par_iter().map(task).collect()
    } else {
        tasks.iter().map(task).collect()
    };
    for (&(r, h0, h1), y) in tasks.iter().zip(&parts) {
        let w = (h1 - h0) * hd;
        for i in 0..new {
            out[(r * new + i) * width + h0 * hd..][..w].copy_from_slice(&y[i * w..(i + 1) * w]);
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
    /// One query position against the first `seen` cached positions for the heads `q` covers
    /// (`[heads · hd]`), whose elements start at `at` in each `width`-wide cache row: weights
    /// into `p` (`[heads, seen]`), output into `y` (`[heads · hd]`, zeroed).
    fn one_query / one_query_avx2 (q: &[f32], hd: usize, cache: &KvRows, width: usize, at: usize, p: &mut [f32], y: &mut [f32]) = one_query_portable
}

/// Each head's numbers are those of the head alone (its dot products, its softmax, its values
/// added in position order); the heads only share the pass over the cache rows.
#[inline(always)]
fn one_query_portable(
    q: &[f32],
    hd: usize,
    cache: &KvRows,
    width: usize,
    at: usize,
    p: &mut [f32],
    y: &mut [f32],
) {
    let scale = 1.0 / (hd as f32).sqrt();
    let span = q.len();
    let seen = p.len() / (span / hd);
    for (j, key) in cache.keys.chunks_exact(width).take(seen).enumerate() {
        let key = &key[at..at + span];
        for ((qh, kh), ph) in q
            .chunks_exact(hd)
            .zip(key.chunks_exact(hd))
            .zip(p.chunks_exact_mut(seen))
        {
            ph[j] = scale * lanes::dot(qh, kh);
        }
    }
    for ph in p.chunks_exact_mut(seen) {
        softmax_portable(ph);
    }
    for (j, value) in cache.values.chunks_exact(width).take(seen).enumerate() {
        let value = &value[at..at + span];
        for ((yh, vh), ph) in y
            .chunks_exact_mut(hd)
            .zip(value.chunks_exact(hd))
            .zip(p.chunks_exact(seen))
        {
            let pj = ph[j];
            for (a, &b) in yh.iter_mut().zip(vh) {
                *a += pj * b;
            }
        }
    }
}
