//! Fault injection beyond kill -9: a disk that fills during a checkpoint save, `prepare` or
//! `export` must leave the previous files loadable and nothing half-written behind.

use crate::battery::fixture;
use crate::regression::{ember_env, s};

/// Names starting with a dot in `dir`: what an interrupted write leaves (temporary files and
/// directories).
fn hidden_names(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}

/// A disk that fills during a checkpoint save must leave the previous checkpoint loadable,
/// no half-written checkpoint that looks complete, and a clear error.
#[test]
fn a_full_disk_during_a_checkpoint_save_keeps_the_previous_checkpoint() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let run = dir.path().join("r");
    let (ok, _, err) = ember_env(
        &[
            "pretrain",
            "--device",
            "cpu",
            "--config",
            &f.p("run/config.toml"),
            "--set",
            &format!("run.out_dir={:?}", s(&run)),
        ],
        &[("EMBER_FAULTS", "enospc-save@4")],
    );
    assert!(
        !ok && err.contains("No space left on device") && err.contains("model.safetensors"),
        "{err}"
    );
    let cks = ember_formats::run::list(&run);
    assert_eq!(cks.len(), 1, "only step 2 is complete: {cks:?}");
    assert_eq!(cks[0].0, 2);
    let leftovers = hidden_names(&run.join("checkpoints"));
    assert!(
        leftovers.is_empty(),
        "half-written save left behind: {leftovers:?}"
    );
    let (ok, out, err) = ember_env(
        &[
            "generate",
            "--checkpoint",
            &s(&run),
            "--device",
            "cpu",
            "--prompt",
            "a",
            "--max-new-tokens",
            "2",
        ],
        &[],
    );
    assert!(ok, "the previous checkpoint loads: {out}{err}");
    let (ok, out, err) = ember_env(&["pretrain", "--device", "cpu", "--resume", &s(&run)], &[]);
    assert!(ok, "and the run resumes from it: {out}{err}");
}

/// The same for `prepare` (no output directory that looks valid, an old one kept) and
/// `export` (no output directory).
#[test]
fn a_full_disk_during_prepare_or_export_leaves_no_half_written_output() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let full = [("EMBER_FAULTS", "enospc@20000")];
    let out = dir.path().join("data");
    let (ok, _, err) = ember_env(
        &[
            "prepare",
            "--tokenizer",
            &f.p("tok.json"),
            "--input",
            &f.p("corpus.txt"),
            "--out",
            &s(&out),
        ],
        &full,
    );
    assert!(!ok && err.contains("No space left on device"), "{err}");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.is_empty(), "nothing left behind: {names:?}");
    // With --force over an existing directory, the old one stays whole.
    std::fs::create_dir_all(&out).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(out.join("keep.txt"), "old").unwrap_or_else(|e| panic!("{e}"));
    let (ok, _, _) = ember_env(
        &[
            "prepare",
            "--tokenizer",
            &f.p("tok.json"),
            "--input",
            &f.p("corpus.txt"),
            "--out",
            &s(&out),
            "--force",
        ],
        &full,
    );
    assert!(!ok);
    assert_eq!(
        std::fs::read_to_string(out.join("keep.txt")).unwrap_or_default(),
        "old"
    );
    let hf = dir.path().join("hf");
    let (ok, _, err) = ember_env(
        &["export", "--checkpoint", &f.p("run"), "--out", &s(&hf)],
        &[("EMBER_FAULTS", "enospc@1000")],
    );
    assert!(!ok && err.contains("No space left on device"), "{err}");
    assert!(!hf.exists());
    assert_eq!(hidden_names(dir.path()), Vec::<String>::new());
}

/// `prepare` killed with SIGKILL mid-run leaves no output directory (only its temporary one,
/// which the next `prepare` into the same place removes), and the rerun completes.
#[test]
fn a_killed_prepare_leaves_no_output_and_the_rerun_cleans_up() {
    let f = fixture();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // About 24 MB in 1,200 documents: long enough to be caught writing.
    let text = std::fs::read_to_string(f.p("corpus.txt")).unwrap_or_else(|e| panic!("{e}"));
    let corpus = dir.path().join("big.txt");
    let doc = text.repeat((20_000 / text.len().max(1)).max(1));
    std::fs::write(&corpus, vec![doc; 1200].join("\n\n\n")).unwrap_or_else(|e| panic!("{e}"));
    let out = dir.path().join("data");
    let args = || {
        vec![
            "prepare".to_string(),
            "--tokenizer".into(),
            f.p("tok.json"),
            "--input".into(),
            s(&corpus),
            "--out".into(),
            s(&out),
            "--doc-separator".into(),
            "\\n\\n\\n".into(),
            "--val-fraction".into(),
            "0.1".into(),
            "--shard-tokens".into(),
            "20000".into(),
        ]
    };
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(args())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    let tmp = dir.path().join(format!(".data.tmp.{}", child.id()));
    let t0 = std::time::Instant::now();
    // Wait until it has written a shard into its temporary directory, then kill it.
    while !tmp.join("train-00001.bin").exists() && t0.elapsed().as_secs() < 120 {
        assert!(
            child.try_wait().ok().flatten().is_none(),
            "prepare finished before it could be killed; make the corpus larger"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    child.kill().unwrap_or_else(|e| panic!("{e}"));
    let _ = child.wait();
    assert!(tmp.exists(), "it was killed while writing");
    assert!(!out.exists(), "no output directory that looks complete");
    let a = args();
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let (ok, stdout, err) = ember_env(&a, &[]);
    assert!(ok, "{stdout}{err}");
    assert!(out.join("meta.json").exists());
    let left = hidden_names(dir.path());
    assert!(
        left.is_empty(),
        "the killed run's temporary directory is gone: {left:?}"
    );
}
