//! What the user sees while `delete` waits (one rewritten line on a terminal, a line per change of
//! phase otherwise) and while long lists are read (a spinner, on a terminal only). Always stderr,
//! so `-o json` stays clean.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::audit::retire::{Phase, Waiting};
use crate::cluster::OnPage;
use crate::render::{count, sanitize, to_stderr};

pub struct Progress {
    tty: bool,
}

/// The words for a phase, also used in results that end mid-way.
pub fn phase_text(phase: &Phase) -> String {
    match phase {
        Phase::NotStarted => "not started".into(),
        Phase::Checking => "checking every IP in use against the ranges to delete".into(),
        Phase::Terminating => "already terminating: resuming the wait".into(),
        Phase::Deleted => "guarded and deleted".into(),
        Phase::Releasing => {
            "grace period over: re-checking every IP in use before releasing".into()
        }
        Phase::Waiting(w) => match w {
            Waiting::Grace => "grace period".into(),
            Waiting::Controller => "waiting for the service-cidr controller".into(),
            Waiting::ControllerBlocked => {
                "blocked by the controller: IPAddresses still reference it".into()
            }
            Waiting::OtherFinalizers(f) => {
                format!("waiting for other finalizers: {}", f.join(", "))
            }
        },
    }
}

impl Progress {
    pub fn new(tty: bool) -> Self {
        Progress { tty }
    }

    pub fn is_tty(&self) -> bool {
        self.tty
    }

    /// A new phase; `changed` is false when only the countdown moves.
    pub fn show(&self, name: &str, text: &str, changed: bool, countdown: Option<(&str, Duration)>) {
        let name = sanitize(name);
        if self.tty {
            let detail = countdown
                .map(|(what, d)| format!(": {what} {}s", d.as_secs() + 1))
                .unwrap_or_default();
            to_stderr(&format!("\r\x1b[Kservicecidr {name:?}: {text}{detail}"));
        } else if changed {
            to_stderr(&format!("servicecidr {name:?}: {text}\n"));
        }
    }

    /// A line of its own that stays, whatever the terminal.
    pub fn note(&self, line: &str) {
        if self.tty {
            to_stderr("\r\x1b[K");
        }
        to_stderr(&format!("{line}\n"));
    }

    pub fn finish(&self) {
        if self.tty {
            to_stderr("\r\x1b[K");
        }
    }
}

/// What `status` and `orphans` are reading, and how far along, on a terminal's stderr while the
/// lists run: one spinner line, cleared before the result is printed.
pub struct ReadProgress {
    bar: indicatif::ProgressBar,
    counts: Arc<Mutex<BTreeMap<&'static str, usize>>>,
}

impl ReadProgress {
    /// Draws only when `show` (a terminal, a table for people); otherwise hidden.
    pub fn new(show: bool) -> ReadProgress {
        let bar = if show {
            indicatif::ProgressBar::new_spinner()
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} reading {msg} ({elapsed})")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.set_message("servicecidrs and ipaddresses");
        if show {
            bar.enable_steady_tick(Duration::from_millis(120));
        }
        ReadProgress {
            bar,
            counts: Arc::default(),
        }
    }

    /// The hook for `Cluster::with_progress`.
    pub fn on_page(&self) -> OnPage {
        let bar = self.bar.clone();
        let counts = Arc::clone(&self.counts);
        Arc::new(move |what, n| {
            let Ok(mut counts) = counts.lock() else {
                return;
            };
            counts.insert(what, n);
            let parts: Vec<String> = counts
                .iter()
                .map(|(what, n)| format!("{what}: {} so far", count(*n as u128)))
                .collect();
            bar.set_message(parts.join(", "));
        })
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Drop for ReadProgress {
    /// A failed read leaves no spinner behind its error line.
    fn drop(&mut self) {
        self.finish();
    }
}
