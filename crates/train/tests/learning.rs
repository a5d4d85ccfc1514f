//! The loop learns, and gradient accumulation equals one big batch.

use crate::common::*;
use ember_train::{Start, TrainSection};

#[test]
fn a_tiny_model_learns_a_repeated_pattern() {
    let dir = tempfile::tempdir().unwrap();
    let tok = tokenizer();
    let t = TrainSection {
        max_steps: 60,
        lr: 1e-2,
        min_lr: 1e-3,
        warmup_steps: 5,
        eval_every: 0,
        save_every: 0,
        ..train_section()
    };
    let out = train(&run(dir.path(), &tok, t, Start::Fresh), &Cycle::new(4)).unwrap();
    let (val_loss, _) = out.last_eval.unwrap();
    // Uniform over 261 ids is ln 261 = 5.56; the cycle is fully predictable after one token.
    assert!(val_loss < 0.3, "held-out loss {val_loss} after 60 steps");
    let l = losses(dir.path());
    assert_eq!(l.len(), 60);
    assert!(l[0].1 > 5.0 && l[59].1 < 0.3, "{:?} … {:?}", l[0], l[59]);
    assert!(dir.path().join("loss.svg").is_file());
    let svg = std::fs::read_to_string(dir.path().join("loss.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("validation"));
}

#[test]
fn accumulating_two_micro_batches_equals_one_batch_of_twice_the_size() {
    let tok = tokenizer();
    let one = tempfile::tempdir().unwrap();
    let two = tempfile::tempdir().unwrap();
    let base = TrainSection {
        max_steps: 3,
        warmup_steps: 0,
        eval_every: 0,
        save_every: 0,
        ..train_section()
    };
    let big = TrainSection {
        batch_size: 8,
        ..base.clone()
    };
    let acc = TrainSection {
        batch_size: 4,
        total_batch_tokens: Some(8 * 16),
        ..base
    };
    train(&run(one.path(), &tok, big, Start::Fresh), &Cycle::new(8)).unwrap();
    train(&run(two.path(), &tok, acc, Start::Fresh), &Cycle::new(4)).unwrap();
    let a = weights(&one.path().join("checkpoints/step-00000003"));
    let b = weights(&two.path().join("checkpoints/step-00000003"));
    assert_eq!(a.len(), b.len());
    let mut worst = 0f32;
    for ((na, va), (nb, vb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        for (x, y) in va.iter().zip(vb) {
            worst = worst.max((x - y).abs());
        }
    }
    assert!(worst < 2e-5, "weights differ by {worst}");
    let (la, lb) = (losses(one.path()), losses(two.path()));
    for ((_, x), (_, y)) in la.iter().zip(&lb) {
        assert!((x - y).abs() < 1e-5, "losses {la:?} vs {lb:?}");
    }
}
