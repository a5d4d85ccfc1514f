//! The AdamW update as one pass on the CPU backend (`ember_kernels::adamw_update`, in place),
//! through Burn's backend-extension API; other devices compose it from tensor operations.
//!
//! Composed, the update is about a dozen element-wise operations per parameter, each a pass
//! over memory with a fresh allocation. The fused kernel does the same arithmetic in the same
//! order in f32, so both paths give the same bits (test `fused_adamw_matches_composed`).

use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, backend_extension};
use burn::prelude::*;
use ember_kernels::AdamWScalars;
use ember_model::fused::whole;

/// The fused update, implemented for the CPU backend (parameters and moments are plain,
/// non-autodiff tensors when the optimizer runs).
#[backend_extension(Flex)]
pub trait CpuAdamW: Backend {
    /// `(param, m, v)` after one update from `grad`; all four are the same length.
    fn fused_adamw(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        m: FloatTensor<Self>,
        v: FloatTensor<Self>,
        s: AdamWScalars,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

impl CpuAdamW for Flex {
    fn fused_adamw(
        param: FlexTensor,
        grad: FlexTensor,
        m: FlexTensor,
        v: FlexTensor,
        s: AdamWScalars,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let [mut param, mut m, mut v] = [param, m, v].map(whole);
        let grad = grad.to_contiguous();
        let g = match grad.as_slice::<f32>() {
            Some(g) => g,
            None => panic!("fused AdamW: expected an f32 gradient, got {grad:?}"),
        };
        // `storage_mut` writes in place when the buffer is not shared and copies it once
        // otherwise, so the caller's tensors are never changed behind its back.
        ember_kernels::adamw_update(
            &s,
            param.storage_mut::<f32>(),
            g,
            m.storage_mut::<f32>(),
            v.storage_mut::<f32>(),
        );
        (param, m, v)
    }
}

/// One update of a flattened parameter: `(param, m, v)` after it. `moments` are `None` on the
/// first update (taken as zero). Fused on the CPU backend, composed elsewhere.
pub fn adamw_step(
    param: Tensor<1>,
    grad: Tensor<1>,
    moments: Option<(Tensor<1>, Tensor<1>)>,
    s: AdamWScalars,
) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
    if ember_model::ops::fused_here(&param) {
        let (m, v, first) = match moments {
            Some((m, v)) => (m, v, false),
            None => (param.zeros_like(), param.zeros_like(), true),
        };
        let s = AdamWScalars { first, ..s };
        let (p, m, v) = <Dispatch as CpuAdamW>::fused_adamw(
            param.into_dispatch(),
            grad.into_dispatch(),
            m.into_dispatch(),
            v.into_dispatch(),
            s,
        );
        (
            Tensor::from_dispatch(p),
            Tensor::from_dispatch(m),
            Tensor::from_dispatch(v),
        )
    } else {
        composed_adamw_step(param, grad, moments, s)
    }
}

/// The same update from Burn's tensor operations (every device).
pub fn composed_adamw_step(
    param: Tensor<1>,
    grad: Tensor<1>,
    moments: Option<(Tensor<1>, Tensor<1>)>,
    s: AdamWScalars,
) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
    let g = if s.grad_scale != 1.0 {
        grad.mul_scalar(s.grad_scale)
    } else {
        grad
    };
    let (m, v) = match moments {
        Some((m, v)) => (
            m.mul_scalar(s.beta1) + g.clone().mul_scalar(s.one_minus_beta1),
            v.mul_scalar(s.beta2) + g.square().mul_scalar(s.one_minus_beta2),
        ),
        None => (
            g.clone().mul_scalar(s.one_minus_beta1),
            g.square().mul_scalar(s.one_minus_beta2),
        ),
    };
    let p = if s.decay != 1.0 {
        param.mul_scalar(s.decay)
    } else {
        param
    };
    let denom = v.clone().sqrt().div_scalar(s.sqrt_bc2).add_scalar(s.eps);
    let p = p - (m.clone() / denom).mul_scalar(s.step_size);
    (p, m, v)
}
