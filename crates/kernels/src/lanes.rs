//! Row reductions in eight running lanes, combined in a fixed order: the compiler vectorises
//! them, and the result does not depend on the vector width or the thread count.

pub(crate) const LANES: usize = 8;

/// Largest element (NaN elements are skipped; an empty row gives −∞).
#[inline(always)]
pub(crate) fn max(row: &[f32]) -> f32 {
    let (chunks, tail) = row.as_chunks::<LANES>();
    let mut m = [f32::NEG_INFINITY; LANES];
    for c in chunks {
        for k in 0..LANES {
            m[k] = if c[k] > m[k] { c[k] } else { m[k] };
        }
    }
    let mut acc = m[0];
    for &x in m[1..].iter().chain(tail) {
        acc = if x > acc { x } else { acc };
    }
    acc
}

/// Sum of the elements.
#[inline(always)]
pub(crate) fn sum(row: &[f32]) -> f32 {
    let (chunks, tail) = row.as_chunks::<LANES>();
    let mut s = [0.0f32; LANES];
    for c in chunks {
        for k in 0..LANES {
            s[k] += c[k];
        }
    }
    tail.iter().fold(fold(s), |a, &x| a + x)
}

/// Σ a·b.
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let (ca, ta) = a.as_chunks::<LANES>();
    let (cb, tb) = b[..a.len()].as_chunks::<LANES>();
    let mut s = [0.0f32; LANES];
    for (x, y) in ca.iter().zip(cb) {
        for k in 0..LANES {
            s[k] += x[k] * y[k];
        }
    }
    ta.iter().zip(tb).fold(fold(s), |acc, (x, y)| acc + x * y)
}

/// Pairwise, in a fixed order.
#[inline(always)]
pub(crate) fn fold(s: [f32; LANES]) -> f32 {
    let a = [s[0] + s[4], s[1] + s[5], s[2] + s[6], s[3] + s[7]];
    (a[0] + a[2]) + (a[1] + a[3])
}
