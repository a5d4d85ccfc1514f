//! Softmax cross-entropy over rows of logits, forward and backward, one pass each over a row
//! after the row's maximum.
//!
//! Rows run in parallel on rayon's global pool (the pool Burn's CPU backend uses, so
//! `RAYON_NUM_THREADS` governs both). Each row is reduced in a fixed order (8 running lanes,
//! then the lanes pairwise), so results do not depend on the thread count or the CPU's
//! vector width: a resumed run stays bit-identical on another machine of the same kind.

use crate::exp::exp;
use crate::lanes;
use rayon::prelude::*;

/// Elements per exp-then-sum block in the forward pass (1 KiB, stays in L1).
const BLOCK: usize = 256;
/// Rows per rayon task: a row of an 8192-token vocabulary is ~10 µs of work, so a few rows
/// per task keep the scheduling overhead small without starving a core.
const MIN_ROWS_PER_TASK: usize = 4;

/// Forward: for each row `i` of `logits` (`[rows, vocab]`, row-major), writes
/// `lse[i] = ln Σ_j e^{logits[i,j]}` and `nll[i] = lse[i] - logits[i, targets[i]]`.
///
/// A target outside the vocabulary gives `nll = NaN` for that row (the training loop's
/// non-finite guard then stops the step) rather than a panic inside a backend operation.
///
/// # Panics
/// If the slice lengths disagree with `vocab` (a programming error, not bad input).
pub fn nll_forward(
    logits: &[f32],
    vocab: usize,
    targets: &[u32],
    nll: &mut [f32],
    lse: &mut [f32],
) {
    let rows = check_shapes(logits, vocab, targets);
    assert!(
        nll.len() == rows && lse.len() == rows,
        "nll/lse need one entry per row"
    );
    logits
        .par_chunks(vocab)
        .zip(targets.par_iter())
        .zip(nll.par_iter_mut().zip(lse.par_iter_mut()))
        .with_min_len(MIN_ROWS_PER_TASK)
        .for_each(|((row, &t), (nll, lse))| {
            let l = log_sum_exp(row);
            *lse = l;
            *nll = match row.get(t as usize) {
                Some(&x) => l - x,
                None => f32::NAN,
            };
        });
}

/// Backward: `grad_logits[i, j] = grad_nll[i] · (e^{logits[i,j] - lse[i]} - [j = targets[i]])`,
/// the gradient of [`nll_forward`]'s `nll` given the upstream gradient `grad_nll`.
///
/// # Panics
/// If the slice lengths disagree with `vocab`.
pub fn nll_backward(
    logits: &[f32],
    vocab: usize,
    targets: &[u32],
    lse: &[f32],
    grad_nll: &[f32],
    grad_logits: &mut [f32],
) {
    let rows = check_shapes(logits, vocab, targets);
    assert!(
        lse.len() == rows && grad_nll.len() == rows,
        "lse/grad need one entry per row"
    );
    assert_eq!(
        grad_logits.len(),
        logits.len(),
        "grad_logits must match logits"
    );
    grad_logits
        .par_chunks_mut(vocab)
        .zip(logits.par_chunks(vocab))
        .zip(
            targets
                .par_iter()
                .zip(lse.par_iter().zip(grad_nll.par_iter())),
        )
        .with_min_len(MIN_ROWS_PER_TASK)
        .for_each(|((out, row), (&t, (&l, &g)))| {
            softmax_scaled(row, l, g, out);
            if let Some(o) = out.get_mut(t as usize) {
                *o -= g;
            }
        });
}

/// [`nll_backward`] writing the gradient over the logits it reads (no second
/// `[rows, vocab]` buffer to allocate and fault in); the same bits as [`nll_backward`].
///
/// # Panics
/// If the slice lengths disagree with `vocab`.
pub fn nll_backward_in_place(
    logits: &mut [f32],
    vocab: usize,
    targets: &[u32],
    lse: &[f32],
    grad_nll: &[f32],
) {
    rows_in_place(logits, vocab, targets, lse, grad_nll, |row, t, l, g| {
        softmax_scaled_in_place(row, l, g);
        if let Some(o) = row.get_mut(t) {
            *o -= g;
        }
    });
}

/// Runs `f(row, target, lse, grad)` on every row of `z [rows, vocab]`, rows in parallel.
fn rows_in_place(
    z: &mut [f32],
    vocab: usize,
    targets: &[u32],
    lse: &[f32],
    grad_nll: &[f32],
    f: impl Fn(&mut [f32], usize, f32, f32) + Sync,
) {
    let rows = check_shapes(z, vocab, targets);
    assert!(
        lse.len() == rows && grad_nll.len() == rows,
        "lse/grad need one entry per row"
    );
    z.par_chunks_mut(vocab)
        .zip(
            targets
                .par_iter()
                .zip(lse.par_iter().zip(grad_nll.par_iter())),
        )
        .with_min_len(MIN_ROWS_PER_TASK)
        .for_each(|(row, (&t, (&l, &g)))| f(row, t as usize, l, g));
}

/// Soft cap in place: `x[j] ← cap · tanh(x[j] / cap)` (`cap > 0`), with
/// `tanh(u) = 1 − 2 / (e^{2u} + 1)` on the vectorised [`exp`] (absolute error about
/// `cap · 1e-7`). In place because a second `[positions, vocab]` buffer, allocated and faulted
/// in every step, made a capped training step 18% slower than an uncapped one. The logits a
/// soft-capped model computes its loss from; [`softcap_nll_backward_in_place`] takes the
/// gradient back through the cap.
pub fn softcap_in_place(x: &mut [f32], cap: f32) {
    x.par_chunks_mut(BLOCK * 16)
        .for_each(|x| softcap_block(x, cap));
}

with_avx2! {
    fn softcap_block / softcap_block_avx2 (x: &mut [f32], cap: f32) = softcap_block_portable
}

#[inline(always)]
fn softcap_block_portable(x: &mut [f32], cap: f32) {
    let inv2 = 2.0 / cap;
    for v in x.iter_mut() {
        *v = cap * (1.0 - 2.0 / (exp(*v * inv2) + 1.0));
    }
}

/// [`nll_backward_in_place`] for logits `z = cap · tanh(x / cap)` made by [`softcap_forward`]:
/// given `z` (overwritten) and [`nll_forward`]'s `lse` of `z`, writes the gradient with respect
/// to `x`: the softmax gradient times `dz/dx = 1 − (z / cap)²`.
///
/// # Panics
/// If the slice lengths disagree with `vocab`.
pub fn softcap_nll_backward_in_place(
    z: &mut [f32],
    vocab: usize,
    targets: &[u32],
    lse: &[f32],
    grad_nll: &[f32],
    cap: f32,
) {
    rows_in_place(z, vocab, targets, lse, grad_nll, |row, t, l, g| {
        let dt = row.get(t).map(|&zt| 1.0 - (zt / cap) * (zt / cap));
        softcap_softmax_in_place(row, l, g, 1.0 / cap);
        if let (Some(o), Some(dt)) = (row.get_mut(t), dt) {
            *o -= g * dt;
        }
    });
}

with_avx2! {
    /// `row[j] = scale · e^{row[j] - shift} · (1 − (row[j] · inv_cap)²)`.
    fn softcap_softmax_in_place / softcap_softmax_in_place_avx2 (row: &mut [f32], shift: f32, scale: f32, inv_cap: f32) = softcap_softmax_in_place_portable
}

#[inline(always)]
fn softcap_softmax_in_place_portable(row: &mut [f32], shift: f32, scale: f32, inv_cap: f32) {
    for x in row.iter_mut() {
        let u = *x * inv_cap;
        *x = scale * exp(*x - shift) * (1.0 - u * u);
    }
}

fn check_shapes(logits: &[f32], vocab: usize, targets: &[u32]) -> usize {
    assert!(vocab > 0, "vocab must be positive");
    assert_eq!(
        logits.len() % vocab,
        0,
        "logits length must be a multiple of vocab"
    );
    let rows = logits.len() / vocab;
    assert_eq!(targets.len(), rows, "one target per row");
    rows
}

with_avx2! {
    /// ln Σ e^x over one row, shifted by the row's maximum.
    fn log_sum_exp / log_sum_exp_avx2 (row: &[f32]) -> f32 = log_sum_exp_portable
}

#[inline(always)]
fn log_sum_exp_portable(row: &[f32]) -> f32 {
    let max = lanes::max(row);
    // exp into a small buffer, then add the buffer up: two simple loops vectorise where one
    // fused loop with eight running sums did not.
    let mut buf = [0.0f32; BLOCK];
    let mut total = 0.0f32;
    for block in row.chunks(BLOCK) {
        let b = &mut buf[..block.len()];
        for (o, &x) in b.iter_mut().zip(block) {
            *o = exp(x - max);
        }
        total += lanes::sum(b);
    }
    max + total.ln()
}

with_avx2! {
    /// `out[j] = scale · e^{row[j] - shift}`.
    fn softmax_scaled / softmax_scaled_avx2 (row: &[f32], shift: f32, scale: f32, out: &mut [f32]) = softmax_scaled_portable
}

with_avx2! {
    /// `row[j] = scale · e^{row[j] - shift}`.
    fn softmax_scaled_in_place / softmax_scaled_in_place_avx2 (row: &mut [f32], shift: f32, scale: f32) = softmax_scaled_in_place_portable
}

#[inline(always)]
fn softmax_scaled_in_place_portable(row: &mut [f32], shift: f32, scale: f32) {
    for x in row.iter_mut() {
        *x = scale * exp(*x - shift);
    }
}

#[inline(always)]
fn softmax_scaled_portable(row: &[f32], shift: f32, scale: f32, out: &mut [f32]) {
    for (o, &x) in out.iter_mut().zip(row) {
        *o = scale * exp(x - shift);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX2 build of a row must equal the portable one bit for bit, or a checkpoint
    /// resumed on a CPU without AVX2 would drift.
    #[test]
    fn vector_width_does_not_change_results() {
        let row: Vec<f32> = (0..1003)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.173)
            .collect();
        let l = log_sum_exp_portable(&row);
        assert_eq!(log_sum_exp(&row).to_bits(), l.to_bits());
        let (mut a, mut b) = (vec![0.0; row.len()], vec![0.0; row.len()]);
        softmax_scaled_portable(&row, l, 0.7, &mut a);
        softmax_scaled(&row, l, 0.7, &mut b);
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()));
        let mut c = row.clone();
        softmax_scaled_in_place(&mut c, l, 0.7);
        assert!(a.iter().zip(&c).all(|(x, y)| x.to_bits() == y.to_bits()));
    }
}
