use ember_kernels::{exp, exp_slice};

fn ulps(a: f32, b: f32) -> u32 {
    (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
}

#[test]
fn exp_matches_f64() {
    let mut worst = 0;
    let mut x = -87.0f32;
    while x < 88.0 {
        let want = (x as f64).exp() as f32;
        worst = worst.max(ulps(exp(x), want));
        x += 0.001_37;
    }
    assert!(worst <= 2, "worst error {worst} ulp");
}

#[test]
fn exp_edges() {
    assert_eq!(exp(0.0), 1.0);
    assert!(exp(f32::NAN).is_nan());
    assert!(exp(f32::NEG_INFINITY) < 1.3e-38);
    assert!(exp(-1000.0) >= 0.0);
    assert!(exp(f32::INFINITY).is_finite());
}

#[test]
fn slice_equals_scalar() {
    let mut xs: Vec<f32> = (0..100).map(|i| i as f32 * 0.37 - 20.0).collect();
    let want: Vec<u32> = xs.iter().map(|&x| exp(x).to_bits()).collect();
    exp_slice(&mut xs);
    assert_eq!(xs.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), want);
}
