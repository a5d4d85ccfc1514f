//! `prepare` gives the shards it gave before it streamed: digests recorded with the
//! whole-file implementation (commit e09f3a2) on the bundled Shakespeare text, one document
//! and many, with each kind of held-out split.

use std::path::Path;

use ember_pretrain::prepare::{PrepareOptions, ValSplit, prepare};
use ember_tokenizer::{TrainerConfig, train_from_texts};
use sha2::{Digest, Sha256};

/// SHA-256 of meta.json's shard list (names, token counts and each shard's SHA-256).
fn digest(out: &Path, dir: &Path) -> String {
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("meta.json")).unwrap()).unwrap();
    let splits = serde_json::to_string(&meta["splits"]).unwrap();
    // Input paths left out: they name the test's temporary directory.
    let inputs: Vec<String> = meta["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| format!("{} {}", i["bytes"], i["sha256"]))
        .collect();
    let inputs = inputs.join(",");
    let policy = meta["val_policy"]
        .as_str()
        .unwrap()
        .replace(&dir.display().to_string(), "");
    let h = Sha256::digest(format!("{splits}\n{inputs}\n{policy}").as_bytes());
    h.iter().map(|b| format!("{b:02x}")).collect()
}

fn run(
    dir: &Path,
    name: &str,
    sep: Option<&str>,
    val: ValSplit,
    inputs: Vec<std::path::PathBuf>,
    piece_bytes: usize,
) -> String {
    let opts = PrepareOptions {
        val,
        doc_separator: sep.map(String::from),
        shard_tokens: 60_000,
        seed: 7,
        piece_bytes,
        ..PrepareOptions::new(dir.join("tok.json"), inputs, dir.join(name))
    };
    prepare(&opts).unwrap();
    digest(&dir.join(name), dir)
}

#[test]
fn bundled_text_prepares_to_the_recorded_shards() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
    let text = std::fs::read_to_string(root.join("tinyshakespeare.txt")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("shakespeare.txt"), &text).unwrap();
    let (head, tail) = text.split_at(text[..900_000].rfind('\n').unwrap() + 1);
    std::fs::write(dir.path().join("head.txt"), head).unwrap();
    std::fs::write(dir.path().join("tail.txt"), tail).unwrap();
    let tok = train_from_texts(&[&text], &TrainerConfig::new(700))
        .unwrap()
        .0;
    tok.save(&dir.path().join("tok.json"), true).unwrap();
    let d = dir.path();
    let p = |n: &str| vec![d.join(n)];
    let want = [
        "3641df8a9762b349180cb85d268496d1cedeaf930a3e36f0f482898768070b40",
        "58f7ccf49626319019f3c8d13a10bcb9dc8a143f140205b3c5b89d4538258e8f",
        "82c0c913053dc6040eab15115c72be7a96c0bae99df1de236b13ceb2e7e7e332",
        "c988303f19bbacc381cd98ff47b29ccd291d13c6dce2c862eb54e9b66fcce623",
    ];
    // Read in 1 MiB pieces (as `ember prepare` does) and in 97-byte pieces (thousands of
    // cuts): streaming must not change a single id.
    for piece in [ember_corpus::PIECE, 97] {
        let name = |n: &str| format!("{n}{piece}");
        let two = Some("\n\n");
        let got = [
            run(
                d,
                &name("one"),
                None,
                ValSplit::Fraction(0.1),
                p("shakespeare.txt"),
                piece,
            ),
            run(
                d,
                &name("many"),
                two,
                ValSplit::Fraction(0.1),
                p("shakespeare.txt"),
                piece,
            ),
            run(d, &name("none"), two, ValSplit::None, p("head.txt"), piece),
            run(
                d,
                &name("files"),
                two,
                ValSplit::Files(p("tail.txt")),
                p("head.txt"),
                piece,
            ),
        ];
        assert_eq!(got, want, "pieces of {piece} bytes");
    }
}
