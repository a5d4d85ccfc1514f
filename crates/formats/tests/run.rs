//! Run directories: the stage recorded in train_state.json (and inferred for version 1), the
//! held-out conversations of a fine-tuning run.

use ember_formats::dialogue::{Conversation, parse_line};
use ember_formats::run::{
    HeldOut, HeldOutSource, STATE_VERSION, Stage, TrainState, read_state, state_of,
};
use ember_model::{DeviceChoice, GptConfig, Precision, checkpoint, select_device};
use ember_tokenizer::{TrainerConfig, train_from_texts};

/// Saves a tiny checkpoint with `state` and `run_config` as its training files.
fn checkpoint_with(dir: &std::path::Path, state: &serde_json::Value, run_config: &str) {
    let device = select_device(DeviceChoice::Cpu, Precision::F32)
        .unwrap()
        .device;
    let (tok, _) = train_from_texts(&["hello world"], &TrainerConfig::new(270)).unwrap();
    let cfg = GptConfig::new(tok.vocab_size(), 1, 1, 8, 8);
    let extra = vec![
        (
            "train_state.json".to_string(),
            state.to_string().into_bytes(),
        ),
        (
            "run_config.toml".to_string(),
            run_config.as_bytes().to_vec(),
        ),
    ];
    checkpoint::save(dir, &cfg.init(&device), &cfg, &tok, &extra).unwrap();
}

fn state_json(version: u32, stage: Option<&str>) -> serde_json::Value {
    let mut v = serde_json::json!({"format": "ember-train-state", "version": version, "step": 3,
        "tokens_seen": 10, "skipped_steps": 0, "elapsed_s": 1.0, "seed": 1, "micro_batches": 1,
        "tokenizer_sha256": "00"});
    if let Some(s) = stage {
        v["stage"] = s.into();
    }
    v
}

#[test]
fn the_stage_is_read_from_the_state_and_inferred_for_version_1() {
    let dir = tempfile::tempdir().unwrap();
    let sft_config = "[run]\nout_dir = \"r\"\n[init]\ncheckpoint = \"c\"\n[data]\nfiles = [{ path = \"d.jsonl\" }]\n";
    // Continued pretraining also has an [init] section: it is still pretraining.
    let continued = "[run]\nout_dir = \"r\"\n[init]\ncheckpoint = \"c\"\n[data]\ndir = \"data\"\n";
    for (name, state, config, want) in [
        ("v2-sft", state_json(2, Some("sft")), continued, Stage::Sft),
        (
            "v2-pre",
            state_json(2, Some("pretrain")),
            sft_config,
            Stage::Pretrain,
        ),
        ("v1-sft", state_json(1, None), sft_config, Stage::Sft),
        (
            "v1-continued",
            state_json(1, None),
            continued,
            Stage::Pretrain,
        ),
    ] {
        let ck = dir.path().join(name);
        checkpoint_with(&ck, &state, config);
        let files = checkpoint::verify(&ck).unwrap();
        assert_eq!(read_state(&files, &ck).unwrap().stage, want, "{name}");
        assert_eq!(state_of(&ck).map(|s| s.stage), Some(want), "{name}");
    }
    let ck = dir.path().join("v3");
    checkpoint_with(&ck, &state_json(3, Some("sft")), continued);
    let err = read_state(&checkpoint::verify(&ck).unwrap(), &ck)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("train_state.json") && err.contains("version 3"),
        "{err}"
    );
}

#[test]
fn a_fresh_state_is_the_current_version_with_its_stage() {
    let (tok, _) = train_from_texts(&["hello world"], &TrainerConfig::new(270)).unwrap();
    let s = TrainState::fresh(Stage::Sft, 7, 2, &tok);
    assert_eq!((s.version, s.stage), (STATE_VERSION, Stage::Sft));
    let text = serde_json::to_string(&s).unwrap();
    assert!(text.contains("\"stage\":\"sft\""), "{text}");
}

#[test]
fn held_out_conversations_round_trip_and_damage_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let line = r#"{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello!"}]}"#;
    let convs = vec![Conversation {
        messages: parse_line(line).unwrap(),
        line: 4,
    }];
    let source = HeldOutSource {
        path: "d.jsonl".into(),
        sha256: ember_files::sha256_hex(line.as_bytes()),
        lines: vec![4],
    };
    HeldOut::new(vec![source.clone()], &convs)
        .save(dir.path())
        .unwrap();
    let (h, back) = HeldOut::load(dir.path()).unwrap();
    assert_eq!(h.sources, vec![source]);
    assert_eq!(back[0].messages, convs[0].messages);
    let path = dir.path().join("heldout.json");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("\"assistant\"", "\"robot\"");
    std::fs::write(&path, text).unwrap();
    let err = HeldOut::load(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("heldout.json") && err.contains("conversations[0]"),
        "{err}"
    );
}
