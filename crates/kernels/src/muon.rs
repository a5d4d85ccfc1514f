//! The Muon update of a weight matrix: Nesterov momentum, orthogonalised by five quintic
//! Newton–Schulz iterations, in place.
//!
//! The arithmetic follows PyTorch's `torch.optim.Muon` (2.9): `buf ← m·buf + (1−m)·g`, the
//! Nesterov update `u = (1−m)·g + m·buf`, `X = u / max(‖u‖_F, 1e-7)`, then five times
//! `A = X·Xᵀ`, `X ← a·X + (b·A + c·A·A)·X` with (a, b, c) = (3.4445, −4.7750, 2.0315) on the
//! orientation whose Gram matrix is the smaller, and `p ← p·(1 − lr·wd) − lr·√max(1, out/in)·X`.
//! PyTorch runs the iterations in bfloat16 on a GPU; here they run in f32. With
//! [`Orthogonalizer::PolarExpress`] each of the five steps has its own (a, b, c), chosen so
//! that the singular values end nearer 1 in the same number of products.
//!
//! Weights are stored as Burn's `Linear` stores them, `[d_in, d_out]` row-major, so "out/in"
//! is `cols/rows` (PyTorch's `[out, in]` has it as rows/cols). A matrix whose columns are
//! several weights side by side (a fused query/key/value projection) is orthogonalised one
//! column block at a time, as if each were its own matrix.
//!
//! Products are split into fixed 32-row tasks, each one single-threaded `gemm` call, so the
//! result does not depend on the number of threads. The two symmetric products of each
//! iteration (`X·Xᵀ` and `A·A`) compute their upper triangle only.

use rayon::prelude::*;

use crate::bf16::{Operand, matmul_bf16};
use crate::matmul::{View, matmul};

/// Coefficients of the quintic Newton–Schulz iteration (Keller Jordan's, as in PyTorch).
pub const NS_COEFFICIENTS: (f32, f32, f32) = (3.4445, -4.7750, 2.0315);
/// Newton–Schulz iterations per update.
pub const NS_STEPS: usize = 5;
/// Polar Express's coefficients for five steps, one triple a step (Amsel, Persson, Musco and
/// Gower 2025, "The Polar Express", for singular values in [0.001, 1] with their safety factor
/// 1.01; the values modded-nanogpt and nanochat run).
pub const POLAR_EXPRESS_COEFFICIENTS: [(f32, f32, f32); NS_STEPS] = [
    (8.156_554, -22.483_293, 15.878_77),
    (4.042_93, -2.808_917_5, 0.500_017_8),
    (3.891_667_8, -2.772_484_2, 0.506_064_8),
    (3.285_753_7, -2.368_129_5, 0.464_490_24),
    (2.346_541_4, -1.709_782_8, 0.423_235_5),
];

/// How the momentum is orthogonalised: five odd quintic polynomial steps
/// `X ← a·X + (b·A + c·A·A)·X`, `A = X·Xᵀ`, after dividing by the Frobenius norm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Orthogonalizer {
    /// The same (a, b, c) each step ([`NS_COEFFICIENTS`]): singular values end between about
    /// 0.7 and 1.2.
    #[default]
    Quintic,
    /// A triple per step, each the best for the interval the previous step leaves
    /// ([`POLAR_EXPRESS_COEFFICIENTS`]): singular values end nearer 1 (on a test matrix
    /// rms(σ² − 1) 0.17 against the quintic's 0.35, `tests/muon.rs`). The norm is taken
    /// 2% larger first (as modded-nanogpt and nanochat do), so that rounding cannot leave a
    /// singular value above 1, where the first step's large coefficients would blow it up.
    PolarExpress,
}

impl Orthogonalizer {
    /// The coefficients of each step.
    pub fn coefficients(self) -> [(f32, f32, f32); NS_STEPS] {
        match self {
            Orthogonalizer::Quintic => [NS_COEFFICIENTS; NS_STEPS],
            Orthogonalizer::PolarExpress => POLAR_EXPRESS_COEFFICIENTS,
        }
    }

    /// What the Frobenius norm is multiplied by before dividing by it.
    pub fn norm_margin(self) -> f32 {
        match self {
            Orthogonalizer::Quintic => 1.0,
            Orthogonalizer::PolarExpress => 1.02,
        }
    }
}

/// Rows of a product per rayon task.
const ROWS: usize = 32;

/// The scalars of one Muon update.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MuonScalars {
    /// Multiplies the gradient first (the clipping factor; 1 when not clipping).
    pub grad_scale: f32,
    /// Momentum of this step.
    pub momentum: f32,
    /// Learning rate of this step (before the shape factor).
    pub lr: f32,
    /// Decoupled weight decay.
    pub weight_decay: f32,
    /// Newton–Schulz products with bfloat16 operands ([`orthogonalize`]).
    pub bf16_products: bool,
    /// Decay of the per-neuron second moment (NorMuon, module docs); 0: plain Muon.
    pub beta2: f32,
    /// The orthogonalisation's polynomial steps.
    pub orthogonalizer: Orthogonalizer,
}

/// Length of the per-neuron second moment [`muon_update`] keeps for a `rows × cols` weight
/// of `blocks` matrices side by side (0 without NorMuon): one value per neuron of each.
pub fn neurons(rows: usize, cols: usize, blocks: usize) -> usize {
    blocks * rows.max(cols / blocks.max(1))
}

/// NorMuon's step on one orthogonalised `rows × width` block `o` (row-major) with its
/// neurons' second moment `v`: per column when `width ≥ rows`, else per row. One pass sums
/// each neuron's squares (in f64, in a fixed order), one scales: the norm after the division
/// follows from those sums, so the rescaling to the norm before folds into the same pass.
/// The first version (an index chosen per element, a third pass for the norm after) cost 5–6%
/// of a gutenberg-small step in 100-step probes on an AMX Xeon; this one nothing measurable.
fn normalize(o: &mut [f32], v: &mut [f32], rows: usize, width: usize, beta2: f32) {
    let per_col = width >= rows;
    let mut ms = vec![0.0f64; v.len()];
    for (i, row) in o.chunks_exact(width).enumerate() {
        if per_col {
            ms.iter_mut()
                .zip(row)
                .for_each(|(m, &x)| *m += f64::from(x) * f64::from(x));
        } else {
            ms[i] = row.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
        }
    }
    let count = if per_col { rows } else { width } as f64;
    let (mut before, mut after) = (0.0f64, 0.0f64);
    let mut scale: Vec<f32> = v
        .iter_mut()
        .zip(&ms)
        .map(|(v, &m)| {
            *v = beta2 * *v + (1.0 - beta2) * (m / count) as f32;
            let s = 1.0 / v.max(1e-10).sqrt();
            before += m;
            after += m * f64::from(s) * f64::from(s);
            s
        })
        .collect();
    let keep = (before.sqrt() / after.sqrt().max(1e-10)) as f32;
    scale.iter_mut().for_each(|s| *s *= keep);
    for (i, row) in o.chunks_exact_mut(width).enumerate() {
        if per_col {
            row.iter_mut().zip(&scale).for_each(|(x, s)| *x *= s);
        } else {
            row.iter_mut().for_each(|x| *x *= scale[i]);
        }
    }
}

/// `dst = scale·lhs·rhs` (or `+=` with `accumulate`), `dst` row-major `[lhs.rows, rhs.cols]`,
/// in 32-row tasks.
fn par_matmul(dst: &mut [f32], lhs: View, rhs: View, scale: f32, accumulate: bool) {
    let n = rhs.cols();
    dst.par_chunks_mut(ROWS * n).enumerate().for_each(|(i, d)| {
        let rows = d.len() / n;
        matmul(d, n, lhs.row_range(i * ROWS, rows), rhs, scale, accumulate);
    });
}

/// `dst = scale·lhs·rhs` for a product known to be symmetric (`X·Xᵀ`, `A·A` with `A`
/// symmetric), `dst` row-major `[m, m]`: each 32-row task computes its rows from the diagonal
/// on, and the lower triangle is copied from the upper, which saves nearly half the products
/// (100-step gutenberg-small probes: +6% tokens/s, the same weights bit for bit).
fn par_matmul_symmetric(dst: &mut [f32], lhs: View, rhs: View, scale: f32) {
    let m = rhs.cols();
    dst.par_chunks_mut(ROWS * m).enumerate().for_each(|(i, d)| {
        let (rows, from) = (d.len() / m, i * ROWS);
        let right = rhs.col_range(from, m - from);
        matmul(
            &mut d[from..],
            m,
            lhs.row_range(from, rows),
            right,
            scale,
            false,
        );
    });
    for i in 1..m {
        for j in 0..i {
            dst[i * m + j] = dst[j * m + i];
        }
    }
}

/// Orthogonalises the row-major `rows × cols` matrix `x` in place with `method`'s
/// [`NS_STEPS`] polynomial steps after scaling it to unit Frobenius norm (times the method's
/// margin): its singular vectors unchanged, its singular values near 1 (between about 0.7 and
/// 1.2 with the quintic). With `bf16` every product's operands are rounded to bfloat16 and its
/// sums kept in f32 (`crate::matmul_bf16`), as PyTorch runs the iterations on a GPU (there in
/// bfloat16 throughout); the products are then computed whole: `X·Xᵀ` and `A·A` come out
/// symmetric bit for bit, since entry (i, j) and (j, i) sum the same products in the same order.
pub fn orthogonalize(x: &mut [f32], rows: usize, cols: usize, method: Orthogonalizer, bf16: bool) {
    assert_eq!(x.len(), rows * cols, "orthogonalize: {rows}×{cols} matrix");
    if rows == 0 || cols == 0 {
        return;
    }
    // Work on the orientation with the smaller Gram matrix: [m, n] with m ≤ n.
    let tall = rows > cols;
    let (m, n) = if tall { (cols, rows) } else { (rows, cols) };
    let mut w: Vec<f32> = if tall {
        transpose(x, rows, cols)
    } else {
        x.to_vec()
    };
    let norm = w
        .iter()
        .map(|v| f64::from(*v) * f64::from(*v))
        .sum::<f64>()
        .sqrt();
    let inv = (1.0 / (norm * f64::from(method.norm_margin())).max(1e-7)) as f32;
    w.iter_mut().for_each(|v| *v *= inv);
    let (mut gram, mut poly, mut next) = (vec![0.0; m * m], vec![0.0; m * m], vec![0.0; m * n]);
    for (a, b, c) in method.coefficients() {
        // poly = b·A + c·A·A with A = X·Xᵀ
        if bf16 {
            let wv = Operand::new(&w, m, n);
            matmul_bf16(&mut gram, wv, wv.t(), false);
            let gv = Operand::new(&gram, m, m);
            matmul_bf16(&mut poly, gv, gv, false);
            poly.iter_mut()
                .zip(&gram)
                .for_each(|(p, g)| *p = c * *p + b * g);
        } else {
            let wv = View::rows(&w, m, n);
            par_matmul_symmetric(&mut gram, wv, wv.t(), 1.0);
            let gv = View::rows(&gram, m, m);
            par_matmul_symmetric(&mut poly, gv, gv, c);
            poly.iter_mut().zip(&gram).for_each(|(p, g)| *p += b * g);
        }
        // next = a·X + poly·X
        next.iter_mut().zip(&w).for_each(|(o, v)| *o = a * v);
        if bf16 {
            let (pv, wv) = (Operand::new(&poly, m, m), Operand::new(&w, m, n));
            matmul_bf16(&mut next, pv, wv, true);
        } else {
            par_matmul(
                &mut next,
                View::rows(&poly, m, m),
                View::rows(&w, m, n),
                1.0,
                true,
            );
        }
        std::mem::swap(&mut w, &mut next);
    }
    if tall {
        x.copy_from_slice(&transpose(&w, m, n));
    } else {
        x.copy_from_slice(&w);
    }
}

fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; x.len()];
    for i in 0..rows {
        for j in 0..cols {
            t[j * rows + i] = x[i * cols + j];
        }
    }
    t
}

/// One Muon update of the row-major `rows × cols` weight `param` (Burn's `[d_in, d_out]`)
/// from `grad`, with momentum buffer `buf` and, with `s.beta2 > 0`, NorMuon's per-neuron
/// second moment `second` ([`neurons`] long; empty otherwise) — both zeros before the first
/// update — in place. The columns split into `blocks` equal blocks, each orthogonalised (and
/// normalised) as its own matrix.
///
/// # Panics
/// If the lengths disagree with `rows × cols` or `blocks` does not divide `cols`.
#[allow(clippy::too_many_arguments)]
pub fn muon_update(
    s: &MuonScalars,
    param: &mut [f32],
    grad: &[f32],
    buf: &mut [f32],
    second: &mut [f32],
    rows: usize,
    cols: usize,
    blocks: usize,
) {
    let len = rows * cols;
    assert!(
        param.len() == len && grad.len() == len && buf.len() == len,
        "muon_update: {rows}×{cols} weight, lengths {} {} {}",
        param.len(),
        grad.len(),
        buf.len()
    );
    assert!(
        blocks >= 1 && cols.is_multiple_of(blocks),
        "muon_update: {blocks} blocks of {cols} columns"
    );
    let moments = if s.beta2 > 0.0 {
        neurons(rows, cols, blocks)
    } else {
        0
    };
    assert_eq!(
        second.len(),
        moments,
        "muon_update: second moment of {} for {rows}×{cols} in {blocks} blocks",
        second.len()
    );
    let m = s.momentum;
    // buf ← m·buf + (1−m)·g;  u = (1−m)·g + m·buf (Nesterov), gathered block by block.
    let width = cols / blocks;
    let mut u = vec![0.0f32; len];
    for i in 0..rows {
        for j in 0..cols {
            let k = i * cols + j;
            let g = grad[k] * s.grad_scale;
            buf[k] = m * buf[k] + (1.0 - m) * g;
            u[(j / width) * rows * width + i * width + j % width] = (1.0 - m) * g + m * buf[k];
        }
    }
    let decay = 1.0 - s.lr * s.weight_decay;
    let step = s.lr * (width as f32 / rows as f32).max(1.0).sqrt();
    let orthogonalise =
        |x: &mut [f32], r, c| orthogonalize(x, r, c, s.orthogonalizer, s.bf16_products);
    if moments == 0 {
        u.par_chunks_mut(rows * width)
            .for_each(|block| orthogonalise(block, rows, width));
    } else {
        u.par_chunks_mut(rows * width)
            .zip(second.par_chunks_mut(moments / blocks))
            .for_each(|(block, v)| {
                orthogonalise(block, rows, width);
                normalize(block, v, rows, width, s.beta2);
            });
    }
    for i in 0..rows {
        for j in 0..cols {
            let k = i * cols + j;
            let o = u[(j / width) * rows * width + i * width + j % width];
            param[k] = param[k] * decay - step * o;
        }
    }
}
