//! Products of a few rows by a weight matrix: the linear layers of a decoding step, where each
//! sequence being generated contributes one row.
//!
//! Burn's CPU product has a fast path for one row but packs the whole weight into a scratch
//! layout for two rows or more, so eight sequences decoded together gained little over one at a
//! time (1,142 against 958 tokens/s with 8 clients, AMD EPYC 2-core; benches/RESULTS.md,
//! "Serving"). Here the
//! weight is read once, in place, for all rows: its rows stream past in order, each added into
//! every output row.

use rayon::prelude::*;

/// Most rows one call takes.
pub const MAX_ROWS: usize = 8;

/// Weight rows the first tile of a task asks for ahead of its own (AVX-512 tiles). A tile reads
/// 128 or 256 bytes of each weight row and the next weight row is a page or more away in a wide
/// layer, so the hardware prefetchers never caught up when the weights come from memory: eight
/// rows through eight 512-wide blocks (100 MB) took 8.7 ms against 4.5 ms for one row. With
/// the first tile fetching the whole task's width of row `kk + 16`: 6.2 ms (32 ahead: the same
/// within noise; only the tile's own columns, 8 ahead: 7.5); weights in cache are unchanged
/// (`rows_times_cost`, AMD EPYC 2-core, 1 MB L2).
const AHEAD: usize = 16;

/// Most columns per task.
const TASK_COLUMNS: usize = 256;

/// Fewest multiply-adds per task: below it scheduling costs more than it saves.
const TASK_WORK: usize = 1 << 15;

/// Columns per task for `m` rows, `k` deep and `n` wide: enough tasks for every thread twice
/// over where the work allows, in multiples of 64 columns (whole tiles). With a fixed 256, a
/// layer 256 outputs wide (the attention's output projection, the MLP's second layer: 42% of a
/// block's weights) was one task on one core while the other waited.
fn task_columns(m: usize, k: usize, n: usize) -> usize {
    let spread = n
        .div_ceil(2 * rayon::current_num_threads())
        .next_multiple_of(64);
    let least = TASK_WORK.div_ceil((m * k).max(1)).next_multiple_of(64);
    spread.max(least).min(TASK_COLUMNS)
}

/// `out [m, n] = x [m, k] · w [k, n]`, all row-major, for `m ≤ MAX_ROWS`. Each output is
/// summed over `k` in order, one fused multiply-add (`f32::mul_add`) each time: exactly the
/// numbers of the plain triple loop written so, whatever the thread count or the CPU, and a
/// row's result does not depend on the other rows.
///
/// # Panics
/// If `m > MAX_ROWS` or a slice does not match the sizes.
pub fn rows_times(x: &[f32], m: usize, w: &[f32], k: usize, n: usize, out: &mut [f32]) {
    check(x, m, w, k, n, out);
    #[cfg(target_arch = "x86_64")]
    if m >= 2 && std::is_x86_feature_detected!("avx512f") {
        return scatter(m, task_columns(m, k, n), n, out, |c0, part| {
            // SAFETY: the CPU has AVX-512F (checked above).
            #[allow(unsafe_code)]
            unsafe {
                tiles_avx512(x, m, w, k, n, c0, part)
            }
        });
    }
    scatter(m, task_columns(m, k, n), n, out, |c0, part| {
        block(x, m, w, k, n, c0, part)
    });
}

/// `out [m, n] = x [m, k] · wᵀ` with `w [n, k]` row-major (a tied output layer: the token
/// embedding is `[vocab, width]`), for `m ≤ MAX_ROWS`. Each output is a dot product (fused
/// multiply-adds) in eight running lanes combined in a fixed order (as `lanes::dot`); a row's result does not depend
/// on the other rows or the thread count.
///
/// # Panics
/// If `m > MAX_ROWS` or a slice does not match the sizes.
pub fn rows_times_t(x: &[f32], m: usize, w: &[f32], k: usize, n: usize, out: &mut [f32]) {
    check(x, m, w, k, n, out);
    scatter(m, task_columns(m, k, n), n, out, |c0, part| {
        let width = part.len() / m;
        dots(x, m, &w[c0 * k..(c0 + width) * k], k, part)
    });
}

fn check(x: &[f32], m: usize, w: &[f32], k: usize, n: usize, out: &[f32]) {
    assert!(m <= MAX_ROWS, "rows_times: {m} rows, at most {MAX_ROWS}");
    assert_eq!(x.len(), m * k, "rows_times: x must be [m, k]");
    assert_eq!(w.len(), k * n, "rows_times: w must hold k · n elements");
    assert_eq!(out.len(), m * n, "rows_times: out must be [m, n]");
}

/// Runs `task(c0, part)` for every block of `columns` columns starting at `c0` (in
/// parallel when there are several), `part` a zeroed `[m, width]` buffer for the block's
/// result, then copies each block into `out [m, n]`.
fn scatter(
    m: usize,
    columns: usize,
    n: usize,
    out: &mut [f32],
    task: impl Fn(usize, &mut [f32]) + Sync,
) {
    if m * n == 0 {
        return;
    }
    let run = |c0: usize| {
        let mut part = vec![0.0f32; m * columns.min(n - c0)];
        task(c0, &mut part);
        part
    };
    let starts: Vec<usize> = (0..n).step_by(columns).collect();
    let parts: Vec<Vec<f32>> = if starts.len() > 1 {
        starts.par_iter().map(|&c0| run(c0)).collect()
    } else {
        starts.iter().map(|&c0| run(c0)).collect()
    };
    for (&c0, part) in starts.iter().zip(&parts) {
        let width = columns.min(n - c0);
        for r in 0..m {
            out[r * n + c0..r * n + c0 + width].copy_from_slice(&part[r * width..(r + 1) * width]);
        }
    }
}

with_fma! {
    /// Columns `c0..c0 + width` of all `m` rows into `part [m, width]` (zeroed).
    fn block / block_fma (x: &[f32], m: usize, w: &[f32], k: usize, n: usize, c0: usize, part: &mut [f32]) = block_portable
}

/// Every output is `s = x[r][kk].mul_add(w[kk][c], s)` for `kk` in order from `s = 0`,
/// whichever loop computes it, so neither the number of rows nor the CPU changes a result.
/// The weight's rows stream past once, four at a time, each group added into every output row
/// (a quarter of the outputs' loads and stores); with AVX-512, [`rows_times`] takes two rows
/// or more by tiles instead ([`tiles_avx512`]).
#[inline(always)]
fn block_portable(x: &[f32], m: usize, w: &[f32], k: usize, n: usize, c0: usize, part: &mut [f32]) {
    let width = part.len() / m;
    let row = |kk: usize| &w[kk * n + c0..kk * n + c0 + width];
    let mut kk = 0;
    while kk + 4 <= k {
        let (w0, w1, w2, w3) = (row(kk), row(kk + 1), row(kk + 2), row(kk + 3));
        for (r, out) in part.chunks_exact_mut(width).enumerate() {
            let a = &x[r * k + kk..r * k + kk + 4];
            for ((((o, &b0), &b1), &b2), &b3) in out.iter_mut().zip(w0).zip(w1).zip(w2).zip(w3) {
                let mut s = *o;
                s = a[0].mul_add(b0, s);
                s = a[1].mul_add(b1, s);
                s = a[2].mul_add(b2, s);
                s = a[3].mul_add(b3, s);
                *o = s;
            }
        }
        kk += 4;
    }
    for kk in kk..k {
        let wrow = row(kk);
        for (r, out) in part.chunks_exact_mut(width).enumerate() {
            let xv = x[r * k + kk];
            for (o, &b) in out.iter_mut().zip(wrow) {
                *o = xv.mul_add(b, *o);
            }
        }
    }
}

/// [`block_portable`] for `m ≥ 2` rows in tiles of columns whose sums stay in registers while
/// `kk` runs through the weight's rows: each weight element is loaded once per tile and used
/// `m` times, and a tile's `m · C` vector sums cost `C` loads and `m` broadcasts per `kk`.
/// The streaming loop is bound by its loads (each output loaded and stored once per four weight
/// rows, each weight vector loaded once per row) and was 46% of the server's time decoding for
/// eight clients (`perf`, AMD EPYC 2-core); AVX2's 16 registers hold too few sums for tiles
/// to pay (a tile of 8 rows × 8 columns was slower than streaming). Times:
/// `cargo test --workspace rows_times_cost -- --ignored --nocapture`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn tiles_avx512(x: &[f32], m: usize, w: &[f32], k: usize, n: usize, c0: usize, part: &mut [f32]) {
    macro_rules! rows {
        ($($m:literal => $c:literal),*) => {
            match m {
                $($m => tiles::<$m, $c>(x, w, k, n, c0, part),)*
                _ => unreachable!("checked: 2 to MAX_ROWS rows"),
            }
        };
    }
    // `m · c` sums of 16 lanes, `c` weight vectors and a broadcast within 32 registers.
    rows!(2 => 4, 3 => 4, 4 => 4, 5 => 4, 6 => 2, 7 => 2, 8 => 2);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn tiles<const M: usize, const C: usize>(
    x: &[f32],
    w: &[f32],
    k: usize,
    n: usize,
    c0: usize,
    part: &mut [f32],
) {
    use std::arch::x86_64::{
        __m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_setzero_ps,
        _mm512_storeu_ps,
    };
    let width = part.len() / M;
    // The rows' values side by side for each `kk`.
    let mut xt = vec![[0.0f32; M]; k];
    for (kk, v) in xt.iter_mut().enumerate() {
        for (r, e) in v.iter_mut().enumerate() {
            *e = x[r * k + kk];
        }
    }
    let span = C * 16;
    let full = width - width % span;
    for t in (0..full).step_by(span) {
        let col = c0 + t;
        let mut acc: [[__m512; C]; M] = [[_mm512_setzero_ps(); C]; M];
        for (kk, (wrow, xv)) in w.chunks_exact(n).zip(&xt).enumerate() {
            if t == 0 && kk + AHEAD < k {
                let p = w[(kk + AHEAD) * n + c0..].as_ptr();
                for line in (0..width).step_by(16) {
                    // SAFETY: a prefetch hint; the address is inside `w`.
                    #[allow(unsafe_code)]
                    unsafe {
                        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T1 }>(
                            p.add(line) as *const i8,
                        )
                    };
                }
            }
            let wv = &wrow[col..col + span];
            let mut b: [__m512; C] = [_mm512_setzero_ps(); C];
            for (c, bc) in b.iter_mut().enumerate() {
                // SAFETY: `wv` holds `C · 16` elements, so 16 from `c · 16` are inside it.
                #[allow(unsafe_code)]
                {
                    *bc = unsafe { _mm512_loadu_ps(wv.as_ptr().add(c * 16)) };
                }
            }
            for (a, &s) in acc.iter_mut().zip(xv) {
                let s = _mm512_set1_ps(s);
                for (ac, &bc) in a.iter_mut().zip(&b) {
                    // One rounding, as `mul_add`.
                    *ac = _mm512_fmadd_ps(s, bc, *ac);
                }
            }
        }
        for (r, a) in acc.iter().enumerate() {
            let out = &mut part[r * width + t..][..span];
            for (c, &ac) in a.iter().enumerate() {
                // SAFETY: `out` holds `C · 16` elements, so 16 from `c · 16` are inside it.
                #[allow(unsafe_code)]
                unsafe {
                    _mm512_storeu_ps(out.as_mut_ptr().add(c * 16), ac)
                };
            }
        }
    }
    for c in full..width {
        for r in 0..M {
            let mut s = 0.0f32;
            for (wrow, xv) in w.chunks_exact(n).zip(&xt) {
                s = xv[r].mul_add(wrow[c0 + c], s);
            }
            part[r * width + c] = s;
        }
    }
}

with_fma! {
    /// `part [m, width] = x [m, k] · wᵀ` for the `width` rows of `w` given: each chunk of a
    /// weight row is loaded once and multiplied into all `m` rows' running lanes.
    fn dots / dots_fma (x: &[f32], m: usize, w: &[f32], k: usize, part: &mut [f32]) = dots_portable
}

#[inline(always)]
fn dots_portable(x: &[f32], m: usize, w: &[f32], k: usize, part: &mut [f32]) {
    // Up to four rows, `C` weight rows at once: `M · C` independent sums. One sum at a time
    // waited on each multiply-add before the next: the head of a one-row step took 88 µs, the
    // latency of 32 dependent multiply-adds per output; 50 µs in groups of eight
    // (`rows_times_cost`, tests/rows.rs).
    match m {
        1 => dots_rows::<1, 8>(x, w, k, part),
        2 => dots_rows::<2, 2>(x, w, k, part),
        3 => dots_rows::<3, 2>(x, w, k, part),
        4 => dots_rows::<4, 2>(x, w, k, part),
        5 => dots_each::<5>(x, w, k, part),
        6 => dots_each::<6>(x, w, k, part),
        7 => dots_each::<7>(x, w, k, part),
        8 => dots_each::<8>(x, w, k, part),
        _ => unreachable!("checked: at most MAX_ROWS rows"),
    }
}

/// [`dots_group`] one weight row at a time, for five rows or more (the grouped loop was slower
/// there: 207 against 156 µs for the head with eight rows).
#[inline(always)]
fn dots_each<const M: usize>(x: &[f32], w: &[f32], k: usize, part: &mut [f32]) {
    use crate::lanes::{LANES, fold};
    let width = part.len() / M;
    let xs: [&[f32]; M] = std::array::from_fn(|r| &x[r * k..(r + 1) * k]);
    let chunks: [&[[f32; LANES]]; M] = std::array::from_fn(|r| xs[r].as_chunks::<LANES>().0);
    for (c, wrow) in w.chunks_exact(k.max(1)).take(width).enumerate() {
        let (wchunks, wtail) = wrow.as_chunks::<LANES>();
        let mut acc = [[0.0f32; LANES]; M];
        for (j, wv) in wchunks.iter().enumerate() {
            for (a, xc) in acc.iter_mut().zip(&chunks) {
                let xv = &xc[j];
                for l in 0..LANES {
                    a[l] = xv[l].mul_add(wv[l], a[l]);
                }
            }
        }
        let full = k - wtail.len();
        for (r, a) in acc.iter().enumerate() {
            let tail = xs[r][full..].iter().zip(wtail);
            part[r * width + c] = tail.fold(fold(*a), |s, (p, q)| p.mul_add(*q, s));
        }
    }
}

/// Each output `(r, c)` is the same sum whatever `C`: eight running lanes over `k` in order,
/// folded, then the tail.
#[inline(always)]
fn dots_rows<const M: usize, const C: usize>(x: &[f32], w: &[f32], k: usize, part: &mut [f32]) {
    let width = part.len() / M;
    let groups = width / C;
    for g in 0..groups {
        dots_group::<M, C>(x, w, k, g * C, part);
    }
    for c in groups * C..width {
        dots_group::<M, 1>(x, w, k, c, part);
    }
}

/// Outputs `c0..c0 + C` of every row.
#[inline(always)]
fn dots_group<const M: usize, const C: usize>(
    x: &[f32],
    w: &[f32],
    k: usize,
    c0: usize,
    part: &mut [f32],
) {
    use crate::lanes::{LANES, fold};
    let width = part.len() / M;
    let xs: [&[f32]; M] = std::array::from_fn(|r| &x[r * k..(r + 1) * k]);
    let nc = k / LANES;
    let chunks: [&[[f32; LANES]]; M] = std::array::from_fn(|r| &xs[r].as_chunks::<LANES>().0[..nc]);
    let wrows: [&[f32]; C] = std::array::from_fn(|i| &w[(c0 + i) * k..(c0 + i + 1) * k]);
    let wchunks: [&[[f32; LANES]]; C] =
        std::array::from_fn(|i| &wrows[i].as_chunks::<LANES>().0[..nc]);
    let mut acc = [[[0.0f32; LANES]; C]; M];
    for j in 0..nc {
        for (ar, xc) in acc.iter_mut().zip(&chunks) {
            let xv = &xc[j];
            for (a, wc) in ar.iter_mut().zip(&wchunks) {
                let wv = &wc[j];
                for l in 0..LANES {
                    a[l] = xv[l].mul_add(wv[l], a[l]);
                }
            }
        }
    }
    let full = k - k % LANES;
    for (r, ar) in acc.iter().enumerate() {
        for (i, a) in ar.iter().enumerate() {
            let tail = xs[r][full..].iter().zip(&wrows[i][full..]);
            part[r * width + c0 + i] = tail.fold(fold(*a), |s, (p, q)| p.mul_add(*q, s));
        }
    }
}
