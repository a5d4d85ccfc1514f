//! `RUN/metrics.jsonl` (one JSON object per step and per evaluation) and `RUN/loss.svg`.

use std::io::Write;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{FormatError, Result};

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Row {
    /// An optimizer step.
    Train {
        /// Optimizer steps done, this one included.
        step: u64,
        /// Tokens trained on so far (masked-out positions excluded).
        tokens: u64,
        /// Mean loss of the step's tokens.
        loss: f32,
        /// Learning rate used.
        lr: f64,
        /// Global gradient norm before clipping.
        grad_norm: f64,
        /// Positions computed per second over this step (padding included).
        tokens_per_s: f64,
        /// Model FLOPs utilisation estimate, if the device's peak is known.
        mfu: Option<f64>,
        /// Seconds of training so far (across resumes).
        elapsed_s: f64,
        /// The reply-ranking term of the step (fine-tuning with `[contrast]`), if it had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rank: Option<RankStats>,
    },
    /// A step whose loss or gradient was not finite, so no update was made.
    Skipped {
        /// The step that was skipped.
        step: u64,
        /// What was not finite.
        reason: String,
    },
    /// An evaluation on the held-out split.
    Eval {
        /// Optimizer steps done.
        step: u64,
        /// Tokens trained on so far.
        tokens: u64,
        /// Mean held-out loss per target token.
        val_loss: f64,
        /// Held-out bits per UTF-8 byte (special tokens excluded).
        val_bpb: f64,
        /// Target tokens evaluated.
        val_tokens: u64,
        /// Seconds of training so far.
        elapsed_s: f64,
    },
}

impl Row {
    /// The step the row belongs to.
    pub fn step(&self) -> u64 {
        match self {
            Row::Train { step, .. } | Row::Skipped { step, .. } | Row::Eval { step, .. } => *step,
        }
    }
}

/// A step's reply-ranking term: its loss, and how often the true reply already scored highest.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RankStats {
    /// Mean over the ranked replies of the cross-entropy of picking the true one.
    pub loss: f32,
    /// Fraction of ranked replies whose true reply scored highest (strictly).
    pub accuracy: f32,
}

/// Appends rows to `metrics.jsonl`, flushing each.
pub struct MetricsLog {
    path: PathBuf,
    file: std::fs::File,
    rows: Vec<Row>,
}

impl MetricsLog {
    /// Opens `run/metrics.jsonl`, keeping only rows up to `keep_through` (the resumed
    /// checkpoint's step; rows past it belong to the interrupted tail and are redone).
    pub fn open(run: &Path, keep_through: Option<u64>) -> Result<Self> {
        let path = run.join("metrics.jsonl");
        let mut rows = Vec::new();
        if let Some(last) = keep_through {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for line in text.lines() {
                // A line cut by a kill mid-write is dropped, never fatal.
                if let Ok(row) = serde_json::from_str::<Row>(line)
                    && row.step() <= last
                {
                    rows.push(row);
                }
            }
        }
        let mut text = String::new();
        for r in &rows {
            text += &serde_json::to_string(r).unwrap_or_default();
            text.push('\n');
        }
        ember_files::write_atomic(&path, text.as_bytes())?;
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| FormatError::io(&path, "open for append", e))?;
        Ok(MetricsLog { path, file, rows })
    }

    /// Appends one row.
    pub fn push(&mut self, row: Row) -> Result<()> {
        let line = serde_json::to_string(&row).unwrap_or_default() + "\n";
        ember_files::write_all(&mut self.file, line.as_bytes())
            .and_then(|_| self.file.flush())
            .map_err(|e| FormatError::io(&self.path, "append", e))?;
        self.rows.push(row);
        Ok(())
    }

    /// All rows so far.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// Writes `loss.svg` beside `metrics.jsonl`.
    pub fn plot(&self, title: &str) -> Result<()> {
        let svg = loss_svg(&self.rows, title);
        let path = self.path.with_file_name("loss.svg");
        Ok(ember_files::write_atomic(&path, svg.as_bytes())?)
    }
}

/// An SVG chart of train loss (thin) and held-out loss (thick with points) against step.
pub fn loss_svg(rows: &[Row], title: &str) -> String {
    let train: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| match r {
            Row::Train { step, loss, .. } if loss.is_finite() => {
                Some((*step as f64, f64::from(*loss)))
            }
            _ => None,
        })
        .collect();
    let val: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| match r {
            Row::Eval { step, val_loss, .. } if val_loss.is_finite() => {
                Some((*step as f64, *val_loss))
            }
            _ => None,
        })
        .collect();
    let mut out = String::new();
    // Plotting into a String only fails on a backend error, which an in-memory SVG has none of;
    // an empty chart is still written rather than failing the run.
    let _ = draw(&mut out, &train, &val, title);
    out
}

fn draw<'a>(
    out: &'a mut String,
    train: &[(f64, f64)],
    val: &[(f64, f64)],
    title: &str,
) -> std::result::Result<(), Box<dyn std::error::Error + 'a>> {
    let root = SVGBackend::with_string(out, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let all = || train.iter().chain(val);
    let x_max = all().map(|p| p.0).fold(1.0, f64::max);
    let y_max = all().map(|p| p.1).fold(0.0, f64::max).max(1e-3) * 1.05;
    let y_min = all().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let y_min = if y_min.is_finite() {
        (y_min * 0.95).min(y_max * 0.9)
    } else {
        0.0
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(55)
        .build_cartesian_2d(0f64..x_max, y_min..y_max)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("loss (nats/token)")
        .draw()?;
    let blue = RGBColor(70, 110, 200);
    chart
        .draw_series(LineSeries::new(train.iter().copied(), blue.stroke_width(1)))?
        .label("train")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], blue));
    chart
        .draw_series(LineSeries::new(val.iter().copied(), RED.stroke_width(3)))?
        .label("validation")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(3)));
    chart.draw_series(val.iter().map(|p| Circle::new(*p, 4, RED.filled())))?;
    chart
        .configure_series_labels()
        .background_style(WHITE)
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
