//! Evaluate a checkpoint with Ember's library API: save a (here untrained) tiny model, then
//! score two multiple-choice questions the way `ember eval` does and compute bits per byte on
//! some text. Seconds on a CPU.
//!
//! `cargo test --workspace` runs it with the shared build; on its own (a separate feature set,
//! so a first run rebuilds Burn): cargo run -p ember-examples --example eval_checkpoint

use anyhow::Result;
use burn::prelude::*;
use ember_eval::loglik::ModelScorer;
use ember_eval::tasks::choice::{self, ChoiceItem};
use ember_eval::tasks::text;
use ember_model::{GptConfig, checkpoint};
use ember_tokenizer::{TrainerConfig, train_from_texts};

const TEXT: &str = "The cat sat on the mat. The dog slept by the door. ";

/// Returns (accuracy over the two questions, bits per byte of TEXT).
fn run(dir: &std::path::Path) -> Result<(f64, f64)> {
    let mut tc = TrainerConfig::new(300);
    tc.progress = false;
    let (tok, _) = train_from_texts(&[TEXT.repeat(4)], &tc)?;
    let device = Device::flex();
    device.seed(1);
    let cfg = GptConfig::new(tok.vocab_size(), 2, 2, 32, 64);
    checkpoint::save(&dir.join("ck"), &cfg.init(&device), &cfg, &tok, &[])?;

    // What `ember eval --checkpoint DIR` does, one task at a time.
    let ck = checkpoint::load(&dir.join("ck"), &device)?;
    let items = [
        ChoiceItem {
            context: "The cat sat on the".into(),
            choices: vec!["mat.".into(), "door.".into()],
            label: 0,
            group: None,
        },
        ChoiceItem {
            context: "The dog slept by the".into(),
            choices: vec!["mat.".into(), "door.".into()],
            label: 1,
            group: None,
        },
    ];
    let mut scorer = ModelScorer::new(&ck.model, ck.config.block_size);
    let scores = choice::score(&mut scorer, &ck.tokenizer, &items, &mut |_, _| {})?;
    for (item, s) in items.iter().zip(&scores) {
        println!(
            "{:?}: log-likelihoods {:?}, right: {}",
            item.context,
            s.logliks,
            s.correct()
        );
    }
    let acc = scores.iter().filter(|s| s.correct()).count() as f64 / scores.len() as f64;
    let ids = ck.tokenizer.encode(&TEXT.repeat(3));
    let block = ck.config.block_size;
    let (nll, tokens, bytes, _) = text::score_ids(
        &ck.model,
        &ck.tokenizer,
        &ids,
        block,
        block,
        None,
        &mut |_, _| {},
    )?;
    let r = text::result(
        "example text".into(),
        nll,
        tokens,
        bytes,
        "windows".into(),
        0,
    );
    println!(
        "untrained model: accuracy {acc:.2}, {:.3} bits per byte over {} tokens",
        r.bpb, r.tokens
    );
    Ok((acc, r.bpb))
}

fn scratch(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("ember-example-eval-{tag}-{}", std::process::id()))
}

fn main() -> Result<()> {
    let dir = scratch("main");
    let result = run(&dir).map(|_| ());
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[test]
fn example_runs_and_an_untrained_model_is_near_uniform() {
    let dir = scratch("test");
    let result = run(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    let (acc, bpb) = result.unwrap_or_else(|e| panic!("{e}"));
    assert!((0.0..=1.0).contains(&acc));
    // An untrained model spreads probability over the whole vocabulary: about log2(300) bits
    // per token, a few bits per byte.
    assert!(bpb > 1.0 && bpb < 20.0, "{bpb}");
}
