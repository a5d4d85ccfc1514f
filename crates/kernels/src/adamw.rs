//! One AdamW update of a parameter in a single pass, in place.
//!
//! Composed from tensor operations the update is about a dozen passes over the parameter, its
//! gradient and both moments, each allocating its result; for the small models Ember trains on
//! a CPU, those passes and allocations are a visible share of the step (benches/RESULTS.md).
//! Here each element is read and written once.
//!
//! The arithmetic is the composed update's, operation for operation in f32 (no fused
//! multiply-add), so the two agree bit for bit: `ember_train`'s optimizer may use either.

use rayon::prelude::*;

/// Elements per rayon task.
const CHUNK: usize = 16 * 1024;

/// The scalars of one update, already combined for the step (f32, as the composed update
/// rounds them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamWScalars {
    /// Multiplies the gradient first (the clipping factor; 1 when not clipping).
    pub grad_scale: f32,
    /// β₁.
    pub beta1: f32,
    /// 1 − β₁.
    pub one_minus_beta1: f32,
    /// β₂.
    pub beta2: f32,
    /// 1 − β₂.
    pub one_minus_beta2: f32,
    /// 1 − lr · weight_decay (1 for parameters that are not decayed).
    pub decay: f32,
    /// √(1 − β₂ᵗ), the second moment's bias correction.
    pub sqrt_bc2: f32,
    /// ε.
    pub eps: f32,
    /// lr / (1 − β₁ᵗ).
    pub step_size: f32,
    /// Whether the moments are new (the first update: they are taken as zero).
    pub first: bool,
}

impl AdamWScalars {
    /// The scalars of update number `t` (1-based) with learning rate `lr`, decoupled weight
    /// decay `weight_decay` (0 for parameters that are not decayed) and the gradient multiplied
    /// by `grad_scale`; `first` is set for `t == 1`. Combined in f64, then rounded to f32.
    pub fn for_step(
        t: i32,
        lr: f64,
        [beta1, beta2]: [f64; 2],
        eps: f64,
        weight_decay: f64,
        grad_scale: f64,
    ) -> Self {
        let (bc1, bc2) = (1.0 - beta1.powi(t), 1.0 - beta2.powi(t));
        AdamWScalars {
            grad_scale: grad_scale as f32,
            beta1: beta1 as f32,
            one_minus_beta1: (1.0 - beta1) as f32,
            beta2: beta2 as f32,
            one_minus_beta2: (1.0 - beta2) as f32,
            decay: (1.0 - lr * weight_decay) as f32,
            sqrt_bc2: bc2.sqrt() as f32,
            eps: eps as f32,
            step_size: (lr / bc1) as f32,
            first: t == 1,
        }
    }
}

#[inline(always)]
fn update(s: &AdamWScalars, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let g = if s.grad_scale != 1.0 {
            g * s.grad_scale
        } else {
            g
        };
        let (m1, v1) = if s.first {
            (g * s.one_minus_beta1, (g * g) * s.one_minus_beta2)
        } else {
            (
                *m * s.beta1 + g * s.one_minus_beta1,
                *v * s.beta2 + (g * g) * s.one_minus_beta2,
            )
        };
        let p1 = if s.decay != 1.0 { *p * s.decay } else { *p };
        let denom = v1.sqrt() / s.sqrt_bc2 + s.eps;
        *p = p1 - (m1 / denom) * s.step_size;
        *m = m1;
        *v = v1;
    }
}

with_avx2! {
    fn update_chunk / update_chunk_avx2(
        s: &AdamWScalars, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]
    ) = update
}

/// Updates `param` and its moments `m`, `v` in place from `grad`:
///
/// ```text
/// g ← grad · grad_scale
/// m ← β₁·m + (1 − β₁)·g          v ← β₂·v + (1 − β₂)·g²
/// p ← p·decay − step_size · m / (√v / √(1 − β₂ᵗ) + ε)
/// ```
///
/// # Panics
/// If the four lengths differ.
pub fn adamw_update(
    s: &AdamWScalars,
    param: &mut [f32],
    grad: &[f32],
    m: &mut [f32],
    v: &mut [f32],
) {
    let n = param.len();
    assert!(
        grad.len() == n && m.len() == n && v.len() == n,
        "adamw: lengths differ (param {n}, grad {}, m {}, v {})",
        grad.len(),
        m.len(),
        v.len()
    );
    param
        .par_chunks_mut(CHUNK)
        .zip(grad.par_chunks(CHUNK))
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .for_each(|(((p, g), m), v)| update_chunk(s, p, g, m, v));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalars(first: bool) -> AdamWScalars {
        AdamWScalars {
            grad_scale: 0.5,
            beta1: 0.9,
            one_minus_beta1: 0.1,
            beta2: 0.99,
            one_minus_beta2: 0.01,
            decay: 0.9998,
            sqrt_bc2: 0.2,
            eps: 1e-8,
            step_size: 1e-3,
            first,
        }
    }

    #[test]
    fn avx2_and_portable_paths_agree_bit_for_bit() {
        let n = 1000;
        let g: Vec<f32> = (0..n)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.013)
            .collect();
        let start: Vec<f32> = (0..n).map(|i| (i as f32 * 0.7).sin()).collect();
        for first in [true, false] {
            let s = scalars(first);
            let (mut p1, mut m1, mut v1) = (
                start.clone(),
                start.clone(),
                start.iter().map(|x| x * x).collect::<Vec<_>>(),
            );
            let (mut p2, mut m2, mut v2) = (p1.clone(), m1.clone(), v1.clone());
            update(&s, &mut p1, &g, &mut m1, &mut v1);
            update_chunk(&s, &mut p2, &g, &mut m2, &mut v2);
            for (a, b) in [(&p1, &p2), (&m1, &m2), (&v1, &v2)] {
                assert!(
                    a.iter()
                        .zip(b.iter())
                        .all(|(x, y)| x.to_bits() == y.to_bits())
                );
            }
        }
    }
}
