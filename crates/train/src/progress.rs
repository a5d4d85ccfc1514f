//! Progress: an indicatif bar on a terminal; plain lines every `log_every` steps otherwise
//! (a bar in a log file is unreadable, and indicatif draws nothing when not on a terminal).

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// The run's progress display.
pub struct Progress {
    bar: Option<ProgressBar>,
    log_every: u64,
}

impl Progress {
    /// A display for steps `start..total`.
    pub fn new(start: u64, total: u64, log_every: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30.cyan/blue} step {pos}/{len} {msg} [{elapsed_precise} < {eta_precise}]",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_position(start);
            bar.reset_eta();
            bar.enable_steady_tick(Duration::from_millis(500));
            bar
        });
        Progress {
            bar,
            log_every: log_every.max(1),
        }
    }

    /// Reports step `step` with its summary `msg`.
    pub fn step(&self, step: u64, total: u64, msg: &str) {
        match &self.bar {
            Some(bar) => {
                bar.set_position(step);
                bar.set_message(msg.to_string());
            }
            None if step.is_multiple_of(self.log_every) || step == total => {
                println!("step {step}/{total} {msg}");
            }
            None => {}
        }
    }

    /// Prints a line above the bar (or plainly).
    pub fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => println!("{text}"),
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
