//! The training products with bfloat16 operands (`train.precision = "bf16-mixed"`): the route
//! through `ops::linear` and `ops::times_transposed`, forward and backward.

use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;
use ember_kernels::{Operand, matmul_bf16};
use ember_model::ops::{bf16_products_available, linear, times_transposed, with_bf16_products};

use crate::common::{host, max_diff};

/// `y = x·W` (or `x·Wᵀ`) and a weighted sum's gradients for x and W, with or without bf16.
type Run = (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>);

fn run(bf16: bool, transposed: bool) -> Run {
    let device = Device::flex().autodiff();
    device.seed(5);
    let dist = burn::tensor::Distribution::Normal(0.0, 1.0);
    let (m, k, n) = (37, 20, 45);
    let x = Tensor::<2>::random([m, k], dist, &device).require_grad();
    let w_dims = if transposed { [n, k] } else { [k, n] };
    let w = Tensor::<2>::random(w_dims, dist, &device).require_grad();
    let r = Tensor::<2>::random([m, n], dist, &device);
    let y = with_bf16_products(bf16, || {
        if transposed {
            times_transposed(x.clone(), w.clone())
        } else {
            let layer = Linear {
                weight: Param::from_tensor(w.clone()),
                bias: None,
            };
            linear(x.clone(), &layer)
        }
    });
    let grads = (y.clone() * r).sum().backward();
    (
        host(y),
        host(x.grad(&grads).unwrap()),
        host(w.grad(&grads).unwrap()),
        host(x.inner()),
        host(w.inner()),
    )
}

#[test]
fn bf16_products_are_the_kernels_and_their_gradients_stay_near_f32() {
    if !bf16_products_available() {
        eprintln!("skipped: this CPU has no AVX-512 BF16");
        return;
    }
    for transposed in [false, true] {
        let (y, dx, dw, x, w) = run(true, transposed);
        let (y32, dx32, dw32, x32, _) = run(false, transposed);
        assert_eq!(x, x32, "both runs draw the same operands");
        // The forward product is the kernel's, bit for bit: the route is taken.
        let (m, k, n) = (37, 20, 45);
        let rhs = if transposed {
            Operand::new(&w, n, k).t()
        } else {
            Operand::new(&w, k, n)
        };
        let mut want = vec![0.0f32; m * n];
        matmul_bf16(&mut want, Operand::new(&x, m, k), rhs, false);
        assert_eq!(y, want, "transposed {transposed}");
        assert_ne!(y, y32, "bf16 and f32 products differ by rounding");
        // Operands rounded to 8 significant bits: sums of 20 (forward, dx) or 37 (dw)
        // products of unit normals stay within a few hundredths.
        for (name, a, b) in [("y", &y, &y32), ("dx", &dx, &dx32), ("dw", &dw, &dw32)] {
            let d = max_diff(a, b);
            assert!(d < 0.1, "{name} (transposed {transposed}) differs by {d}");
        }
    }
}
