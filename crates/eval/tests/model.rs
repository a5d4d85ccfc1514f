//! The model scorer against a direct computation; whole evaluations repeat bit for bit.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use ember_eval::loglik::{ModelScorer, Request, Scorer};
use ember_eval::tasks::text::windows;
use ember_eval::{EvalOptions, TaskResult, evaluate};
use ember_model::checkpoint;

use crate::common::{TEXT, checkpoint as tiny_checkpoint, eval_sets};

/// log p(continuation | context) from one full forward pass, token by token.
fn direct(model: &ember_model::Gpt, ctx: &[u32], cont: &[u32]) -> f64 {
    let device = model.wte.weight.device();
    let full: Vec<i32> = ctx.iter().chain(cont).map(|&i| i as i32).collect();
    let n = full.len() - 1;
    let input = Tensor::<2, Int>::from_data(TensorData::new(full[..n].to_vec(), [1, n]), &device);
    let logp = log_softmax(model.forward(input), 2);
    let v: Vec<f32> = logp.into_data().try_to_vec_as::<f32>().unwrap();
    let vocab = v.len() / n;
    (0..cont.len())
        .map(|k| {
            let pos = ctx.len() - 1 + k;
            f64::from(v[pos * vocab + cont[k] as usize])
        })
        .sum()
}

#[test]
fn shared_context_and_batched_scoring_equal_a_direct_computation() {
    let dir = tempfile::tempdir().unwrap();
    let ck = checkpoint::load(&tiny_checkpoint(dir.path()), &Device::flex()).unwrap();
    let tok = &ck.tokenizer;
    let ctx = tok.encode("The cat sat on the");
    let conts = [" mat.", " log, and then the dog sang.", " tree"];
    // Same context: the KV-cache path. Different contexts: the batched path.
    let shared: Vec<Request> = conts
        .iter()
        .map(|c| Request {
            context: ctx.clone(),
            continuation: tok.encode(c),
        })
        .collect();
    let single: Vec<Request> = conts
        .iter()
        .enumerate()
        .map(|(i, c)| Request {
            context: tok.encode(&format!("{}The cat sat on the", " ".repeat(i))),
            continuation: tok.encode(c),
        })
        .collect();
    let mut scorer = ModelScorer::new(&ck.model, ck.config.block_size);
    let a = scorer.loglik(&shared).unwrap();
    let b = scorer.loglik(&single).unwrap();
    for (r, got) in shared.iter().zip(&a).chain(single.iter().zip(&b)) {
        let want = direct(&ck.model, &r.context, &r.continuation);
        assert!((got - want).abs() < 1e-4, "{got} vs {want}");
        assert!(*got < 0.0);
    }
}

#[test]
fn an_over_long_request_keeps_its_last_block_plus_one_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let ck = checkpoint::load(&tiny_checkpoint(dir.path()), &Device::flex()).unwrap();
    let tok = &ck.tokenizer;
    let block = ck.config.block_size;
    let long = tok.encode(&TEXT.repeat(4));
    assert!(long.len() > block + 10);
    let cont = tok.encode(" the mat.");
    let mut scorer = ModelScorer::new(&ck.model, block);
    let got = scorer
        .loglik(&[Request {
            context: long.clone(),
            continuation: cont.clone(),
        }])
        .unwrap()[0];
    let keep = block + 1 - cont.len();
    let want = direct(&ck.model, &long[long.len() - keep..], &cont);
    assert!((got - want).abs() < 1e-4, "{got} vs {want}");
}

#[test]
fn windows_score_every_target_once() {
    for (n, block, stride) in [(10, 4, 4), (10, 4, 2), (11, 4, 3), (5, 8, 8), (2, 4, 1)] {
        let w = windows(n, block, stride);
        let mut seen = vec![0; n - 1];
        for &(start, len, scored) in &w {
            assert!(len <= block && scored <= len && scored > 0);
            for s in &mut seen[start + len - scored..start + len] {
                *s += 1;
            }
        }
        assert!(
            seen.iter().all(|&c| c == 1),
            "{n} {block} {stride}: {seen:?}"
        );
    }
    assert_eq!(windows(10, 4, 4).len(), 3); // 9 targets: 4 + 4 + 1
}

#[test]
fn evaluation_repeats_bit_for_bit_and_counts_malformed_items() {
    let dir = tempfile::tempdir().unwrap();
    let ck = tiny_checkpoint(dir.path());
    eval_sets(dir.path());
    let text = dir.path().join("held_out.txt");
    std::fs::write(&text, TEXT.repeat(3)).unwrap();
    let opts = EvalOptions {
        tasks: ["text", "hellaswag", "arc-easy", "blimp", "gsm8k", "samples"]
            .map(String::from)
            .to_vec(),
        text: Some(text),
        eval_data: dir.path().to_path_buf(),
        samples: 2,
        max_new_tokens: 8,
        ..EvalOptions::default()
    };
    let run = || evaluate(&ck, &Device::flex(), &opts, &mut |_, _, _| {}).unwrap();
    let (a, b) = (run(), run());
    assert_eq!(a.tasks, b.tasks);
    assert_eq!(
        serde_json::to_string(&a.tasks).unwrap(),
        serde_json::to_string(&b.tasks).unwrap()
    );
    match &a.tasks["hellaswag"] {
        TaskResult::Choice(c) => {
            assert_eq!((c.acc.n, c.malformed), (3, 1));
            assert!(c.malformed_examples[0].contains(":3:"));
            assert!(c.acc_norm.is_some());
        }
        other => panic!("{other:?}"),
    }
    match &a.tasks["text"] {
        TaskResult::Text(t) => {
            assert!(t.bpb > 0.0 && (t.perplexity - t.loss.exp()).abs() < 1e-9);
            assert!(t.method.contains("non-overlapping"));
        }
        other => panic!("{other:?}"),
    }
    match &a.tasks["samples"] {
        TaskResult::Samples(s) => assert_eq!(s.samples.len(), 2),
        other => panic!("{other:?}"),
    }
    assert!(matches!(&a.tasks["gsm8k"], TaskResult::Math(m) if m.acc.n == 1));
}
