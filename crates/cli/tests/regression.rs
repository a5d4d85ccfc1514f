//! One test per fixed bug, named after what went wrong.

use crate::tokenizer::ember;

/// `ember tokenizer decode` must print exactly the decoded text when it ends in a newline,
/// adding a newline only when the text lacks one.
#[test]
fn decode_does_not_double_a_trailing_newline() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let tok = crate::tokenizer::trained(dir.path());
    let ids = ember(&["tokenizer", "encode", "--tokenizer", &tok, "--text", "hi\n"]).stdout;
    let out = ember(&[
        "tokenizer",
        "decode",
        "--tokenizer",
        &tok,
        "--ids",
        ids.trim(),
    ]);
    assert_eq!(out.stdout, "hi\n");
}

/// The README's main job writes `runs/tokenizer.json` on a fresh clone, where `runs/` does not
/// exist yet: saving must create the directory, and I/O errors must not repeat their cause.
#[test]
fn train_creates_the_output_directory() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = dir
        .path()
        .join("runs/nested/tokenizer.json")
        .display()
        .to_string();
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/tinyshakespeare.txt")
        .display()
        .to_string();
    let r = ember(&[
        "tokenizer",
        "train",
        "--input",
        &corpus,
        "--vocab-size",
        "300",
        "--out",
        &out,
    ]);
    assert!(r.ok, "{}", r.stderr);
    assert!(std::path::Path::new(&out).is_file());
}

// ---- Bad input: every bad input gets a clear error and loses nothing. The battery in
// battery.rs covers each class broadly; these pin the reported cases one by one.

use std::path::Path;
use std::process::Command;

use crate::battery::fixture;

/// Runs `ember` with extra environment variables; (success, stdout, stderr). A panic (exit
/// code 101) fails the calling test at once.
pub fn ember_env(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("running ember: {e}"));
    assert_ne!(out.status.code(), Some(101), "panicked: {out:?}");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn s(p: &Path) -> String {
    p.display().to_string()
}

/// `[train] batch_size = 0` divided by zero in the pretraining task before `[train]` was checked.
#[test]
fn batch_size_zero_is_refused_at_its_line_before_any_data_is_read() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[run]\nout_dir = {:?}\n[data]\ndir = {:?}\n[train]\nbatch_size = 0\n",
            s(&dir.path().join("r")),
            f.p("data")
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (ok, _, err) = ember_env(&["pretrain", "--device", "cpu", "--config", &s(&cfg)], &[]);
    assert!(
        !ok && err.contains("c.toml:6") && err.contains("train.batch_size = 0"),
        "{err}"
    );
}

/// Shards whose ids exceed the vocabulary (header and size intact) panicked in Burn's gather.
#[test]
fn shard_ids_beyond_the_vocabulary_are_refused_when_the_data_is_opened() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap_or_else(|e| panic!("{e}"));
    for e in std::fs::read_dir(f.root.join("data"))
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
    {
        std::fs::copy(e.path(), data.join(e.file_name())).unwrap_or_else(|e| panic!("{e}"));
    }
    let shard = data.join("train-00000.bin");
    let mut bytes = std::fs::read(&shard).unwrap_or_else(|e| panic!("{e}"));
    let at = ember_formats::shards::HEADER_LEN + 2 * 1000;
    bytes[at..at + 2].copy_from_slice(&60_000u16.to_le_bytes());
    std::fs::write(&shard, bytes).unwrap_or_else(|e| panic!("{e}"));
    let (ok, _, err) = ember_env(
        &[
            "pretrain",
            "--device",
            "cpu",
            "--config",
            &f.p("run/config.toml"),
            "--set",
            &format!("run.out_dir={:?}", s(&dir.path().join("r"))),
            "--set",
            &format!("data.dir={:?}", s(&data)),
        ],
        &[],
    );
    assert!(
        !ok && err.contains("train-00000.bin") && err.contains("token 1000 is id 60000"),
        "{err}"
    );
}

/// `--max-new-tokens 18446744073709551615` overflowed `prompt + max_new`.
#[test]
fn a_huge_max_new_tokens_is_refused_not_overflowed() {
    let f = fixture();
    let (ok, _, err) = ember_env(
        &[
            "generate",
            "--checkpoint",
            &f.p("run"),
            "--device",
            "cpu",
            "--prompt",
            "hi",
            "--max-new-tokens",
            "18446744073709551615",
        ],
        &[],
    );
    assert!(
        !ok && err.contains("--max-new-tokens") && err.contains("1 to 1048576"),
        "{err}"
    );
}

/// A seed near `u64::MAX` overflowed `seed + i` in the eval samples.
#[test]
fn a_seed_at_u64_max_samples_without_overflow() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (ok, out, err) = ember_env(
        &[
            "eval",
            "--checkpoint",
            &f.p("run"),
            "--device",
            "cpu",
            "--tasks",
            "samples",
            "--samples",
            "2",
            "--max-new-tokens",
            "4",
            "--seed",
            "18446744073709551615",
            "--out",
            &s(&dir.path().join("r.json")),
            "--no-report",
        ],
        &[],
    );
    assert!(ok, "{out}{err}");
}

/// `--temperature=-1`, `--temperature nan`, `--top-p 2`, `--repetition-penalty 0` ran and
/// printed garbage.
#[test]
fn sampling_flags_out_of_range_are_refused_with_the_range() {
    let f = fixture();
    for (flag, value, range) in [
        ("--temperature", "-1", "0 (greedy) to 10"),
        ("--temperature", "nan", "0 (greedy) to 10"),
        ("--top-p", "2", "above 0 and at most 1"),
        ("--repetition-penalty", "0", "above 0 and at most 10"),
    ] {
        let (ok, _, err) = ember_env(
            &[
                "generate",
                "--checkpoint",
                &f.p("run"),
                "--device",
                "cpu",
                "--prompt",
                "hi",
                &format!("{flag}={value}"),
            ],
            &[],
        );
        assert!(
            !ok && err.contains(flag) && err.contains(range),
            "{flag} {value}: {err}"
        );
    }
}

/// An SFT file weight `epochs = -1` and `data.val_fraction = 1.5` were accepted (and the
/// ranking term's fields are checked the same way).
#[test]
fn sft_negative_epochs_and_a_held_out_fraction_over_one_are_refused() {
    let f = fixture();
    for (set, key) in [
        (
            "data.files=[{path=\"x.jsonl\", epochs=-1}]",
            "data.files[0].epochs = -1",
        ),
        ("data.val_fraction=1.5", "data.val_fraction = 1.5"),
        ("contrast.negatives=0", "contrast.negatives = 0"),
        ("contrast.scale=-1", "contrast.scale = -1"),
    ] {
        let (ok, _, err) = ember_env(
            &[
                "sft",
                "--device",
                "cpu",
                "--config",
                &f.p("sft.toml"),
                "--set",
                set,
            ],
            &[],
        );
        assert!(!ok && err.contains(key) && err.contains("--set"), "{err}");
    }
}

/// `ember pretrain --resume RUN --config OTHER.toml` ignored `--config` without a word.
#[test]
fn resume_with_a_config_is_refused() {
    let f = fixture();
    let (ok, _, err) = ember_env(
        &[
            "pretrain",
            "--resume",
            &f.p("run"),
            "--config",
            &f.p("run/config.toml"),
        ],
        &[],
    );
    assert!(
        !ok && err.contains("--resume") && err.contains("--config"),
        "{err}"
    );
}

/// `ember chat --message ""` replied to nothing.
#[test]
fn an_empty_chat_message_is_refused() {
    let f = fixture();
    let (ok, _, err) = ember_env(
        &[
            "chat",
            "--checkpoint",
            &f.p("sft"),
            "--device",
            "cpu",
            "--message",
            "",
        ],
        &[],
    );
    assert!(!ok && err.contains("--message is empty"), "{err}");
}

/// `ember eval --limit 0` reported `acc 0.0 [0.0, 100.0], n = 0`, and an empty `--text`
/// `loss 0.0000 over 0 tokens`.
#[test]
fn an_evaluation_over_zero_items_is_an_error_not_a_score() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "").unwrap_or_else(|e| panic!("{e}"));
    let out = s(&dir.path().join("r.json"));
    let (ok, _, err) = ember_env(
        &[
            "eval",
            "--checkpoint",
            &f.p("run"),
            "--device",
            "cpu",
            "--limit",
            "0",
            "--out",
            &out,
        ],
        &[],
    );
    assert!(!ok && err.contains("--limit"), "{err}");
    let (ok, stdout, err) = ember_env(
        &[
            "eval",
            "--checkpoint",
            &f.p("run"),
            "--device",
            "cpu",
            "--tasks",
            "text",
            "--text",
            &s(&empty),
            "--out",
            &out,
            "--no-report",
        ],
        &[],
    );
    assert!(
        !ok && err.contains("nothing to predict") && !stdout.contains("loss"),
        "{err}"
    );
    assert!(
        !Path::new(&out).exists(),
        "no results file for a failed evaluation"
    );
}

/// An `ember eval --details FILE` that then failed had already deleted FILE.
#[test]
fn a_failed_evaluation_keeps_an_existing_details_file_and_results() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let details = dir.path().join("details.jsonl");
    let results = dir.path().join("results.json");
    std::fs::write(&details, "earlier details\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&results, "earlier results\n").unwrap_or_else(|e| panic!("{e}"));
    // Both a missing data file (found before the model loads) and an unusable one (found
    // while evaluating) must leave both files as they were.
    let sets = dir.path().join("sets");
    std::fs::create_dir_all(&sets).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        sets.join("blimp_200per.jsonl"),
        "{\"UID\":\"a\",\"sentence_good\":\"I am.\",\"sentence_bad\":\"Am I.\"}\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for tasks in ["hellaswag", "blimp,hellaswag"] {
        let eval_data = if tasks == "hellaswag" {
            dir.path().join("none")
        } else {
            sets.clone()
        };
        if tasks != "hellaswag" {
            std::fs::write(sets.join("hellaswag_val.jsonl"), "not json\n")
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let (ok, _, err) = ember_env(
            &[
                "eval",
                "--checkpoint",
                &f.p("run"),
                "--device",
                "cpu",
                "--tasks",
                tasks,
                "--eval-data",
                &s(&eval_data),
                "--details",
                &s(&details),
                "--out",
                &s(&results),
                "--no-report",
            ],
            &[],
        );
        assert!(!ok && err.contains("hellaswag"), "{err}");
        assert_eq!(
            std::fs::read_to_string(&details).unwrap_or_default(),
            "earlier details\n"
        );
        assert_eq!(
            std::fs::read_to_string(&results).unwrap_or_default(),
            "earlier results\n"
        );
    }
}

/// `ember chat --message M --history FILE` read the history but never added to it, so a script
/// could not hold a conversation across calls.
#[test]
fn chat_history_grows_across_calls_and_a_missing_file_starts_anew() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let h = dir.path().join("conv.jsonl");
    for (i, msg) in ["Hello!", "How are you?"].iter().enumerate() {
        let (ok, out, err) = ember_env(
            &[
                "chat",
                "--checkpoint",
                &f.p("sft"),
                "--device",
                "cpu",
                "--message",
                msg,
                "--history",
                &s(&h),
                "--max-new-tokens",
                "6",
                "--temperature",
                "0",
            ],
            &[],
        );
        assert!(ok, "{out}{err}");
        let saved: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&h).unwrap_or_default())
                .unwrap_or_else(|e| panic!("{e}"));
        let msgs = saved["messages"].as_array().cloned().unwrap_or_default();
        assert_eq!(msgs.len(), 2 * (i + 1), "{saved}");
        assert_eq!(msgs[2 * i]["content"], *msg);
        assert_eq!(msgs[2 * i + 1]["role"], "assistant");
    }
}

/// MFU was measured against a fixed 80 GFLOP/s per thread, so an AVX-512 machine printed
/// 93–108% MFU.
#[test]
fn the_mfu_peak_comes_from_the_machine_and_is_recorded_with_the_run() {
    let f = fixture();
    let system: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(f.root.join("run/system.json")).unwrap_or_default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let source = system["peak_source"].as_str().unwrap_or_default();
    assert!(
        source.starts_with("derived:") && source.contains("f32 lanes"),
        "{system}"
    );
    let (lanes, _) = ember_train::peak::f32_lanes();
    let threads = system["threads"].as_u64().unwrap_or(1) as f64;
    let peak = system["peak_flops"].as_f64().unwrap_or(0.0);
    assert!(
        peak >= threads * lanes as f64 * 4.0 * 1e9,
        "{peak} for {lanes} lanes"
    );
    let metrics = std::fs::read_to_string(f.root.join("run/metrics.jsonl")).unwrap_or_default();
    for line in metrics.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap_or_default();
        if let Some(m) = row["mfu"].as_f64() {
            assert!(m > 0.0 && m <= 1.0, "MFU {m} in {line}");
        }
    }
    let report = std::fs::read_to_string(f.root.join("run/report.html")).unwrap_or_default();
    assert!(
        report.contains("peak for MFU"),
        "the report says how the peak was obtained"
    );
}
