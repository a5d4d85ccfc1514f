//! Muon for the blocks' weight matrices (`ember_kernels::muon_update` on the CPU backend, the
//! same update composed from Burn's tensor operations elsewhere) and which parameters it takes.
//!
//! Muon takes every 2-D weight inside the transformer blocks (`h.N.…weight`): attention's
//! fused query/key/value projection as three matrices (each orthogonalised on its own, as
//! modded-nanogpt and nanochat split them), its output projection and the MLP's matrices.
//! Embeddings, an untied head, norms and biases stay with AdamW, as in both. With
//! `train.muon_beta2 > 0` the update is NorMuon's (per-neuron normalisation after the
//! orthogonalisation; `ember_kernels::muon_update`), and each matrix also keeps its neurons'
//! second moments.

use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, backend_extension};
use burn::prelude::*;
use ember_kernels::{MuonScalars, Orthogonalizer};
use ember_model::fused::whole;

/// Muon's settings (the learning rate of a step is `lr` scaled as the schedule scales AdamW's).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MuonConfig {
    /// Peak learning rate of the matrices.
    pub lr: f64,
    /// AdamW's peak learning rate: the step's rate divided by it is the schedule's factor.
    pub adamw_lr: f64,
    /// Momentum after the warmup.
    pub momentum: f64,
    /// Momentum of the first update.
    pub momentum_start: f64,
    /// Updates over which the momentum rises linearly.
    pub momentum_warmup: u64,
    /// Decoupled weight decay of the matrices.
    pub weight_decay: f64,
    /// Newton–Schulz products with bfloat16 operands (`train.precision = "bf16-mixed"` on a
    /// CPU with the instructions).
    pub bf16_products: bool,
    /// Decay of NorMuon's per-neuron second moment (`ember_kernels::muon_update`); 0: plain
    /// Muon.
    pub beta2: f64,
    /// The orthogonalisation's polynomial steps.
    pub orthogonalizer: Orthogonalizer,
}

/// The kernels' orthogonaliser for `train.muon_ns`.
pub fn orthogonalizer(ns: crate::config::MuonNs) -> Orthogonalizer {
    match ns {
        crate::config::MuonNs::Quintic => Orthogonalizer::Quintic,
        crate::config::MuonNs::PolarExpress => Orthogonalizer::PolarExpress,
    }
}

impl MuonConfig {
    /// The scalars of update number `t` (1-based) when AdamW's rate is `adamw_lr_now`.
    pub fn scalars(&self, t: u64, adamw_lr_now: f64, grad_scale: f64) -> MuonScalars {
        let frac = if self.momentum_warmup == 0 {
            1.0
        } else {
            ((t - 1) as f64 / self.momentum_warmup as f64).min(1.0)
        };
        MuonScalars {
            grad_scale: grad_scale as f32,
            momentum: (self.momentum_start + frac * (self.momentum - self.momentum_start)) as f32,
            lr: (self.lr * adamw_lr_now / self.adamw_lr) as f32,
            weight_decay: self.weight_decay as f32,
            bf16_products: self.bf16_products,
            beta2: self.beta2 as f32,
            orthogonalizer: self.orthogonalizer,
        }
    }
}

/// How many matrices side by side a parameter holds if Muon updates it: 3 for attention's
/// query/key/value projection, 1 for the blocks' other weight matrices; `None`: AdamW's.
pub fn blocks(name: &str, rank: usize) -> Option<usize> {
    if rank != 2 || !name.starts_with("h.") || !name.ends_with(".weight") {
        return None;
    }
    Some(if name.ends_with("attn.c_attn.weight") {
        3
    } else {
        1
    })
}

/// The fused update, implemented for the CPU backend.
#[backend_extension(Flex)]
pub trait CpuMuon: Backend {
    /// `(param, buf, second)` after one update from `grad`; `param` is `[rows, cols]`, `grad`
    /// and `buf` hold as many elements, `second` NorMuon's per-neuron second moment
    /// (`ember_kernels::neurons` long; empty for plain Muon).
    fn fused_muon(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        buf: FloatTensor<Self>,
        second: FloatTensor<Self>,
        s: MuonScalars,
        blocks: usize,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);
}

impl CpuMuon for Flex {
    fn fused_muon(
        param: FlexTensor,
        grad: FlexTensor,
        buf: FlexTensor,
        second: FlexTensor,
        s: MuonScalars,
        blocks: usize,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let (rows, cols) = match param.layout().shape().as_slice() {
            &[r, c] => (r, c),
            other => panic!("fused Muon: expected a matrix, got shape {other:?}"),
        };
        let [mut param, mut buf, mut second] = [param, buf, second].map(whole);
        let grad = grad.to_contiguous();
        let g = match grad.as_slice::<f32>() {
            Some(g) => g,
            None => panic!("fused Muon: expected an f32 gradient, got {grad:?}"),
        };
        // In place when the buffers are not shared, copied once otherwise (as fused AdamW).
        ember_kernels::muon_update(
            &s,
            param.storage_mut::<f32>(),
            g,
            buf.storage_mut::<f32>(),
            second.storage_mut::<f32>(),
            rows,
            cols,
            blocks,
        );
        (param, buf, second)
    }
}

/// Muon's state of one matrix: the momentum buffer (`[rows, cols]`) and NorMuon's
/// per-neuron second moment (`ember_kernels::neurons` long; `None` for plain Muon).
pub type MuonState = (Tensor<2>, Option<Tensor<1>>);

/// One update of the `[rows, cols]` weight `param`: the weight and the state after it;
/// `state` is `None` on the first update (taken as zeros). Fused on the CPU backend, composed
/// elsewhere.
pub fn muon_step(
    param: Tensor<2>,
    grad: Tensor<2>,
    state: Option<MuonState>,
    s: MuonScalars,
    blocks: usize,
) -> (Tensor<2>, MuonState) {
    if !ember_model::ops::fused_here(&param) {
        return composed_muon_step(param, grad, state, s, blocks);
    }
    let (buf, second) = state.unwrap_or_else(|| zero_state(&param, s, blocks));
    // Plain Muon has no second moment: the CPU kernel takes an empty one (a CPU tensor of no
    // elements; the composed path, which GPUs take, never makes one).
    let plain = second.is_none();
    let second = second.unwrap_or_else(|| Tensor::zeros([0], &param.device()));
    let (p, b, v) = <Dispatch as CpuMuon>::fused_muon(
        param.into_dispatch(),
        grad.into_dispatch(),
        buf.into_dispatch(),
        second.into_dispatch(),
        s,
        blocks,
    );
    let v = (!plain).then(|| Tensor::from_dispatch(v));
    (Tensor::from_dispatch(p), (Tensor::from_dispatch(b), v))
}

/// The state before the first update: zeros.
fn zero_state(param: &Tensor<2>, s: MuonScalars, blocks: usize) -> MuonState {
    let [rows, cols] = param.dims();
    let n = ember_kernels::neurons(rows, cols, blocks);
    let second = (s.beta2 > 0.0).then(|| Tensor::zeros([n], &param.device()));
    (param.zeros_like(), second)
}

/// Orthogonalises `x` `[rows, cols]` with `method`'s polynomial steps, from tensor operations
/// (as `ember_kernels::orthogonalize`).
fn orthogonalize(x: Tensor<2>, method: Orthogonalizer) -> Tensor<2> {
    let [rows, cols] = x.dims();
    let tall = rows > cols;
    let mut w = if tall { x.transpose() } else { x };
    let norm = w
        .clone()
        .square()
        .sum()
        .sqrt()
        .mul_scalar(method.norm_margin())
        .clamp_min(1e-7);
    w = w / norm.unsqueeze::<2>();
    for (a, b, c) in method.coefficients() {
        let gram = w.clone().matmul(w.clone().transpose());
        let poly = gram.clone().mul_scalar(b) + gram.clone().matmul(gram).mul_scalar(c);
        w = w.clone().mul_scalar(a) + poly.matmul(w);
    }
    if tall { w.transpose() } else { w }
}

/// NorMuon's normalisation of one orthogonalised block `o` `[rows, width]` with its neurons'
/// second moment `v` (as `ember_kernels::muon_update`): `(o, v)` after it.
fn normalize(o: Tensor<2>, v: Tensor<1>, beta2: f32) -> (Tensor<2>, Tensor<1>) {
    let [rows, width] = o.dims();
    let per_col = width >= rows;
    let sq = o.clone().square();
    let (ms, shape) = if per_col {
        (sq.clone().mean_dim(0), [1, width])
    } else {
        (sq.clone().mean_dim(1), [rows, 1])
    };
    let v = v.reshape(shape).mul_scalar(beta2) + ms.mul_scalar(1.0 - beta2);
    let scaled = o / v.clone().clamp_min(1e-10).sqrt();
    let before = sq.sum().sqrt();
    let after = scaled.clone().square().sum().sqrt().clamp_min(1e-10);
    let n: usize = v.dims().iter().product();
    (scaled * (before / after).unsqueeze::<2>(), v.reshape([n]))
}

/// The same update from Burn's tensor operations (every device).
pub fn composed_muon_step(
    param: Tensor<2>,
    grad: Tensor<2>,
    state: Option<MuonState>,
    s: MuonScalars,
    blocks: usize,
) -> (Tensor<2>, MuonState) {
    let [rows, cols] = param.dims();
    let m = s.momentum;
    let g = grad.mul_scalar(s.grad_scale);
    let (buf, second) = state.unwrap_or_else(|| zero_state(&param, s, blocks));
    let buf = buf.mul_scalar(m) + g.clone().mul_scalar(1.0 - m);
    let u = g.mul_scalar(1.0 - m) + buf.clone().mul_scalar(m);
    let width = cols / blocks;
    let count = ember_kernels::neurons(rows, cols, blocks) / blocks;
    let mut seconds = Vec::new();
    let parts: Vec<Tensor<2>> = (0..blocks)
        .map(|b| {
            let block = u.clone().slice([0..rows, b * width..(b + 1) * width]);
            let o = orthogonalize(block, s.orthogonalizer);
            let Some(second) = second.as_ref().filter(|_| s.beta2 > 0.0) else {
                return o;
            };
            let v = second.clone().narrow(0, b * count, count);
            let (o, v) = normalize(o, v, s.beta2);
            seconds.push(v);
            o
        })
        .collect();
    let o = Tensor::cat(parts, 1);
    let second = (!seconds.is_empty()).then(|| Tensor::cat(seconds, 0));
    let step = s.lr * (width as f32 / rows as f32).max(1.0).sqrt();
    let p = param.mul_scalar(1.0 - s.lr * s.weight_decay) - o.mul_scalar(step);
    (p, (buf, second))
}
