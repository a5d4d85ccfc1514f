//! The corpus reader: documents come out whole and in order whatever the piece size, every
//! input kind gives the same documents, and bad inputs are named.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};

use ember_corpus::{Format, Input, Kind, Piece, expand, read};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Reads `inputs` and reassembles the documents, checking the pieces' flags and numbering.
fn docs(inputs: &[Input], format: &Format) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut open = false;
    read(inputs, format, &mut |p: Piece<'_>| {
        assert_eq!(p.first, !open, "first flag of document {}", p.doc);
        assert_eq!(p.doc as usize, out.len() - usize::from(open), "numbering");
        if p.first {
            out.push(String::new());
        }
        out.last_mut().unwrap().push_str(p.text);
        open = !p.last;
        true
    })
    .map_err(|e| e.to_string())
    .unwrap();
    assert!(!open, "the last document was never closed");
    out
}

fn one(path: &Path) -> Vec<Input> {
    vec![Input::new(path).unwrap()]
}

fn jsonl_texts() -> Vec<String> {
    std::fs::read_to_string(fixture("docs.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .filter(|t| !t.trim().is_empty())
        .collect()
}

/// A text of `n` documents of varied sizes (some longer than the read block, some blank).
fn corpus(n: usize, sep: &str) -> (String, Vec<String>) {
    let mut docs = Vec::new();
    let mut state = 12345u64;
    for i in 0..n {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let words = (state >> 33) % 9000;
        let mut d = String::new();
        for w in 0..words {
            d.push_str(
                ["the", " cat", "\n", " 中文", "  ", "\n\n", "sat", ".", "é"]
                    [(w as usize * 7 + i) % 9],
            );
        }
        if i % 7 == 3 {
            d = " \n\t ".into(); // only whitespace: skipped
        }
        docs.push(d);
    }
    let text = docs.join(sep);
    // What the reader must give: `str::split`, blank documents left out.
    let kept = text
        .split(sep)
        .filter(|d| !d.trim().is_empty())
        .map(String::from)
        .collect();
    (text, kept)
}

#[test]
fn documents_come_out_whole_whatever_the_piece_size() {
    let dir = tempfile::tempdir().unwrap();
    for sep in ["\n\n\n", "<doc>", "\n"] {
        let (text, want) = corpus(60, sep);
        let path = dir.path().join("c.txt");
        std::fs::write(&path, &text).unwrap();
        for piece_bytes in [1, 7, 100, 4096, 1 << 20] {
            let format = Format {
                doc_separator: Some(sep.into()),
                piece_bytes,
                ..Format::default()
            };
            let got = docs(&one(&path), &format);
            assert!(
                got == want,
                "separator {sep:?}, pieces of {piece_bytes}: documents differ"
            );
        }
    }
}

#[test]
fn pieces_are_cut_only_where_encoding_splits() {
    // Every cut inside a document is a newline followed by a non-space character.
    let dir = tempfile::tempdir().unwrap();
    let (text, _) = corpus(10, "\n\n\n");
    let path = dir.path().join("c.txt");
    std::fs::write(&path, &text).unwrap();
    let format = Format {
        piece_bytes: 50,
        ..Format::default()
    };
    let mut pieces = Vec::new();
    read(&one(&path), &format, &mut |p: Piece<'_>| {
        pieces.push((p.text.to_string(), p.last));
        true
    })
    .unwrap();
    assert!(pieces.len() > 100, "{} pieces", pieces.len());
    for w in pieces.windows(2) {
        let (a, b) = (&w[0].0, &w[1].0);
        assert!(a.ends_with('\n'), "a cut not after a newline: {a:?}");
        assert!(
            !b.starts_with(char::is_whitespace),
            "a cut before a space: {b:?}"
        );
    }
    assert_eq!(
        pieces.iter().map(|p| p.0.as_str()).collect::<String>(),
        text
    );
}

#[test]
fn a_separator_across_read_blocks_is_found() {
    // The reader reads 64 KiB blocks; put separators across the first few block edges.
    let dir = tempfile::tempdir().unwrap();
    let sep = "=====";
    let mut text = String::new();
    let mut want = Vec::new();
    for k in 1..6 {
        let edge = k * 65536 - 2 - text.len() % 65536;
        let doc = "ab\n".repeat(edge / 3 + 7 * k);
        text.push_str(&doc);
        text.push_str(sep);
        want.push(doc);
    }
    want.push("tail".into());
    text.push_str("tail");
    let path = dir.path().join("c.txt");
    std::fs::write(&path, &text).unwrap();
    for piece_bytes in [10, 1 << 20] {
        let format = Format {
            doc_separator: Some(sep.into()),
            piece_bytes,
            ..Format::default()
        };
        assert_eq!(docs(&one(&path), &format), want);
    }
}

#[test]
fn jsonl_parquet_and_compressed_inputs_give_the_same_documents() {
    let want = jsonl_texts();
    assert_eq!(want.len(), 6, "the fixture's blank record is skipped");
    let format = Format {
        piece_bytes: 64,
        ..Format::default()
    };
    for name in ["docs.jsonl", "docs.snappy.parquet", "docs.zstd.parquet"] {
        let inputs = one(&fixture(name));
        assert_eq!(docs(&inputs, &format), want, "{name}");
    }
    // The same JSONL, gzip- and zstd-compressed.
    let dir = tempfile::tempdir().unwrap();
    let raw = std::fs::read(fixture("docs.jsonl")).unwrap();
    let gz = dir.path().join("docs.jsonl.gz");
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(&raw).unwrap();
    std::fs::write(&gz, e.finish().unwrap()).unwrap();
    let zst = dir.path().join("docs.JSONL.zst");
    std::fs::write(&zst, zstd::encode_all(&raw[..], 3).unwrap()).unwrap();
    for p in [&gz, &zst] {
        let inputs = one(p);
        assert_eq!(inputs[0].kind, Kind::Jsonl);
        assert_eq!(docs(&inputs, &format), want, "{}", p.display());
    }
    // A compressed text file reads as the text.
    let txt = dir.path().join("a.txt.gz");
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(b"one\n\n\ntwo\n").unwrap();
    std::fs::write(&txt, e.finish().unwrap()).unwrap();
    let format = Format {
        doc_separator: Some("\n\n\n".into()),
        ..Format::default()
    };
    assert_eq!(docs(&one(&txt), &format), ["one", "two\n"]);
}

#[test]
fn summaries_hash_the_files_on_disk() {
    let inputs = one(&fixture("docs.snappy.parquet"));
    let s = read(&inputs, &Format::default(), &mut |_: Piece<'_>| true).unwrap();
    let bytes = std::fs::read(fixture("docs.snappy.parquet")).unwrap();
    assert_eq!(s[0].sha256, ember_files::sha256_hex(&bytes));
    assert_eq!((s[0].bytes, s[0].documents), (bytes.len() as u64, 6));
    assert_eq!(
        s[0].text_bytes,
        jsonl_texts().iter().map(|t| t.len() as u64).sum::<u64>()
    );
}

#[test]
fn directories_and_globs_expand_sorted_and_skip_hidden_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("b/sub")).unwrap();
    for (name, text) in [
        ("b/sub/z.txt", "z"),
        ("b/a.txt", "a"),
        ("b/.hidden.txt", "h"),
        ("b/c.jsonl", "{\"text\": \"c\"}"),
    ] {
        std::fs::write(d.join(name), text).unwrap();
    }
    let names = |v: Vec<Input>| -> Vec<String> {
        v.iter()
            .map(|i| i.path.strip_prefix(d).unwrap().display().to_string())
            .collect()
    };
    assert_eq!(
        names(expand(&[d.join("b")]).unwrap()),
        ["b/a.txt", "b/c.jsonl", "b/sub/z.txt"]
    );
    assert_eq!(
        names(expand(&[d.join("b/*.txt"), d.join("b/**/z.*")]).unwrap()),
        ["b/a.txt", "b/sub/z.txt"]
    );
    let all = expand(&[d.join("b")]).unwrap();
    assert_eq!(docs(&all, &Format::default()), ["a", "c", "z"]);
    let err = expand(&[d.join("b/*.parquet")]).unwrap_err().to_string();
    assert!(err.contains("matches no file"), "{err}");
    std::fs::create_dir(d.join("empty")).unwrap();
    let err = expand(&[d.join("empty")]).unwrap_err().to_string();
    assert!(err.contains("holds no file"), "{err}");
}

fn read_err(path: &Path, format: &Format) -> String {
    read(
        &expand(&[path.to_path_buf()]).unwrap(),
        format,
        &mut |_: Piece<'_>| true,
    )
    .unwrap_err()
    .to_string()
}

#[test]
fn bad_inputs_are_named_with_their_line_or_row() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f = Format::default();
    // Invalid UTF-8 far into a file: its offset and line.
    let mut bytes = "line\n".repeat(30_000).into_bytes();
    bytes.extend_from_slice(b"ok \xff bad\n");
    std::fs::write(d.join("bad.txt"), &bytes).unwrap();
    let e = read_err(&d.join("bad.txt"), &f);
    assert!(
        e.contains("byte offset 150003") && e.contains("line 30001") && e.contains("0xff"),
        "{e}"
    );
    // ... which lossy reading replaces and counts.
    let lossy = Format {
        lossy: true,
        ..Format::default()
    };
    let s = read(&one(&d.join("bad.txt")), &lossy, &mut |_: Piece<'_>| true).unwrap();
    assert_eq!(s[0].replaced, 1);
    // Whitespace only.
    std::fs::write(d.join("blank.txt"), " \n\n\t").unwrap();
    assert!(read_err(&d.join("blank.txt"), &f).contains("is empty"));
    // JSONL: not JSON, no such field, not a string.
    std::fs::write(
        d.join("a.jsonl"),
        "{\"text\": \"fine\"}\n\n{\"text\": \"x\"\n",
    )
    .unwrap();
    let e = read_err(&d.join("a.jsonl"), &f);
    assert!(e.contains("a.jsonl:3: not a JSON object"), "{e}");
    std::fs::write(d.join("b.jsonl"), "{\"content\": \"x\", \"id\": 1}\n").unwrap();
    let e = read_err(&d.join("b.jsonl"), &f);
    assert!(
        e.contains("b.jsonl:1: no field \"text\" (it has: content, id)")
            && e.contains("--text-field"),
        "{e}"
    );
    std::fs::write(d.join("c.jsonl"), "{\"text\": 5}\n").unwrap();
    let e = read_err(&d.join("c.jsonl"), &f);
    assert!(
        e.contains("c.jsonl:1: field \"text\" is a number, expected a string"),
        "{e}"
    );
    // Parquet: a missing column, a non-string column, a null.
    let p = fixture("docs.snappy.parquet");
    let e = read_err(
        &p,
        &Format {
            text_column: "body".into(),
            ..Format::default()
        },
    );
    assert!(e.contains("no column \"body\" (it has: id, text)"), "{e}");
    let e = read_err(
        &p,
        &Format {
            text_column: "id".into(),
            ..Format::default()
        },
    );
    assert!(
        e.contains("column \"id\" holds INT64, expected strings"),
        "{e}"
    );
    let e = read_err(&fixture("nulls.parquet"), &f);
    assert!(e.contains("row 1: column \"text\" is null"), "{e}");
    // Not Parquet at all.
    std::fs::write(d.join("x.parquet"), "hello").unwrap();
    let e = read_err(&d.join("x.parquet"), &f);
    assert!(e.contains("x.parquet: not a readable Parquet file"), "{e}");
    // A JSONL field read as text can be chosen.
    let c = Format {
        text_field: "content".into(),
        ..Format::default()
    };
    assert_eq!(docs(&one(&d.join("b.jsonl")), &c), ["x"]);
}

#[test]
fn a_receiver_can_stop_the_read() {
    let (text, _) = corpus(40, "\n\n\n");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.txt"), text).unwrap();
    let f = Format {
        doc_separator: Some("\n\n\n".into()),
        ..Format::default()
    };
    let mut n = 0;
    let r = read(&one(&dir.path().join("c.txt")), &f, &mut |_: Piece<'_>| {
        n += 1;
        n < 3
    });
    assert!(matches!(r, Err(ember_corpus::Error::Stopped)));
    assert_eq!(n, 3);
}
