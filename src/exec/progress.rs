//! Progress bars: one per running stage, with items done / total and ETA.
//! Hidden when stdout is not a terminal.

use std::io::IsTerminal;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Owns the bars of one run.
pub struct ProgressBoard {
    multi: MultiProgress,
}

impl ProgressBoard {
    /// Visible only when `enabled` and stdout is a terminal.
    pub fn new(enabled: bool) -> Self {
        let target = if enabled && std::io::stdout().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        ProgressBoard {
            multi: MultiProgress::with_draw_target(target),
        }
    }

    pub fn hidden() -> Self {
        ProgressBoard {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::hidden()),
        }
    }

    pub fn stage(&self, name: &str) -> Progress {
        let bar = self.multi.add(ProgressBar::new(0));
        bar.set_style(
            ProgressStyle::with_template("{prefix:>14} [{bar:30}] {pos}/{len} {msg} (eta {eta})")
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_prefix(name.to_string());
        Progress { bar }
    }
}

/// The progress handle a stage reports through.
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// A handle that draws nothing (tests, library use).
    pub fn hidden() -> Self {
        Progress {
            bar: ProgressBar::hidden(),
        }
    }
    pub fn set_total(&self, n: u64) {
        self.bar.set_length(n);
    }
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }
    pub fn set_message(&self, msg: impl Into<String>) {
        self.bar.set_message(msg.into());
    }
    pub(crate) fn finish(&self, msg: &str) {
        self.bar.finish_with_message(msg.to_string());
    }
}
