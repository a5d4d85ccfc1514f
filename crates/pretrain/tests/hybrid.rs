//! The hybrid objective (`[objective] kind = "hybrid"`): which rows are masked and which tokens
//! hidden, exact resume, config errors, and generation from a hybrid-trained model.

use std::path::Path;

use crate::common::*;
use burn::prelude::Device;
use ember_formats::Prepared;
use ember_model::{SamplingConfig, generate};
use ember_pretrain::objective::Masking;
use ember_pretrain::prepare::prepare;
use ember_pretrain::{ShardTask, pretrain};
use ember_train::Task;

use crate::runs::opts;

fn prepared(dir: &Path) -> Prepared {
    let (c, t) = setup(dir, 300);
    prepare(&options(dir, &c, &t, "data")).unwrap();
    Prepared::open(&dir.join("data")).unwrap()
}

fn masking(data: &Prepared) -> Masking {
    let n = data.tokenizer.vocab_size() as u32;
    Masking {
        share: 0.5,
        rate: 0.25,
        mask_id: n,
        ordinary: (0..n)
            .filter(|&id| data.tokenizer.text_len(id) > 0)
            .collect(),
    }
}

#[test]
fn masked_rows_come_first_and_hide_only_the_tokens_they_predict() {
    let dir = tempfile::tempdir().unwrap();
    let data = prepared(dir.path());
    let (b, t) = (16, 16);
    let m = masking(&data);
    let causal = ShardTask::new(&data, b, t, 7, 0).unwrap();
    let hybrid = ShardTask::new(&data, b, t, 7, 0)
        .unwrap()
        .with_masking(m.clone());
    let (mut masked_rows, mut hidden, mut as_mask) = (0, 0, 0);
    for step in 0..8 {
        let c = causal.train_batch(step, 0).unwrap();
        let h = hybrid.train_batch(step, 0).unwrap();
        assert_eq!(h, hybrid.train_batch(step, 0).unwrap(), "a pure function");
        assert_eq!(c.bidirectional, 0);
        // The same windows, masked rows moved to the front: targets are never changed.
        let rows = |x: &[u32]| {
            let mut r: Vec<Vec<u32>> = x.chunks(t).map(<[u32]>::to_vec).collect();
            r.sort();
            r
        };
        assert_eq!(rows(&c.targets), rows(&h.targets));
        masked_rows += h.bidirectional;
        for r in 0..b {
            let span = r * t..(r + 1) * t;
            let (x, y, w) = (
                &h.inputs[span.clone()],
                &h.targets[span.clone()],
                &h.mask[span],
            );
            if r >= h.bidirectional {
                assert_eq!(&x[1..], &y[..t - 1], "causal rows are untouched");
                assert!(w.iter().all(|&v| v == 1.0));
                continue;
            }
            // Row r is masked: round(0.25 · 15) = 4 hidden positions, each one's target (of the
            // position before it) the only weighted ones; every other input unchanged.
            assert_eq!(w.iter().filter(|&&v| v == 1.0).count(), 4);
            assert_eq!(w[t - 1], 0.0, "the last target is not in the row's inputs");
            for p in 1..t {
                if w[p - 1] == 0.0 {
                    assert_eq!(
                        x[p],
                        y[p - 1],
                        "row {r} position {p} changed but not hidden"
                    );
                } else {
                    hidden += 1;
                    as_mask += usize::from(x[p] == m.mask_id);
                }
            }
            assert!(!x.contains(&m.mask_id) || w.contains(&1.0));
        }
    }
    // Half the rows masked, about 80% of hidden tokens shown as the mask token (BERT's recipe).
    assert!(
        (40..=88).contains(&masked_rows),
        "{masked_rows} of 128 rows masked"
    );
    let share = as_mask as f64 / hidden as f64;
    assert!(
        (0.65..0.95).contains(&share),
        "{as_mask} of {hidden} hidden as the mask"
    );
    // Held-out batches stay causal.
    let e = hybrid.eval_batch(0).unwrap();
    assert_eq!(e, causal.eval_batch(0).unwrap());
}

fn config(dir: &Path, out: &str, extra: &str) -> std::path::PathBuf {
    let text = format!(
        "[run]\nout_dir = {:?}\n[data]\ndir = {:?}\n[model]\nn_layer = 1\nn_head = 2\nn_embd = 32\nblock_size = 16\n[train]\nbatch_size = 8\nmax_steps = 6\nwarmup_steps = 1\neval_every = 3\nsave_every = 3\neval_tokens = 256\n[objective]\nkind = \"hybrid\"\nmasked_share = 0.5\n{extra}",
        dir.join(out),
        dir.join("data")
    );
    let p = dir.join(format!("{out}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn a_hybrid_run_resumes_exactly_and_its_model_generates_text() {
    let dir = tempfile::tempdir().unwrap();
    let data = prepared(dir.path());
    let whole = pretrain(opts(Some(config(dir.path(), "run", "")), None, &[])).unwrap();
    let weights = |ck: &Path| std::fs::read(ck.join("model.safetensors")).unwrap();
    let whole_weights = weights(&whole.checkpoint);
    let saved = std::fs::read_to_string(whole.checkpoint.join("run_config.toml")).unwrap();
    let n = data.tokenizer.vocab_size();
    assert!(
        saved.contains("kind = \"hybrid\"") && saved.contains(&format!("vocab_size = {}", n + 1)),
        "the mask token takes one id past the tokenizer's: {saved}"
    );
    // Resumed from the run's step-3 checkpoint (a copy of the run without its later one),
    // it ends with the same weights, bit for bit: the masking is a function of the step.
    let (run, copy) = (dir.path().join("run"), dir.path().join("run2"));
    copy_dir(&run, &copy);
    std::fs::remove_dir_all(ember_formats::run::checkpoint_dir(&copy, 6)).unwrap();
    assert!(ember_formats::run::checkpoint_dir(&copy, 3).exists());
    let resumed = pretrain(opts(None, Some(copy), &[])).unwrap();
    assert_eq!(resumed.step, 6);
    assert!(
        weights(&resumed.checkpoint) == whole_weights,
        "resumed weights differ"
    );
    // The mask id is never sampled, even when it is the model's favourite.
    let ck = ember_model::checkpoint::load(&whole.checkpoint, &Device::flex()).unwrap();
    let cfg = SamplingConfig {
        max_new_tokens: 12,
        temperature: 0.0,
        logit_bias: vec![(n as u32, 100.0)],
        ..SamplingConfig::default()
    };
    let prompt = ck.tokenizer.encode("It was the");
    let g = generate(&ck.model, &ck.tokenizer, &prompt, &cfg, |_| true).unwrap();
    assert_eq!(g.ids.len(), 12);
    assert!(g.ids.iter().all(|&id| (id as usize) < n), "{:?}", g.ids);
}

#[test]
fn hybrid_settings_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    prepared(dir.path());
    let err = |set: &str| {
        pretrain(opts(Some(config(dir.path(), "run", "")), None, &[set]))
            .unwrap_err()
            .to_string()
    };
    let e = err("objective.mask_rate=1.5");
    assert!(
        e.contains("objective.mask_rate") && e.contains("1.5"),
        "{e}"
    );
    let e = err("objective.masked_share=0");
    assert!(e.contains("objective.masked_share"), "{e}");
    let e = err("objective.kind=\"bert\"");
    assert!(e.contains("bert"), "{e}");
    // No room for the mask token: the model's vocabulary is exactly the tokenizer's.
    let data = Prepared::open(&dir.path().join("data")).unwrap();
    let n = data.tokenizer.vocab_size();
    let e = err(&format!("model.vocab_size={n}"));
    assert!(
        e.contains("model.vocab_size") && e.contains(&format!("at least {}", n + 1)),
        "{e}"
    );
    assert!(
        !dir.path().join("run").exists(),
        "nothing written by a refused run"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}
