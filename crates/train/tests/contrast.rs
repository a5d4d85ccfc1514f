//! The reply-ranking term (`ember_train::contrast`): its loss and gradient against a float64
//! reference, and the loop training with it.

use burn::prelude::*;
use ember_train::contrast::{ranking_loss, ranking_loss_host};
use ember_train::{ContrastBatch, HostBatch, Start, Task};

use crate::common::{Cycle, run, tokenizer, train, train_section};

/// Scores of 3 groups of 4 from a fixed formula, in nats per token.
fn mean_nll() -> Vec<f64> {
    (0..12)
        .map(|i| 2.0 + ((i * 37 % 11) as f64 - 5.0) * 0.13)
        .collect()
}

#[test]
fn ranking_loss_and_its_gradient_match_a_float64_reference() {
    let device = Device::flex().autodiff();
    let v = mean_nll();
    let scale = 5.0;
    let x = Tensor::<1>::from_data(
        TensorData::new(v.iter().map(|&x| x as f32).collect::<Vec<_>>(), [12]),
        &device,
    )
    .require_grad();
    let loss = ranking_loss(x.clone(), 4, scale);
    let got = f64::from(loss.clone().into_scalar::<f32>());
    let (want, accuracy) = ranking_loss_host(&v, 4, scale);
    assert!((got - want).abs() < 1e-5, "{got} vs {want}");
    // Group 0's true reply (2.0 - 0.65) scores highest; groups 1 and 2's do not.
    let firsts: Vec<bool> = v
        .chunks(4)
        .map(|g| g[1..].iter().all(|&o| o > g[0]))
        .collect();
    assert_eq!(accuracy, firsts.iter().filter(|&&f| f).count() as f64 / 3.0);
    let grads = loss.backward();
    let g: Vec<f32> = x.grad(&grads).unwrap().into_data().try_to_vec().unwrap();
    for i in 0..12 {
        let h = 1e-4;
        let mut up = v.clone();
        up[i] += h;
        let mut down = v.clone();
        down[i] -= h;
        let fd =
            (ranking_loss_host(&up, 4, scale).0 - ranking_loss_host(&down, 4, scale).0) / (2.0 * h);
        assert!(
            (f64::from(g[i]) - fd).abs() < 1e-4,
            "d loss / d nll[{i}]: {} vs {fd}",
            g[i]
        );
        // A true reply's loss pushes its NLL down, every other's up.
        assert_eq!(g[i] > 0.0, i % 4 == 0, "sign of the gradient at {i}");
    }
}

/// The cycle task with one fixed ranking batch: after a context of the cycle, its next three
/// ids against three runs of other ids.
struct Ranked(Cycle);

impl Task for Ranked {
    fn train_batch(&self, step: u64, micro: usize) -> ember_train::Result<HostBatch> {
        self.0.train_batch(step, micro)
    }
    fn eval_batches(&self) -> usize {
        self.0.eval_batches()
    }
    fn eval_batch(&self, i: usize) -> ember_train::Result<HostBatch> {
        self.0.eval_batch(i)
    }
    fn contrast_batch(&self, _: u64, _: usize) -> ember_train::Result<Option<ContrastBatch>> {
        let replies: [[u32; 3]; 4] = [[5, 6, 0], [9, 3, 8], [2, 2, 2], [8, 1, 4]];
        let mut rows = HostBatch {
            batch: 4,
            seq: 8,
            inputs: vec![],
            targets: vec![],
            mask: vec![],
            target_bytes: 0,
            bidirectional: 0,
            doc_starts: vec![],
        };
        for r in replies {
            let ids: Vec<u32> = [0, 1, 2, 3, 4, 5].into_iter().chain(r).collect();
            rows.inputs.extend(&ids[..8]);
            rows.targets.extend(&ids[1..]);
            rows.mask.extend([0., 0., 0., 0., 0., 1., 1., 1.]);
        }
        Ok(Some(ContrastBatch {
            rows,
            group: 4,
            scale: 5.0,
            weight: 1.0,
        }))
    }
}

#[test]
fn the_loop_trains_the_ranking_term_and_logs_it() {
    let dir = tempfile::tempdir().unwrap();
    let tok = tokenizer();
    let mut t = train_section();
    t.max_steps = 30;
    t.lr = 1e-2;
    // Gradients accumulated over two micro-batches: the term is added to each.
    t.batch_size = 2;
    t.total_batch_tokens = Some(2 * 2 * 16);
    let r = run(dir.path(), &tok, t, Start::Fresh);
    train(&r, &Ranked(Cycle::new(2))).unwrap();
    let ranks: Vec<(f64, f64)> = std::fs::read_to_string(dir.path().join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == "train")
        .map(|v| {
            (
                v["rank"]["loss"].as_f64().unwrap(),
                v["rank"]["accuracy"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(ranks.len(), 30, "every step logs the term");
    let (first, last) = (ranks[0], ranks[29]);
    assert!(
        first.0 > 1.0 && first.1 < 1.0,
        "a fresh model does not rank the true reply first: {first:?}"
    );
    assert!(
        last.0 < 0.2 * first.0 && last.1 == 1.0,
        "the ranking term is learnt: {first:?} → {last:?}"
    );
}
