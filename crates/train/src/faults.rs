//! Faults injected on purpose, for the tests of the loop's guards.

/// Faults to inject, for tests of the guards (from `EMBER_FAULTS`, e.g. `nan@5,abort-save@6`,
/// `enospc-save@10`; `enospc@BYTES`, read by the file writers themselves, fills the disk
/// after that many bytes in any command).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FaultPlan {
    /// Steps whose loss is made NaN.
    pub nan_at: Vec<u64>,
    /// Step whose save aborts the process before its final rename.
    pub abort_save_at: Option<u64>,
    /// Step whose save finds the disk full halfway through the weights.
    pub enospc_save_at: Option<u64>,
}

impl FaultPlan {
    /// Reads `EMBER_FAULTS`; unset or unparsable parts mean no fault.
    pub fn from_env() -> Self {
        let mut plan = FaultPlan::default();
        for part in std::env::var("EMBER_FAULTS").unwrap_or_default().split(',') {
            match part.trim().split_once('@') {
                Some(("nan", s)) => plan.nan_at.extend(s.parse::<u64>().ok()),
                Some(("abort-save", s)) => plan.abort_save_at = s.parse().ok(),
                Some(("enospc-save", s)) => plan.enospc_save_at = s.parse().ok(),
                _ => {}
            }
        }
        plan
    }
}
