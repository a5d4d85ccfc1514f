//! Truncation policy, padding and masks of SFT rows.

use ember_formats::dialogue::Conversation;
use ember_formats::dialogue::{pad_batch, render_all, render_windows};
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

fn text_of(tok: &ember_tokenizer::Tokenizer, ids: &[u32], mask: Option<&[u8]>) -> String {
    let kept: Vec<u32> = ids
        .iter()
        .enumerate()
        .filter(|&(i, &id)| id < 256 && mask.is_none_or(|m| m[i] == 1))
        .map(|(_, &id)| id)
        .collect();
    tok.decode(&kept).unwrap()
}

/// A conversation longer than the context used to lose its oldest exchanges in training (1,949
/// of Topical-Chat's 2,049 training conversations at 256 tokens): split, every reply is trained.
#[test]
fn long_conversations_split_into_windows_train_every_reply_once() {
    let tok = tok();
    let c = conv(&[("11", "aa"), ("22", "bb"), ("33", "cc")]);
    // 4 + 8 + 8 = 20 ids fit 26 positions (27 ids); a third exchange does not.
    let (ex, st) = render_windows(&tok, std::slice::from_ref(&c), 26).unwrap();
    assert_eq!(
        (
            st.whole,
            st.split,
            st.windows,
            st.truncated,
            st.skipped_too_long
        ),
        (0, 1, 2, 0, 0)
    );
    let texts: Vec<String> = ex.iter().map(|e| text_of(&tok, &e.ids, None)).collect();
    assert_eq!(
        texts,
        ["S11aa", "S22bb33cc"],
        "windows of whole exchanges in order, each with the system message"
    );
    let trained: String = ex
        .iter()
        .map(|e| text_of(&tok, &e.ids, Some(&e.mask)))
        .collect();
    assert_eq!(trained, "aabbcc", "every reply is trained, once");
    assert!(ex.iter().all(|e| e.ids.len() <= 27));
    // What fits whole is one row, exactly as before.
    let (one, st) = render_windows(&tok, std::slice::from_ref(&c), 27).unwrap();
    let (same, _) = render_all(&tok, std::slice::from_ref(&c), 27).unwrap();
    assert_eq!((st.whole, st.split), (1, 0));
    assert_eq!(one, same);
    // An exchange too long to fit alone is left out; the rest is kept.
    let c = conv(&[("11", "aa"), ("2222222222222222", "bb"), ("33", "cc")]);
    let (ex, st) = render_windows(&tok, &[c], 15).unwrap();
    assert_eq!(
        (st.truncated, st.split, st.windows, st.skipped_too_long),
        (1, 1, 2, 0)
    );
    let texts: Vec<String> = ex.iter().map(|e| text_of(&tok, &e.ids, None)).collect();
    assert_eq!(texts, ["S11aa", "S33cc"]);
    // Nothing fits: skipped and counted.
    let (ex, st) = render_windows(&tok, &[conv(&[("1111111111", "aaaaaaaaa")])], 10).unwrap();
    assert!(ex.is_empty());
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

#[test]
fn first_fit_fills_rows_in_order_and_stops_at_the_first_misfit() {
    use ember_formats::dialogue::first_fit;
    // Rows of 10: 6 → row 0, 5 → row 1, 4 → row 0 (6 + 4), 3 → row 1, 9 fits nowhere: stop.
    assert_eq!(first_fit([6, 5, 4, 3, 9, 1], 2, 10), vec![0, 1, 0, 1]);
    // An example longer than a row still makes progress, alone.
    assert_eq!(first_fit([12, 1], 2, 10), vec![0, 1]);
    assert!(first_fit(Vec::<usize>::new(), 2, 10).is_empty());
}

#[test]
fn packed_rows_hold_whole_conversations_with_their_starts_and_masked_padding() {
    use ember_formats::dialogue::pack_batch;
    let tok = tok();
    let convs: Vec<Conversation> = ["a", "bbbb", "cc"]
        .iter()
        .map(|r| conv(&[("q", r)]))
        .collect();
    let (ex, _) = render_all(&tok, &convs, 64).unwrap();
    let refs: Vec<_> = ex.iter().collect();
    let n: Vec<usize> = ex.iter().map(|e| e.ids.len() - 1).collect();
    // Conversations 0 and 2 share row 0, conversation 1 has row 1.
    let (hb, padding) = pack_batch(&refs, &[0, 1, 0], 2, 64, 256);
    assert_eq!((hb.batch, hb.doc_starts.len()), (2, 2 * hb.seq));
    assert_eq!(hb.seq, (n[0] + n[2]).max(n[1]).div_ceil(16) * 16);
    assert_eq!(padding, 2 * hb.seq - n.iter().sum::<usize>());
    let row0 = &hb.doc_starts[..hb.seq];
    assert!(row0[..n[0]].iter().all(|&s| s == 0));
    assert!(row0[n[0]..n[0] + n[2]].iter().all(|&s| s as usize == n[0]));
    assert_eq!(&hb.inputs[n[0]..n[0] + n[2]], &ex[2].ids[..n[2]]);
    // Padding: no weight, each position a document of its own.
    for (i, &start) in row0.iter().enumerate().skip(n[0] + n[2]) {
        assert_eq!((hb.mask[i], start as usize), (0.0, i));
    }
    let trained: f32 = hb.mask.iter().sum();
    let replies: usize = ex
        .iter()
        .map(|e| e.mask[1..].iter().filter(|&&m| m == 1).count())
        .sum();
    assert_eq!(trained as usize, replies);
    assert_eq!(
        hb.target_bytes,
        ex.iter().map(|e| e.target_bytes).sum::<u64>()
    );
}

#[test]
fn packed_batches_cover_the_stream_in_order_and_a_resumed_task_draws_the_same() {
    let tok = tok();
    let convs: Vec<Conversation> = (0..30)
        .map(|i| conv(&[(&format!("q{i}"), &"a".repeat(1 + i % 7))]))
        .collect();
    let (ex, _) = render_all(&tok, &convs, 32).unwrap();
    let make = || SftTask::new(ex.clone(), ex[..2].to_vec(), 2, 1, 9, 256).packed(32);
    let task = make();
    let batches: Vec<_> = (0..8).map(|s| task.train_batch(s, 0).unwrap()).collect();
    // A task asked for step 7 first (a resumed run) gives the same batch.
    assert_eq!(make().train_batch(7, 0).unwrap(), batches[7]);
    // Rows hold several conversations and padding falls below a padded task's.
    let per_row = task.conversations_in(8) as f64 / 16.0;
    assert!(per_row > 1.5, "{per_row} conversations per row");
    let padded = SftTask::new(ex.clone(), ex[..2].to_vec(), 2, 1, 9, 256);
    let (p, q) = (task.padding_fraction(8), padded.padding_fraction(8));
    assert!(p < q, "padding {p} packed, {q} padded");
    // The packed batches hold the stream's first conversations, each once: their trained
    // targets are those of the padded task's first rows (the same shuffled stream).
    let n = task.conversations_in(8) as usize;
    let weight = |hb: &ember_train::HostBatch, r: usize| -> f32 {
        hb.mask[r * hb.seq..(r + 1) * hb.seq].iter().sum()
    };
    let stream: f32 = (0..n)
        .map(|i| weight(&padded.train_batch(i as u64 / 2, 0).unwrap(), i % 2))
        .sum();
    let packed: f32 = batches
        .iter()
        .flat_map(|hb| (0..2).map(|r| weight(hb, r)))
        .sum();
    assert_eq!(packed, stream);
    // Every position's document start lies at or before it, and targets follow inputs
    // within each conversation (the stream is cut only between conversations).
    for hb in &batches {
        for r in 0..hb.batch {
            let s = &hb.doc_starts[r * hb.seq..(r + 1) * hb.seq];
            assert!(s.iter().enumerate().all(|(i, &x)| x as usize <= i));
            for i in 1..hb.seq {
                if s[i] == s[i - 1] && hb.mask[r * hb.seq + i - 1] > 0.0 {
                    assert_eq!(hb.inputs[r * hb.seq + i], hb.targets[r * hb.seq + i - 1]);
                }
            }
        }
    }
}

/// `[contrast]` rows: groups of the true reply then its negatives, all after the true reply's
/// context, masked on the replies only; negatives are other, long enough, distinct replies;
/// the same micro-batch draws the same rows.
#[test]
fn ranking_rows_put_each_true_reply_first_against_other_replies_in_its_context() {
    use ember_sft::contrast::{Contrast, ContrastSection, MIN_REPLY_TOKENS, reply_spans};
    let tok = tok();
    let convs: Vec<Conversation> = (0..12)
        .map(|i| {
            conv(&[
                (&format!("question {i}"), &format!("answer number {i}")),
                (
                    "and?",
                    if i % 2 == 0 {
                        "ok"
                    } else {
                        "a longer second reply"
                    },
                ),
            ])
        })
        .collect();
    let (ex, _) = render_all(&tok, &convs, 96).unwrap();
    let section = ContrastSection {
        weight: 1.0,
        replies: 3,
        negatives: 2,
        scale: 2.0,
    };
    let c = Contrast::new(section.clone(), &ex, 5, 96, 256).unwrap();
    // "ok" (2 tokens and <|end|>) is too short to be a negative; every answer and the
    // longer second reply (one text, six times) are in the pool once each.
    assert_eq!(c.pool_size(), 12 + 1);
    let cb = c.batch(&ex, 7);
    assert_eq!(cb.group, 3);
    assert_eq!(cb.rows.batch, 9);
    assert_eq!(cb.rows, c.batch(&ex, 7).rows, "drawn by micro-batch");
    assert_ne!(cb.rows, c.batch(&ex, 8).rows);
    let seq = cb.rows.seq;
    let row = |r: usize| {
        let lo = r * seq;
        let m = &cb.rows.mask[lo..lo + seq];
        let first = m.iter().position(|&x| x == 1.0).unwrap();
        let last = m.iter().rposition(|&x| x == 1.0).unwrap();
        assert!(m[first..=last].iter().all(|&x| x == 1.0), "one reply a row");
        let context = cb.rows.inputs[lo..lo + first + 1].to_vec();
        (context, cb.rows.targets[lo + first..=lo + last].to_vec())
    };
    for g in 0..3 {
        let (context, truth) = row(g * 3);
        // The true reply is a reply of a training example, right after its context.
        assert!(ex.iter().any(|e| {
            reply_spans(e)
                .iter()
                .any(|&(a, b)| e.ids[a..b] == truth[..] && e.ids[..a].ends_with(&context))
        }));
        let mut others = Vec::new();
        for k in 1..3 {
            let (ctx, reply) = row(g * 3 + k);
            assert_eq!(ctx, context, "negatives follow the true reply's context");
            assert_ne!(reply, truth);
            assert!(reply.len() > MIN_REPLY_TOKENS);
            others.push(reply);
        }
        assert_ne!(others[0], others[1], "distinct negatives");
    }
    // Too few distinct replies for the negatives asked: refused, with the count.
    let few = ContrastSection {
        negatives: 13,
        ..section
    };
    let err = Contrast::new(few, &ex, 5, 96, 256).err().unwrap();
    assert!(
        err.contains("13 distinct replies") && err.contains("negatives = 13"),
        "{err}"
    );
}
