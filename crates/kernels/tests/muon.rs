use ember_kernels::{
    MuonScalars, NS_COEFFICIENTS, NS_STEPS, muon_update, neurons, newton_schulz5,
    newton_schulz5_bf16,
};

fn values(n: usize, k: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + k * 104_729) % 2001) as f32 - 1000.0) * 1e-3)
        .collect()
}

/// `A·B` of row-major f64 matrices.
fn mm(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut out = vec![0.0; m * n];
    for i in 0..m {
        for p in 0..k {
            let x = a[i * k + p];
            for j in 0..n {
                out[i * n + j] += x * b[p * n + j];
            }
        }
    }
    out
}

fn transpose(x: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut t = vec![0.0; x.len()];
    for i in 0..rows {
        for j in 0..cols {
            t[j * rows + i] = x[i * cols + j];
        }
    }
    t
}

/// PyTorch's `_zeropower_via_newtonschulz` in float64 on a row-major `rows × cols` matrix.
fn ns_reference(x: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let tall = rows > cols;
    let (m, n) = if tall { (cols, rows) } else { (rows, cols) };
    let mut w = if tall {
        transpose(x, rows, cols)
    } else {
        x.to_vec()
    };
    let norm = w.iter().map(|v| v * v).sum::<f64>().sqrt().max(1e-7);
    w.iter_mut().for_each(|v| *v /= norm);
    let (a, b, c) = NS_COEFFICIENTS;
    let (a, b, c) = (f64::from(a), f64::from(b), f64::from(c));
    for _ in 0..NS_STEPS {
        let gram = mm(&w, &transpose(&w, m, n), m, n, m);
        let gg = mm(&gram, &gram, m, m, m);
        let poly: Vec<f64> = gram.iter().zip(&gg).map(|(g, q)| b * g + c * q).collect();
        let pw = mm(&poly, &w, m, m, n);
        w = w.iter().zip(&pw).map(|(v, q)| a * v + q).collect();
    }
    if tall { transpose(&w, m, n) } else { w }
}

fn worst(a: &[f32], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn newton_schulz_matches_the_f64_reference_wide_and_tall() {
    // 70 rows: more than two 32-row tasks, the last one short.
    for (rows, cols) in [(70, 150), (150, 70), (48, 48)] {
        let x = values(rows * cols, rows);
        let mut got = x.clone();
        newton_schulz5(&mut got, rows, cols);
        let want = ns_reference(
            &x.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
            rows,
            cols,
        );
        let err = worst(&got, &want);
        assert!(err < 2e-5, "{rows}×{cols}: worst error {err}");
        // The output's scale is that of an orthogonal matrix: Frobenius norm² ≈ min(rows, cols).
        let sq: f64 = got.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        let k = rows.min(cols) as f64;
        assert!(sq > 0.5 * k && sq < 1.5 * k, "{rows}×{cols}: ‖X‖² = {sq}");
    }
}

/// With bfloat16 operands (8 significant bits) the result stays near the f64 reference — each
/// entry within 7% of the largest (3.1–4.7% measured) — and orthogonal in scale.
#[test]
fn newton_schulz_with_bf16_products_stays_near_the_f64_reference() {
    for (rows, cols) in [(70, 150), (150, 70), (48, 48)] {
        let x = values(rows * cols, rows);
        let mut got = x.clone();
        newton_schulz5_bf16(&mut got, rows, cols);
        let want = ns_reference(
            &x.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
            rows,
            cols,
        );
        let scale = want.iter().map(|v| v.abs()).fold(0.0, f64::max);
        let err = worst(&got, &want) / scale;
        eprintln!("{rows}×{cols}: worst error {err} of the largest entry");
        assert!(
            err < 0.07,
            "{rows}×{cols}: worst error {err} of the largest entry"
        );
        let sq: f64 = got.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
        let k = rows.min(cols) as f64;
        assert!(sq > 0.5 * k && sq < 1.5 * k, "{rows}×{cols}: ‖X‖² = {sq}");
    }
}

#[test]
fn newton_schulz_does_not_depend_on_the_thread_count() {
    let (rows, cols) = (96, 200);
    let x = values(rows * cols, 5);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let mut y = x.clone();
        pool.install(|| newton_schulz5(&mut y, rows, cols));
        y.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    };
    assert_eq!(run(1), run(3));
}

/// `torch.optim.Muon`'s step in float64 on a row-major `[d_in, d_out]` weight whose columns
/// split into `blocks` matrices; with `norm = Some((v, β₂))` NorMuon's (`v`: each block's
/// neurons' second moments, block after block).
fn muon_reference(
    p: &mut [f64],
    buf: &mut [f64],
    g: &[f64],
    (rows, cols, blocks): (usize, usize, usize),
    (lr, momentum, wd): (f64, f64, f64),
    mut norm: Option<(&mut Vec<f64>, f64)>,
) {
    let width = cols / blocks;
    let mut u = vec![0.0; rows * cols];
    for k in 0..rows * cols {
        buf[k] = momentum * buf[k] + (1.0 - momentum) * g[k];
        u[k] = (1.0 - momentum) * g[k] + momentum * buf[k];
    }
    for b in 0..blocks {
        let block: Vec<f64> = (0..rows * width)
            .map(|k| u[(k / width) * cols + b * width + k % width])
            .collect();
        let mut o = ns_reference(&block, rows, width);
        if let Some((v, beta2)) = norm.as_mut() {
            normuon_reference(&mut o, v, b, (rows, width), *beta2);
        }
        let step = lr * (width as f64 / rows as f64).max(1.0).sqrt();
        for (k, o) in o.iter().enumerate() {
            let at = (k / width) * cols + b * width + k % width;
            p[at] = p[at] * (1.0 - lr * wd) - step * o;
        }
    }
}

/// NorMuon's normalisation of block `b`'s orthogonalised update `o` (`[rows, width]`, the
/// weight's `[d_in, d_out]`): neurons are the outputs (columns) unless the block has more
/// inputs than outputs; each is divided by the root of its running mean square, then the
/// block is scaled back to its Frobenius norm.
fn normuon_reference(
    o: &mut [f64],
    v: &mut [f64],
    b: usize,
    (rows, width): (usize, usize),
    beta2: f64,
) {
    let outputs = width >= rows;
    let count = rows.max(width);
    let v = &mut v[b * count..(b + 1) * count];
    let neuron = |i: usize, j: usize| if outputs { j } else { i };
    let frob = |o: &[f64]| o.iter().map(|x| x * x).sum::<f64>().sqrt();
    let before = frob(o);
    for (n, v) in v.iter_mut().enumerate() {
        let sq: Vec<f64> = (0..rows * width)
            .filter(|k| neuron(k / width, k % width) == n)
            .map(|k| o[k] * o[k])
            .collect();
        *v = beta2 * *v + (1.0 - beta2) * sq.iter().sum::<f64>() / sq.len() as f64;
    }
    for k in 0..rows * width {
        o[k] /= v[neuron(k / width, k % width)].max(1e-10).sqrt();
    }
    let after = frob(o);
    o.iter_mut().for_each(|x| *x *= before / after);
}

#[test]
fn twenty_muon_updates_match_the_f64_reference() {
    twenty_updates(0.0);
}

#[test]
fn twenty_normuon_updates_match_the_f64_reference() {
    twenty_updates(0.95);
}

fn twenty_updates(beta2: f64) {
    // A fused query/key/value weight: 40 inputs, three 40-column blocks.
    for (rows, cols, blocks) in [(40, 120, 3), (40, 160, 1), (160, 40, 1)] {
        let n = rows * cols;
        let p0: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * 0.05).collect();
        let (mut p, mut buf) = (p0.clone(), vec![0.0f32; n]);
        let mut rp: Vec<f64> = p0.iter().map(|&x| f64::from(x)).collect();
        let mut rbuf = vec![0.0f64; n];
        let count = if beta2 > 0.0 {
            neurons(rows, cols, blocks)
        } else {
            0
        };
        let (mut v, mut rv) = (vec![0.0f32; count], vec![0.0f64; count]);
        for t in 0..20 {
            let g = values(n, t + 1);
            let momentum = 0.85 + 0.1 * (t as f64 / 10.0).min(1.0);
            let (lr, wd) = (0.02 * (1.0 - t as f64 / 40.0), 0.1);
            // The kernel gets twice the gradient and a clipping factor of 0.5.
            let g2: Vec<f32> = g.iter().map(|x| x * 2.0).collect();
            let s = MuonScalars {
                grad_scale: 0.5,
                momentum: momentum as f32,
                lr: lr as f32,
                weight_decay: wd as f32,
                bf16_products: false,
                beta2: beta2 as f32,
            };
            muon_update(&s, &mut p, &g2, &mut buf, &mut v, rows, cols, blocks);
            let g64: Vec<f64> = g.iter().map(|&x| f64::from(x)).collect();
            muon_reference(
                &mut rp,
                &mut rbuf,
                &g64,
                (rows, cols, blocks),
                (lr, momentum, wd),
                (beta2 > 0.0).then_some((&mut rv, beta2)),
            );
        }
        let err = worst(&p, &rp);
        assert!(
            err < 1e-5,
            "{rows}×{cols}/{blocks}: worst weight error {err}"
        );
        let moved = worst(&p, &p0.iter().map(|&x| f64::from(x)).collect::<Vec<_>>());
        assert!(moved > 0.01, "the weights barely moved: {moved}");
    }
}
