//! Accuracies with their 95% confidence intervals.
//!
//! A single accuracy gets the Wilson score interval: unlike the normal approximation
//! (p ± 1.96·√(p(1−p)/n), lm-evaluation-harness's stderr) it stays inside [0, 1] and is not
//! zero-width at 0 or n correct, which matters for GSM8K on small models. A mean over groups
//! (BLiMP's paradigms) uses the normal approximation of the mean of independent binomials.

use serde::{Deserialize, Serialize};

/// z for a two-sided 95% interval.
pub const Z95: f64 = 1.959_963_984_540_054;

/// An accuracy, its item count and its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// Fraction correct.
    pub value: f64,
    /// Items scored correct (for a mean over groups: the sum over groups).
    pub correct: u64,
    /// Items scored.
    pub n: u64,
    /// Lower end of the 95% interval.
    pub lo: f64,
    /// Upper end of the 95% interval.
    pub hi: f64,
}

impl Accuracy {
    /// `correct` out of `n`, with the Wilson interval.
    pub fn of(correct: u64, n: u64) -> Accuracy {
        let (lo, hi) = wilson(correct, n);
        Accuracy {
            value: if n == 0 {
                0.0
            } else {
                correct as f64 / n as f64
            },
            correct,
            n,
            lo,
            hi,
        }
    }

    /// The unweighted mean of per-group accuracies `(correct, n)` (groups with n = 0 are left
    /// out), with a normal-approximation interval clamped to [0, 1].
    pub fn mean_of_groups(groups: &[(u64, u64)]) -> Accuracy {
        let used: Vec<(u64, u64)> = groups.iter().copied().filter(|g| g.1 > 0).collect();
        let k = used.len() as f64;
        if used.is_empty() {
            return Accuracy::of(0, 0);
        }
        let mean = used.iter().map(|&(c, n)| c as f64 / n as f64).sum::<f64>() / k;
        let var = used
            .iter()
            .map(|&(c, n)| {
                let p = c as f64 / n as f64;
                p * (1.0 - p) / n as f64
            })
            .sum::<f64>()
            / (k * k);
        let half = Z95 * var.sqrt();
        Accuracy {
            value: mean,
            correct: used.iter().map(|g| g.0).sum(),
            n: used.iter().map(|g| g.1).sum(),
            lo: (mean - half).max(0.0),
            hi: (mean + half).min(1.0),
        }
    }

    /// `"61.2 ± 3.1"`-style percent text with the interval, e.g. `61.2 [58.1, 64.3]`.
    pub fn percent(&self) -> String {
        format!(
            "{:.1} [{:.1}, {:.1}]",
            100.0 * self.value,
            100.0 * self.lo,
            100.0 * self.hi
        )
    }
}

/// Wilson score interval for `correct` successes in `n` trials (95%); (0, 1) when n = 0.
pub fn wilson(correct: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    let (n, p, z2) = (n as f64, correct as f64 / n as f64, Z95 * Z95);
    let denom = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denom;
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    // At 0 or n correct the bounds are exactly 0 or 1; say so rather than 1 − ε.
    let lo = if correct == 0 {
        0.0
    } else {
        (centre - half).max(0.0)
    };
    let hi = if correct as f64 == n {
        1.0
    } else {
        (centre + half).min(1.0)
    };
    (lo, hi)
}
