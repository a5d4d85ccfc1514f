use ember_kernels::{MAX_ROWS, rows_times, rows_times_t};

fn data(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104729) % 1013) as f32 / 1013.0 - 0.5) * 3.0)
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn rows_times_is_the_plain_loop_bit_for_bit() {
    // Widths that are and are not multiples of the tile and of the per-task block.
    for (m, k, n) in [
        (1, 256, 768),
        (3, 64, 100),
        (8, 256, 1024),
        (5, 7, 13),
        (8, 33, 300),
        (2, 40, 70),
        (6, 256, 256),
        (7, 17, 40),
    ] {
        let (x, w) = (data(m * k, 1), data(k * n, 2));
        let mut want = vec![0.0f32; m * n];
        for r in 0..m {
            for c in 0..n {
                let mut s = 0.0f32;
                for kk in 0..k {
                    s = x[r * k + kk].mul_add(w[kk * n + c], s);
                }
                want[r * n + c] = s;
            }
        }
        let mut got = vec![f32::NAN; m * n];
        rows_times(&x, m, &w, k, n, &mut got);
        assert_eq!(bits(&got), bits(&want), "{m}×{k}×{n}");
    }
}

#[test]
fn rows_times_t_matches_f64_reference() {
    for (m, k, n) in [(1, 256, 4096), (8, 256, 300), (4, 13, 9)] {
        let (x, w) = (data(m * k, 3), data(n * k, 4));
        let mut got = vec![f32::NAN; m * n];
        rows_times_t(&x, m, &w, k, n, &mut got);
        for r in 0..m {
            for c in 0..n {
                let want: f64 = (0..k)
                    .map(|i| x[r * k + i] as f64 * w[c * k + i] as f64)
                    .sum();
                let a = got[r * n + c] as f64;
                assert!(
                    (a - want).abs() < 1e-4 * (1.0 + want.abs()),
                    "{m}×{k}×{n} [{r},{c}]: {a} vs {want}"
                );
            }
        }
    }
}

#[test]
fn a_row_gets_the_same_numbers_alone_or_with_others_on_any_thread_count() {
    // Widths and depths that are and are not multiples of the tiles, groups and lanes.
    for (k, n) in [(96, 700), (37, 130), (256, 256)] {
        let x = data(MAX_ROWS * k, 5);
        let (w, wt) = (data(k * n, 6), data(n * k, 7));
        type Kernel = fn(&[f32], usize, &[f32], usize, usize, &mut [f32]);
        for (f, w) in [(rows_times as Kernel, &w), (rows_times_t as Kernel, &wt)] {
            let on = |threads: usize, m: usize| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| {
                    let mut out = vec![0.0f32; m * n];
                    f(&x[..m * k], m, w, k, n, &mut out);
                    bits(&out)
                })
            };
            let all = on(1, MAX_ROWS);
            assert_eq!(all, on(3, MAX_ROWS));
            for m in 1..MAX_ROWS {
                assert_eq!(on(2, m), all[..m * n], "first {m} rows, {k}×{n}");
            }
        }
    }
}

#[test]
fn more_rows_than_the_kernel_takes_is_refused() {
    let r = std::panic::catch_unwind(|| {
        let mut out = vec![0.0f32; 9];
        rows_times(&[0.0; 9], 9, &[0.0; 1], 1, 1, &mut out);
    });
    assert!(r.is_err());
}

/// What the few-row products of a decoding step cost, for 1, 2, 4 and 8 rows: one block of a
/// `gutenberg-small`-shaped model (256 wide: the packed attention projection, its output
/// projection, the MLP's two layers) and its tied 4,096-id head. Not a test of speed; it prints
/// the best of 30 × 50 calls for benches/RESULTS.md ("Serving"):
/// `cargo test --workspace rows_times_cost -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement; run with --ignored --nocapture"]
fn rows_times_cost() {
    let best = |f: &mut dyn FnMut()| {
        (0..30)
            .map(|_| {
                let t = std::time::Instant::now();
                for _ in 0..50 {
                    f();
                }
                t.elapsed().as_secs_f64() * 1e6 / 50.0
            })
            .fold(f64::INFINITY, f64::min)
    };
    for m in [1, 2, 4, 8] {
        let mut block = 0.0;
        for (k, n) in [(256, 768), (256, 256), (256, 1024), (1024, 256)] {
            let (x, w) = (data(m * k, 1), data(k * n, 2));
            let mut out = vec![0.0f32; m * n];
            block += best(&mut || rows_times(&x, m, &w, k, n, &mut out));
        }
        let (k, n) = (256, 4096);
        let (x, w) = (data(m * k, 3), data(n * k, 4));
        let mut out = vec![0.0f32; m * n];
        let head = best(&mut || rows_times_t(&x, m, &w, k, n, &mut out));
        println!("{m} rows: block {block:.1} µs, head {head:.1} µs");
    }
    // Eight blocks 512 wide: 100 MB of weights, more than the last-level cache holds, so each
    // step's weights come from memory, as in a model of 27M parameters.
    let shapes = [(512, 1536), (512, 512), (512, 2048), (2048, 512)];
    let ws: Vec<Vec<f32>> = (0..8 * shapes.len())
        .map(|i| data(512 * 2048, i + 5))
        .collect();
    for m in [1, 2, 4, 8] {
        let x = data(m * 2048, 1);
        let mut out = vec![0.0f32; m * 2048];
        let step = best(&mut || {
            for (i, w) in ws.iter().enumerate() {
                let (k, n) = shapes[i % shapes.len()];
                rows_times(&x[..m * k], m, &w[..k * n], k, n, &mut out[..m * n]);
            }
        });
        println!("{m} rows: eight 512-wide blocks {:.0} µs", step);
    }
}
