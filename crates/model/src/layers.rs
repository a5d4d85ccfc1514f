//! Building blocks: GPT-2-initialised linear layers, the normalisation layer and the MLP.

use burn::module::{Initializer, Param};
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::prelude::*;
use burn::tensor::activation::silu;

use crate::config::{GptConfig, MlpKind, NormKind};
use crate::ops::{self, gelu, layer_norm};

/// GPT-2 initialisation: weights N(0, std), biases zero. Burn's `LinearConfig` would draw the
/// bias from the weight's initializer too, so the layer is assembled here.
pub fn linear(d_in: usize, d_out: usize, bias: bool, std: f64, device: &Device) -> Linear {
    let init = if std == 0.0 {
        Initializer::Zeros
    } else {
        Initializer::Normal { mean: 0.0, std }
    };
    Linear {
        weight: init.init([d_in, d_out], device),
        bias: bias.then(|| Initializer::Zeros.init([d_out], device)),
    }
}

/// `[batch, seq, d_in] -> [batch, seq, d_out]`, computed as one `[batch·seq, d_in]` product.
/// Why not `layer.forward(x)` on the 3-D tensor: Burn's CPU backend runs a 3-D × 2-D product
/// as one small GEMM per batch row (repacking the weight for each), and its backward multiplies
/// per row and then sums; flattened, each direction is one large GEMM (benches/RESULTS.md).
pub fn apply(layer: &Linear, x: Tensor<3>) -> Tensor<3> {
    let [b, t, d] = x.dims();
    let y = ops::linear(x.reshape([b * t, d]), layer);
    let n = y.dims()[1];
    y.reshape([b, t, n])
}

/// LayerNorm or RMSNorm over the last dimension. Parameters are `gamma` (and `beta` for
/// LayerNorm with bias), the names Burn's own norms use.
#[derive(Module, Debug)]
pub struct Norm {
    /// Gain, `[n_embd]`.
    pub gamma: Param<Tensor<1>>,
    /// Offset, `[n_embd]` (LayerNorm with bias only).
    pub beta: Option<Param<Tensor<1>>>,
    /// True for RMSNorm.
    pub rms: bool,
}

/// LayerNorm epsilon as in GPT-2 and PyTorch.
pub const NORM_EPS: f64 = 1e-5;

impl Norm {
    /// A norm of width `d` of the config's kind, initialised to the identity.
    pub fn new(cfg: &GptConfig, device: &Device) -> Self {
        let d = cfg.n_embd;
        let rms = cfg.norm == NormKind::RmsNorm;
        Norm {
            gamma: Initializer::Ones.init([d], device),
            beta: (cfg.bias && !rms).then(|| Initializer::Zeros.init([d], device)),
            rms,
        }
    }

    /// `[.., n_embd] -> [.., n_embd]`
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        if self.rms {
            let rms = (x.clone().square().mean_dim(D - 1) + NORM_EPS).sqrt();
            (x / rms) * self.gamma.val().unsqueeze()
        } else {
            layer_norm(
                x,
                self.gamma.val(),
                self.beta.as_ref().map(|b| b.val()),
                NORM_EPS,
            )
        }
    }
}

/// The feed-forward block: GELU (`c_fc → gelu → c_proj`, GPT-2), ReLU² (`c_fc → relu² →
/// c_proj`) or SwiGLU (`silu(c_gate) ⊙ c_fc → c_proj`).
#[derive(Module, Debug)]
pub struct Mlp {
    /// Up projection `[n_embd, hidden]`.
    pub c_fc: Linear,
    /// Gate projection for SwiGLU `[n_embd, hidden]`.
    pub c_gate: Option<Linear>,
    /// Down projection `[hidden, n_embd]`, scaled at init by 1/√(2·n_layer) (or zero).
    pub c_proj: Linear,
    /// Dropout on the output.
    pub dropout: Dropout,
    /// ReLU² instead of GELU (no gate).
    pub relu2: bool,
}

impl Mlp {
    /// Initialised as GPT-2.
    pub fn new(cfg: &GptConfig, device: &Device) -> Self {
        let (d, h) = (cfg.n_embd, cfg.mlp_hidden());
        let proj_std = crate::config::proj_std(cfg);
        Mlp {
            c_fc: linear(d, h, cfg.bias, 0.02, device),
            c_gate: (cfg.mlp == MlpKind::Swiglu).then(|| linear(d, h, cfg.bias, 0.02, device)),
            c_proj: linear(h, d, cfg.bias, proj_std, device),
            dropout: DropoutConfig::new(cfg.dropout).init(),
            relu2: cfg.mlp == MlpKind::Relu2,
        }
    }

    /// `[batch, seq, n_embd] -> [batch, seq, n_embd]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = match (&self.c_gate, self.relu2) {
            (Some(gate), _) => silu(apply(gate, x.clone())) * apply(&self.c_fc, x),
            (None, true) => ops::relu2(apply(&self.c_fc, x)),
            (None, false) => gelu(apply(&self.c_fc, x)),
        };
        self.dropout.forward(apply(&self.c_proj, h))
    }
}
