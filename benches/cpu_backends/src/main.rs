//! One GPT-2 training step (forward, cross-entropy, backward) written with Burn's own
//! operations only, timed on each of Burn's CPU backends built here: flex and ndarray. Same
//! shapes as `ember bench` (nano, medium), same thread count (rayon's global pool), median of
//! the timed steps after warm-up. Ember's fused kernels are not involved, so this compares the
//! backends themselves. Argument: nano | medium.
use std::time::Instant;

use burn::prelude::*;
use burn::tensor::activation::{gelu, log_softmax};
use burn::tensor::module::{attention, embedding, layer_norm};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::Distribution;

struct Layer {
    ln: [Tensor<1>; 4],
    w: [Tensor<2>; 4],
    b: [Tensor<1>; 4],
}

struct Gpt {
    wte: Tensor<2>,
    layers: Vec<Layer>,
    ln_f: [Tensor<1>; 2],
    heads: usize,
}

fn init(vocab: usize, n_layer: usize, heads: usize, d: usize, dev: &Device) -> Gpt {
    let w = |i: usize, o: usize| {
        Tensor::<2>::random([i, o], Distribution::Normal(0.0, 0.02), dev).require_grad()
    };
    let ones = || Tensor::<1>::ones([d], dev).require_grad();
    let zeros = |n: usize| Tensor::<1>::zeros([n], dev).require_grad();
    Gpt {
        wte: w(vocab, d),
        layers: (0..n_layer)
            .map(|_| Layer {
                ln: [ones(), zeros(d), ones(), zeros(d)],
                w: [w(d, 3 * d), w(d, d), w(d, 4 * d), w(4 * d, d)],
                b: [zeros(3 * d), zeros(d), zeros(4 * d), zeros(d)],
            })
            .collect(),
        ln_f: [ones(), zeros(d)],
        heads,
    }
}

/// `[b, t, i] · [i, o] + bias` as one `[b·t, i]` product.
fn linear(x: Tensor<3>, w: &Tensor<2>, b: &Tensor<1>) -> Tensor<3> {
    let [bs, t, i] = x.dims();
    let o = w.dims()[1];
    (x.reshape([bs * t, i]).matmul(w.clone()) + b.clone().unsqueeze::<2>()).reshape([bs, t, o])
}

fn loss(m: &Gpt, x: Tensor<2, Int>, y: Tensor<2, Int>) -> Tensor<1> {
    let [b, t] = x.dims();
    let d = m.wte.dims()[1];
    let (h, hd) = (m.heads, d / m.heads);
    let mut z = embedding(m.wte.clone(), x);
    let causal = AttentionModuleOptions {
        is_causal: true,
        ..Default::default()
    };
    for l in &m.layers {
        let a = layer_norm(z.clone(), l.ln[0].clone(), Some(l.ln[1].clone()), 1e-5);
        let qkv = linear(a, &l.w[0], &l.b[0]);
        let heads = |k: usize| {
            qkv.clone()
                .slice(s![.., .., k * d..(k + 1) * d])
                .reshape([b, t, h, hd])
                .swap_dims(1, 2)
        };
        let o = attention(heads(0), heads(1), heads(2), None, None, causal);
        let o = o.swap_dims(1, 2).reshape([b, t, d]);
        z = z + linear(o, &l.w[1], &l.b[1]);
        let a = layer_norm(z.clone(), l.ln[2].clone(), Some(l.ln[3].clone()), 1e-5);
        z = z + linear(gelu(linear(a, &l.w[2], &l.b[2])), &l.w[3], &l.b[3]);
    }
    let z = layer_norm(z, m.ln_f[0].clone(), Some(m.ln_f[1].clone()), 1e-5);
    let logits = z.reshape([b * t, d]).matmul(m.wte.clone().transpose());
    log_softmax(logits, 1)
        .gather(1, y.reshape([b * t, 1]))
        .mean()
        .neg()
}

fn time_backend(name: &str, dev: &Device, shape: [usize; 6], steps: usize) -> f64 {
    let [vocab, n_layer, heads, d, ctx, batch] = shape;
    dev.seed(1);
    let m = init(vocab, n_layer, heads, d, dev);
    let mut times = Vec::new();
    for i in 0..steps + 2 {
        let ids = Tensor::<2, Int>::random(
            [batch, ctx + 1],
            Distribution::Uniform(0.0, vocab as f64),
            dev,
        );
        let x = ids.clone().slice(s![.., 0..ctx]);
        let y = ids.slice(s![.., 1..ctx + 1]);
        let start = Instant::now();
        let l = loss(&m, x, y);
        let grads = l.backward();
        let g = m.wte.grad(&grads).map(|g| g.sum().into_scalar::<f32>());
        std::hint::black_box(g);
        if i >= 2 {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let med = times[times.len() / 2] * 1e3;
    println!("{name:<8} forward+backward {med:8.1} ms (median of {steps})");
    med
}

fn main() {
    let which = std::env::args().nth(1).unwrap_or_else(|| "nano".into());
    let (shape, steps) = match which.as_str() {
        "nano" => ([65, 4, 4, 128, 64, 12], 20),
        "medium" => ([8192, 6, 6, 384, 256, 8], 5),
        other => panic!("unknown shape {other}; expected nano or medium"),
    };
    println!("{which}: {} threads", rayon_threads());
    let flex = time_backend("flex", &Device::flex().autodiff(), shape, steps);
    // Deprecated in 0.22 (flex replaces it), still shipped: measured because it is an option.
    #[allow(deprecated)]
    let nd = time_backend("ndarray", &Device::ndarray().autodiff(), shape, steps);
    println!("ndarray / flex step time: {:.2}", nd / flex);
}

fn rayon_threads() -> String {
    std::env::var("RAYON_NUM_THREADS").unwrap_or_else(|_| {
        std::thread::available_parallelism().map_or("?".into(), |n| n.to_string())
    })
}
