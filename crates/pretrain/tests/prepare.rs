//! `prepare`: determinism, document-level held-out split, and input errors.

use crate::common::*;
use ember_formats::Prepared;
use ember_pretrain::prepare::{ValSplit, prepare};

fn files(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn same_input_gives_byte_identical_shards_split_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let (c, t) = setup(dir.path(), 300);
    let a = prepare(&options(dir.path(), &c, &t, "a")).unwrap();
    prepare(&options(dir.path(), &c, &t, "b")).unwrap();
    let (fa, fb) = (files(&dir.path().join("a")), files(&dir.path().join("b")));
    assert!(fa == fb, "two runs differ");
    let shards = fa.iter().filter(|(n, _)| n.starts_with("train-")).count();
    assert_eq!(
        shards as u64,
        a.train_tokens.div_ceil(1000),
        "train shards of at most 1000 tokens"
    );
    assert!(
        fa.iter().any(|(n, _)| n == "meta.json") && fa.iter().any(|(n, _)| n == "tokenizer.json")
    );
}

#[test]
fn documents_round_trip_and_the_held_out_split_is_whole_documents() {
    let dir = tempfile::tempdir().unwrap();
    let (c, t) = setup(dir.path(), 300);
    let r = prepare(&options(dir.path(), &c, &t, "d")).unwrap();
    assert_eq!((r.train_docs, r.val_docs), (8, 2), "20% of 10 equal books");
    let data = Prepared::open(&dir.path().join("d")).unwrap();
    let tok = &data.tokenizer;
    let eot = tok.token_to_id("<|endoftext|>").unwrap();
    let docs = |s: &ember_formats::TokenStream| -> Vec<String> {
        let mut ids = Vec::new();
        s.read(0, s.len(), &mut ids);
        ids.split(|&i| i == eot)
            .skip(1)
            .map(|d| tok.decode(d).unwrap())
            .collect()
    };
    let (train, val) = (docs(&data.train), docs(&data.val));
    let mut all: Vec<String> = corpus().split(SEP).map(String::from).collect();
    let mut got: Vec<String> = train.iter().chain(&val).cloned().collect();
    all.sort();
    got.sort();
    assert_eq!(all, got, "every book exactly once, whole");
    assert_eq!(val.len(), 2);
}

#[test]
fn a_single_document_gives_up_its_tail_at_a_line_start() {
    let dir = tempfile::tempdir().unwrap();
    let (c, t) = setup(dir.path(), 300);
    let mut o = options(dir.path(), &c, &t, "s");
    o.doc_separator = None;
    o.val = ValSplit::Fraction(0.1);
    let r = prepare(&o).unwrap();
    assert!(r.val_policy.contains("one document"), "{}", r.val_policy);
    let data = Prepared::open(&dir.path().join("s")).unwrap();
    let mut ids = Vec::new();
    data.val.read(1, data.val.len(), &mut ids);
    let val = data.tokenizer.decode(&ids).unwrap();
    let text = corpus();
    assert!(text.ends_with(&val) && text[..text.len() - val.len()].ends_with('\n'));
    let frac = val.len() as f64 / text.len() as f64;
    assert!((0.08..0.12).contains(&frac), "{frac}");
}

#[test]
fn bad_inputs_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (c, t) = setup(dir.path(), 300);
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "  \n").unwrap();
    let mut o = options(dir.path(), &empty, &t, "e");
    let err = prepare(&o).unwrap_err().to_string();
    assert!(err.contains("empty.txt") && err.contains("empty"), "{err}");

    let bad = dir.path().join("latin1.txt");
    std::fs::write(&bad, b"caf\xe9 au lait\nline two \xff\n").unwrap();
    o.inputs = vec![bad];
    let err = prepare(&o).unwrap_err().to_string();
    assert!(
        err.contains("latin1.txt")
            && err.contains("byte offset 3")
            && err.contains("line 1")
            && err.contains("0xe9"),
        "{err}"
    );

    let o = options(dir.path(), &c, &t, "x");
    prepare(&o).unwrap();
    let err = prepare(&o).unwrap_err().to_string();
    assert!(
        err.contains("--force"),
        "refuses to replace without --force: {err}"
    );
}
