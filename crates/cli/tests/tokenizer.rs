//! `ember tokenizer train | encode | decode | stats` and their errors.

use std::path::Path;
use std::process::Command;

pub struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

pub fn ember(args: &[&str]) -> Out {
    let out = Command::new(env!("CARGO_BIN_EXE_ember"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running ember: {e}"));
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn corpus() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/tinyshakespeare.txt")
        .display()
        .to_string()
}

/// Trains a 600-id tokenizer into `dir` and returns its path.
pub fn trained(dir: &Path) -> String {
    let path = dir.join("tok.json").display().to_string();
    let out = ember(&[
        "tokenizer",
        "train",
        "--input",
        &corpus(),
        "--vocab-size",
        "600",
        "--out",
        &path,
    ]);
    assert!(out.ok, "{}", out.stderr);
    path
}

#[test]
fn train_encode_decode_stats() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let tok = trained(dir.path());
    let enc = ember(&[
        "tokenizer",
        "encode",
        "--tokenizer",
        &tok,
        "--text",
        "O Romeo, Romeo! <|user|>",
    ]);
    assert!(enc.ok, "{}", enc.stderr);
    let ids: Vec<u32> = enc
        .stdout
        .split_whitespace()
        .filter_map(|s| s.parse().ok())
        .collect();
    assert!(
        !ids.is_empty() && !ids.contains(&597),
        "plain encode must not produce <|user|> (597)"
    );
    let special = ember(&[
        "tokenizer",
        "encode",
        "--tokenizer",
        &tok,
        "--allow-special",
        "--text",
        "<|user|>",
    ]);
    assert_eq!(special.stdout.trim(), "597");
    let dec = ember(&[
        "tokenizer",
        "decode",
        "--tokenizer",
        &tok,
        "--ids",
        enc.stdout.trim(),
    ]);
    assert_eq!(dec.stdout, "O Romeo, Romeo! <|user|>\n");
    let stats = ember(&[
        "tokenizer",
        "stats",
        "--tokenizer",
        &tok,
        "--input",
        &corpus(),
        "--json",
    ]);
    assert!(stats.ok, "{}", stats.stderr);
    let v: serde_json::Value =
        serde_json::from_str(&stats.stdout).unwrap_or_else(|e| panic!("{e}: {}", stats.stdout));
    let bpt = v["bytes_per_token"].as_f64().unwrap_or(0.0);
    assert!(bpt > 2.0 && bpt < 5.0, "bytes/token {bpt}");
    assert_eq!(v["vocab_size"], 600);
}

#[test]
fn refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let tok = trained(dir.path());
    let before = std::fs::read(&tok).unwrap_or_default();
    let again = ember(&[
        "tokenizer",
        "train",
        "--input",
        &corpus(),
        "--vocab-size",
        "300",
        "--out",
        &tok,
    ]);
    assert!(
        !again.ok && again.stderr.contains("already exists") && again.stderr.contains("--force"),
        "{}",
        again.stderr
    );
    assert_eq!(
        std::fs::read(&tok).unwrap_or_default(),
        before,
        "the existing file is untouched"
    );
    let forced = ember(&[
        "tokenizer",
        "train",
        "--input",
        &corpus(),
        "--vocab-size",
        "300",
        "--out",
        &tok,
        "--force",
    ]);
    assert!(forced.ok, "{}", forced.stderr);
}

#[test]
fn bad_input_gets_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = dir.path().join("t.json").display().to_string();
    let missing = ember(&[
        "tokenizer",
        "train",
        "--input",
        "/no/such/file.txt",
        "--vocab-size",
        "500",
        "--out",
        &out,
    ]);
    assert!(
        !missing.ok && missing.stderr.contains("/no/such/file.txt: no such file"),
        "{}",
        missing.stderr
    );
    let small = ember(&[
        "tokenizer",
        "train",
        "--input",
        &corpus(),
        "--vocab-size",
        "100",
        "--out",
        &out,
    ]);
    assert!(
        !small.ok && small.stderr.contains("vocab_size = 100"),
        "{}",
        small.stderr
    );
    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, "{\"version\": \"1.0\", \"model\": ")
        .unwrap_or_else(|e| panic!("{e}"));
    let g = garbage.display().to_string();
    let load = ember(&["tokenizer", "encode", "--tokenizer", &g, "--text", "x"]);
    assert!(
        !load.ok && load.stderr.contains("garbage.json") && load.stderr.contains("truncated"),
        "{}",
        load.stderr
    );
    let tok = trained(dir.path());
    let bad_id = ember(&["tokenizer", "decode", "--tokenizer", &tok, "--ids", "5 600"]);
    assert!(
        !bad_id.ok && bad_id.stderr.contains("600") && bad_id.stderr.contains("out of range"),
        "{}",
        bad_id.stderr
    );
    let not_num = ember(&["tokenizer", "decode", "--tokenizer", &tok, "--ids", "5 x"]);
    assert!(
        !not_num.ok && not_num.stderr.contains("\"x\""),
        "{}",
        not_num.stderr
    );
    for o in [&missing, &small, &load, &bad_id, &not_num] {
        assert!(!o.stderr.contains("panicked"), "{}", o.stderr);
    }
}

#[test]
fn version_and_help() {
    let v = ember(&["--version"]);
    assert!(v.ok && v.stdout.starts_with("ember "), "{}", v.stdout);
    let h = ember(&["tokenizer", "train", "--help"]);
    for flag in [
        "--input",
        "--vocab-size",
        "--out",
        "--force",
        "--lossy",
        "--threads",
    ] {
        assert!(h.stdout.contains(flag), "help lacks {flag}");
    }
}

/// `tokenizer train` reads what `prepare` reads: JSONL and Parquet give the same tokenizer for
/// the same records, a directory takes every file under it, and a missing field is named.
#[test]
fn trains_on_jsonl_parquet_and_directories() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus/tests/fixtures");
    let train = |input: &Path, out: &str| {
        let o = dir.path().join(out);
        let r = ember(&[
            "tokenizer",
            "train",
            "--input",
            &input.display().to_string(),
            "--vocab-size",
            "300",
            "--out",
            &o.display().to_string(),
        ]);
        assert!(r.ok, "{}{}", r.stdout, r.stderr);
        std::fs::read_to_string(o).unwrap()
    };
    let a = train(&fixtures.join("docs.jsonl"), "a.json");
    let b = train(&fixtures.join("docs.snappy.parquet"), "b.json");
    assert_eq!(a, b, "the same records as JSONL and as Parquet");
    let sub = dir.path().join("corpus");
    std::fs::create_dir(&sub).unwrap();
    std::fs::copy(fixtures.join("docs.jsonl"), sub.join("one.jsonl")).unwrap();
    std::fs::write(sub.join("two.txt"), corpus()).unwrap();
    train(&sub, "c.json");
    let r = ember(&[
        "tokenizer",
        "train",
        "--input",
        &fixtures.join("docs.jsonl").display().to_string(),
        "--text-field",
        "body",
        "--vocab-size",
        "300",
        "--out",
        &dir.path().join("d.json").display().to_string(),
    ]);
    assert!(
        !r.ok && r.stderr.contains("docs.jsonl:1: no field \"body\""),
        "{}",
        r.stderr
    );
}

/// `--dialogue` learns merges from conversations' messages beside the text inputs (or alone),
/// and a bad conversation line stops it with file and line, writing nothing.
#[test]
fn trains_on_dialogue_messages() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dialogue = dir.path().join("chat.jsonl");
    let line = r#"{"messages": [{"role": "user", "content": "Do you like zorblaxes?"}, {"role": "assistant", "content": "I love zorblaxes, they are quixotic."}]}"#;
    std::fs::write(&dialogue, format!("{line}\n").repeat(300)).unwrap_or_else(|e| panic!("{e}"));
    let d = dialogue.display().to_string();
    let train = |name: &str, extra: &[&str]| {
        let out = dir.path().join(name).display().to_string();
        let mut args = vec!["tokenizer", "train", "--vocab-size", "600", "--out", &out];
        args.extend_from_slice(extra);
        let r = ember(&args);
        assert!(r.ok, "{}", r.stderr);
        out
    };
    let corpus = corpus();
    let text_only = train("text.json", &["--input", &corpus]);
    let both = train("both.json", &["--input", &corpus, "--dialogue", &d]);
    let alone = train("alone.json", &["--dialogue", &d]);
    let count = |tok: &str| {
        let r = ember(&[
            "tokenizer",
            "encode",
            "--tokenizer",
            tok,
            "--text",
            " zorblaxes",
        ]);
        assert!(r.ok, "{}", r.stderr);
        r.stdout.split_whitespace().count()
    };
    // The word only the conversations hold becomes one token once they are learned from.
    assert!(count(&text_only) > 2, "{}", count(&text_only));
    assert_eq!(count(&both), 1);
    assert_eq!(count(&alone), 1);

    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, format!("{line}\n{{\"messages\": 3}}\n"))
        .unwrap_or_else(|e| panic!("{e}"));
    let out = dir.path().join("never.json");
    let r = ember(&[
        "tokenizer",
        "train",
        "--input",
        &corpus,
        "--dialogue",
        &bad.display().to_string(),
        "--vocab-size",
        "600",
        "--out",
        &out.display().to_string(),
    ]);
    assert!(
        !r.ok && r.stderr.contains("bad.jsonl:2") && !r.stderr.contains("panicked"),
        "{}",
        r.stderr
    );
    assert!(!out.exists());
}
