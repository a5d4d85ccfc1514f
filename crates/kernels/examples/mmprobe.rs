#![allow(unsafe_code)]
use std::time::Instant;
fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let [m, k, n, threads, lt, rt, fresh] = args[..] else {
        panic!()
    };
    let a: Vec<f32> = (0..m * k).map(|i| (i % 17) as f32 * 0.1).collect();
    let b: Vec<f32> = (0..k * n).map(|i| (i % 13) as f32 * 0.1).collect();
    let par = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    let (a_cs, a_rs) = if lt == 1 {
        (m as isize, 1)
    } else {
        (1, k as isize)
    };
    let (b_cs, b_rs) = if rt == 1 {
        (k as isize, 1)
    } else {
        (1, n as isize)
    };
    let mut times = Vec::new();
    let mut keep = vec![0.0f32; m * n];
    for _ in 0..50 {
        let t = Instant::now();
        let mut c = if fresh == 1 {
            Vec::with_capacity(m * n)
        } else {
            std::mem::take(&mut keep)
        };
        unsafe {
            if fresh == 1 {
                c.set_len(m * n);
            }
            gemm::gemm(
                m,
                n,
                k,
                c.as_mut_ptr(),
                1,
                n as isize,
                false,
                a.as_ptr(),
                a_cs,
                a_rs,
                b.as_ptr(),
                b_cs,
                b_rs,
                0.0,
                1.0,
                false,
                false,
                false,
                par,
            );
        }
        std::hint::black_box(&c);
        times.push(t.elapsed().as_secs_f64());
        keep = c;
    }
    times.sort_by(f64::total_cmp);
    let med = times[times.len() / 2];
    println!(
        "{m}x{k}x{n} threads {threads} lhsT {lt} rhsT {rt} fresh {fresh}: median {:.3} ms, {:.1} GFLOP/s",
        med * 1e3,
        2.0 * (m * k * n) as f64 / med / 1e9
    );
}
