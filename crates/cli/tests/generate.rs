//! `ember generate` on a checkpoint made with the library.

use std::path::Path;

use burn::prelude::*;
use ember_model::{GptConfig, checkpoint};
use ember_tokenizer::{TrainerConfig, train_from_texts};

use crate::tokenizer::ember;

fn make_checkpoint(dir: &Path) -> String {
    let (tok, _) = train_from_texts(
        &["hello world, hello there. ".repeat(20)],
        &TrainerConfig::new(280),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let device = Device::flex();
    let cfg = GptConfig::new(tok.vocab_size(), 1, 2, 16, 32);
    // Drawn at once under the seed's lock: other tests of the binary use the generator too.
    let model = ember_model::with_seed(&device, 3, || cfg.init(&device).drawn());
    let path = dir.join("ck");
    checkpoint::save(&path, &model, &cfg, &tok, &[]).unwrap_or_else(|e| panic!("{e}"));
    path.display().to_string()
}

#[test]
fn generates_deterministically_and_reports_speed() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ck = make_checkpoint(dir.path());
    let args = [
        "generate",
        "--checkpoint",
        &ck,
        "--prompt",
        "hello",
        "--max-new-tokens",
        "6",
        "--temperature",
        "0.9",
        "--seed",
        "5",
        "--device",
        "cpu",
    ];
    let a = ember(&args);
    assert!(a.ok, "{}", a.stderr);
    assert!(a.stdout.starts_with("hello"), "{}", a.stdout);
    assert!(
        a.stderr.contains("device: cpu") && a.stderr.contains("tokens/s"),
        "{}",
        a.stderr
    );
    let b = ember(&args);
    assert_eq!(a.stdout, b.stdout, "same seed, same text");
}

#[test]
fn errors_name_the_problem() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ck = make_checkpoint(dir.path());
    let long = "hello ".repeat(40);
    let e = ember(&[
        "generate",
        "--checkpoint",
        &ck,
        "--prompt",
        &long,
        "--device",
        "cpu",
        "--max-new-tokens",
        "4",
    ]);
    assert!(
        !e.ok && e.stderr.contains("exceeds the context length 32"),
        "{}",
        e.stderr
    );
    let missing = dir.path().join("nope").display().to_string();
    let e = ember(&[
        "generate",
        "--checkpoint",
        &missing,
        "--prompt",
        "x",
        "--device",
        "cpu",
    ]);
    assert!(
        !e.ok && e.stderr.contains("nope") && e.stderr.contains("not a directory"),
        "{}",
        e.stderr
    );
    let e = ember(&[
        "generate",
        "--checkpoint",
        &ck,
        "--prompt",
        "x",
        "--device",
        "tpu",
    ]);
    assert!(!e.ok && e.stderr.contains("tpu"), "{}", e.stderr);
    assert!(!e.stderr.contains("panicked"));
}

#[test]
fn bf16_generation_casts_the_f32_checkpoint_and_runs() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ck = make_checkpoint(dir.path());
    let args = [
        "generate",
        "--checkpoint",
        &ck,
        "--prompt",
        "hello",
        "--max-new-tokens",
        "6",
        "--seed",
        "1",
        "--device",
        "cpu",
        "--dtype",
        "bf16",
    ];
    let out = ember(&args);
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stderr.contains("bf16") || out.stdout.contains("bf16"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stderr.contains("[6 tokens") || out.stdout.contains("[6 tokens"),
        "{}{}",
        out.stdout,
        out.stderr
    );
}

#[test]
fn neighbors_lists_the_nearest_tokens_as_text_and_json() {
    let f = crate::battery::fixture();
    let out = ember(&[
        "neighbors",
        "--checkpoint",
        &f.p("run"),
        "--token",
        "the",
        "--k",
        "5",
        "--device",
        "cpu",
    ]);
    assert!(out.ok, "{}", out.stderr);
    assert_eq!(out.stdout.lines().count(), 6, "{}", out.stdout);
    let out = ember(&[
        "neighbors",
        "--checkpoint",
        &f.p("run"),
        "--token",
        "Romeo",
        "--k",
        "3",
        "--json",
        "--device",
        "cpu",
    ]);
    assert!(out.ok, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let n = v["neighbors"].as_array().unwrap();
    assert_eq!(n.len(), 3);
    let sims: Vec<f64> = n
        .iter()
        .map(|x| x["similarity"].as_f64().unwrap())
        .collect();
    assert!(sims.windows(2).all(|w| w[0] >= w[1]) && sims.iter().all(|s| (-1.0..=1.0).contains(s)));
    let out = ember(&[
        "neighbors",
        "--checkpoint",
        &f.p("run"),
        "--token",
        "",
        "--device",
        "cpu",
    ]);
    assert!(!out.ok && out.stderr.contains("--token"), "{}", out.stderr);
}

/// `--map`: the tokenizer's first merges of whole text drawn on the embeddings' first two
/// principal components, one labelled dot each.
#[test]
fn neighbors_map_draws_the_most_frequent_tokens() {
    let f = crate::battery::fixture();
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("map.svg");
    let out = ember(&[
        "neighbors",
        "--checkpoint",
        &f.p("run"),
        "--map",
        &svg.display().to_string(),
        "--map-tokens",
        "40",
        "--device",
        "cpu",
    ]);
    assert!(out.ok, "{}", out.stderr);
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.contains("principal components"));
    assert_eq!(text.matches("<circle").count(), 40, "{text}");
    let out = ember(&["neighbors", "--checkpoint", &f.p("run"), "--device", "cpu"]);
    assert!(!out.ok && out.stderr.contains("--token"), "{}", out.stderr);
}

#[test]
fn attention_draws_every_head_and_prints_causal_weights() {
    let f = crate::battery::fixture();
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("a.svg");
    let text = "ROMEO: But soft, what light";
    let out = ember(&[
        "attention",
        "--checkpoint",
        &f.p("run"),
        "--text",
        text,
        "--out",
        &svg.display().to_string(),
        "--device",
        "cpu",
    ]);
    assert!(out.ok, "{}", out.stderr);
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(
        s.starts_with("<svg") && s.contains("layer 1, head 1") && s.contains("<title>"),
        "{}",
        &s[..200]
    );
    let out = ember(&[
        "attention",
        "--checkpoint",
        &f.p("run"),
        "--text",
        text,
        "--layer",
        "1",
        "--head",
        "0",
        "--json",
        "--device",
        "cpu",
    ]);
    assert!(out.ok, "{}", out.stderr);
    let v: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let maps = v["maps"].as_array().unwrap();
    assert_eq!(maps.len(), 1);
    let rows = maps[0]["weights"].as_array().unwrap();
    assert_eq!(rows.len(), v["tokens"].as_array().unwrap().len());
    for (q, row) in rows.iter().enumerate() {
        let row: Vec<f64> = row
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-4);
        assert!(row[q + 1..].iter().all(|&x| x == 0.0));
    }
    let out = ember(&[
        "attention",
        "--checkpoint",
        &f.p("run"),
        "--text",
        text,
        "--layer",
        "9",
        "--device",
        "cpu",
    ]);
    assert!(
        !out.ok && out.stderr.contains("--layer 9"),
        "{}",
        out.stderr
    );
}

/// The CPU decodes with Ember's kernels (attention against a token-major cache, few-row
/// products); with `EMBER_FUSED_CPU=0` Burn's operations and a tensor cache. Both must pick the
/// same tokens, for a prompt long enough to take the kernel's prompt path and for the steps.
#[test]
fn greedy_text_is_the_same_with_and_without_the_decoding_kernels() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let ck = make_checkpoint(dir.path());
    let run = |fused: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ember"))
            .args(["generate", "--checkpoint", &ck, "--max-new-tokens", "12"])
            .args(["--temperature", "0", "--device", "cpu", "--stop", "zzz"])
            .args([
                "--prompt",
                "hello world, hello there. hello world, hello there. hello",
            ])
            .env("EMBER_FUSED_CPU", fused)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{stderr}");
        (String::from_utf8_lossy(&out.stdout).to_string(), stderr)
    };
    let (with, log) = run("1");
    assert!(log.contains("fused kernels for"), "{log}");
    let (without, log) = run("0");
    assert!(log.contains("fused kernels off"), "{log}");
    assert_eq!(with, without);
}

/// A hybrid-trained model has one embedding row past the tokenizer's ids (the mask token):
/// `ember neighbors` listed it as a neighbour with empty text. Only ids the tokenizer can
/// write are listed; generation and export of the model work unchanged.
#[test]
fn neighbors_of_a_hybrid_model_never_list_the_mask_token() {
    let f = crate::battery::fixture();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let run = dir.path().join("hybrid").display().to_string();
    let tiny = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs/tiny.toml")
        .display()
        .to_string();
    let sets = [
        format!("run.out_dir={run:?}"),
        format!("data.dir={:?}", f.p("data")),
        "model.block_size=64".into(),
        "train.max_steps=3".into(),
        "train.warmup_steps=1".into(),
        "objective.kind=\"hybrid\"".into(),
        "objective.masked_share=0.5".into(),
    ];
    let mut args = vec!["pretrain", "--device", "cpu", "--config", &tiny];
    for s in &sets {
        args.extend(["--set", s]);
    }
    let out = ember(&args);
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    let tok: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(f.root.join("tok.json")).unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let n = tok["model"]["vocab"].as_object().map_or(0, |v| v.len())
        + tok["added_tokens"].as_array().map_or(0, |v| v.len());
    let out = ember(&[
        "neighbors",
        "--checkpoint",
        &run,
        "--token",
        "the",
        "--k",
        "1000",
        "--json",
        "--device",
        "cpu",
    ]);
    assert!(out.ok, "{}", out.stderr);
    let v: serde_json::Value =
        serde_json::from_str(out.stdout.trim()).unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<u64> = v["neighbors"]
        .as_array()
        .unwrap_or_else(|| panic!("{v}"))
        .iter()
        .filter_map(|x| x["id"].as_u64())
        .collect();
    assert!(ids.len() > 300, "{}", ids.len());
    assert!(
        ids.iter().all(|&id| (id as usize) < n),
        "an id past the tokenizer's {n}: {ids:?}"
    );
    let out = ember(&[
        "generate",
        "--checkpoint",
        &run,
        "--prompt",
        "ROMEO:",
        "--max-new-tokens",
        "5",
        "--device",
        "cpu",
    ]);
    assert!(
        out.ok && out.stdout.starts_with("ROMEO:"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    // The export keeps the extra row (Hugging Face models may have more ids than their tokenizer).
    let hf = dir.path().join("hf");
    let out = ember(&[
        "export",
        "--checkpoint",
        &run,
        "--out",
        &hf.display().to_string(),
    ]);
    assert!(out.ok, "{}", out.stderr);
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(hf.join("config.json")).unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config["vocab_size"].as_u64(), Some(n as u64 + 1));
}
