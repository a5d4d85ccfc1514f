//! A bounds-checked front to the `gemm` crate (the matrix-product kernel Burn's CPU backend
//! uses), for the small per-head products inside the fused attention.

use gemm::{Parallelism, gemm};

/// A read-only strided matrix: element `(i, j)` is `data[i * rs + j * cs]`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct View<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> View<'a> {
    /// Row-major `rows × cols` at the start of `data`.
    pub(crate) fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::strided(data, rows, cols, cols, 1)
    }

    /// Any strides; panics if an element would fall outside `data`.
    pub(crate) fn strided(data: &'a [f32], rows: usize, cols: usize, rs: usize, cs: usize) -> Self {
        assert!(
            fits(data.len(), rows, cols, rs, cs),
            "matrix view out of bounds"
        );
        View {
            data,
            rows,
            cols,
            rs,
            cs,
        }
    }

    /// Columns.
    pub(crate) fn cols(&self) -> usize {
        self.cols
    }

    /// Rows `start..start + n`, without copying.
    pub(crate) fn row_range(self, start: usize, n: usize) -> Self {
        assert!(start + n <= self.rows, "row range out of bounds");
        View {
            rows: n,
            ..self.from(start * self.rs, n)
        }
    }

    /// Columns `start..start + n`, without copying.
    pub(crate) fn col_range(self, start: usize, n: usize) -> Self {
        assert!(start + n <= self.cols, "column range out of bounds");
        View {
            cols: n,
            ..self.from(start * self.cs, n)
        }
    }

    /// The view starting `offset` elements in (empty data when `n`, the kept extent, is 0).
    fn from(self, offset: usize, n: usize) -> Self {
        View {
            data: if n == 0 {
                &self.data[..0]
            } else {
                &self.data[offset..]
            },
            ..self
        }
    }

    /// The transpose, without copying.
    pub(crate) fn t(self) -> Self {
        View {
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
            ..self
        }
    }
}

fn fits(len: usize, rows: usize, cols: usize, rs: usize, cs: usize) -> bool {
    rows == 0 || cols == 0 || (rows - 1) * rs + (cols - 1) * cs < len
}

/// `dst = scale · lhs · rhs`, or `dst += scale · lhs · rhs` with `accumulate`; `dst` is
/// row-major with row stride `ld`. Runs on the calling thread (callers parallelise over heads).
///
/// # Panics
/// If the shapes disagree or a matrix does not fit its slice.
pub(crate) fn matmul(
    dst: &mut [f32],
    ld: usize,
    lhs: View,
    rhs: View,
    scale: f32,
    accumulate: bool,
) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(rhs.rows, k, "inner dimensions differ");
    assert!(
        ld >= n && fits(dst.len(), m, n, ld, 1),
        "destination out of bounds"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for i in 0..m {
                dst[i * ld..i * ld + n].fill(0.0);
            }
        }
        return;
    }
    // SAFETY: `gemm` reads lhs at i·rs + j·cs for i < m, j < k, rhs likewise for k × n, and
    // reads/writes dst at i·ld + j for i < m, j < n; `fits` checked every such index against
    // the slice lengths above. `dst` is a unique borrow, so it aliases neither operand, and
    // `Parallelism::None` keeps all accesses on this thread for the duration of the call.
    #[allow(unsafe_code)]
    unsafe {
        gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            ld as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.cs as isize,
            lhs.rs as isize,
            rhs.data.as_ptr(),
            rhs.cs as isize,
            rhs.rs as isize,
            1.0,
            scale,
            false,
            false,
            false,
            Parallelism::None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: View, b: View) -> Vec<f32> {
        let mut out = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                out[i * b.cols + j] = (0..a.cols)
                    .map(|p| a.data[i * a.rs + p * a.cs] * b.data[p * b.rs + j * b.cs])
                    .sum();
            }
        }
        out
    }

    #[test]
    fn strided_products_match_the_definition() {
        let a: Vec<f32> = (0..35).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..35).map(|i| (i % 6) as f32 - 2.0).collect();
        let (av, bv) = (View::rows(&a, 5, 7), View::rows(&b, 5, 7).t()); // [5×7]·[7×5]
        let mut out = vec![0.0; 25];
        matmul(&mut out, 5, av, bv, 2.0, false);
        let want: Vec<f32> = naive(av, bv).iter().map(|x| 2.0 * x).collect();
        assert_eq!(out, want);
        matmul(&mut out, 5, av, bv, 1.0, true);
        let want3: Vec<f32> = want.iter().map(|x| 1.5 * x).collect();
        assert_eq!(out, want3);
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn a_view_past_its_slice_is_refused() {
        let a = [0.0f32; 10];
        let _ = View::rows(&a, 3, 4);
    }
}
