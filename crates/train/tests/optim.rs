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
    use ember_train::muon::blocks;
    fused_matches_composed(0.0);
    // Which parameters Muon takes: the blocks' matrices, Q/K/V as three.
    assert_eq!(blocks("h.0.attn.c_attn.weight", 2), Some(3));
    assert_eq!(blocks("h.3.mlp.c_proj.weight", 2), Some(1));
    assert_eq!(blocks("h.0.mlp.c_fc.bias", 1), None);
    assert_eq!(blocks("h.0.ln_1.gamma", 1), None);
    assert_eq!(blocks("wte.weight", 2), None);
    assert_eq!(blocks("lm_head.weight", 2), None);
}

/// NorMuon (`muon_beta2 > 0`) on the CPU kernel and from Burn's operations (every other
/// device): the same weights, momentum and per-neuron second moments.
#[test]
fn fused_normuon_matches_composed() {
    fused_matches_composed(0.95);
}

/// Polar Express (`muon_ns = "polar-express"`), plain and with NorMuon: the CPU kernel and
/// Burn's operations agree.
#[test]
fn fused_polar_express_matches_composed() {
    fused_matches_composed_with(0.0, ember_kernels::Orthogonalizer::PolarExpress);
    fused_matches_composed_with(0.95, ember_kernels::Orthogonalizer::PolarExpress);
}

fn fused_matches_composed(beta2: f32) {
    fused_matches_composed_with(beta2, ember_kernels::Orthogonalizer::Quintic);
}

fn fused_matches_composed_with(beta2: f32, orthogonalizer: ember_kernels::Orthogonalizer) {
    use ember_kernels::MuonScalars;
    use ember_train::muon::{composed_muon_step, muon_step};
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
                bf16_products: false,
                beta2,
                orthogonalizer,
            };
            let g = vals(t);
            let (p, fs) = muon_step(fp, g.clone(), fb, s, b);
            let (q, cs) = composed_muon_step(cp, g, cb, s, b);
            let diff = (p.clone() - q.clone()).abs().max().into_scalar::<f32>();
            assert!(
                diff < 1e-5,
                "{rows}×{cols}/{b}: update {t} differs by {diff}"
            );
            let bdiff = (fs.0.clone() - cs.0.clone())
                .abs()
                .max()
                .into_scalar::<f32>();
            assert!(bdiff < 1e-6, "momentum after update {t} differs by {bdiff}");
            let want = if beta2 > 0.0 {
                ember_kernels::neurons(rows, cols, b)
            } else {
                0
            };
            let dims = |v: &Option<Tensor<1>>| v.as_ref().map(|v| v.dims());
            let want_dims = (want > 0).then_some([want]);
            assert_eq!((dims(&fs.1), dims(&cs.1)), (want_dims, want_dims));
            if let (Some(fv), Some(cv)) = (fs.1.clone(), cs.1.clone()) {
                let scale = fv.clone().abs().max().into_scalar::<f32>();
                let vdiff = (fv - cv).abs().max().into_scalar::<f32>();
                assert!(
                    scale > 0.0 && vdiff <= 1e-5 * scale,
                    "second moments after update {t} differ by {vdiff} (largest {scale})"
                );
            }
            (fp, cp, fb, cb) = (p, q, Some(fs), Some(cs));
        }
    }
}

/// `embedding_lr`, `head_lr`, `value_embed_lr` and `scalar_lr`: AdamW's update of the
/// embeddings, the value embeddings, an untied head and the residual scalars scales with their
/// own rate (step 1: the update is the rate times the gradient's sign, decay included; the
/// scalars on the residual stream move a hundredth as far as those on the input), and every
/// other parameter's update is unchanged, bit for bit. Embeddings that are only looked up do not decay: the rows of ids the batch never saw
/// stay as they were.
#[test]
fn embedding_and_head_rates_scale_only_their_parameters() {
    use burn::module::{Module, ModuleVisitor, Param};
    use burn::optim::GradientsParams;
    use ember_model::GptConfig;
    use ember_train::optim::{AdamWConfig, Optimizer, RateScales};
    let device = Device::flex().autodiff();
    let mut cfg = GptConfig::new(64, 1, 2, 16, 8)
        .with_value_embeds(1)
        .with_residual_scalars(true);
    cfg.tie_embeddings = false;
    let model = ember_model::with_seed(&device, 3, || cfg.init(&device).drawn());
    let ids = |o: i64| Tensor::<1, Int>::arange(o..o + 8, &device).reshape([1, 8]);
    let grads = || {
        let (sum, _) = model.nll_sum(ids(0), ids(1), Tensor::ones([1, 8], &device));
        GradientsParams::from_grads(sum.backward(), &model)
    };
    let adamw = AdamWConfig {
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        weight_decay: 0.1,
    };
    struct Values(Vec<String>, Vec<(String, Vec<f32>)>);
    impl ModuleVisitor for Values {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.0.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.0.pop();
        }
        fn visit_float<const D: usize>(&mut self, p: &Param<Tensor<D>>) {
            let v = p.val().to_data().try_to_vec::<f32>().unwrap();
            self.1.push((self.0.join("."), v));
        }
    }
    let values = |m: &ember_model::Gpt| {
        let mut v = Values(vec![], vec![]);
        m.visit(&mut v);
        v.1
    };
    let before = values(&model);
    let after = |scales: RateScales| {
        let mut opt = Optimizer::new(adamw, false).with_scales(scales);
        values(&opt.step(model.clone(), grads(), 1e-3, 1.0))
    };
    let plain = after(RateScales::default());
    let scaled = after(RateScales {
        embedding: 3.0,
        head: 0.5,
        values: 5.0,
        scalars: 4.0,
    });
    let mut seen = 0;
    for (((name, b), (_, p)), (_, s)) in before.iter().zip(&plain).zip(&scaled) {
        let factor = match name.as_str() {
            "wte.weight" | "wpe.weight" => 3.0,
            "ve.0.weight" => 5.0,
            "lm_head.weight" => 0.5,
            "x0_lambdas" | "resid_lambdas" => {
                // Adam's first step moves each scalar by its rate (the gradient's sign).
                let rate = if name == "x0_lambdas" { 1e-3 } else { 1e-5 };
                for (b, p) in b.iter().zip(p) {
                    let moved = f64::from((p - b).abs());
                    assert!(
                        (moved - rate).abs() < 0.05 * rate,
                        "{name} moved {moved}, expected {rate}"
                    );
                }
                4.0
            }
            _ => {
                assert_eq!(p, s, "{name} changed with the other rates");
                continue;
            }
        };
        seen += 1;
        if name == "wte.weight" || name == "ve.0.weight" {
            // Ids 0 to 8 are the batch's (16 values a row); the rest had no gradient.
            assert_eq!(
                &b[9 * 16..],
                &p[9 * 16..],
                "{name}: unseen rows changed (decay?)"
            );
        }
        for ((b, p), s) in b.iter().zip(p).zip(s) {
            let (dp, ds) = (f64::from(p - b), f64::from(s - b));
            assert!(
                (ds - factor * dp).abs() <= 1e-3 * dp.abs() + 1e-7,
                "{name}: {ds} against {factor} × {dp}"
            );
        }
    }
    assert_eq!(seen, 6);
}
