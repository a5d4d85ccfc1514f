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

/// Most columns per task.
const TASK_COLUMNS: usize = 256;

/// Fewest multiply-adds per task: below it scheduling costs more than it saves.
const TASK_WORK: usize = 1 << 15;

/// Columns per task for `m` rows, `k` deep and `n` wide: enough tasks for every thread twice
/// over where the work allows, in multiples of 32 columns. With a fixed 256, a layer 256
/// outputs wide (the attention's output projection, the MLP's second layer: 42% of a block's
/// weights) was one task on one core while the other waited.
fn task_columns(m: usize, k: usize, n: usize) -> usize {
    let spread = n
        .div_ceil(2 * rayon::current_num_threads())
        .next_multiple_of(32);
    let least = TASK_WORK.div_ceil((m * k).max(1)).next_multiple_of(32);
    spread.max(least).min(TASK_COLUMNS)
}

/// `out [m, n] = x [m, k] · w [k, n]`, all row-major, for `m ≤ MAX_ROWS`. Each output is
/// summed over `k` in order, a product then an addition each time: exactly the numbers of the
/// plain triple loop, whatever the thread count, and a row's result does not depend on the
/// other rows.
///
/// # Panics
/// If `m > MAX_ROWS` or a slice does not match the sizes.
pub fn rows_times(x: &[f32], m: usize, w: &[f32], k: usize, n: usize, out: &mut [f32]) {
    check(x, m, w, k, n, out);
    scatter(m, task_columns(m, k, n), n, out, |c0, part| {
        block(x, m, w, k, n, c0, part)
    });
}

/// `out [m, n] = x [m, k] · wᵀ` with `w [n, k]` row-major (a tied output layer: the token
/// embedding is `[vocab, width]`), for `m ≤ MAX_ROWS`. Each output is a dot product (fused
/// multiply-adds: 22% faster for one row than a product and a sum, AMD EPYC 2-core) in eight
/// running lanes combined in a fixed order (as `lanes::dot`); a row's result does not depend
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

with_avx2! {
    /// Columns `c0..c0 + width` of all `m` rows into `part [m, width]` (zeroed): the weight's
    /// rows stream past once, each row's slice added into every output row.
    fn block / block_avx2 (x: &[f32], m: usize, w: &[f32], k: usize, n: usize, c0: usize, part: &mut [f32]) = block_portable
}

#[inline(always)]
fn block_portable(x: &[f32], m: usize, w: &[f32], k: usize, n: usize, c0: usize, part: &mut [f32]) {
    let width = part.len() / m;
    let row = |kk: usize| &w[kk * n + c0..kk * n + c0 + width];
    // Four weight rows per pass over the outputs: a quarter of the loads and stores of the
    // outputs, each still summed over `k` in order.
    let mut kk = 0;
    while kk + 4 <= k {
        let (w0, w1, w2, w3) = (row(kk), row(kk + 1), row(kk + 2), row(kk + 3));
        for (r, out) in part.chunks_exact_mut(width).enumerate() {
            let a: &[f32; 4] = x[r * k + kk..r * k + kk + 4]
                .try_into()
                .unwrap_or_else(|_| unreachable!("four elements"));
            for ((((o, &b0), &b1), &b2), &b3) in out.iter_mut().zip(w0).zip(w1).zip(w2).zip(w3) {
                let mut s = *o;
                s += a[0] * b0;
                s += a[1] * b1;
                s += a[2] * b2;
                s += a[3] * b3;
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
                *o += xv * b;
            }
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
    macro_rules! rows {
        ($($m:literal)*) => {
            match m {
                $($m => dots_rows::<$m>(x, w, k, part),)*
                _ => unreachable!("checked: at most MAX_ROWS rows"),
            }
        };
    }
    rows!(1 2 3 4 5 6 7 8);
}

#[inline(always)]
fn dots_rows<const M: usize>(x: &[f32], w: &[f32], k: usize, part: &mut [f32]) {
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
