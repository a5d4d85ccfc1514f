//! Checkpoints round-trip bit for bit, and every kind of damage is reported by file name.

use std::path::Path;

use ember_model::checkpoint::{self, weights_bytes};
use ember_model::{Gpt, GptConfig};
use ember_tokenizer::{Tokenizer, TrainerConfig, train_from_texts};

use crate::common::{cpu, host, model, tokens};

fn setup(dir: &Path) -> (Gpt, GptConfig, Tokenizer) {
    let (tok, _) = train_from_texts(
        &["to be or not to be, that is the question. ".repeat(20)],
        &TrainerConfig::new(280),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let cfg = GptConfig::new(tok.vocab_size(), 2, 2, 16, 32);
    let m = model(&cfg, &cpu(9));
    checkpoint::save(dir, &m, &cfg, &tok, &[]).unwrap_or_else(|e| panic!("{e}"));
    (m, cfg, tok)
}

fn load_err(dir: &Path) -> String {
    match checkpoint::load(dir, &cpu(0)) {
        Ok(_) => "(loaded)".into(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn round_trip_is_bit_exact() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dir = tmp.path().join("ck");
    let (m, cfg, tok) = setup(&dir);
    let device = cpu(123); // another seed: everything must come from the files
    let ck = checkpoint::load(&dir, &device).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ck.config, cfg);
    assert_eq!(ck.tokenizer.to_json(), tok.to_json());
    let (a, b) = (
        weights_bytes(&m).unwrap_or_default(),
        weights_bytes(&ck.model).unwrap_or_default(),
    );
    let head = |b: &[u8]| {
        String::from_utf8_lossy(
            &b[8..(8 + u64::from_le_bytes(b[..8].try_into().unwrap_or_default()) as usize)
                .min(b.len())],
        )
        .into_owned()
    };
    assert!(
        a == b,
        "weights differ after a round trip:\n{}\n{}",
        head(&a),
        head(&b)
    );
    let ids = tok.encode("to be or not");
    assert_eq!(
        host(m.forward(tokens(&ids, &device))),
        host(ck.model.forward(tokens(&ids, &device)))
    );
    // Saving again over it replaces it atomically and leaves no temporary directories.
    checkpoint::save(
        &dir,
        &ck.model,
        &cfg,
        &tok,
        &[("notes.txt".into(), b"hi".to_vec())],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(checkpoint::load(&dir, &device).is_ok());
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["ck".to_string()]);
}

#[test]
fn damage_is_reported_naming_the_file() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fresh = |name: &str| {
        let dir = tmp.path().join(name);
        setup(&dir);
        dir
    };
    // Missing file.
    let d = fresh("missing");
    std::fs::remove_file(d.join("tokenizer.json")).unwrap_or_else(|e| panic!("{e}"));
    let e = load_err(&d);
    assert!(
        e.contains("tokenizer.json") && e.contains("cannot be read"),
        "{e}"
    );
    // Truncated weights.
    let d = fresh("truncated");
    let w = d.join("model.safetensors");
    let bytes = std::fs::read(&w).unwrap_or_default();
    std::fs::write(&w, &bytes[..bytes.len() / 2]).unwrap_or_else(|e| panic!("{e}"));
    let e = load_err(&d);
    assert!(
        e.contains("model.safetensors") && e.contains("truncated"),
        "{e}"
    );
    // One flipped byte.
    let d = fresh("flipped");
    let w = d.join("model.safetensors");
    let mut bytes = std::fs::read(&w).unwrap_or_default();
    let n = bytes.len();
    bytes[n - 10] ^= 0x40;
    std::fs::write(&w, &bytes).unwrap_or_else(|e| panic!("{e}"));
    let e = load_err(&d);
    assert!(
        e.contains("model.safetensors") && e.contains("SHA-256") && e.contains("damaged"),
        "{e}"
    );
    // No manifest (an interrupted save, or not a checkpoint).
    let d = fresh("nomanifest");
    std::fs::remove_file(d.join("manifest.json")).unwrap_or_else(|e| panic!("{e}"));
    let e = load_err(&d);
    assert!(
        e.contains("manifest.json") && e.contains("interrupted"),
        "{e}"
    );
    // Not a directory.
    let e = load_err(&d.join("config.json"));
    assert!(e.contains("not a directory"), "{e}");
}

/// Rewrites one JSON file of a checkpoint and fixes up the manifest, so only the content is wrong.
fn edit_and_reseal(dir: &Path, file: &str, edit: &dyn Fn(&mut serde_json::Value)) {
    let path = dir.join(file);
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap_or_default()).unwrap_or_default();
    edit(&mut doc);
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    std::fs::write(&path, &text).unwrap_or_else(|e| panic!("{e}"));
    if file != "manifest.json" {
        let sha = ember_files::sha256_hex(text.as_bytes());
        edit_and_reseal(dir, "manifest.json", &|m| {
            m["files"][file]["size"] = text.len().into();
            m["files"][file]["sha256"] = sha.clone().into();
        });
    }
}

#[test]
fn wrong_versions_and_mismatches_are_refused() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fresh = |name: &str| {
        let dir = tmp.path().join(name);
        setup(&dir);
        dir
    };
    let d = fresh("v2");
    edit_and_reseal(&d, "manifest.json", &|m| m["version"] = 2.into());
    let e = load_err(&d);
    assert!(
        e.contains("manifest.json") && e.contains("version 2") && e.contains("reads version 1"),
        "{e}"
    );
    let d = fresh("cfgv");
    edit_and_reseal(&d, "config.json", &|m| m["version"] = 9.into());
    let e = load_err(&d);
    assert!(e.contains("config.json") && e.contains("version 9"), "{e}");
    let d = fresh("vocab");
    edit_and_reseal(&d, "config.json", &|m| {
        m["model"]["vocab_size"] = 100.into()
    });
    let e = load_err(&d);
    assert!(e.contains("vocab_size 100") && e.contains("280"), "{e}");
    let d = fresh("shape");
    edit_and_reseal(&d, "config.json", &|m| m["model"]["n_embd"] = 32.into());
    let e = load_err(&d);
    assert!(
        e.contains("model.safetensors") && e.contains("does not match config.json"),
        "{e}"
    );
    let d = fresh("unknown");
    edit_and_reseal(&d, "config.json", &|m| m["model"]["n_layers"] = 3.into());
    let e = load_err(&d);
    assert!(e.contains("unknown field model.n_layers"), "{e}");
}

/// A checkpoint written before an architecture option existed (its config.json lacks
/// `qk_norm`, `logit_softcap`, `zero_init_proj`, `value_embeds` and `residual_scalars`) loads with the option's default, the
/// architecture it was trained with; a missing shape field is still an error naming it.
#[test]
fn options_added_later_take_their_defaults_when_a_checkpoint_lacks_them() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = tmp.path().join("old");
    setup(&d);
    edit_and_reseal(&d, "config.json", &|m| {
        if let Some(model) = m["model"].as_object_mut() {
            for key in [
                "qk_norm",
                "logit_softcap",
                "zero_init_proj",
                "value_embeds",
                "residual_scalars",
            ] {
                model.remove(key);
            }
        }
    });
    let ck = checkpoint::load(&d, &cpu(0)).unwrap_or_else(|e| panic!("{e}"));
    assert!(!ck.config.qk_norm && ck.config.logit_softcap == 0.0 && !ck.config.zero_init_proj);
    assert!(ck.config.value_embeds == 0 && !ck.config.residual_scalars);
    edit_and_reseal(&d, "config.json", &|m| {
        if let Some(model) = m["model"].as_object_mut() {
            model.remove("n_head");
        }
    });
    let e = load_err(&d);
    assert!(e.contains("n_head"), "{e}");
}
