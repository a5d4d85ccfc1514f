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
    // Operands from a fixed formula, not the device's generator (other tests seed it
    // concurrently).
    let device = Device::flex().autodiff();
    let values = |rows: usize, cols: usize, seed: usize| {
        let v: Vec<f32> = (0..rows * cols)
            .map(|i| (((i * 7919 + seed * 104_729) % 2001) as f32 - 1000.0) * 2e-3)
            .collect();
        Tensor::<2>::from_data(TensorData::new(v, [rows, cols]), &device)
    };
    let (m, k, n) = (37, 20, 45);
    let x = values(m, k, 1).require_grad();
    let w = if transposed {
        values(n, k, 2)
    } else {
        values(k, n, 2)
    }
    .require_grad();
    let r = values(m, n, 3);
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
        assert_eq!(x, x32);
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
        // Operands rounded to 8 significant bits: sums of 20 (forward), 45 (dx) or 37 (dw)
        // products of values up to 2 stay within a few hundredths.
        for (name, a, b) in [("y", &y, &y32), ("dx", &dx, &dx32), ("dw", &dw, &dw32)] {
            let d = max_diff(a, b);
            assert!(d < 0.1, "{name} (transposed {transposed}) differs by {d}");
        }
    }
}
