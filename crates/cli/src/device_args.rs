//! `--device` and `--dtype`, shared by every command that runs a model.

use anyhow::Result;
use clap::{Args, ValueEnum};
use ember_model::{DeviceChoice, Precision, SelectedDevice, select_device};

/// Where to run.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DeviceFlag {
    /// A hardware GPU through WGPU if there is one, else the CPU.
    Auto,
    /// WGPU on any adapter (software Vulkan included); an error if there is none.
    Gpu,
    /// Burn's CPU backend.
    Cpu,
}

/// Float precision.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum DtypeFlag {
    /// 32-bit floats (default).
    F32,
    /// bfloat16, where the device computes it.
    Bf16,
}

/// Device flags.
#[derive(Args, Debug, Clone)]
pub struct DeviceArgs {
    /// Device: auto picks a hardware GPU when there is one, else the CPU.
    #[arg(long, value_enum, default_value = "auto")]
    pub device: DeviceFlag,
    /// Float precision of weights and activations.
    #[arg(long, value_enum, default_value = "f32")]
    pub dtype: DtypeFlag,
}

impl DeviceArgs {
    /// Picks the device and announces it on stderr.
    pub fn select(&self) -> Result<SelectedDevice> {
        let choice = match self.device {
            DeviceFlag::Auto => DeviceChoice::Auto,
            DeviceFlag::Gpu => DeviceChoice::Gpu,
            DeviceFlag::Cpu => DeviceChoice::Cpu,
        };
        let precision = match self.dtype {
            DtypeFlag::F32 => Precision::F32,
            DtypeFlag::Bf16 => Precision::Bf16,
        };
        let selected = select_device(choice, precision)?;
        eprintln!("device: {selected}");
        Ok(selected)
    }
}
