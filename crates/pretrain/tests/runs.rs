//! Pretraining runs from config files: sampling, config errors, resume checks.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::common::*;
use ember_formats::Prepared;
use ember_model::{DeviceChoice, Precision, select_device};
use ember_pretrain::prepare::prepare;
use ember_pretrain::{PretrainOptions, ShardTask, pretrain};
use ember_train::{FaultPlan, Task};

fn config(dir: &Path) -> std::path::PathBuf {
    let text = format!(
        "[run]\nout_dir = {:?}\n[data]\ndir = {:?}\n[model]\nn_layer = 1\nn_head = 2\nn_embd = 32\nblock_size = 16\n[train]\nbatch_size = 4\nmax_steps = 6\nwarmup_steps = 1\neval_every = 3\nsave_every = 3\neval_tokens = 256\n",
        dir.join("run"),
        dir.join("data")
    );
    let p = dir.join("c.toml");
    std::fs::write(&p, text).unwrap();
    p
}

pub fn opts(
    config: Option<std::path::PathBuf>,
    resume: Option<std::path::PathBuf>,
    sets: &[&str],
) -> PretrainOptions {
    PretrainOptions {
        config,
        sets: sets.iter().map(|s| s.to_string()).collect(),
        resume,
        device: select_device(DeviceChoice::Cpu, Precision::F32).unwrap(),
        stop: Arc::new(AtomicBool::new(false)),
        faults: FaultPlan::default(),
        restart: false,
    }
}

fn prepared(dir: &Path) {
    let (c, t) = setup(dir, 300);
    prepare(&options(dir, &c, &t, "data")).unwrap();
}

#[test]
fn sampling_is_a_pure_function_of_seed_step_and_micro_batch() {
    let dir = tempfile::tempdir().unwrap();
    prepared(dir.path());
    let data = Prepared::open(&dir.path().join("data")).unwrap();
    let task = ShardTask::new(&data, 4, 16, 7, 0).unwrap();
    let a = task.train_batch(5, 1).unwrap();
    assert_eq!(a, task.train_batch(5, 1).unwrap());
    assert_ne!(a.inputs, task.train_batch(6, 1).unwrap().inputs);
    assert_ne!(a.inputs, task.train_batch(5, 0).unwrap().inputs);
    assert_eq!(
        &a.inputs[1..16],
        &a.targets[..15],
        "targets are inputs shifted by one"
    );
    // Held-out batches skip special tokens in loss and byte counts.
    let eot = data.tokenizer.token_to_id("<|endoftext|>").unwrap();
    for i in 0..task.eval_batches() {
        let b = task.eval_batch(i).unwrap();
        for (y, m) in b.targets.iter().zip(&b.mask) {
            assert_eq!(*m == 0.0, *y == eot);
        }
    }
}

#[test]
fn a_config_typo_names_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    prepared(dir.path());
    let p = config(dir.path());
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("n_embd = 32", "n_embed = 32");
    std::fs::write(&p, text).unwrap();
    let err = pretrain(opts(Some(p), None, &[])).unwrap_err().to_string();
    assert!(err.contains("n_embed") && err.contains("line 8"), "{err}");
}

#[test]
fn runs_and_resume_checks_the_model_shape() {
    let dir = tempfile::tempdir().unwrap();
    prepared(dir.path());
    let p = config(dir.path());
    let out = pretrain(opts(Some(p.clone()), None, &["train.max_steps=3"])).unwrap();
    assert_eq!(out.step, 3);
    let saved = std::fs::read_to_string(out.checkpoint.join("run_config.toml")).unwrap();
    assert!(
        saved.contains("max_steps = 3") && saved.contains("n_embd = 32"),
        "{saved}"
    );
    let run = dir.path().join("run");
    let err = pretrain(opts(None, Some(run.clone()), &["model.n_embd=64"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("model.n_embd: checkpoint 32, now 64"), "{err}");
    let out = pretrain(opts(None, Some(run), &["train.max_steps=6"])).unwrap();
    assert_eq!(out.step, 6);
    let err = pretrain(opts(None, Some(dir.path().join("nothing")), &[]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nothing") && err.contains("not an Ember run"),
        "{err}"
    );
}

fn eval_losses(run: &Path) -> Vec<(u64, f64)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["kind"] == "eval")
        .map(|r| (r["step"].as_u64().unwrap(), r["val_loss"].as_f64().unwrap()))
        .collect()
}

#[test]
fn init_starts_from_a_checkpoint_and_takes_its_shape() {
    let dir = tempfile::tempdir().unwrap();
    prepared(dir.path());
    let first = pretrain(opts(Some(config(dir.path())), None, &["train.max_steps=3"])).unwrap();
    let (a, b) = (dir.path().join("run"), dir.path().join("continued"));
    let text = format!(
        "[run]\nout_dir = {b:?}\n[init]\ncheckpoint = {a:?}\n[data]\ndir = {:?}\n[train]\nbatch_size = 4\nmax_steps = 2\nwarmup_steps = 1\neval_every = 2\nsave_every = 2\neval_tokens = 256\n",
        dir.path().join("data")
    );
    let p = dir.path().join("init.toml");
    std::fs::write(&p, &text).unwrap();
    let out = pretrain(opts(Some(p.clone()), None, &[])).unwrap();
    assert_eq!(out.step, 2);
    // Step 0 of the new run evaluates exactly the weights the first run ended with.
    let ended = eval_losses(&a).last().copied().unwrap();
    assert_eq!(ended.0, first.step);
    assert_eq!(eval_losses(&b)[0], (0, ended.1));
    let saved = std::fs::read_to_string(out.checkpoint.join("run_config.toml")).unwrap();
    assert!(
        saved.contains("[init]") && saved.contains("n_embd = 32"),
        "{saved}"
    );
    // A [model] section that disagrees with the checkpoint is refused, naming the field.
    let p2 = dir.path().join("init2.toml");
    let text = text.replace("continued", "other").replace(
        "[data]",
        "[model]\nn_layer = 1\nn_head = 2\nn_embd = 64\nblock_size = 16\n[data]",
    );
    std::fs::write(&p2, text).unwrap();
    let err = pretrain(opts(Some(p2), None, &[])).unwrap_err().to_string();
    assert!(
        err.contains("model shape differs") && err.contains("n_embd"),
        "{err}"
    );
    // Resuming the initialised run continues it (the [init] section is not applied again).
    let out = pretrain(opts(None, Some(b), &["train.max_steps=4"])).unwrap();
    assert_eq!(out.step, 4);
}

#[test]
fn every_shipped_config_parses_and_resolves() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        // Fine-tuning configs (with an [init] section) are checked by the SFT crate's tests.
        let sft = std::fs::read_to_string(&p)
            .unwrap_or_default()
            .contains("\n[init]");
        if p.extension().is_some_and(|x| x == "toml") && !sft {
            let c: ember_pretrain::PretrainConfig =
                ember_train::config::load(&p, &[]).unwrap_or_else(|e| panic!("{e}"));
            let vocab = if p.to_string_lossy().contains("gutenberg") {
                8192
            } else {
                261
            };
            let m = c
                .model
                .resolve(vocab)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            c.train
                .validate(m.block_size)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            n += 1;
        }
    }
    assert!(n >= 4, "found {n} configs");
}

/// The test corpus and `copies` of the conversation `line` (JSONL), each prepared with the
/// same 300-id tokenizer; the directory holds both.
fn text_and_dialogue(line: &str, copies: usize) -> (tempfile::TempDir, Prepared, Prepared) {
    let dir = tempfile::tempdir().unwrap();
    let (c, t) = setup(dir.path(), 300);
    ember_pretrain::prepare::prepare(&options(dir.path(), &c, &t, "text")).unwrap();
    let dlg = dir.path().join("d.jsonl");
    std::fs::write(&dlg, format!("{line}\n").repeat(copies)).unwrap();
    let mut o = options(dir.path(), &dlg, &t, "dialogue");
    o.dialogue = true;
    o.doc_separator = None;
    ember_pretrain::prepare::prepare(&o).unwrap();
    let text = Prepared::open(&dir.path().join("text")).unwrap();
    let dialogue = Prepared::open(&dir.path().join("dialogue")).unwrap();
    (dir, text, dialogue)
}

/// Rows draw from a mixed source only from its start step, and then about its share; the main
/// data's windows are the same draws as without a mix.
#[test]
fn mixed_rows_come_from_the_mix_after_its_start_and_leave_the_main_draws_alone() {
    use ember_pretrain::task::Mixed;
    use ember_train::Task;
    let line = r#"{"messages":[{"role":"user","content":"It was the night?"},{"role":"assistant","content":"The wind was high, and the book was at its end."}]}"#;
    let (_dir, text, dialogue) = text_and_dialogue(line, 40);
    let assistant = text.tokenizer.token_to_id("<|assistant|>").unwrap();
    let plain = ShardTask::new(&text, 16, 16, 3, 0).unwrap();
    let mixed = ShardTask::new(&text, 16, 16, 3, 0)
        .unwrap()
        .with_mix(vec![Mixed {
            data: &dialogue,
            weight: 0.5,
            start_step: 5,
            replies: None,
        }])
        .unwrap();
    let rows = |b: &ember_train::HostBatch| -> Vec<Vec<u32>> {
        b.inputs.chunks(b.seq).map(<[u32]>::to_vec).collect()
    };
    for step in 0..5 {
        assert_eq!(
            mixed.train_batch(step, 0).unwrap(),
            plain.train_batch(step, 0).unwrap(),
            "before its start the mix changes nothing (step {step})"
        );
    }
    let mut stream = Vec::new();
    dialogue.train.read(0, dialogue.train.len(), &mut stream);
    assert!(
        stream.contains(&assistant),
        "the dialogue shards hold the template's tokens"
    );
    let (mut from_mix, mut total) = (0, 0);
    for step in 5..25 {
        let (m, p) = (
            mixed.train_batch(step, 0).unwrap(),
            plain.train_batch(step, 0).unwrap(),
        );
        for (rm, rp) in rows(&m).iter().zip(rows(&p)) {
            total += 1;
            if rm != &rp {
                from_mix += 1;
                assert!(
                    stream.windows(rm.len()).any(|w| w == rm.as_slice()),
                    "a mixed row is a window of the dialogue shards: {rm:?}"
                );
            }
        }
    }
    let share = from_mix as f64 / total as f64;
    assert!(
        (0.35..0.65).contains(&share),
        "{from_mix} of {total} rows from the mix"
    );
}

/// With `loss = "replies"`, a mixed dialogue row trains exactly the targets inside assistant
/// replies (and the `<|end|>` closing each), however the window falls: the mask equals one
/// computed from the whole stream; main-data rows still train every token.
#[test]
fn reply_only_mixed_rows_train_the_replies_and_nothing_else() {
    use ember_pretrain::replies::ReplyIds;
    use ember_pretrain::task::Mixed;
    use ember_train::Task;
    // Replies longer than a window, so some windows start inside one.
    let reply = "The wind was high, and the book was at its end. ".repeat(3);
    let line = format!(
        r#"{{"messages":[{{"role":"system","content":"Be kind."}},{{"role":"user","content":"It was the night?"}},{{"role":"assistant","content":"{reply}"}},{{"role":"user","content":"And then?"}},{{"role":"assistant","content":"Then morning."}}]}}"#
    );
    let (_dir, text, dialogue) = text_and_dialogue(&line, 30);
    let tok = &text.tokenizer;
    let id = |s: &str| tok.token_to_id(s).unwrap();
    let (assistant, end) = (id("<|assistant|>"), id("<|end|>"));
    // The expected mask from the whole stream: a target is trained when the last chat token
    // before it opened an assistant turn.
    let mut stream = Vec::new();
    dialogue.train.read(0, dialogue.train.len(), &mut stream);
    let mut inside = vec![false; stream.len()];
    let mut state = false;
    for (i, &x) in stream.iter().enumerate() {
        if x == assistant {
            state = true;
        } else if [end, id("<|user|>"), id("<|system|>"), id("<|endoftext|>")].contains(&x) {
            state = false;
        }
        inside[i] = state; // the turn after input i: whether target i + 1 is trained
    }
    let seq = 16;
    let mixed = ShardTask::new(&text, 16, seq, 3, 0)
        .unwrap()
        .with_mix(vec![Mixed {
            data: &dialogue,
            weight: 0.6,
            start_step: 0,
            replies: ReplyIds::of(tok),
        }])
        .unwrap();
    let (mut dialogue_rows, mut starts_inside, mut trained_ends) = (0, 0, 0);
    for step in 0..30 {
        let b = mixed.train_batch(step, 0).unwrap();
        for r in 0..b.batch {
            let row = &b.inputs[r * seq..(r + 1) * seq];
            let mask = &b.mask[r * seq..(r + 1) * seq];
            let targets = &b.targets[r * seq..(r + 1) * seq];
            let at: Vec<usize> = (0..=stream.len() - seq - 1)
                .filter(|&s| stream[s..s + seq] == *row && stream[s + 1..s + seq + 1] == *targets)
                .collect();
            let Some(&s) = at.first() else {
                assert!(
                    mask.iter().all(|&m| m == 1.0),
                    "a main-data row trains every token"
                );
                continue;
            };
            dialogue_rows += 1;
            // Identical windows elsewhere in the stream must agree (the stream repeats).
            let want: Vec<f32> = (0..seq)
                .map(|j| f32::from(u8::from(inside[s + j])))
                .collect();
            assert_eq!(mask, want.as_slice(), "row at {s}");
            starts_inside += usize::from(s > 0 && inside[s - 1]);
            trained_ends += (0..seq)
                .filter(|&j| mask[j] == 1.0 && targets[j] == end)
                .count();
        }
    }
    assert!(dialogue_rows > 100, "{dialogue_rows} dialogue rows");
    assert!(
        starts_inside > 10,
        "{starts_inside} rows start inside a reply"
    );
    assert!(trained_ends > 0, "the <|end|> closing a reply is trained");
}
