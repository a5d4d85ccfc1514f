//! Eval-set files: malformed lines are counted, a missing file says where it was expected.

use ember_eval::EvalError;
use ember_eval::tasks::choice::load_hellaswag;
use ember_eval::tasks::generation::{last_number, load_gsm8k};

use crate::common::eval_sets;

#[test]
fn malformed_items_are_counted_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    eval_sets(dir.path());
    let l = load_hellaswag(&dir.path().join("hellaswag_val.jsonl")).unwrap();
    assert_eq!(l.items.len(), 3);
    assert_eq!(l.malformed.len(), 1);
    assert!(
        l.malformed[0].contains("hellaswag_val.jsonl:3:"),
        "{}",
        l.malformed[0]
    );
    assert!(
        l.malformed[0].contains("at least two"),
        "{}",
        l.malformed[0]
    );
    // A string label is read as an index.
    assert_eq!(l.items[2].1.label, 0);
}

#[test]
fn missing_file_names_the_path_and_how_to_get_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hellaswag_val.jsonl");
    let e = load_hellaswag(&p).unwrap_err();
    assert!(matches!(e, EvalError::MissingData { .. }));
    let msg = e.to_string();
    assert!(
        msg.contains(&p.display().to_string()) && msg.contains("--eval-data"),
        "{msg}"
    );
}

#[test]
fn a_file_with_no_usable_item_is_an_error_naming_the_first_problem() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hellaswag_val.jsonl");
    std::fs::write(&p, "{not json\n").unwrap();
    let msg = load_hellaswag(&p).unwrap_err().to_string();
    assert!(
        msg.contains("no usable item") && msg.contains(":1: not JSON"),
        "{msg}"
    );
}

#[test]
fn gsm8k_answers_are_the_last_number_normalised() {
    assert_eq!(
        last_number("so she makes $1,234.00 a day").as_deref(),
        Some("1234")
    );
    assert_eq!(last_number("it is 3, then 4.5.").as_deref(), Some("4.5"));
    assert_eq!(last_number("a loss of -7").as_deref(), Some("-7"));
    assert_eq!(last_number("no digits"), None);
    let dir = tempfile::tempdir().unwrap();
    eval_sets(dir.path());
    let l = load_gsm8k(&dir.path().join("gsm8k_test.jsonl")).unwrap();
    assert_eq!(l.items[0].1.answer, "5");
}
