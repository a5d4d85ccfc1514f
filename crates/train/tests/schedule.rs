//! The LR schedule matches its formula at warmup, peak and end.

use ember_train::{Decay, TrainSection, lr_at};

fn section(decay: Decay) -> TrainSection {
    TrainSection {
        lr: 1e-3,
        min_lr: 1e-4,
        warmup_steps: 100,
        max_steps: 2000,
        decay,
        ..Default::default()
    }
}

#[test]
fn warmup_is_linear_from_lr_over_warmup_plus_one() {
    let t = section(Decay::Cosine);
    assert!((lr_at(&t, 0) - 1e-3 / 101.0).abs() < 1e-15);
    assert!((lr_at(&t, 49) - 1e-3 * 50.0 / 101.0).abs() < 1e-15);
    assert!((lr_at(&t, 99) - 1e-3 * 100.0 / 101.0).abs() < 1e-15);
}

#[test]
fn cosine_peaks_after_warmup_halves_midway_and_ends_at_the_floor() {
    let t = section(Decay::Cosine);
    assert!((lr_at(&t, 100) - 1e-3).abs() < 1e-15);
    assert!((lr_at(&t, 1050) - 5.5e-4).abs() < 1e-12);
    assert!((lr_at(&t, 2000) - 1e-4).abs() < 1e-15);
    assert!(
        (lr_at(&t, 5000) - 1e-4).abs() < 1e-15,
        "no rise after the end"
    );
    let mut prev = f64::INFINITY;
    for s in 100..=2000 {
        let lr = lr_at(&t, s);
        assert!(lr <= prev + 1e-18, "decay is monotone");
        prev = lr;
    }
}

#[test]
fn linear_and_constant_decay() {
    let t = section(Decay::Linear);
    assert!((lr_at(&t, 1050) - 5.5e-4).abs() < 1e-12);
    assert!((lr_at(&t, 575) - (1e-4 + 0.75 * 9e-4)).abs() < 1e-12);
    assert!((lr_at(&t, 2000) - 1e-4).abs() < 1e-15);
    let c = section(Decay::Constant);
    assert_eq!(lr_at(&c, 1500), 1e-3);
}

#[test]
fn wsd_holds_the_peak_then_cools_down_over_its_share_in_either_shape() {
    use ember_train::Cooldown;
    let mut t = section(Decay::Wsd);
    t.cooldown_fraction = 0.2; // steps after warmup: 1900; cool-down over the last 380
    assert!(
        (lr_at(&t, 50) - 1e-3 * 51.0 / 101.0).abs() < 1e-15,
        "warmup as before"
    );
    for s in [100, 1000, 1620] {
        assert!((lr_at(&t, s) - 1e-3).abs() < 1e-15, "stable at step {s}");
    }
    assert!(
        (lr_at(&t, 1810) - 5.5e-4).abs() < 1e-12,
        "linear: halfway down at the middle"
    );
    assert!((lr_at(&t, 2000) - 1e-4).abs() < 1e-15 && (lr_at(&t, 9000) - 1e-4).abs() < 1e-15);
    t.cooldown = Cooldown::Sqrt;
    let mid = 1e-4 + (1.0 - 0.5f64.sqrt()) * 9e-4;
    assert!(
        (lr_at(&t, 1810) - mid).abs() < 1e-12,
        "1 - sqrt: below the line at the middle"
    );
    assert!(lr_at(&t, 1810) < 5.5e-4);
    assert!((lr_at(&t, 2000) - 1e-4).abs() < 1e-15);
    let mut prev = f64::INFINITY;
    for s in 100..=2000 {
        let lr = lr_at(&t, s);
        assert!(lr <= prev + 1e-18, "never rises after warmup");
        prev = lr;
    }
}
