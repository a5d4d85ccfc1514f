//! The fused CPU cross-entropy against Burn's composed `log_softmax` + `gather`: values,
//! gradients, the whole model's parameter gradients, and gradient checkpointing.

use burn::module::Param;
use burn::prelude::*;
use ember_model::fused::nll_rows;
use ember_model::ops::{composed_nll_rows, fused_here as is_fused};
use ember_model::{GptConfig, masked_loss};

use crate::common::{host, max_diff, model, tokens};

fn logits_and_targets(rows: usize, vocab: usize, device: &Device) -> (Tensor<2>, Tensor<1, Int>) {
    // From a fixed formula, not the device's generator: other tests reseed that generator
    // concurrently (not all under `with_seed`'s lock), and two calls meant to see the same
    // logits saw different ones (CI, once: gradients 0.62 apart). Spread about 3.
    let values: Vec<f32> = (0..rows * vocab)
        .map(|i| (((i * 7919 + 104_729) % 2001) as f32 - 1000.0) * 5.2e-3)
        .collect();
    let logits = Tensor::<2>::from_data(TensorData::new(values, [rows, vocab]), device);
    let ids: Vec<i32> = (0..rows).map(|i| ((i * 7919) % vocab) as i32).collect();
    (
        logits,
        Tensor::from_data(TensorData::new(ids, [rows]), device),
    )
}

#[test]
fn fused_nll_matches_log_softmax() {
    let device = Device::flex();
    let (logits, targets) = logits_and_targets(37, 301, &device);
    assert!(is_fused(&logits) && is_fused(&logits.clone().autodiff()));
    let fused = host(nll_rows(logits.clone(), targets.clone(), 0.0));
    let composed = host(composed_nll_rows(logits, targets));
    assert!(
        max_diff(&fused, &composed) < 1e-5,
        "{}",
        max_diff(&fused, &composed)
    );
}

/// Gradient with respect to the logits, for a weighted sum of the rows (as the masked loss),
/// with the logits soft-capped at `cap` (0 = none): by the fused operation, or by Burn's
/// `tanh` and `log_softmax`.
fn logit_grad(device: &Device, fused: bool, cap: f64) -> Vec<f32> {
    let (logits, targets) = logits_and_targets(33, 257, &device.clone().without_autodiff());
    let logits = Tensor::<2>::from_data(logits.into_data(), device).require_grad();
    let targets = Tensor::<1, Int>::from_data(targets.into_data(), device);
    let weights: Vec<f32> = (0..33).map(|i| (i % 3) as f32 * 0.5).collect();
    let w = Tensor::<1>::from_data(TensorData::new(weights, [33]), device);
    let nll = match (fused, cap > 0.0) {
        (true, _) => nll_rows(logits.clone(), targets, cap as f32),
        (false, true) => composed_nll_rows(ember_model::ops::softcap(logits.clone(), cap), targets),
        (false, false) => composed_nll_rows(logits.clone(), targets),
    };
    let grads = (nll * w).sum().backward();
    host(
        logits
            .grad(&grads)
            .unwrap_or_else(|| panic!("no gradient reached the logits")),
    )
}

#[test]
fn fused_gradient_matches_log_softmax() {
    let device = Device::flex().autodiff();
    let (a, b) = (
        logit_grad(&device, true, 0.0),
        logit_grad(&device, false, 0.0),
    );
    assert!(max_diff(&a, &b) < 1e-6, "{}", max_diff(&a, &b));
    // Under gradient checkpointing the op keeps its saved state (it is compute-bound).
    let ckpt = Device::flex().autodiff().gradient_checkpointing();
    let c = logit_grad(&ckpt, true, 0.0);
    assert!(max_diff(&a, &c) < 1e-7, "{}", max_diff(&a, &c));
    // Soft-capped at 5 (logits of spread 3 reach well past it): the cap changes the gradient,
    // and the fused operation's equals the composed one's.
    let (d, e) = (
        logit_grad(&device, true, 5.0),
        logit_grad(&device, false, 5.0),
    );
    assert!(max_diff(&d, &e) < 1e-6, "{}", max_diff(&d, &e));
    assert!(max_diff(&a, &d) > 1e-3, "the cap made no difference");
}

/// The fused op sits at the end of the graph: every parameter's gradient through it equals
/// the one through the composed path.
#[test]
fn model_gradients_through_the_fused_loss_match() {
    let device = Device::flex().autodiff();
    let cfg = GptConfig::new(50, 2, 2, 16, 16);
    let m = model(&cfg, &device);
    let x = tokens(&[1, 5, 9, 13, 17, 21, 3, 8], &device);
    let y = tokens(&[5, 9, 13, 17, 21, 3, 8, 40], &device);
    let mask = Tensor::<2>::from_data(
        TensorData::new(vec![1f32, 1., 0., 1., 1., 1., 0., 1.], [1, 8]),
        &device,
    );

    let fused = masked_loss(m.forward(x.clone()), y.clone(), mask.clone());
    let g_fused = fused.backward();
    let logits = m.forward(x).reshape([8, 50]);
    let nll = composed_nll_rows(logits, y.reshape([8]));
    let mask = mask.reshape([8]);
    let composed = (nll * mask.clone()).sum() / mask.sum();
    let g_composed = composed.backward();

    let grad = |p: &Param<Tensor<2>>, g| host(p.val().grad(g).unwrap_or_else(|| panic!("no grad")));
    let wte = (
        grad(&m.wte.weight, &g_fused),
        grad(&m.wte.weight, &g_composed),
    );
    assert!(
        max_diff(&wte.0, &wte.1) < 1e-6,
        "wte grad differs by {}",
        max_diff(&wte.0, &wte.1)
    );
}

/// A target id outside the vocabulary (a corrupted shard, say) gives a NaN loss for the
/// training loop's non-finite guard to report, not a panic inside the backend.
#[test]
fn out_of_range_target_gives_nan() {
    let device = Device::flex();
    let (logits, _) = logits_and_targets(2, 10, &device);
    let targets = Tensor::<1, Int>::from_data(TensorData::new(vec![3i32, 10], [2]), &device);
    let nll = host(nll_rows(logits, targets, 0.0));
    assert!(nll[0].is_finite() && nll[1].is_nan(), "{nll:?}");
}

/// Asserts that `fused` and `reference` agree within `tol`, and so do the gradients of
/// `Σ out·w` with respect to each named input.
pub(crate) fn assert_same<const D: usize, const E: usize>(
    fused: Tensor<D>,
    reference: Tensor<D>,
    w: Tensor<D>,
    inputs: &[(&str, &Tensor<E>)],
    tol: f32,
) {
    let (f, r) = (host(fused.clone()), host(reference.clone()));
    assert!(
        max_diff(&f, &r) < tol,
        "forward differs by {}",
        max_diff(&f, &r)
    );
    let gf = (fused * w.clone()).sum().backward();
    let gr = (reference * w).sum().backward();
    for (name, x) in inputs {
        let grad = |g| {
            host(
                x.grad(g)
                    .unwrap_or_else(|| panic!("no gradient for {name}")),
            )
        };
        let (a, b) = (grad(&gf), grad(&gr));
        assert!(
            max_diff(&a, &b) < tol,
            "d{name} differs by {}",
            max_diff(&a, &b)
        );
    }
}

#[test]
fn fused_gelu_matches_burn_forward_and_backward() {
    let device = Device::flex().autodiff();
    let (x, w) = ember_model::with_seed(&device, 5, || {
        let x = Tensor::<3>::random(
            [3, 5, 70],
            burn::tensor::Distribution::Normal(0.0, 2.0),
            &device,
        );
        let w = Tensor::<3>::random([3, 5, 70], burn::tensor::Distribution::Default, &device);
        (x, w)
    });
    let x = x.require_grad();
    let fused = ember_model::fused::gelu(x.clone());
    let reference = burn::tensor::activation::gelu(x.clone());
    assert_same(fused, reference, w, &[("x", &x)], 1e-6);
}

/// ReLU² with the kernel gives Burn's `relu` then `x · x` bit for bit, value and gradient
/// (so switching the MLP to the kernel changed no training run), zeros and negative zeros
/// included; a NaN input stays NaN for the training loop's guard.
#[test]
fn fused_relu2_matches_burn_bit_for_bit() {
    let device = Device::flex().autodiff();
    let mut values: Vec<f32> = (0..3 * 5 * 70)
        .map(|i| (((i * 7919 + 104_729) % 2001) as f32 - 1000.0) * 3.1e-3)
        .collect();
    values[..4].copy_from_slice(&[0.0, -0.0, f32::MIN_POSITIVE, -1e-30]);
    let x = Tensor::<3>::from_data(TensorData::new(values, [3, 5, 70]), &device).require_grad();
    // Weights for the loss under the seed's lock: a draw outside it can land between another
    // test's seeding and its draws (CI: a model test's initial loss moved by 0.05).
    let w = ember_model::with_seed(&device, 3, || {
        Tensor::<3>::random([3, 5, 70], burn::tensor::Distribution::Default, &device)
    });
    let fused = ember_model::fused::relu2(x.clone());
    let reference = burn::tensor::activation::relu(x.clone()).powi_scalar(2);
    let bits = |t: Tensor<3>| host(t).iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(fused.clone()), bits(reference.clone()), "forward");
    let gf = (fused * w.clone()).sum().backward();
    let gr = (reference * w).sum().backward();
    let (a, b) = (x.grad(&gf).unwrap(), x.grad(&gr).unwrap());
    assert_eq!(bits(a), bits(b), "gradient");
    let nan = Tensor::<1>::from_data(TensorData::new(vec![f32::NAN, 2.0], [2]), &Device::flex());
    let y = host(ember_model::fused::relu2(nan));
    assert!(y[0].is_nan() && y[1] == 4.0, "{y:?}");
}

/// The fused attention (taken under autodiff on the CPU) against Burn's attention: output and
/// the gradients of q, k and v, across the kernel's 64-row blocks.
#[test]
fn fused_attention_matches_burn_forward_and_backward() {
    use burn::tensor::module::attention;
    use burn::tensor::ops::AttentionModuleOptions;
    let device = Device::flex().autodiff();
    let r = |d: &Device| {
        Tensor::<4>::random(
            [2, 3, 70, 8],
            burn::tensor::Distribution::Normal(0.0, 1.0),
            d,
        )
    };
    let (q, k, v, w) = ember_model::with_seed(&device, 9, || {
        (r(&device), r(&device), r(&device), r(&device))
    });
    let (q, k, v) = (q.require_grad(), k.require_grad(), v.require_grad());
    // The door takes the kernel under autodiff on the CPU (and Burn's attention without).
    assert!(is_fused(&q) && q.device().is_autodiff());
    assert!(!q.clone().inner().device().is_autodiff());
    let fused = ember_model::fused::causal_attention(q.clone(), k.clone(), v.clone());
    let options = AttentionModuleOptions {
        is_causal: true,
        ..Default::default()
    };
    let reference = attention(q.clone(), k.clone(), v.clone(), None, None, options);
    assert_same(
        fused,
        reference,
        w,
        &[("q", &q), ("k", &k), ("v", &v)],
        1e-5,
    );
}

#[test]
fn packed_qkv_attention_matches_the_split_heads_path() {
    packed_qkv_case(false, 0);
}

#[test]
fn packed_qkv_attention_with_rope_matches_burns_rotary_encoding() {
    packed_qkv_case(true, 0);
}

/// The hybrid objective's masked rows: the first rows of the batch attend both ways, in the
/// kernel as in Burn's attention without the causal mask, and through the model's door on a
/// device without autodiff (Burn's operations, rows split).
#[test]
fn leading_rows_attend_both_ways_in_the_kernel_and_in_burns_path() {
    packed_qkv_case(true, 1);
    packed_qkv_case(false, 2);
}

fn packed_qkv_case(with_rope: bool, bidirectional: usize) {
    use burn::nn::RotaryEncodingConfig;
    use burn::tensor::module::attention;
    use burn::tensor::ops::AttentionModuleOptions;
    use ember_model::fused_qkv::qkv_attention;
    let device = Device::flex().autodiff();
    // 70 positions cross the kernel's 64-row block; 3 heads of 8.
    let (b, t, h, hd) = (2, 70, 3, 8);
    let d = h * hd;
    let normal = burn::tensor::Distribution::Normal(0.0, 1.0);
    let (qkv, w) = ember_model::with_seed(&device, 5, || {
        let qkv = Tensor::<3>::random([b, t, 3 * d], normal, &device);
        (qkv, Tensor::<3>::random([b, t, d], normal, &device))
    });
    let qkv = qkv.require_grad();
    let rope = with_rope.then(|| RotaryEncodingConfig::new(80, hd).init(&device));
    assert!(is_fused(&qkv) && qkv.device().is_autodiff());
    let seeing = ember_model::Visibility {
        bidirectional,
        ..Default::default()
    };
    let fused = qkv_attention(qkv.clone(), rope.as_ref(), h, seeing.clone());
    // The model's door takes the same kernel for a whole sequence without a cache.
    let door = ember_model::ops::attention(qkv.clone(), h, 0, rope.as_ref(), None, &seeing);
    let values = |x: Tensor<3>| x.into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(values(door), values(fused.clone()));
    // Without autodiff the door takes Burn's operations.
    let inner = qkv.clone().inner();
    let inner_rope = with_rope.then(|| RotaryEncodingConfig::new(80, hd).init(&inner.device()));
    let plain = ember_model::ops::attention(inner, h, 0, inner_rope.as_ref(), None, &seeing);
    for (a, b) in values(plain).iter().zip(values(fused.clone())) {
        assert!((a - b).abs() < 1e-5, "Burn's path {a} vs the kernel's {b}");
    }
    let heads = |m: Tensor<3>| m.reshape([b, t, h, hd]).swap_dims(1, 2);
    let (mut q, mut k, v) = (
        heads(qkv.clone().slice(s![.., .., 0..d])),
        heads(qkv.clone().slice(s![.., .., d..2 * d])),
        heads(qkv.clone().slice(s![.., .., 2 * d..3 * d])),
    );
    if let Some(r) = &rope {
        (q, k) = (r.apply(q, 0), r.apply(k, 0));
    }
    let rows = |x: &Tensor<4>, r: std::ops::Range<usize>| x.clone().slice(s![r, .., .., ..]);
    let part = |r: std::ops::Range<usize>, is_causal: bool| {
        let options = AttentionModuleOptions {
            is_causal,
            ..Default::default()
        };
        attention(
            rows(&q, r.clone()),
            rows(&k, r.clone()),
            rows(&v, r),
            None,
            None,
            options,
        )
    };
    let mut parts = vec![];
    if bidirectional > 0 {
        parts.push(part(0..bidirectional, false));
    }
    if bidirectional < b {
        parts.push(part(bidirectional..b, true));
    }
    let reference = Tensor::cat(parts, 0).swap_dims(1, 2).reshape([b, t, d]);
    assert_same(fused, reference, w, &[("qkv", &qkv)], 1e-5);
}
