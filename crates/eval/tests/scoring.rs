//! Accuracy rules on items with known log-likelihoods (no model).

use ember_eval::data::Loaded;
use ember_eval::loglik::{Request, Scorer};
use ember_eval::stats::{Accuracy, wilson};
use ember_eval::tasks::choice::{self, ChoiceItem, encode_pair};

use crate::common::tokenizer;

/// Returns fixed numbers in request order and records the requests.
struct Fixed(Vec<f64>, Vec<Request>);

impl Scorer for Fixed {
    fn loglik(&mut self, requests: &[Request]) -> ember_eval::Result<Vec<f64>> {
        let out = self.0.drain(..requests.len()).collect();
        self.1.extend_from_slice(requests);
        Ok(out)
    }
}

fn item(context: &str, choices: &[&str], label: usize, group: Option<&str>) -> ChoiceItem {
    ChoiceItem {
        context: context.into(),
        choices: choices.iter().map(|c| c.to_string()).collect(),
        label,
        group: group.map(str::to_string),
    }
}

fn loaded(items: &[ChoiceItem]) -> Loaded<ChoiceItem> {
    Loaded {
        path: "fixture.jsonl".into(),
        items: items.iter().cloned().enumerate().collect(),
        malformed: vec!["fixture.jsonl:9: not JSON".into()],
    }
}

#[test]
fn acc_acc_norm_and_ties_follow_the_harness_rules() {
    let tok = tokenizer();
    let items = [
        // gold best by total and per char: both right
        item("Q1", &["aa", "bbbb"], 0, None),
        // gold best by total (-4 vs -6) but not per char (-4/2 = -2 vs -6/6 = -1)
        item("Q2", &["xx", "yyyyyy"], 0, None),
        // gold worse by total (-9 vs -5) but best per char (-9/9 = -1 vs -5/1 = -5)
        item("Q3", &["z", "wwwwwwwww"], 1, None),
        // exact tie with gold: wrong for acc (and for acc_norm, same lengths)
        item("Q4", &["cc", "dd"], 1, None),
    ];
    let lls = vec![-1.0, -3.0, -4.0, -6.0, -5.0, -9.0, -2.0, -2.0];
    let mut scorer = Fixed(lls, Vec::new());
    let scores = choice::score(&mut scorer, &tok, &items, &mut |_, _| {}).unwrap();
    assert_eq!(scorer.1.len(), 8, "one request per choice");
    let correct: Vec<bool> = scores.iter().map(|s| s.correct()).collect();
    let norm: Vec<bool> = scores.iter().map(|s| s.correct_norm()).collect();
    assert_eq!(correct, [true, true, false, false]);
    assert_eq!(norm, [true, false, true, false]);
    let r = choice::summarize(&items, &scores, &loaded(&items));
    assert_eq!((r.acc.correct, r.acc.n), (2, 4));
    assert_eq!(r.acc_norm.map(|a| a.correct), Some(2));
    assert_eq!(r.ties, 1);
    assert_eq!(r.malformed, 1);
    assert!((r.chance - 0.5).abs() < 1e-12);
}

#[test]
fn grouped_accuracy_is_the_mean_over_groups_and_has_no_acc_norm() {
    let tok = tokenizer();
    let items = [
        item("", &["good a", "bad a"], 0, Some("p1")),
        item("", &["good b", "bad b"], 0, Some("p1")),
        item("", &["good c", "bad c"], 0, Some("p1")),
        item("", &["good d", "bad d"], 0, Some("p2")),
    ];
    // p1: 2 of 3 right; p2: 1 of 1 right -> mean of groups 5/6, not 3/4 pooled.
    let mut scorer = Fixed(
        vec![-1.0, -2.0, -1.0, -2.0, -3.0, -2.0, -1.0, -5.0],
        Vec::new(),
    );
    let scores = choice::score(&mut scorer, &tok, &items, &mut |_, _| {}).unwrap();
    let r = choice::summarize(&items, &scores, &loaded(&items));
    assert!((r.acc.value - 5.0 / 6.0).abs() < 1e-12, "{}", r.acc.value);
    assert!(r.acc_norm.is_none());
    assert_eq!(r.groups.len(), 2);
    // No context: the sentence is scored after <|endoftext|>, with a leading space.
    let eot = tok.token_to_id("<|endoftext|>").unwrap();
    assert_eq!(scorer.1[0].context, vec![eot]);
    assert_eq!(scorer.1[0].continuation, tok.encode(" good a"));
}

#[test]
fn context_and_continuation_split_like_the_harness() {
    let tok = tokenizer();
    let (ctx, cont) = encode_pair(&tok, "The cat sat on the ", "mat.");
    // The trailing space moves to the continuation; the pair re-joins to the whole text.
    assert_eq!(ctx, tok.encode("The cat sat on the"));
    let mut all = ctx.clone();
    all.extend(&cont);
    assert_eq!(tok.decode(&all).unwrap(), "The cat sat on the mat.");
    assert_eq!(tok.decode(&cont).unwrap(), " mat.");
}

#[test]
fn wilson_intervals_match_published_values() {
    // Reference values from the closed form (e.g. Wikipedia's worked example, z = 1.96).
    let (lo, hi) = wilson(60, 100);
    assert!(
        (lo - 0.5020).abs() < 1e-4 && (hi - 0.6906).abs() < 1e-4,
        "{lo} {hi}"
    );
    let (lo, hi) = wilson(0, 10);
    assert_eq!(lo, 0.0);
    assert!((hi - 0.2775).abs() < 1e-4, "{hi}");
    let a = Accuracy::of(10, 10);
    assert_eq!(a.hi, 1.0);
    assert!(a.lo < 1.0, "an interval at 10/10 is not zero-width");
    let m = Accuracy::mean_of_groups(&[(50, 100), (100, 100)]);
    assert!((m.value - 0.75).abs() < 1e-12 && m.lo < 0.75 && m.hi > 0.75);
}
