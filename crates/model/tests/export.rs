//! Hugging Face GPT-2 export: key names, shapes, configs, and refusal of what GPT-2 cannot express.

use ember_model::{GptConfig, Positions, checkpoint, export::export_hf_gpt2};
use ember_tokenizer::{TrainerConfig, train_from_texts};
use safetensors::SafeTensors;
use serde_json::Value;

use crate::common::{cpu, model};

fn save(dir: &std::path::Path, cfg: &GptConfig) {
    let (tok, _) = train_from_texts(
        &["one two three four. ".repeat(20)],
        &TrainerConfig::new(270),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let cfg = GptConfig {
        vocab_size: tok.vocab_size(),
        ..cfg.clone()
    };
    checkpoint::save(dir, &model(&cfg, &cpu(1)), &cfg, &tok, &[]).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn writes_gpt2_names_shapes_and_configs() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (ck, out) = (tmp.path().join("ck"), tmp.path().join("hf"));
    save(&ck, &GptConfig::new(0, 2, 2, 16, 32).with_bias(false));
    export_hf_gpt2(&ck, &out, false).unwrap_or_else(|e| panic!("{e}"));
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap_or_default();
    let st = SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("{e}"));
    let shape = |n: &str| {
        st.tensor(n)
            .map(|t| t.shape().to_vec())
            .unwrap_or_else(|e| panic!("{n}: {e}"))
    };
    assert_eq!(shape("transformer.wte.weight"), vec![270, 16]);
    assert_eq!(shape("transformer.wpe.weight"), vec![32, 16]);
    assert_eq!(
        shape("transformer.h.1.attn.c_attn.weight"),
        vec![16, 48],
        "Conv1D layout [in, out]"
    );
    assert_eq!(
        shape("transformer.h.1.attn.c_attn.bias"),
        vec![48],
        "zero biases for a bias-free model"
    );
    assert_eq!(shape("transformer.h.0.mlp.c_proj.weight"), vec![64, 16]);
    assert_eq!(shape("transformer.ln_f.weight"), vec![16]);
    assert!(
        st.names().iter().all(|n| n.starts_with("transformer.")),
        "{:?}",
        st.names()
    );
    assert!(
        !st.names()
            .iter()
            .any(|n| n.contains("gamma") || n.contains("beta"))
    );
    let config: Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap_or_default())
            .unwrap_or_default();
    assert_eq!(config["model_type"], "gpt2");
    assert_eq!(
        (
            config["n_layer"].as_u64(),
            config["n_positions"].as_u64(),
            config["vocab_size"].as_u64()
        ),
        (Some(2), Some(32), Some(270))
    );
    assert_eq!(
        config["eos_token_id"].as_u64(),
        Some(265),
        "<|endoftext|> id"
    );
    for f in [
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    ] {
        assert!(out.join(f).is_file(), "{f}");
    }
    let e = export_hf_gpt2(&ck, &out, false)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("already exists"), "{e}");
}

#[test]
fn refuses_what_gpt2_cannot_express() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ck = tmp.path().join("ck");
    save(
        &ck,
        &GptConfig::new(0, 1, 2, 16, 16)
            .with_positions(Positions::Rope)
            .with_mlp(ember_model::MlpKind::Relu2)
            .with_tie_embeddings(false)
            .with_qk_norm(true)
            .with_logit_softcap(15.0)
            .with_residual_scalars(true),
    );
    let e = export_hf_gpt2(&ck, &tmp.path().join("hf"), false)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("cannot be exported as GPT-2")
            && e.contains("Rope")
            && e.contains("Relu2")
            && e.contains("tie_embeddings = false")
            && e.contains("qk_norm = true")
            && e.contains("logit_softcap = 15")
            && e.contains("residual_scalars = true"),
        "{e}"
    );
    assert!(!tmp.path().join("hf").exists());
}
