//! Training products with bfloat16 operands and f32 sums (`train.precision = "bf16-mixed"`):
//! `x · w` or `x · wᵀ` forward, and both gradient products backward, with
//! `ember_kernels::matmul_bf16` (AVX-512 BF16). Weights, gradients and optimizer state stay
//! f32; only the operands of the products are rounded, as in mixed-precision training on GPUs.
//! The tied output layer and its loss are one operation (`bf16_head_nll_sum`): logits, loss
//! and both gradients over chunks of rows that stay in cache (`ember_kernels::head_xent_bf16`).
//! `crate::ops` decides when it runs (training on a CPU with the instructions, when asked).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, binary};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::prelude::*;
use ember_kernels::{HeadGrads, Operand, head_xent_bf16, matmul_bf16};

use crate::fused::{f32s, target_ids, to_flex};

/// Products with bfloat16 operands.
#[backend_extension(Flex, Autodiff)]
pub trait CpuBf16Product: Backend {
    /// `x [m, k] · w [k, n]`, or with `transposed` `x [m, k] · wᵀ` for `w [n, k]` → `[m, n]`.
    fn bf16_product(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        transposed: bool,
    ) -> FloatTensor<Self>;

    /// `Σ weights · nll` (shape `[1]`) of the tied output layer `x [rows, d] · wᵀ` (`w [vocab,
    /// d]`) against `targets [rows]`, logits capped at `cap` (0 = none): one fused step over
    /// chunks of rows (`ember_kernels::head_xent_bf16`); `weights` get no gradient.
    fn bf16_head_nll_sum(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        targets: IntTensor<Self>,
        weights: FloatTensor<Self>,
        cap: f32,
    ) -> FloatTensor<Self>;
}

/// `(rows, cols)` of a matrix.
fn dims2(t: &FlexTensor, what: &str) -> (usize, usize) {
    match t.layout().shape().as_slice() {
        &[r, c] => (r, c),
        other => panic!("bf16 product: {what} must be a matrix, got shape {other:?}"),
    }
}

/// `a · b` with each operand taken as stored or transposed.
fn product(a: &FlexTensor, a_t: bool, b: &FlexTensor, b_t: bool) -> FlexTensor {
    let ((ar, ac), (br, bc)) = (dims2(a, "the left operand"), dims2(b, "the right operand"));
    let lhs = Operand::new(f32s(a), ar, ac);
    let rhs = Operand::new(f32s(b), br, bc);
    let (lhs, rhs) = (
        if a_t { lhs.t() } else { lhs },
        if b_t { rhs.t() } else { rhs },
    );
    let (m, n) = (if a_t { ac } else { ar }, if b_t { br } else { bc });
    let mut out = vec![0.0f32; m * n];
    matmul_bf16(&mut out, lhs, rhs, false);
    to_flex(out, vec![m, n])
}

/// The fused head's gradients `(dx, dw)` for an upstream gradient of 1.
type HeadGradients = (Vec<f32>, Vec<f32>);

/// The fused head's loss and, when `grads`, its gradients.
fn head(
    x: &FlexTensor,
    w: &FlexTensor,
    targets: &FlexTensor,
    weights: &FlexTensor,
    cap: f32,
    grads: bool,
) -> (FlexTensor, Option<HeadGradients>) {
    let ((rows, d), (vocab, d2)) = (dims2(x, "x"), dims2(w, "the output layer"));
    assert_eq!(
        d, d2,
        "fused head: x is [{rows}, {d}] and the output layer [{vocab}, {d2}]"
    );
    let ids = target_ids(targets);
    let weights = weights.to_contiguous();
    let mut g = grads.then(|| (vec![0.0f32; rows * d], vec![0.0f32; vocab * d]));
    let sum = head_xent_bf16(
        f32s(x),
        f32s(w),
        d,
        &ids,
        f32s(&weights),
        cap,
        g.as_mut().map(|(dx, dw)| HeadGrads { dx, dw }),
    );
    (to_flex(vec![sum as f32], vec![1]), g)
}

impl CpuBf16Product for Flex {
    fn bf16_product(x: FlexTensor, w: FlexTensor, transposed: bool) -> FlexTensor {
        product(&x.to_contiguous(), false, &w.to_contiguous(), transposed)
    }

    fn bf16_head_nll_sum(
        x: FlexTensor,
        w: FlexTensor,
        targets: FlexTensor,
        weights: FlexTensor,
        cap: f32,
    ) -> FlexTensor {
        let (x, w) = (x.to_contiguous(), w.to_contiguous());
        head(&x, &w, &targets, &weights, cap, false).0
    }
}

/// The fused head's backward step holds the gradients its forward step computed (for an
/// upstream gradient of 1) and scales them by the upstream scalar.
#[derive(Debug)]
struct HeadBackward;

impl Backward<Flex, 2> for HeadBackward {
    type State = (Vec<f32>, Vec<usize>, Vec<f32>, Vec<usize>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (dx, x_shape, dw, w_shape) = ops.state;
        let scaled = |mut g: Vec<f32>, shape: Vec<usize>, up: FlexTensor| {
            let up = f32s(&up.to_contiguous())[0];
            g.iter_mut().for_each(|v| *v *= up);
            to_flex(g, shape)
        };
        binary::<Flex, _, _>(
            ops.parents,
            ops.node,
            grads,
            |up| scaled(dx, x_shape, up),
            |up| scaled(dw, w_shape, up),
        );
    }
}

/// The backward step keeps both operands (contiguous) and the orientation.
#[derive(Debug)]
struct Bf16Backward;

impl Backward<Flex, 2> for Bf16Backward {
    type State = (FlexTensor, FlexTensor, bool);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (x, w, transposed) = ops.state;
        binary::<Flex, _, _>(
            ops.parents,
            ops.node,
            grads,
            // dx = dy · wᵀ, or dy · w when w is [n, k].
            |dy| product(&dy.to_contiguous(), false, &w, !transposed),
            // dw = xᵀ · dy, or dyᵀ · x for w [n, k].
            |dy| {
                let dy = dy.to_contiguous();
                if transposed {
                    product(&dy, true, &x, false)
                } else {
                    product(&x, true, &dy, false)
                }
            },
        );
    }
}

impl<C: CheckpointStrategy> CpuBf16Product for Autodiff<Flex, C> {
    fn bf16_product(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        transposed: bool,
    ) -> FloatTensor<Self> {
        // Compute-bound: the operands are kept, not recomputed.
        let prep = Bf16Backward
            .prepare::<C>([x.node(), w.node()])
            .compute_bound()
            .stateful();
        let (xp, wp) = (x.primitive().to_contiguous(), w.primitive().to_contiguous());
        let y = product(&xp, false, &wp, transposed);
        match prep {
            OpsKind::Tracked(prep) => prep.finish((xp, wp, transposed), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }

    fn bf16_head_nll_sum(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        targets: IntTensor<Self>,
        weights: FloatTensor<Self>,
        cap: f32,
    ) -> FloatTensor<Self> {
        // The gradients are computed in the forward step, while each chunk's logits are in
        // cache; the backward step only scales them.
        let prep = HeadBackward
            .prepare::<C>([x.node(), w.node()])
            .compute_bound()
            .stateful();
        let (xp, wp) = (x.primitive().to_contiguous(), w.primitive().to_contiguous());
        let weights = weights.into_primitive();
        match prep {
            OpsKind::Tracked(prep) => {
                let (sum, g) = head(&xp, &wp, &targets, &weights, cap, true);
                let (dx, dw) = g.unwrap_or_default();
                let shapes = (xp.layout().shape().to_vec(), wp.layout().shape().to_vec());
                prep.finish((dx, shapes.0, dw, shapes.1), sum)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(head(&xp, &wp, &targets, &weights, cap, false).0)
            }
        }
    }
}

/// `x [m, k] · w [k, n]` (or `· wᵀ` for `w [n, k]` with `transposed`) with bfloat16 operands;
/// `crate::ops` decides when.
pub fn product_bf16(x: Tensor<2>, w: Tensor<2>, transposed: bool) -> Tensor<2> {
    let y = <Dispatch as CpuBf16Product>::bf16_product(
        x.into_dispatch(),
        w.into_dispatch(),
        transposed,
    );
    Tensor::from_dispatch(y)
}

/// `Σ mask · nll` (`[1]`) of the tied output layer `x [rows, d] · wᵀ` against `targets
/// [rows]`, logits capped at `cap` (0 = none), fused over row chunks; `crate::ops` decides
/// when.
pub fn head_nll_sum_bf16(
    x: Tensor<2>,
    w: Tensor<2>,
    targets: Tensor<1, Int>,
    mask: Tensor<1>,
    cap: f32,
) -> Tensor<1> {
    let y = <Dispatch as CpuBf16Product>::bf16_head_nll_sum(
        x.into_dispatch(),
        w.into_dispatch(),
        targets.into_dispatch(),
        mask.into_dispatch(),
        cap,
    );
    Tensor::from_dispatch(y)
}
