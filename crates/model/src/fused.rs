//! Fused CPU operations as a Burn backend extension: softmax cross-entropy, GELU, ReLU² and
//! causal self-attention.
//!
//! On the CPU (flex) backend the composed `log_softmax` + `gather` made ~15 passes over the
//! `[positions, vocab]` logits per step, with a scalar `exp`: as much time as the output
//! layer's matrix product (benches/RESULTS.md, "CPU speed"). Here the forward is one
//! `ember_kernels::nll_forward` call and the backward one `nll_backward` call, wired into
//! Burn's autodiff graph with a hand-written backward step (Burn's extension macro routes the
//! call; it does not derive gradients).
//!
//! GELU: Burn's CPU backend evaluates its `erf` one element at a time; `ember_kernels`
//! vectorises it (forward and backward). ReLU²: Burn composes `relu` and `x · x` and
//! differentiates both; the kernel makes one pass each way, with the composition's bits.
//!
//! Attention: under autodiff Burn runs its generic composition (a dozen passes over
//! `[batch, heads, seq, seq]` for the softmax alone, each differentiated); the kernel does the
//! per-head products with `gemm` on the causal part only and one pass per row for the softmax
//! and its gradient. Without autodiff (evaluation, generation) Burn's CPU backend already has
//! a fused attention, which is kept.
//!
//! The functions here always take the kernels; `crate::ops` decides when they run (CPU, f32,
//! kernels on) and calls Burn's operations otherwise.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, Backend, DType, Dispatch, Flex, backend_extension};
use burn::prelude::*;
use ember_kernels::AttnShape;

use crate::Visibility;

/// The fused operations, implemented for the CPU backend with and without autodiff.
#[backend_extension(Flex, Autodiff)]
pub trait CpuFused: Backend {
    /// Per-row negative log-likelihood of the target under a softmax over the last
    /// dimension: `logits [rows, vocab]`, `targets [rows]` → `nll [rows]`; with `cap > 0` the
    /// logits are first soft-capped, `cap · tanh(logits / cap)` (in the same operation,
    /// gradient included).
    fn nll_rows(logits: FloatTensor<Self>, targets: IntTensor<Self>, cap: f32)
    -> FloatTensor<Self>;
    /// Exact (erf) GELU, element-wise, any shape.
    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// `max(x, 0)²`, element-wise, any shape.
    fn fused_relu2(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// Causal self-attention: `q`, `k`, `v` `[batch, heads, seq, head_dim]` → the same shape.
    fn fused_causal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// Causal self-attention over `[batch, heads, seq, head_dim]` with the kernel (queries and keys
/// of one length, f32 on the CPU backend); `crate::ops::causal_attention` decides when.
pub fn causal_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>) -> Tensor<4> {
    let y = <Dispatch as CpuFused>::fused_causal_attention(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
    );
    Tensor::from_dispatch(y)
}

/// GELU (erf form) with the kernel, any shape; `crate::ops::gelu` decides when.
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as CpuFused>::fused_gelu(x.into_dispatch()))
}

/// `max(x, 0)²` with the kernel, any shape; `crate::ops::relu2` decides when.
pub fn relu2<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as CpuFused>::fused_relu2(x.into_dispatch()))
}

/// `-log softmax(logits)[target]` per row with the kernel (with or without autodiff), the
/// logits soft-capped first when `cap > 0`; `crate::ops::nll_rows` decides when.
pub fn nll_rows(logits: Tensor<2>, targets: Tensor<1, Int>, cap: f32) -> Tensor<1> {
    let out =
        <Dispatch as CpuFused>::nll_rows(logits.into_dispatch(), targets.into_dispatch(), cap);
    Tensor::from_dispatch(out)
}

impl CpuFused for Flex {
    fn nll_rows(logits: FlexTensor, targets: FlexTensor, cap: f32) -> FlexTensor {
        forward(logits, &targets, cap).0
    }

    fn fused_gelu(x: FlexTensor) -> FlexTensor {
        elementwise(x, ember_kernels::gelu_forward)
    }

    fn fused_relu2(x: FlexTensor) -> FlexTensor {
        elementwise(x, ember_kernels::relu2_forward)
    }

    fn fused_causal_attention(q: FlexTensor, k: FlexTensor, v: FlexTensor) -> FlexTensor {
        let [q, k, v] = [&q, &k, &v].map(FlexTensor::to_contiguous);
        attn_forward(&q, &k, &v, &Visibility::causal()).0
    }
}

/// An element-wise kernel `out[i] = f(x[i])`.
type Forward = fn(&[f32], &mut [f32]);
/// Its gradient, `out[i] = grad[i] · f'(x[i])`.
type Gradient = fn(&[f32], &[f32], &mut [f32]);

/// `kernel` over a tensor of any shape.
fn elementwise(x: FlexTensor, kernel: Forward) -> FlexTensor {
    let x = x.to_contiguous();
    let mut out = vec![0.0f32; x.layout().shape().num_elements()];
    kernel(f32s(&x), &mut out);
    to_flex(out, x.layout().shape().to_vec())
}

/// The backward step of an element-wise activation (GELU, ReLU²): keeps its input.
#[derive(Debug)]
struct ElementwiseBackward(Gradient);

impl Backward<Flex, 1> for ElementwiseBackward {
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let x = ops.state.to_contiguous();
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
            let grad = grad.to_contiguous();
            let mut out = vec![0.0f32; x.layout().shape().num_elements()];
            (self.0)(f32s(&x), f32s(&grad), &mut out);
            to_flex(out, x.layout().shape().to_vec())
        });
    }
}

/// An element-wise activation under autodiff: the kernel forward, `gradient` backward.
fn tracked<C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<Flex, C>>,
    forward: Forward,
    gradient: Gradient,
) -> FloatTensor<Autodiff<Flex, C>> {
    let prep = ElementwiseBackward(gradient)
        .prepare::<C>([x.node()])
        .compute_bound()
        .stateful();
    let y = elementwise(x.primitive().clone(), forward);
    match prep {
        OpsKind::Tracked(prep) => prep.finish(x.into_primitive(), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}

/// The backward step's saved state: the (capped) logits, the targets and each row's
/// log-sum-exp; the cap (0 = none).
#[derive(Debug)]
struct NllBackward {
    cap: f32,
}

impl Backward<Flex, 1> for NllBackward {
    type State = (FlexTensor, FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (logits, targets, lse) = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |grad| {
            backward(logits, &targets, &lse, &grad, self.cap)
        });
    }
}

impl<C: CheckpointStrategy> CpuFused for Autodiff<Flex, C> {
    fn nll_rows(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
        cap: f32,
    ) -> FloatTensor<Self> {
        // Compute-bound: the saved logits are kept, not recomputed, under checkpointing.
        let prep = NllBackward { cap }
            .prepare::<C>([logits.node()])
            .compute_bound()
            .stateful();
        let (nll, lse, saved) = forward(logits.into_primitive(), &targets, cap);
        match prep {
            OpsKind::Tracked(prep) => prep.finish((saved, targets, lse), nll),
            OpsKind::UnTracked(prep) => prep.finish(nll),
        }
    }

    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        tracked::<C>(x, ember_kernels::gelu_forward, ember_kernels::gelu_backward)
    }

    fn fused_relu2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        tracked::<C>(
            x,
            ember_kernels::relu2_forward,
            ember_kernels::relu2_backward,
        )
    }

    fn fused_causal_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let nodes = [q.node(), k.node(), v.node()];
        let prep = AttnBackward.prepare::<C>(nodes).compute_bound().stateful();
        let [q, k, v] =
            [q.primitive(), k.primitive(), v.primitive()].map(FlexTensor::to_contiguous);
        let (y, probs) = attn_forward(&q, &k, &v, &Visibility::causal());
        match prep {
            OpsKind::Tracked(prep) => prep.finish((q, k, v, probs), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}

/// Attention's backward step keeps the (contiguous) inputs and the attention weights.
#[derive(Debug)]
struct AttnBackward;

impl Backward<Flex, 3> for AttnBackward {
    type State = (FlexTensor, FlexTensor, FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (q, k, v, probs) = ops.state;
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        let causal = Visibility::causal();
        let (shape, scale) = attn_shape(&q, &causal);
        let n = q.layout().shape().num_elements();
        let (mut dq, mut dk, mut dv) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
        ember_kernels::causal_attention_backward(
            shape,
            [f32s(&q), f32s(&k), f32s(&v)],
            f32s(&probs),
            f32s(&dy),
            scale,
            [&mut dq, &mut dk, &mut dv],
        );
        let dims = q.layout().shape().to_vec();
        for (parent, grad) in ops.parents.into_iter().zip([dq, dk, dv]) {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, to_flex(grad, dims.clone()));
            }
        }
    }
}

/// `(out, probs)` for contiguous `[batch, heads, seq, head_dim]` inputs, the queries seeing
/// the keys `seeing` allows.
pub(crate) fn attn_forward(
    q: &FlexTensor,
    k: &FlexTensor,
    v: &FlexTensor,
    seeing: &Visibility,
) -> (FlexTensor, FlexTensor) {
    let (shape, scale) = attn_shape(q, seeing);
    let dims = q.layout().shape().to_vec();
    let mut out = vec![0.0f32; q.layout().shape().num_elements()];
    let mut probs = vec![0.0f32; shape.heads * shape.seq * shape.seq];
    ember_kernels::causal_attention_forward(
        shape,
        [f32s(q), f32s(k), f32s(v)],
        scale,
        &mut probs,
        &mut out,
    );
    let probs = to_flex(probs, vec![shape.heads, shape.seq, shape.seq]);
    (to_flex(out, dims), probs)
}

/// Kernel sizes and the 1/√head_dim scale of `[batch, heads, seq, head_dim]` whose queries
/// see the keys `seeing` allows.
pub(crate) fn attn_shape<'a>(q: &FlexTensor, seeing: &'a Visibility) -> (AttnShape<'a>, f32) {
    match q.layout().shape().as_slice() {
        &[b, h, t, hd] => {
            let shape = AttnShape {
                heads: b * h,
                seq: t,
                head_dim: hd,
                bidirectional: seeing.bidirectional.min(b) * h,
                starts: &seeing.starts,
            };
            (shape, 1.0 / (hd as f32).sqrt())
        }
        other => panic!("attention expects [batch, heads, seq, head_dim], got {other:?}"),
    }
}

/// `(nll [rows], lse [rows])`.
/// `(nll, lse, the logits the loss was computed from)`: with `cap > 0` the logits capped in
/// place (a copy only if their buffer is shared), for the backward step to keep.
fn forward(
    logits: FlexTensor,
    targets: &FlexTensor,
    cap: f32,
) -> (FlexTensor, FlexTensor, FlexTensor) {
    let (rows, vocab) = rows_vocab(&logits);
    let targets = target_ids(targets);
    let z = if cap > 0.0 {
        let mut z = whole(logits);
        ember_kernels::softcap_in_place(z.storage_mut::<f32>(), cap);
        z
    } else {
        logits.to_contiguous()
    };
    let (mut nll, mut lse) = (vec![0.0f32; rows], vec![0.0f32; rows]);
    ember_kernels::nll_forward(f32s(&z), vocab, &targets, &mut nll, &mut lse);
    (to_flex(nll, vec![rows]), to_flex(lse, vec![rows]), z)
}

/// The gradient is written over the saved logits (the backward step owns them; a buffer
/// still shared elsewhere is copied once by `storage_mut`).
fn backward(
    logits: FlexTensor,
    targets: &FlexTensor,
    lse: &FlexTensor,
    grad: &FlexTensor,
    cap: f32,
) -> FlexTensor {
    let (_, vocab) = rows_vocab(&logits);
    let mut logits = whole(logits);
    let (lse, grad) = (lse.to_contiguous(), grad.to_contiguous());
    let targets = target_ids(targets);
    let (z, lse, grad) = (logits.storage_mut::<f32>(), f32s(&lse), f32s(&grad));
    if cap > 0.0 {
        ember_kernels::softcap_nll_backward_in_place(z, vocab, &targets, lse, grad, cap);
    } else {
        ember_kernels::nll_backward_in_place(z, vocab, &targets, lse, grad);
    }
    logits
}

/// The tensor as a buffer holding exactly its elements in order, so that `storage_mut` (which
/// exposes the whole buffer) is the tensor: a copy only when it is a view.
pub fn whole(t: FlexTensor) -> FlexTensor {
    let n = t.layout().shape().num_elements();
    let exact = t.layout().contiguous_offsets() == Some((0, n)) && t.bytes().len() == 4 * n;
    if exact { t } else { t.to_contiguous() }
}

fn rows_vocab(logits: &FlexTensor) -> (usize, usize) {
    match logits.layout().shape().as_slice() {
        &[rows, vocab] => (rows, vocab),
        other => panic!("nll_rows expects [rows, vocab] logits, got shape {other:?}"),
    }
}

pub(crate) fn f32s(t: &FlexTensor) -> &[f32] {
    match t.as_slice::<f32>() {
        Some(s) => s,
        None => panic!("fused kernel: expected a contiguous f32 tensor, got {t:?}"),
    }
}

/// Token ids as `u32`; anything that is not a valid id becomes `u32::MAX`, which the kernel
/// turns into a NaN loss (caught by the training loop's guard) instead of a panic.
fn target_ids(t: &FlexTensor) -> Vec<u32> {
    fn ids<T: Copy + TryInto<u32>>(s: Option<&[T]>) -> Vec<u32> {
        let s = s.unwrap_or(&[]);
        s.iter()
            .map(|&x| x.try_into().unwrap_or(u32::MAX))
            .collect()
    }
    let t = t.to_contiguous();
    match t.dtype() {
        DType::I32 => ids(t.as_slice::<i32>()),
        DType::I64 => ids(t.as_slice::<i64>()),
        other => panic!("fused nll: targets must be I32 or I64, got {other:?}"),
    }
}

pub(crate) fn to_flex(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}
