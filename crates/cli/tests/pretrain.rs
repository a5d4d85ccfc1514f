//! `ember prepare` + `ember pretrain` as a user runs them: SIGKILL at a random step and
//! resume, a crash during a save, Ctrl-C — each must end exactly like an uninterrupted run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::tokenizer::ember;

/// Prepares the first 200 kB of tinyshakespeare with a byte-level tokenizer; writes a config
/// of a tiny model for 40 steps that saves every 5.
fn setup(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/tinyshakespeare.txt"),
    )
    .unwrap();
    let corpus = dir.join("corpus.txt");
    std::fs::write(&corpus, &text[..200_000]).unwrap();
    let s = |p: &Path| p.display().to_string();
    let tok = dir.join("tok.json");
    let out = ember(&[
        "tokenizer",
        "train",
        "--input",
        &s(&corpus),
        "--vocab-size",
        "261",
        "--out",
        &s(&tok),
    ]);
    assert!(out.ok, "{}", out.stderr);
    let data = dir.join("data");
    let out = ember(&[
        "prepare",
        "--tokenizer",
        &s(&tok),
        "--input",
        &s(&corpus),
        "--val-fraction",
        "0.1",
        "--out",
        &s(&data),
    ]);
    assert!(out.ok, "{}", out.stderr);
    assert!(
        out.stdout.contains("held-out split: one document"),
        "{}",
        out.stdout
    );
    let cfg = dir.join("c.toml");
    let toml = format!(
        "[run]\nout_dir = \"unused\"\n[data]\ndir = {:?}\n[model]\nn_layer = 2\nn_head = 2\nn_embd = 32\nblock_size = 32\ndropout = 0.1\n[train]\nbatch_size = 4\nmax_steps = 40\nwarmup_steps = 5\nlr = 3e-3\neval_every = 10\neval_tokens = 512\nsave_every = 5\nkeep_last = 3\nlog_every = 5\n",
        s(&data)
    );
    std::fs::write(&cfg, toml).unwrap();
    cfg
}

fn start(cfg: &Path, run: &Path, env: &[(&str, &str)]) -> Child {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ember"));
    c.args(["pretrain", "--device", "cpu", "--config"])
        .arg(cfg)
        .arg("--set")
        .arg(format!("run.out_dir={:?}", run.display().to_string()));
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn resume(run: &Path) {
    let out = ember(&[
        "pretrain",
        "--device",
        "cpu",
        "--resume",
        &run.display().to_string(),
    ]);
    assert!(out.ok, "resume failed: {}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("resuming from") && out.stdout.contains("done at step 40"),
        "{}",
        out.stdout
    );
}

fn train_rows(run: &Path) -> Vec<String> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains("\"kind\":\"train\"") && l.ends_with('}'))
        .map(String::from)
        .collect()
}

/// (step, loss) pairs: the part of a row that must be identical (timings are not).
fn losses(run: &Path) -> Vec<(u64, String)> {
    train_rows(run)
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["step"].as_u64().unwrap(), v["loss"].to_string())
        })
        .collect()
}

fn wait_for_rows(child: &mut Child, run: &Path, n: usize) {
    let t0 = Instant::now();
    while train_rows(run).len() < n {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before step {n}"
        );
        assert!(t0.elapsed() < Duration::from_secs(300), "no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn final_weights(run: &Path) -> Vec<u8> {
    std::fs::read(run.join("checkpoints/step-00000040/model.safetensors")).unwrap()
}

fn uninterrupted(dir: &Path, cfg: &Path) -> PathBuf {
    let run = dir.join("straight");
    let out = start(cfg, &run, &[]).wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    run
}

#[test]
fn sigkill_at_random_steps_then_resume_matches_an_uninterrupted_run_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path());
    let straight = uninterrupted(dir.path(), &cfg);
    let run = dir.path().join("killed");
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    // Two kills at random steps (printed so a failure can be replayed); the first run waits
    // for step 6 so that the step-5 checkpoint exists.
    let k1 = 6 + (nanos % 15) as usize;
    let k2 = k1 + 1 + (nanos / 15 % 15) as usize;
    println!("killing at steps {k1} and {k2}");
    let mut child = start(&cfg, &run, &[]);
    wait_for_rows(&mut child, &run, k1);
    child.kill().unwrap();
    child.wait().unwrap();
    let mut c = Command::new(env!("CARGO_BIN_EXE_ember"));
    let mut child = c
        .args(["pretrain", "--device", "cpu", "--resume"])
        .arg(&run)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_rows(&mut child, &run, k2);
    child.kill().unwrap();
    child.wait().unwrap();
    resume(&run);
    assert_eq!(
        losses(&straight),
        losses(&run),
        "per-step losses differ (kills at {k1}, {k2})"
    );
    assert!(
        final_weights(&straight) == final_weights(&run),
        "final weights differ (kills at {k1}, {k2})"
    );
}

#[test]
fn a_crash_during_a_save_keeps_the_previous_checkpoint_and_resume_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path());
    let straight = uninterrupted(dir.path(), &cfg);
    let run = dir.path().join("crashed");
    let out = start(&cfg, &run, &[("EMBER_FAULTS", "abort-save@15")])
        .wait_with_output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("aborting during the save of step 15"));
    let cks = run.join("checkpoints");
    assert!(!cks.join("step-00000015").exists());
    assert!(
        ember_model::checkpoint::verify(&cks.join("step-00000010")).is_ok(),
        "previous checkpoint intact"
    );
    let leftovers = std::fs::read_dir(&cks)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".tmp.")
        })
        .count();
    assert_eq!(
        leftovers, 1,
        "the interrupted save left its temporary directory"
    );
    resume(&run);
    let leftovers = std::fs::read_dir(&cks)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count();
    assert_eq!(leftovers, 0, "resume cleans up interrupted saves");
    assert_eq!(losses(&straight), losses(&run));
    assert!(final_weights(&straight) == final_weights(&run));
}

#[test]
fn ctrl_c_saves_and_stops_cleanly_then_resumes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = setup(dir.path());
    let straight = uninterrupted(dir.path(), &cfg);
    let run = dir.path().join("interrupted");
    let mut child = start(&cfg, &run, &[]);
    wait_for_rows(&mut child, &run, 8);
    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("stopped at step") && stdout.contains("--resume"),
        "{stdout}"
    );
    let step = train_rows(&run).len() as u64;
    assert!(step < 40);
    assert!(
        ember_model::checkpoint::verify(&run.join(format!("checkpoints/step-{step:08}"))).is_ok(),
        "saved at the stop"
    );
    resume(&run);
    assert_eq!(losses(&straight), losses(&run));
    assert!(final_weights(&straight) == final_weights(&run));
}

#[test]
fn resume_of_a_directory_without_a_run_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = ember(&[
        "pretrain",
        "--device",
        "cpu",
        "--resume",
        &dir.path().display().to_string(),
    ]);
    assert!(!out.ok);
    assert!(
        out.stderr.contains("not an Ember run directory"),
        "{}",
        out.stderr
    );
}

#[test]
fn bf16_training_is_refused_with_the_reason() {
    let out = ember(&[
        "pretrain", "--config", "x.toml", "--device", "cpu", "--dtype", "bf16",
    ]);
    assert!(!out.ok);
    assert!(
        out.stderr.contains("master weights")
            && out.stderr.contains("--dtype f32")
            && out.stderr.contains("bf16-mixed"),
        "{}",
        out.stderr
    );
}
