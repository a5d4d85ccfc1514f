use ember_kernels::{
    Operand, Tile, bf16_available, from_bf16, matmul_bf16, matmul_bf16_on, matmul_bf16_portable,
    to_bf16,
};
use proptest::prelude::*;

fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104_729) % 2001) as f32 - 1000.0) * 1e-3)
        .collect()
}

fn round(x: f32) -> f64 {
    f64::from(from_bf16(to_bf16(x)))
}

/// Element `(i, j)` of an operand as used.
fn at(op: &Operand, i: usize, j: usize) -> f32 {
    if op.transposed {
        op.data[j * op.cols + i]
    } else {
        op.data[i * op.cols + j]
    }
}

/// Checks `out` against the float64 product of the bfloat16-rounded operands (plus `base`).
fn check(out: &[f32], base: &[f32], lhs: Operand, rhs: Operand, m: usize, k: usize, n: usize) {
    for i in 0..m {
        for j in 0..n {
            let (mut want, mut size) = (f64::from(base[i * n + j]), 0.0f64);
            for p in 0..k {
                let t = round(at(&lhs, i, p)) * round(at(&rhs, p, j));
                want += t;
                size += t.abs();
            }
            let got = f64::from(out[i * n + j]);
            let tol = 1e-6 * (k as f64 + 1.0) * (size + f64::from(base[i * n + j]).abs()) + 1e-30;
            assert!(
                (got - want).abs() <= tol,
                "[{i},{j}] of {m}×{k}×{n}: {got} vs {want}"
            );
        }
    }
}

/// Every tile this CPU runs, saying which are skipped.
fn tiles() -> Vec<Tile> {
    let tiles = Tile::available();
    for t in [Tile::Avx512, Tile::Amx] {
        if !tiles.contains(&t) {
            eprintln!("skipped: this CPU does not run the {t:?} tile");
        }
    }
    tiles
}

#[test]
fn products_match_a_float64_reference_of_the_rounded_operands() {
    let tiles = tiles();
    for &(m, k, n) in &[
        (1, 1, 1),
        (4, 0, 3),
        (13, 7, 33),
        (25, 64, 40),
        (50, 129, 70),
        (3, 300, 5),
        // Row tasks of several panels (m > 16 · MR), the last one partial.
        (250, 33, 45),
        (400, 9, 17),
        // AMX: tasks of several 32-row panels, depth over several 32-deep blocks, the last
        // block, panel and column panel partial.
        (1100, 77, 50),
        // AMX: a depth over 384 (13 blocks of 32) runs in chunks of 256.
        (70, 900, 40),
    ] {
        let (a, b) = (values(m * k, 1), values(k * n, 2));
        let (at_, bt) = (transpose(&a, m, k), transpose(&b, k, n));
        let base = values(m * n, 3);
        let cases = [
            (Operand::new(&a, m, k), Operand::new(&b, k, n)),
            (Operand::new(&at_, k, m).t(), Operand::new(&b, k, n)),
            (Operand::new(&a, m, k), Operand::new(&bt, n, k).t()),
            (Operand::new(&at_, k, m).t(), Operand::new(&bt, n, k).t()),
        ];
        for (lhs, rhs) in cases {
            for &tile in &tiles {
                let mut out = vec![f32::NAN; m * n];
                matmul_bf16_on(tile, &mut out, lhs, rhs, false);
                check(&out, &vec![0.0; m * n], lhs, rhs, m, k, n);
                let mut acc = base.clone();
                matmul_bf16_on(tile, &mut acc, lhs, rhs, true);
                check(&acc, &base, lhs, rhs, m, k, n);
            }
            let (mut best, mut want) = (vec![0.0; m * n], vec![0.0; m * n]);
            matmul_bf16(&mut best, lhs, rhs, false);
            matmul_bf16_on(Tile::best(), &mut want, lhs, rhs, false);
            assert_eq!(best, want, "matmul_bf16 is the best tile's product");
        }
    }
}

fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut t = vec![0.0; x.len()];
    for i in 0..rows {
        for j in 0..cols {
            t[j * rows + i] = x[i * cols + j];
        }
    }
    t
}

#[test]
fn results_do_not_depend_on_the_number_of_threads() {
    let (m, k, n) = (700, 600, 70);
    let (a, b) = (values(m * k, 4), values(k * n, 5));
    for tile in tiles() {
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut out = vec![0.0f32; m * n];
            pool.install(|| {
                matmul_bf16_on(
                    tile,
                    &mut out,
                    Operand::new(&a, m, k),
                    Operand::new(&b, k, n),
                    false,
                )
            });
            out.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(3), "{tile:?}");
    }
}

/// Packing buffers are kept from one product to the next on each thread: a small product
/// with partial panels and a depth that is not a whole block, after a large one that filled
/// the buffers with other values, still reads zeros in its padding (on one thread, so the
/// second product gets the first one's buffers).
#[test]
fn reused_packing_buffers_are_padded_with_zeros() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    for tile in tiles() {
        pool.install(|| {
            let (m, k, n) = (300, 500, 200);
            let (a, b) = (values(m * k, 6), values(k * n, 7));
            let big: Vec<f32> = a.iter().map(|v| v * 1e6 + 3.0).collect();
            let mut out = vec![0.0; m * n];
            let (lhs, rhs) = (Operand::new(&big, m, k), Operand::new(&b, k, n));
            matmul_bf16_on(tile, &mut out, lhs, rhs, false);
            let bt = transpose(&b, k, n);
            let rhs_t = Operand::new(&bt, n, k).t();
            matmul_bf16_on(tile, &mut out, Operand::new(&big, m, k), rhs_t, false);
            for &(m, k, n) in &[(13, 7, 33), (45, 41, 19), (33, 35, 3)] {
                let (a, b) = (values(m * k, 8), values(k * n, 9));
                let (at_, bt) = (transpose(&a, m, k), transpose(&b, k, n));
                for (lhs, rhs) in [
                    (Operand::new(&a, m, k), Operand::new(&b, k, n)),
                    (Operand::new(&at_, k, m).t(), Operand::new(&bt, n, k).t()),
                ] {
                    let mut out = vec![f32::NAN; m * n];
                    matmul_bf16_on(tile, &mut out, lhs, rhs, false);
                    check(&out, &vec![0.0; m * n], lhs, rhs, m, k, n);
                }
            }
        });
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The AVX-512 BF16 tile gives the portable tile's bits, wide exponent ranges included
    /// (subnormal and overflowing sums). Skipped, saying so, on a CPU without the instructions.
    #[test]
    fn the_hardware_tile_gives_the_portable_bits(
        m in 1usize..30, k in 1usize..70, n in 1usize..70,
        scale_a in -130i32..40, scale_b in -30i32..40, seed in 0usize..1000,
        lhs_t in any::<bool>(), rhs_t in any::<bool>(),
    ) {
        if !bf16_available() {
            eprintln!("skipped: this CPU has no AVX-512 BF16");
            return Ok(());
        }
        let matmul_bf16 = |d: &mut [f32], l, r, acc| matmul_bf16_on(Tile::Avx512, d, l, r, acc);
        let a: Vec<f32> = values(m * k, seed).iter().map(|v| v * 2f32.powi(scale_a)).collect();
        let b: Vec<f32> = values(k * n, seed + 1).iter().map(|v| v * 2f32.powi(scale_b)).collect();
        // Stored transposed or not: the packing has a path for each.
        let (at_, bt) = (transpose(&a, m, k), transpose(&b, k, n));
        let lhs = if lhs_t { Operand::new(&at_, k, m).t() } else { Operand::new(&a, m, k) };
        let rhs = if rhs_t { Operand::new(&bt, n, k).t() } else { Operand::new(&b, k, n) };
        let (mut hw, mut sw) = (values(m * n, seed + 2), values(m * n, seed + 2));
        matmul_bf16(&mut hw, lhs, rhs, true);
        matmul_bf16_portable(&mut sw, lhs, rhs, true);
        let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(&hw), bits(&sw));
    }
}
