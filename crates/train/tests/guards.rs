//! NaN/Inf guard and checkpoint retention.

use crate::common::*;
use ember_train::{FaultPlan, Start, TrainSection};

#[test]
fn a_nan_loss_is_skipped_logged_and_never_saved() {
    let tok = tokenizer();
    let dir = tempfile::tempdir().unwrap();
    let mut r = run(
        dir.path(),
        &tok,
        TrainSection {
            max_steps: 8,
            ..train_section()
        },
        Start::Fresh,
    );
    r.faults = FaultPlan {
        nan_at: vec![2, 5],
        ..FaultPlan::default()
    };
    let out = train(&r, &Cycle::new(4)).unwrap();
    assert_eq!(out.skipped_steps, 2);
    let text = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
    let skipped: Vec<&str> = text.lines().filter(|l| l.contains("\"skipped\"")).collect();
    assert_eq!(skipped.len(), 2, "{text}");
    assert!(
        skipped[0].contains("\"step\":3") && skipped[0].contains("NaN"),
        "{}",
        skipped[0]
    );
    for (name, w) in weights(&dir.path().join("checkpoints/step-00000008")) {
        assert!(w.iter().all(|x| x.is_finite()), "{name} not finite");
    }
    assert!(losses(dir.path()).iter().all(|(_, l)| l.is_finite()));
}

#[test]
fn too_many_non_finite_steps_stop_the_run_keeping_the_last_good_checkpoint() {
    let tok = tokenizer();
    let dir = tempfile::tempdir().unwrap();
    let t = TrainSection {
        max_steps: 12,
        max_skipped_steps: 2,
        ..train_section()
    };
    let mut r = run(dir.path(), &tok, t, Start::Fresh);
    r.faults = FaultPlan {
        nan_at: vec![5, 6, 7],
        ..FaultPlan::default()
    };
    let err = train(&r, &Cycle::new(4)).unwrap_err().to_string();
    assert!(
        err.contains("step 8") && err.contains("max_skipped_steps = 2"),
        "{err}"
    );
    let ck = ember_model::checkpoint::verify(&dir.path().join("checkpoints/step-00000004"));
    assert!(ck.is_ok(), "the step-4 checkpoint is intact");
    assert!(!dir.path().join("checkpoints/step-00000008").exists());
}

#[test]
fn keep_last_deletes_older_checkpoints_only() {
    let tok = tokenizer();
    let dir = tempfile::tempdir().unwrap();
    let t = TrainSection {
        max_steps: 10,
        save_every: 2,
        keep_last: 2,
        ..train_section()
    };
    train(&run(dir.path(), &tok, t, Start::Fresh), &Cycle::new(4)).unwrap();
    let left: Vec<u64> = ember_formats::run::list(dir.path())
        .into_iter()
        .map(|(s, _)| s)
        .collect();
    assert_eq!(left, vec![8, 10]);
}

/// A task whose step-3 batch has every target masked out (an SFT batch of nothing to learn).
struct Masked(Cycle);

impl ember_train::Task for Masked {
    fn train_batch(&self, step: u64, micro: usize) -> ember_train::Result<ember_train::HostBatch> {
        let mut b = self.0.train_batch(step, micro)?;
        if step == 3 {
            b.mask.iter_mut().for_each(|m| *m = 0.0);
        }
        Ok(b)
    }
    fn eval_batches(&self) -> usize {
        self.0.eval_batches()
    }
    fn eval_batch(&self, i: usize) -> ember_train::Result<ember_train::HostBatch> {
        self.0.eval_batch(i)
    }
}

#[test]
fn an_all_masked_step_is_a_logged_skip_never_silent_training_on_nothing() {
    let tok = tokenizer();
    let dir = tempfile::tempdir().unwrap();
    let out = train(
        &run(
            dir.path(),
            &tok,
            TrainSection {
                max_steps: 6,
                ..train_section()
            },
            Start::Fresh,
        ),
        &Masked(Cycle::new(4)),
    )
    .unwrap();
    assert_eq!(out.skipped_steps, 1);
    let text = std::fs::read_to_string(dir.path().join("metrics.jsonl")).unwrap();
    let row = text.lines().find(|l| l.contains("\"skipped\"")).unwrap();
    assert!(
        row.contains("\"step\":4") && row.contains("masked out"),
        "{row}"
    );
}
