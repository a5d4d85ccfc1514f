//! Truncation policy, padding and masks of SFT rows.

use ember_formats::dialogue::Conversation;
use ember_formats::dialogue::{pad_batch, render_all};
use ember_sft::batches::SftTask;
use ember_tokenizer::{Message, Role, TrainerConfig, train_from_texts};
use ember_train::Task;

fn tok() -> ember_tokenizer::Tokenizer {
    train_from_texts(&["x"], &TrainerConfig::new(261))
        .unwrap()
        .0
}

fn conv(turns: &[(&str, &str)]) -> Conversation {
    let mut messages = vec![Message::new(Role::System, "S")];
    for (u, a) in turns {
        messages.push(Message::new(Role::User, *u));
        messages.push(Message::new(Role::Assistant, *a));
    }
    Conversation { messages, line: 1 }
}

#[test]
fn long_conversations_lose_whole_oldest_exchanges_keeping_the_system_message() {
    let tok = tok();
    // bos + [sys S end] = 4; each exchange "uu"/"aa": [user u u end][asst a a end] = 8.
    let c = conv(&[("11", "aa"), ("22", "bb"), ("33", "cc")]);
    let (ex, st) = render_all(&tok, std::slice::from_ref(&c), 27).unwrap();
    assert_eq!(
        (st.whole, st.truncated, st.skipped_too_long),
        (1, 0, 0),
        "4 + 24 = 28 ids fit a context of 27"
    );
    let (ex2, st) = render_all(&tok, std::slice::from_ref(&c), 26).unwrap();
    assert_eq!((st.whole, st.truncated), (0, 1));
    let text = tok
        .decode(
            &ex2[0]
                .ids
                .iter()
                .copied()
                .filter(|&i| i < 256)
                .collect::<Vec<_>>(),
        )
        .unwrap();
    assert_eq!(
        text, "S22bb33cc",
        "the oldest exchange went, whole; the system message stayed"
    );
    assert_eq!(ex[0].ids.len(), ex[0].mask.len());
    let (ex3, st) = render_all(&tok, &[c], 10).unwrap();
    assert!(ex3.is_empty());
    assert_eq!(st.skipped_too_long, 1);
}

#[test]
fn padding_is_masked_and_shapes_round_up_to_16() {
    let tok = tok();
    let (ex, _) = render_all(
        &tok,
        &[
            conv(&[("hi", "yo")]),
            conv(&[("a", "b"), ("c", "dddddddddddddddddd")]),
        ],
        64,
    )
    .unwrap();
    let refs: Vec<_> = ex.iter().collect();
    let (hb, padding) = pad_batch(&refs, 256);
    assert_eq!(hb.batch, 2);
    assert_eq!(hb.seq % 16, 0);
    let real: usize = ex.iter().map(|e| e.ids.len() - 1).sum();
    assert_eq!(padding, 2 * hb.seq - real);
    for (r, e) in ex.iter().enumerate().take(2) {
        let n = e.ids.len() - 1;
        let row = &hb.mask[r * hb.seq..(r + 1) * hb.seq];
        assert!(
            row[n..].iter().all(|&m| m == 0.0),
            "padding is never trained"
        );
        let trained: Vec<u32> = (0..n)
            .filter(|&i| row[i] == 1.0)
            .map(|i| hb.targets[r * hb.seq + i])
            .collect();
        assert_eq!(
            *trained.last().unwrap(),
            260,
            "the reply's <|end|> is a target"
        );
    }
    assert_eq!(hb.target_bytes, 2 + 1 + 18);
}

#[test]
fn batches_are_deterministic_and_every_example_is_seen_each_epoch() {
    let tok = tok();
    let convs: Vec<Conversation> = (0..10)
        .map(|i| conv(&[(&format!("q{i}"), &format!("a{i}"))]))
        .collect();
    let (ex, _) = render_all(&tok, &convs, 64).unwrap();
    let task = SftTask::new(ex.clone(), ex[..2].to_vec(), 2, 1, 9, 256);
    assert_eq!(
        task.train_batch(3, 0).unwrap(),
        task.train_batch(3, 0).unwrap()
    );
    let mut seen: Vec<Vec<u32>> = (0..5)
        .flat_map(|s| {
            let hb = task.train_batch(s, 0).unwrap();
            (0..2)
                .map(move |r| hb.inputs[r * hb.seq..(r + 1) * hb.seq].to_vec())
                .collect::<Vec<_>>()
        })
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 10, "one epoch = each conversation once");
    assert_ne!(
        task.train_batch(0, 0).unwrap(),
        task.train_batch(5, 0).unwrap(),
        "epochs are reshuffled"
    );
    assert!(task.padding_fraction(5) > 0.0);
}
