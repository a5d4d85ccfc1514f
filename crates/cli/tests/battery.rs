//! The bad-input battery: every subcommand, given what a new user gets wrong, must exit
//! non-zero without a panic, with a message naming the input (flag, file, line or key), and
//! leave every file that existed before it byte for byte as it was.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::tokenizer::ember;

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// What the cases run against: a tokenizer, prepared data, a pretraining run and a
/// fine-tuning run, made once (about 20 s) and never changed by a case.
pub struct Fixture {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
}

impl Fixture {
    pub fn p(&self, rel: &str) -> String {
        s(&self.root.join(rel))
    }
}

fn run_ok(args: &[&str]) {
    let out = ember(args);
    assert!(out.ok, "{args:?}: {}{}", out.stdout, out.stderr);
}

pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = dir.path().join("f");
        std::fs::create_dir_all(&root).unwrap_or_else(|e| panic!("{e}"));
        let f = Fixture { _dir: dir, root };
        let text = std::fs::read_to_string(repo("data/tinyshakespeare.txt"))
            .unwrap_or_else(|e| panic!("{e}"));
        let chat = std::fs::read_to_string(repo("data/chatterbot_en.jsonl"))
            .unwrap_or_else(|e| panic!("{e}"));
        let corpus = format!("{}\n{}", &text[..60_000], chat.replace("\\n", "\n"));
        std::fs::write(f.root.join("corpus.txt"), corpus).unwrap_or_else(|e| panic!("{e}"));
        run_ok(&[
            "tokenizer", "train", "--input", &f.p("corpus.txt"), "--vocab-size", "400", "--out",
            &f.p("tok.json"),
        ]);
        run_ok(&[
            "prepare", "--tokenizer", &f.p("tok.json"), "--input", &f.p("corpus.txt"),
            "--val-fraction", "0.1", "--out", &f.p("data"),
        ]);
        let tiny = s(&repo("configs/tiny.toml"));
        let out_dir = format!("run.out_dir={:?}", f.p("run"));
        let data_dir = format!("data.dir={:?}", f.p("data"));
        run_ok(&[
            "pretrain", "--device", "cpu", "--config", &tiny, "--set", &out_dir, "--set",
            &data_dir, "--set", "model.block_size=64", "--set", "train.max_steps=4", "--set",
            "train.warmup_steps=1", "--set", "train.save_every=2", "--set", "train.eval_every=2",
        ]);
        let sft_cfg = format!(
            "[run]\nout_dir = {:?}\n\n[init]\ncheckpoint = {:?}\n\n[data]\nfiles = [{{ path = {:?} }}]\nval_fraction = 0.05\n\n[train]\nbatch_size = 4\nmax_steps = 2\nwarmup_steps = 1\nlr = 1e-3\nmin_lr = 1e-4\n\n[sample]\nreplies = 2\nmax_new_tokens = 8\n",
            f.p("sft"),
            f.p("run"),
            s(&repo("data/chatterbot_en.jsonl"))
        );
        std::fs::write(f.root.join("sft.toml"), sft_cfg).unwrap_or_else(|e| panic!("{e}"));
        run_ok(&["sft", "--device", "cpu", "--config", &f.p("sft.toml")]);
        std::fs::write(f.root.join("results.json"), "{\"kept\": true}\n")
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(f.root.join("details.jsonl"), "{\"kept\": true}\n")
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(f.root.join("existing.json"), "not to be overwritten\n")
            .unwrap_or_else(|e| panic!("{e}"));
        f
    })
}

/// Every file under `dir` with its SHA-256.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                out.insert(p, ember_files::sha256_hex(&bytes));
            }
        }
    }
    out
}

/// One bad input: the arguments (`{F}` is the fixture directory, `{C}` the case's own
/// directory with its files), files to write into `{C}` first, and text the error must contain.
struct Case {
    name: &'static str,
    args: &'static [&'static str],
    files: &'static [(&'static str, &'static [u8])],
    expect: &'static [&'static str],
}

const fn case(
    name: &'static str,
    args: &'static [&'static str],
    expect: &'static [&'static str],
) -> Case {
    Case {
        name,
        args,
        files: &[],
        expect,
    }
}

const fn with_files(
    name: &'static str,
    args: &'static [&'static str],
    files: &'static [(&'static str, &'static [u8])],
    expect: &'static [&'static str],
) -> Case {
    Case {
        name,
        args,
        files,
        expect,
    }
}

const GEN: [&str; 6] = [
    "generate",
    "--checkpoint",
    "{F}/run",
    "--device",
    "cpu",
    "--prompt",
];
const NOT_UTF8: &[u8] = b"hello \xff\xfe world\n";
const USER_LAST: &[u8] =
    br#"{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"hello"},{"role":"user","content":"and?"}]}"#;

fn cases() -> Vec<Case> {
    vec![
        // tokenizer train
        case("vocab size 0", &["tokenizer", "train", "--input", "{F}/corpus.txt", "--vocab-size", "0", "--out", "{C}/t.json"], &["--vocab-size", "0"]),
        case("vocab size overflow", &["tokenizer", "train", "--input", "{F}/corpus.txt", "--vocab-size", "18446744073709551615", "--out", "{C}/t.json"], &["--vocab-size", "18446744073709551615"]),
        case("vocab size below the bytes", &["tokenizer", "train", "--input", "{F}/corpus.txt", "--vocab-size", "100", "--out", "{C}/t.json"], &["100"]),
        case("train input missing", &["tokenizer", "train", "--input", "{C}/nope.txt", "--vocab-size", "300", "--out", "{C}/t.json"], &["nope.txt"]),
        with_files("train input not UTF-8", &["tokenizer", "train", "--input", "{C}/bad.txt", "--vocab-size", "300", "--out", "{C}/t.json"], &[("bad.txt", NOT_UTF8)], &["bad.txt", "UTF-8"]),
        case("train out exists", &["tokenizer", "train", "--input", "{F}/corpus.txt", "--vocab-size", "300", "--out", "{F}/existing.json"], &["existing.json", "--force"]),
        case("train threads too many", &["tokenizer", "train", "--input", "{F}/corpus.txt", "--vocab-size", "300", "--out", "{C}/t.json", "--threads", "5000"], &["--threads", "5000"]),
        // tokenizer encode / decode / stats
        case("encode tokenizer missing", &["tokenizer", "encode", "--tokenizer", "{C}/none.json", "--text", "hi"], &["none.json"]),
        with_files("encode tokenizer damaged", &["tokenizer", "encode", "--tokenizer", "{C}/bad.json", "--text", "hi"], &[("bad.json", b"{\"model\": [1, 2")], &["bad.json"]),
        with_files("encode tokenizer empty", &["tokenizer", "encode", "--tokenizer", "{C}/empty.json", "--text", "hi"], &[("empty.json", b"")], &["empty.json"]),
        case("decode id not a number", &["tokenizer", "decode", "--tokenizer", "{F}/tok.json", "--ids", "1 x 3"], &["\"x\""]),
        case("decode id out of range", &["tokenizer", "decode", "--tokenizer", "{F}/tok.json", "--ids", "99999999"], &["99999999"]),
        case("stats threads 0", &["tokenizer", "stats", "--tokenizer", "{F}/tok.json", "--input", "{F}/corpus.txt", "--threads", "0"], &["--threads", "0"]),
        case("stats repeat 0", &["tokenizer", "stats", "--tokenizer", "{F}/tok.json", "--input", "{F}/corpus.txt", "--repeat", "0"], &["--repeat", "0"]),
        with_files("stats over an empty file", &["tokenizer", "stats", "--tokenizer", "{F}/tok.json", "--input", "{C}/empty.txt"], &[("empty.txt", b"")], &["empty.txt", "empty"]),
        // prepare
        case("prepare val fraction 1.5", &["prepare", "--tokenizer", "{F}/tok.json", "--input", "{F}/corpus.txt", "--out", "{C}/d", "--val-fraction", "1.5"], &["--val-fraction", "1.5"]),
        case("prepare val fraction nan", &["prepare", "--tokenizer", "{F}/tok.json", "--input", "{F}/corpus.txt", "--out", "{C}/d", "--val-fraction", "nan"], &["--val-fraction", "nan"]),
        case("prepare shard tokens 0", &["prepare", "--tokenizer", "{F}/tok.json", "--input", "{F}/corpus.txt", "--out", "{C}/d", "--shard-tokens", "0"], &["--shard-tokens", "0"]),
        case("prepare tokenizer missing", &["prepare", "--tokenizer", "{C}/none.json", "--input", "{F}/corpus.txt", "--out", "{C}/d"], &["none.json"]),
        case("prepare input missing", &["prepare", "--tokenizer", "{F}/tok.json", "--input", "{C}/none.txt", "--out", "{C}/d"], &["none.txt"]),
        case("prepare over existing data", &["prepare", "--tokenizer", "{F}/tok.json", "--input", "{F}/corpus.txt", "--out", "{F}/data"], &["--out", "--force"]),
        with_files("prepare empty input", &["prepare", "--tokenizer", "{F}/tok.json", "--input", "{C}/empty.txt", "--out", "{C}/d"], &[("empty.txt", b"")], &["empty.txt"]),
        with_files("prepare input not UTF-8", &["prepare", "--tokenizer", "{F}/tok.json", "--input", "{C}/bad.txt", "--out", "{C}/d"], &[("bad.txt", NOT_UTF8)], &["bad.txt", "UTF-8"]),
        with_files("prepare --force with a missing input keeps the old data", &["prepare", "--tokenizer", "{F}/tok.json", "--input", "{C}/none.txt", "--out", "{F}/data", "--force"], &[], &["none.txt"]),
        // pretrain
        case("pretrain batch size 0", &["pretrain", "--device", "cpu", "--config", "{F}/run/config.toml", "--set", "run.out_dir=\"{C}/r\"", "--set", "train.batch_size=0"], &["train.batch_size = 0", "--set"]),
        with_files("pretrain batch size 0 in the file", &["pretrain", "--device", "cpu", "--config", "{C}/c.toml"], &[("c.toml", b"[run]\nout_dir = \"x\"\n\n[data]\ndir = \"y\"\n\n[train]\nlr = 1e-3\nbatch_size = 0\n")], &["c.toml:9", "train.batch_size = 0", "1 to 65536"]),
        with_files("pretrain lr nan in the file", &["pretrain", "--device", "cpu", "--config", "{C}/c.toml"], &[("c.toml", b"[run]\nout_dir = \"x\"\n[data]\ndir = \"y\"\n[train]\nlr = nan\n")], &["c.toml:6", "train.lr = NaN"]),
        case("pretrain negative lr", &["pretrain", "--device", "cpu", "--config", "{F}/run/config.toml", "--set", "train.lr=-1"], &["train.lr = -1", "--set"]),
        case("pretrain dropout 1.5", &["pretrain", "--device", "cpu", "--config", "{F}/run/config.toml", "--set", "model.dropout=1.5"], &["model.dropout = 1.5"]),
        case("pretrain unknown positions", &["pretrain", "--device", "cpu", "--config", "{F}/run/config.toml", "--set", "model.positions=spiral"], &["model.positions", "spiral", "rope"]),
        case("pretrain total batch not a multiple", &["pretrain", "--device", "cpu", "--config", "{F}/run/config.toml", "--set", "run.out_dir=\"{C}/r\"", "--set", "train.total_batch_tokens=100"], &["train.total_batch_tokens = 100", "multiple"]),
        case("pretrain warmup past the end", &["pretrain", "--device", "cpu", "--config", "{F}/run/config.toml", "--set", "train.warmup_steps=99"], &["train.warmup_steps = 99", "max_steps"]),
        case("pretrain resume with a config", &["pretrain", "--device", "cpu", "--resume", "{F}/run", "--config", "{F}/run/config.toml"], &["--resume", "--config"]),
        case("pretrain resume of a missing run", &["pretrain", "--device", "cpu", "--resume", "{C}/nothing"], &["nothing", "config.toml"]),
        case("pretrain config missing", &["pretrain", "--device", "cpu", "--config", "{C}/none.toml"], &["none.toml"]),
        with_files("pretrain config not TOML", &["pretrain", "--device", "cpu", "--config", "{C}/c.toml"], &[("c.toml", b"[run\nout_dir = 3\n")], &["c.toml", "line 1"]),
        with_files("pretrain unknown key", &["pretrain", "--device", "cpu", "--config", "{C}/c.toml"], &[("c.toml", b"[run]\nout_dir = \"x\"\n[data]\ndir = \"y\"\n[train]\nlearning_rate = 1\n")], &["c.toml", "learning_rate"]),
        case("pretrain huge batch", &["pretrain", "--device", "cpu", "--config", "{F}/run/config.toml", "--set", "train.batch_size=18446744073709551615"], &["batch_size"]),
        case("pretrain beta1 of 1", &["pretrain", "--device", "cpu", "--config", "{F}/run/config.toml", "--set", "train.beta1=1"], &["train.beta1 = 1", "[0, 1)"]),
        case("pretrain muon_beta2 of 1", &["pretrain", "--device", "cpu", "--config", "{F}/run/config.toml", "--set", "train.muon_beta2=1"], &["train.muon_beta2 = 1", "[0, 1)"]),
        case("pretrain keep_last 0", &["pretrain", "--device", "cpu", "--config", "{F}/run/config.toml", "--set", "train.keep_last=0"], &["train.keep_last = 0"]),
        case("pretrain cooldown share 0", &["pretrain", "--device", "cpu", "--config", "{F}/run/config.toml", "--set", "train.cooldown_fraction=0"], &["train.cooldown_fraction = 0"]),
        case("pretrain unknown muon_ns", &["pretrain", "--device", "cpu", "--config", "{F}/run/config.toml", "--set", "train.muon_ns=cubic"], &["muon_ns", "cubic"]),
        case("pretrain unknown decay", &["pretrain", "--device", "cpu", "--config", "{F}/run/config.toml", "--set", "train.decay=trapezoid"], &["decay", "trapezoid"]),
        case("pretrain negative peak", &["pretrain", "--device", "cpu", "--config", "{F}/run/config.toml", "--set", "train.peak_flops=-5"], &["train.peak_flops = -5"]),
        case("pretrain data dir missing", &["pretrain", "--device", "cpu", "--config", "{F}/run/config.toml", "--set", "run.out_dir=\"{C}/r\"", "--set", "data.dir=\"{C}/nodata\""], &["nodata", "meta.json"]),
        case("pretrain --force with bad data keeps the run", &["pretrain", "--device", "cpu", "--config", "{F}/run/config.toml", "--force", "--set", "data.dir=\"{C}/nodata\""], &["nodata"]),
        case("pretrain bf16", &["pretrain", "--device", "cpu", "--dtype", "bf16", "--config", "{F}/run/config.toml"], &["--dtype bf16"]),
        // sft
        case("sft negative epochs", &["sft", "--device", "cpu", "--config", "{F}/sft.toml", "--set", "data.files=[{path=\"x.jsonl\", epochs=-1}]"], &["data.files[0].epochs = -1"]),
        with_files("sft negative epochs in the file", &["sft", "--device", "cpu", "--config", "{C}/s.toml"], &[("s.toml", b"[run]\nout_dir = \"x\"\n[init]\ncheckpoint = \"y\"\n[data]\nfiles = [{ path = \"a.jsonl\" }, { path = \"b.jsonl\", epochs = -1 }]\n")], &["s.toml:6", "data.files[1].epochs = -1"]),
        case("sft val fraction 1.5", &["sft", "--device", "cpu", "--config", "{F}/sft.toml", "--set", "data.val_fraction=1.5"], &["data.val_fraction = 1.5"]),
        case("sft init missing", &["sft", "--device", "cpu", "--config", "{F}/sft.toml", "--set", "run.out_dir=\"{C}/s\"", "--init", "{C}/nock"], &["nock"]),
        case("sft data file missing", &["sft", "--device", "cpu", "--config", "{F}/sft.toml", "--set", "run.out_dir=\"{C}/s\"", "--set", "data.files=[{path=\"{C}/none.jsonl\"}]"], &["none.jsonl"]),
        with_files("sft invalid line", &["sft", "--device", "cpu", "--config", "{F}/sft.toml", "--set", "run.out_dir=\"{C}/s\"", "--set", "data.files=[{path=\"{C}/d.jsonl\"}]"], &[("d.jsonl", b"{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"yo\"}]}\nnot json\n")], &["d.jsonl:2"]),
        case("sft resume with a config", &["sft", "--device", "cpu", "--resume", "{F}/sft", "--config", "{F}/sft.toml"], &["--resume", "--config"]),
        case("sft sample temperature", &["sft", "--device", "cpu", "--config", "{F}/sft.toml", "--set", "sample.temperature=-1"], &["sample.temperature = -1"]),
        case("sft --force with bad data keeps the run", &["sft", "--device", "cpu", "--config", "{F}/sft.toml", "--force", "--set", "data.files=[{path=\"{C}/none.jsonl\"}]"], &["none.jsonl"]),
        // generate
        case("temperature -1", &[GEN[0], GEN[1], GEN[2], GEN[3], GEN[4], GEN[5], "hi", "--temperature=-1"], &["--temperature", "-1", "0 (greedy) to 10"]),
        case("temperature nan", &[GEN[0], GEN[1], GEN[2], GEN[3], GEN[4], GEN[5], "hi", "--temperature", "nan"], &["--temperature", "nan"]),
        case("top-p 2", &[GEN[0], GEN[1], GEN[2], GEN[3], GEN[4], GEN[5], "hi", "--top-p", "2"], &["--top-p", "2"]),
        case("top-p 0", &[GEN[0], GEN[1], GEN[2], GEN[3], GEN[4], GEN[5], "hi", "--top-p", "0"], &["--top-p", "0"]),
        case("repetition penalty 0", &[GEN[0], GEN[1], GEN[2], GEN[3], GEN[4], GEN[5], "hi", "--repetition-penalty", "0"], &["--repetition-penalty", "0"]),
        case("max new tokens overflow", &[GEN[0], GEN[1], GEN[2], GEN[3], GEN[4], GEN[5], "hi", "--max-new-tokens", "18446744073709551615"], &["--max-new-tokens", "18446744073709551615"]),
        case("max new tokens 0", &[GEN[0], GEN[1], GEN[2], GEN[3], GEN[4], GEN[5], "hi", "--max-new-tokens", "0"], &["--max-new-tokens", "0"]),
        case("max new tokens past the context", &[GEN[0], GEN[1], GEN[2], GEN[3], GEN[4], GEN[5], "hi", "--max-new-tokens", "100000"], &["100000", "context length 64"]),
        case("top-k negative", &[GEN[0], GEN[1], GEN[2], GEN[3], GEN[4], GEN[5], "hi", "--top-k=-1"], &["--top-k", "-1"]),
        case("empty prompt", &[GEN[0], GEN[1], GEN[2], GEN[3], GEN[4], GEN[5], ""], &["prompt is empty"]),
        case("generate checkpoint missing", &["generate", "--checkpoint", "{C}/none", "--prompt", "hi", "--device", "cpu"], &["none"]),
        with_files("generate damaged manifest", &["generate", "--checkpoint", "{C}/ck", "--prompt", "hi", "--device", "cpu"], &[("ck/manifest.json", b"{\"format\": \"ember-checkpoint\", \"version\": 1, \"files\": {}}")], &["ck"]),
        // chat
        case("chat empty message", &["chat", "--checkpoint", "{F}/sft", "--device", "cpu", "--message", ""], &["--message", "empty"]),
        case("chat blank message", &["chat", "--checkpoint", "{F}/sft", "--device", "cpu", "--message", "   "], &["--message", "empty"]),
        with_files("chat history ends with the user", &["chat", "--checkpoint", "{F}/sft", "--device", "cpu", "--message", "hi", "--history", "{C}/h.jsonl"], &[("h.jsonl", USER_LAST)], &["h.jsonl", "messages[2]", "user"]),
        with_files("chat history not JSON", &["chat", "--checkpoint", "{F}/sft", "--device", "cpu", "--message", "hi", "--history", "{C}/h.jsonl"], &[("h.jsonl", b"hello there\n")], &["h.jsonl:1", "not JSON"]),
        with_files("chat history two lines", &["chat", "--checkpoint", "{F}/sft", "--device", "cpu", "--message", "hi", "--history", "{C}/h.jsonl"], &[("h.jsonl", b"{\"messages\":[]}\n{\"messages\":[]}\n")], &["h.jsonl:2"]),
        with_files("chat history unknown role", &["chat", "--checkpoint", "{F}/sft", "--device", "cpu", "--message", "hi", "--history", "{C}/h.jsonl"], &[("h.jsonl", br#"{"messages":[{"role":"robot","content":"beep"}]}"#)], &["h.jsonl", "messages[0]", "robot"]),
        with_files("chat history turns out of order", &["chat", "--checkpoint", "{F}/sft", "--device", "cpu", "--message", "hi", "--history", "{C}/h.jsonl"], &[("h.jsonl", br#"{"messages":[{"role":"assistant","content":"hello"}]}"#)], &["h.jsonl", "messages[0]", "assistant"]),
        case("chat history without a message", &["chat", "--checkpoint", "{F}/sft", "--device", "cpu", "--history", "{C}/h.jsonl"], &["--message"]),
        case("chat temperature nan", &["chat", "--checkpoint", "{F}/sft", "--device", "cpu", "--message", "hi", "--temperature", "NaN"], &["--temperature"]),
        // eval
        case("eval limit 0", &["eval", "--checkpoint", "{F}/run", "--device", "cpu", "--limit", "0", "--no-report"], &["--limit", "0"]),
        with_files("eval empty text", &["eval", "--checkpoint", "{F}/run", "--device", "cpu", "--tasks", "text", "--text", "{C}/empty.txt", "--out", "{F}/results.json", "--no-report"], &[("empty.txt", b"")], &["empty.txt", "nothing to predict"]),
        case("eval unknown task", &["eval", "--checkpoint", "{F}/run", "--device", "cpu", "--tasks", "mmlu"], &["--tasks", "mmlu"]),
        case("eval missing data keeps details and results", &["eval", "--checkpoint", "{F}/run", "--device", "cpu", "--tasks", "hellaswag", "--eval-data", "{C}/none", "--details", "{F}/details.jsonl", "--out", "{F}/results.json"], &["hellaswag", "hellaswag_val.jsonl"]),
        with_files("eval no valid item keeps details", &["eval", "--checkpoint", "{F}/run", "--device", "cpu", "--tasks", "blimp", "--eval-data", "{C}", "--details", "{F}/details.jsonl", "--out", "{F}/results.json", "--no-report"], &[("blimp_200per.jsonl", b"not json\n")], &["blimp_200per.jsonl"]),
        case("eval stride 0", &["eval", "--checkpoint", "{F}/run", "--device", "cpu", "--stride", "0"], &["--stride", "0"]),
        case("eval samples 0", &["eval", "--checkpoint", "{F}/run", "--device", "cpu", "--tasks", "samples", "--samples", "0"], &["--samples", "0"]),
        case("eval checkpoint missing", &["eval", "--checkpoint", "{C}/none", "--device", "cpu"], &["none"]),
        case("eval text missing", &["eval", "--checkpoint", "{F}/run", "--device", "cpu", "--tasks", "text", "--text", "{C}/none.txt"], &["--text", "none.txt"]),
        with_files("eval empty dialogue", &["eval", "--checkpoint", "{F}/sft", "--device", "cpu", "--tasks", "sft-loss", "--dialogue", "{C}/d.jsonl", "--out", "{F}/results.json", "--no-report"], &[("d.jsonl", b"")], &["d.jsonl"]),
        case("eval run without checkpoints", &["eval", "--run", "{C}", "--device", "cpu"], &["no complete checkpoint"]),
        // export
        case("export over an existing directory", &["export", "--checkpoint", "{F}/run", "--out", "{F}/data"], &["data", "--force"]),
        case("export checkpoint missing", &["export", "--checkpoint", "{C}/none", "--out", "{C}/hf"], &["none"]),
        case("export unknown format", &["export", "--checkpoint", "{F}/run", "--out", "{C}/hf", "--format", "onnx"], &["--format", "onnx"]),
        // init
        case("init zero heads", &["init", "--tokenizer", "{F}/tok.json", "--out", "{C}/i", "--n-head", "0"], &["--n-head", "0"]),
        case("init width not a multiple of heads", &["init", "--tokenizer", "{F}/tok.json", "--out", "{C}/i", "--n-head", "3", "--n-embd", "64"], &["n_embd", "64", "n_head = 3"]),
        case("init unknown preset", &["init", "--tokenizer", "{F}/tok.json", "--out", "{C}/i", "--preset", "huge"], &["huge"]),
        case("init tokenizer missing", &["init", "--tokenizer", "{C}/none.json", "--out", "{C}/i"], &["none.json"]),
        case("init over an existing checkpoint", &["init", "--tokenizer", "{F}/tok.json", "--out", "{F}/run"], &["run", "--force"]),
        // neighbors, attention
        case("neighbors empty word", &["neighbors", "--checkpoint", "{F}/run", "--token", "", "--device", "cpu"], &["--token"]),
        case("neighbors k 0", &["neighbors", "--checkpoint", "{F}/run", "--token", "the", "--k", "0"], &["--k", "0"]),
        case("attention layer out of range", &["attention", "--checkpoint", "{F}/run", "--text", "the king", "--layer", "99", "--device", "cpu", "--out", "{C}/a.svg"], &["--layer 99"]),
        case("attention checkpoint missing", &["attention", "--checkpoint", "{C}/none", "--text", "hi", "--device", "cpu", "--out", "{C}/a.svg"], &["none"]),
        // bench
        case("bench steps 0", &["bench", "--steps", "0"], &["--steps", "0"]),
        case("bench gen tokens overflow", &["bench", "--gen-tokens", "18446744073709551615"], &["--gen-tokens", "18446744073709551615"]),
        case("bench unknown shape", &["bench", "--shape", "enormous"], &["--shape", "enormous"]),
        // report
        case("report run missing", &["report", "--run", "{C}/none"], &["none"]),
        with_files("report damaged results", &["report", "--results", "{C}/r.json"], &[("r.json", b"{\"format\": 3")], &["r.json"]),
    ]
}

#[test]
fn every_bad_input_is_refused_by_name_without_a_panic_and_without_touching_files() {
    let f = fixture();
    let cases = cases();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let mut failures = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let cdir = f.root.join(format!("case-{i:02}"));
        std::fs::create_dir_all(&cdir).unwrap_or_else(|e| panic!("{e}"));
        for (name, bytes) in c.files {
            let p = cdir.join(name);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
            }
            std::fs::write(p, bytes).unwrap_or_else(|e| panic!("{e}"));
        }
        let args: Vec<String> = c
            .args
            .iter()
            .map(|a| a.replace("{F}", &s(&f.root)).replace("{C}", &s(&cdir)))
            .collect();
        let before = snapshot(&f.root);
        let out = Command::new(env!("CARGO_BIN_EXE_ember"))
            .args(&args)
            .output()
            .unwrap_or_else(|e| panic!("running ember: {e}"));
        let after = snapshot(&f.root);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let mut why = Vec::new();
        match out.status.code() {
            Some(0) => why.push("exited 0".to_string()),
            Some(101) => why.push("exit code 101 (a panic)".to_string()),
            None => why.push(format!("killed by a signal ({:?})", out.status)),
            Some(_) => {}
        }
        if stderr.contains("panicked") {
            why.push("panicked".into());
        }
        for e in c.expect {
            let e = e.replace("{F}", &s(&f.root)).replace("{C}", &s(&cdir));
            if !stderr.contains(&e) {
                why.push(format!("message lacks {e:?}"));
            }
        }
        let changed: Vec<String> = before
            .iter()
            .filter(|(p, h)| after.get(*p) != Some(*h))
            .map(|(p, _)| s(p))
            .collect();
        if !changed.is_empty() {
            why.push(format!("changed or deleted: {changed:?}"));
        }
        if !why.is_empty() {
            failures.push(format!(
                "case {i} '{}': {}\n  args: {args:?}\n  stderr: {}",
                c.name,
                why.join("; "),
                stderr.trim()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
