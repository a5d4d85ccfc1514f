//! Fault injection beyond kill -9: a disk that fills during a checkpoint save, `prepare` or
//! `export` must leave the previous files loadable and nothing half-written behind.

use crate::battery::fixture;
use crate::regression::{ember_env, s};

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
    let leftovers: Vec<String> = std::fs::read_dir(run.join("checkpoints"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
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
    let leftovers = std::fs::read_dir(dir.path())
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .count();
    assert_eq!(leftovers, 0);
}
