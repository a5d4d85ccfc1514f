//! The fused CPU layer norm against Burn's composed `layer_norm`: output and the gradients of
//! the input, gain and offset, with and without an offset, across the kernel's 32-row blocks.

use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::module::layer_norm as burn_layer_norm;
use ember_model::fused_norm::layer_norm;
use ember_model::ops::fused_here as is_fused;

use crate::fused::assert_same;

fn case(with_beta: bool) {
    let device = Device::flex().autodiff();
    let (x, gamma, beta, w) = ember_model::with_seed(&device, 9, || {
        (
            Tensor::<3>::random([3, 23, 40], Distribution::Normal(0.5, 2.0), &device),
            Tensor::<1>::random([40], Distribution::Normal(1.0, 0.3), &device),
            Tensor::<1>::random([40], Distribution::Normal(0.0, 0.3), &device),
            Tensor::<3>::random([3, 23, 40], Distribution::Default, &device),
        )
    });
    let (x, gamma, beta) = (x.require_grad(), gamma.require_grad(), beta.require_grad());
    assert!(is_fused(&x));
    let b = || with_beta.then(|| beta.clone());
    let run = || {
        (
            layer_norm(x.clone(), gamma.clone(), b(), 1e-5),
            burn_layer_norm(x.clone(), gamma.clone(), b(), 1e-5),
        )
    };
    let (fused, reference) = run();
    assert_same(fused, reference, w.clone(), &[("x", &x)], 2e-5);
    let (fused, reference) = run();
    let params: Vec<(&str, &Tensor<1>)> = if with_beta {
        vec![("gamma", &gamma), ("beta", &beta)]
    } else {
        vec![("gamma", &gamma)]
    };
    assert_same(fused, reference, w, &params, 2e-5);
}

#[test]
fn fused_layer_norm_matches_burn_forward_and_backward() {
    case(true);
}

#[test]
fn fused_layer_norm_without_offset_matches_burn() {
    case(false);
}
