use ember_kernels::{AdamWScalars, adamw_update};

/// PyTorch's `torch.optim.AdamW` update in float64 (decoupled decay, bias corrections).
struct Reference {
    p: Vec<f64>,
    m: Vec<f64>,
    v: Vec<f64>,
}

const LR: f64 = 3e-3;
const WD: f64 = 0.1;
const B1: f64 = 0.9;
const B2: f64 = 0.99;
const EPS: f64 = 1e-8;

impl Reference {
    fn step(&mut self, t: i32, g: &[f64]) {
        let (bc1, bc2) = (1.0 - B1.powi(t), 1.0 - B2.powi(t));
        for (((p, m), v), &g) in self.p.iter_mut().zip(&mut self.m).zip(&mut self.v).zip(g) {
            *m = B1 * *m + (1.0 - B1) * g;
            *v = B2 * *v + (1.0 - B2) * g * g;
            *p *= 1.0 - LR * WD;
            *p -= LR / bc1 * *m / (v.sqrt() / bc2.sqrt() + EPS);
        }
    }
}

fn scalars(t: i32, grad_scale: f32) -> AdamWScalars {
    AdamWScalars::for_step(t, LR, [B1, B2], EPS, WD, grad_scale as f64)
}

fn grad(n: usize, t: i32) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + t as usize * 104_729) % 2001) as f32 - 1000.0) * 1e-3)
        .collect()
}

#[test]
fn twenty_updates_match_the_f64_reference() {
    // Longer than one rayon chunk so the split is exercised.
    let n = 40_000;
    let p0: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin() * 0.02).collect();
    let (mut p, mut m, mut v) = (p0.clone(), vec![f32::NAN; n], vec![f32::NAN; n]);
    let mut r = Reference {
        p: p0.iter().map(|&x| x as f64).collect(),
        m: vec![0.0; n],
        v: vec![0.0; n],
    };
    for t in 1..=20 {
        let g = grad(n, t);
        // The kernel gets twice the gradient and a clipping factor of 0.5.
        let g2: Vec<f32> = g.iter().map(|x| x * 2.0).collect();
        adamw_update(&scalars(t, 0.5), &mut p, &g2, &mut m, &mut v);
        r.step(t, &g.iter().map(|&x| x as f64).collect::<Vec<_>>());
    }
    let worst = p
        .iter()
        .zip(&r.p)
        .map(|(&a, &b)| (a as f64 - b).abs())
        .fold(0.0, f64::max);
    // 20 steps of lr 3e-3 move a parameter by up to 0.06; float32 keeps that to ~1e-8.
    assert!(worst < 1e-6, "largest difference {worst}");
    assert!(m.iter().chain(&v).all(|x| x.is_finite()));
}

#[test]
fn the_first_update_ignores_stale_moments() {
    let n = 100;
    let g = grad(n, 1);
    let (mut p1, mut m1, mut v1) = (vec![0.5f32; n], vec![7.0f32; n], vec![f32::NAN; n]);
    let (mut p2, mut m2, mut v2) = (vec![0.5f32; n], vec![0.0f32; n], vec![0.0f32; n]);
    adamw_update(&scalars(1, 1.0), &mut p1, &g, &mut m1, &mut v1);
    let mut s = scalars(1, 1.0);
    s.first = false;
    adamw_update(&s, &mut p2, &g, &mut m2, &mut v2);
    assert_eq!((p1, m1, v1), (p2, m2, v2));
}

#[test]
#[should_panic(expected = "lengths differ")]
fn mismatched_lengths_panic_with_the_sizes() {
    let mut p = vec![0.0f32; 3];
    adamw_update(
        &scalars(1, 1.0),
        &mut p,
        &[0.0; 2],
        &mut [0.0; 3],
        &mut [0.0; 3],
    );
}
