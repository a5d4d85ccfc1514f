//! Sampling and generation: determinism per seed, top-k/top-p sets, stops, context errors.

use ember_model::{GptConfig, SamplingConfig, StopReason, generate, sample};
use ember_tokenizer::{TrainerConfig, train_from_texts};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::common::{cpu, model};

fn logits() -> Vec<f32> {
    vec![2.0, 1.0, 0.5, 3.0, -1.0, 2.5, 0.0, 1.5]
}

#[test]
fn greedy_picks_the_largest_logit() {
    let cfg = SamplingConfig {
        temperature: 0.0,
        ..Default::default()
    };
    assert_eq!(
        sample(&mut logits(), &[], &cfg, &mut StdRng::seed_from_u64(0)),
        3
    );
}

#[test]
fn logit_bias_bans_and_favours_ids() {
    let mut rng = StdRng::seed_from_u64(3);
    let ban = SamplingConfig {
        temperature: 2.0,
        top_k: 0,
        logit_bias: vec![(3, -100.0), (5, -100.0)],
        ..Default::default()
    };
    for _ in 0..2000 {
        let id = sample(&mut logits(), &[], &ban, &mut rng);
        assert!(id != 3 && id != 5, "drew banned id {id}");
    }
    let greedy = SamplingConfig {
        temperature: 0.0,
        logit_bias: vec![(4, 4.5)],
        ..Default::default()
    };
    // Id 4's logit -1 + 4.5 = 3.5 now beats id 3's 3.0.
    assert_eq!(sample(&mut logits(), &[], &greedy, &mut rng), 4);
    assert!(ban.check_bias(8).is_ok());
    let e = ban.check_bias(4).unwrap_err().to_string();
    assert!(
        e.contains("logit_bias") && e.contains('5') && e.contains("0 to 3"),
        "{e}"
    );
    let all = SamplingConfig {
        logit_bias: (0..8).map(|i| (i, -100.0)).collect(),
        ..Default::default()
    };
    let e = all.check_bias(8).unwrap_err().to_string();
    assert!(e.contains("at least one id"), "{e}");
    let big = SamplingConfig {
        logit_bias: vec![(1, 150.0)],
        ..Default::default()
    };
    assert!(
        big.validate()
            .unwrap_err()
            .to_string()
            .contains("-100 to 100")
    );
}

#[test]
fn top_k_and_top_p_never_leave_their_sets() {
    let mut rng = StdRng::seed_from_u64(7);
    let top3 = SamplingConfig {
        temperature: 5.0,
        top_k: 3,
        ..Default::default()
    };
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..2000 {
        seen.insert(sample(&mut logits(), &[], &top3, &mut rng));
    }
    assert_eq!(
        seen.into_iter().collect::<Vec<_>>(),
        vec![0, 3, 5],
        "top-3 are ids 3, 5, 0"
    );
    // With temperature 1, p(3) ≈ 0.43 and p(5) ≈ 0.26: top-p 0.6 keeps exactly {3, 5}.
    let top_p = SamplingConfig {
        temperature: 1.0,
        top_k: 0,
        top_p: 0.6,
        ..Default::default()
    };
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..2000 {
        seen.insert(sample(&mut logits(), &[], &top_p, &mut rng));
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![3, 5]);
}

#[test]
fn repetition_penalty_demotes_tokens_already_seen() {
    let cfg = SamplingConfig {
        temperature: 0.0,
        repetition_penalty: 2.0,
        ..Default::default()
    };
    // 3.0 / 2 = 1.5 < 2.5: id 5 wins once id 3 was seen.
    assert_eq!(
        sample(&mut logits(), &[3], &cfg, &mut StdRng::seed_from_u64(0)),
        5
    );
}

#[test]
fn same_seed_same_text_and_stops_work() {
    let (tok, _) = train_from_texts(
        &["the cat sat on the mat and the dog ate the hat. ".repeat(30)],
        &TrainerConfig::new(300),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let device = cpu(4);
    let m = model(&GptConfig::new(tok.vocab_size(), 2, 2, 32, 64), &device);
    let prompt = tok.encode("the cat");
    let cfg = SamplingConfig {
        max_new_tokens: 30,
        temperature: 1.0,
        top_k: 50,
        seed: 11,
        ..Default::default()
    };
    let mut streamed = String::new();
    let a = generate(&m, &tok, &prompt, &cfg, |s| {
        streamed.push_str(s);
        true
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let b = generate(&m, &tok, &prompt, &cfg, |_| true).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.ids, b.ids);
    assert_eq!(a.ids.len(), 30);
    assert_eq!(a.stop, StopReason::MaxTokens);
    assert_eq!(streamed, a.text, "the stream is the text");
    let c = generate(
        &m,
        &tok,
        &prompt,
        &SamplingConfig {
            seed: 12,
            ..cfg.clone()
        },
        |_| true,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(a.ids, c.ids, "another seed, another sample");
    // Stop on the first id the unconstrained run produced: nothing is generated.
    let first = a.ids[0];
    let s = generate(
        &m,
        &tok,
        &prompt,
        &SamplingConfig {
            stop_ids: vec![first],
            ..cfg.clone()
        },
        |_| true,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((s.ids.len(), s.stop), (0, StopReason::StopToken(first)));
    // Stop string: the text is cut before it.
    if let Some(ch) = a.text.chars().nth(3) {
        let stop = ch.to_string();
        let s = generate(
            &m,
            &tok,
            &prompt,
            &SamplingConfig {
                stop_strings: vec![stop.clone()],
                ..cfg
            },
            |_| true,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.stop, StopReason::StopString(stop.clone()));
        assert!(!s.text.contains(&stop) && a.text.starts_with(&s.text));
    }
}

#[test]
fn prompt_too_long_for_the_context_is_an_error_quoting_the_numbers() {
    let (tok, _) = train_from_texts(&["abc abc abc"], &TrainerConfig::new(270))
        .unwrap_or_else(|e| panic!("{e}"));
    let device = cpu(5);
    let m = model(&GptConfig::new(tok.vocab_size(), 1, 1, 8, 16), &device);
    let prompt = vec![1u32; 10];
    let cfg = SamplingConfig {
        max_new_tokens: 8,
        ..Default::default()
    };
    let e = generate(&m, &tok, &prompt, &cfg, |_| true)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("10 tokens")
            && e.contains("max new tokens 8")
            && e.contains("context length 16"),
        "{e}"
    );
}

/// Batched decoding (a server's concurrent requests): sequences of different lengths, each
/// with its own cache, stepped together give each row what stepping it alone gives, for every
/// position kind (learned, sinusoidal, rotary), over several steps.
#[test]
fn batched_decode_step_matches_each_sequence_alone() {
    use ember_model::KvCache;
    let device = cpu(5);
    for cfg in crate::common::variants(48) {
        let model = model(&cfg, &device);
        let prompts: [&[u32]; 3] = [&[1, 2, 3, 4, 5, 6, 7], &[9], &[10, 11, 12]];
        let prefill = |p: &[u32]| {
            let mut c = KvCache::new(cfg.n_layer);
            let _ = model.forward_cached_last(crate::common::tokens(p, &device), &mut c);
            c
        };
        let mut together: Vec<KvCache> = prompts.iter().map(|p| prefill(p)).collect();
        let mut alone: Vec<KvCache> = prompts.iter().map(|p| prefill(p)).collect();
        for step in 0..4u32 {
            let next: Vec<u32> = (0..3).map(|i| (7 * step + 5 * i + 1) % 48).collect();
            let mut refs: Vec<&mut KvCache> = together.iter_mut().collect();
            let batch =
                ember_model::generate::rows_to_host(model.decode_step(&next, &mut refs)).unwrap();
            for (i, cache) in alone.iter_mut().enumerate() {
                let row = ember_model::generate::rows_to_host(
                    model.decode_step(&next[i..i + 1], &mut [cache]),
                )
                .unwrap()
                .remove(0);
                let diff = row
                    .iter()
                    .zip(&batch[i])
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(diff < 1e-5, "{cfg:?} row {i} step {step}: max diff {diff}");
            }
            for (a, b) in together.iter().zip(&alone) {
                assert_eq!(a.len(), b.len());
            }
        }
    }
}

/// A character whose UTF-8 bytes come as separate tokens is shown only when whole: the pieces
/// streamed are whole characters (never a broken sequence on a terminal), and they add up to
/// the text. A stop string spanning tokens is held back and never shown.
#[test]
fn characters_split_across_tokens_are_streamed_whole() {
    use ember_model::Decoder;
    let (tok, _) = train_from_texts(&["abc ".repeat(20)], &TrainerConfig::new(270))
        .unwrap_or_else(|e| panic!("{e}"));
    let byte_id = |b: u8| {
        (0..tok.vocab_size() as u32)
            .find(|&id| tok.id_to_bytes(id) == Some(&[b][..]))
            .unwrap_or_else(|| panic!("no token for byte {b}"))
    };
    let device = cpu(9);
    let m = model(&GptConfig::new(tok.vocab_size(), 1, 2, 16, 64), &device);
    // Logits that make greedy decoding pick `id`.
    let pick = |id: u32| {
        let mut l = vec![0.0f32; tok.vocab_size()];
        l[id as usize] = 1.0;
        l
    };
    let run = |text: &str, stops: Vec<String>| {
        let cfg = SamplingConfig {
            temperature: 0.0,
            max_new_tokens: 40,
            stop_strings: stops,
            ..Default::default()
        };
        let (mut d, _) = Decoder::start(&m, &tok, &tok.encode("a"), &cfg).unwrap();
        let mut pieces = Vec::new();
        for b in text.bytes() {
            let step = d.step(&mut pick(byte_id(b)));
            pieces.push(step.text);
            if step.next.is_none() {
                break;
            }
        }
        (pieces, d.finish())
    };
    let (pieces, g) = run("你好", vec![]);
    assert_eq!(pieces, ["", "", "你", "", "", "好"]);
    assert_eq!(g.text, "你好");
    // "好!" as a stop string: "好" could begin it, so it waits; then the stop ends the text.
    let (pieces, g) = run("你好!", vec!["好!".into()]);
    assert_eq!(pieces, ["", "", "你", "", "", "", ""]);
    assert_eq!(g.text, "你");
    assert_eq!(g.stop, StopReason::StopString("好!".into()));
    // Not the stop string after all: the held-back text comes out with the next token.
    let (pieces, g) = run("你好?", vec!["好!".into()]);
    assert_eq!(pieces.concat(), "你好?");
    assert_eq!(pieces[5], "");
    assert_eq!(g.text, "你好?");
}

/// Prompts run together (a server's requests that arrive at once), padded to the longest:
/// each prompt's last logits and its cache, continued by a decoding step, are bit for bit
/// those of running it alone, for every position kind.
#[test]
fn prompts_prefilled_together_are_each_prompt_alone_bit_for_bit() {
    use ember_model::KvCache;
    let device = cpu(5);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for cfg in crate::common::variants(48) {
        let model = model(&cfg, &device);
        let prompts: [&[u32]; 3] = [&[1, 2, 3, 4, 5, 6, 7], &[9], &[10, 11, 12]];
        let (mut caches, logits) = model.prefill(&prompts);
        let logits = ember_model::generate::rows_to_host(logits).unwrap();
        for (i, p) in prompts.iter().enumerate() {
            let mut alone = KvCache::new(cfg.n_layer);
            let row = model.forward_cached_last(crate::common::tokens(p, &device), &mut alone);
            let row = ember_model::generate::rows_to_host(row).unwrap().remove(0);
            assert_eq!(
                bits(&row),
                bits(&logits[i]),
                "{cfg:?} prompt {i}: last logits"
            );
            assert_eq!(caches[i].len(), p.len());
            let step = |c: &mut KvCache| {
                let y = model.decode_step(&[5], &mut [c]);
                ember_model::generate::rows_to_host(y).unwrap().remove(0)
            };
            assert_eq!(
                bits(&step(&mut alone)),
                bits(&step(&mut caches[i])),
                "{cfg:?} prompt {i}: next step"
            );
        }
    }
}
