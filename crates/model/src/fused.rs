//! Fused CPU operations as a Burn backend extension: softmax cross-entropy and GELU.
//!
//! On the CPU (flex) backend the composed `log_softmax` + `gather` made ~15 passes over the
//! `[positions, vocab]` logits per step, with a scalar `exp`: as much time as the output
//! layer's matrix product (benches/RESULTS.md, "CPU speed"). Here the forward is one
//! `ember_kernels::nll_forward` call and the backward one `nll_backward` call, wired into
//! Burn's autodiff graph with a hand-written backward step (Burn's extension macro routes the
//! call; it does not derive gradients).
//!
//! GELU: Burn's CPU backend evaluates its `erf` one element at a time; `ember_kernels`
//! vectorises it (forward and backward).
//!
//! Other devices (WGPU) keep Burn's operations, which their own kernels fuse.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, Backend, DType, Dispatch, Flex, backend_extension};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;

/// The fused operations, implemented for the CPU backend with and without autodiff.
#[backend_extension(Flex, Autodiff)]
pub trait CpuFused: Backend {
    /// Per-row negative log-likelihood of the target under a softmax over the last
    /// dimension: `logits [rows, vocab]`, `targets [rows]` → `nll [rows]`.
    fn nll_rows(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self>;
    /// Exact (erf) GELU, element-wise, any shape.
    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// GELU (erf form): fused on the CPU backend, Burn's `gelu` elsewhere; any shape.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if x.device() == Device::flex() && x.dtype() == DType::F32 {
        Tensor::from_dispatch(<Dispatch as CpuFused>::fused_gelu(x.into_dispatch()))
    } else {
        burn::tensor::activation::gelu(x)
    }
}

/// `-log softmax(logits)[target]` per row: `logits [rows, vocab]`, `targets [rows]` →
/// `[rows]`. Fused on the CPU backend (with or without autodiff), composed elsewhere; both
/// agree to float rounding (test `fused_nll_matches_log_softmax`).
pub fn nll_rows(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    if is_fused(&logits) {
        let out = <Dispatch as CpuFused>::nll_rows(logits.into_dispatch(), targets.into_dispatch());
        Tensor::from_dispatch(out)
    } else {
        composed_nll_rows(logits, targets)
    }
}

/// Whether [`nll_rows`] takes the fused path for these logits (f32 on the CPU backend).
pub fn is_fused(logits: &Tensor<2>) -> bool {
    logits.device() == Device::flex() && logits.dtype() == DType::F32
}

/// The reference path: Burn's `log_softmax` and `gather`.
pub fn composed_nll_rows(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let [rows, _] = logits.dims();
    log_softmax(logits, 1)
        .gather(1, targets.reshape([rows, 1]))
        .reshape([rows])
        .neg()
}

impl CpuFused for Flex {
    fn nll_rows(logits: FlexTensor, targets: FlexTensor) -> FlexTensor {
        forward(&logits, &targets).0
    }

    fn fused_gelu(x: FlexTensor) -> FlexTensor {
        let x = contiguous(&x);
        let mut out = vec![0.0f32; x.layout().shape().num_elements()];
        ember_kernels::gelu_forward(f32s(&x), &mut out);
        to_flex(out, x.layout().shape().to_vec())
    }
}

/// GELU's backward step keeps its input.
#[derive(Debug)]
struct GeluBackward;

impl Backward<Flex, 1> for GeluBackward {
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let x = contiguous(&ops.state);
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
            let grad = contiguous(&grad);
            let mut out = vec![0.0f32; x.layout().shape().num_elements()];
            ember_kernels::gelu_backward(f32s(&x), f32s(&grad), &mut out);
            to_flex(out, x.layout().shape().to_vec())
        });
    }
}

/// The backward step's saved state: the logits, the targets and each row's log-sum-exp.
#[derive(Debug)]
struct NllBackward;

impl Backward<Flex, 1> for NllBackward {
    type State = (FlexTensor, FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (logits, targets, lse) = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
            backward(&logits, &targets, &lse, &grad)
        });
    }
}

impl<C: CheckpointStrategy> CpuFused for Autodiff<Flex, C> {
    fn nll_rows(logits: FloatTensor<Self>, targets: IntTensor<Self>) -> FloatTensor<Self> {
        // Compute-bound: the saved logits are kept, not recomputed, under checkpointing.
        let prep = NllBackward
            .prepare::<C>([logits.node()])
            .compute_bound()
            .stateful();
        let (nll, lse) = forward(logits.primitive(), &targets);
        match prep {
            OpsKind::Tracked(prep) => prep.finish((logits.into_primitive(), targets, lse), nll),
            OpsKind::UnTracked(prep) => prep.finish(nll),
        }
    }

    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let prep = GeluBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful();
        let y = <Flex as CpuFused>::fused_gelu(x.primitive().clone());
        match prep {
            OpsKind::Tracked(prep) => prep.finish(x.into_primitive(), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}

/// `(nll [rows], lse [rows])`.
fn forward(logits: &FlexTensor, targets: &FlexTensor) -> (FlexTensor, FlexTensor) {
    let (rows, vocab) = rows_vocab(logits);
    let logits = contiguous(logits);
    let targets = target_ids(targets);
    let (mut nll, mut lse) = (vec![0.0f32; rows], vec![0.0f32; rows]);
    ember_kernels::nll_forward(f32s(&logits), vocab, &targets, &mut nll, &mut lse);
    (to_flex(nll, vec![rows]), to_flex(lse, vec![rows]))
}

fn backward(
    logits: &FlexTensor,
    targets: &FlexTensor,
    lse: &FlexTensor,
    grad: &FlexTensor,
) -> FlexTensor {
    let (rows, vocab) = rows_vocab(logits);
    let (logits, lse, grad) = (contiguous(logits), contiguous(lse), contiguous(grad));
    let targets = target_ids(targets);
    let mut out = vec![0.0f32; rows * vocab];
    ember_kernels::nll_backward(
        f32s(&logits),
        vocab,
        &targets,
        f32s(&lse),
        f32s(&grad),
        &mut out,
    );
    to_flex(out, vec![rows, vocab])
}

fn rows_vocab(logits: &FlexTensor) -> (usize, usize) {
    match logits.layout().shape().as_slice() {
        &[rows, vocab] => (rows, vocab),
        other => panic!("nll_rows expects [rows, vocab] logits, got shape {other:?}"),
    }
}

fn contiguous(t: &FlexTensor) -> FlexTensor {
    if t.is_contiguous() {
        t.clone()
    } else {
        t.to_contiguous()
    }
}

fn f32s(t: &FlexTensor) -> &[f32] {
    match t.as_slice::<f32>() {
        Some(s) => s,
        None => panic!("fused nll: expected a contiguous f32 tensor, got {t:?}"),
    }
}

/// Token ids as `u32`; anything that is not a valid id becomes `u32::MAX`, which the kernel
/// turns into a NaN loss (caught by the training loop's guard) instead of a panic.
fn target_ids(t: &FlexTensor) -> Vec<u32> {
    let t = contiguous(t);
    match t.dtype() {
        DType::I32 => t
            .as_slice::<i32>()
            .unwrap_or(&[])
            .iter()
            .map(|&x| u32::try_from(x).unwrap_or(u32::MAX))
            .collect(),
        DType::I64 => t
            .as_slice::<i64>()
            .unwrap_or(&[])
            .iter()
            .map(|&x| u32::try_from(x).unwrap_or(u32::MAX))
            .collect(),
        other => panic!("fused nll: targets must be I32 or I64, got {other:?}"),
    }
}

fn to_flex(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}
