//! Times one f32 matrix product through the `gemm` crate: median of 10 runs, a fresh output
//! buffer each time (as Burn allocates one per product). Arguments: M K N THREADS LHS_T RHS_T,
//! where LHS_T = 1 reads the left matrix transposed (the weight-gradient layout).
use std::time::Instant;

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap_or_else(|_| panic!("not a number: {a}")))
        .collect();
    let [m, k, n, threads, lt, rt] = args[..] else {
        panic!("usage: gemm_ab M K N THREADS LHS_T RHS_T");
    };
    let a = vec![1.0f32; m * k];
    let b = vec![0.5f32; k * n];
    let par = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    let (a_cs, a_rs) = if lt == 1 { (m as isize, 1) } else { (1, k as isize) };
    let (b_cs, b_rs) = if rt == 1 { (k as isize, 1) } else { (1, n as isize) };
    let mut times = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let mut c = vec![0.0f32; m * n];
        // SAFETY: the pointers and strides describe buffers of exactly m·k, k·n and m·n floats.
        unsafe {
            gemm::gemm(m, n, k, c.as_mut_ptr(), 1, n as isize, false, a.as_ptr(), a_cs, a_rs,
                b.as_ptr(), b_cs, b_rs, 0.0, 1.0, false, false, false, par);
        }
        std::hint::black_box(&c);
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let med = times[times.len() / 2];
    println!("{m}x{k}x{n} threads {threads} lhsT {lt} rhsT {rt}: median {:.2} ms, {:.1} GFLOP/s",
        med * 1e3, 2.0 * (m * k * n) as f64 / med / 1e9);
}
