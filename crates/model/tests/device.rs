//! Device choice never panics; the WGPU path computes what the CPU computes.

use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use ember_model::checkpoint::weights_bytes;
use ember_model::{DeviceChoice, GptConfig, Precision, masked_loss, select_device};

use crate::common::{cpu, host, max_diff, model, tokens};

#[test]
fn cpu_and_auto_always_give_a_device() {
    let c = select_device(DeviceChoice::Cpu, Precision::F32).unwrap_or_else(|e| panic!("{e}"));
    assert!(c.description.starts_with("cpu: Burn flex") && !c.is_wgpu);
    let a = select_device(DeviceChoice::Auto, Precision::F32).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("auto chose: {a}");
    // Falling back to the CPU always says why (CI has only a software adapter, or none).
    assert!(
        a.is_wgpu
            || a.description.contains("software GPU adapter")
            || a.description.contains("no GPU adapter found"),
        "{a}"
    );
}

#[test]
fn wgpu_logits_match_the_cpu() {
    let gpu = match select_device(DeviceChoice::Gpu, Precision::F32) {
        Ok(g) => g,
        Err(e) => {
            // CI installs Mesa's lavapipe so this runs there; say loudly when it cannot.
            eprintln!(
                "SKIPPED PART: no WGPU adapter ({e}); install mesa-vulkan-drivers to test the GPU path"
            );
            return;
        }
    };
    let cfg = GptConfig::new(40, 2, 2, 16, 16);
    let on_cpu = model(&cfg, &cpu(21));
    let mut on_gpu = cfg.init(&gpu.device);
    let mut store = SafetensorsStore::from_bytes(Some(weights_bytes(&on_cpu).unwrap_or_default()));
    on_gpu
        .load_from(&mut store)
        .unwrap_or_else(|e| panic!("{e}"));
    let ids: Vec<u32> = (0..12).map(|i| (i * 5 + 1) % 40).collect();
    let a = host(on_cpu.forward(tokens(&ids, &cpu(0))));
    let b = host(on_gpu.forward(tokens(&ids, &gpu.device)));
    let d = max_diff(&a, &b);
    assert!(d < 1e-3, "{gpu}: logits differ from the CPU by {d}");
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
    assert!((lc - lg).abs() < 1e-4, "{gpu}: loss {lg} vs CPU {lc}");
}
