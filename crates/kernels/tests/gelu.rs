use ember_kernels::{erf, gelu_backward, gelu_forward};

/// erf in float64 by its Taylor series (accurate to ~1e-11 on |x| ≤ 4; useless beyond, so the
/// tests compare only there and check the tails separately).
fn erf64(x: f64) -> f64 {
    let (mut term, mut sum) = (x, x);
    for n in 1..200 {
        term *= -x * x / n as f64;
        sum += term / (2 * n + 1) as f64;
    }
    sum * 2.0 / std::f64::consts::PI.sqrt()
}

fn gelu64(x: f64) -> f64 {
    0.5 * x * (1.0 + erf64(x / std::f64::consts::SQRT_2))
}

#[test]
fn erf_matches_f64() {
    let mut x = -4.0f64;
    while x <= 4.0 {
        let e = (erf(x as f32) as f64 - erf64(x)).abs();
        // Abramowitz & Stegun 7.1.26 is within 1.5e-7; float32 rounding adds the rest.
        assert!(e < 5e-7, "erf({x}) off by {e}");
        x += 0.0031;
    }
    assert!((erf(9.0) - 1.0).abs() < 2e-7 && (erf(-9.0) + 1.0).abs() < 2e-7);
    assert_eq!(erf(0.0), 0.0);
    assert!(erf(f32::NAN).is_nan());
}

#[test]
fn gelu_forward_matches_f64() {
    // |x| ≤ 5.6 keeps x/√2 inside the reference's range.
    let x: Vec<f32> = (0..40_001)
        .map(|i| (i as f32 - 20_000.0) * 0.00028)
        .collect();
    let mut y = vec![0.0; x.len()];
    gelu_forward(&x, &mut y);
    for (&x, &y) in x.iter().zip(&y) {
        let want = gelu64(x as f64);
        let tol = 3e-7 * (1.0 + want.abs()) + 2.5e-7 * (x as f64).abs();
        assert!(
            (y as f64 - want).abs() < tol,
            "gelu({x}) = {y}, want {want}"
        );
    }
    let mut tails = [0.0f32; 2];
    gelu_forward(&[-9.0, 9.0], &mut tails);
    assert!(tails[0].abs() < 1e-12 && tails[1] == 9.0, "{tails:?}");
}

#[test]
fn gelu_backward_matches_f64_derivative() {
    let x: Vec<f32> = (0..4001).map(|i| (i as f32 - 2000.0) * 0.0028).collect();
    let g: Vec<f32> = (0..4001).map(|i| 1.0 + (i % 3) as f32).collect();
    let mut d = vec![0.0; x.len()];
    gelu_backward(&x, &g, &mut d);
    for ((&x, &g), &d) in x.iter().zip(&g).zip(&d) {
        // Φ(x) + x·φ(x), in float64 (finite differences of the series are too noisy at the tails).
        let x64 = x as f64;
        let pdf = (-0.5 * x64 * x64).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let want = g as f64 * (0.5 * (1.0 + erf64(x64 / std::f64::consts::SQRT_2)) + x64 * pdf);
        assert!(
            (d as f64 - want).abs() < 1e-6 * (1.0 + want.abs()),
            "gelu'({x}) = {d}, want {want}"
        );
    }
}
