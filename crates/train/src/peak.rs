//! The peak FLOP/s that MFU is measured against. A fixed 80 GFLOP/s per thread (AVX2 at
//! 2.5 GHz) made an AVX-512 machine report 93–108% MFU, so the peak is now derived from what
//! the CPU has: vector width (detected at run time), fused multiply-add units and clock.

/// A peak and how it was obtained (shown in the log, `system.json` and the report).
#[derive(Debug, Clone, PartialEq)]
pub struct Peak {
    /// FLOP/s.
    pub flops: f64,
    /// How it was obtained, in words a reader can check.
    pub source: String,
}

/// f32 lanes of the widest vector unit this CPU has, and its name.
pub fn f32_lanes() -> (usize, &'static str) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return (16, "AVX-512");
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return (8, "AVX2+FMA");
        }
        (4, "SSE")
    }
    #[cfg(target_arch = "aarch64")]
    {
        (4, "NEON")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        (1, "scalar")
    }
}

/// The CPU's highest clock in GHz and where it was read: the kernel's cpufreq maximum where
/// there is one, else the largest `cpu MHz` in /proc/cpuinfo (virtual machines show the
/// nominal clock there).
pub fn clock_ghz() -> Option<(f64, &'static str)> {
    let max_khz = std::fs::read_to_string("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
        .ok()
        .and_then(|t| t.trim().parse::<f64>().ok())
        .filter(|k| *k > 0.0);
    if let Some(k) = max_khz {
        return Some((k / 1e6, "cpufreq maximum"));
    }
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .filter(|l| l.starts_with("cpu MHz"))
        .filter_map(|l| l.split_once(':')?.1.trim().parse::<f64>().ok())
        .filter(|m| *m > 0.0)
        .max_by(f64::total_cmp)
        .map(|m| (m / 1e3, "/proc/cpuinfo"))
}

/// Theoretical f32 peak of `threads` cores: lanes × 2 FMA units × 2 FLOP per FMA × clock.
/// Two FMA units per core is what every x86 server core since Haswell has (and Apple's and
/// Neoverse cores have more NEON pipes); a core with one unit makes the figure generous, so
/// MFU is never overstated. Unknown clock: 3 GHz, said in the source.
pub fn cpu_peak(threads: usize) -> Peak {
    let (lanes, isa) = f32_lanes();
    let (ghz, clock_from) = clock_ghz().unwrap_or((3.0, "assumed; no clock found"));
    let flops = threads as f64 * lanes as f64 * 2.0 * 2.0 * ghz * 1e9;
    Peak {
        flops,
        source: format!(
            "derived: {} × {lanes} f32 lanes ({isa}) × 2 FMA units × 2 FLOP × {ghz:.2} GHz ({clock_from}) = {:.0} GFLOP/s",
            ember_model::device::threads_phrase(threads),
            flops / 1e9
        ),
    }
}

/// The peak for a run: `[train] peak_flops` when set, else [`cpu_peak`] on the CPU; `None` on
/// a GPU (its peak depends on the adapter and is not guessed).
pub fn run_peak(configured: Option<f64>, is_gpu: bool, threads: usize) -> Option<Peak> {
    match configured {
        Some(f) => Some(Peak {
            flops: f,
            source: format!("[train] peak_flops = {:.0} GFLOP/s", f / 1e9),
        }),
        None => (!is_gpu).then(|| cpu_peak(threads)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The peak scales with the thread count and its line names the count in words a reader
    /// takes at face value ("1 thread", "2 threads").
    #[test]
    fn peak_scales_with_threads_and_names_them() {
        let (one, two) = (cpu_peak(1), cpu_peak(2));
        assert!(one.flops > 0.0);
        assert_eq!(two.flops, 2.0 * one.flops);
        assert!(
            one.source.starts_with("derived: 1 thread × "),
            "{}",
            one.source
        );
        assert!(
            two.source.starts_with("derived: 2 threads × "),
            "{}",
            two.source
        );
    }
}
