//! Train a tiny GPT on a repeated sentence, save a checkpoint, load it, and generate from it.
//! A few seconds on a CPU. It shows the library pieces a full training loop (schedules,
//! clipping, exact resume, metrics: the pretraining stage) is built from.
//!
//! `cargo test --workspace` runs it with the shared build; on its own (a separate feature set,
//! so a first run rebuilds Burn): cargo run -p ember-examples --example tiny_gpt

use std::path::Path;

use anyhow::Result;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use ember_model::{
    DeviceChoice, GptConfig, Precision, SamplingConfig, checkpoint, generate, masked_loss,
    select_device,
};
use ember_tokenizer::{TrainerConfig, train_from_texts};

const TEXT: &str = "the quick brown fox jumps over the lazy dog. ";

/// Trains for `steps` and returns (first loss, last loss).
fn run(out: &Path, steps: usize) -> Result<(f32, f32)> {
    let (tok, _) = train_from_texts(&[TEXT.repeat(50)], &TrainerConfig::new(300))?;
    let ids = tok.encode(&TEXT.repeat(40));
    let selected = select_device(DeviceChoice::Cpu, Precision::F32)?;
    println!("device: {selected}");
    let device = selected.device.clone().autodiff();
    device.seed(42);
    let cfg = GptConfig::new(tok.vocab_size(), 2, 2, 32, 16);
    let mut model = cfg.init(&device);
    let mut optim = AdamWConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(0.0)
        .init();
    let (batch, t) = (8, cfg.block_size);
    let (mut first, mut last) = (0.0, 0.0);
    for step in 0..steps {
        // Windows at fixed, spread-out offsets: deterministic and enough for a toy.
        let mut x = Vec::with_capacity(batch * t);
        let mut y = Vec::with_capacity(batch * t);
        for b in 0..batch {
            let off = (step * 7 + b * 13) % (ids.len() - t - 1);
            x.extend(ids[off..off + t].iter().map(|&i| i as i32));
            y.extend(ids[off + 1..off + t + 1].iter().map(|&i| i as i32));
        }
        let x = Tensor::<2, Int>::from_data(TensorData::new(x, [batch, t]), &device);
        let y = Tensor::<2, Int>::from_data(TensorData::new(y, [batch, t]), &device);
        let loss = masked_loss(model.forward(x), y, Tensor::ones([batch, t], &device));
        let value: f32 = loss.clone().into_scalar();
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(3e-3, model, grads);
        if step == 0 {
            first = value;
        }
        last = value;
        if step % 20 == 0 || step + 1 == steps {
            println!("step {step:3}  loss {value:.3}");
        }
    }
    let dir = out.join("tiny-gpt");
    checkpoint::save(&dir, &model.valid(), &cfg, &tok, &[])?;
    let ck = checkpoint::load(&dir, &selected.device)?;
    let sampling = SamplingConfig {
        max_new_tokens: 12,
        temperature: 0.0,
        ..Default::default()
    };
    let prompt = ck.tokenizer.encode("the quick");
    let g = generate(&ck.model, &ck.tokenizer, &prompt, &sampling, |_| true)?;
    println!("the quick{}", g.text);
    Ok((first, last))
}

fn main() -> Result<()> {
    let dir = std::env::temp_dir().join("ember-example-tiny-gpt");
    std::fs::create_dir_all(&dir)?;
    run(&dir, 150).map(|_| ())
}

#[cfg(test)]
mod tests {
    #[test]
    fn example_runs_and_learns() {
        let dir = std::env::temp_dir().join(format!(
            "ember-example-tiny-gpt-test-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let result = super::run(&dir, 100);
        let _ = std::fs::remove_dir_all(&dir);
        let (first, last) = result.unwrap_or_else(|e| panic!("{e:#}"));
        assert!(
            last < first / 3.0,
            "loss should fall well below its start: {first} -> {last}"
        );
    }
}
