//! Exact resume in process: stop mid-run, resume, and match an uninterrupted run bit for bit.
//! (The SIGKILL version runs the `ember` binary: crates/cli/tests.)

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::common::*;
use ember_train::{OptimizerKind, Precision, Start, TrainSection};

#[test]
fn stop_and_resume_equals_an_uninterrupted_run_bit_for_bit() {
    let _ = stop_and_resume(train_section(), false);
}

#[test]
fn stop_and_resume_with_muon_equals_an_uninterrupted_run_bit_for_bit() {
    // The momentum still rising when the run stops: its warmup must resume where it was. The
    // model has a value embedding and residual scalars, each with its own AdamW rate.
    let _ = stop_and_resume(
        TrainSection {
            optimizer: OptimizerKind::Muon,
            muon_momentum_warmup: 10,
            value_embed_lr: Some(0.01),
            scalar_lr: Some(0.05),
            ..train_section()
        },
        true,
    );
}

/// NorMuon's per-neuron second moments are saved and restored with the momentum: a resumed
/// run goes on bit for bit, and the setting changed the run.
#[test]
fn stop_and_resume_with_normuon_equals_an_uninterrupted_run_bit_for_bit() {
    let muon = TrainSection {
        optimizer: OptimizerKind::Muon,
        ..train_section()
    };
    let normuon = stop_and_resume(
        TrainSection {
            muon_beta2: 0.95,
            ..muon.clone()
        },
        true,
    );
    assert_ne!(normuon, stop_and_resume(muon, true));
}

#[test]
fn stop_and_resume_with_bf16_products_equals_an_uninterrupted_run_bit_for_bit() {
    if !ember_model::ops::bf16_products_available() {
        eprintln!("skipped: this CPU has no AVX-512 BF16 (bf16-mixed would run in f32)");
        return;
    }
    let bf16 = TrainSection {
        optimizer: OptimizerKind::Muon,
        precision: Precision::Bf16Mixed,
        ..train_section()
    };
    let final_losses = stop_and_resume(bf16.clone(), true);
    // The setting took effect: the same run in f32 ends elsewhere (by rounding, not by much).
    let f32_losses = stop_and_resume(
        TrainSection {
            precision: Precision::F32,
            ..bf16
        },
        true,
    );
    assert_ne!(final_losses, f32_losses);
    let gap = final_losses
        .iter()
        .zip(&f32_losses)
        .map(|(a, b)| (a.1 - b.1).abs())
        .fold(0.0, f32::max);
    assert!(gap < 0.05, "bf16 and f32 losses differ by {gap}");
}

/// `options`: the model has gutenberg-small's extras (a value embedding, residual scalars).
/// Returns the run's losses.
fn stop_and_resume(t: TrainSection, options: bool) -> Vec<(u64, f32)> {
    let tok = tokenizer();
    let straight = tempfile::tempdir().unwrap();
    // Dropout on, so the per-step reseeding of the dropout RNG is exercised too.
    fn setup(mut r: ember_train::Run<'_>, options: bool) -> ember_train::Run<'_> {
        r.model_config.dropout = 0.1;
        if options {
            r.model_config.value_embeds = 1;
            r.model_config.residual_scalars = true;
        }
        r
    }
    let prepared = |r| setup(r, options);
    let straight_run = prepared(run(straight.path(), &tok, t.clone(), Start::Fresh));
    train(&straight_run, &Cycle::new(4)).unwrap();

    let parted = tempfile::tempdir().unwrap();
    let flag = Arc::new(AtomicBool::new(false));
    let mut first = prepared(run(parted.path(), &tok, t.clone(), Start::Fresh));
    first.stop = Arc::clone(&flag);
    let task = Cycle {
        stop_at: Some((6, flag)),
        ..Cycle::new(4)
    };
    let out = train(&first, &task).unwrap();
    assert!(out.interrupted);
    assert_eq!(
        out.step, 7,
        "stops after the step during which the flag was raised"
    );
    let out = train(
        &prepared(run(parted.path(), &tok, t, Start::Resume)),
        &Cycle::new(4),
    )
    .unwrap();
    assert_eq!(out.step, 12);

    assert_eq!(losses(straight.path()), losses(parted.path()));
    let last = |d: &std::path::Path| weights(&d.join("checkpoints/step-00000012"));
    assert!(
        last(straight.path()) == last(parted.path()),
        "final weights differ"
    );
    losses(straight.path())
}

#[test]
fn resume_refuses_a_changed_model_shape_naming_both_values() {
    let (tok, dir, t) = four_steps(train_section());
    let mut r = run(
        dir.path(),
        &tok,
        TrainSection { max_steps: 8, ..t },
        Start::Resume,
    );
    r.model_config.n_embd = 64;
    let err = train(&r, &Cycle::new(4)).unwrap_err().to_string();
    assert!(err.contains("model.n_embd: checkpoint 32, now 64"), "{err}");
}

#[test]
fn resume_refuses_another_tokenizer() {
    let (_, dir, t) = four_steps(train_section());
    let other =
        ember_tokenizer::train_from_texts(&["xyz xyz"], &ember_tokenizer::TrainerConfig::new(262))
            .unwrap()
            .0;
    let mut r = run(dir.path(), &other, t, Start::Resume);
    r.model_config.vocab_size = 262;
    let err = train(&r, &Cycle::new(4)).unwrap_err().to_string();
    assert!(
        err.contains("vocab_size: checkpoint 261, now 262") || err.contains("tokenizer"),
        "{err}"
    );
}

#[test]
fn resume_refuses_another_optimizer() {
    let (tok, dir, t) = four_steps(TrainSection {
        optimizer: OptimizerKind::Muon,
        ..train_section()
    });
    let before = weights(&dir.path().join("checkpoints/step-00000004"));
    let adamw = TrainSection {
        max_steps: 8,
        optimizer: OptimizerKind::AdamW,
        ..t.clone()
    };
    let err = train(&run(dir.path(), &tok, adamw, Start::Resume), &Cycle::new(4))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ember-adamw") && err.contains("optimizer = \"muon\""),
        "{err}"
    );
    assert!(before == weights(&dir.path().join("checkpoints/step-00000004")));
    // Nor plain Muon's state into NorMuon.
    let normuon = TrainSection {
        max_steps: 8,
        muon_beta2: 0.95,
        ..t
    };
    let err = train(
        &run(dir.path(), &tok, normuon, Start::Resume),
        &Cycle::new(4),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("ember-normuon") && err.contains("(this state is train.optimizer = \"muon\")"),
        "{err}"
    );
    assert!(before == weights(&dir.path().join("checkpoints/step-00000004")));
}

#[test]
fn resume_without_a_checkpoint_is_an_error_not_a_fresh_start() {
    let tok = tokenizer();
    let dir = tempfile::tempdir().unwrap();
    let err = train(
        &run(dir.path(), &tok, train_section(), Start::Resume),
        &Cycle::new(4),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("no complete checkpoint"), "{err}");
    assert!(!dir.path().join("metrics.jsonl").exists());
}

#[test]
fn a_fresh_run_never_overwrites_an_existing_one() {
    let (tok, dir, t) = four_steps(train_section());
    let before = weights(&dir.path().join("checkpoints/step-00000004"));
    let err = train(&run(dir.path(), &tok, t, Start::Fresh), &Cycle::new(4))
        .unwrap_err()
        .to_string();
    assert!(err.contains("--resume"), "{err}");
    assert!(before == weights(&dir.path().join("checkpoints/step-00000004")));
}

/// A finished four-step run of `t` (its `max_steps` replaced) in a fresh directory, for tests
/// of what a second run over it may do.
fn four_steps(t: TrainSection) -> (ember_tokenizer::Tokenizer, tempfile::TempDir, TrainSection) {
    let tok = tokenizer();
    let dir = tempfile::tempdir().unwrap();
    let t = TrainSection { max_steps: 4, ..t };
    train(
        &run(dir.path(), &tok, t.clone(), Start::Fresh),
        &Cycle::new(4),
    )
    .unwrap();
    (tok, dir, t)
}
