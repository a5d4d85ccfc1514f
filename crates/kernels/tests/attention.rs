use ember_kernels::{AttnShape, causal_attention_backward, causal_attention_forward};

/// float64 reference of one head: (out, dq, dk, dv) for upstream gradient `dy`; query `i`
/// sees the keys `seen(i)`.
#[allow(clippy::type_complexity, clippy::too_many_arguments)]
fn reference(
    t: usize,
    hd: usize,
    seen: &dyn Fn(usize) -> std::ops::RangeInclusive<usize>,
    q: &[f32],
    k: &[f32],
    v: &[f32],
    dy: &[f32],
    scale: f64,
) -> [Vec<f64>; 4] {
    let at = |x: &[f32], i: usize, j: usize| x[i * hd + j] as f64;
    let mut p = vec![0.0f64; t * t];
    for i in 0..t {
        let s: Vec<(usize, f64)> = seen(i)
            .map(|j| {
                (
                    j,
                    scale * (0..hd).map(|c| at(q, i, c) * at(k, j, c)).sum::<f64>(),
                )
            })
            .collect();
        let m = s.iter().map(|x| x.1).fold(f64::NEG_INFINITY, f64::max);
        let z: f64 = s.iter().map(|x| (x.1 - m).exp()).sum();
        for (j, x) in s {
            p[i * t + j] = (x - m).exp() / z;
        }
    }
    let mut out = vec![0.0; t * hd];
    let mut dv = vec![0.0; t * hd];
    let mut dq = vec![0.0; t * hd];
    let mut dk = vec![0.0; t * hd];
    for i in 0..t {
        for c in 0..hd {
            out[i * hd + c] = seen(i).map(|j| p[i * t + j] * at(v, j, c)).sum();
        }
        let dp = |j: usize| (0..hd).map(|c| at(dy, i, c) * at(v, j, c)).sum::<f64>();
        let dot: f64 = seen(i).map(|j| p[i * t + j] * dp(j)).sum();
        for j in seen(i) {
            let ds = p[i * t + j] * (dp(j) - dot) * scale;
            for c in 0..hd {
                dv[j * hd + c] += p[i * t + j] * at(dy, i, c);
                dq[i * hd + c] += ds * at(k, j, c);
                dk[j * hd + c] += ds * at(q, i, c);
            }
        }
    }
    [out, dq, dk, dv]
}

/// Forward then backward: (probs, [out, dq, dk, dv]).
fn run(shape: AttnShape, qkv: [&[f32]; 3], dy: &[f32], scale: f32) -> (Vec<f32>, [Vec<f32>; 4]) {
    let n = qkv[0].len();
    let mut probs = vec![f32::NAN; shape.heads * shape.seq * shape.seq];
    let mut out = vec![0.0; n];
    causal_attention_forward(shape, qkv, scale, &mut probs, &mut out);
    let (mut dq, mut dk, mut dv) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
    causal_attention_backward(shape, qkv, &probs, dy, scale, [&mut dq, &mut dk, &mut dv]);
    (probs, [out, dq, dk, dv])
}

fn data(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104729) % 1013) as f32 / 1013.0 - 0.5) * 3.0)
        .collect()
}

fn check(heads: usize, t: usize, hd: usize, bidirectional: usize) {
    check_with(heads, t, hd, bidirectional, &[]);
}

/// `starts`: `[rows, t]` document starts of packed rows (empty: one document per row).
fn check_with(heads: usize, t: usize, hd: usize, bidirectional: usize, starts: &[u32]) {
    let shape = AttnShape {
        heads,
        seq: t,
        head_dim: hd,
        bidirectional,
        starts,
    };
    let per_row = if starts.is_empty() {
        1
    } else {
        heads / (starts.len() / t)
    };
    let n = heads * t * hd;
    let (q, k, v, dy) = (data(n, 1), data(n, 2), data(n, 3), data(n, 4));
    let scale = 1.0 / (hd as f32).sqrt();
    let (probs, [out, dq, dk, dv]) = run(shape, [&q, &k, &v], &dy, scale);
    for h in 0..heads {
        let r = h * t * hd..(h + 1) * t * hd;
        let seen = |i: usize| {
            if h < bidirectional {
                0..=t - 1
            } else if starts.is_empty() {
                0..=i
            } else {
                starts[(h / per_row) * t + i] as usize..=i
            }
        };
        let want = reference(
            t,
            hd,
            &seen,
            &q[r.clone()],
            &k[r.clone()],
            &v[r.clone()],
            &dy[r.clone()],
            scale as f64,
        );
        for (name, got, want) in [
            ("out", &out, &want[0]),
            ("dq", &dq, &want[1]),
            ("dk", &dk, &want[2]),
            ("dv", &dv, &want[3]),
        ] {
            for (a, b) in got[r.clone()].iter().zip(want) {
                assert!(
                    (*a as f64 - b).abs() < 2e-5 * (1.0 + b.abs()),
                    "{name} head {h}: {a} vs {b} ({heads}×{t}×{hd})"
                );
            }
        }
        // Weights of keys a query does not see are exactly zero, each row sums to one.
        for i in 0..t {
            let row = &probs[(h * t + i) * t..(h * t + i + 1) * t];
            let keys = seen(i);
            let (lo, hi) = (*keys.start(), *keys.end() + 1);
            assert!(row[..lo].iter().chain(&row[hi..]).all(|&x| x == 0.0));
            assert!(row[lo..hi].iter().all(|&x| x > 0.0));
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
    }
}

#[test]
fn matches_f64_reference_across_block_boundaries() {
    check(3, 70, 5, 0); // 70 rows: one full block of 64 and a partial one
    check(2, 128, 16, 0);
    check(1, 1, 4, 0);
}

#[test]
fn leading_heads_attend_both_ways() {
    check(3, 70, 5, 2); // the first two heads see every key, the third is causal
    check(2, 128, 16, 2);
    check(1, 1, 4, 1);
}

#[test]
fn packed_rows_keep_each_query_inside_its_document() {
    // Two rows of 70 with two heads each: the first holds documents at 0, 5 and 66 (one
    // crossing the block boundary at 64), the second one document.
    let doc = |from: usize, to: usize| (from..to).map(move |_| from as u32);
    let mut starts: Vec<u32> = doc(0, 5).chain(doc(5, 66)).chain(doc(66, 70)).collect();
    starts.extend(doc(0, 70));
    check_with(4, 70, 5, 0, &starts);
    // One-token documents see only themselves.
    check_with(1, 3, 4, 0, &[0, 1, 2]);
}

#[test]
fn thread_count_does_not_change_results() {
    let shape = AttnShape {
        heads: 6,
        seq: 90,
        head_dim: 8,
        bidirectional: 2,
        starts: &[],
    };
    let n = 6 * 90 * 8;
    let (q, k, v, dy) = (data(n, 5), data(n, 6), data(n, 7), data(n, 8));
    let on = |threads| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        pool.install(|| {
            let (_, grads) = run(shape, [&q, &k, &v], &dy, 0.35);
            grads.map(|x| x.iter().map(|f| f.to_bits()).collect::<Vec<_>>())
        })
    };
    assert_eq!(on(1), on(3));
}
