//! What a run is: the stage recorded in its checkpoints, and the held-out conversations a
//! fine-tuning run recorded, as evaluation and reports read them.

use crate::battery::fixture;
use crate::regression::{ember_env, s};

/// A continued-pretraining run (pretraining with `[init]`) was labelled fine-tuning in its
/// report and its samples were prompted through the chat template: eval guessed the stage from
/// the config's `[init]` section. The stage is now recorded in `train_state.json`.
#[test]
fn continued_pretraining_is_reported_as_pretraining_and_sampled_as_text() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let run = dir.path().join("continued");
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[run]\nout_dir = {:?}\n[init]\ncheckpoint = {:?}\n[data]\ndir = {:?}\n[train]\nbatch_size = 4\nmax_steps = 2\nwarmup_steps = 1\nsave_every = 2\neval_every = 2\neval_tokens = 256\n",
            s(&run),
            f.p("run"),
            f.p("data")
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (ok, out, err) = ember_env(&["pretrain", "--device", "cpu", "--config", &s(&cfg)], &[]);
    assert!(ok, "{out}{err}");
    let (ok, out, err) = ember_env(
        &[
            "eval",
            "--run",
            &s(&run),
            "--device",
            "cpu",
            "--tasks",
            "samples",
            "--samples",
            "1",
            "--max-new-tokens",
            "4",
        ],
        &[],
    );
    assert!(ok, "{out}{err}");
    let results: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run.join("eval/results.json")).unwrap_or_default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let samples = &results["checkpoints"][0]["tasks"]["samples"];
    assert_eq!(samples["chat"], false, "{samples}");
    let report = std::fs::read_to_string(run.join("report.md")).unwrap_or_default();
    assert!(
        report.contains("pretraining") && !report.contains("fine-tuning"),
        "{report}"
    );
    // The fine-tuning run of the fixture is still what it is.
    let sft_report = std::fs::read_to_string(f.root.join("sft/report.md")).unwrap_or_default();
    assert!(
        sft_report.contains("supervised fine-tuning"),
        "{sft_report}"
    );
}

/// The held-out conversations an evaluation scored were re-derived from the dialogue files at
/// eval time, with no check that they were the ones the run used. A fine-tuning run now records
/// them (`heldout.json`), and eval scores exactly those even when the file has changed.
#[test]
fn sft_loss_scores_the_conversations_the_run_held_out() {
    let f = fixture();
    let (held, convs) =
        ember_formats::run::HeldOut::load(&f.root.join("sft")).unwrap_or_else(|e| panic!("{e}"));
    assert!(!convs.is_empty() && held.sources.len() == 1);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = s(&dir.path().join("r.json"));
    let (ok, stdout, err) = ember_env(
        &[
            "eval",
            "--checkpoint",
            &f.p("sft"),
            "--device",
            "cpu",
            "--tasks",
            "sft-loss",
            "--out",
            &out,
            "--no-report",
        ],
        &[],
    );
    assert!(ok, "{stdout}{err}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap_or_default())
            .unwrap_or_default();
    let t = &r["checkpoints"][0]["tasks"]["sft-loss"];
    let scored: u64 = t["method"]
        .as_str()
        .and_then(|m| m.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    // Every recorded conversation is either scored or counted as too long for the context.
    assert_eq!(
        scored + t["malformed"].as_u64().unwrap_or(0),
        convs.len() as u64,
        "{t}"
    );
    assert!(
        t["source"]
            .as_str()
            .unwrap_or_default()
            .contains("chatterbot_en.jsonl"),
        "{t}"
    );
}
