use ember_kernels::{
    MuonScalars, NS_COEFFICIENTS, Orthogonalizer, muon_update, neurons, orthogonalize,
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

/// Polar Express's five steps as Amsel et al. 2025 give them (to all the digits modded-nanogpt
/// and nanochat print).
const POLAR_EXPRESS_F64: [(f64, f64, f64); 5] = [
    (8.156554524902461, -22.48329292557795, 15.878769915207462),
    (4.042929935166739, -2.808917465908714, 0.5000178451051316),
    (3.8916678022926607, -2.772484153217685, 0.5060648178503393),
    (3.285753657755655, -2.3681294933425376, 0.46449024233003106),
    (2.3465413258596377, -1.7097828382687081, 0.42323551169305323),
];

/// PyTorch's `_zeropower_via_newtonschulz` in float64 on a row-major `rows × cols` matrix
/// (with Polar Express: its coefficients, step by step, and the norm taken 2% larger).
fn ns_reference(x: &[f64], rows: usize, cols: usize, method: Orthogonalizer) -> Vec<f64> {
    let tall = rows > cols;
    let (m, n) = if tall { (cols, rows) } else { (rows, cols) };
    let mut w = if tall {
        transpose(x, rows, cols)
    } else {
        x.to_vec()
    };
    let margin = match method {
        Orthogonalizer::Quintic => 1.0,
        Orthogonalizer::PolarExpress => 1.02,
    };
    let norm = (w.iter().map(|v| v * v).sum::<f64>().sqrt() * margin).max(1e-7);
    w.iter_mut().for_each(|v| *v /= norm);
    let steps: Vec<(f64, f64, f64)> = match method {
        Orthogonalizer::Quintic => {
            let (a, b, c) = NS_COEFFICIENTS;
            vec![(f64::from(a), f64::from(b), f64::from(c)); 5]
        }
        Orthogonalizer::PolarExpress => POLAR_EXPRESS_F64.to_vec(),
    };
    for (a, b, c) in steps {
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
        orthogonalize(&mut got, rows, cols, Orthogonalizer::Quintic, false);
        let want = ns_reference(
            &x.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
            rows,
            cols,
            Orthogonalizer::Quintic,
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
        orthogonalize(&mut got, rows, cols, Orthogonalizer::Quintic, true);
        let want = ns_reference(
            &x.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
            rows,
            cols,
            Orthogonalizer::Quintic,
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

/// The kernel's Polar Express coefficients are the paper's (to f32's precision).
#[test]
fn polar_express_coefficients_are_the_papers() {
    for (got, want) in ember_kernels::POLAR_EXPRESS_COEFFICIENTS
        .iter()
        .zip(POLAR_EXPRESS_F64)
    {
        for (g, w) in [(got.0, want.0), (got.1, want.1), (got.2, want.2)] {
            assert!(
                ((f64::from(g) - w) / w).abs() < 1e-7,
                "coefficient {g} against the paper's {w}"
            );
        }
    }
}

/// Root mean square of `σᵢ² − 1` over the singular values of the row-major `rows × cols` `x`:
/// `‖X·Xᵀ − I‖_F / √rows` (rows ≤ cols), exactly, as `X·Xᵀ − I` is symmetric with eigenvalues
/// `σᵢ² − 1`.
fn distance_from_orthogonal(x: &[f32], rows: usize, cols: usize) -> f64 {
    let w: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    let gram = mm(&w, &transpose(&w, rows, cols), rows, cols, rows);
    let sq: f64 = (0..rows * rows)
        .map(|k| gram[k] - if k / rows == k % rows { 1.0 } else { 0.0 })
        .map(|d| d * d)
        .sum();
    (sq / rows as f64).sqrt()
}

/// Polar Express follows the f64 reference wide and tall, in f32 and with bfloat16 operands,
/// and leaves the singular values much nearer 1 than the quintic does (what it is for): on a
/// 64 × 160 matrix of uniform draws with rows scaled over a decade, rms(σ² − 1) measured 0.168
/// against the quintic's 0.353.
#[test]
fn polar_express_matches_the_reference_and_orthogonalises_more_closely() {
    for (rows, cols) in [(70, 150), (150, 70), (48, 48)] {
        let x = values(rows * cols, rows);
        let want = ns_reference(
            &x.iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
            rows,
            cols,
            Orthogonalizer::PolarExpress,
        );
        let mut got = x.clone();
        orthogonalize(&mut got, rows, cols, Orthogonalizer::PolarExpress, false);
        let err = worst(&got, &want);
        assert!(err < 2e-5, "{rows}×{cols}: worst error {err}");
        let mut got = x.clone();
        orthogonalize(&mut got, rows, cols, Orthogonalizer::PolarExpress, true);
        let scale = want.iter().map(|v| v.abs()).fold(0.0, f64::max);
        let err = worst(&got, &want) / scale;
        assert!(
            err < 0.07,
            "{rows}×{cols}, bf16: worst error {err} of the largest"
        );
    }
    // Rows scaled from 1 down to 0.1: singular values over a decade.
    // (`values` repeats with period 2,001 along the storage, so its matrices are nearly
    // singular; these are uniform draws from a fixed xorshift.)
    let (rows, cols) = (64, 160);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut x: Vec<f32> = (0..rows * cols)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        })
        .collect();
    for (i, row) in x.chunks_exact_mut(cols).enumerate() {
        let s = 0.1f32.powf(i as f32 / (rows - 1) as f32);
        row.iter_mut().for_each(|v| *v *= s);
    }
    let (mut pe, mut q) = (x.clone(), x);
    orthogonalize(&mut pe, rows, cols, Orthogonalizer::PolarExpress, false);
    orthogonalize(&mut q, rows, cols, Orthogonalizer::Quintic, false);
    let (dp, dq) = (
        distance_from_orthogonal(&pe, rows, cols),
        distance_from_orthogonal(&q, rows, cols),
    );
    eprintln!("rms(σ² − 1): Polar Express {dp}, quintic {dq}");
    assert!(
        dp < 0.6 * dq,
        "Polar Express {dp} against the quintic's {dq}"
    );
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
        pool.install(|| orthogonalize(&mut y, rows, cols, Orthogonalizer::Quintic, false));
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
    method: Orthogonalizer,
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
        let mut o = ns_reference(&block, rows, width, method);
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
    twenty_updates(0.0, Orthogonalizer::Quintic);
}

#[test]
fn twenty_normuon_updates_match_the_f64_reference() {
    twenty_updates(0.95, Orthogonalizer::Quintic);
}

#[test]
fn twenty_polar_express_updates_match_the_f64_reference() {
    twenty_updates(0.0, Orthogonalizer::PolarExpress);
    twenty_updates(0.95, Orthogonalizer::PolarExpress);
}

fn twenty_updates(beta2: f64, method: Orthogonalizer) {
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
                orthogonalizer: method,
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
                method,
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
