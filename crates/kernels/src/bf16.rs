//! Matrix products with bfloat16 operands and f32 sums: `dst = lhs · rhs` (or `+=`) where
//! every operand element is first rounded to bfloat16 (8 significant bits, f32's exponent
//! range) and the products are summed in f32 — the arithmetic of mixed-precision training on
//! GPUs. CPUs with AVX-512 BF16 (AMD Zen 4, Intel Sapphire Rapids) do 32 such multiply-adds per
//! instruction (`vdpbf16ps`), twice f32's 16: measured on a 2-core AMD EPYC (Zen 4), a
//! 2,016 × 256 × 960 product runs at ~200 GFLOP/s on one core, packing included, against
//! ~80 for f32 `gemm`.
//!
//! Layout: the right operand is packed once into panels of [`NR`] columns, the left into
//! panels of [`MR`] rows, both as pairs of consecutive `k` (the two bfloat16 halves of one
//! 32-bit lane, `vdpbf16ps`'s operand format); a tile of `MR × NR` sums stays in 24 registers
//! for the whole depth. Rows are split into fixed tasks of whole panels, so the result does
//! not depend on the number of threads, and every sum runs in the same order.
//!
//! [`matmul_bf16`] runs the fastest [`Tile`] the CPU has: AMX blocks ([`amx_available`]:
//! Intel Xeons since Sapphire Rapids), the AVX-512 tile ([`bf16_available`]), or a portable
//! tile. The AVX-512 and portable tiles give the same bits (the portable one follows the
//! instruction's definition: each pair added odd element first, products exact, bfloat16
//! subnormals read as zero, subnormal sums flushed to zero, round to nearest even); AMX sums
//! in its own order, within f32 rounding of them.

use rayon::prelude::*;

/// Rows of a tile.
pub const MR: usize = 12;
/// Columns of a tile (two 16-lane registers).
pub const NR: usize = 32;

/// Whether this CPU runs bfloat16 products in hardware (AVX-512 F, BW and BF16), checked once.
pub fn bf16_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *ON.get_or_init(|| {
            std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512bf16")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// `x` rounded to bfloat16 as `vcvtneps2bf16` rounds it (to nearest, ties to even; subnormals
/// to zero; NaN stays NaN), as its 16 bits.
pub fn to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) | 0x40) as u16;
    }
    if b & 0x7f80_0000 == 0 {
        return (b >> 16) as u16 & 0x8000;
    }
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// The f32 value of bfloat16 bits.
pub fn from_bf16(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// An operand of [`matmul_bf16`]: a row-major matrix, or the transpose of one.
#[derive(Debug, Clone, Copy)]
pub struct Operand<'a> {
    /// The stored elements, row-major.
    pub data: &'a [f32],
    /// Rows of the stored matrix.
    pub rows: usize,
    /// Columns of the stored matrix.
    pub cols: usize,
    /// Whether the operand is the stored matrix's transpose.
    pub transposed: bool,
}

impl<'a> Operand<'a> {
    /// The row-major `rows × cols` matrix in `data`.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Operand {
            data,
            rows,
            cols,
            transposed: false,
        }
    }

    /// Its transpose (no copy).
    pub fn t(self) -> Self {
        Operand {
            transposed: !self.transposed,
            ..self
        }
    }

    /// `(rows, cols)` of the operand as used.
    pub(crate) fn shape(&self) -> (usize, usize) {
        if self.transposed {
            (self.cols, self.rows)
        } else {
            (self.rows, self.cols)
        }
    }
}

/// Which tile computes a bfloat16 product. They agree to f32 rounding; [`Tile::Portable`] and
/// [`Tile::Avx512`] give the same bits, [`Tile::Amx`] sums in its own order (module docs of
/// `amx`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tile {
    /// One lane at a time by `vdpbf16ps`'s definition: any CPU.
    Portable,
    /// `vdpbf16ps` on 12 × 32 tiles: AVX-512 BF16 ([`bf16_available`]).
    Avx512,
    /// `tdpbf16ps` on 32 × 32 blocks of AMX tiles ([`amx_available`]).
    Amx,
}

impl Tile {
    /// The fastest tile this CPU runs: AMX, then AVX-512 BF16, then the portable one.
    pub fn best() -> Tile {
        if amx_available() {
            Tile::Amx
        } else if bf16_available() {
            Tile::Avx512
        } else {
            Tile::Portable
        }
    }

    /// The instructions it runs on, as the device line and the training log name them.
    pub fn name(self) -> &'static str {
        match self {
            Tile::Portable => "portable code",
            Tile::Avx512 => "AVX-512 BF16",
            Tile::Amx => "AMX",
        }
    }

    /// Every tile this CPU runs, the portable one first.
    pub fn available() -> Vec<Tile> {
        let mut tiles = vec![Tile::Portable];
        if bf16_available() {
            tiles.push(Tile::Avx512);
        }
        if amx_available() {
            tiles.push(Tile::Amx);
        }
        tiles
    }
}

/// `dst = lhs · rhs`, or `dst += lhs · rhs` with `accumulate`, for `dst` row-major
/// `[m, n]`, with bfloat16 operands and f32 sums (module docs), on this CPU's fastest tile
/// ([`Tile::best`]). Parallel over fixed row tasks.
///
/// # Panics
/// If an operand's data does not hold its shape, the inner sizes differ, or `dst` is not
/// `m × n`.
pub fn matmul_bf16(dst: &mut [f32], lhs: Operand, rhs: Operand, accumulate: bool) {
    product(dst, lhs, rhs, accumulate, Tile::best());
}

/// [`matmul_bf16`] with the portable tile whatever the CPU: the reference the AVX-512 tile
/// is tested against, bit for bit.
pub fn matmul_bf16_portable(dst: &mut [f32], lhs: Operand, rhs: Operand, accumulate: bool) {
    product(dst, lhs, rhs, accumulate, Tile::Portable);
}

/// [`matmul_bf16`] on the given tile (for tests and side-by-side measurements).
///
/// # Panics
/// As [`matmul_bf16`], and if this CPU does not run `tile` ([`Tile::available`]).
pub fn matmul_bf16_on(tile: Tile, dst: &mut [f32], lhs: Operand, rhs: Operand, accumulate: bool) {
    assert!(
        Tile::available().contains(&tile),
        "matmul_bf16_on: this CPU does not run the {tile:?} tile"
    );
    product(dst, lhs, rhs, accumulate, tile);
}

fn product(dst: &mut [f32], lhs: Operand, rhs: Operand, accumulate: bool, tile: Tile) {
    for op in [&lhs, &rhs] {
        assert_eq!(
            op.data.len(),
            op.rows * op.cols,
            "matmul_bf16: a {}×{} operand over {} elements",
            op.rows,
            op.cols,
            op.data.len()
        );
    }
    let ((m, k), (k2, n)) = (lhs.shape(), rhs.shape());
    assert_eq!(k, k2, "matmul_bf16: inner sizes {k} and {k2} differ");
    assert_eq!(dst.len(), m * n, "matmul_bf16: destination is not {m}×{n}");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.fill(0.0);
        }
        return;
    }
    if tile == Tile::Amx {
        return amx::product(dst, lhs, rhs, accumulate);
    }
    let hardware = tile == Tile::Avx512;
    let kp = k.div_ceil(2);
    let panels = n.div_ceil(NR);
    let mut packed_b = Scratch::take(&scratch::RIGHT, panels * kp * NR);
    packed_b
        .par_chunks_mut(kp * NR)
        .enumerate()
        .for_each(|(p, out)| {
            if n - p * NR < NR {
                out.fill(0); // lanes past the last column
            }
            pack_columns(hardware, rhs, p * NR, out)
        });
    // Enough tasks for the threads to share evenly, each a whole number of row panels.
    let task_rows = (m.div_ceil(16)).div_ceil(MR).max(1) * MR;
    dst.par_chunks_mut(task_rows * n)
        .enumerate()
        .for_each(|(t, d)| {
            let (i0, rows) = (t * task_rows, d.len() / n);
            let row_panels = rows.div_ceil(MR);
            let mut packed_a = Scratch::take(&scratch::LEFT, row_panels * kp * MR);
            if !rows.is_multiple_of(MR) {
                packed_a[(row_panels - 1) * kp * MR..].fill(0); // lanes past the last row
            }
            if lhs.transposed {
                pack_columns_of_rows(hardware, lhs, i0, rows, &mut packed_a);
            } else {
                for (r, out) in packed_a.chunks_mut(kp * MR).enumerate() {
                    pack_rows(hardware, lhs, i0 + r * MR, (rows - r * MR).min(MR), out);
                }
            }
            for (p, b) in packed_b.chunks(kp * NR).enumerate() {
                let (j0, cols) = (p * NR, (n - p * NR).min(NR));
                for (r, a) in packed_a.chunks(kp * MR).enumerate() {
                    let block = &mut d[r * MR * n + j0..];
                    let size = ((rows - r * MR).min(MR), cols);
                    run_tile(hardware, a, b, block, n, size, accumulate);
                }
            }
        });
}

/// Two bfloat16 values in one lane: `lo` in the low half.
#[inline(always)]
pub(crate) fn pair(lo: f32, hi: f32) -> u32 {
    u32::from(to_bf16(lo)) | (u32::from(to_bf16(hi)) << 16)
}

/// Packs columns `j0..j0 + NR` of `rhs` (zeros past its edges) as `[k/2][NR]` pairs.
pub(crate) fn pack_columns(hardware: bool, rhs: Operand, j0: usize, out: &mut [u32]) {
    let (k, n) = rhs.shape();
    let cols = n.saturating_sub(j0).min(NR);
    if rhs.transposed {
        // Column j of the operand is row j0 + j of the stored [n, k] matrix. Whole blocks of
        // 16 columns × 16 pairs are transposed in registers; the rest a row at a time.
        let (full_cols, full_pairs) = if hardware {
            (cols / 16 * 16, k / 32 * 16)
        } else {
            (0, 0)
        };
        #[cfg(target_arch = "x86_64")]
        for g in (0..full_cols).step_by(16) {
            for p0 in (0..full_pairs).step_by(16) {
                let src = &rhs.data[(j0 + g) * k + 2 * p0..];
                // SAFETY: `hardware` is `bf16_available()`; rows j0 + g .. j0 + g + 16 hold
                // the 32 floats from 2·p0 (p0 + 16 ≤ k/2) and `out` the 16 pair rows from p0
                // (p0 + 16 ≤ k/2); both are also asserted inside.
                #[allow(unsafe_code)]
                unsafe {
                    avx512::pair_rows16(src, k, &mut out[p0 * NR + g..], NR)
                };
            }
        }
        for j in 0..cols {
            let p0 = if j < full_cols { full_pairs } else { 0 };
            if 2 * p0 >= k {
                continue;
            }
            let row = &rhs.data[(j0 + j) * k + 2 * p0..(j0 + j + 1) * k];
            row_pairs(hardware, row, &mut out[p0 * NR + j..], NR);
        }
    } else {
        for (p, lanes) in out.chunks_exact_mut(NR).enumerate() {
            let r0 = &rhs.data[2 * p * n + j0..][..cols];
            let r1 = (2 * p + 1 < k).then(|| &rhs.data[(2 * p + 1) * n + j0..][..cols]);
            interleave(hardware, r0, r1, &mut lanes[..cols]);
        }
    }
}

/// Packs `rows` (≤ MR) rows of the row-major `lhs` from `i0` (zeros below) as `[k/2][MR]`
/// pairs.
fn pack_rows(hardware: bool, lhs: Operand, i0: usize, rows: usize, out: &mut [u32]) {
    let k = lhs.cols;
    for i in 0..rows {
        row_pairs(hardware, &lhs.data[(i0 + i) * k..][..k], &mut out[i..], MR);
    }
}

/// Packs rows `i0..i0 + rows` of the transposed `lhs` — columns of the stored `[k, m]` matrix —
/// as consecutive `[k/2][MR]` panels (zeros below the last row). Each stored row is read once,
/// front to back, for all the panels: packing one panel at a time read 48 bytes of every
/// stored row per panel, and the head's weight gradient (m = 8,192: rows 32 KiB apart) took
/// 44–48 ms against the forward's 32 at the same size (`ember bench --ops --shape medium`).
fn pack_columns_of_rows(hardware: bool, lhs: Operand, i0: usize, rows: usize, out: &mut [u32]) {
    let (m, k) = lhs.shape();
    let kp = k.div_ceil(2);
    for p in 0..kp {
        let c0 = &lhs.data[2 * p * m + i0..][..rows];
        let c1 = (2 * p + 1 < k).then(|| &lhs.data[(2 * p + 1) * m + i0..][..rows]);
        for (r, panel) in out.chunks_exact_mut(kp * MR).enumerate() {
            let (a, len) = (r * MR, (rows - r * MR).min(MR));
            let lanes = &mut panel[p * MR..][..len];
            interleave(hardware, &c0[a..a + len], c1.map(|c| &c[a..a + len]), lanes);
        }
    }
}

/// `out[i] = pair(c0[i], c1[i])` (`c1` zeros when `None`); all three of one length.
pub(crate) fn interleave(hardware: bool, c0: &[f32], c1: Option<&[f32]>, out: &mut [u32]) {
    assert!(c0.len() == out.len() && c1.is_none_or(|c| c.len() == out.len()));
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if hardware {
        // SAFETY: `hardware` is `bf16_available()` (AVX-512 F, BW and BF16); lengths equal,
        // checked above.
        #[allow(unsafe_code)]
        {
            done = unsafe { avx512::interleave(c0, c1, out) };
        }
    }
    for i in done..out.len() {
        out[i] = pair(c0[i], c1.map_or(0.0, |c| c[i]));
    }
}

/// `out[p · stride] = pair(row[2p], row[2p + 1])` (zero past the end of `row`).
pub(crate) fn row_pairs(hardware: bool, row: &[f32], out: &mut [u32], stride: usize) {
    let kp = row.len().div_ceil(2);
    assert!(kp == 0 || (kp - 1) * stride < out.len());
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if hardware {
        // SAFETY: as in `interleave`; every index written is checked against `out`.
        #[allow(unsafe_code)]
        {
            done = unsafe { avx512::row_pairs(row, out, stride) };
        }
    }
    for p in done..kp {
        out[p * stride] = pair(row[2 * p], row.get(2 * p + 1).copied().unwrap_or(0.0));
    }
}

/// `dst (+)= a · b` for one packed row panel `a` (`[kp][MR]`) and column panel `b`
/// (`[kp][NR]`), into the `MR × NR` block at the start of `dst` (row stride `ld`), or, at an
/// edge, its first `rows × cols`.
fn run_tile(
    hardware: bool,
    a: &[u32],
    b: &[u32],
    dst: &mut [f32],
    ld: usize,
    (rows, cols): (usize, usize),
    accumulate: bool,
) {
    assert!(
        a.len().is_multiple_of(MR) && b.len() == a.len() / MR * NR,
        "bf16 tile: panels of {} and {} lanes",
        a.len(),
        b.len()
    );
    assert!(
        rows <= MR && cols <= NR && (rows == 0 || (rows - 1) * ld + cols <= dst.len()),
        "bf16 tile: {rows}×{cols} block outside its destination"
    );
    #[cfg(target_arch = "x86_64")]
    if hardware && rows == MR && cols == NR {
        // SAFETY: `hardware` is `bf16_available()`: the CPU has AVX-512 F and BF16. The
        // lengths were checked above: `a` holds kp·MR lanes and `b` kp·NR, which is all the
        // tile reads, and `dst` holds the whole MR × NR block at stride `ld`.
        #[allow(unsafe_code)]
        unsafe {
            avx512::tile(a, b, dst.as_mut_ptr(), ld, accumulate)
        };
        return;
    }
    let mut tile = [0.0f32; MR * NR];
    #[cfg(target_arch = "x86_64")]
    if hardware {
        // SAFETY: as above, into the local MR × NR tile (stride NR).
        #[allow(unsafe_code)]
        unsafe {
            avx512::tile(a, b, tile.as_mut_ptr(), NR, false)
        };
    } else {
        portable_tile(a, b, &mut tile);
    }
    #[cfg(not(target_arch = "x86_64"))]
    portable_tile(a, b, &mut tile);
    for i in 0..rows {
        store(
            &mut dst[i * ld..][..cols],
            &tile[i * NR..][..cols],
            accumulate,
        );
    }
}

/// `out = sums`, or `out += sums` with `accumulate`: a row of a tile's sums into the result.
pub(crate) fn store(out: &mut [f32], sums: &[f32], accumulate: bool) {
    if accumulate {
        out.iter_mut().zip(sums).for_each(|(o, s)| *o += s);
    } else {
        out.copy_from_slice(sums);
    }
}

/// The tile by the instruction's definition, one lane at a time.
fn portable_tile(a: &[u32], b: &[u32], tile: &mut [f32; MR * NR]) {
    tile.fill(0.0);
    for (ap, bp) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
        for (i, &x) in ap.iter().enumerate() {
            for (j, &y) in bp.iter().enumerate() {
                let t = &mut tile[i * NR + j];
                *t = dot_pair(*t, x, y);
            }
        }
    }
}

/// `acc + x.hi·y.hi + x.lo·y.lo` as `vdpbf16ps` computes one lane: bfloat16 subnormals read
/// as zero, each product exact in f32, each sum rounded to nearest even with subnormal
/// results flushed to zero, the odd (high) pair first.
#[inline(always)]
fn dot_pair(acc: f32, x: u32, y: u32) -> f32 {
    let half = |v: u32, shift: u32| {
        let h = (v >> shift) as u16;
        if h & 0x7f80 == 0 {
            f32::from_bits(u32::from(h & 0x8000) << 16)
        } else {
            from_bf16(h)
        }
    };
    let flush = |s: f32| {
        if s.is_subnormal() {
            f32::from_bits(s.to_bits() & 0x8000_0000)
        } else {
            s
        }
    };
    let s = flush(acc + half(x, 16) * half(y, 16));
    flush(s + half(x, 0) * half(y, 0))
}

mod amx;
mod scratch;
use scratch::Scratch;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx512;

pub use amx::amx_available;
