//! `ember sft` end to end: a tiny pretrained model fine-tuned on the bundled ChatterBot set.

use std::path::Path;

use crate::tokenizer::ember;

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Pretrains a tiny model with a 128-token context on the ChatterBot text (as plain text) and
/// returns its run directory.
pub fn base_model(dir: &Path) -> std::path::PathBuf {
    let chat = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/chatterbot_en.jsonl");
    let text: String = std::fs::read_to_string(&chat).unwrap().replace("\\n", "\n");
    let corpus = dir.join("corpus.txt");
    std::fs::write(&corpus, text).unwrap();
    let tok = dir.join("tok.json");
    assert!(
        ember(&[
            "tokenizer",
            "train",
            "--input",
            &s(&corpus),
            "--vocab-size",
            "512",
            "--out",
            &s(&tok)
        ])
        .ok
    );
    let out = ember(&[
        "prepare",
        "--tokenizer",
        &s(&tok),
        "--input",
        &s(&corpus),
        "--val-fraction",
        "0.1",
        "--out",
        &s(&dir.join("data")),
    ]);
    assert!(out.ok, "{}", out.stderr);
    let run = dir.join("base");
    let cfg = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/tiny.toml");
    let sets = [
        format!("run.out_dir={:?}", s(&run)),
        format!("data.dir={:?}", s(&dir.join("data"))),
        "model.block_size=128".into(),
        "train.max_steps=30".into(),
    ];
    let mut args = vec![
        "pretrain",
        "--device",
        "cpu",
        "--config",
        cfg.to_str().unwrap(),
    ];
    for x in &sets {
        args.extend(["--set", x]);
    }
    let out = ember(&args);
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    run
}

#[test]
fn fine_tuning_lowers_held_out_assistant_loss_and_reports_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let base = base_model(dir.path());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let sets = [
        format!("run.out_dir={:?}", s(&dir.path().join("sft"))),
        format!(
            "data.files=[{{path={:?}}}]",
            s(&root.join("data/chatterbot_en.jsonl"))
        ),
        "train.max_steps=40".into(),
    ];
    let cfg = root.join("configs/sft-tiny.toml");
    let mut args = vec![
        "sft",
        "--device",
        "cpu",
        "--config",
        cfg.to_str().unwrap(),
        "--init",
    ];
    let b = s(&base);
    args.push(&b);
    for x in &sets {
        args.extend(["--set", x]);
    }
    let out = ember(&args);
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("held-out assistant loss"))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    let nums: Vec<f64> = line
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter_map(|x| x.parse().ok())
        .filter(|x: &f64| x.fract() != 0.0)
        .collect();
    let (before, after) = (nums[0], nums[1]);
    assert!(
        after < before - 0.2,
        "held-out assistant loss {before} -> {after}\n{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("padding") && out.stdout.contains("too long for the context"),
        "{}",
        out.stdout
    );
    let replies = out
        .stdout
        .lines()
        .find(|l| l.starts_with("replies to held-out prompts"))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(
        !replies.contains(" 0/0 "),
        "some replies were sampled: {replies}"
    );
    let rows = std::fs::read_to_string(dir.path().join("sft/replies.jsonl")).unwrap();
    assert!(rows.lines().count() > 0 && rows.contains("ended_with_end_of_turn"));
}

#[test]
fn invalid_dialogue_data_stops_with_file_and_line_unless_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let base = base_model(dir.path());
    let bad = dir.path().join("bad.jsonl");
    let good = r#"{"prompt":"hello there","completion":"hi! how are you?"}"#;
    std::fs::write(
        &bad,
        format!(
            "{}{{\"messages\":[{{\"role\":\"user\",\"content\":\"x\"}}]}}\n",
            format!("{good}\n").repeat(40)
        ),
    )
    .unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cfg = root.join("configs/sft-tiny.toml");
    let files = format!("data.files=[{{path={:?}}}]", s(&bad));
    let outdir = format!("run.out_dir={:?}", s(&dir.path().join("sft")));
    let b = s(&base);
    let base_args = vec![
        "sft",
        "--device",
        "cpu",
        "--config",
        cfg.to_str().unwrap(),
        "--init",
        &b,
        "--set",
        &files,
        "--set",
        &outdir,
        "--set",
        "train.max_steps=6",
    ];
    let out = ember(&base_args);
    assert!(!out.ok);
    assert!(
        out.stderr
            .contains(&format!("{}:41: has no assistant turn", s(&bad))),
        "{}",
        out.stderr
    );
    let mut args = base_args.clone();
    args.extend(["--set", "data.skip_invalid=true"]);
    let out = ember(&args);
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stdout.contains("1 invalid lines skipped"),
        "{}",
        out.stdout
    );
}

/// A tiny model fine-tuned on ChatterBot for 40 steps; returns its run directory.
pub fn tuned_model(dir: &Path) -> std::path::PathBuf {
    let base = base_model(dir);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let run = dir.join("sft");
    let (cfg, b) = (s(&root.join("configs/sft-tiny.toml")), s(&base));
    let (o, f) = (
        format!("run.out_dir={:?}", s(&run)),
        format!(
            "data.files=[{{path={:?}}}]",
            s(&root.join("data/chatterbot_en.jsonl"))
        ),
    );
    let out = ember(&[
        "sft", "--device", "cpu", "--config", &cfg, "--init", &b, "--set", &o, "--set", &f,
    ]);
    assert!(out.ok, "{}", out.stderr);
    run
}

/// Fine-tunes the base twice with `extra` settings for 12 steps, once straight and once killed
/// during its last save and resumed, and checks that both end with the same weights; returns
/// the straight run's directory and output.
fn straight_and_resumed(dir: &Path, extra: &[&str]) -> (std::path::PathBuf, String) {
    let base = base_model(dir);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cfg = root.join("configs/sft-tiny.toml");
    let run = |name: &str, faults: &str| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_ember"));
        c.args([
            "sft",
            "--device",
            "cpu",
            "--config",
            &s(&cfg),
            "--init",
            &s(&base),
        ]);
        let sets = [
            format!("run.out_dir={:?}", s(&dir.join(name))),
            format!(
                "data.files=[{{path={:?}}}]",
                s(&root.join("data/chatterbot_en.jsonl"))
            ),
            "train.max_steps=12".into(),
            "train.save_every=6".into(),
            "train.eval_every=12".into(),
            "sample.replies=2".into(),
        ];
        for x in sets.iter().map(String::as_str).chain(extra.iter().copied()) {
            c.args(["--set", x]);
        }
        c.env("EMBER_FAULTS", faults).output().unwrap()
    };
    let out = run("straight", "");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let crashed = run("killed", "abort-save@12");
    assert!(!crashed.status.success());
    let out = ember(&[
        "sft",
        "--device",
        "cpu",
        "--resume",
        &s(&dir.join("killed")),
    ]);
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("(step 6,"),
        "it resumed from step 6: {}",
        out.stdout
    );
    let weights = |name: &str| {
        std::fs::read(
            dir.join(name)
                .join("checkpoints/step-00000012/model.safetensors"),
        )
        .unwrap()
    };
    assert!(
        weights("straight") == weights("killed"),
        "the resumed run differs ({extra:?})"
    );
    (dir.join("straight"), stdout)
}

/// Packed fine-tuning (`data.pack = true`): rows hold several conversations, and a run killed
/// during its last save resumes from the save before to the uninterrupted run's weights (each
/// micro-batch's conversations depend on how many every earlier one took).
#[test]
fn packed_fine_tuning_trains_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (_, stdout) = straight_and_resumed(dir.path(), &["data.pack=true"]);
    let line = stdout.lines().find(|l| l.starts_with("padding:")).unwrap();
    assert!(line.contains("rows packed"), "{line}");
    let per_row: f64 = line
        .split(';')
        .nth(1)
        .and_then(|x| x.split_whitespace().next())
        .and_then(|x| x.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!(
        per_row > 2.0,
        "ChatterBot's short exchanges share rows: {line}"
    );
}

/// The reply-ranking term (`[contrast]`): announced with its pool of negatives, logged every
/// step, and a killed run resumes to the same weights (its rows are drawn by step).
#[test]
fn fine_tuning_with_the_ranking_term_logs_it_and_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (run, stdout) = straight_and_resumed(
        dir.path(),
        &[
            "data.pack=true",
            "contrast.weight=1.0",
            "contrast.replies=2",
        ],
    );
    let line = stdout.lines().find(|l| l.starts_with("contrast:")).unwrap();
    assert!(
        line.contains("2 replies a micro-batch each ranked against 3 of"),
        "{line}"
    );
    let ranks: Vec<f64> = std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == "train")
        .map(|v| v["rank"]["accuracy"].as_f64().unwrap())
        .collect();
    assert_eq!(ranks.len(), 12);
    assert!(ranks.iter().all(|a| (0.0..=1.0).contains(a)), "{ranks:?}");
}

/// A split made once before every stage (`scripts/chat.sh`, `scripts/pipeline.sh`): with
/// `data.val_files` the run evaluates on exactly those conversations and holds none of the
/// training file out, so its held-out loss is on conversations no stage has seen.
#[test]
fn held_out_files_are_evaluated_whole_and_never_trained() {
    let dir = tempfile::tempdir().unwrap();
    let base = base_model(dir.path());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let all = std::fs::read_to_string(root.join("data/chatterbot_en.jsonl")).unwrap();
    let (mut train, mut held) = (String::new(), String::new());
    for (i, l) in all.lines().enumerate() {
        let to = if (i + 1) % 20 == 0 {
            &mut held
        } else {
            &mut train
        };
        to.push_str(l);
        to.push('\n');
    }
    let (tf, hf) = (
        dir.path().join("train.jsonl"),
        dir.path().join("held.jsonl"),
    );
    std::fs::write(&tf, &train).unwrap();
    std::fs::write(&hf, &held).unwrap();
    let run = dir.path().join("sft");
    let cfg = s(&root.join("configs/sft-tiny.toml"));
    let b = s(&base);
    let sets = [
        format!("run.out_dir={:?}", s(&run)),
        format!("data.files=[{{path={:?}}}]", s(&tf)),
        format!("data.val_files=[{:?}]", s(&hf)),
        "data.val_fraction=0.0".into(),
        "train.max_steps=4".into(),
        "train.warmup_steps=1".into(),
        "train.eval_every=4".into(),
        "sample.replies=2".into(),
    ];
    let mut args = vec!["sft", "--device", "cpu", "--config", &cfg, "--init", &b];
    for x in &sets {
        args.extend(["--set", x]);
    }
    let out = ember(&args);
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    let n_held = held.lines().count();
    assert!(
        out.stdout.contains(&format!(
            "{n_held} held-out conversations (a validation file;"
        )),
        "{}",
        out.stdout
    );
    // A held-out file that is also a training file is refused, naming it.
    let same = format!("data.val_files=[{:?}]", s(&tf));
    let mut bad = args.clone();
    bad.extend(["--set", &same]);
    let out = ember(&bad);
    assert!(
        !out.ok && out.stderr.contains("data.val_files[0]") && out.stderr.contains("train.jsonl"),
        "{}",
        out.stderr
    );
    let (h, convs) = ember_formats::run::HeldOut::load(&run).unwrap();
    assert_eq!(convs.len(), n_held);
    assert_eq!(h.sources.len(), 2);
    assert!(
        h.sources[0].lines.is_empty(),
        "nothing of the training file held out"
    );
    assert_eq!(
        h.sources[1].lines,
        (1..=n_held).collect::<Vec<_>>(),
        "every line of the held-out file"
    );
}
