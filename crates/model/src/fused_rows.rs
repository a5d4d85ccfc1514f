//! The linear layers of a decoding step on the CPU as a Burn backend extension: a few rows
//! (one per sequence being generated) times a weight, with `ember_kernels::rows_times`, which
//! reads the weight once for all rows instead of packing it as Burn's product does for two
//! rows or more. Inference only (no autodiff); `crate::ops` decides when.

use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, backend_extension};
use burn::prelude::*;

use crate::fused::{f32s, to_flex};

/// Few-row products, implemented for the CPU backend without autodiff.
#[backend_extension(Flex)]
pub trait CpuRows: Backend {
    /// `x [m, k] · w [k, n]`, or with `transposed` `x [m, k] · wᵀ` for `w [n, k]`;
    /// `m ≤ ember_kernels::MAX_ROWS`.
    fn rows_product(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        transposed: bool,
    ) -> FloatTensor<Self>;
}

impl CpuRows for Flex {
    fn rows_product(x: FlexTensor, w: FlexTensor, transposed: bool) -> FlexTensor {
        let (x, w) = (x.to_contiguous(), w.to_contiguous());
        let (&[m, k], &[a, b]) = (x.layout().shape().as_slice(), w.layout().shape().as_slice())
        else {
            panic!("rows_product: expected 2-D operands, got {x:?} and {w:?}");
        };
        let n = if transposed { a } else { b };
        assert_eq!(
            if transposed { b } else { a },
            k,
            "rows_product: inner sizes differ"
        );
        let mut out = vec![0.0f32; m * n];
        let kernel = if transposed {
            ember_kernels::rows_times_t
        } else {
            ember_kernels::rows_times
        };
        kernel(f32s(&x), m, f32s(&w), k, n, &mut out);
        to_flex(out, vec![m, n])
    }
}

/// `x [m, k] · w` (or `· wᵀ` with `transposed`) with the kernel; `crate::ops::linear` decides
/// when.
pub fn rows_product(x: Tensor<2>, w: Tensor<2>, transposed: bool) -> Tensor<2> {
    let y = <Dispatch as CpuRows>::rows_product(x.into_dispatch(), w.into_dispatch(), transposed);
    Tensor::from_dispatch(y)
}
