//! The bfloat16 product on Intel AMX (Advanced Matrix Extensions: Sapphire Rapids and later
//! Xeons): eight tile registers of 16 rows × 64 bytes, and `tdpbf16ps`, which adds a 16 × 32
//! bfloat16 tile times a 32 × 16 one into a 16 × 16 f32 tile — 8,192 multiply-adds in one
//! instruction, against `vdpbf16ps`'s 32.
//!
//! Layout: the right operand is packed as for the AVX-512 tile (panels of [`NR`] = 32 columns,
//! `[k/2][32]` pairs — the pairs of consecutive `k` that AMX calls the VNNI format), its depth
//! padded with zeros to whole blocks of 32; a block of 16 pairs × 16 columns is one tile, read
//! at a 128-byte stride. The left operand is packed into panels of [`PR`] = 32 rows, as
//! `[k/32][32 rows][16 pairs]`, so that each 16-row tile is 1 KiB in one piece. Each 32 × 32
//! block of the result keeps its sums in four tiles for the whole depth (two left tiles, two
//! right tiles: the usual 2 × 2 blocking that fills all eight registers).
//!
//! The sums are f32 but the instruction's order of adding inside a block of 32 products is
//! not the AVX-512 tile's (and not documented), so the bits differ from the portable tile's;
//! the tests bound the error against a float64 reference instead. Rows are split into fixed
//! tasks, so the result does not depend on the number of threads.

use rayon::prelude::*;

use super::scratch::{self, Scratch};
use super::{NR, Operand, pack_columns, pair, row_pairs, store};

/// Rows of a left panel: two 16-row tiles.
const PR: usize = 32;
/// Pairs of `k` in one tile row (64 bytes).
const KB: usize = 16;

/// Whether this CPU and kernel run AMX bfloat16 products (checked once): the CPU reports
/// AMX-TILE and AMX-BF16 (CPUID leaf 7), has the AVX-512 BF16 packers, Linux grants the
/// process the tile state (`arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA)`), and `EMBER_AMX` is
/// not `off` (for side-by-side measurements).
pub fn amx_available() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        std::env::var("EMBER_AMX").map_or(true, |v| v != "off")
            && super::bf16_available()
            && hardware::request()
    })
}

/// `dst (+)= lhs · rhs` on AMX; shapes already checked by the caller (`m, n, k > 0`).
pub(crate) fn product(dst: &mut [f32], lhs: Operand, rhs: Operand, accumulate: bool) {
    let ((m, k), n) = (lhs.shape(), rhs.shape().1);
    let kp = k.div_ceil(2);
    let blocks = kp.div_ceil(KB);
    let panel_b = blocks * KB * NR;
    let mut packed_b = Scratch::take(&scratch::RIGHT, n.div_ceil(NR) * panel_b);
    packed_b
        .par_chunks_mut(panel_b)
        .enumerate()
        .for_each(|(p, out)| {
            // Zeros past the last column, and past the depth to the whole block.
            let pad = if n - p * NR < NR { 0 } else { kp * NR };
            out[pad..].fill(0);
            pack_columns(true, rhs, p * NR, &mut out[..kp * NR])
        });
    let panel_a = blocks * KB * PR;
    // Depth in chunks of 8 blocks (256 of k) when it is longer than 12 (384): a chunk of a
    // right panel and of a left one, 16 KiB each, stay in L1. Unchunked, the head's input
    // gradient (k = 8,192) streamed 512 KiB panels from L2 for every block: 105 ms against
    // the forward's 61 at the same size (`ember bench --ops --shape medium`, Xeon with AMX).
    let chunk = if blocks <= 12 { blocks } else { 8 };
    let task_rows = m.div_ceil(16).div_ceil(PR).max(1) * PR;
    dst.par_chunks_mut(task_rows * n)
        .enumerate()
        .for_each(|(t, d)| {
            let (i0, rows) = (t * task_rows, d.len() / n);
            let mut packed_a = Scratch::take(&scratch::LEFT, rows.div_ceil(PR) * panel_a);
            pack_rows(lhs, i0, rows, panel_a, &mut packed_a);
            let tiles = hardware::Tiles::configure();
            let put = |out: &mut [f32], sums: &[f32]| store(out, sums, accumulate);
            if chunk == blocks {
                // A right panel at a time against all the task's left panels: the right
                // panel stays in L1 while the task's left panels stay in L2.
                let mut sums = [0.0f32; PR * NR];
                for (p, b) in packed_b.chunks_exact(panel_b).enumerate() {
                    let (j0, cols) = (p * NR, (n - p * NR).min(NR));
                    for (r, a) in packed_a.chunks_exact(panel_a).enumerate() {
                        let next = next_panel(&packed_a, panel_a, r);
                        let height = (rows - r * PR).min(PR);
                        if (height, cols) == (PR, NR) {
                            // A whole block: the tiles load and store it in place.
                            tiles.block(a, b, next, &mut d[r * PR * n + j0..], n, accumulate);
                            continue;
                        }
                        tiles.block(a, b, next, &mut sums, NR, false);
                        for i in 0..height {
                            put(
                                &mut d[(r * PR + i) * n + j0..][..cols],
                                &sums[i * NR..][..cols],
                            );
                        }
                    }
                }
                return;
            }
            // The task's sums stay in a local buffer across the chunks of depth.
            let wide = n.div_ceil(NR) * NR;
            // Every block's sums are stored (not added) at the first chunk: no zeros needed.
            let mut sums = Scratch::take(&scratch::SUMS, packed_a.len() / panel_a * PR * wide);
            for c0 in (0..blocks).step_by(chunk) {
                let c1 = (c0 + chunk).min(blocks);
                for (p, b) in packed_b.chunks_exact(panel_b).enumerate() {
                    let b = &b[c0 * KB * NR..c1 * KB * NR];
                    for (r, a) in packed_a.chunks_exact(panel_a).enumerate() {
                        let depth = c0 * KB * PR..c1 * KB * PR;
                        let next = &next_panel(&packed_a, panel_a, r)[depth.clone()];
                        let sums = &mut sums[r * PR * wide + p * NR..];
                        tiles.block(&a[depth], b, next, sums, wide, c0 > 0);
                    }
                }
            }
            for i in 0..rows {
                put(&mut d[i * n..][..n], &sums[i * wide..][..n]);
            }
        });
}

/// The left panel after panel `r` (the first after the last): the one the tiles read next.
fn next_panel(packed: &[u32], panel: usize, r: usize) -> &[u32] {
    let next = if (r + 1) * panel < packed.len() {
        r + 1
    } else {
        0
    };
    &packed[next * panel..][..panel]
}

/// Packs rows `i0..i0 + rows` of `lhs` into panels of `panel` lanes, `[k/32][PR][KB]` each
/// (zeros past the depth and below the last row).
fn pack_rows(lhs: Operand, i0: usize, rows: usize, panel: usize, out: &mut [u32]) {
    let (m, k) = lhs.shape();
    let at = |i: usize, p: usize| (i / PR) * panel + (p / KB) * PR * KB + (i % PR) * KB + p % KB;
    // `out` may hold an earlier product's lanes: zero what the packing below leaves, the
    // last panel's rows past `rows` and every panel's last block past the depth.
    if !rows.is_multiple_of(PR) {
        out[rows / PR * panel..].fill(0);
    }
    if !k.div_ceil(2).is_multiple_of(KB) {
        for p in out.chunks_exact_mut(panel) {
            p[panel - PR * KB..].fill(0);
        }
    }
    if lhs.transposed {
        // Row i is column i of the stored [k, m] matrix: whole blocks of 16 rows × 16 pairs
        // are transposed in registers (scattering them one lane at a time made the packing
        // cost as much as the products), the rest one lane at a time.
        let (full_rows, full_pairs) = (rows / 16 * 16, k / 32 * 16);
        for p0 in (0..full_pairs).step_by(16) {
            for g in (0..full_rows).step_by(16) {
                hardware::pair_columns16(
                    &lhs.data[2 * p0 * m + i0 + g..],
                    m,
                    &mut out[at(g, p0)..],
                    KB,
                );
            }
        }
        for p in 0..k.div_ceil(2) {
            let c0 = &lhs.data[2 * p * m + i0..][..rows];
            let c1 = (2 * p + 1 < k).then(|| &lhs.data[(2 * p + 1) * m + i0..][..rows]);
            let from = if p < full_pairs { full_rows } else { 0 };
            for i in from..rows {
                out[at(i, p)] = pair(c0[i], c1.map_or(0.0, |c| c[i]));
            }
        }
    } else {
        for i in 0..rows {
            let row = &lhs.data[(i0 + i) * k..][..k];
            for (b, chunk) in row.chunks(2 * KB).enumerate() {
                row_pairs(true, chunk, &mut out[at(i, b * KB)..][..KB], 1);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod hardware {
    use super::{KB, NR, PR};
    use std::arch::asm;
    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};

    /// Asks Linux for the AMX tile state; true when the CPU has AMX-TILE and AMX-BF16 and the
    /// request is granted.
    pub(super) fn request() -> bool {
        // CPUID is safe to run on every x86-64 CPU; leaf 7 is read after checking the
        // highest leaf.
        if std::arch::x86_64::__cpuid(0).eax < 7 {
            return false;
        }
        let (amx_bf16, amx_tile) = (1 << 22, 1 << 24);
        if std::arch::x86_64::__cpuid_count(7, 0).edx & (amx_bf16 | amx_tile) != amx_bf16 | amx_tile
        {
            return false;
        }
        const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
        const XFEATURE_XTILEDATA: libc::c_long = 18;
        // SAFETY: arch_prctl with these arguments only changes which state the kernel saves
        // for this process; it fails cleanly (non-zero) where AMX is not supported.
        unsafe {
            libc::syscall(
                libc::SYS_arch_prctl,
                ARCH_REQ_XCOMP_PERM,
                XFEATURE_XTILEDATA,
            ) == 0
        }
    }

    /// [`super::super::avx512::pair_columns16`] (AMX implies AVX-512 BF16).
    pub(super) fn pair_columns16(src: &[f32], stride: usize, out: &mut [u32], out_stride: usize) {
        assert!(super::amx_available(), "AMX packing without AMX");
        // SAFETY: `amx_available` includes `bf16_available` (AVX-512 F, BW and BF16); the
        // bounds are asserted inside.
        unsafe { super::super::avx512::pair_columns16(src, stride, out, out_stride) }
    }

    /// The tile registers configured on this thread (all eight 16 rows × 64 bytes); released
    /// when dropped. Only built after [`request`] succeeded (`amx_available`).
    pub(super) struct Tiles(());

    #[repr(C, align(64))]
    struct Config([u8; 64]);

    impl Tiles {
        pub(super) fn configure() -> Tiles {
            assert!(super::amx_available(), "AMX tiles used without AMX");
            let mut c = Config([0; 64]);
            c.0[0] = 1; // palette 1
            for t in 0..8 {
                c.0[16 + 2 * t] = 64; // bytes per row
                c.0[48 + t] = 16; // rows
            }
            // SAFETY: AMX is available (asserted) and the configuration is a valid palette-1
            // description of 64 bytes, aligned.
            unsafe { asm!("ldtilecfg [{}]", in(reg) c.0.as_ptr(), options(nostack)) };
            Tiles(())
        }

        /// `c = a · b`, or `c += a · b` with `load`, for one left panel `a`
        /// (`[blocks][PR][KB]`) and one right panel `b` (`[blocks][KB][NR]`) of the same
        /// depth, `c` a `PR × NR` block at row stride `ldc` floats. `next`, the left panel
        /// the following block reads (as long as `a`), is fetched into L1 on the way.
        pub(super) fn block(
            &self,
            a: &[u32],
            b: &[u32],
            next: &[u32],
            c: &mut [f32],
            ldc: usize,
            load: bool,
        ) {
            assert!(
                a.len() == b.len() && a.len() == next.len() && a.len().is_multiple_of(PR * KB),
                "AMX block: panels of {} and {} lanes",
                a.len(),
                b.len()
            );
            assert!(
                ldc >= NR && c.len() >= (PR - 1) * ldc + NR,
                "AMX block: {} floats at stride {ldc}",
                c.len()
            );
            let p = c.as_mut_ptr();
            // SAFETY: the tiles are configured on this thread (`self`). Every load reads 16
            // rows of 64 bytes: the left tiles at a 64-byte stride from block offsets 0 and
            // 256 lanes (1 KiB each, inside the 512-lane block), the right ones at a 128-byte
            // stride from offsets 0 and 16 (the block's 16 rows of 32 lanes); `a` and `b` hold
            // whole blocks (asserted). The sums' loads and stores touch 16 rows of 64 bytes at
            // a stride of `ldc` floats from offsets 0, 16, 16·ldc and 16·ldc + 16 floats of
            // `c`, which holds the whole 32 × 32 block (asserted).
            unsafe {
                let (c1, c2, c3) = (
                    p.add(NR / 2),
                    p.add(PR / 2 * ldc),
                    p.add(PR / 2 * ldc + NR / 2),
                );
                if load {
                    asm!(
                        "tileloadd tmm0, [{c0} + {s}*1]",
                        "tileloadd tmm1, [{c1} + {s}*1]",
                        "tileloadd tmm2, [{c2} + {s}*1]",
                        "tileloadd tmm3, [{c3} + {s}*1]",
                        c0 = in(reg) p, c1 = in(reg) c1, c2 = in(reg) c2, c3 = in(reg) c3,
                        s = in(reg) 4 * ldc,
                        options(nostack, readonly)
                    );
                } else {
                    asm!(
                        "tilezero tmm0",
                        "tilezero tmm1",
                        "tilezero tmm2",
                        "tilezero tmm3",
                        options(nostack)
                    );
                }
                let blocks = a.chunks_exact(PR * KB).zip(b.chunks_exact(KB * NR));
                for ((a, b), next) in blocks.zip(next.chunks_exact(PR * KB)) {
                    // The next left panel is read from L2 while this one computes, rather
                    // than the tiles waiting on its loads (`ember bench --ops --shape medium`,
                    // four alternating runs on a noisy VM: x·W 2.5–5.3 ms against 4.0–7.1,
                    // the head 24–38 against 37–46).
                    for line in next.chunks_exact(16) {
                        _mm_prefetch::<_MM_HINT_T0>(line.as_ptr().cast());
                    }
                    // Each load is placed just before its first use: tiles are not renamed,
                    // so a load waits for the products still reading its register (measured
                    // on a Xeon with AMX: loads all first ran ~20% slower).
                    asm!(
                        "tileloadd tmm4, [{a0} + {s64}*1]",
                        "tileloadd tmm6, [{b0} + {s128}*1]",
                        "tdpbf16ps tmm0, tmm4, tmm6",
                        "tileloadd tmm7, [{b1} + {s128}*1]",
                        "tdpbf16ps tmm1, tmm4, tmm7",
                        "tileloadd tmm5, [{a1} + {s64}*1]",
                        "tdpbf16ps tmm2, tmm5, tmm6",
                        "tdpbf16ps tmm3, tmm5, tmm7",
                        a0 = in(reg) a.as_ptr(),
                        a1 = in(reg) a.as_ptr().add(PR / 2 * KB),
                        b0 = in(reg) b.as_ptr(),
                        b1 = in(reg) b.as_ptr().add(NR / 2),
                        s64 = in(reg) 64usize,
                        s128 = in(reg) 128usize,
                        options(nostack, readonly)
                    );
                }
                asm!(
                    "tilestored [{c0} + {s}*1], tmm0",
                    "tilestored [{c1} + {s}*1], tmm1",
                    "tilestored [{c2} + {s}*1], tmm2",
                    "tilestored [{c3} + {s}*1], tmm3",
                    c0 = in(reg) p, c1 = in(reg) c1, c2 = in(reg) c2, c3 = in(reg) c3,
                    s = in(reg) 4 * ldc,
                    options(nostack)
                );
            }
        }
    }

    impl Drop for Tiles {
        fn drop(&mut self) {
            // SAFETY: the tiles were configured on this thread; releasing returns them to
            // the initial state.
            unsafe { asm!("tilerelease", options(nostack)) };
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod hardware {
    pub(super) fn request() -> bool {
        false
    }

    pub(super) fn pair_columns16(_: &[f32], _: usize, _: &mut [u32], _: usize) {
        unreachable!("AMX is x86-64 only")
    }

    pub(super) struct Tiles(());

    impl Tiles {
        pub(super) fn configure() -> Tiles {
            unreachable!("AMX is x86-64 only and `amx_available` is false elsewhere")
        }

        pub(super) fn block(
            &self,
            _: &[u32],
            _: &[u32],
            _: &[u32],
            _: &mut [f32],
            _: usize,
            _: bool,
        ) {
            unreachable!("AMX is x86-64 only")
        }
    }
}
