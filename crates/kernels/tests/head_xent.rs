//! The fused output layer and cross-entropy against the products and kernels it fuses, run
//! whole: the loss, the input gradient (bit for bit) and the weight gradient (to rounding).

use ember_kernels::{
    HEAD_CHUNK, HeadGrads, Operand, PackedRhs, head_xent_bf16, matmul_bf16, matmul_bf16_packed,
    nll_backward_in_place, nll_forward, softcap_in_place, softcap_nll_backward_in_place,
};

fn values(n: usize, seed: usize, scale: f32) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104_729) % 2001) as f32 - 1000.0) * scale)
        .collect()
}

struct Case {
    x: Vec<f32>,
    w: Vec<f32>,
    d: usize,
    targets: Vec<u32>,
    weights: Vec<f32>,
}

/// Three chunks, the last one partial; some rows weigh nothing (padding), others 0.5.
fn case() -> Case {
    let (rows, d, vocab) = (2 * HEAD_CHUNK + 37, 40, 300);
    Case {
        x: values(rows * d, 1, 2e-3),
        w: values(vocab * d, 2, 2e-3),
        d,
        targets: (0..rows).map(|i| ((i * 131) % vocab) as u32).collect(),
        weights: (0..rows).map(|i| [1.0, 0.0, 0.5][i % 3]).collect(),
    }
}

/// The unfused route: the whole logits, the loss kernels, then the two gradient products.
fn unfused(c: &Case, cap: f32) -> (f64, Vec<f32>, Vec<f32>) {
    let (rows, d) = (c.targets.len(), c.d);
    let vocab = c.w.len() / d;
    let mut z = vec![0.0f32; rows * vocab];
    let wt = Operand::new(&c.w, vocab, d).t();
    matmul_bf16(&mut z, Operand::new(&c.x, rows, d), wt, false);
    if cap > 0.0 {
        softcap_in_place(&mut z, cap);
    }
    let (mut nll, mut lse) = (vec![0.0f32; rows], vec![0.0f32; rows]);
    nll_forward(&z, vocab, &c.targets, &mut nll, &mut lse);
    let loss = nll
        .iter()
        .zip(&c.weights)
        .map(|(&l, &q)| f64::from(l * q))
        .sum();
    if cap > 0.0 {
        softcap_nll_backward_in_place(&mut z, vocab, &c.targets, &lse, &c.weights, cap);
    } else {
        nll_backward_in_place(&mut z, vocab, &c.targets, &lse, &c.weights);
    }
    let (mut dx, mut dw) = (vec![0.0f32; rows * d], vec![0.0f32; vocab * d]);
    let g = Operand::new(&z, rows, vocab);
    matmul_bf16(&mut dx, g, Operand::new(&c.w, vocab, d), false);
    matmul_bf16(&mut dw, g.t(), Operand::new(&c.x, rows, d), false);
    (loss, dx, dw)
}

fn fused(c: &Case, cap: f32) -> (f64, Vec<f32>, Vec<f32>) {
    let (mut dx, mut dw) = (vec![f32::NAN; c.x.len()], vec![f32::NAN; c.w.len()]);
    let grads = HeadGrads {
        dx: &mut dx,
        dw: &mut dw,
    };
    let loss = head_xent_bf16(&c.x, &c.w, c.d, &c.targets, &c.weights, cap, Some(grads));
    (loss, dx, dw)
}

#[test]
fn loss_and_gradients_are_the_unfused_kernels() {
    let c = case();
    for cap in [0.0, 15.0, 0.5] {
        let (loss, dx, dw) = fused(&c, cap);
        let (want, want_dx, want_dw) = unfused(&c, cap);
        assert!(
            (loss - want).abs() <= 1e-6 * want.abs(),
            "cap {cap}: loss {loss} against {want}"
        );
        // Each input-gradient row is one chunk's product, computed as the whole one computes it.
        assert_eq!(dx, want_dx, "cap {cap}: input gradient");
        // The weight gradient adds the chunks' sums: rounding only (its entries are ~1e-2).
        let scale = want_dw.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(
            scale > 1e-4,
            "cap {cap}: a weight gradient of zeros tests nothing"
        );
        for (i, (a, b)) in dw.iter().zip(&want_dw).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * scale,
                "cap {cap}: dw[{i}] {a} against {b}"
            );
        }
        // Without gradients the loss is the same number.
        let alone = head_xent_bf16(&c.x, &c.w, c.d, &c.targets, &c.weights, cap, None);
        assert_eq!(alone.to_bits(), loss.to_bits(), "cap {cap}");
        // Rows that weigh nothing get no gradient.
        assert!(dx[c.d..2 * c.d].iter().all(|&v| v == 0.0), "cap {cap}");
    }
}

#[test]
fn a_target_outside_the_vocabulary_makes_the_loss_nan() {
    let mut c = case();
    c.targets[HEAD_CHUNK + 5] = 300;
    assert!(head_xent_bf16(&c.x, &c.w, c.d, &c.targets, &c.weights, 15.0, None).is_nan());
}

#[test]
fn results_do_not_depend_on_the_number_of_threads() {
    let c = case();
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let (loss, dx, dw) = pool.install(|| fused(&c, 15.0));
        let bits = |v: Vec<f32>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        (loss.to_bits(), bits(dx), bits(dw))
    };
    assert_eq!(run(1), run(3));
}

#[test]
fn a_packed_right_operand_gives_the_same_bits() {
    let (m, k, n) = (50, 33, 70);
    let (a, b) = (values(m * k, 3, 1e-3), values(n * k, 4, 1e-3));
    for rhs in [Operand::new(&b, k, n), Operand::new(&b, n, k).t()] {
        let (mut want, mut got) = (vec![0.0f32; m * n], vec![0.0f32; m * n]);
        matmul_bf16(&mut want, Operand::new(&a, m, k), rhs, false);
        matmul_bf16_packed(
            &mut got,
            Operand::new(&a, m, k),
            &PackedRhs::new(rhs),
            false,
        );
        assert_eq!(got, want);
    }
}
