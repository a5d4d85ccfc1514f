//! The AVX-512 BF16 tile and packers (`vdpbf16ps`, `vcvtne2ps2bf16`).

use super::{MR, NR};
use std::arch::x86_64::*;

/// `dst (+)= a · b` with `vdpbf16ps`: 12 rows × 2 registers of sums, stored to the
/// `MR × NR` block at `dst` with row stride `ld`.
///
/// # Safety
/// The CPU must have AVX-512 F and BF16; `b.len() == a.len() / MR * NR`; `dst` must be
/// valid for reads and writes of `MR` rows of `NR` floats at stride `ld`.
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn tile(a: &[u32], b: &[u32], dst: *mut f32, ld: usize, accumulate: bool) {
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    // Slices, not pointer arithmetic: with the dev profile's debug assertions each
    // `pointer::add` is checked, which spilled the sums to the stack (~150 against ~200
    // GFLOP/s on one core).
    for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
        let ap: &[u32; MR] = ap.try_into().unwrap_or(&[0; MR]);
        // SAFETY: `bp` holds NR = 32 lanes: two 64-byte loads.
        let (b0, b1): (__m512bh, __m512bh) = unsafe {
            (
                std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(bp.as_ptr().cast())),
                std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                    bp.as_ptr().add(16).cast(),
                )),
            )
        };
        for (row, &x) in acc.iter_mut().zip(ap) {
            // SAFETY: a bit cast between two 512-bit vector types.
            let x: __m512bh = unsafe { std::mem::transmute(_mm512_set1_epi32(x as i32)) };
            row[0] = _mm512_dpbf16_ps(row[0], x, b0);
            row[1] = _mm512_dpbf16_ps(row[1], x, b1);
        }
    }
    for (i, row) in acc.iter().enumerate() {
        // SAFETY: row i of the block is dst[i·ld .. i·ld + 32], valid by the contract.
        unsafe {
            let (p0, p1) = (dst.add(i * ld), dst.add(i * ld + 16));
            let (mut s0, mut s1) = (row[0], row[1]);
            if accumulate {
                s0 = _mm512_add_ps(_mm512_loadu_ps(p0), s0);
                s1 = _mm512_add_ps(_mm512_loadu_ps(p1), s1);
            }
            _mm512_storeu_ps(p0, s0);
            _mm512_storeu_ps(p1, s1);
        }
    }
}

/// `out[i] = pair(c0[i], c1[i])` sixteen lanes at a time, the last ones masked; returns
/// how many were done (all).
///
/// # Safety
/// The CPU must have AVX-512 F, BW and BF16; `c0`, `c1` and `out` of one length.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(super) unsafe fn interleave(c0: &[f32], c1: Option<&[f32]>, out: &mut [u32]) -> usize {
    let len = out.len();
    for i in (0..len).step_by(16) {
        let mask: __mmask16 = if len - i >= 16 {
            0xffff
        } else {
            (1u16 << (len - i)) - 1
        };
        // SAFETY: the mask covers lanes i .. min(i + 16, len), inside the three slices of
        // length `len`; masked-off lanes are neither read nor written.
        unsafe {
            let bits = |x: &[f32]| {
                let v = _mm512_maskz_loadu_ps(mask, x[i..].as_ptr());
                let h: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(v));
                _mm512_cvtepu16_epi32(h)
            };
            let lo = bits(c0);
            let hi = c1.map_or(_mm512_setzero_si512(), |c| _mm512_slli_epi32(bits(c), 16));
            _mm512_mask_storeu_epi32(out[i..].as_mut_ptr().cast(), mask, _mm512_or_si512(lo, hi));
        }
    }
    len
}

/// `out[p · stride] = pair(row[2p], row[2p + 1])` for the first 16-pair blocks; returns
/// how many pairs were done.
///
/// # Safety
/// The CPU must have AVX-512 F and BF16; `out` must hold index `(pairs − 1) · stride` for
/// every pair of `row`.
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn row_pairs(row: &[f32], out: &mut [u32], stride: usize) -> usize {
    let whole = row.len() / 32 * 16;
    let mut lanes = [0u32; 16];
    for p in (0..whole).step_by(16) {
        let x = &row[2 * p..][..32];
        // Contiguous lanes (AMX's left panels) are stored in place.
        let direct = stride == 1;
        let dst = if direct {
            out[p..p + 16].as_mut_ptr()
        } else {
            lanes.as_mut_ptr()
        };
        // SAFETY: `x` holds 32 floats, `dst` 16 lanes (`out[p..p + 16]`, bounds-checked, or
        // `lanes`).
        unsafe {
            // The low sixteen bfloat16 of the result come from the second operand.
            let v = _mm512_cvtne2ps_pbh(
                _mm512_loadu_ps(x[16..].as_ptr()),
                _mm512_loadu_ps(x.as_ptr()),
            );
            _mm512_storeu_si512(dst.cast(), std::mem::transmute::<__m512bh, __m512i>(v));
        }
        if direct {
            continue;
        }
        for (t, lane) in lanes.iter().enumerate() {
            out[(p + t) * stride] = *lane;
        }
    }
    whole
}

/// Sixteen vectors of 16 lanes transposed in registers: lane q of `v[i]` becomes lane i of
/// `v[q]` (two rounds of in-lane unpacks, two of 128-bit lane shuffles).
#[target_feature(enable = "avx512f")]
fn transpose16(v: &mut [__m512i; 16]) {
    let mut t = [_mm512_setzero_si512(); 16];
    for k in 0..8 {
        t[2 * k] = _mm512_unpacklo_epi32(v[2 * k], v[2 * k + 1]);
        t[2 * k + 1] = _mm512_unpackhi_epi32(v[2 * k], v[2 * k + 1]);
    }
    for b in (0..16).step_by(4) {
        v[b] = _mm512_unpacklo_epi64(t[b], t[b + 2]);
        v[b + 1] = _mm512_unpackhi_epi64(t[b], t[b + 2]);
        v[b + 2] = _mm512_unpacklo_epi64(t[b + 1], t[b + 3]);
        v[b + 3] = _mm512_unpackhi_epi64(t[b + 1], t[b + 3]);
    }
    for b in [0, 8] {
        for j in 0..4 {
            t[b + j] = _mm512_shuffle_i32x4::<0x88>(v[b + j], v[b + 4 + j]);
            t[b + 4 + j] = _mm512_shuffle_i32x4::<0xdd>(v[b + j], v[b + 4 + j]);
        }
    }
    for j in 0..8 {
        v[j] = _mm512_shuffle_i32x4::<0x88>(t[j], t[8 + j]);
        v[8 + j] = _mm512_shuffle_i32x4::<0xdd>(t[j], t[8 + j]);
    }
}

/// AMX's left packing of a transposed operand, one 16 × 16 block of pairs: row `i` of the
/// result (`out[i · out_stride ..][..16]`) holds pairs `(src[2q · stride + i], src[(2q + 1) ·
/// stride + i])` for q = 0..16 — sixteen columns of 32 stored rows, paired down the rows.
///
/// # Safety
/// The CPU must have AVX-512 F, BW and BF16; `src` must hold `31 · stride + 16` floats and
/// `out` `15 · out_stride + 16` lanes.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(super) unsafe fn pair_columns16(
    src: &[f32],
    stride: usize,
    out: &mut [u32],
    out_stride: usize,
) {
    assert!(src.len() >= 31 * stride + 16 && out.len() >= 15 * out_stride + 16);
    let mut v = [_mm512_setzero_si512(); 16];
    for (q, lanes) in v.iter_mut().enumerate() {
        // SAFETY: rows 2q and 2q + 1 of 16 floats are inside `src` (asserted).
        unsafe {
            let bits = |r: usize| {
                let x = _mm512_loadu_ps(src[r * stride..].as_ptr());
                let h: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(x));
                _mm512_cvtepu16_epi32(h)
            };
            *lanes = _mm512_or_si512(bits(2 * q), _mm512_slli_epi32(bits(2 * q + 1), 16));
        }
    }
    transpose16(&mut v);
    for (i, lanes) in v.iter().enumerate() {
        // SAFETY: 16 lanes at i · out_stride are inside `out` (asserted).
        unsafe { _mm512_storeu_si512(out[i * out_stride..].as_mut_ptr().cast(), *lanes) };
    }
}

/// AMX's right packing of a transposed operand (AVX-512's too), one 16 × 16 block of pairs:
/// `out[q · out_stride + j] = pair(src[j · stride + 2q], src[j · stride + 2q + 1])` for
/// j, q = 0..16 — 32 floats of each of 16 stored rows, paired along the row.
///
/// # Safety
/// The CPU must have AVX-512 F and BF16; `src` must hold `15 · stride + 32` floats and `out`
/// `15 · out_stride + 16` lanes.
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn pair_rows16(src: &[f32], stride: usize, out: &mut [u32], out_stride: usize) {
    assert!(src.len() >= 15 * stride + 32 && out.len() >= 15 * out_stride + 16);
    let mut v = [_mm512_setzero_si512(); 16];
    for (j, lanes) in v.iter_mut().enumerate() {
        // SAFETY: 32 floats of row j are inside `src` (asserted); a bit cast between two
        // 512-bit vector types.
        unsafe {
            let x = &src[j * stride..];
            *lanes = std::mem::transmute::<__m512bh, __m512i>(_mm512_cvtne2ps_pbh(
                _mm512_loadu_ps(x[16..].as_ptr()),
                _mm512_loadu_ps(x.as_ptr()),
            ));
        }
    }
    transpose16(&mut v);
    for (q, lanes) in v.iter().enumerate() {
        // SAFETY: 16 lanes at q · out_stride are inside `out` (asserted).
        unsafe { _mm512_storeu_si512(out[q * out_stride..].as_mut_ptr().cast(), *lanes) };
    }
}
