//! A synthetic task and helpers shared by the loop tests.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ember_model::{DeviceChoice, GptConfig, Precision, select_device};
use ember_tokenizer::{Tokenizer, TrainerConfig, train_from_texts};
use ember_train::{FaultPlan, HostBatch, Run, Start, Task, TrainSection, mix_seed};

/// Burn's random generator is global to the backend, so runs in parallel test threads would
/// draw from each other's streams; every training run in these tests goes through here.
pub fn train(run: &Run<'_>, task: &dyn Task) -> ember_train::Result<ember_train::Outcome> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    ember_train::train(run, task)
}

/// Byte-level tokenizer (261 ids, no merges).
pub fn tokenizer() -> Tokenizer {
    train_from_texts(&["abc"], &TrainerConfig::new(261))
        .unwrap()
        .0
}

pub fn model_config() -> GptConfig {
    GptConfig::new(261, 2, 2, 32, 16).with_bias(false)
}

pub fn train_section() -> TrainSection {
    TrainSection {
        batch_size: 4,
        max_steps: 12,
        lr: 3e-3,
        min_lr: 3e-4,
        warmup_steps: 2,
        eval_every: 4,
        eval_tokens: 0,
        save_every: 4,
        keep_last: 10,
        log_every: 1000,
        ..Default::default()
    }
}

/// Windows of the cycle 0,1,…,period−1 at pseudo-random offsets; a pool of `pool` sequences
/// per step, handed out in micro-batches of `batch` (so 1×8 and 2×4 see the same sequences).
/// Optionally raises `stop` when step `stop_at` is requested.
pub struct Cycle {
    pub period: u32,
    pub batch: usize,
    pub seq: usize,
    pub stop_at: Option<(u64, Arc<AtomicBool>)>,
}

impl Cycle {
    pub fn new(batch: usize) -> Self {
        Cycle {
            period: 7,
            batch,
            seq: 16,
            stop_at: None,
        }
    }

    fn window(&self, seed: u64) -> (Vec<u32>, Vec<u32>) {
        let off = (seed % u64::from(self.period)) as u32;
        let ids: Vec<u32> = (0..=self.seq as u32)
            .map(|i| (i + off) % self.period)
            .collect();
        (ids[..self.seq].to_vec(), ids[1..].to_vec())
    }

    fn batch_of(&self, seeds: impl Iterator<Item = u64>) -> HostBatch {
        let mut hb = HostBatch {
            batch: 0,
            seq: self.seq,
            inputs: vec![],
            targets: vec![],
            mask: vec![],
            target_bytes: 0,
            bidirectional: 0,
            doc_starts: Vec::new(),
        };
        for s in seeds {
            let (x, y) = self.window(s);
            hb.inputs.extend(x);
            hb.targets.extend(y);
            hb.mask.extend(std::iter::repeat_n(1.0, self.seq));
            hb.target_bytes += self.seq as u64;
            hb.batch += 1;
        }
        hb
    }
}

impl Task for Cycle {
    fn train_batch(&self, step: u64, micro: usize) -> ember_train::Result<HostBatch> {
        if let Some((at, flag)) = &self.stop_at
            && step == *at
        {
            flag.store(true, Ordering::SeqCst);
        }
        let lo = micro * self.batch;
        Ok(self.batch_of((lo..lo + self.batch).map(|i| mix_seed(step, i as u64, 0))))
    }

    fn eval_batches(&self) -> usize {
        2
    }

    fn eval_batch(&self, i: usize) -> ember_train::Result<HostBatch> {
        Ok(self.batch_of((0..4).map(|k| (i * 4 + k) as u64)))
    }
}

pub fn run<'a>(dir: &Path, tok: &'a Tokenizer, train: TrainSection, start: Start) -> Run<'a> {
    Run {
        dir: dir.to_path_buf(),
        model_config: model_config(),
        tokenizer: tok,
        train,
        config_toml: "# test\n".into(),
        device: select_device(DeviceChoice::Cpu, Precision::F32).unwrap(),
        start,
        stop: Arc::new(AtomicBool::new(false)),
        faults: FaultPlan::default(),
        stage: ember_formats::run::Stage::Pretrain,
        title: "test".into(),
    }
}

/// The weights of a checkpoint directory, by name.
pub fn weights(dir: &Path) -> Vec<(String, Vec<f32>)> {
    let bytes = std::fs::read(dir.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut out: Vec<(String, Vec<f32>)> = st
        .tensors()
        .into_iter()
        .map(|(n, v)| {
            (
                n,
                v.data()
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// (step, loss) of every train row of a run's metrics.jsonl.
pub fn losses(run: &Path) -> Vec<(u64, f32)> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == "train")
        .map(|v| {
            (
                v["step"].as_u64().unwrap(),
                v["loss"].as_f64().unwrap() as f32,
            )
        })
        .collect()
}
