//! The WGPU path computes what the CPU computes. A test binary of its own, with a harness that
//! can mark a test ignored at run time: without a WGPU adapter, `cargo test` prints
//! `test wgpu_logits_and_loss_match_the_cpu ... ignored, no WGPU adapter: ...`, so a green run
//! never hides an unexercised GPU path. (CI installs Mesa's lavapipe, so it runs there.)

// Tests unwrap: a panic carrying the error is how a test fails (clippy.toml, the same for unit tests).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use ember_model::checkpoint::weights_bytes;
use ember_model::{DeviceChoice, GptConfig, Precision, masked_loss, select_device};
use libtest_mimic::{Arguments, Completion, Failed, Trial};

#[allow(dead_code)]
mod common;

use common::{cpu, host, max_diff, model, tokens};

fn wgpu_logits_and_loss_match_the_cpu() -> Result<Completion, Failed> {
    let gpu = match select_device(DeviceChoice::Gpu, Precision::F32) {
        Ok(g) => g,
        Err(e) => {
            return Ok(Completion::ignored_with(format!(
                "no WGPU adapter ({e}); install mesa-vulkan-drivers to test the GPU path"
            )));
        }
    };
    let cfg = GptConfig::new(40, 2, 2, 16, 16);
    let on_cpu = model(&cfg, &cpu(21));
    let mut on_gpu = cfg.init(&gpu.device);
    let mut store = SafetensorsStore::from_bytes(Some(weights_bytes(&on_cpu)?));
    on_gpu.load_from(&mut store).map_err(|e| e.to_string())?;
    let ids: Vec<u32> = (0..12).map(|i| (i * 5 + 1) % 40).collect();
    let a = host(on_cpu.forward(tokens(&ids, &cpu(0))));
    let b = host(on_gpu.forward(tokens(&ids, &gpu.device)));
    let d = max_diff(&a, &b);
    if d >= 1e-3 {
        return Err(format!("{gpu}: logits differ from the CPU by {d}").into());
    }
    // The loss: fused kernel on the CPU, Burn's composed log-softmax on WGPU.
    let targets: Vec<u32> = ids.iter().map(|i| (i * 3 + 2) % 40).collect();
    let loss = |m: &ember_model::Gpt, dev: &Device| -> f32 {
        let logits = m.forward(tokens(&ids, dev));
        masked_loss(
            logits,
            tokens(&targets, dev),
            Tensor::ones([1, ids.len()], dev),
        )
        .into_scalar()
    };
    let (lc, lg) = (loss(&on_cpu, &cpu(0)), loss(&on_gpu, &gpu.device));
    if (lc - lg).abs() >= 1e-4 {
        return Err(format!("{gpu}: loss {lg} vs CPU {lc}").into());
    }
    Ok(Completion::Completed)
}

fn main() -> std::process::ExitCode {
    let args = Arguments::from_args();
    let trials = vec![Trial::ignorable_test(
        "wgpu_logits_and_loss_match_the_cpu",
        wgpu_logits_and_loss_match_the_cpu,
    )];
    libtest_mimic::run(&args, trials).exit_code()
}
