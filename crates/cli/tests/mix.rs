//! Dialogue mixed into pretraining: `ember prepare --dialogue` renders conversations with the
//! chat template, and a `[[data.mix]]` source feeds its share of the training rows from its
//! start step, deterministically and resumably.

use std::path::Path;

use crate::battery::fixture;
use crate::tokenizer::ember;

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn rows(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            format!(
                "{} {} {} {}",
                v["kind"], v["step"], v["loss"], v["val_loss"]
            )
        })
        .collect()
}

#[test]
fn dialogue_shards_mix_into_pretraining_from_their_start_step() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap();
    let chat = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/chatterbot_en.jsonl");
    let dlg = dir.path().join("dialogue");
    let out = ember(&[
        "prepare",
        "--dialogue",
        "--tokenizer",
        &f.p("tok.json"),
        "--input",
        &s(&chat),
        "--val-fraction",
        "0.1",
        "--out",
        &s(&dlg),
    ]);
    assert!(out.ok, "{}", out.stderr);
    assert!(out.stdout.contains("whole conversations"), "{}", out.stdout);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dlg.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["kind"], "dialogue");
    // The shards hold the template's special tokens as ids.
    let data = ember_formats::Prepared::open(&dlg).unwrap();
    let assistant = data.tokenizer.token_to_id("<|assistant|>").unwrap();
    let mut ids = Vec::new();
    data.train.read(0, 400, &mut ids);
    assert!(ids.contains(&assistant), "{ids:?}");

    let cfg = dir.path().join("c.toml");
    let run = |name: &str| dir.path().join(name);
    std::fs::write(
        &cfg,
        format!(
            "[run]\nout_dir = \"unused\"\n[data]\ndir = {:?}\n[[data.mix]]\ndir = {:?}\nweight = 0.5\nstart_step = 3\n[model]\nn_layer = 1\nn_head = 2\nn_embd = 32\nblock_size = 32\n[train]\nbatch_size = 4\nmax_steps = 6\nwarmup_steps = 1\neval_every = 3\neval_tokens = 256\nsave_every = 3\n",
            f.p("data"),
            s(&dlg)
        ),
    )
    .unwrap();
    for name in ["a", "b"] {
        let out = ember(&[
            "pretrain",
            "--device",
            "cpu",
            "--config",
            &s(&cfg),
            "--set",
            &format!("run.out_dir={:?}", s(&run(name))),
        ]);
        assert!(out.ok, "{}{}", out.stdout, out.stderr);
        assert!(
            out.stdout.contains("[[data.mix]]"),
            "the resolved config shows the mix"
        );
    }
    assert_eq!(
        rows(&run("a")),
        rows(&run("b")),
        "same seed, same mixed run"
    );
    // Killed during its last save and resumed from step 3, it ends exactly as run a.
    let crashed = std::process::Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(["pretrain", "--device", "cpu", "--config", &s(&cfg), "--set"])
        .arg(format!("run.out_dir={:?}", s(&run("k"))))
        .env("EMBER_FAULTS", "abort-save@6")
        .output()
        .unwrap();
    assert!(!crashed.status.success());
    let out = ember(&["pretrain", "--device", "cpu", "--resume", &s(&run("k"))]);
    assert!(out.ok, "{}{}", out.stdout, out.stderr);
    let weights =
        |r: &Path| std::fs::read(r.join("checkpoints/step-00000006/model.safetensors")).unwrap();
    assert!(
        weights(&run("a")) == weights(&run("k")),
        "resumed mixed run differs"
    );
    // A mix of another tokenizer is refused naming it.
    let other = dir.path().join("other");
    let tok2 = dir.path().join("tok2.json");
    assert!(
        ember(&[
            "tokenizer",
            "train",
            "--input",
            &s(&chat.with_file_name("tinyshakespeare.txt")),
            "--vocab-size",
            "300",
            "--out",
            &s(&tok2)
        ])
        .ok
    );
    assert!(
        ember(&[
            "prepare",
            "--dialogue",
            "--tokenizer",
            &s(&tok2),
            "--input",
            &s(&chat),
            "--out",
            &s(&other)
        ])
        .ok
    );
    let out = ember(&[
        "pretrain",
        "--device",
        "cpu",
        "--config",
        &s(&cfg),
        "--set",
        &format!("run.out_dir={:?}", s(&run("c"))),
        "--set",
        &format!("data.mix=[{{dir={:?}, weight=0.5}}]", s(&other)),
    ]);
    assert!(
        !out.ok && out.stderr.contains("data.mix") && out.stderr.contains("other"),
        "{}",
        out.stderr
    );
    // Shares adding up to 1 or more are refused at their line.
    let out = ember(&[
        "pretrain",
        "--device",
        "cpu",
        "--config",
        &s(&cfg),
        "--set",
        &format!(
            "data.mix=[{{dir={:?}, weight=0.7}}, {{dir={:?}, weight=0.4}}]",
            s(&dlg),
            s(&dlg)
        ),
    ]);
    assert!(
        !out.ok && out.stderr.contains("less than 1"),
        "{}",
        out.stderr
    );
}
