//! Device choice, made once per process: a real GPU through WGPU when there is one, Burn's CPU
//! backend (flex) otherwise. Never a panic: Burn's `Device::default()` in a WGPU build panics on
//! the first tensor when no adapter exists, so the adapter is probed with the fallible
//! `wgpu_options().init_with_setup()` instead.

use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::str::FromStr;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::task::{Context, Poll, Waker};

use burn::tensor::wgpu::wgpu::{AdapterInfo, Backends, DeviceType, Instance, InstanceDescriptor};
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
    PROBE.get_or_init(|| {
        let _one_at_a_time = instance_lock();
        let (device, setup) = Device::wgpu_options()
            .init_with_setup()
            .map_err(|e| e.to_string())?;
        let info = setup.adapter.get_info();
        let name = format!("{} ({:?}, {:?})", info.name, info.device_type, info.backend);
        Ok(Probe {
            device,
            name,
            software: info.device_type == DeviceType::Cpu,
        })
    })
}

/// Held while a WGPU instance is created or dropped: the Vulkan loader can crash when instances
/// come and go on several threads at once (tests select devices in parallel). A panic while
/// holding it leaves nothing to repair, so a poisoned lock is taken as is.
fn instance_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The adapters Vulkan, Metal and DX12 list, asked without opening a device; `None` if the
/// answer did not come at once (it does on native targets).
///
/// Why `auto` asks this before [`probe_wgpu`]: opening a device on a software adapter starts
/// threads (the driver's rasterisers, Burn's device service) that keep waking up and took CPU
/// time from the training threads even though nothing ran on them — the nano `ember bench`
/// step took 71–75 ms after such a probe and 60–63 ms without one (2-core VM).
fn listed_adapters() -> Option<&'static [AdapterInfo]> {
    static LISTED: OnceLock<Option<Vec<AdapterInfo>>> = OnceLock::new();
    LISTED
        .get_or_init(|| {
            let _one_at_a_time = instance_lock();
            let backends = Backends::PRIMARY;
            let instance = Instance::new(InstanceDescriptor {
                backends,
                ..InstanceDescriptor::new_without_display_handle()
            });
            let listing = pin!(instance.enumerate_adapters(backends));
            match listing.poll(&mut Context::from_waker(Waker::noop())) {
                Poll::Ready(adapters) => Some(adapters.iter().map(|a| a.get_info()).collect()),
                Poll::Pending => None,
            }
        })
        .as_deref()
}

/// Keeps the memory Burn's CPU backend frees for its next allocations.
///
/// Every CPU operation allocates a fresh output. With glibc's defaults, freed blocks at the top
/// of the heap go back to the kernel, and blocks over its mmap threshold (the medium model's
/// 64 MiB logits) are mapped and unmapped each time, so every step faulted the same memory in
/// again as new zeroed pages: page faults and `brk` calls were ~20% of the nano step's profile
/// (turning trimming off made it 8–20% faster), and the medium step took 33,000 faults
/// (130 MiB) per step with trimming off and none with mapping off too. This holds for the
/// main thread's heap, which is why [`on_compute_threads`] computes on the main thread: other
/// threads' heaps map any block over 64 MiB regardless. Memory then stays at the run's peak,
/// which a training run reaches in its first step anyway (peak RSS unchanged: ~0.8 GiB for the
/// medium `ember bench`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: `mallopt` only sets allocator parameters (under glibc's own lock); setting the
    // same values again is harmless, and a value it refuses returns 0 and changes nothing.
    #[allow(unsafe_code)]
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

/// "1 thread", "2 threads": the thread count as the device and MFU lines print it.
pub fn threads_phrase(threads: usize) -> String {
    let plural = if threads == 1 { "" } else { "s" };
    format!("{threads} thread{plural}")
}

fn cpu() -> SelectedDevice {
    keep_freed_memory();
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
            "cpu: Burn flex, {}, {}",
            threads_phrase(threads),
            if crate::ops::enabled() {
                let bf16 = match ember_kernels::Tile::best() {
                    ember_kernels::Tile::Portable => "none (no AVX-512 BF16)",
                    tile => tile.name(),
                };
                format!(
                    "fused kernels for {}, bf16-mixed products on {bf16}",
                    crate::ops::FUSED_OPS
                )
            } else {
                "fused kernels off (EMBER_FUSED_CPU=0)".to_string()
            }
        ),
        is_wgpu: false,
    }
}

/// Seeds `device`'s generator and runs `draw` (an initialisation, a forward pass with dropout)
/// while holding one process-wide lock. Burn keeps one generator per backend, shared by every
/// thread, and `Device::seed` resets it, so a seed and the draws that rely on it must not
/// interleave with another thread's: two trainings in one process (tests run in threads) got
/// different initial weights when one's seed landed between the other's seed and its draws
/// (`accumulating_two_micro_batches_equals_one_batch_of_twice_the_size` failed under load).
/// Burn draws parameters lazily, so an initialisation here must draw them all: `Gpt::drawn`.
pub fn with_seed<R>(device: &Device, seed: u64, draw: impl FnOnce() -> R) -> R {
    static LOCK: Mutex<()> = Mutex::new(());
    let _held = LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    device.seed(seed);
    draw()
}

/// Runs `work` (a whole command: training, evaluation, generation) as a thread of the global
/// rayon pool — the pool Burn's CPU backend, the `gemm` crate and Ember's kernels split their
/// work over — and returns its result. Call it from the main thread, first thing.
///
/// Why: called from outside the pool, every parallel operation hands all its pieces to the
/// pool and puts the calling thread to sleep until they are done — two thread switches per
/// operation, hundreds per training step (scheduler functions were ~12% of the nano step's
/// profile). As a pool thread, the caller works on a piece itself and wakes one helper: the
/// nano `ember bench` step went from 50 to 38 ms. The calling thread joins the pool (rather
/// than handing the work to a pool thread) so that the work allocates from the main heap,
/// which `keep_freed_memory` keeps. The `ember`
/// binary runs every command through this; library users who train on the CPU should do the
/// same (`examples/tiny_gpt.rs`).
pub fn on_compute_threads<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    keep_freed_memory();
    match rayon::ThreadPoolBuilder::new()
        .use_current_thread()
        .build_global()
    {
        Ok(()) => work(),
        // The pool already exists (built by the caller, or an earlier call): run on one of its
        // threads, or in place if this is one.
        Err(_) => rayon::scope(|_| work()),
    }
}

/// Picks the device for `choice` and sets its precision.
pub fn select_device(choice: DeviceChoice, precision: Precision) -> Result<SelectedDevice> {
    if choice == DeviceChoice::Auto
        && let Some(adapters) = listed_adapters()
        && adapters.iter().all(|a| a.device_type == DeviceType::Cpu)
    {
        return finish(
            cpu_instead(adapters.first().map(|a| a.name.as_str())),
            precision,
        );
    }
    // `--device cpu` never touches WGPU (probing prints driver noise and takes time).
    let probe = if choice == DeviceChoice::Cpu {
        &Err(String::new())
    } else {
        probe_wgpu()
    };
    let selected = match (choice, probe) {
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
        (DeviceChoice::Auto, Ok(p)) => cpu_instead(Some(p.name.as_str())),
        (DeviceChoice::Auto, Err(_)) => cpu_instead(None),
    };
    finish(selected, precision)
}

/// The CPU, for `auto` on a machine whose only adapter (if any) is a software one.
fn cpu_instead(software_adapter: Option<&str>) -> SelectedDevice {
    let mut c = cpu();
    c.description += &match software_adapter {
        Some(name) => format!(" (software GPU adapter {name} not used; --device gpu forces it)"),
        None => " (no GPU adapter found)".to_string(),
    };
    c
}

/// Sets the precision of the chosen device.
fn finish(mut selected: SelectedDevice, precision: Precision) -> Result<SelectedDevice> {
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
