//! Export to Hugging Face GPT-2 (`GPT2LMHeadModel` + `PreTrainedTokenizerFast`).
//!
//! Ember's default architecture is GPT-2's, and its parameter names are GPT-2's apart from
//! Burn's `gamma`/`beta` for norms, so export is a renaming under `transformer.`. Linear
//! weights are stored `[in, out]` in Burn and in GPT-2's `Conv1D` alike, so no transpose is
//! needed. A model without biases is written with zero biases (the same function).

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde_json::json;

use crate::checkpoint::verify;
use crate::config::{GptConfig, MlpKind, NormKind, Positions};
use crate::error::{ModelError, Result};

/// Why a config cannot be written as GPT-2, or `None` if it can.
pub fn gpt2_incompatibility(cfg: &GptConfig) -> Option<String> {
    let mut why = Vec::new();
    if cfg.positions != Positions::Learned {
        why.push(format!(
            "positions = {:?} (GPT-2 has learned positions)",
            cfg.positions
        ));
    }
    if cfg.norm != NormKind::LayerNorm {
        why.push(format!("norm = {:?} (GPT-2 has LayerNorm)", cfg.norm));
    }
    if cfg.mlp != MlpKind::Gelu {
        why.push(format!("mlp = {:?} (GPT-2 has a GELU MLP)", cfg.mlp));
    }
    if cfg.qk_norm {
        why.push("qk_norm = true (GPT-2 has no QK-norm)".to_string());
    }
    if cfg.logit_softcap != 0.0 {
        why.push(format!(
            "logit_softcap = {} (GPT-2 does not cap its logits)",
            cfg.logit_softcap
        ));
    }
    if cfg.value_embeds > 0 {
        why.push(format!(
            "value_embeds = {} (GPT-2 has no value embeddings)",
            cfg.value_embeds
        ));
    }
    if cfg.residual_scalars {
        why.push("residual_scalars = true (GPT-2 has no per-block scalars)".to_string());
    }
    if !cfg.tie_embeddings {
        why.push("tie_embeddings = false (GPT-2 ties the head to the token embedding)".to_string());
    }
    (!why.is_empty()).then(|| why.join("; "))
}

/// Hugging Face name of an Ember parameter.
fn hf_name(name: &str) -> String {
    let renamed = name
        .strip_suffix(".gamma")
        .map(|p| format!("{p}.weight"))
        .or_else(|| name.strip_suffix(".beta").map(|p| format!("{p}.bias")));
    format!("transformer.{}", renamed.as_deref().unwrap_or(name))
}

/// Writes `out` (a new directory, or an existing one with `overwrite`) from checkpoint `ck`.
pub fn export_hf_gpt2(ck: &Path, out: &Path, overwrite: bool) -> Result<()> {
    if out.exists() && !overwrite {
        return Err(ModelError::checkpoint(
            out,
            "already exists; pass --force to replace it",
        ));
    }
    let files = verify(ck)?;
    let get = |name: &str| files.get(name);
    let cfg = files.config(ck)?;
    if let Some(why) = gpt2_incompatibility(&cfg) {
        return Err(ModelError::checkpoint(
            ck.join("config.json"),
            format!("cannot be exported as GPT-2: {why}"),
        ));
    }
    let wpath = ck.join("model.safetensors");
    let st = SafeTensors::deserialize(get("model.safetensors"))
        .map_err(|e| ModelError::checkpoint(&wpath, e.to_string()))?;
    let mut tensors: BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)> = BTreeMap::new();
    for (name, view) in st.tensors() {
        tensors.insert(
            hf_name(&name),
            (view.dtype(), view.shape().to_vec(), view.data().to_vec()),
        );
    }
    add_zero_biases(&cfg, &mut tensors);
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, (dt, shape, data))| {
            TensorView::new(*dt, shape.clone(), data).map(|v| (n.clone(), v))
        })
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| ModelError::checkpoint(&wpath, e.to_string()))?;
    let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
    let weights = safetensors::serialize(views, Some(meta))
        .map_err(|e| ModelError::checkpoint(&wpath, e.to_string()))?;
    let tokenizer = ember_tokenizer::Tokenizer::from_json(
        &String::from_utf8_lossy(get("tokenizer.json")),
        "tokenizer.json",
    )?;
    let eot = tokenizer.token_to_id(ember_tokenizer::ENDOFTEXT);
    let pretty = |v: serde_json::Value| {
        (serde_json::to_string_pretty(&v).unwrap_or_default() + "\n").into_bytes()
    };
    let config = json!({
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2",
        "vocab_size": cfg.vocab_size, "n_positions": cfg.block_size, "n_ctx": cfg.block_size,
        "n_embd": cfg.n_embd, "n_layer": cfg.n_layer, "n_head": cfg.n_head, "n_inner": null,
        // Ember's MLP uses the exact (erf) GELU, which Hugging Face calls "gelu".
        "activation_function": "gelu", "layer_norm_epsilon": crate::layers::NORM_EPS,
        // Ember applies dropout to the residual branches and embeddings, not to attention weights.
        "resid_pdrop": cfg.dropout, "embd_pdrop": cfg.dropout, "attn_pdrop": 0.0,
        "initializer_range": 0.02, "scale_attn_weights": true, "use_cache": true,
        "tie_word_embeddings": true, "bos_token_id": eot, "eos_token_id": eot, "torch_dtype": "float32",
    });
    let tok_config = json!({
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": ember_tokenizer::ENDOFTEXT,
        "eos_token": ember_tokenizer::ENDOFTEXT, "pad_token": ember_tokenizer::ENDOFTEXT,
        "model_max_length": cfg.block_size, "clean_up_tokenization_spaces": false,
        "chat_template": ember_tokenizer::CHAT_TEMPLATE,
    });
    let generation = json!({"bos_token_id": eot, "eos_token_id": eot});
    let out_files = vec![
        ("model.safetensors".to_string(), weights),
        ("config.json".to_string(), pretty(config)),
        ("generation_config.json".to_string(), pretty(generation)),
        (
            "tokenizer.json".to_string(),
            tokenizer.to_json().into_bytes(),
        ),
        ("tokenizer_config.json".to_string(), pretty(tok_config)),
    ];
    Ok(ember_files::write_dir_atomic(out, &out_files)?)
}

/// GPT-2 always has biases; a bias-free Ember model gets zeros, which compute the same.
fn add_zero_biases(cfg: &GptConfig, tensors: &mut BTreeMap<String, (Dtype, Vec<usize>, Vec<u8>)>) {
    let d = cfg.n_embd;
    let mut want = vec![("transformer.ln_f.bias".to_string(), d)];
    for i in 0..cfg.n_layer {
        let p = format!("transformer.h.{i}.");
        for (name, n) in [
            ("ln_1.bias", d),
            ("ln_2.bias", d),
            ("attn.c_attn.bias", 3 * d),
            ("attn.c_proj.bias", d),
            ("mlp.c_fc.bias", 4 * d),
            ("mlp.c_proj.bias", d),
        ] {
            want.push((format!("{p}{name}"), n));
        }
    }
    let dtype = tensors
        .get("transformer.wte.weight")
        .map(|t| t.0)
        .unwrap_or(Dtype::F32);
    for (name, n) in want {
        tensors
            .entry(name)
            .or_insert_with(|| (dtype, vec![n], vec![0u8; n * dtype.bitsize() / 8]));
    }
}
