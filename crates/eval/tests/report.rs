//! The report: self-contained HTML (inline SVG, nothing fetched) and Markdown.

use burn::prelude::*;
use ember_eval::report::{ReportData, html, markdown};
use ember_eval::results::Results;
use ember_eval::{EvalOptions, evaluate};
use ember_formats::metrics::Row;

use crate::common::{checkpoint, eval_sets};

#[test]
fn report_is_self_contained_and_carries_curves_tables_and_samples() {
    let dir = tempfile::tempdir().unwrap();
    let ck = checkpoint(dir.path());
    eval_sets(dir.path());
    let opts = EvalOptions {
        tasks: vec!["blimp".into(), "samples".into()],
        eval_data: dir.path().to_path_buf(),
        samples: 1,
        max_new_tokens: 4,
        ..EvalOptions::default()
    };
    let mut results = Results::new("cpu");
    let r = evaluate(&ck, &Device::flex(), &opts, &mut |_, _, _| {}).unwrap();
    results.checkpoints.push(r);
    let path = dir.path().join("results.json");
    results.save(&path).unwrap();
    // serde_json reads floats back to within an ulp (exact round trips need a feature that
    // would rebuild Burn's dependencies), so compare structure and values, not bits.
    let back = Results::load(&path).unwrap();
    assert_eq!(
        back.checkpoints[0].tasks.keys().collect::<Vec<_>>(),
        ["blimp", "samples"]
    );
    let acc = |r: &Results| match &r.checkpoints[0].tasks["blimp"] {
        ember_eval::TaskResult::Choice(c) => c.acc,
        other => panic!("{other:?}"),
    };
    assert!((acc(&back).hi - acc(&results).hi).abs() < 1e-12);
    assert_eq!(acc(&back).n, acc(&results).n);
    let rows: Vec<Row> = (1..=5)
        .map(|s| Row::Train {
            step: s,
            tokens: 64 * s,
            loss: 5.0 - s as f32 * 0.1,
            lr: 1e-3,
            grad_norm: 1.0,
            tokens_per_s: 100.0,
            mfu: Some(0.1),
            elapsed_s: s as f64,
            rank: None,
        })
        .chain([Row::Eval {
            step: 5,
            tokens: 320,
            val_loss: 4.6,
            val_bpb: 2.0,
            val_tokens: 10,
            elapsed_s: 5.0,
        }])
        .collect();
    let d = ReportData {
        title: "run <x>".into(),
        facts: vec![("parameters".into(), "0.05M".into())],
        rows,
        results: Some(results),
        replies: vec![("Hi".into(), "Hello <there>".into())],
        config: Some("[train]\nlr = 0.001\n".into()),
        ..Default::default()
    };
    let h = html(&d);
    assert!(h.starts_with("<!DOCTYPE html>") && h.trim_end().ends_with("</html>"));
    assert!(
        h.matches("<svg").count() >= 3,
        "loss, bpb and throughput charts"
    );
    assert!(h.contains("blimp") && h.contains("chance") && h.contains("50.0"));
    assert!(
        h.contains("run &lt;x&gt;") && h.contains("Hello &lt;there&gt;"),
        "text is escaped"
    );
    for external in ["src=\"http", "href=\"http", "<script", "<link"] {
        assert!(
            !h.contains(external),
            "nothing is fetched: found {external}"
        );
    }
    let m = markdown(&d);
    assert!(m.contains("| checkpoint | step | task |") && m.contains("lr = 0.001"));
}

#[test]
fn a_results_file_of_another_format_is_refused_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("results.json");
    std::fs::write(&p, r#"{"format":"something-else","version":1}"#).unwrap();
    let msg = Results::load(&p).unwrap_err().to_string();
    assert!(
        msg.contains("something-else") && msg.contains("ember eval"),
        "{msg}"
    );
}
