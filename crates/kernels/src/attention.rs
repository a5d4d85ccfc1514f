//! Causal self-attention, forward and backward, one head per task. Leading heads may attend
//! both ways instead (`AttnShape::bidirectional`: the masked rows of the hybrid objective), and
//! rows packed with several documents may keep each query inside its own document
//! (`AttnShape::starts`: fine-tuning rows holding several conversations).
//!
//! Burn's autodiff runs attention as its generic composition (product, scale, causal mask,
//! a NaN-safe softmax of a dozen passes, product) and differentiates each step, so every layer
//! makes some twenty passes over `[batch, heads, seq, seq]` besides the products. Here each
//! head does two `gemm` products forward and four backward, restricted to the causal part in
//! blocks of query rows, with the softmax and its gradient in one pass per row.
//!
//! Layout: `q`, `k`, `v`, outputs and gradients are `[heads, seq, head_dim]` row-major (all
//! heads of all batch rows in one leading dimension); `probs` is `[heads, seq, seq]`, the
//! attention weights the forward returns for the backward to reuse (zero for every key a query
//! does not see).

use crate::exp::exp;
use crate::lanes;
use crate::matmul::{View, matmul};
use rayon::prelude::*;

/// Query rows per block: products only cover keys up to the block's last row.
const BLOCK: usize = 64;

/// Sizes of one call, and which keys each query sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnShape<'a> {
    /// Batch rows × heads.
    pub heads: usize,
    /// Sequence length (queries and keys).
    pub seq: usize,
    /// Width of one head.
    pub head_dim: usize,
    /// The first `bidirectional` heads see every key (no causal mask); the rest are causal.
    pub bidirectional: usize,
    /// Packed rows: `[rows, seq]`, for each position the position where its document starts;
    /// the `heads / rows` consecutive heads of a row see, from each query, only the keys from
    /// its document's start up to itself. Empty: each row is one document.
    pub starts: &'a [u32],
}

impl AttnShape<'_> {
    fn check(&self, qkv: [&[f32]; 3], probs: usize) {
        let n = self.heads * self.seq * self.head_dim;
        assert!(
            qkv.iter().all(|x| x.len() == n),
            "q, k, v must be [heads, seq, head_dim]"
        );
        assert_eq!(
            probs,
            self.heads * self.seq * self.seq,
            "probs must be [heads, seq, seq]"
        );
        assert!(
            self.bidirectional <= self.heads,
            "{} bidirectional heads of {}",
            self.bidirectional,
            self.heads
        );
        if !self.starts.is_empty() {
            let t = self.seq.max(1);
            let rows = self.starts.len() / t;
            assert!(
                self.starts.len().is_multiple_of(t) && rows > 0 && self.heads.is_multiple_of(rows),
                "starts must be [rows, seq] with a whole number of heads per row"
            );
            assert_eq!(self.bidirectional, 0, "packed rows are causal");
            assert!(
                self.starts
                    .chunks(t)
                    .all(|r| r.iter().enumerate().all(|(i, &s)| s as usize <= i)),
                "a document starts at or before each of its positions"
            );
        }
    }

    /// Which keys the queries of `head` see.
    fn keys(&self, head: usize) -> Visible<'_> {
        if head < self.bidirectional {
            Visible::All(self.seq)
        } else if self.starts.is_empty() {
            Visible::Causal
        } else {
            let per_row = self.heads / (self.starts.len() / self.seq);
            Visible::Documents(head_of(self.starts, head / per_row, self.seq))
        }
    }
}

/// Which keys a head's queries see.
#[derive(Clone, Copy)]
enum Visible<'a> {
    /// Keys up to the query's own position.
    Causal,
    /// All `t` keys.
    All(usize),
    /// Keys from the query's document start (one per position) up to the query.
    Documents(&'a [u32]),
}

impl Visible<'_> {
    /// The keys `lo..hi` row `i` sees.
    fn row(self, i: usize) -> (usize, usize) {
        match self {
            Visible::Causal => (0, i + 1),
            Visible::All(t) => (0, t),
            Visible::Documents(s) => (s[i] as usize, i + 1),
        }
    }

    /// Keys any row of a block ending before row `i1` sees lie below this.
    fn block(self, i1: usize) -> usize {
        match self {
            Visible::Causal | Visible::Documents(_) => i1,
            Visible::All(t) => t,
        }
    }
}

/// Row `r` of a `[rows, len]` slice.
fn head_of<T>(x: &[T], r: usize, len: usize) -> &[T] {
    &x[r * len..(r + 1) * len]
}

/// `out = softmax(scale · q·kᵀ, causal) · v` per head (without the causal mask for the
/// leading `shape.bidirectional` heads); also writes the attention weights to
/// `probs` for [`causal_attention_backward`].
///
/// # Panics
/// If a slice does not match `shape`.
pub fn causal_attention_forward(
    shape: AttnShape,
    [q, k, v]: [&[f32]; 3],
    scale: f32,
    probs: &mut [f32],
    out: &mut [f32],
) {
    shape.check([q, k, v], probs.len());
    assert_eq!(out.len(), q.len(), "out must match q");
    let (t, hd) = (shape.seq, shape.head_dim);
    if shape.heads == 0 || t == 0 || hd == 0 {
        return;
    }
    out.par_chunks_mut(t * hd)
        .zip(probs.par_chunks_mut(t * t))
        .enumerate()
        .for_each(|(h, (y, p))| {
            let at = |x| head(x, h, t * hd);
            forward_head(t, hd, shape.keys(h), [at(q), at(k), at(v)], scale, p, y);
        });
}

/// Query-row blocks `(start, end)` of a sequence of `t`.
fn blocks(t: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..t)
        .step_by(BLOCK)
        .map(move |i0| (i0, (i0 + BLOCK).min(t)))
}

/// `dst[r, j] = scale · a[i0 + r] · b[j]` for the block's rows `r` and keys `j < n` (the only
/// keys a row of the block can see: `n = i1` when causal); `dst` has row stride `t`.
fn block_products(
    dst: &mut [f32],
    t: usize,
    [a, b]: [&[f32]; 2],
    (i0, i1, n): (usize, usize, usize),
    hd: usize,
    scale: f32,
) {
    let rows = View::rows(&a[i0 * hd..i1 * hd], i1 - i0, hd);
    matmul(
        dst,
        t,
        rows,
        View::rows(&b[..n * hd], n, hd).t(),
        scale,
        false,
    );
}

/// `dst[r] = scale · Σ_{j < n} m[i0 + r, j] · b[j]` for the block's rows `r`: a block of a
/// `[t, t]` matrix `m` (zero past the keys its rows see, so keys ≥ n add nothing) times the
/// first `n` rows of `b` (`[t, hd]`); `dst` is the block's rows of a `[t, hd]` output.
fn block_times(
    dst: &mut [f32],
    [m, b]: [&[f32]; 2],
    (i0, i1, n): (usize, usize, usize),
    t: usize,
    hd: usize,
    scale: f32,
) {
    let rows = View::strided(&m[i0 * t..i1 * t], i1 - i0, n, t, 1);
    matmul(
        &mut dst[i0 * hd..i1 * hd],
        hd,
        rows,
        View::rows(&b[..n * hd], n, hd),
        scale,
        false,
    );
}

/// Head `h` of a tensor whose heads are `len` elements each.
fn head(x: &[f32], h: usize, len: usize) -> &[f32] {
    head_of(x, h, len)
}

fn forward_head(
    t: usize,
    hd: usize,
    keys: Visible,
    [q, k, v]: [&[f32]; 3],
    scale: f32,
    p: &mut [f32],
    y: &mut [f32],
) {
    for (i0, i1) in blocks(t) {
        // Scores of these rows against the keys they see, into the rows' part of P.
        let n = keys.block(i1);
        block_products(&mut p[i0 * t..i1 * t], t, [q, k], (i0, i1, n), hd, scale);
        for i in i0..i1 {
            let (lo, hi) = keys.row(i);
            let row = &mut p[i * t..(i + 1) * t];
            row[..lo].fill(0.0);
            softmax_in_place(&mut row[lo..hi]);
            row[hi..].fill(0.0);
        }
        block_times(y, [p, v], (i0, i1, n), t, hd, 1.0);
    }
}

/// Gradients of [`causal_attention_forward`]'s `out` with respect to `q`, `k` and `v`, given
/// the upstream gradient `d_out` and the weights `probs` the forward wrote.
///
/// # Panics
/// If a slice does not match `shape`.
pub fn causal_attention_backward(
    shape: AttnShape,
    [q, k, v]: [&[f32]; 3],
    probs: &[f32],
    d_out: &[f32],
    scale: f32,
    [dq, dk, dv]: [&mut [f32]; 3],
) {
    shape.check([q, k, v], probs.len());
    let n = q.len();
    assert!(
        d_out.len() == n && dq.len() == n && dk.len() == n && dv.len() == n,
        "gradient sizes"
    );
    let (t, hd) = (shape.seq, shape.head_dim);
    if shape.heads == 0 || t == 0 || hd == 0 {
        return;
    }
    dq.par_chunks_mut(t * hd)
        .zip(dk.par_chunks_mut(t * hd).zip(dv.par_chunks_mut(t * hd)))
        .enumerate()
        .for_each_init(
            || vec![0.0f32; t * t],
            |ds, (h, (dq, (dk, dv)))| {
                let at = |x| head(x, h, t * hd);
                let p = head(probs, h, t * t);
                backward_head(
                    t,
                    hd,
                    shape.keys(h),
                    [at(q), at(k), at(v)],
                    p,
                    at(d_out),
                    scale,
                    ds,
                    [dq, dk, dv],
                );
            },
        );
}

#[allow(clippy::too_many_arguments)]
fn backward_head(
    t: usize,
    hd: usize,
    keys: Visible,
    [q, k, v]: [&[f32]; 3],
    p: &[f32],
    dy: &[f32],
    scale: f32,
    ds: &mut [f32],
    [dq, dk, dv]: [&mut [f32]; 3],
) {
    // dV = Pᵀ·dY (P is zero past the keys each row sees, so the full product is the masked one).
    matmul(
        dv,
        hd,
        View::rows(p, t, t).t(),
        View::rows(dy, t, hd),
        1.0,
        false,
    );
    for (i0, i1) in blocks(t) {
        // dP = dY·Vᵀ for these rows and the keys they see.
        let n = keys.block(i1);
        block_products(&mut ds[i0 * t..i1 * t], t, [dy, v], (i0, i1, n), hd, 1.0);
        for i in i0..i1 {
            let (lo, hi) = keys.row(i);
            let row = &mut ds[i * t..(i + 1) * t];
            row[..lo].fill(0.0);
            softmax_backward_in_place(&p[i * t + lo..i * t + hi], &mut row[lo..hi]);
            row[hi..].fill(0.0);
        }
        // dQ = scale · dS·K for these rows.
        block_times(dq, [ds, k], (i0, i1, n), t, hd, scale);
    }
    // dK = scale · dSᵀ·Q.
    matmul(
        dk,
        hd,
        View::rows(ds, t, t).t(),
        View::rows(q, t, hd),
        scale,
        false,
    );
}

with_avx2! {
    /// Softmax of one row in place (the row's own maximum subtracted first).
    fn softmax_in_place / softmax_avx2 (row: &mut [f32]) = softmax_portable
}

#[inline(always)]
pub(crate) fn softmax_portable(row: &mut [f32]) {
    let max = lanes::max(row);
    for x in row.iter_mut() {
        *x = exp(*x - max);
    }
    let inv = 1.0 / lanes::sum(row);
    for x in row.iter_mut() {
        *x *= inv;
    }
}

with_avx2! {
    /// `dp ← p ⊙ (dp − Σ p·dp)`: the gradient through a row's softmax.
    fn softmax_backward_in_place / softmax_backward_avx2 (p: &[f32], dp: &mut [f32]) = softmax_backward_portable
}

#[inline(always)]
fn softmax_backward_portable(p: &[f32], dp: &mut [f32]) {
    let dot = lanes::dot(p, dp);
    for (d, &p) in dp.iter_mut().zip(p) {
        *d = p * (*d - dot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vector_width_does_not_change_results() {
        let row: Vec<f32> = (0..203)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.09)
            .collect();
        let (mut a, mut b) = (row.clone(), row.clone());
        softmax_portable(&mut a);
        softmax_in_place(&mut b);
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
        let (mut c, mut d) = (row.clone(), row);
        softmax_backward_portable(&a, &mut c);
        softmax_backward_in_place(&a, &mut d);
        assert!(c.iter().zip(&d).all(|(x, y)| x.to_bits() == y.to_bits()));
    }
}
