use ember_kernels::{nll_backward, nll_backward_in_place, nll_forward};
use proptest::prelude::*;

/// float64 reference: (nll, lse) per row and the gradient.
fn reference(
    logits: &[f32],
    vocab: usize,
    targets: &[u32],
    g: &[f32],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut nll = Vec::new();
    let mut lse = Vec::new();
    let mut grad = Vec::new();
    for ((row, &t), &g) in logits.chunks(vocab).zip(targets).zip(g) {
        let m = row.iter().fold(f64::NEG_INFINITY, |a, &x| a.max(x as f64));
        let l = m + row.iter().map(|&x| (x as f64 - m).exp()).sum::<f64>().ln();
        lse.push(l);
        nll.push(l - row[t as usize] as f64);
        for (j, &x) in row.iter().enumerate() {
            let p = (x as f64 - l).exp();
            grad.push(g as f64 * (p - if j == t as usize { 1.0 } else { 0.0 }));
        }
    }
    (nll, lse, grad)
}

fn run(logits: &[f32], vocab: usize, targets: &[u32], g: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let rows = targets.len();
    let (mut nll, mut lse) = (vec![0.0; rows], vec![0.0; rows]);
    nll_forward(logits, vocab, targets, &mut nll, &mut lse);
    let mut grad = vec![0.0; logits.len()];
    nll_backward(logits, vocab, targets, &lse, g, &mut grad);
    // The in-place form gives the same bits.
    let mut in_place = logits.to_vec();
    nll_backward_in_place(&mut in_place, vocab, targets, &lse, g);
    assert!(
        grad.iter()
            .zip(&in_place)
            .all(|(a, b)| a.to_bits() == b.to_bits())
    );
    (nll, lse, grad)
}

fn case() -> impl Strategy<Value = (usize, Vec<f32>, Vec<u32>, Vec<f32>)> {
    (1usize..5, 1usize..300).prop_flat_map(|(rows, vocab)| {
        (
            Just(vocab),
            prop::collection::vec(-30.0f32..30.0, rows * vocab),
            prop::collection::vec(0..vocab as u32, rows),
            prop::collection::vec(-2.0f32..2.0, rows),
        )
    })
}

proptest! {
    #[test]
    fn matches_f64_reference((vocab, logits, targets, g) in case()) {
        let (nll, lse, grad) = run(&logits, vocab, &targets, &g);
        let (rn, rl, rg) = reference(&logits, vocab, &targets, &g);
        for (a, b) in nll.iter().zip(&rn).chain(lse.iter().zip(&rl)) {
            prop_assert!((*a as f64 - b).abs() <= 1e-5 * (1.0 + b.abs()), "{a} vs {b}");
        }
        // e^{x - lse} in float32 carries the rounding of lse (~1e-7 relative to its size),
        // which the gradient's `p - 1` at the target cannot hide: bound by that.
        for (i, (a, b)) in grad.iter().zip(&rg).enumerate() {
            let row = i / vocab;
            let tol = 1e-6 + 4e-7 * (g[row].abs() as f64) * (1.0 + rl[row].abs());
            prop_assert!((*a as f64 - b).abs() <= tol, "{a} vs {b}");
        }
    }
}

#[test]
fn gradient_matches_finite_differences() {
    let vocab = 7;
    let logits: Vec<f32> = (0..2 * vocab)
        .map(|i| ((i * 5 % 11) as f32 - 5.0) * 0.4)
        .collect();
    let targets = [3u32, 6];
    let g = [1.0f32, 0.5];
    let (_, _, grad) = run(&logits, vocab, &targets, &g);
    let loss = |l: &[f32]| {
        let (nll, _, _) = run(l, vocab, &targets, &g);
        nll.iter()
            .zip(&g)
            .map(|(n, g)| (*n * g) as f64)
            .sum::<f64>()
    };
    let h = 1e-2f32;
    for i in 0..logits.len() {
        let (mut up, mut down) = (logits.clone(), logits.clone());
        up[i] += h;
        down[i] -= h;
        let fd = (loss(&up) - loss(&down)) / (2.0 * h as f64);
        assert!(
            (fd - grad[i] as f64).abs() < 2e-3,
            "logit {i}: {fd} vs {}",
            grad[i]
        );
    }
}

/// Gradient rows sum to zero (softmax sums to one), the identity training relies on.
#[test]
fn gradient_rows_sum_to_zero() {
    let vocab = 8192;
    let logits: Vec<f32> = (0..3 * vocab)
        .map(|i| ((i * 7919 % 1000) as f32) * 0.01 - 5.0)
        .collect();
    let (_, _, grad) = run(&logits, vocab, &[0, 4000, 8191], &[1.0, 1.0, 1.0]);
    for row in grad.chunks(vocab) {
        assert!(row.iter().map(|&x| x as f64).sum::<f64>().abs() < 1e-5);
    }
}

#[test]
fn non_finite_input_and_bad_target_give_nan_not_panic() {
    let mut logits = vec![0.0f32; 2 * 4];
    logits[1] = f32::NAN;
    let (nll, _, _) = run(&logits, 4, &[0, 9], &[1.0, 1.0]);
    assert!(nll[0].is_nan(), "NaN logit must surface");
    assert!(nll[1].is_nan(), "target 9 is outside a vocabulary of 4");
}

#[test]
fn large_logits_are_stable() {
    let logits = [1000.0f32, 999.0, -1000.0];
    let (nll, lse, _) = run(&logits, 3, &[1], &[1.0]);
    assert!((lse[0] - (1000.0 + (1.0 + (-1.0f32).exp()).ln())).abs() < 1e-3);
    assert!((nll[0] - (1.0 + (1.0 + (-1.0f32).exp()).ln())).abs() < 1e-4);
}

/// Same numbers on 1 and 3 threads: the reduction order is fixed per row.
#[test]
fn thread_count_does_not_change_results() {
    let vocab = 1000;
    let logits: Vec<f32> = (0..64 * vocab)
        .map(|i| ((i * 31 % 977) as f32) * 0.013 - 6.0)
        .collect();
    let targets: Vec<u32> = (0..64).map(|i| (i * 13 % vocab) as u32).collect();
    let g = vec![0.25f32; 64];
    let on = |n| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(n).build();
        match pool {
            Ok(p) => p.install(|| run(&logits, vocab, &targets, &g)),
            Err(e) => panic!("thread pool: {e}"),
        }
    };
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let (a, b) = (on(1), on(3));
    assert_eq!(bits(&a.0), bits(&b.0));
    assert_eq!(bits(&a.2), bits(&b.2));
}

/// Soft-capped cross-entropy against float64: the loss of `z = c · tanh(x / c)` and its
/// gradient with respect to `x`, for logits inside and well beyond the cap.
#[test]
fn softcap_matches_f64_reference() {
    use ember_kernels::{softcap_in_place, softcap_nll_backward_in_place};
    let (vocab, rows, cap) = (300usize, 5usize, 15.0f32);
    let x: Vec<f32> = (0..vocab * rows)
        .map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * 80.0)
        .collect();
    let targets: Vec<u32> = (0..rows as u32).map(|r| r * 37 % vocab as u32).collect();
    let g = [1.0f32, 0.5, 2.0, 0.0, 1.0];
    let mut z = x.clone();
    softcap_in_place(&mut z, cap);
    let c = cap as f64;
    for (a, &v) in z.iter().zip(&x) {
        let want = c * (v as f64 / c).tanh();
        assert!((*a as f64 - want).abs() < 1e-5 * c, "{a} vs {want}");
    }
    let zf: Vec<f32> = x
        .iter()
        .map(|&v| (c * (v as f64 / c).tanh()) as f32)
        .collect();
    let (nll_want, _, grad_z) = reference(&zf, vocab, &targets, &g);
    let (mut nll, mut lse) = (vec![0.0; rows], vec![0.0; rows]);
    nll_forward(&z, vocab, &targets, &mut nll, &mut lse);
    for (a, b) in nll.iter().zip(&nll_want) {
        assert!((*a as f64 - b).abs() < 1e-4, "nll {a} vs {b}");
    }
    softcap_nll_backward_in_place(&mut z, vocab, &targets, &lse, &g, cap);
    for (i, (a, gz)) in z.iter().zip(&grad_z).enumerate() {
        let t = (x[i] as f64 / c).tanh();
        let want = gz * (1.0 - t * t);
        assert!((*a as f64 - want).abs() < 1e-5, "grad {i}: {a} vs {want}");
    }
}
