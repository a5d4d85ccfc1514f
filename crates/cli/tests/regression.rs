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
