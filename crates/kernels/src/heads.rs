//! Moving attention heads between the projection layout and the per-head layout, one pass
//! each way.
//!
//! The query/key/value projection produces `[batch, seq, 3·d]` rows; the attention kernels
//! work on `[batch·heads, seq, head_dim]`. Done with tensor operations (slice, reshape,
//! transpose, make contiguous, and in the backward zero-padded slice gradients summed) this
//! costs some ten passes over `[batch, seq, 3·d]` per layer; these two functions are one
//! pass each. Rotary position embeddings ([`rope_in_place`]) act on the split heads.

use rayon::prelude::*;

/// Sizes of a `[batch, seq, ·]` row tensor split into `heads` heads of `head_dim`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadLayout {
    /// Batch rows.
    pub batch: usize,
    /// Positions per row.
    pub seq: usize,
    /// Heads.
    pub heads: usize,
    /// Width of one head.
    pub head_dim: usize,
}

impl HeadLayout {
    fn width(&self) -> usize {
        self.heads * self.head_dim
    }

    fn check(&self, rows: usize, stride: usize, offset: usize, heads: usize) {
        assert!(
            offset + self.width() <= stride,
            "heads: columns {offset}..{} do not fit rows of {stride}",
            offset + self.width()
        );
        assert_eq!(
            rows,
            self.batch * self.seq * stride,
            "heads: row tensor must be [batch, seq, {stride}]"
        );
        assert_eq!(
            heads,
            self.batch * self.seq * self.width(),
            "heads: head tensor must be [batch·heads, seq, head_dim]"
        );
    }
}

/// `dst[b·heads + h, t, :] = src[b, t, offset + h·head_dim ..][..head_dim]`, where `src` rows
/// are `stride` wide.
///
/// # Panics
/// If the sizes disagree.
pub fn rows_to_heads(l: HeadLayout, src: &[f32], stride: usize, offset: usize, dst: &mut [f32]) {
    l.check(src.len(), stride, offset, dst.len());
    let (t, hd) = (l.seq, l.head_dim);
    if dst.is_empty() {
        return;
    }
    dst.par_chunks_mut(t * hd)
        .enumerate()
        .for_each(|(bh, out)| {
            let (b, h) = (bh / l.heads, bh % l.heads);
            for (i, row) in out.chunks_mut(hd).enumerate() {
                let at = (b * t + i) * stride + offset + h * hd;
                row.copy_from_slice(&src[at..at + hd]);
            }
        });
}

/// The inverse of [`rows_to_heads`]: writes columns `offset..offset + heads·head_dim` of every
/// row of `dst` (rows `stride` wide) from `src` `[batch·heads, seq, head_dim]`; other columns
/// are left as they are.
///
/// # Panics
/// If the sizes disagree.
pub fn heads_to_rows(l: HeadLayout, src: &[f32], dst: &mut [f32], stride: usize, offset: usize) {
    l.check(dst.len(), stride, offset, src.len());
    let (t, hd) = (l.seq, l.head_dim);
    if src.is_empty() {
        return;
    }
    dst.par_chunks_mut(t * stride)
        .enumerate()
        .for_each(|(b, rows)| {
            for (i, row) in rows.chunks_mut(stride).enumerate() {
                for h in 0..l.heads {
                    let from = ((b * l.heads + h) * t + i) * hd;
                    let to = offset + h * hd;
                    row[to..to + hd].copy_from_slice(&src[from..from + hd]);
                }
            }
        });
}

/// Rotary position embedding, in place, on `x [n, seq, head_dim]` (positions `0..seq`), with
/// the table `freq [≥ seq, head_dim, 2]` of (cos, sin) per position and element — the layout
/// of Burn's `RotaryEncoding::freq_complex`, and its arithmetic: each pair `(a, b)` of
/// elements `2i, 2i+1` becomes `(a·c₀ + (−b)·s₀, b·c₁ + a·s₁)` with `(c₀, s₀)` the entry of
/// element `2i` and `(c₁, s₁)` that of `2i+1`. With `transpose` the rotation's transpose is
/// applied instead (the backward step: `(a·c₀ + b·s₁, (−a)·s₀ + b·c₁)`).
///
/// # Panics
/// If `head_dim` is odd or the sizes disagree.
pub fn rope_in_place(x: &mut [f32], seq: usize, head_dim: usize, freq: &[f32], transpose: bool) {
    assert!(
        head_dim.is_multiple_of(2),
        "rope: head_dim {head_dim} is odd"
    );
    assert!(
        freq.len() >= seq * head_dim * 2,
        "rope: the table covers {} positions, {seq} needed",
        freq.len() / (head_dim * 2).max(1)
    );
    assert!(
        seq * head_dim == 0 || x.len().is_multiple_of(seq * head_dim),
        "rope: x must be [n, seq, head_dim]"
    );
    if x.is_empty() {
        return;
    }
    x.par_chunks_mut(seq * head_dim).for_each(|head| {
        for (row, f) in head.chunks_mut(head_dim).zip(freq.chunks(head_dim * 2)) {
            rotate(row, f, transpose);
        }
    });
}

/// [`rope_in_place`] of one position's row `[head_dim]` with its table entry `[head_dim, 2]`.
#[inline]
pub(crate) fn rotate(row: &mut [f32], f: &[f32], transpose: bool) {
    for (pair, f) in row.chunks_exact_mut(2).zip(f.chunks_exact(4)) {
        let (a, b) = (pair[0], pair[1]);
        let (c0, s0, c1, s1) = (f[0], f[1], f[2], f[3]);
        if transpose {
            pair[0] = a * c0 + b * s1;
            pair[1] = (-a) * s0 + b * c1;
        } else {
            pair[0] = a * c0 + (-b) * s0;
            pair[1] = b * c1 + a * s1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_positions() {
        let l = HeadLayout {
            batch: 2,
            seq: 3,
            heads: 2,
            head_dim: 4,
        };
        let stride = 3 * l.width();
        let src: Vec<f32> = (0..l.batch * l.seq * stride).map(|i| i as f32).collect();
        let mut k = vec![0.0; l.batch * l.seq * l.width()];
        rows_to_heads(l, &src, stride, l.width(), &mut k);
        // Batch 1, head 1, position 2, element 3 of the key block.
        let (b, h, t, e) = (1, 1, 2, 3);
        assert_eq!(
            k[((b * l.heads + h) * l.seq + t) * l.head_dim + e],
            src[(b * l.seq + t) * stride + l.width() + h * l.head_dim + e]
        );
        let mut back = vec![-1.0; src.len()];
        heads_to_rows(l, &k, &mut back, stride, l.width());
        for (i, (&a, &b)) in back.iter().zip(&src).enumerate() {
            let col = i % stride;
            if (l.width()..2 * l.width()).contains(&col) {
                assert_eq!(a, b);
            } else {
                assert_eq!(a, -1.0, "column {col} outside the block was written");
            }
        }
    }

    #[test]
    fn rope_transpose_undoes_the_rotation() {
        let (seq, hd) = (5, 6);
        let freq: Vec<f32> = (0..seq * hd)
            .flat_map(|i| {
                let theta = (i / hd) as f32 * 0.3 / (1 + (i % hd) / 2) as f32;
                [theta.cos(), theta.sin()]
            })
            .collect();
        let x: Vec<f32> = (0..2 * seq * hd).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut y = x.clone();
        rope_in_place(&mut y, seq, hd, &freq, false);
        // Position 0 has angle 0: unchanged. Later positions rotate each pair by its angle.
        assert_eq!(&y[..hd], &x[..hd]);
        let (a, b, t) = (
            x[hd + 2],
            x[hd + 3],
            freq[(hd + 2) * 2 + 1].atan2(freq[(hd + 2) * 2]),
        );
        assert!((y[hd + 2] - (a * t.cos() - b * t.sin())).abs() < 1e-6);
        rope_in_place(&mut y, seq, hd, &freq, true);
        assert!(y.iter().zip(&x).all(|(a, b)| (a - b).abs() < 1e-6));
    }
}
