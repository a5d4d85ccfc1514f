//! Training attention straight from the packed query/key/value projection.
//!
//! The attention kernel takes `q`, `k`, `v` as `[batch, heads, seq, head_dim]`, which the
//! layer makes from its `[batch, seq, 3·d]` projection by slicing, reshaping and transposing:
//! Burn copies at the reshape and again to make the transpose contiguous, and the backward
//! pads each slice's gradient to the whole `[batch, seq, 3·d]` with zeros and sums the three.
//! [`qkv_attention`] does the layout changes in one pass each way (`ember_kernels`'
//! `rows_to_heads` / `heads_to_rows`) around the same kernels, with its own backward step.
//! Rotary embeddings, when the model has them, are applied to the split queries and keys in
//! the same call (`ember_kernels::rope_in_place`, Burn's `RotaryEncoding` arithmetic), instead
//! of Burn's composition (a reshape, a small product, a product and a sum per tensor).
//! `crate::ops::attention` decides when it runs (training on the CPU).

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, unary};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::nn::RotaryEncoding;
use burn::prelude::*;
use ember_kernels::{HeadLayout, heads_to_rows, rope_in_place, rows_to_heads};

use crate::Visibility;
use crate::fused::{attn_forward, attn_shape, f32s, to_flex};

/// Causal attention over a packed projection.
#[backend_extension(Flex, Autodiff)]
pub trait CpuQkvAttention: Backend {
    /// `qkv [batch, seq, 3·d]` (queries, keys, values side by side, `n_head` heads each) →
    /// the heads' outputs side by side, `[batch, seq, d]`; queries see the keys `seeing`
    /// allows.
    fn fused_qkv_attention(
        qkv: FloatTensor<Self>,
        n_head: usize,
        seeing: Visibility,
    ) -> FloatTensor<Self>;
    /// The same with rotary embeddings on queries and keys: `freq [≥ seq, head_dim, 2]` is
    /// `RotaryEncoding::freq_complex` (positions from 0; a constant, no gradient).
    fn fused_qkv_rope_attention(
        qkv: FloatTensor<Self>,
        freq: FloatTensor<Self>,
        n_head: usize,
        seeing: Visibility,
    ) -> FloatTensor<Self>;
}

/// Causal self-attention from `qkv [batch, seq, 3·d]` with `n_head` heads → `[batch, seq, d]`,
/// scaled by 1/√head_dim, with rotary embeddings from position 0 when `rope` is given, with
/// the kernels (f32 on the CPU backend, under autodiff); `crate::ops::attention` decides when.
/// Queries see the keys `seeing` allows (causal rows by default).
pub fn qkv_attention(
    qkv: Tensor<3>,
    rope: Option<&RotaryEncoding>,
    n_head: usize,
    seeing: Visibility,
) -> Tensor<3> {
    let y = match rope {
        None => {
            <Dispatch as CpuQkvAttention>::fused_qkv_attention(qkv.into_dispatch(), n_head, seeing)
        }
        Some(r) => <Dispatch as CpuQkvAttention>::fused_qkv_rope_attention(
            qkv.into_dispatch(),
            r.freq_complex.clone().into_dispatch(),
            n_head,
            seeing,
        ),
    };
    Tensor::from_dispatch(y)
}

fn layout(qkv: &FlexTensor, n_head: usize) -> HeadLayout {
    match qkv.layout().shape().as_slice() {
        &[batch, seq, w] if n_head > 0 && w % (3 * n_head) == 0 => HeadLayout {
            batch,
            seq,
            heads: n_head,
            head_dim: w / 3 / n_head,
        },
        other => panic!(
            "qkv attention expects [batch, seq, 3·d] with d divisible by {n_head}, got {other:?}"
        ),
    }
}

/// `(q, k, v)` as contiguous `[batch, heads, seq, head_dim]` tensors.
fn split(qkv: &FlexTensor, l: HeadLayout) -> [FlexTensor; 3] {
    let qkv = qkv.to_contiguous();
    let d = l.heads * l.head_dim;
    let dims = vec![l.batch, l.heads, l.seq, l.head_dim];
    [0, d, 2 * d].map(|offset| {
        let mut out = vec![0.0f32; l.batch * l.seq * d];
        rows_to_heads(l, f32s(&qkv), 3 * d, offset, &mut out);
        to_flex(out, dims.clone())
    })
}

/// The saved state: rotated q, k, v and the weights; the rope table if any; the layout; which
/// keys the queries saw.
type Saved = ([FlexTensor; 4], Option<FlexTensor>, HeadLayout, Visibility);

fn forward(
    qkv: &FlexTensor,
    freq: Option<&FlexTensor>,
    n_head: usize,
    seeing: Visibility,
) -> (FlexTensor, Saved) {
    let l = layout(qkv, n_head);
    let [mut q, mut k, v] = split(qkv, l);
    let freq = freq.map(FlexTensor::to_contiguous);
    if let Some(f) = &freq {
        match f.layout().shape().as_slice() {
            &[n, hd, 2] if n >= l.seq && hd == l.head_dim => {}
            other => panic!(
                "rope table {other:?} does not cover {} positions of head size {}",
                l.seq, l.head_dim
            ),
        }
    }
    if let Some(f) = &freq {
        for x in [&mut q, &mut k] {
            rope_in_place(x.storage_mut::<f32>(), l.seq, l.head_dim, f32s(f), false);
        }
    }
    let (y, probs) = attn_forward(&q, &k, &v, &seeing);
    let d = l.heads * l.head_dim;
    let mut rows = vec![0.0f32; l.batch * l.seq * d];
    heads_to_rows(l, f32s(&y), &mut rows, d, 0);
    (
        to_flex(rows, vec![l.batch, l.seq, d]),
        ([q, k, v, probs], freq, l, seeing),
    )
}

impl CpuQkvAttention for Flex {
    fn fused_qkv_attention(qkv: FlexTensor, n_head: usize, seeing: Visibility) -> FlexTensor {
        forward(&qkv, None, n_head, seeing).0
    }

    fn fused_qkv_rope_attention(
        qkv: FlexTensor,
        freq: FlexTensor,
        n_head: usize,
        seeing: Visibility,
    ) -> FlexTensor {
        forward(&qkv, Some(&freq), n_head, seeing).0
    }
}

/// The backward step keeps the split heads and the attention weights.
#[derive(Debug)]
struct QkvBackward;

impl Backward<Flex, 1> for QkvBackward {
    type State = Saved;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let ([q, k, v, probs], freq, l, seeing) = ops.state;
        unary::<Flex, _>(ops.parents, ops.node, grads, |dy| {
            let d = l.heads * l.head_dim;
            let dy = dy.to_contiguous();
            let mut dy_heads = vec![0.0f32; l.batch * l.seq * d];
            rows_to_heads(l, f32s(&dy), d, 0, &mut dy_heads);
            let (shape, scale) = attn_shape(&q, &seeing);
            let n = dy_heads.len();
            let (mut dq, mut dk, mut dv) = (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
            ember_kernels::causal_attention_backward(
                shape,
                [f32s(&q), f32s(&k), f32s(&v)],
                f32s(&probs),
                &dy_heads,
                scale,
                [&mut dq, &mut dk, &mut dv],
            );
            if let Some(f) = &freq {
                for g in [&mut dq, &mut dk] {
                    rope_in_place(g, l.seq, l.head_dim, f32s(f), true);
                }
            }
            let mut dqkv = vec![0.0f32; 3 * n];
            for (g, offset) in [(&dq, 0), (&dk, d), (&dv, 2 * d)] {
                heads_to_rows(l, g, &mut dqkv, 3 * d, offset);
            }
            to_flex(dqkv, vec![l.batch, l.seq, 3 * d])
        });
    }
}

impl<C: CheckpointStrategy> CpuQkvAttention for Autodiff<Flex, C> {
    fn fused_qkv_attention(
        qkv: FloatTensor<Self>,
        n_head: usize,
        seeing: Visibility,
    ) -> FloatTensor<Self> {
        tracked::<C>(qkv, None, n_head, seeing)
    }

    fn fused_qkv_rope_attention(
        qkv: FloatTensor<Self>,
        freq: FloatTensor<Self>,
        n_head: usize,
        seeing: Visibility,
    ) -> FloatTensor<Self> {
        tracked::<C>(qkv, Some(freq.primitive()), n_head, seeing)
    }
}

fn tracked<C: CheckpointStrategy>(
    qkv: FloatTensor<Autodiff<Flex, C>>,
    freq: Option<&FlexTensor>,
    n_head: usize,
    seeing: Visibility,
) -> FloatTensor<Autodiff<Flex, C>> {
    // Compute-bound: the saved heads and weights are kept, not recomputed.
    let prep = QkvBackward
        .prepare::<C>([qkv.node()])
        .compute_bound()
        .stateful();
    let (y, saved) = forward(qkv.primitive(), freq, n_head, seeing);
    match prep {
        OpsKind::Tracked(prep) => prep.finish(saved, y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}
