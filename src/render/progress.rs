//! What the user sees while `delete` waits: one rewritten line on a terminal, a line per change of
//! phase otherwise. Always stderr, so `-o json` stays clean.

use std::time::Duration;

use crate::audit::retire::{Phase, Waiting};
use crate::render::{sanitize, to_stderr};

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
