//! Device choice, made once per process: a real GPU through WGPU when there is one, Burn's CPU
//! backend (flex) otherwise. Never a panic: Burn's `Device::default()` in a WGPU build panics on
//! the first tensor when no adapter exists, so the adapter is probed with the fallible
//! `wgpu_options().init_with_setup()` instead.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use burn::tensor::wgpu::wgpu::DeviceType;
use burn::tensor::{Device, FloatDType};

use crate::error::{ModelError, Result};

/// Which device to run on (`--device`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// A hardware GPU if WGPU finds one, else the CPU. Software Vulkan (lavapipe) counts as no
    /// GPU: it is about ten times slower than the CPU backend.
    #[default]
    Auto,
    /// WGPU on whatever adapter it finds, software ones included; an error if there is none.
    Gpu,
    /// Burn's CPU backend (flex).
    Cpu,
}

impl FromStr for DeviceChoice {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "gpu" => Ok(DeviceChoice::Gpu),
            "cpu" => Ok(DeviceChoice::Cpu),
            _ => Err(ModelError::Device(format!(
                "unknown device {s:?}; expected auto, gpu or cpu"
            ))),
        }
    }
}

/// Floating-point precision of parameters and activations (`--dtype`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Precision {
    /// 32-bit floats: the default everywhere.
    #[default]
    F32,
    /// bfloat16, where the device computes it.
    Bf16,
}

impl FromStr for Precision {
    type Err = ModelError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            _ => Err(ModelError::Device(format!(
                "unknown dtype {s:?}; expected f32 or bf16"
            ))),
        }
    }
}

/// The chosen device and a sentence saying what it is.
#[derive(Clone, Debug)]
pub struct SelectedDevice {
    /// The (non-autodiff) device; call `.autodiff()` on it to train.
    pub device: Device,
    /// E.g. `gpu: NVIDIA H100 (DiscreteGpu, Vulkan)` or `cpu: Burn flex, 2 threads`.
    pub description: String,
    /// True when the device is WGPU (a GPU, or a forced software adapter).
    pub is_wgpu: bool,
}

impl fmt::Display for SelectedDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description)
    }
}

struct Probe {
    device: Device,
    name: String,
    software: bool,
}

/// WGPU can be initialised once per process, so the probe's answer is kept.
fn probe_wgpu() -> &'static std::result::Result<Probe, String> {
    static PROBE: OnceLock<std::result::Result<Probe, String>> = OnceLock::new();
    PROBE.get_or_init(|| match Device::wgpu_options().init_with_setup() {
        Ok((device, setup)) => {
            let info = setup.adapter.get_info();
            let name = format!("{} ({:?}, {:?})", info.name, info.device_type, info.backend);
            Ok(Probe {
                device,
                name,
                software: info.device_type == DeviceType::Cpu,
            })
        }
        Err(e) => Err(e.to_string()),
    })
}

fn cpu() -> SelectedDevice {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(threads);
    SelectedDevice {
        device: Device::flex(),
        description: format!(
            "cpu: Burn flex, {threads} threads, {}",
            if crate::fused::enabled() {
                "fused kernels for cross-entropy, GELU and attention"
            } else {
                "fused kernels off (EMBER_FUSED_CPU=0)"
            }
        ),
        is_wgpu: false,
    }
}

/// Picks the device for `choice` and sets its precision.
pub fn select_device(choice: DeviceChoice, precision: Precision) -> Result<SelectedDevice> {
    // `--device cpu` never touches WGPU (probing prints driver noise and takes time).
    let probe = if choice == DeviceChoice::Cpu {
        &Err(String::new())
    } else {
        probe_wgpu()
    };
    let mut selected = match (choice, probe) {
        (DeviceChoice::Cpu, _) => cpu(),
        (DeviceChoice::Gpu, Ok(p)) => SelectedDevice {
            device: p.device.clone(),
            description: format!("gpu: {}", p.name),
            is_wgpu: true,
        },
        (DeviceChoice::Gpu, Err(e)) => {
            return Err(ModelError::Device(format!(
                "--device gpu: no GPU adapter found through WGPU (Vulkan/Metal/DX12): {e}; use --device cpu or auto"
            )));
        }
        (DeviceChoice::Auto, Ok(p)) if !p.software => SelectedDevice {
            device: p.device.clone(),
            description: format!("gpu: {}", p.name),
            is_wgpu: true,
        },
        (DeviceChoice::Auto, Ok(p)) => {
            let mut c = cpu();
            c.description += &format!(
                " (software GPU adapter {} not used; --device gpu forces it)",
                p.name
            );
            c
        }
        (DeviceChoice::Auto, Err(_)) => {
            let mut c = cpu();
            c.description += " (no GPU adapter found)";
            c
        }
    };
    if precision == Precision::Bf16 {
        if !selected.device.supports_dtype(FloatDType::BF16) {
            return Err(ModelError::Device(format!(
                "{selected}: does not compute bf16; use --dtype f32"
            )));
        }
        // Fails only if a tensor already exists on the device; then the dtype cannot change.
        if let Err(e) = selected.device.configure(FloatDType::BF16) {
            return Err(ModelError::Device(format!(
                "{selected}: cannot switch to bf16 now ({e:?}); choose the dtype before any work"
            )));
        }
        selected.description += ", bf16";
    } else {
        selected.description += ", f32";
    }
    Ok(selected)
}
