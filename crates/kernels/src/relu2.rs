//! ReLU² (`max(x, 0)²`, the MLP activation of modded-nanogpt and nanochat), forward and
//! backward in one pass each. Burn composes it as `relu` then `x · x`, and differentiates
//! both: five passes over the `[positions, 4 · width]` activation where these make two.
//! The arithmetic is the composition's, so the results are its bits: the forward squares the
//! rectified value, and the gradient is the two products `g · r` of `x · x`'s backward added
//! (`t + t`), zero where `x ≤ 0` as `relu`'s backward makes it; a NaN input stays NaN.

use rayon::prelude::*;

/// Elements per rayon task (64 KiB of input).
const CHUNK: usize = 16 * 1024;

#[inline(always)]
fn rectified(x: f32) -> f32 {
    if x <= 0.0 { 0.0 } else { x }
}

/// `out[i] = max(x[i], 0)²`.
///
/// # Panics
/// If the lengths differ.
pub fn relu2_forward(x: &[f32], out: &mut [f32]) {
    assert_eq!(x.len(), out.len(), "relu²: input and output lengths differ");
    out.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(|(o, x)| {
            for (o, &x) in o.iter_mut().zip(x) {
                let r = rectified(x);
                *o = r * r;
            }
        });
}

/// `out[i] = 2 · max(x[i], 0) · grad[i]` (as `g·r + g·r`), `0` where `x[i] ≤ 0`.
///
/// # Panics
/// If the lengths differ.
pub fn relu2_backward(x: &[f32], grad: &[f32], out: &mut [f32]) {
    assert!(
        x.len() == out.len() && grad.len() == out.len(),
        "relu²: lengths differ"
    );
    out.par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK).zip(grad.par_chunks(CHUNK)))
        .for_each(|(o, (x, g))| {
            for ((o, &x), &g) in o.iter_mut().zip(x).zip(g) {
                let t = g * rectified(x);
                *o = if x <= 0.0 { 0.0 } else { t + t };
            }
        });
}
