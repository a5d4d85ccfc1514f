//! Train a tiny GPT on a repeated sentence with Ember's shared training loop, then load its
//! newest checkpoint and generate. A few seconds on a CPU. It shows the library API a stage is
//! built from: a [`Task`] that hands out deterministic batches, and [`train`] doing the rest
//! (AdamW, schedule, clipping, evaluation, checkpoints, metrics.jsonl, loss.svg).
//!
//! `cargo test --workspace` runs it with the shared build; on its own (a separate feature set,
//! so a first run rebuilds Burn): cargo run -p ember-examples --example tiny_gpt

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Result;
use ember_model::{
    DeviceChoice, GptConfig, Precision, SamplingConfig, checkpoint, generate, select_device,
};
use ember_tokenizer::{TrainerConfig, train_from_texts};
use ember_train::{FaultPlan, HostBatch, Run, Start, Task, TrainSection, train};

const TEXT: &str = "the quick brown fox jumps over the lazy dog. ";

/// Windows of the encoded text; batch `(step, micro)` is a pure function of its arguments,
/// which is what lets the loop resume a run exactly.
struct Windows {
    ids: Vec<u32>,
    batch: usize,
    seq: usize,
}

impl Windows {
    fn batch_at(&self, offsets: impl Iterator<Item = usize>) -> HostBatch {
        let (mut inputs, mut targets) = (Vec::new(), Vec::new());
        for off in offsets {
            let off = off % (self.ids.len() - self.seq - 1);
            inputs.extend_from_slice(&self.ids[off..off + self.seq]);
            targets.extend_from_slice(&self.ids[off + 1..off + self.seq + 1]);
        }
        let n = inputs.len();
        HostBatch {
            batch: n / self.seq,
            seq: self.seq,
            inputs,
            targets,
            mask: vec![1.0; n],
            target_bytes: n as u64,
            bidirectional: 0,
            doc_starts: Vec::new(),
        }
    }
}

impl Task for Windows {
    fn train_batch(&self, step: u64, _micro: usize) -> ember_train::Result<HostBatch> {
        Ok(self.batch_at((0..self.batch).map(|b| step as usize * 7 + b * 13)))
    }
    fn eval_batches(&self) -> usize {
        1
    }
    fn eval_batch(&self, _i: usize) -> ember_train::Result<HostBatch> {
        Ok(self.batch_at((0..self.batch).map(|b| b * 5)))
    }
}

/// Trains for `steps` in `out` and returns (first loss, last held-out loss).
fn run(out: &Path, steps: u64) -> Result<(f64, f64)> {
    let (tok, _) = train_from_texts(&[TEXT.repeat(50)], &TrainerConfig::new(300))?;
    let task = Windows {
        ids: tok.encode(&TEXT.repeat(40)),
        batch: 8,
        seq: 16,
    };
    let device = select_device(DeviceChoice::Cpu, Precision::F32)?;
    println!("device: {device}");
    let run = Run {
        dir: out.join("tiny-gpt"),
        model_config: GptConfig::new(tok.vocab_size(), 2, 2, 32, 16),
        tokenizer: &tok,
        train: TrainSection {
            batch_size: 8,
            max_steps: steps,
            lr: 3e-3,
            min_lr: 3e-4,
            warmup_steps: 10,
            eval_every: 25,
            save_every: 50,
            log_every: 25,
            ..Default::default()
        },
        config_toml: "# tiny_gpt example\n".into(),
        device: device.clone(),
        start: Start::Fresh,
        stop: Arc::new(AtomicBool::new(false)),
        faults: FaultPlan::default(),
        title: "tiny_gpt".into(),
        stage: ember_formats::run::Stage::Pretrain,
    };
    let outcome = train(&run, &task)?;
    let first = std::fs::read_to_string(run.dir.join("metrics.jsonl"))?
        .lines()
        .find_map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .ok()
                .filter(|v| v["kind"] == "eval")
        })
        .and_then(|v| v["val_loss"].as_f64())
        .unwrap_or(f64::NAN);
    let ck = checkpoint::load(&outcome.checkpoint, &device.device)?;
    let sampling = SamplingConfig {
        max_new_tokens: 12,
        temperature: 0.0,
        ..Default::default()
    };
    let prompt = ck.tokenizer.encode("the quick");
    let g = generate(&ck.model, &ck.tokenizer, &prompt, &sampling, |_| true)?;
    println!("the quick{}", g.text);
    Ok((first, outcome.last_eval.map_or(f64::NAN, |e| e.0)))
}

fn main() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("ember-example-tiny-gpt-{}", std::process::id()));
    // On the CPU, training runs fastest from a thread of the compute pool (see the function).
    let result = ember_model::on_compute_threads(|| run(&dir, 150)).map(|_| ());
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[cfg(test)]
mod tests {
    #[test]
    fn example_runs_and_learns() {
        let dir = std::env::temp_dir().join(format!(
            "ember-example-tiny-gpt-test-{}",
            std::process::id()
        ));
        let result = super::run(&dir, 100);
        let _ = std::fs::remove_dir_all(&dir);
        let (first, last) = result.unwrap_or_else(|e| panic!("{e:#}"));
        assert!(
            last < first / 3.0,
            "held-out loss should fall well below its start: {first} -> {last}"
        );
    }
}
