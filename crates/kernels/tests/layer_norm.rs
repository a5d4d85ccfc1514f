use ember_kernels::{layer_norm_backward, layer_norm_forward};

/// Deterministic values in about [-2, 2].
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 4.0 - 2.0
        })
        .collect()
}

/// Float64 reference: output, and the gradients of Σ out·dy with respect to x, gamma, beta.
fn reference(
    x: &[f32],
    w: usize,
    gamma: &[f32],
    beta: &[f32],
    dy: &[f32],
    eps: f64,
) -> [Vec<f64>; 4] {
    let (mut y, mut dx) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    let (mut dg, mut db) = (vec![0.0; w], vec![0.0; w]);
    for r in 0..x.len() / w {
        let row: Vec<f64> = x[r * w..(r + 1) * w].iter().map(|&v| v as f64).collect();
        let mean = row.iter().sum::<f64>() / w as f64;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / w as f64;
        let denom = (var + eps).sqrt();
        let xh: Vec<f64> = row.iter().map(|v| (v - mean) / denom).collect();
        let g: Vec<f64> = (0..w)
            .map(|i| dy[r * w + i] as f64 * gamma[i] as f64)
            .collect();
        let g_mean = g.iter().sum::<f64>() / w as f64;
        let gx_mean = g.iter().zip(&xh).map(|(a, b)| a * b).sum::<f64>() / w as f64;
        for i in 0..w {
            y[r * w + i] = xh[i] * gamma[i] as f64 + beta[i] as f64;
            dx[r * w + i] = (g[i] - g_mean - xh[i] * gx_mean) / denom;
            dg[i] += dy[r * w + i] as f64 * xh[i];
            db[i] += dy[r * w + i] as f64;
        }
    }
    [y, dx, dg, db]
}

fn max_rel(a: &[f32], b: &[f64]) -> f64 {
    let scale = b.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - y).abs())
        .fold(0.0, f64::max)
        / scale
}

#[test]
fn layer_norm_matches_f64_forward_and_backward() {
    // Widths around the 8-lane blocks; row counts around the 32-row tasks.
    for (rows, w) in [(1, 1), (3, 7), (33, 128), (70, 384), (5, 13)] {
        let x: Vec<f32> = values(rows * w, 1).iter().map(|v| v * 3.0 + 0.5).collect();
        let (gamma, beta, dy) = (values(w, 2), values(w, 3), values(rows * w, 4));
        let [y64, dx64, dg64, db64] = reference(&x, w, &gamma, &beta, &dy, 1e-5);
        let (mut y, mut stats) = (vec![0.0; x.len()], vec![0.0; 2 * rows]);
        layer_norm_forward(&x, w, &gamma, Some(&beta), 1e-5, &mut y, &mut stats);
        assert!(
            max_rel(&y, &y64) < 1e-5,
            "forward {rows}x{w}: {}",
            max_rel(&y, &y64)
        );
        let (mut dx, mut dg, mut db) = (vec![7.0; x.len()], vec![7.0; w], vec![7.0; w]);
        layer_norm_backward(&x, w, &gamma, &stats, &dy, &mut dx, &mut dg, &mut db);
        for (name, got, want) in [
            ("dx", &dx, &dx64),
            ("dgamma", &dg, &dg64),
            ("dbeta", &db, &db64),
        ] {
            let e = max_rel(got, want);
            // A width-1 row normalises to 0: dx is 0 up to the eps term.
            assert!(e < 1e-4, "{name} {rows}x{w}: relative error {e}");
        }
        // Without an offset the output is the same less beta.
        let mut y0 = vec![0.0; x.len()];
        layer_norm_forward(&x, w, &gamma, None, 1e-5, &mut y0, &mut stats);
        for i in 0..x.len() {
            assert!((y0[i] + beta[i % w] - y[i]).abs() < 1e-5);
        }
    }
}

#[test]
fn layer_norm_gradients_do_not_depend_on_threads() {
    let (rows, w) = (200, 96);
    let x = values(rows * w, 5);
    let (gamma, dy) = (values(w, 6), values(rows * w, 7));
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build();
        let pool = pool.unwrap_or_else(|e| panic!("{e}"));
        pool.install(|| {
            let (mut y, mut stats) = (vec![0.0; x.len()], vec![0.0; 2 * rows]);
            layer_norm_forward(&x, w, &gamma, None, 1e-5, &mut y, &mut stats);
            let (mut dx, mut dg, mut db) = (vec![0.0; x.len()], vec![0.0; w], vec![0.0; w]);
            layer_norm_backward(&x, w, &gamma, &stats, &dy, &mut dx, &mut dg, &mut db);
            (y, dx, dg, db)
        })
    };
    assert!(run(1) == run(3), "results changed with the thread count");
}

#[test]
#[should_panic(expected = "lengths disagree")]
fn layer_norm_rejects_mismatched_lengths() {
    let mut out = vec![0.0; 6];
    let mut stats = vec![0.0; 4];
    layer_norm_forward(&[0.0; 6], 3, &[1.0; 2], None, 1e-5, &mut out, &mut stats);
}
