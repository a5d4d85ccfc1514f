//! Range checks for numeric flags, run by clap while it parses the command line, so a bad value
//! is refused before any file is read or written. clap's message names the flag and the value;
//! each parser here adds the allowed range, e.g.
//! `invalid value '-1' for '--temperature <TEMPERATURE>': expected a number from 0 (greedy) to 10`.
//!
//! ```
//! use ember_cli::checks;
//! assert!(checks::temperature("0.7").is_ok());
//! assert!(checks::temperature("nan").is_err());
//! assert!(checks::top_p("2").is_err());
//! assert!(checks::at_least_one("0").is_err());
//! ```

use std::str::FromStr;

fn number<T: FromStr>(s: &str, what: &str) -> Result<T, String> {
    s.trim()
        .parse::<T>()
        .map_err(|_| format!("expected {what}"))
}

/// A finite float within `[lo, hi]` (either end may be open).
fn float_in(s: &str, lo: f64, lo_open: bool, hi: f64, expected: &str) -> Result<f64, String> {
    let v: f64 = number(s, expected)?;
    let above = if lo_open { v > lo } else { v >= lo };
    if v.is_finite() && above && v <= hi {
        Ok(v)
    } else {
        Err(format!("expected {expected}"))
    }
}

/// The largest count any flag accepts (2³²): anything larger is a typo, and keeping counts
/// this small means sums and products of them cannot overflow.
pub const MAX_COUNT: u64 = 1 << 32;

fn count_in(s: &str, lo: u64, hi: u64) -> Result<usize, String> {
    let expected = format!("a whole number from {lo} to {hi}");
    let v: u64 = number(s, &expected)?;
    if (lo..=hi).contains(&v) {
        usize::try_from(v).map_err(|_| format!("expected {expected}"))
    } else {
        Err(format!("expected {expected}"))
    }
}

/// A count of at least 1 (steps, tokens, items, threads).
pub fn at_least_one(s: &str) -> Result<usize, String> {
    count_in(s, 1, MAX_COUNT)
}

/// A count that may be 0 (0 meaning "none" or "all", as the flag's help says).
pub fn count(s: &str) -> Result<usize, String> {
    count_in(s, 0, MAX_COUNT)
}

/// Most new tokens of a generation: 1 to 2²⁰ (the context length caps it further).
pub fn max_new_tokens(s: &str) -> Result<usize, String> {
    count_in(s, 1, 1 << 20)
}

/// Tokens to generate in `ember bench`: 0 (skip) to 65,536 (the benchmark model's context
/// grows to fit them).
pub fn bench_tokens(s: &str) -> Result<usize, String> {
    count_in(s, 0, 1 << 16)
}

/// Threads: 1 to 1024.
pub fn threads(s: &str) -> Result<usize, String> {
    count_in(s, 1, 1024)
}

/// Threads where 0 means "all cores": 0 to 1024.
pub fn threads_or_all(s: &str) -> Result<usize, String> {
    count_in(s, 0, 1024)
}

/// Sampling temperature: 0 (greedy) to 10.
pub fn temperature(s: &str) -> Result<f32, String> {
    float_in(s, 0.0, false, 10.0, "a number from 0 (greedy) to 10").map(|v| v as f32)
}

/// Nucleus sampling mass: above 0, at most 1 (1 = no limit).
pub fn top_p(s: &str) -> Result<f32, String> {
    float_in(
        s,
        0.0,
        true,
        1.0,
        "a number above 0 and at most 1 (1: no limit)",
    )
    .map(|v| v as f32)
}

/// Repetition penalty: above 0, at most 10 (1 = off).
pub fn repetition_penalty(s: &str) -> Result<f32, String> {
    float_in(
        s,
        0.0,
        true,
        10.0,
        "a number above 0 and at most 10 (1: off)",
    )
    .map(|v| v as f32)
}

/// The held-out share of `ember prepare`: above 0 and below 0.5.
pub fn val_fraction(s: &str) -> Result<f64, String> {
    let expected = "a number above 0 and below 0.5";
    let v = float_in(s, 0.0, true, 0.5, expected)?;
    if v < 0.5 {
        Ok(v)
    } else {
        Err(format!("expected {expected}"))
    }
}

/// A prompt of the samples task: some text.
pub fn prompt(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        Err("expected some text to continue (the prompt is empty)".into())
    } else {
        Ok(s.to_string())
    }
}
