//! Shard files: header round trip, u16/u32, and damage (truncation, another tokenizer).

use crate::common::*;
use ember_formats::Prepared;
use ember_formats::shards::{HEADER_LEN, Header, Shard, encode_ids, hex, width_for};
use ember_pretrain::prepare::prepare;

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

/// Writes a shard of `n` pseudo-random ids below `vocab` with one id `bad` at `bad_at`.
fn synthetic(path: &std::path::Path, n: usize, vocab: u32, bad: Option<(usize, u32)>) {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut ids: Vec<u32> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % u64::from(vocab)) as u32
        })
        .collect();
    if let Some((at, id)) = bad {
        ids[at] = id;
    }
    let header = Header {
        width: width_for(vocab as usize),
        tokens: n as u64,
        vocab_size: vocab,
        tokenizer_sha256: [7; 32],
    };
    let mut bytes = header.to_bytes().to_vec();
    encode_ids(&ids, header.width, &mut bytes);
    std::fs::write(path, &bytes).unwrap();
}

#[test]
fn an_id_beyond_the_vocabulary_is_refused_naming_its_position() {
    let dir = tempfile::tempdir().unwrap();
    for (vocab, bad) in [(300u32, 300u32), (70_000, 1 << 20)] {
        let p = dir.path().join(format!("s{vocab}.bin"));
        synthetic(&p, 100_000, vocab, Some((77_777, bad)));
        let err = Shard::open(&p, &hex(&[7; 32])).unwrap_err().to_string();
        assert!(
            err.contains(&format!("token 77777 is id {bad}"))
                && err.contains(&format!("{vocab} ids")),
            "{err}"
        );
        synthetic(&p, 100_000, vocab, None);
        assert!(Shard::open(&p, &hex(&[7; 32])).is_ok());
    }
}

/// What checking a shard costs when it is opened: the id-range pass against re-hashing the
/// file with SHA-256 (what meta.json records). Not a test of speed; it prints the figures for
/// benches/RESULTS.md: `cargo test --workspace shard_check_cost -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement; run with --ignored --nocapture"]
fn shard_check_cost() {
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("s.bin");
    // The bundled Gutenberg corpus prepares to about 13.6M ids with the 8192-id tokenizer.
    let n = 13_600_000;
    synthetic(&p, n, 8192, None);
    let bytes = std::fs::read(&p).unwrap();
    let shard = Shard::open(&p, &hex(&[7; 32])).unwrap();
    let best = |f: &dyn Fn()| {
        (0..5)
            .map(|_| {
                let t = std::time::Instant::now();
                f();
                t.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    let range = best(&|| shard.check_ids().unwrap());
    let sha = best(&|| {
        std::hint::black_box(sha2::Sha256::digest(&bytes));
    });
    println!(
        "shard of {n} u16 ids ({:.1} MB): id-range check {:.1} ms ({:.2} GB/s), SHA-256 {:.1} ms ({:.2} GB/s), ratio {:.1}x",
        bytes.len() as f64 / 1e6,
        range * 1e3,
        bytes.len() as f64 / range / 1e9,
        sha * 1e3,
        bytes.len() as f64 / sha / 1e9,
        sha / range
    );
}
