//! Layer normalisation over the last dimension, forward and backward.
//!
//! Under autodiff, Burn composes layer norm from nine tracked operations (two means, a
//! subtraction, a square, a square root, a division, the gain and the offset), each a pass over
//! the activations into a fresh buffer, and its backward from about twice as many, with the
//! gain's and offset's gradients summed over a broadcast. Here the forward is one pass per row
//! (which also keeps each row's mean and `√(var + ε)`), and the backward one pass per row
//! plus a fixed-order sum of per-block partial gradients for the gain and offset, so the
//! result does not depend on the thread count.

use rayon::prelude::*;

use crate::lanes::{dot, sum};

/// Rows per rayon task.
const ROWS: usize = 32;

/// `out = (x − mean) / √(var + eps) · gamma + beta` per row of `width`; `stats` receives each
/// row's `[mean, √(var + eps)]` for the backward pass. The same operations, in the same order
/// per element, as Burn's composed `layer_norm` (the row sums are in a different order).
///
/// # Panics
/// If the lengths disagree with `width`.
pub fn layer_norm_forward(
    x: &[f32],
    width: usize,
    gamma: &[f32],
    beta: Option<&[f32]>,
    eps: f32,
    out: &mut [f32],
    stats: &mut [f32],
) {
    assert!(
        width > 0
            && x.len().is_multiple_of(width)
            && out.len() == x.len()
            && gamma.len() == width
            && beta.is_none_or(|b| b.len() == width)
            && stats.len() == 2 * (x.len() / width),
        "layer_norm_forward: lengths disagree with width {width}"
    );
    let n = width as f32;
    out.par_chunks_mut(ROWS * width)
        .zip(x.par_chunks(ROWS * width))
        .zip(stats.par_chunks_mut(ROWS * 2))
        .for_each(|((out, x), stats)| {
            let rows = out.chunks_exact_mut(width).zip(x.chunks_exact(width));
            for ((o, x), s) in rows.zip(stats.chunks_exact_mut(2)) {
                let mean = sum(x) / n;
                for (o, &x) in o.iter_mut().zip(x) {
                    *o = x - mean;
                }
                let denom = (dot(o, o) / n + eps).sqrt();
                for (o, &g) in o.iter_mut().zip(gamma) {
                    *o = *o / denom * g;
                }
                if let Some(beta) = beta {
                    for (o, &b) in o.iter_mut().zip(beta) {
                        *o += b;
                    }
                }
                s[0] = mean;
                s[1] = denom;
            }
        });
}

/// Gradients of [`layer_norm_forward`]: `dx` (overwritten), and `dgamma`, `dbeta`
/// (overwritten with the sums over all rows), from the output gradient `dy` and the `stats`
/// the forward pass kept.
///
/// # Panics
/// If the lengths disagree with `width`.
#[allow(clippy::too_many_arguments)]
pub fn layer_norm_backward(
    x: &[f32],
    width: usize,
    gamma: &[f32],
    stats: &[f32],
    dy: &[f32],
    dx: &mut [f32],
    dgamma: &mut [f32],
    dbeta: &mut [f32],
) {
    assert!(
        width > 0
            && x.len().is_multiple_of(width)
            && dy.len() == x.len()
            && dx.len() == x.len()
            && gamma.len() == width
            && dgamma.len() == width
            && dbeta.len() == width
            && stats.len() == 2 * (x.len() / width),
        "layer_norm_backward: lengths disagree with width {width}"
    );
    let n = width as f32;
    // One [dgamma | dbeta] partial per block of rows, added up below in block order.
    let partials: Vec<Vec<f32>> = dx
        .par_chunks_mut(ROWS * width)
        .zip(x.par_chunks(ROWS * width))
        .zip(dy.par_chunks(ROWS * width))
        .zip(stats.par_chunks(ROWS * 2))
        .map(|(((dx, x), dy), stats)| {
            let mut acc = vec![0.0f32; 2 * width];
            let mut g = vec![0.0f32; width];
            let (ag, ab) = acc.split_at_mut(width);
            let rows = dx.chunks_exact_mut(width).zip(x.chunks_exact(width));
            for ((dx, x), (dy, s)) in rows.zip(dy.chunks_exact(width).zip(stats.chunks_exact(2))) {
                let (mean, denom) = (s[0], s[1]);
                // dx holds x̂ first, then the gradient.
                for (h, &x) in dx.iter_mut().zip(x) {
                    *h = (x - mean) / denom;
                }
                for i in 0..width {
                    g[i] = dy[i] * gamma[i];
                    ag[i] += dy[i] * dx[i];
                    ab[i] += dy[i];
                }
                let (g_mean, gx_mean) = (sum(&g) / n, dot(&g, dx) / n);
                for (h, &g) in dx.iter_mut().zip(&g) {
                    *h = (g - g_mean - *h * gx_mean) / denom;
                }
            }
            acc
        })
        .collect();
    dgamma.fill(0.0);
    dbeta.fill(0.0);
    for p in &partials {
        let (pg, pb) = p.split_at(width);
        for i in 0..width {
            dgamma[i] += pg[i];
            dbeta[i] += pb[i];
        }
    }
}
