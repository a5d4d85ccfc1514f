//! Training products with bfloat16 operands and f32 sums (`train.precision = "bf16-mixed"`):
//! `x · w` or `x · wᵀ` forward, and both gradient products backward, with
//! `ember_kernels::matmul_bf16` (AMX or AVX-512 BF16). Weights, gradients and optimizer state stay
//! f32; only the operands of the products are rounded, as in mixed-precision training on GPUs.
//! `crate::ops` decides when it runs (training on a CPU with the instructions, when asked).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, binary};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::prelude::*;
use ember_kernels::{Operand, matmul_bf16};

use crate::fused::{f32s, to_flex};

/// Products with bfloat16 operands.
#[backend_extension(Flex, Autodiff)]
pub trait CpuBf16Product: Backend {
    /// `x [m, k] · w [k, n]`, or with `transposed` `x [m, k] · wᵀ` for `w [n, k]` → `[m, n]`.
    fn bf16_product(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        transposed: bool,
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

impl CpuBf16Product for Flex {
    fn bf16_product(x: FlexTensor, w: FlexTensor, transposed: bool) -> FlexTensor {
        product(&x.to_contiguous(), false, &w.to_contiguous(), transposed)
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
