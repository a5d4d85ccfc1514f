//! The pretraining config file: `[run]`, `[data]`, `[model]`, `[train]` and an optional
//! `[init]` (see `configs/`).

use std::path::PathBuf;

use ember_model::{GptConfig, MlpKind, NormKind, Positions};
use ember_train::TrainSection;
use ember_train::config::FieldError;
pub use ember_train::config::RunSection;
use serde::{Deserialize, Serialize};

use crate::error::{PretrainError, Result};
use crate::objective::ObjectiveSection;

/// A whole pretraining run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PretrainConfig {
    /// Where the run goes.
    pub run: RunSection,
    /// Start from a checkpoint's weights instead of a fresh initialisation (nanoGPT's
    /// `init_from`): continued pretraining, or a run from weights shared with another framework.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<InitSection>,
    /// What it trains on.
    pub data: DataSection,
    /// The model's shape.
    #[serde(default)]
    pub model: ModelSection,
    /// Optimizer, schedule and cadence.
    #[serde(default)]
    pub train: TrainSection,
    /// What the model learns to predict (next token by default).
    #[serde(default, skip_serializing_if = "ObjectiveSection::is_default")]
    pub objective: ObjectiveSection,
}

/// `[init]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InitSection {
    /// A checkpoint directory, or a run directory (its newest complete checkpoint). The model
    /// shape is the checkpoint's when `[model]` is left out; otherwise the two must agree. The
    /// optimizer, schedule and step start afresh.
    pub checkpoint: PathBuf,
}

/// `[data]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataSection {
    /// A directory written by `ember prepare` (shards, tokenizer.json, meta.json); its
    /// held-out split is what evaluations report.
    pub dir: PathBuf,
    /// Other prepared directories mixed into the training rows (dialogue from
    /// `ember prepare --dialogue`, say), each with its share of the rows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mix: Vec<MixSource>,
}

/// One `[[data.mix]]` source.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MixSource {
    /// A directory written by `ember prepare` with the same tokenizer as `data.dir`.
    pub dir: PathBuf,
    /// Share of the training rows drawn from it once it has started (the shares of all mixed
    /// sources add up to less than 1; `data.dir` gets the rest).
    pub weight: f64,
    /// First optimizer step that draws from it (nanochat's mid-training starts late).
    #[serde(default)]
    pub start_step: u64,
    /// Which of its tokens are trained on: `"all"` (every next token) or `"replies"` (the
    /// assistant's replies of rendered conversations, as fine-tuning trains them).
    #[serde(default, skip_serializing_if = "MixLoss::is_all")]
    pub loss: MixLoss,
}

/// Which tokens of a mixed source count in the loss.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MixLoss {
    /// Every next token.
    #[default]
    All,
    /// Only targets inside an assistant reply (and the `<|end|>` closing it).
    Replies,
}

impl MixLoss {
    fn is_all(&self) -> bool {
        *self == MixLoss::All
    }
}

/// `[model]`: a preset and/or explicit fields (explicit fields win). Unset fields take the
/// preset's value, or GPT-2's defaults; `vocab_size` defaults to the tokenizer's.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSection {
    /// `gpt2-small`, `tiny` or `nano`.
    pub preset: Option<String>,
    /// Token ids (at least the tokenizer's).
    pub vocab_size: Option<usize>,
    /// Blocks.
    pub n_layer: Option<usize>,
    /// Heads per block.
    pub n_head: Option<usize>,
    /// Residual width.
    pub n_embd: Option<usize>,
    /// Context length.
    pub block_size: Option<usize>,
    /// Dropout probability.
    pub dropout: Option<f64>,
    /// Biases in linear layers and norms.
    pub bias: Option<bool>,
    /// `learned`, `sinusoidal` or `rope`.
    pub positions: Option<String>,
    /// `layernorm` or `rmsnorm`.
    pub norm: Option<String>,
    /// `gelu`, `swiglu` or `relu2`.
    pub mlp: Option<String>,
    /// Output head shares the token embedding.
    pub tie_embeddings: Option<bool>,
    /// RMS-normalised queries and keys per head.
    pub qk_norm: Option<bool>,
    /// Soft cap on the logits, `c · tanh(logits / c)` (0 = none).
    pub logit_softcap: Option<f64>,
    /// Attention and MLP output projections start at zero.
    pub zero_init_proj: Option<bool>,
    /// Tables of value embeddings (0 = none), each added to the values of a block at each end.
    pub value_embeds: Option<usize>,
    /// Two learned scalars per block on its input: `r[i]·x + z[i]·x0` (nanochat).
    pub residual_scalars: Option<bool>,
}

fn choice<T: Copy>(
    field: &'static str,
    value: &Option<String>,
    options: &[(&str, T)],
    current: T,
) -> Result<T> {
    let Some(v) = value else { return Ok(current) };
    options
        .iter()
        .find(|(n, _)| n == v)
        .map(|(_, t)| *t)
        .ok_or_else(|| PretrainError::Option {
            option: field,
            value: v.clone(),
            expected: format!(
                "one of {}",
                options
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
}

impl ModelSection {
    /// The model config for a tokenizer of `tokenizer_vocab` ids.
    pub fn resolve(&self, tokenizer_vocab: usize) -> Result<GptConfig> {
        let vocab = self.vocab_size.unwrap_or(tokenizer_vocab);
        let mut c = match &self.preset {
            Some(p) => GptConfig::preset(p, vocab).ok_or_else(|| PretrainError::Option {
                option: "model.preset",
                value: p.clone(),
                expected: format!("one of {}", ember_model::PRESETS.join(", ")),
            })?,
            None => {
                let need = |v: Option<usize>, f: &'static str| {
                    v.ok_or_else(|| PretrainError::Option {
                        option: f,
                        value: "unset".into(),
                        expected: "a value (or a model.preset)".into(),
                    })
                };
                GptConfig::new(
                    vocab,
                    need(self.n_layer, "model.n_layer")?,
                    need(self.n_head, "model.n_head")?,
                    need(self.n_embd, "model.n_embd")?,
                    need(self.block_size, "model.block_size")?,
                )
            }
        };
        c.vocab_size = vocab;
        c.n_layer = self.n_layer.unwrap_or(c.n_layer);
        c.n_head = self.n_head.unwrap_or(c.n_head);
        c.n_embd = self.n_embd.unwrap_or(c.n_embd);
        c.block_size = self.block_size.unwrap_or(c.block_size);
        c.dropout = self.dropout.unwrap_or(c.dropout);
        c.bias = self.bias.unwrap_or(c.bias);
        c.tie_embeddings = self.tie_embeddings.unwrap_or(c.tie_embeddings);
        c.qk_norm = self.qk_norm.unwrap_or(c.qk_norm);
        c.logit_softcap = self.logit_softcap.unwrap_or(c.logit_softcap);
        c.zero_init_proj = self.zero_init_proj.unwrap_or(c.zero_init_proj);
        c.value_embeds = self.value_embeds.unwrap_or(c.value_embeds);
        c.residual_scalars = self.residual_scalars.unwrap_or(c.residual_scalars);
        c.positions = choice(
            "model.positions",
            &self.positions,
            &[
                ("learned", Positions::Learned),
                ("sinusoidal", Positions::Sinusoidal),
                ("rope", Positions::Rope),
            ],
            c.positions,
        )?;
        c.norm = choice(
            "model.norm",
            &self.norm,
            &[
                ("layernorm", NormKind::LayerNorm),
                ("rmsnorm", NormKind::RmsNorm),
            ],
            c.norm,
        )?;
        c.mlp = choice(
            "model.mlp",
            &self.mlp,
            &[
                ("gelu", MlpKind::Gelu),
                ("swiglu", MlpKind::Swiglu),
                ("relu2", MlpKind::Relu2),
            ],
            c.mlp,
        )?;
        c.validate()?;
        c.check_tokenizer(tokenizer_vocab)?;
        Ok(c)
    }

    /// The section with every field set from `c` (what is printed and saved).
    pub fn resolved(c: &GptConfig) -> ModelSection {
        let name = |s: &str| Some(s.to_string());
        ModelSection {
            preset: None,
            vocab_size: Some(c.vocab_size),
            n_layer: Some(c.n_layer),
            n_head: Some(c.n_head),
            n_embd: Some(c.n_embd),
            block_size: Some(c.block_size),
            dropout: Some(c.dropout),
            bias: Some(c.bias),
            positions: name(match c.positions {
                Positions::Learned => "learned",
                Positions::Sinusoidal => "sinusoidal",
                Positions::Rope => "rope",
            }),
            norm: name(match c.norm {
                NormKind::LayerNorm => "layernorm",
                NormKind::RmsNorm => "rmsnorm",
            }),
            mlp: name(match c.mlp {
                MlpKind::Gelu => "gelu",
                MlpKind::Swiglu => "swiglu",
                MlpKind::Relu2 => "relu2",
            }),
            tie_embeddings: Some(c.tie_embeddings),
            qk_norm: Some(c.qk_norm),
            logit_softcap: Some(c.logit_softcap),
            zero_init_proj: Some(c.zero_init_proj),
            // Only when used, so the runs of before the option print and save as they did.
            value_embeds: (c.value_embeds > 0).then_some(c.value_embeds),
            residual_scalars: c.residual_scalars.then_some(true),
        }
    }
}

/// The names `[model]`'s string fields accept.
const POSITIONS: [&str; 3] = ["learned", "sinusoidal", "rope"];
const NORMS: [&str; 2] = ["layernorm", "rmsnorm"];
const MLPS: [&str; 3] = ["gelu", "swiglu", "relu2"];

// The negated comparisons are deliberate: they reject NaN, which every `<` test passes.
#[allow(clippy::neg_cmp_op_on_partial_ord)]
impl ember_train::config::Validate for PretrainConfig {
    fn check(&self) -> Result<(), FieldError> {
        self.train.check_fields()?;
        self.objective.check()?;
        let m = &self.model;
        for (field, v) in [
            ("vocab_size", m.vocab_size),
            ("n_layer", m.n_layer),
            ("n_head", m.n_head),
            ("n_embd", m.n_embd),
            ("block_size", m.block_size),
        ] {
            if v == Some(0) {
                return Err(FieldError::new(format!("model.{field}"), 0, "at least 1"));
            }
        }
        let mut total = 0.0;
        for (i, s) in self.data.mix.iter().enumerate() {
            if !(s.weight > 0.0 && s.weight < 1.0) {
                return Err(FieldError::new(
                    format!("data.mix[{i}].weight"),
                    s.weight,
                    "a share above 0 and below 1",
                ));
            }
            total += s.weight;
        }
        if total >= 1.0 {
            return Err(FieldError::new(
                "data.mix[0].weight",
                format!("{total} in all"),
                "shares adding up to less than 1 (data.dir gets the rest)",
            ));
        }
        if let Some(d) = m.dropout.filter(|d| !(*d >= 0.0 && *d < 1.0)) {
            return Err(FieldError::new("model.dropout", d, "in [0, 1)"));
        }
        if let Some(c) = m.logit_softcap.filter(|c| !(c.is_finite() && *c >= 0.0)) {
            return Err(FieldError::new(
                "model.logit_softcap",
                c,
                "a finite cap ≥ 0 (0 = none)",
            ));
        }
        let enums: [(&str, &Option<String>, &[&str]); 4] = [
            ("preset", &m.preset, &ember_model::PRESETS),
            ("positions", &m.positions, &POSITIONS),
            ("norm", &m.norm, &NORMS),
            ("mlp", &m.mlp, &MLPS),
        ];
        for (field, value, options) in enums {
            if let Some(v) = value.as_ref().filter(|v| !options.contains(&v.as_str())) {
                return Err(FieldError::new(
                    format!("model.{field}"),
                    format!("{v:?}"),
                    format!("one of {}", options.join(", ")),
                ));
            }
        }
        Ok(())
    }
}
