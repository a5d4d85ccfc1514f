//! Rows packed with several documents (SFT conversations): with their document starts, each
//! document trains exactly as it would alone in its own row — loss and gradients — in the
//! fused kernel and in Burn's operations, for every kind of positions.

use burn::module::Param;
use burn::prelude::*;
use ember_model::{Gpt, Visibility};

use crate::common::{host, max_diff, variants};

/// Two documents of 7 and 9 tokens, then 2 padding positions.
const A: [u32; 8] = [5, 9, 2, 33, 7, 7, 1, 40];
const B: [u32; 10] = [12, 3, 3, 60, 8, 21, 4, 4, 19, 50];

fn ids(v: &[u32], device: &Device) -> Tensor<2, Int> {
    let v: Vec<i32> = v.iter().map(|&x| x as i32).collect();
    let n = v.len();
    Tensor::from_data(TensorData::new(v, [1, n]), device)
}

/// `(loss sum, gradient of the token embedding)` of `doc_ids` (inputs and targets shifted)
/// with weights `mask`, seeing what `seeing` allows.
fn nll(
    model: &Gpt,
    inputs: &[u32],
    targets: &[u32],
    mask: &[f32],
    seeing: &Visibility,
) -> (f32, Option<Vec<f32>>) {
    let device = model.wte.weight.device();
    let m = Tensor::<2>::from_data(TensorData::new(mask.to_vec(), [1, mask.len()]), &device);
    let (sum, _) = model.nll_sum_seeing(ids(inputs, &device), ids(targets, &device), m, seeing);
    let value = host(sum.clone())[0];
    let grad = device.is_autodiff().then(|| {
        let g = sum.backward();
        let p: &Param<Tensor<2>> = &model.wte.weight;
        host(p.val().grad(&g).unwrap_or_else(|| panic!("no gradient")))
    });
    (value, grad)
}

fn alone(model: &Gpt, doc: &[u32]) -> (f32, Option<Vec<f32>>) {
    let n = doc.len() - 1;
    nll(
        model,
        &doc[..n],
        &doc[1..],
        &vec![1.0; n],
        &Visibility::causal(),
    )
}

fn packed(model: &Gpt, within: bool) -> (f32, Option<Vec<f32>>) {
    let (a, b) = (A.len() - 1, B.len() - 1);
    let mut inputs = [&A[..a], &B[..b], &[0, 0]].concat();
    let mut targets = [&A[1..], &B[1..], &[0, 0]].concat();
    inputs.truncate(a + b + 2);
    targets.truncate(a + b + 2);
    let mut mask = vec![1.0; a + b];
    mask.extend([0.0, 0.0]);
    let mut starts = vec![0u32; a];
    starts.extend(std::iter::repeat_n(a as u32, b));
    starts.extend([(a + b) as u32, (a + b + 1) as u32]);
    let seeing = Visibility {
        starts: std::sync::Arc::new(if within { starts } else { Vec::new() }),
        ..Default::default()
    };
    nll(model, &inputs, &targets, &mask, &seeing)
}

fn check(device: &Device) {
    for cfg in variants(64) {
        let model = ember_model::with_seed(device, 3, || cfg.init(device).drawn());
        let (la, ga) = alone(&model, &A);
        let (lb, gb) = alone(&model, &B);
        let (lp, gp) = packed(&model, true);
        let what = format!(
            "{:?} positions, autodiff {}",
            cfg.positions,
            device.is_autodiff()
        );
        assert!(
            (lp - (la + lb)).abs() < 1e-4 * (la + lb),
            "{what}: packed loss {lp} vs {la} + {lb} alone"
        );
        if let (Some(ga), Some(gb), Some(gp)) = (ga, gb, gp) {
            let sum: Vec<f32> = ga.iter().zip(&gb).map(|(x, y)| x + y).collect();
            let d = max_diff(&gp, &sum);
            assert!(d < 1e-4, "{what}: gradients differ by {d}");
        }
        // Without the starts the second document sees the first: a different loss.
        let (lc, _) = packed(&model, false);
        assert!(
            (lc - (la + lb)).abs() > 1e-3,
            "{what}: the starts must matter"
        );
    }
}

#[test]
fn packed_documents_train_as_they_would_alone_in_the_kernel() {
    check(&Device::flex().autodiff());
}

#[test]
fn packed_documents_train_as_they_would_alone_in_burns_operations() {
    check(&Device::flex());
}
