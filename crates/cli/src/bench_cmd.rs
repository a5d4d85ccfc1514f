//! `ember bench`: how fast this machine trains and generates with a standard model shape.
//! `benches/model/bench.py` runs it beside the same model in PyTorch.

use std::time::Instant;

use anyhow::Result;
use burn::optim::GradientsParams;
use burn::prelude::*;
use clap::{Args, ValueEnum};
use ember_model::{GptConfig, SamplingConfig, generate, masked_loss};
use ember_tokenizer::{TrainerConfig, train_from_texts};
use ember_train::optim::{AdamWConfig, Optimizer};

use crate::device_args::DeviceArgs;

/// Benchmark shapes.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum BenchShape {
    /// nanoGPT's CPU Shakespeare config: 4 layers, 4 heads, 128 wide, context 64, batch 12, vocab 65.
    Nano,
    /// 6 layers, 6 heads, 384 wide, context 256, batch 8, vocab 8192.
    Medium,
}

/// Flags of `ember bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Model shape and batch.
    #[arg(long, value_enum, default_value = "nano")]
    shape: BenchShape,
    /// Timed training steps (after the warm-up steps).
    #[arg(long, default_value_t = 20, value_parser = crate::checks::at_least_one)]
    steps: usize,
    /// Untimed warm-up steps (first-step allocation, kernel compilation on GPUs).
    #[arg(long, default_value_t = 3, value_parser = crate::checks::count)]
    warmup: usize,
    /// Tokens to generate (KV cache, batch 1, greedy) for the generation figure; 0 skips it.
    #[arg(long, default_value_t = 256, value_parser = crate::checks::bench_tokens)]
    gen_tokens: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// Instead of a training step, time each kind of operation (matrix products, attention, softmax, norms, element-wise) at the shape's sizes.
    #[arg(long)]
    ops: bool,
    /// Run the step's linear-layer and head products with bfloat16 operands and f32 sums, as
    /// `train.precision = "bf16-mixed"` does (CPUs with AVX-512 BF16 only).
    #[arg(long)]
    bf16_products: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

fn shape(s: BenchShape) -> (GptConfig, usize) {
    match s {
        BenchShape::Nano => (GptConfig::new(65, 4, 4, 128, 64), 12),
        BenchShape::Medium => (GptConfig::new(8192, 6, 6, 384, 256), 8),
    }
}

/// A fixed pseudo-random token batch (the speed does not depend on the values).
fn batch(
    step: usize,
    b: usize,
    t: usize,
    vocab: usize,
    device: &Device,
) -> (Tensor<2, Int>, Tensor<2, Int>) {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ step as u64;
    let mut ids = Vec::with_capacity(b * (t + 1));
    for _ in 0..b * (t + 1) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        ids.push((x % vocab as u64) as i32);
    }
    let all = Tensor::<2, Int>::from_data(TensorData::new(ids, [b, t + 1]), device);
    (all.clone().slice(s![.., 0..t]), all.slice(s![.., 1..t + 1]))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `ember bench`.
pub fn run(a: BenchArgs) -> Result<()> {
    let selected = a.device.select()?;
    let (cfg, b) = shape(a.shape);
    if a.ops {
        return crate::bench_ops::run(&cfg, b, &selected.device, a.steps);
    }
    if a.bf16_products && (selected.is_wgpu || !ember_model::ops::bf16_products_available()) {
        anyhow::bail!(
            "--bf16-products: {} has no bfloat16 products (they need Burn's CPU backend on a CPU with AVX-512 BF16)",
            selected
        );
    }
    let device = selected.device.clone().autodiff();
    device.seed(0);
    let mut model = cfg.init(&device);
    // The optimizer `ember pretrain` runs (fused on the CPU), with PyTorch's AdamW defaults
    // as in benches/model/bench.py; no clipping on either side.
    let mut optim = Optimizer::new(
        AdamWConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.1,
        },
        cfg.tie_embeddings,
    );
    let t = cfg.block_size;
    let sync = || {
        selected
            .device
            .sync()
            .map_err(|e| anyhow::anyhow!("device error: {e:?}"))
    };
    // Each phase is timed to a device sync, so the split shows where a step's time goes.
    let (mut times, mut fwd, mut bwd, mut opt) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for step in 0..a.warmup + a.steps {
        let (x, y) = batch(step, b, t, cfg.vocab_size, &device);
        let start = Instant::now();
        let logits = ember_model::ops::with_bf16_products(a.bf16_products, || model.forward(x));
        let loss = masked_loss(logits, y, Tensor::ones([b, t], &device));
        sync()?;
        let t_fwd = start.elapsed().as_secs_f64();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        sync()?;
        let t_bwd = start.elapsed().as_secs_f64();
        model = optim.step(model, grads, 1e-3, 1.0);
        sync()?;
        if step >= a.warmup {
            let total = start.elapsed().as_secs_f64();
            times.push(total);
            fwd.push(t_fwd);
            bwd.push(t_bwd - t_fwd);
            opt.push(total - t_bwd);
        }
    }
    let step_s = median(times);
    let (fwd_s, bwd_s, opt_s) = (median(fwd), median(bwd), median(opt));
    let generation = if a.gen_tokens > 0 {
        Some(bench_generate(&cfg, a.gen_tokens, &selected.device)?)
    } else {
        None
    };
    let tokens_per_s = (b * t) as f64 / step_s;
    if a.json {
        let v = serde_json::json!({"shape": format!("{:?}", a.shape).to_lowercase(), "device": selected.description,
            "params": cfg.num_params(), "batch": b, "context": t, "step_ms": step_s * 1e3,
            "forward_ms": fwd_s * 1e3, "backward_ms": bwd_s * 1e3, "optimizer_ms": opt_s * 1e3,
            "train_tokens_per_s": tokens_per_s, "gen_tokens": a.gen_tokens, "gen_tokens_per_s": generation});
        println!("{v}");
    } else {
        println!(
            "{:?}: {} parameters, batch {b} x context {t}",
            a.shape,
            cfg.num_params()
        );
        println!(
            "training step   {:.1} ms (median of {}), {tokens_per_s:.0} tokens/s",
            step_s * 1e3,
            a.steps
        );
        println!(
            "  forward+loss  {:.1} ms, backward {:.1} ms, AdamW {:.1} ms",
            fwd_s * 1e3,
            bwd_s * 1e3,
            opt_s * 1e3
        );
        if let Some(g) = generation {
            println!(
                "generation      {g:.1} tokens/s ({} new tokens, KV cache, batch 1)",
                a.gen_tokens
            );
        }
    }
    Ok(())
}

/// Greedy generation speed with the KV cache. The context is widened to fit the request
/// (the per-token cost depends on the cached length, not on the position table's size).
fn bench_generate(cfg: &GptConfig, n: usize, device: &Device) -> Result<f64> {
    // Only used to turn ids into text; ids past its vocabulary print nothing.
    let (tok, _) = train_from_texts(&["x"], &TrainerConfig::new(262))?;
    let cfg = GptConfig {
        block_size: cfg.block_size.max(n + 1),
        ..cfg.clone()
    };
    device.seed(1);
    let model = cfg.init(device);
    let sampling = SamplingConfig {
        max_new_tokens: n,
        temperature: 0.0,
        ..Default::default()
    };
    let _ = generate(
        &model,
        &tok,
        &[1],
        &SamplingConfig {
            max_new_tokens: 4,
            ..sampling.clone()
        },
        |_| true,
    )?; // warm-up
    let g = generate(&model, &tok, &[1], &sampling, |_| true)?;
    Ok(g.tokens_per_sec)
}
