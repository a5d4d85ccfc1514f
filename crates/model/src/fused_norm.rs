//! Layer normalisation as one CPU kernel each way.
//!
//! Burn's autodiff backend has no layer-norm operation of its own: it records the nine
//! operations `layer_norm` is composed of (two means, subtract, square, add ε, square root,
//! divide, gain, offset) and differentiates each, so a norm costs about thirty passes over the
//! activations and as many fresh buffers per step, and a model has `2·n_layer + 1` of them.
//! Here the forward is `ember_kernels::layer_norm_forward` and the backward
//! `layer_norm_backward`, with the input's gradient and the gain's and offset's sums from one
//! pass per row. `crate::ops::layer_norm` decides when it runs (on the CPU, kernels on).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::prelude::*;

use crate::fused::{f32s, to_flex};

/// Layer norm over the last dimension.
#[backend_extension(Flex, Autodiff)]
pub trait CpuLayerNorm: Backend {
    /// `(x − mean) / √(var + eps) · gamma + beta` over the last dimension of `x` (any rank);
    /// `gamma`, `beta` `[width]`.
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
    ) -> FloatTensor<Self>;
}

/// Layer norm over the last dimension with gain `gamma` and optional offset `beta` (`[width]`)
/// with the kernels (f32 on the CPU backend); `crate::ops::layer_norm` decides when.
pub fn layer_norm<const D: usize>(
    x: Tensor<D>,
    gamma: Tensor<1>,
    beta: Option<Tensor<1>>,
    eps: f64,
) -> Tensor<D> {
    // Without an offset, a zero one (a constant: no gradient is kept for it).
    let beta = beta.unwrap_or_else(|| Tensor::zeros(gamma.dims(), &gamma.device()));
    Tensor::from_dispatch(<Dispatch as CpuLayerNorm>::fused_layer_norm(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        eps,
    ))
}

/// `(y, stats)`: the output and each row's `[mean, √(var + eps)]`.
fn forward(x: &FlexTensor, gamma: &FlexTensor, beta: &FlexTensor, eps: f64) -> [FlexTensor; 2] {
    let dims = x.layout().shape().to_vec();
    let width = dims.last().copied().unwrap_or(1);
    let n = x.layout().shape().num_elements();
    let (mut y, mut stats) = (vec![0.0f32; n], vec![0.0f32; 2 * (n / width.max(1))]);
    ember_kernels::layer_norm_forward(
        f32s(x),
        width,
        f32s(gamma),
        Some(f32s(beta)),
        eps as f32,
        &mut y,
        &mut stats,
    );
    let rows = stats.len() / 2;
    [to_flex(y, dims), to_flex(stats, vec![rows, 2])]
}

impl CpuLayerNorm for Flex {
    fn fused_layer_norm(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        eps: f64,
    ) -> FlexTensor {
        let [x, gamma, beta] = [&x, &gamma, &beta].map(FlexTensor::to_contiguous);
        let [y, _] = forward(&x, &gamma, &beta, eps);
        y
    }
}

impl<C: CheckpointStrategy> CpuLayerNorm for Autodiff<Flex, C> {
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        eps: f64,
    ) -> FloatTensor<Self> {
        let nodes = [x.node(), gamma.node(), beta.node()];
        // Memory-bound, but the kernel's saved statistics are what makes the backward one pass.
        let prep = NormBackward.prepare::<C>(nodes).compute_bound().stateful();
        let [xc, gc, bc] =
            [x.primitive(), gamma.primitive(), beta.primitive()].map(FlexTensor::to_contiguous);
        let [y, stats] = forward(&xc, &gc, &bc, eps);
        match prep {
            OpsKind::Tracked(prep) => prep.finish((xc, gc, stats), y),
            OpsKind::UnTracked(prep) => prep.finish(y),
        }
    }
}

/// The backward step keeps the (contiguous) input, the gain and the row statistics.
#[derive(Debug)]
struct NormBackward;

impl Backward<Flex, 3> for NormBackward {
    type State = (FlexTensor, FlexTensor, FlexTensor);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (x, gamma, stats) = ops.state;
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        let dims = x.layout().shape().to_vec();
        let width = dims.last().copied().unwrap_or(1);
        let (mut dx, mut dgamma, mut dbeta) = (
            vec![0.0f32; x.layout().shape().num_elements()],
            vec![0.0f32; width],
            vec![0.0f32; width],
        );
        ember_kernels::layer_norm_backward(
            f32s(&x),
            width,
            f32s(&gamma),
            f32s(&stats),
            f32s(&dy),
            &mut dx,
            &mut dgamma,
            &mut dbeta,
        );
        let grads_out = [(dx, dims), (dgamma, vec![width]), (dbeta, vec![width])];
        for (parent, (grad, shape)) in ops.parents.into_iter().zip(grads_out) {
            if let Some(node) = parent {
                grads.register::<Flex>(node.id, to_flex(grad, shape));
            }
        }
    }
}
