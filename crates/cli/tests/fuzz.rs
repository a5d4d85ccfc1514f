//! Fuzzing of every file format Ember reads, on the stable toolchain: each harness takes valid
//! files of its format, mutates their bytes (bit flips, byte overwrites with boundary values,
//! inserted and deleted runs, splices of format tokens, truncation) or makes random bytes, and
//! feeds them to the reader. A panic is a crash; any `Ok` or `Err` is fine.
//!
//! Why this and not cargo-fuzz or AFL: both need a nightly compiler or their own build
//! profile with instrumentation, which would rebuild Burn (a 25-minute build on 2 cores) and is
//! not available to CI. proptest runs in `cargo test` on the one profile, catches panics and
//! shrinks a crashing input to a small one. It is not coverage-guided, so the mutations start
//! from valid files and splice in the format's own tokens to get past the first checks.
//!
//! Each harness runs for `EMBER_FUZZ_SECS` seconds (default 6, the CI smoke run):
//! `EMBER_FUZZ_SECS=600 cargo test --workspace fuzz_ -- --test-threads 1 --nocapture`.
//! A crash is reported with the runner's seed and the shrunk input, which is also written to
//! `$CARGO_TARGET_TMPDIR/fuzz-crashes/`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ember_model::{DeviceChoice, GptConfig, Precision, checkpoint, select_device};
use ember_tokenizer::{TrainerConfig, train_from_texts};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

/// One edit of a byte string.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Set(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Splice(usize, usize),
    Truncate(usize),
}

/// Bytes that sit on boundaries: sign bits, UTF-8 lead and continuation bytes, quotes.
const BOUNDARY: [u8; 12] = [
    0x00, 0x01, 0x7f, 0x80, 0xbf, 0xc0, 0xe0, 0xf0, 0xf4, 0xff, b'"', b'\\',
];

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(p, b)| Edit::Flip(p, b)),
        (any::<usize>(), prop::sample::select(BOUNDARY.to_vec()))
            .prop_map(|(p, b)| Edit::Set(p, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Edit::Set(p, b)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(p, v)| Edit::Insert(p, v)),
        (any::<usize>(), 1usize..64).prop_map(|(p, n)| Edit::Delete(p, n)),
        (any::<usize>(), any::<usize>()).prop_map(|(p, t)| Edit::Splice(p, t)),
        any::<usize>().prop_map(Edit::Truncate),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit], tokens: &[&[u8]]) -> Vec<u8> {
    for e in edits {
        let n = bytes.len();
        let at = |p: usize| if n == 0 { 0 } else { p % (n + 1) };
        match e {
            Edit::Flip(p, b) if n > 0 => bytes[p % n] ^= 1 << b,
            Edit::Set(p, v) if n > 0 => bytes[p % n] = *v,
            Edit::Insert(p, v) => {
                let p = at(*p);
                bytes.splice(p..p, v.iter().copied());
            }
            Edit::Delete(p, k) if n > 0 => {
                let p = p % n;
                bytes.drain(p..(p + k).min(n));
            }
            Edit::Splice(p, t) if !tokens.is_empty() => {
                let p = at(*p);
                bytes.splice(p..p, tokens[t % tokens.len()].iter().copied());
            }
            Edit::Truncate(p) => bytes.truncate(at(*p)),
            _ => {}
        }
    }
    bytes
}

/// An input: a mutated seed file (most cases) or random bytes.
fn input(seeds: Vec<Vec<u8>>, tokens: Vec<&'static [u8]>) -> impl Strategy<Value = Vec<u8>> {
    let n = seeds.len();
    prop_oneof![
        9 => (0..n, prop::collection::vec(edit(), 1..8))
            .prop_map(move |(i, e)| apply(seeds[i].clone(), &e, &tokens)),
        1 => prop::collection::vec(any::<u8>(), 0..512),
    ]
}

fn seconds() -> u64 {
    std::env::var("EMBER_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6)
}

/// Runs `target` on inputs from `strategy` until the time is up; panics with the seed and
/// the shrunk input on a crash.
fn fuzz(name: &str, strategy: impl Strategy<Value = Vec<u8>>, target: impl Fn(&[u8])) {
    let end = Instant::now() + Duration::from_secs(seconds());
    let (mut cases, mut round) = (0u64, 0u64);
    while Instant::now() < end {
        let seed = {
            let mut s = [0u8; 32];
            s[..8].copy_from_slice(&round.to_le_bytes());
            s[8..16].copy_from_slice(&(name.len() as u64).to_le_bytes());
            s
        };
        let config = Config {
            cases: 64,
            failure_persistence: None,
            ..Config::default()
        };
        let mut runner =
            TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
        let result = runner.run(&strategy, |bytes| {
            // Crashes are panics; the runner catches them (and shrinks the input).
            target(&bytes);
            Ok::<(), TestCaseError>(())
        });
        if let Err(e) = result {
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-crashes");
            let _ = std::fs::create_dir_all(&dir);
            let file = dir.join(format!("{name}-{round}.txt"));
            let _ = std::fs::write(&file, format!("{e}"));
            panic!(
                "fuzz {name}: crash in round {round} (input and message in {}): {e}",
                file.display()
            );
        }
        cases += 64;
        round += 1;
    }
    eprintln!("fuzz {name}: {cases} inputs in {} s, no crash", seconds());
}

/// A file or directory name of this thread's current case under `dir`, ending in `ext`.
fn case_path(dir: &Path, ext: &str) -> PathBuf {
    dir.join(format!("case-{:?}{ext}", std::thread::current().id()))
}

fn small_tokenizer() -> ember_tokenizer::Tokenizer {
    let text = "To be, or not to be: that is the question. Whether 'tis nobler in the mind.";
    train_from_texts(&[text], &TrainerConfig::new(300))
        .unwrap_or_else(|e| panic!("{e}"))
        .0
}

#[test]
fn fuzz_tokenizer_json() {
    let json = small_tokenizer().to_json().into_bytes();
    let tokens: Vec<&[u8]> = vec![
        b"\"merges\"",
        b"\"vocab\"",
        b"\"added_tokens\"",
        b"null",
        b"-1",
        b"4294967296",
        b"\"type\"",
        b"\"BPE\"",
        b"[]",
        b"{}",
        b"\"\\u0000\"",
        b"1e999",
    ];
    fuzz("tokenizer-json", input(vec![json], tokens), |b| {
        let _ = ember_tokenizer::Tokenizer::from_json(&String::from_utf8_lossy(b), "fuzz.json");
    });
}

/// A saved tiny checkpoint: (directory, its files by name).
fn checkpoint_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let device = select_device(DeviceChoice::Cpu, Precision::F32)
        .unwrap_or_else(|e| panic!("{e}"))
        .device;
    let tok = small_tokenizer();
    let cfg = GptConfig::new(tok.vocab_size(), 1, 2, 8, 8);
    let model = cfg.init(&device);
    let ck = dir.join("ck");
    checkpoint::save(&ck, &model, &cfg, &tok, &[]).unwrap_or_else(|e| panic!("{e}"));
    [
        "manifest.json",
        "model.safetensors",
        "config.json",
        "tokenizer.json",
    ]
    .iter()
    .map(|n| {
        (
            n.to_string(),
            std::fs::read(ck.join(n)).unwrap_or_else(|e| panic!("{e}")),
        )
    })
    .collect()
}

/// Rewrites the manifest's entry for `name` to match `bytes`, so a mutated file gets past the
/// hash check and reaches its parser.
fn fix_manifest(manifest: &[u8], name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(manifest).unwrap_or_default();
    let sha = ember_files::sha256_hex(bytes);
    v["files"][name] = serde_json::json!({"size": bytes.len(), "sha256": sha});
    serde_json::to_vec(&v).unwrap_or_default()
}

#[test]
fn fuzz_checkpoint_manifest_and_safetensors() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let files = checkpoint_files(tmp.path());
    let device = select_device(DeviceChoice::Cpu, Precision::F32)
        .unwrap_or_else(|e| panic!("{e}"))
        .device;
    let manifest = files[0].1.clone();
    // The first byte of an input picks the file to damage; the rest is its new content.
    let seeds: Vec<Vec<u8>> = files
        .iter()
        .enumerate()
        .map(|(i, (_, b))| [vec![i as u8], b.clone()].concat())
        .collect();
    let tokens: Vec<&[u8]> = vec![
        b"\"dtype\"",
        b"\"F16\"",
        b"\"shape\"",
        b"\"data_offsets\"",
        b"[0,99999999]",
        b"\"size\"",
        b"\"files\"",
        b"\"__metadata__\"",
        b"18446744073709551615",
        b"-1",
    ];
    let n = files.len();
    fuzz("checkpoint", input(seeds, tokens), |b| {
        let Some((&which, content)) = b.split_first() else {
            return;
        };
        let which = which as usize % n;
        let ck = case_path(tmp.path(), "");
        let _ = std::fs::remove_dir_all(&ck);
        let _ = std::fs::create_dir_all(&ck);
        for (i, (name, bytes)) in files.iter().enumerate() {
            let body = if i == which {
                content
            } else {
                bytes.as_slice()
            };
            let _ = std::fs::write(ck.join(name), body);
        }
        if which != 0 {
            let name = &files[which].0;
            let _ = std::fs::write(
                ck.join("manifest.json"),
                fix_manifest(&manifest, name, content),
            );
        }
        let _ = checkpoint::load(&ck, &device);
    });
}

#[test]
fn fuzz_shard_and_meta() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let tok = small_tokenizer();
    let tok_path = tmp.path().join("tok.json");
    tok.save(&tok_path, true).unwrap_or_else(|e| panic!("{e}"));
    let corpus = tmp.path().join("c.txt");
    std::fs::write(
        &corpus,
        "To be, or not to be.\n\nThat is the question.\n".repeat(20),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let data = tmp.path().join("data");
    ember_pretrain::prepare::prepare(&ember_pretrain::prepare::PrepareOptions {
        shard_tokens: 1000,
        overwrite: true,
        ..ember_pretrain::prepare::PrepareOptions::new(tok_path, vec![corpus], data.clone())
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let shard = std::fs::read(data.join("train-00000.bin")).unwrap_or_else(|e| panic!("{e}"));
    let meta = std::fs::read(data.join("meta.json")).unwrap_or_else(|e| panic!("{e}"));
    let seeds = vec![
        [vec![0u8], shard.clone()].concat(),
        [vec![1u8], meta.clone()].concat(),
    ];
    let tokens: Vec<&[u8]> = vec![
        b"EMBERTOK",
        b"\xff\xff\xff\xff",
        b"\x00\x00\x00\x00",
        b"\"tokens\"",
        b"\"file\"",
        b"\"../x\"",
        b"\"splits\"",
        b"18446744073709551615",
    ];
    fuzz("shards", input(seeds, tokens), |b| {
        let Some((&which, content)) = b.split_first() else {
            return;
        };
        let dir = case_path(tmp.path(), "");
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::copy(data.join("tokenizer.json"), dir.join("tokenizer.json"));
        let (s, m) = if which % 2 == 0 {
            (content, &meta[..])
        } else {
            (&shard[..], content)
        };
        let _ = std::fs::write(dir.join("train-00000.bin"), s);
        let _ = std::fs::write(dir.join("meta.json"), m);
        if let Ok(p) = ember_formats::Prepared::open(&dir) {
            let mut ids = Vec::new();
            p.train.read(0, p.train.len(), &mut ids);
            assert!(ids.iter().all(|&i| (i as usize) < p.tokenizer.vocab_size()));
        }
    });
}

const DIALOGUE: &str = r#"{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi there"},{"role":"assistant","content":"Hello!"}]}
{"messages":[{"role":"user","content":"What is 2+2?"},{"role":"assistant","content":"4."},{"role":"user","content":"Thanks"},{"role":"assistant","content":"You are welcome."}]}
"#;

#[test]
fn fuzz_dialogue_and_eval_jsonl() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let hellaswag = r#"{"ctx":"A man sits down","endings":["and eats.","and flies.","and sings.","and runs."],"label":0}"#;
    let arc = r#"{"question":"What is water?","choices":{"text":["liquid","rock"],"label":["A","B"]},"answerKey":"A"}"#;
    let blimp =
        r#"{"sentence_good":"The cat sleeps.","sentence_bad":"The cat sleep.","UID":"agr"}"#;
    let gsm = r#"{"question":"2+2?","answer":"2+2=4\n#### 4"}"#;
    let seeds: Vec<Vec<u8>> = [DIALOGUE, hellaswag, arc, blimp, gsm]
        .iter()
        .enumerate()
        .map(|(i, s)| [vec![i as u8], s.as_bytes().to_vec()].concat())
        .collect();
    let tokens: Vec<&[u8]> = vec![
        b"\"role\"",
        b"\"content\"",
        b"\"assistant\"",
        b"\"user\"",
        b"\"system\"",
        b"\"label\"",
        b"99",
        b"-1",
        b"null",
        b"[]",
        b"\n",
        b"\"answerKey\"",
        b"####",
    ];
    fuzz("jsonl", input(seeds, tokens), |b| {
        let Some((&which, content)) = b.split_first() else {
            return;
        };
        let path = case_path(tmp.path(), ".jsonl");
        let _ = std::fs::write(&path, content);
        match which % 5 {
            0 => {
                let _ = ember_formats::dialogue::load(
                    &path,
                    ember_formats::dialogue::InvalidPolicy::Skip,
                );
                let _ = ember_formats::dialogue::load(
                    &path,
                    ember_formats::dialogue::InvalidPolicy::Stop,
                );
                let _ = ember_formats::dialogue::parse_line(&String::from_utf8_lossy(content));
            }
            1 => drop(ember_eval::tasks::choice::load_hellaswag(&path)),
            2 => drop(ember_eval::tasks::choice::load_arc(&path)),
            3 => drop(ember_eval::tasks::choice::load_blimp(&path)),
            _ => drop(ember_eval::tasks::generation::load_gsm8k(&path)),
        }
    });
}

#[test]
fn fuzz_chat_history() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let seeds: Vec<Vec<u8>> = DIALOGUE.lines().map(|l| l.as_bytes().to_vec()).collect();
    let tokens: Vec<&[u8]> = vec![
        b"\"role\"",
        b"\"content\"",
        b"\"assistant\"",
        b"\"user\"",
        b"\"system\"",
        b"\n",
        b"\"messages\"",
        b"{}",
        b"null",
    ];
    fuzz("chat-history", input(seeds, tokens), |b| {
        let path = case_path(tmp.path(), ".jsonl");
        let _ = std::fs::write(&path, b);
        let _ = ember_cli::chat_cmd::read_history(&path);
    });
}

#[test]
fn fuzz_toml_configs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut seeds: Vec<Vec<u8>> = Vec::new();
    for e in std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
    {
        if e.path().extension().is_some_and(|x| x == "toml") {
            seeds.push(std::fs::read(e.path()).unwrap_or_else(|e| panic!("{e}")));
        }
    }
    assert!(!seeds.is_empty(), "no configs in {}", root.display());
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let tokens: Vec<&[u8]> = vec![
        b"[train]",
        b"[model]",
        b"[[data.files]]",
        b"batch_size = 0",
        b"lr = nan",
        b"epochs = -1",
        b"= 1e309",
        b"= 18446744073709551616",
        b"= \"\"",
        b"\n",
        b"= inf",
        b"total_batch_tokens = 3",
        b"val_fraction = 1.5",
        b"dropout = 1",
    ];
    fuzz("toml", input(seeds, tokens), |b| {
        let path = case_path(tmp.path(), ".toml");
        let _ = std::fs::write(&path, b);
        let _ = ember_train::config::load::<ember_pretrain::PretrainConfig>(&path, &[]);
        let _ = ember_train::config::load::<ember_sft::SftConfig>(&path, &[]);
        // The same text as a `--set` value.
        let set = format!(
            "train.lr={}",
            String::from_utf8_lossy(&b[..b.len().min(40)])
        );
        let _ = ember_train::config::load::<ember_pretrain::PretrainConfig>(&path, &[set]);
    });
}
