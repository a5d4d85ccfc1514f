//! A branch-free `exp` the compiler can vectorise.
//!
//! `f32::exp` is a libm call per element, which no compiler vectorises; over a 8192-token
//! vocabulary it was most of the softmax's time (`ember bench --ops`, benches/RESULTS.md).
//! This one is range reduction plus a polynomial, straight-line code on plain `f32` so the
//! same source runs 8 lanes wide under AVX2 and 4 wide under SSE2, with identical results
//! (only IEEE adds and multiplies, no fused multiply-add, fixed evaluation order).
//!
//! exp(x) = 2^n · exp(r) with n = round(x / ln 2) and |r| ≤ ln 2 / 2; exp(r) from a degree-7
//! polynomial (Cephes' `expf` coefficients). Relative error ≤ 2 ulp over the clamped range
//! (test `exp_matches_f64`), which is far below what a softmax needs.

/// Below this, 2^n would leave the normal range; results there are ≤ 1.2e-38 (effectively 0
/// next to the row's maximum, which is always 1).
const MIN_X: f32 = -87.33;
/// Above this, 2^n overflows.
const MAX_X: f32 = 88.0;
const LOG2E: f32 = std::f32::consts::LOG2_E;
/// 1.5 · 2²³: adding it rounds a float of magnitude < 2²² to an integer (round to nearest
/// even) and leaves that integer in the low mantissa bits. Unlike `floor`/`round` (a libm
/// call without SSE4.1) this is a plain add, so the loop vectorises on every x86-64.
const ROUNDER: f32 = 12_582_912.0;
/// ln 2 split in two so n · LN2_HI is exact for the n that occur (Cody–Waite reduction).
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// exp(r) ≈ 1 + r + r² · (P0 r⁵ + … + P5) on |r| ≤ ln 2 / 2.
const P: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5, // Cephes lists 5.0000001e-1, which rounds to 0.5 in f32
];

/// e^x for one value. NaN stays NaN; +∞ and large inputs give about 1.6e38 (clamped), −∞ and
/// very negative inputs about 1.2e-38 — the kernels only feed it `x - max ≤ 0`.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let x = x.clamp(MIN_X, MAX_X); // NaN stays NaN
    let shifted = x * LOG2E + ROUNDER;
    let n = shifted - ROUNDER;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let mut p = P[0];
    for c in &P[1..] {
        p = p * r + *c;
    }
    let er = p * (r * r) + r + 1.0;
    // 2^n from the exponent bits; n (read back from `shifted`'s mantissa) is in [-126, 127]
    // after the clamp. For NaN input `er` is NaN, whatever `scale` holds.
    let n_int = (shifted.to_bits() as i32).wrapping_sub(ROUNDER.to_bits() as i32);
    let scale = f32::from_bits((n_int.wrapping_add(127) as u32) << 23);
    er * scale
}

/// e^x in place over a slice (vectorised).
pub fn exp_slice(xs: &mut [f32]) {
    for x in xs {
        *x = exp(*x);
    }
}
