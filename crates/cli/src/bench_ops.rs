//! `ember bench --ops`: the speed of each kind of operation a training step is made of, at the
//! benchmark shape's sizes (forward only, no autodiff), so a profile can say whether time goes
//! to matrix products, attention, the vocabulary softmax, norms or element-wise work.

use std::time::Instant;

use anyhow::Result;
use burn::prelude::*;
use burn::tensor::activation::{gelu, log_softmax};
use burn::tensor::module::{attention, layer_norm};
use burn::tensor::ops::AttentionModuleOptions;
use ember_model::GptConfig;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Median seconds of `f` over `reps` runs (after one warm-up), each ended by a device sync.
fn time<T>(device: &Device, reps: usize, mut f: impl FnMut() -> T) -> Result<f64> {
    let mut out = Vec::with_capacity(reps);
    for i in 0..=reps {
        let start = Instant::now();
        let r = f();
        device
            .sync()
            .map_err(|e| anyhow::anyhow!("device error: {e:?}"))?;
        drop(r);
        if i > 0 {
            out.push(start.elapsed().as_secs_f64());
        }
    }
    Ok(median(out))
}

/// Loss over the vocabulary and its gradient with respect to the logits, as a training step
/// computes them.
fn xent_step(logits: &Tensor<2>, targets: &Tensor<1, Int>, fused: bool) -> Tensor<2> {
    let x = logits.clone().autodiff().require_grad();
    let t = targets.clone().autodiff();
    let nll = if fused {
        ember_model::ops::nll_rows(x.clone(), t, 0.0)
    } else {
        ember_model::ops::composed_nll_rows(x.clone(), t)
    };
    let grads = nll.sum().backward();
    x.grad(&grads).unwrap_or_else(|| logits.clone())
}

/// Causal attention and the gradients of q, k and v, as a training step computes them.
fn attention_step(qkv: [&Tensor<4>; 3], fused: bool) -> Tensor<4> {
    let [q, k, v] = qkv.map(|t| t.clone().autodiff().require_grad());
    let y = if fused {
        ember_model::ops::causal_attention(q.clone(), k.clone(), v.clone())
    } else {
        let options = AttentionModuleOptions {
            is_causal: true,
            ..Default::default()
        };
        attention(q.clone(), k.clone(), v.clone(), None, None, options)
    };
    let grads = y.sum().backward();
    q.grad(&grads).unwrap_or_else(|| q.clone())
}

/// GELU and its gradient, as a training step computes them.
fn gelu_step(x: &Tensor<2>, fused: bool) -> Tensor<2> {
    let x = x.clone().autodiff().require_grad();
    let y = if fused {
        ember_model::ops::gelu(x.clone())
    } else {
        gelu(x.clone())
    };
    let grads = y.sum().backward();
    x.grad(&grads).unwrap_or_else(|| x.clone())
}

/// Layer norm and the gradients of its input, gain and offset, as a training step computes them.
fn norm_step(x: &Tensor<3>, gamma: &Tensor<1>, beta: &Tensor<1>, fused: bool) -> Tensor<3> {
    let x = x.clone().autodiff().require_grad();
    let (g, b) = (
        gamma.clone().autodiff().require_grad(),
        beta.clone().autodiff().require_grad(),
    );
    let y = if fused {
        ember_model::ops::layer_norm(x.clone(), g, Some(b), 1e-5)
    } else {
        layer_norm(x.clone(), g, Some(b), 1e-5)
    };
    let grads = y.sum().backward();
    x.grad(&grads).unwrap_or_else(|| x.clone())
}

/// The products of the rows above with bfloat16 operands (`train.precision = "bf16-mixed"`),
/// where the CPU has AVX-512 BF16, on each hardware tile it runs (AVX-512, and AMX where
/// present): `x [n, d]`, `w_qkv [d, 3d]`, `g [n, 3d]`, `w_head [d, v]`, `g_head [n, v]`.
fn bf16_rows(
    reps: usize,
    [x, w, g, head, g_head]: [&Tensor<2>; 5],
) -> Result<Vec<(String, f64, Option<f64>)>> {
    use ember_kernels::{Operand, Tile, matmul_bf16_on};
    if !ember_kernels::bf16_available() {
        println!("bf16 products: skipped (this CPU has no AVX-512 BF16)");
        return Ok(Vec::new());
    }
    let host = |t: &Tensor<2>| -> Result<(Vec<f32>, [usize; 2])> {
        let v = t
            .to_data()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("bench data: {e:?}"))?;
        Ok((v, t.dims()))
    };
    let ((x, [n, d]), (w, [_, d3]), (g, _), (head, [_, v]), (g_head, _)) =
        (host(x)?, host(w)?, host(g)?, host(head)?, host(g_head)?);
    let head_t: Vec<f32> = (0..v * d).map(|i| head[(i % d) * v + i / d]).collect(); // [v, d]
    let cpu = Device::flex();
    let mut rows = Vec::new();
    for tile in Tile::available()
        .into_iter()
        .filter(|t| *t != Tile::Portable)
    {
        // One row: `lhs [m, k] · rhs [k, nn]`, its rate from the shape.
        let timed =
            |name: String, (m, k, nn): (usize, usize, usize), lhs: Operand, rhs: Operand| {
                let mut out = vec![0.0f32; m * nn];
                let secs = time(&cpu, reps, || {
                    matmul_bf16_on(tile, &mut out, lhs, rhs, false)
                })?;
                let name = format!("{name} ({tile:?})");
                Ok::<_, anyhow::Error>((name, secs, Some(2.0 * (m * k * nn) as f64)))
            };
        rows.extend([
            timed(
                format!("bf16 x·W_qkv [{n}x{d}]·[{d}x{d3}]"),
                (n, d, d3),
                Operand::new(&x, n, d),
                Operand::new(&w, d, d3),
            )?,
            timed(
                format!("bf16 xᵀ·g (weight grad) [{d}x{n}]·[{n}x{d3}]"),
                (d, n, d3),
                Operand::new(&x, n, d).t(),
                Operand::new(&g, n, d3),
            )?,
            timed(
                format!("bf16 g·Wᵀ (input grad) [{n}x{d3}]·[{d3}x{d}]"),
                (n, d3, d),
                Operand::new(&g, n, d3),
                Operand::new(&w, d, d3).t(),
            )?,
            timed(
                format!("bf16 head x·W [{n}x{d}]·[{d}x{v}]"),
                (n, d, v),
                Operand::new(&x, n, d),
                Operand::new(&head, d, v),
            )?,
            timed(
                format!("bf16 head x·Wᵀ (tied) [{n}x{d}]·[{d}x{v}]ᵀ"),
                (n, d, v),
                Operand::new(&x, n, d),
                Operand::new(&head_t, v, d).t(),
            )?,
            // The tied head's backward: the logits' gradient packed along its vocabulary-wide rows
            // (input gradient) and down its columns (weight gradient).
            timed(
                format!("bf16 head g·W (input grad) [{n}x{v}]·[{v}x{d}]"),
                (n, v, d),
                Operand::new(&g_head, n, v),
                Operand::new(&head_t, v, d),
            )?,
            timed(
                format!("bf16 head gᵀ·x (weight grad) [{v}x{n}]·[{n}x{d}]"),
                (v, n, d),
                Operand::new(&g_head, n, v).t(),
                Operand::new(&x, n, d),
            )?,
        ]);
    }
    Ok(rows)
}

/// Prints one line per operation: milliseconds and, for products, GFLOP/s.
pub fn run(cfg: &GptConfig, b: usize, device: &Device, reps: usize) -> Result<()> {
    let (t, d, h, v) = (cfg.block_size, cfg.n_embd, cfg.n_head, cfg.vocab_size);
    let hd = d / h;
    let n = b * t;
    let r =
        |dims: [usize; 2]| Tensor::<2>::random(dims, burn::tensor::Distribution::Default, device);
    let r4 =
        |dims: [usize; 4]| Tensor::<4>::random(dims, burn::tensor::Distribution::Default, device);
    let (x, w_qkv, w_fc, w_head) = (r([n, d]), r([d, 3 * d]), r([d, 4 * d]), r([d, v]));
    let g_qkv = r([n, 3 * d]);
    let (q, k, vv) = (r4([b, h, t, hd]), r4([b, h, t, hd]), r4([b, h, t, hd]));
    let logits = r([n, v]);
    let ids: Vec<i32> = (0..n).map(|i| ((i * 7919) % v) as i32).collect();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(ids, [n]), device);
    let fused_note = if ember_model::ops::fused_here(&logits) {
        ""
    } else {
        " (not on this device: composed)"
    };
    let x3 = x.clone().reshape([b, t, d]);
    let (gamma, beta) = (
        Tensor::<1>::ones([d], device),
        Tensor::<1>::zeros([d], device),
    );
    let hidden = r([n, 4 * d]);
    let mm = |m: usize, k: usize, nn: usize| 2.0 * (m * k * nn) as f64;
    let rows: Vec<(String, f64, Option<f64>)> = vec![
        (
            format!("matmul x·W_qkv [{n}x{d}]·[{d}x{}]", 3 * d),
            time(device, reps, || x.clone().matmul(w_qkv.clone()))?,
            Some(mm(n, d, 3 * d)),
        ),
        (
            format!("matmul x·W_fc [{n}x{d}]·[{d}x{}]", 4 * d),
            time(device, reps, || x.clone().matmul(w_fc.clone()))?,
            Some(mm(n, d, 4 * d)),
        ),
        (
            format!("matmul xᵀ·g (weight grad) [{d}x{n}]·[{n}x{}]", 3 * d),
            time(device, reps, || x.clone().transpose().matmul(g_qkv.clone()))?,
            Some(mm(d, n, 3 * d)),
        ),
        (
            format!("matmul g·Wᵀ (input grad) [{n}x{}]·[{}x{d}]", 3 * d, 3 * d),
            time(device, reps, || {
                g_qkv.clone().matmul(w_qkv.clone().transpose())
            })?,
            Some(mm(n, 3 * d, d)),
        ),
        (
            format!("matmul head x·Wᵀ [{n}x{d}]·[{d}x{v}]"),
            time(device, reps, || x.clone().matmul(w_head.clone()))?,
            Some(mm(n, d, v)),
        ),
        (
            format!("matmul q·kᵀ per head [{b}x{h}] [{t}x{hd}]·[{hd}x{t}]"),
            time(device, reps, || q.clone().matmul(k.clone().swap_dims(2, 3)))?,
            Some(mm(b * h * t, hd, t)),
        ),
        (
            "attention, fused causal (one layer)".into(),
            time(device, reps, || {
                attention(
                    q.clone(),
                    k.clone(),
                    vv.clone(),
                    None,
                    None,
                    AttentionModuleOptions {
                        is_causal: true,
                        ..Default::default()
                    },
                )
            })?,
            Some(2.0 * mm(b * h * t, hd, t)),
        ),
        (
            "attention fwd+bwd, Burn under autodiff (one layer)".into(),
            time(device, reps, || attention_step([&q, &k, &vv], false))?,
            None,
        ),
        (
            format!("attention fwd+bwd, fused{fused_note} (one layer)"),
            time(device, reps, || attention_step([&q, &k, &vv], true))?,
            None,
        ),
        (
            format!("log_softmax over the vocabulary [{n}x{v}]"),
            time(device, reps, || log_softmax(logits.clone(), 1))?,
            None,
        ),
        (
            format!("  its parts: max over the vocabulary [{n}x{v}]"),
            time(device, reps, || logits.clone().max_dim(1))?,
            None,
        ),
        (
            format!("  its parts: exp [{n}x{v}]"),
            time(device, reps, || logits.clone().exp())?,
            None,
        ),
        (
            format!("  its parts: sum over the vocabulary [{n}x{v}]"),
            time(device, reps, || logits.clone().sum_dim(1))?,
            None,
        ),
        (
            format!("  its parts: subtract a column [{n}x{v}]"),
            time(device, reps, || {
                logits.clone() - logits.clone().slice(s![.., 0..1])
            })?,
            None,
        ),
        (
            format!("cross-entropy fwd+bwd, composed log_softmax+gather [{n}x{v}]"),
            time(device, reps, || xent_step(&logits, &targets, false))?,
            None,
        ),
        (
            format!("cross-entropy fwd+bwd, fused{} [{n}x{v}]", fused_note),
            time(device, reps, || xent_step(&logits, &targets, true))?,
            None,
        ),
        (
            format!("layer_norm [{b}x{t}x{d}]"),
            time(device, reps, || {
                layer_norm(x3.clone(), gamma.clone(), Some(beta.clone()), 1e-5)
            })?,
            None,
        ),
        (
            format!("layer_norm fwd+bwd, Burn under autodiff [{b}x{t}x{d}]"),
            time(device, reps, || norm_step(&x3, &gamma, &beta, false))?,
            None,
        ),
        (
            format!("layer_norm fwd+bwd, fused{fused_note} [{b}x{t}x{d}]"),
            time(device, reps, || norm_step(&x3, &gamma, &beta, true))?,
            None,
        ),
        (
            format!("gelu fwd+bwd, Burn [{n}x{}]", 4 * d),
            time(device, reps, || gelu_step(&hidden, false))?,
            None,
        ),
        (
            format!("gelu fwd+bwd, fused{} [{n}x{}]", fused_note, 4 * d),
            time(device, reps, || gelu_step(&hidden, true))?,
            None,
        ),
        (
            format!("add [{n}x{}]", 4 * d),
            time(device, reps, || hidden.clone() + hidden.clone())?,
            None,
        ),
    ];
    let mut rows = rows;
    rows.extend(bf16_rows(reps, [&x, &w_qkv, &g_qkv, &w_head, &r([n, v])])?);
    println!("operation timings (forward only, median of {reps}):");
    for (name, secs, flops) in rows {
        let rate = flops
            .map(|f| format!("  {:.1} GFLOP/s", f / secs / 1e9))
            .unwrap_or_default();
        println!("  {name:<58} {:>9.2} ms{rate}", secs * 1e3);
    }
    Ok(())
}
