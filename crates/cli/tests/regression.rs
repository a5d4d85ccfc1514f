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
