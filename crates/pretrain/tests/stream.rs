//! Streaming `prepare`: every input kind gives the shards of the same text, any number of
//! shards samples the same batches, and a one-document split never cuts a character.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::common::*;
use ember_formats::Prepared;
use ember_pretrain::ShardTask;
use ember_pretrain::prepare::{PrepareOptions, ValSplit, prepare};
use ember_train::Task;

fn corpus_fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../corpus/tests/fixtures")
        .join(name)
}

/// (name, tokens, sha256) of every shard of a split, from meta.json.
fn shards(out: &Path) -> Vec<String> {
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("meta.json")).unwrap()).unwrap();
    ["train", "val"]
        .iter()
        .flat_map(|s| meta["splits"][s]["shards"].as_array().unwrap().clone())
        .map(|v| v.to_string())
        .collect()
}

#[test]
fn jsonl_parquet_and_compressed_inputs_prepare_like_the_same_text() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let texts: Vec<String> = std::fs::read_to_string(corpus_fixture("docs.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let sep = "\n@@@\n";
    std::fs::write(d.join("docs.txt"), texts.join(sep)).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&std::fs::read(corpus_fixture("docs.jsonl")).unwrap())
        .unwrap();
    std::fs::write(d.join("docs.jsonl.gz"), gz.finish().unwrap()).unwrap();
    let tok = tokenizer(300);
    tok.save(&d.join("tok.json"), true).unwrap();
    let run = |name: &str, input: PathBuf, val: ValSplit| {
        let o = PrepareOptions {
            val,
            doc_separator: Some(sep.into()),
            shard_tokens: 200,
            ..PrepareOptions::new(d.join("tok.json"), vec![input], d.join(name))
        };
        let r = prepare(&o).unwrap();
        (shards(&d.join(name)), r.train_docs + r.val_docs)
    };
    for (k, val) in [ValSplit::None, ValSplit::Fraction(0.3)]
        .into_iter()
        .enumerate()
    {
        let want = run(&format!("text-{k}"), d.join("docs.txt"), val.clone());
        assert_eq!(want.1, 6, "the blank record is not a document");
        for input in [
            corpus_fixture("docs.jsonl"),
            corpus_fixture("docs.snappy.parquet"),
            corpus_fixture("docs.zstd.parquet"),
            d.join("docs.jsonl.gz"),
        ] {
            let name = format!("{}-{k}", input.file_name().unwrap().to_string_lossy());
            assert_eq!(
                run(&name, input.clone(), val.clone()),
                want,
                "{name}, {val:?}"
            );
            let meta: serde_json::Value =
                serde_json::from_slice(&std::fs::read(d.join(&name).join("meta.json")).unwrap())
                    .unwrap();
            let kind = if name.contains("parquet") {
                "parquet"
            } else {
                "jsonl"
            };
            assert_eq!(meta["inputs"][0]["kind"], kind, "{name}");
        }
    }
}

#[test]
fn a_directory_of_inputs_prepares_as_the_files_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (c, t) = setup(dir.path(), 300);
    let text = std::fs::read_to_string(&c).unwrap();
    let parts: Vec<&str> = text.split(SEP).collect();
    let sub = dir.path().join("books");
    std::fs::create_dir(&sub).unwrap();
    for (i, p) in parts.iter().enumerate() {
        std::fs::write(sub.join(format!("{i:02}.txt")), p).unwrap();
    }
    let one = prepare(&options(dir.path(), &c, &t, "one")).unwrap();
    let o = PrepareOptions {
        inputs: vec![sub.clone()],
        doc_separator: None,
        ..options(dir.path(), &c, &t, "dir")
    };
    let many = prepare(&o).unwrap();
    assert_eq!(
        (many.train_docs, many.val_docs),
        (one.train_docs, one.val_docs)
    );
    assert_eq!(
        shards(&dir.path().join("dir")),
        shards(&dir.path().join("one"))
    );
    let o = PrepareOptions {
        inputs: vec![sub.join("*.txt")],
        doc_separator: None,
        ..options(dir.path(), &c, &t, "glob")
    };
    prepare(&o).unwrap();
    assert_eq!(
        shards(&dir.path().join("glob")),
        shards(&dir.path().join("one"))
    );
}

#[test]
fn many_small_shards_sample_the_same_batches_as_one() {
    let dir = tempfile::tempdir().unwrap();
    let (c, t) = setup(dir.path(), 300);
    let mut o = options(dir.path(), &c, &t, "small");
    o.shard_tokens = 7;
    prepare(&o).unwrap();
    let mut o = options(dir.path(), &c, &t, "big");
    o.shard_tokens = 1 << 30;
    prepare(&o).unwrap();
    let small = Prepared::open(&dir.path().join("small")).unwrap();
    let big = Prepared::open(&dir.path().join("big")).unwrap();
    let n = std::fs::read_dir(dir.path().join("small")).unwrap().count();
    assert!(n > 100, "{n} files");
    let (a, b) = (
        ShardTask::new(&small, 4, 16, 7, 0).unwrap(),
        ShardTask::new(&big, 4, 16, 7, 0).unwrap(),
    );
    for step in 0..20 {
        assert_eq!(
            a.train_batch(step, 0).unwrap(),
            b.train_batch(step, 0).unwrap()
        );
    }
    assert_eq!(a.eval_batches(), b.eval_batches());
    for i in 0..a.eval_batches() {
        assert_eq!(a.eval_batch(i).unwrap(), b.eval_batch(i).unwrap());
    }
}

#[test]
fn a_one_document_split_never_cuts_inside_a_character() {
    // Chinese text without a newline: the 90% mark falls inside a 3-byte character (the
    // whole-file version sliced there and panicked).
    let dir = tempfile::tempdir().unwrap();
    let text = "滿紙荒唐言，一把辛酸淚。".repeat(40);
    let c = dir.path().join("zh.txt");
    std::fs::write(&c, &text).unwrap();
    let t = dir.path().join("tok.json");
    ember_tokenizer::train_from_texts(&[&text], &ember_tokenizer::TrainerConfig::new(300))
        .unwrap()
        .0
        .save(&t, true)
        .unwrap();
    let o = PrepareOptions {
        val: ValSplit::Fraction(0.1),
        ..PrepareOptions::new(t, vec![c], dir.path().join("d"))
    };
    let r = prepare(&o).unwrap();
    assert_eq!((r.train_docs, r.val_docs), (1, 1));
    let data = Prepared::open(&dir.path().join("d")).unwrap();
    let mut ids = Vec::new();
    data.val.read(1, data.val.len() - 1, &mut ids);
    assert_eq!(
        data.tokenizer.decode(&ids).unwrap(),
        "。",
        "no line start: the last character"
    );
}
