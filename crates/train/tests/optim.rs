//! The fused AdamW update (CPU backend) against the same update composed from Burn's tensor
//! operations, which every other device runs.

use burn::prelude::*;
use ember_kernels::AdamWScalars;
use ember_train::fused_adamw::{adamw_step, composed_adamw_step};

fn scalars(t: i32, grad_scale: f64, weight_decay: f64) -> AdamWScalars {
    AdamWScalars::for_step(t, 2e-3, [0.9, 0.99], 1e-8, weight_decay, grad_scale)
}

fn bits(t: &Tensor<1>) -> Vec<u32> {
    t.to_data()
        .try_to_vec::<f32>()
        .unwrap()
        .iter()
        .map(|x| x.to_bits())
        .collect()
}

#[test]
fn fused_adamw_matches_composed() {
    let device = Device::flex();
    assert!(ember_model::ops::enabled());
    let n = 50_000;
    let vals = |k: usize| -> Tensor<1> {
        let v: Vec<f32> = (0..n)
            .map(|i| (((i * 7919 + k * 104_729) % 2001) as f32 - 1000.0) * 1e-3)
            .collect();
        Tensor::from_data(TensorData::new(v, [n]), &device)
    };
    let p0 = vals(0);
    let (mut fp, mut cp) = (p0.clone(), p0.clone());
    let (mut fm, mut cm) = (None, None);
    for t in 1..=5 {
        // Clipping on odd steps; decay on all but the third.
        let s = scalars(
            t,
            if t % 2 == 1 { 0.25 } else { 1.0 },
            if t == 3 { 1.0 } else { 0.9998 },
        );
        let g = vals(t as usize);
        let (p, m, v) = adamw_step(fp, g.clone(), fm, s);
        let (q, m2, v2) = composed_adamw_step(cp, g, cm, s);
        assert_eq!(bits(&p), bits(&q), "param after update {t}");
        assert_eq!(bits(&m), bits(&m2), "first moment after update {t}");
        assert_eq!(bits(&v), bits(&v2), "second moment after update {t}");
        (fp, cp, fm, cm) = (p, q, Some((m, v)), Some((m2, v2)));
    }
    // The inputs the caller still holds are not changed by the in-place kernel.
    let before = bits(&fp);
    let kept = fp.clone();
    let _ = adamw_step(fp, vals(9), fm, scalars(6, 1.0, 0.1));
    assert_eq!(bits(&kept), before);
}

#[test]
fn fused_muon_matches_composed_and_its_parameter_groups() {
    use ember_kernels::MuonScalars;
    use ember_train::muon::{blocks, composed_muon_step, muon_step};
    let device = Device::flex();
    // A fused query/key/value weight, [d_in, 3·d_in] as Burn stores it, and an MLP matrix.
    for (rows, cols, b) in [(24, 72, 3), (24, 96, 1), (96, 24, 1)] {
        let n = rows * cols;
        let vals = |k: usize| -> Tensor<2> {
            let v: Vec<f32> = (0..n)
                .map(|i| (((i * 7919 + k * 104_729) % 2001) as f32 - 1000.0) * 1e-3)
                .collect();
            Tensor::from_data(TensorData::new(v, [rows, cols]), &device)
        };
        let (mut fp, mut cp) = (vals(0).mul_scalar(0.05), vals(0).mul_scalar(0.05));
        let (mut fb, mut cb) = (None, None);
        for t in 1..=5 {
            let s = MuonScalars {
                grad_scale: if t % 2 == 1 { 0.25 } else { 1.0 },
                momentum: 0.85 + 0.02 * t as f32,
                lr: 0.02,
                weight_decay: 0.01,
            };
            let g = vals(t);
            let (p, buf) = muon_step(fp, g.clone(), fb, s, b);
            let (q, buf2) = composed_muon_step(cp, g, cb, s, b);
            let diff = (p.clone() - q.clone()).abs().max().into_scalar::<f32>();
            assert!(
                diff < 1e-5,
                "{rows}×{cols}/{b}: update {t} differs by {diff}"
            );
            let bdiff = (buf.clone() - buf2.clone())
                .abs()
                .max()
                .into_scalar::<f32>();
            assert!(bdiff < 1e-6, "momentum after update {t} differs by {bdiff}");
            (fp, cp, fb, cb) = (p, q, Some(buf), Some(buf2));
        }
    }
    // Which parameters Muon takes: the blocks' matrices, Q/K/V as three.
    assert_eq!(blocks("h.0.attn.c_attn.weight", 2), Some(3));
    assert_eq!(blocks("h.3.mlp.c_proj.weight", 2), Some(1));
    assert_eq!(blocks("h.0.mlp.c_fc.bias", 1), None);
    assert_eq!(blocks("h.0.ln_1.gamma", 1), None);
    assert_eq!(blocks("wte.weight", 2), None);
    assert_eq!(blocks("lm_head.weight", 2), None);
}
