//! Config files: unknown keys and bad values are errors that say where; --set overrides.

use ember_train::TrainSection;
use ember_train::config::from_str_with_sets;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    train: TrainSection,
}

#[test]
fn unknown_key_is_rejected_with_its_line() {
    let text = "[train]\nlr = 1e-3\nlearning_rate = 2\n";
    let err = from_str_with_sets::<File>(text, "cfg.toml", &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cfg.toml") && err.contains("learning_rate") && err.contains("line 3"),
        "{err}"
    );
}

#[test]
fn wrong_type_names_the_key() {
    let err = from_str_with_sets::<File>("[train]\nbatch_size = \"big\"\n", "c.toml", &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("batch_size") && err.contains("line 2"),
        "{err}"
    );
}

#[test]
fn precision_takes_f32_or_bf16_mixed_and_names_them_when_wrong() {
    let f: File =
        from_str_with_sets("[train]\nprecision = \"bf16-mixed\"\n", "c.toml", &[]).unwrap();
    assert_eq!(f.train.precision, ember_train::Precision::Bf16Mixed);
    let f: File = from_str_with_sets("[train]\n", "c.toml", &[]).unwrap();
    assert_eq!(
        f.train.precision,
        ember_train::Precision::F32,
        "f32 unless asked"
    );
    let err = from_str_with_sets::<File>("[train]\nprecision = \"bf16\"\n", "c.toml", &[])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 2") && err.contains("bf16") && err.contains("bf16-mixed"),
        "{err}"
    );
}

#[test]
fn set_overrides_and_parses_values() {
    let sets = vec![
        "train.lr=3e-4".to_string(),
        "train.decay=linear".into(),
        "train.max_steps=7".into(),
    ];
    let f: File = from_str_with_sets("[train]\nlr = 1e-3\n", "c.toml", &sets).unwrap();
    assert_eq!(f.train.lr, 3e-4);
    assert_eq!(f.train.decay, ember_train::Decay::Linear);
    assert_eq!(f.train.max_steps, 7);
    assert_eq!(f.train.batch_size, TrainSection::default().batch_size);
}

#[test]
fn bad_set_is_reported_with_the_override() {
    let err = from_str_with_sets::<File>("[train]\n", "c.toml", &["train.lrr=1".into()])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("--set train.lrr=1") && err.contains("lrr"),
        "{err}"
    );
    let err = from_str_with_sets::<File>("[train]\n", "c.toml", &["lr".into()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("KEY=VALUE"), "{err}");
}

#[test]
fn total_batch_tokens_must_be_a_multiple_of_the_micro_batch() {
    let t = TrainSection {
        batch_size: 4,
        total_batch_tokens: Some(4 * 16 * 3),
        ..Default::default()
    };
    assert_eq!(t.validate(16).unwrap(), 3);
    let t = TrainSection {
        batch_size: 4,
        total_batch_tokens: Some(100),
        ..Default::default()
    };
    let err = t.validate(16).unwrap_err().to_string();
    assert!(
        err.contains("total_batch_tokens = 100") && err.contains("64"),
        "{err}"
    );
}
