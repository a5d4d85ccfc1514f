//! The `[run]` and `[train]` sections every training config shares, with their range checks.

use serde::{Deserialize, Serialize};

use crate::config::FieldError;
use crate::error::{Result, TrainError};
/// `[run]` of every training config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// Run directory: config, metrics.jsonl, loss.svg, checkpoints/.
    pub out_dir: std::path::PathBuf,
}

/// How the learning rate falls after warmup.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Decay {
    /// Half a cosine from `lr` down to `min_lr` (nanoGPT, Chinchilla).
    Cosine,
    /// A straight line from `lr` down to `min_lr`.
    Linear,
    /// Stay at `lr`.
    Constant,
    /// Warmup-stable-decay (trapezoidal): stay at `lr`, then cool down to `min_lr` over the last
    /// `cooldown_fraction` of the steps after warmup, in the `cooldown` shape.
    Wsd,
}

/// The shape of a WSD schedule's cool-down.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Cooldown {
    /// A straight line from `lr` to `min_lr`.
    Linear,
    /// `1 − √x` of the way (falls fast at first), as in Hägele et al. 2024.
    Sqrt,
}

/// How Muon orthogonalises its momentum (`ember_kernels::Orthogonalizer`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum MuonNs {
    /// Five Newton–Schulz steps with one quintic (PyTorch's `torch.optim.Muon`).
    #[default]
    Quintic,
    /// Polar Express: five quintic steps, each with its own coefficients (Amsel et al. 2025).
    PolarExpress,
}

/// Which rule updates the weights.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// AdamW for every parameter.
    #[default]
    AdamW,
    /// Muon (momentum orthogonalised by Newton–Schulz) for the blocks' weight matrices, AdamW
    /// for embeddings, head, norms and biases.
    Muon,
}

/// The arithmetic of the training products.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub enum Precision {
    /// Every product in f32.
    #[default]
    #[serde(rename = "f32")]
    F32,
    /// The linear layers' and the output layer's products (forward and backward) with
    /// bfloat16 operands and f32 sums, where the CPU has AVX-512 BF16 (f32 elsewhere, said at
    /// the start); weights, gradients, optimizer state and evaluation stay f32.
    #[serde(rename = "bf16-mixed")]
    Bf16Mixed,
}

/// The `[train]` section: optimizer, schedule, batch, cadence. Shared by pretraining and SFT.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TrainSection {
    /// Sequences per micro-batch (one forward/backward).
    pub batch_size: usize,
    /// Tokens per optimizer step; gradients of `total_batch_tokens / (batch_size × context)`
    /// micro-batches are accumulated. Unset: one micro-batch per step.
    pub total_batch_tokens: Option<usize>,
    /// Optimizer steps in the run.
    pub max_steps: u64,
    /// Peak learning rate.
    pub lr: f64,
    /// Learning rate at the end of the decay.
    pub min_lr: f64,
    /// Steps of linear warmup from `lr / (warmup_steps + 1)` to `lr`.
    pub warmup_steps: u64,
    /// Shape of the decay after warmup.
    pub decay: Decay,
    /// With `decay = "wsd"`: the share of the steps after warmup spent cooling down.
    pub cooldown_fraction: f64,
    /// With `decay = "wsd"`: the cool-down's shape.
    pub cooldown: Cooldown,
    /// Decoupled weight decay, applied to weight matrices only (see `optim`).
    pub weight_decay: f64,
    /// `"adamw"` or `"muon"`.
    pub optimizer: OptimizerKind,
    /// `"f32"` or `"bf16-mixed"` (see [`Precision`]).
    pub precision: Precision,
    /// With Muon: the blocks' matrices' peak learning rate (the schedule scales it as it
    /// scales `lr`, which stays the AdamW parameters').
    pub muon_lr: f64,
    /// With Muon: Nesterov momentum after its warmup.
    pub muon_momentum: f64,
    /// With Muon: momentum at step 0, rising linearly to `muon_momentum`.
    pub muon_momentum_start: f64,
    /// With Muon: steps over which the momentum rises.
    pub muon_momentum_warmup: u64,
    /// With Muon: decoupled weight decay of the matrices it updates (`p ← p·(1 − lr·wd)`).
    pub muon_weight_decay: f64,
    /// With Muon: above 0, NorMuon — each neuron's orthogonalised update divided by the root of
    /// its running mean square, decaying by this factor a step (0.95 in NorMuon's paper and
    /// modded-nanogpt); 0: plain Muon. A run cannot switch between the two when it resumes.
    pub muon_beta2: f64,
    /// With Muon: the orthogonalisation's polynomial steps, `"quintic"` or `"polar-express"`.
    pub muon_ns: MuonNs,
    /// Peak AdamW rate of the token and position embeddings (a tied embedding is the output
    /// layer too); unset: `lr`. The schedule scales it as it scales `lr`.
    pub embedding_lr: Option<f64>,
    /// Peak AdamW rate of an untied output layer (`lm_head`); unset: `lr`.
    pub head_lr: Option<f64>,
    /// Peak AdamW rate of the value embeddings (`model.value_embeds`); unset: `embedding_lr`.
    pub value_embed_lr: Option<f64>,
    /// Peak AdamW rate of the blocks' weights on the embedded input (`model.residual_scalars`;
    /// their weights on the residual stream take a hundredth of it); unset: `lr`.
    pub scalar_lr: Option<f64>,
    /// AdamW β₁.
    pub beta1: f64,
    /// AdamW β₂.
    pub beta2: f64,
    /// AdamW ε.
    pub eps: f64,
    /// Clip the global gradient norm (over all parameters) to this; 0 turns clipping off.
    pub grad_clip: f64,
    /// Seed for initialisation, batch sampling and dropout.
    pub seed: u64,
    /// Evaluate every this many steps (and at the start and the end); 0 = only at the end.
    pub eval_every: u64,
    /// Held-out tokens per evaluation (0 = the whole held-out split).
    pub eval_tokens: usize,
    /// Save a checkpoint every this many steps (and at the end); 0 = only at the end.
    pub save_every: u64,
    /// Checkpoints kept; older ones are deleted after a newer one is complete.
    pub keep_last: usize,
    /// Print a progress line every this many steps when the output is not a terminal.
    pub log_every: u64,
    /// Steps with a non-finite loss or gradient norm that may be skipped before the run stops.
    pub max_skipped_steps: u64,
    /// Peak FLOP/s of the device for the MFU estimate; unset: derived from the CPU's vector
    /// width and clock (`peak::cpu_peak`), and no MFU on GPUs.
    pub peak_flops: Option<f64>,
}

impl Default for TrainSection {
    fn default() -> Self {
        TrainSection {
            batch_size: 12,
            total_batch_tokens: None,
            max_steps: 1000,
            lr: 6e-4,
            min_lr: 6e-5,
            warmup_steps: 100,
            decay: Decay::Cosine,
            cooldown_fraction: 0.2,
            cooldown: Cooldown::Linear,
            weight_decay: 0.1,
            optimizer: OptimizerKind::AdamW,
            precision: Precision::F32,
            muon_lr: 0.02,
            muon_momentum: 0.95,
            muon_momentum_start: 0.85,
            muon_momentum_warmup: 300,
            muon_weight_decay: 0.0,
            muon_beta2: 0.0,
            muon_ns: MuonNs::Quintic,
            embedding_lr: None,
            head_lr: None,
            value_embed_lr: None,
            scalar_lr: None,
            beta1: 0.9,
            beta2: 0.95,
            eps: 1e-8,
            grad_clip: 1.0,
            seed: 1337,
            eval_every: 250,
            eval_tokens: 65_536,
            save_every: 500,
            keep_last: 2,
            log_every: 10,
            max_skipped_steps: 10,
            peak_flops: None,
        }
    }
}

impl TrainSection {
    /// Checks every field that does not depend on the model (ranges, NaN, ordering).
    // The negated comparisons are deliberate: they reject NaN, which every `<` test passes.
    #[allow(clippy::neg_cmp_op_on_partial_ord)]
    pub fn check_fields(&self) -> std::result::Result<(), FieldError> {
        let bad = |field: &str, value: String, expected: &str| {
            Err(FieldError::new(format!("train.{field}"), value, expected))
        };
        if !(1..=1 << 16).contains(&self.batch_size) {
            return bad("batch_size", self.batch_size.to_string(), "1 to 65536");
        }
        if self.max_steps == 0 {
            return bad("max_steps", "0".into(), "at least 1");
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("lr", self.lr.to_string(), "a positive number");
        }
        if !(self.min_lr >= 0.0 && self.min_lr <= self.lr) {
            return bad("min_lr", self.min_lr.to_string(), "between 0 and lr");
        }
        if !(self.cooldown_fraction > 0.0 && self.cooldown_fraction <= 1.0) {
            return bad(
                "cooldown_fraction",
                self.cooldown_fraction.to_string(),
                "a share above 0 and at most 1",
            );
        }
        if self.warmup_steps > self.max_steps {
            return bad(
                "warmup_steps",
                self.warmup_steps.to_string(),
                "at most max_steps",
            );
        }
        for (f, v) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if !(0.0..1.0).contains(&v) {
                return bad(f, v.to_string(), "in [0, 1)");
            }
        }
        if !(self.eps > 0.0 && self.eps.is_finite()) {
            return bad("eps", self.eps.to_string(), "a positive number");
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return bad("weight_decay", self.weight_decay.to_string(), "0 or more");
        }
        if !(self.muon_lr > 0.0 && self.muon_lr.is_finite()) {
            return bad("muon_lr", self.muon_lr.to_string(), "a positive number");
        }
        for (f, v) in [
            ("muon_momentum", self.muon_momentum),
            ("muon_momentum_start", self.muon_momentum_start),
        ] {
            if !(0.0..1.0).contains(&v) {
                return bad(f, v.to_string(), "in [0, 1)");
            }
        }
        if !(self.muon_weight_decay >= 0.0 && self.muon_weight_decay.is_finite()) {
            return bad(
                "muon_weight_decay",
                self.muon_weight_decay.to_string(),
                "0 or more",
            );
        }
        if !(0.0..1.0).contains(&self.muon_beta2) {
            return bad(
                "muon_beta2",
                self.muon_beta2.to_string(),
                "in [0, 1) (0: plain Muon)",
            );
        }
        if !(self.grad_clip >= 0.0 && self.grad_clip.is_finite()) {
            return bad("grad_clip", self.grad_clip.to_string(), "0 (off) or more");
        }
        if self.keep_last == 0 {
            return bad(
                "keep_last",
                "0".into(),
                "at least 1 (the newest checkpoint is never deleted)",
            );
        }
        for (f, v) in [
            ("embedding_lr", self.embedding_lr),
            ("head_lr", self.head_lr),
            ("value_embed_lr", self.value_embed_lr),
            ("scalar_lr", self.scalar_lr),
        ] {
            if let Some(v) = v.filter(|v| !(*v > 0.0 && v.is_finite())) {
                return bad(f, v.to_string(), "a positive number (unset: lr)");
            }
        }
        if let Some(p) = self.peak_flops.filter(|p| !(*p > 0.0 && p.is_finite())) {
            return bad("peak_flops", p.to_string(), "a positive number of FLOP/s");
        }
        if self.total_batch_tokens == Some(0) {
            return bad(
                "total_batch_tokens",
                "0".into(),
                "a positive multiple of batch_size × context",
            );
        }
        Ok(())
    }

    /// Checks the fields and that `total_batch_tokens` is a whole number of micro-batches of
    /// `context` tokens per sequence; returns the micro-batches per step.
    pub fn check(&self, context: usize) -> std::result::Result<usize, FieldError> {
        self.check_fields()?;
        let per_micro = self.batch_size.checked_mul(context);
        match (self.total_batch_tokens, per_micro) {
            (None, _) => Ok(1),
            (Some(t), Some(p)) if t >= p && t.is_multiple_of(p) => Ok(t / p),
            (Some(t), _) => Err(FieldError::new(
                "train.total_batch_tokens",
                t,
                format!(
                    "a positive multiple of batch_size × context = {} × {context} = {}",
                    self.batch_size,
                    per_micro.map_or_else(|| "too many".to_string(), |p| p.to_string())
                ),
            )),
        }
    }

    /// [`TrainSection::check`] as an error of this crate (for callers without the config's
    /// source; runs started from a file report the line instead).
    pub fn validate(&self, context: usize) -> Result<usize> {
        self.check(context).map_err(|e| TrainError::Config {
            origin: "[train]".into(),
            message: format!("{} = {}: expected {}", e.key, e.value, e.expected),
        })
    }
}
