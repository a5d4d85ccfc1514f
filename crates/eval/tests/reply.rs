//! Reply ranking and context gain: the distractor rules, seeded draws, and the scoring rules
//! on known log-likelihoods (no model).

use ember_eval::loglik::{Request, Scorer};
use ember_eval::tasks::reply::{
    DISTRACTORS, MIN_DISTRACTOR_TOKENS, context_gain, dialogue_choice, rank_items, turns,
};
use ember_formats::dialogue::{Conversation, parse_line};

use crate::common::tokenizer;

fn conv(line: usize, pairs: &[(&str, &str)]) -> Conversation {
    let msgs: Vec<String> = pairs
        .iter()
        .flat_map(|(u, a)| {
            [
                format!(r#"{{"role":"user","content":{u:?}}}"#),
                format!(r#"{{"role":"assistant","content":{a:?}}}"#),
            ]
        })
        .collect();
    Conversation {
        messages: parse_line(&format!(r#"{{"messages":[{}]}}"#, msgs.join(","))).unwrap(),
        line,
    }
}

fn convs() -> Vec<Conversation> {
    vec![
        conv(
            1,
            &[
                ("Hi", "Hello!"),
                (
                    "What do you eat?",
                    "I eat bread and cheese every single day.",
                ),
            ],
        ),
        conv(
            2,
            &[
                ("Hey there", "Hello!"),
                (
                    "Where do you live?",
                    "I live in a small house by the old river.",
                ),
            ],
        ),
        conv(
            3,
            &[(
                "Do you sing?",
                "Yes, I sing old songs in the morning with my friends.",
            )],
        ),
        conv(4, &[("Any pets?", "Ok")]),
        conv(
            5,
            &[(
                "Weather?",
                "It rained all night and the streets are still wet today.",
            )],
        ),
        conv(
            6,
            &[(
                "Books?",
                "I am reading a long novel about ships and the sea.",
            )],
        ),
    ]
}

#[test]
fn distractors_come_from_other_conversations_and_skip_short_or_shared_replies() {
    let tok = tokenizer();
    let t = turns(&tok, &convs()).unwrap();
    assert_eq!(t.len(), 8);
    let (items, left_out) = rank_items(&t, 7);
    assert_eq!(items.len() + left_out, t.len());
    for it in &items {
        assert_eq!(it.candidates.len(), DISTRACTORS + 1);
        assert_eq!(it.candidates[it.label], it.turn);
        for (k, &c) in it.candidates.iter().enumerate() {
            if k == it.label {
                continue;
            }
            assert_ne!(t[c].conversation, t[it.turn].conversation, "{it:?}");
            assert!(
                t[c].reply.len() > MIN_DISTRACTOR_TOKENS,
                "short reply drawn: {:?}",
                t[c].text
            );
            assert_ne!(
                t[c].text, "Hello!",
                "a reply shared by two conversations was drawn"
            );
        }
        let mut seen = it.candidates.clone();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), DISTRACTORS + 1, "no candidate twice");
    }
    // Seeded: the same seed gives the same items, another seed other draws.
    assert_eq!(rank_items(&t, 7).0, items);
    assert_ne!(rank_items(&t, 8).0, items);
}

/// Log-likelihoods that favour, for every request, the reply of the request's own context.
struct Listens<'a>(&'a [ember_eval::tasks::reply::Turn]);

impl Scorer for Listens<'_> {
    fn loglik(&mut self, requests: &[Request]) -> ember_eval::Result<Vec<f64>> {
        Ok(requests
            .iter()
            .map(|r| {
                let own = self
                    .0
                    .iter()
                    .any(|t| t.context == r.context && t.reply == r.continuation);
                let n = r.continuation.len() as f64;
                if own { -n } else { -3.0 * n }
            })
            .collect())
    }
}

/// The same per-token log-likelihood whatever the context.
struct Deaf;

impl Scorer for Deaf {
    fn loglik(&mut self, requests: &[Request]) -> ember_eval::Result<Vec<f64>> {
        Ok(requests
            .iter()
            .map(|r| -2.0 * r.continuation.len() as f64)
            .collect())
    }
}

#[test]
fn a_model_that_listens_ranks_every_reply_first_and_gains_from_context() {
    let tok = tokenizer();
    let t = turns(&tok, &convs()).unwrap();
    let (items, left_out) = rank_items(&t, 1);
    let (r, _) = dialogue_choice(
        &mut Listens(&t),
        &t,
        &items,
        "x".into(),
        left_out,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(r.acc.correct, items.len() as u64);
    assert!((r.chance - 0.25).abs() < 1e-12);
    let g = context_gain(&mut Listens(&t), &t, 1, "x".into(), &mut |_, _| {}).unwrap();
    assert!(
        (g.gain - 2.0).abs() < 1e-9 && (g.own_nll - 1.0).abs() < 1e-9,
        "{g:?}"
    );
    assert_eq!(g.replies, t.len() as u64);
    // A model that ignores the context gains nothing and ties everywhere (ties count wrong).
    let (r, _) =
        dialogue_choice(&mut Deaf, &t, &items, "x".into(), left_out, &mut |_, _| {}).unwrap();
    assert_eq!((r.acc.correct, r.ties), (0, items.len() as u64));
    let g = context_gain(&mut Deaf, &t, 1, "x".into(), &mut |_, _| {}).unwrap();
    assert!(g.gain.abs() < 1e-12 && g.lo <= 0.0 && g.hi >= 0.0, "{g:?}");
}
