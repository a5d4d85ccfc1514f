//! Shard files: header round trip, u16/u32, and damage (truncation, another tokenizer).

use crate::common::*;
use ember_pretrain::Prepared;
use ember_pretrain::prepare::prepare;
use ember_pretrain::shards::{HEADER_LEN, Header, Shard, encode_ids, hex, width_for};

#[test]
fn u16_when_the_vocabulary_fits_else_u32() {
    assert_eq!(width_for(300), 2);
    assert_eq!(width_for(65_536), 2);
    assert_eq!(width_for(65_537), 4);
}

#[test]
fn a_u32_shard_reads_back_its_ids() {
    let dir = tempfile::tempdir().unwrap();
    let ids: Vec<u32> = vec![0, 70_000, 5, 1 << 20, 65_535];
    let header = Header {
        width: 4,
        tokens: ids.len() as u64,
        vocab_size: 1 << 21,
        tokenizer_sha256: [7; 32],
    };
    let mut bytes = header.to_bytes().to_vec();
    encode_ids(&ids, 4, &mut bytes);
    let p = dir.path().join("s.bin");
    std::fs::write(&p, &bytes).unwrap();
    let s = Shard::open(&p, &hex(&[7; 32])).unwrap();
    let mut out = Vec::new();
    s.read(1, 3, &mut out);
    assert_eq!(out, vec![70_000, 5, 1 << 20]);
    assert_eq!(s.header, header);
}

#[test]
fn a_truncated_shard_is_refused_with_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let (c, t) = setup(dir.path(), 300);
    prepare(&options(dir.path(), &c, &t, "d")).unwrap();
    let p = dir.path().join("d/train-00000.bin");
    let len = std::fs::metadata(&p).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
    f.set_len(len - 3).unwrap();
    let err = Prepared::open(&dir.path().join("d"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("train-00000.bin")
            && err.contains("truncated")
            && err.contains(&(len - 3).to_string()),
        "{err}"
    );
    std::fs::write(&p, b"EMBERTOK").unwrap();
    let err = Prepared::open(&dir.path().join("d"))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("{HEADER_LEN}-byte header")), "{err}");
}

#[test]
fn shards_of_another_tokenizer_are_refused_naming_both_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let (c, t) = setup(dir.path(), 300);
    prepare(&options(dir.path(), &c, &t, "d")).unwrap();
    let data = Prepared::open(&dir.path().join("d")).unwrap();
    let ours = data.tokenizer.fingerprint();
    let other = tokenizer(290).fingerprint();
    let err = Shard::open(&dir.path().join("d/train-00000.bin"), &other)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("another tokenizer") && err.contains(&ours) && err.contains(&other),
        "{err}"
    );
    // Replacing the directory's tokenizer.json is caught by meta.json's hash.
    tokenizer(290)
        .save(&dir.path().join("d/tokenizer.json"), true)
        .unwrap();
    let err = Prepared::open(&dir.path().join("d"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("tokenizer.json") && err.contains(&other) && err.contains(&ours),
        "{err}"
    );
}
