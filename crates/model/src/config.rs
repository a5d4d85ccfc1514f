//! `GptConfig`: the model's shape and architecture choices, with validation, presets, and the
//! parameter and FLOP counts used for MFU reporting.

use burn::prelude::*;

use crate::error::{ModelError, Result};

/// How token positions enter the model.
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub enum Positions {
    /// A learned embedding per position, added to the token embedding (GPT-2).
    Learned,
    /// Fixed sine/cosine embeddings added to the token embedding (original Transformer).
    Sinusoidal,
    /// Rotary embeddings applied to queries and keys in every layer (GPT-J/LLaMA).
    Rope,
}

/// Normalisation layer.
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub enum NormKind {
    /// LayerNorm with gain and (if `bias`) offset (GPT-2).
    LayerNorm,
    /// RMSNorm with gain only (LLaMA).
    RmsNorm,
}

/// Feed-forward block.
#[derive(Config, Debug, PartialEq, Eq, Copy)]
pub enum MlpKind {
    /// `Linear(d, 4d) → GELU (exact, erf) → Linear(4d, d)` (GPT-2's shape; Hugging Face's
    /// `"gelu"`).
    Gelu,
    /// `Linear(d, h) ⊙ SiLU(Linear(d, h)) → Linear(h, d)` with `h = 8d/3` rounded up to 64 (LLaMA).
    Swiglu,
    /// `Linear(d, 4d) → ReLU(x)² → Linear(4d, d)` (modded-nanogpt, nanochat).
    Relu2,
}

/// Shape and architecture of a GPT. The defaults are exactly GPT-2's architecture, so a model
/// built with them can be exported to Hugging Face `GPT2LMHeadModel`.
#[derive(Config, Debug, PartialEq)]
pub struct GptConfig {
    /// Number of token ids (at least the tokenizer's vocabulary size).
    pub vocab_size: usize,
    /// Number of transformer blocks.
    pub n_layer: usize,
    /// Attention heads per block; `n_embd` must be divisible by it.
    pub n_head: usize,
    /// Width of the residual stream.
    pub n_embd: usize,
    /// Context length: the most tokens the model attends over.
    pub block_size: usize,
    /// Dropout probability on embeddings, attention output and MLP output (training only).
    #[config(default = 0.0)]
    pub dropout: f64,
    /// Biases in linear layers and LayerNorm.
    #[config(default = true)]
    pub bias: bool,
    /// Position encoding.
    #[config(default = "Positions::Learned")]
    pub positions: Positions,
    /// Normalisation layer.
    #[config(default = "NormKind::LayerNorm")]
    pub norm: NormKind,
    /// Feed-forward block.
    #[config(default = "MlpKind::Gelu")]
    pub mlp: MlpKind,
    /// Share the token embedding with the output head (GPT-2 does).
    #[config(default = true)]
    pub tie_embeddings: bool,
    /// RMS-normalise each head's query and key (no gain) before attention (QK-norm, as in
    /// modded-nanogpt and nanochat): attention logits stay bounded, so higher learning rates
    /// are stable.
    #[config(default = false)]
    pub qk_norm: bool,
    /// Soft cap on the output logits, `c · tanh(logits / c)`; 0 leaves them as they are
    /// (nanochat uses 15).
    #[config(default = 0.0)]
    pub logit_softcap: f64,
    /// Initialise the attention and MLP output projections to zero, so that every block
    /// starts as the identity (modded-nanogpt).
    #[config(default = false)]
    pub zero_init_proj: bool,
    /// Tables of value embeddings (modded-nanogpt): table `j` maps each token to a vector added
    /// to the attention values of block `j` and of block `n_layer - 1 - j` (the same table at
    /// both ends, a U shape). 0 = none; at most `n_layer / 2` rounded up. Lookups, no products:
    /// each table adds `vocab_size · n_embd` parameters at almost no compute.
    #[config(default = 0)]
    pub value_embeds: usize,
    /// Two learned scalars per block (nanochat's `resid_lambdas` and `x0_lambdas`): block `i`
    /// reads `r[i] · x + z[i] · x0` instead of `x`, where `x0` is the embedded input, so every
    /// block can take the tokens' embeddings straight from the bottom. `r` starts at 1 and `z`
    /// at 0, so the model starts as it would without them. `2 · n_layer` parameters.
    #[config(default = false)]
    pub residual_scalars: bool,
}

/// Standard deviation of the output projections at init: GPT-2's 0.02/√(2·n_layer), or zero.
pub(crate) fn proj_std(cfg: &GptConfig) -> f64 {
    if cfg.zero_init_proj {
        0.0
    } else {
        0.02 / (2.0 * cfg.n_layer as f64).sqrt()
    }
}

/// Table `j < tables` serves blocks `j` and `n_layer - 1 - j`.
pub(crate) fn value_table(n_layer: usize, tables: usize, layer: usize) -> Option<usize> {
    let mirrored = n_layer.checked_sub(layer + 1)?;
    [layer, mirrored].into_iter().find(|&j| j < tables)
}

/// Presets by name: `gpt2-small` (GPT-2 124M), `tiny` (tests, ~0.1M parameters) and
/// `nano` (nanoGPT's CPU Shakespeare shape).
pub const PRESETS: [&str; 3] = ["gpt2-small", "tiny", "nano"];

impl GptConfig {
    /// A named preset with the given vocabulary size; `None` for an unknown name.
    pub fn preset(name: &str, vocab_size: usize) -> Option<Self> {
        Some(match name {
            "gpt2-small" => GptConfig::new(vocab_size, 12, 12, 768, 1024),
            "tiny" => GptConfig::new(vocab_size, 2, 2, 32, 32),
            "nano" => GptConfig::new(vocab_size, 4, 4, 128, 64),
            _ => return None,
        })
    }

    /// Checks every field; the error names the field, its value and what is allowed.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, value: String, expected: &str| {
            Err(ModelError::Config {
                field,
                value,
                expected: expected.to_string(),
            })
        };
        for (field, v) in [
            ("vocab_size", self.vocab_size),
            ("n_layer", self.n_layer),
            ("n_head", self.n_head),
            ("block_size", self.block_size),
        ] {
            if v == 0 {
                return bad(field, v.to_string(), "at least 1");
            }
        }
        if self.n_embd == 0 || !self.n_embd.is_multiple_of(self.n_head) {
            return bad(
                "n_embd",
                self.n_embd.to_string(),
                &format!("a positive multiple of n_head = {}", self.n_head),
            );
        }
        if self.positions == Positions::Rope && !self.head_dim().is_multiple_of(2) {
            return bad(
                "n_embd",
                self.n_embd.to_string(),
                "an even head size (n_embd / n_head) for rope",
            );
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad("dropout", self.dropout.to_string(), "in [0, 1)");
        }
        if !(self.logit_softcap.is_finite() && self.logit_softcap >= 0.0) {
            return bad(
                "logit_softcap",
                self.logit_softcap.to_string(),
                "a finite cap ≥ 0 (0 = no cap)",
            );
        }
        if self.value_embeds > self.n_layer.div_ceil(2) {
            return bad(
                "value_embeds",
                self.value_embeds.to_string(),
                &format!(
                    "at most n_layer / 2 rounded up = {} (each table serves a block at each end)",
                    self.n_layer.div_ceil(2)
                ),
            );
        }
        for (field, v, max) in [
            ("vocab_size", self.vocab_size, 1 << 24),
            ("block_size", self.block_size, 1 << 20),
            ("n_embd", self.n_embd, 1 << 16),
            ("n_layer", self.n_layer, 1 << 12),
        ] {
            if v > max {
                return bad(field, v.to_string(), &format!("at most {max}"));
            }
        }
        Ok(())
    }

    /// Checks that the model can embed every id of a tokenizer with `tokenizer_vocab` ids.
    pub fn check_tokenizer(&self, tokenizer_vocab: usize) -> Result<()> {
        if self.vocab_size < tokenizer_vocab {
            return Err(ModelError::Config {
                field: "vocab_size",
                value: self.vocab_size.to_string(),
                expected: format!("at least the tokenizer's {tokenizer_vocab} ids"),
            });
        }
        Ok(())
    }

    /// Size of one attention head.
    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    /// The value-embedding table block `layer` adds to its values, if any (see
    /// [`GptConfig::value_embeds`]).
    pub fn value_table(&self, layer: usize) -> Option<usize> {
        value_table(self.n_layer, self.value_embeds, layer)
    }

    /// Hidden width of the MLP.
    pub fn mlp_hidden(&self) -> usize {
        match self.mlp {
            MlpKind::Gelu | MlpKind::Relu2 => 4 * self.n_embd,
            MlpKind::Swiglu => (8 * self.n_embd / 3).div_ceil(64) * 64,
        }
    }

    /// Number of trainable parameters (tied weights counted once).
    pub fn num_params(&self) -> usize {
        let (d, h, v) = (self.n_embd, self.mlp_hidden(), self.vocab_size);
        let b = usize::from(self.bias);
        let norm = if self.norm == NormKind::LayerNorm {
            d * (1 + b)
        } else {
            d
        };
        let attn = d * 3 * d + 3 * d * b + d * d + d * b;
        let mlp = match self.mlp {
            MlpKind::Gelu | MlpKind::Relu2 => d * h + h * b + h * d + d * b,
            MlpKind::Swiglu => 2 * (d * h + h * b) + h * d + d * b,
        };
        let pos = if self.positions == Positions::Learned {
            self.block_size * d
        } else {
            0
        };
        let head = if self.tie_embeddings { 0 } else { d * v };
        let values = self.value_embeds * v * d;
        let scalars = 2 * self.n_layer * usize::from(self.residual_scalars);
        v * d + pos + values + scalars + self.n_layer * (2 * norm + attn + mlp) + norm + head
    }

    /// Training FLOPs per token for a full context (forward + backward, 6 per weight plus the
    /// attention scores), as in the PaLM paper's MFU appendix; used for MFU reporting.
    pub fn flops_per_token(&self) -> f64 {
        let pos = if self.positions == Positions::Learned {
            self.block_size * self.n_embd
        } else {
            0
        };
        let embed = if self.tie_embeddings {
            0
        } else {
            self.vocab_size * self.n_embd
        };
        // The input embedding and the value embeddings are lookups (no FLOPs); the tied head
        // still multiplies.
        let values = self.value_embeds * self.vocab_size * self.n_embd;
        let scalars = 2 * self.n_layer * usize::from(self.residual_scalars);
        let matmul_params = (self.num_params() - pos - embed - values - scalars) as f64;
        let attn = 12.0 * (self.n_layer * self.n_embd * self.block_size) as f64;
        6.0 * matmul_params + attn
    }
}
