//! The tied output layer and its softmax cross-entropy as one step over chunks of rows, with
//! bfloat16 products (training with `precision = "bf16-mixed"`): logits, loss and — when asked —
//! the gradients of the inputs and of the weights, without ever holding the `[rows, vocab]`
//! logits. Apart, the head's logits (`[4,096 × 8,192]` f32, 134 MB at 16 rows of 256 tokens)
//! were written, capped, read for the loss, turned into their gradient and packed twice for the
//! two gradient products — passes over main memory that made ~10% of a bf16 training step on
//! a 2-core AMD EPYC (perf: packing 11%, memset 4%, the softmax kernels 6%). A chunk of
//! [`HEAD_CHUNK`] rows (12 MB of logits) stays in the last-level cache through all of them.
//!
//! The loss is the weighted sum `Σ weights[i] · nll[i]`; the gradients are those of that sum
//! (the caller scales them by the upstream gradient, a scalar). Each element of the logits,
//! the loss rows and the input gradient is computed exactly as the unfused products and
//! kernels compute it (same operands, same order); the weight gradient sums its rows chunk by
//! chunk, so it differs from one whole product by float rounding. Deterministic: the chunks
//! and the products' tasks do not depend on the thread count.

use crate::bf16::{Operand, PackedRhs, matmul_bf16, matmul_bf16_packed};
use crate::softmax_xent::{
    nll_backward_in_place, nll_forward, softcap_in_place, softcap_nll_backward_in_place,
};

/// Rows per chunk: 384 × 8,192 logits are 12.6 MB, inside a 32 MB L3 beside the packed
/// weights, and 384 = 16 tasks of 24 rows, so both cores of a 2-core machine get equal work in
/// the products over the chunk's rows.
pub const HEAD_CHUNK: usize = 384;

/// Where [`head_xent_bf16`] writes the gradients of its weighted loss.
#[derive(Debug)]
pub struct HeadGrads<'a> {
    /// `[rows, d]`, overwritten: the gradient with respect to `x`.
    pub dx: &'a mut [f32],
    /// `[vocab, d]`, overwritten: the gradient with respect to `w`.
    pub dw: &'a mut [f32],
}

/// `Σ_i weights[i] · nll_i` for the logits `x [rows, d] · wᵀ` (`w [vocab, d]`, the tied
/// embedding), each row capped as `cap · tanh(z / cap)` when `cap > 0`, `nll_i` the softmax
/// cross-entropy of row `i` against `targets[i]`; with `grads`, also that sum's gradients.
/// The products take bfloat16 operands ([`matmul_bf16`]). A target outside the vocabulary
/// makes the sum NaN, as [`nll_forward`] does.
///
/// # Panics
/// If `x`, `w` or `weights` do not hold `rows × d`, `vocab × d` and `rows` elements (`rows =
/// targets.len()`), or `grads` has the wrong sizes.
pub fn head_xent_bf16(
    x: &[f32],
    w: &[f32],
    d: usize,
    targets: &[u32],
    weights: &[f32],
    cap: f32,
    mut grads: Option<HeadGrads>,
) -> f64 {
    let rows = targets.len();
    assert!(
        d > 0 && w.len().is_multiple_of(d),
        "head_xent_bf16: w is not [vocab, {d}]"
    );
    let vocab = w.len() / d;
    assert!(
        x.len() == rows * d && weights.len() == rows,
        "head_xent_bf16: x must be [{rows}, {d}] and weights [{rows}]"
    );
    if let Some(g) = grads.as_mut() {
        assert!(
            g.dx.len() == x.len() && g.dw.len() == w.len(),
            "head_xent_bf16: gradients of the wrong size"
        );
        if rows == 0 {
            g.dw.fill(0.0);
        }
    }
    let wt = PackedRhs::new(Operand::new(w, vocab, d).t());
    let w_rhs = grads
        .as_ref()
        .map(|_| PackedRhs::new(Operand::new(w, vocab, d)));
    let chunk = HEAD_CHUNK.min(rows);
    let mut z = vec![0.0f32; chunk * vocab];
    let (mut nll, mut lse) = (vec![0.0f32; chunk], vec![0.0f32; chunk]);
    let mut total = 0.0f64;
    for r0 in (0..rows).step_by(HEAD_CHUNK) {
        let c = (rows - r0).min(HEAD_CHUNK);
        let (z, nll, lse) = (&mut z[..c * vocab], &mut nll[..c], &mut lse[..c]);
        let (xc, tc, wc) = (
            &x[r0 * d..][..c * d],
            &targets[r0..][..c],
            &weights[r0..][..c],
        );
        matmul_bf16_packed(z, Operand::new(xc, c, d), &wt, false);
        if cap > 0.0 {
            softcap_in_place(z, cap);
        }
        nll_forward(z, vocab, tc, nll, lse);
        total += nll
            .iter()
            .zip(wc)
            .map(|(&l, &q)| f64::from(l) * f64::from(q))
            .sum::<f64>();
        let (Some(g), Some(w_rhs)) = (grads.as_mut(), w_rhs.as_ref()) else {
            continue;
        };
        if cap > 0.0 {
            softcap_nll_backward_in_place(z, vocab, tc, lse, wc, cap);
        } else {
            nll_backward_in_place(z, vocab, tc, lse, wc);
        }
        let g_rows = Operand::new(z, c, vocab);
        matmul_bf16_packed(&mut g.dx[r0 * d..][..c * d], g_rows, w_rhs, false);
        matmul_bf16(g.dw, g_rows.t(), Operand::new(xc, c, d), r0 > 0);
    }
    total
}
