//! Exit codes, documented in docs/reference.md.

use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Done; nothing found.
    Success,
    /// The command failed: the cluster could not be read or changed as asked.
    Error,
    /// The command line was wrong.
    Usage,
    /// The command worked and found something: orphans, or a range that is not safe to delete.
    Findings,
    /// Ctrl-C: nothing more was changed.
    Interrupted,
    /// The reader of our output went away before all of it was written (SIGPIPE's convention).
    BrokenPipe,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Error => 1,
            Exit::Usage => 2,
            Exit::Findings => 3,
            Exit::Interrupted => 130,
            Exit::BrokenPipe => 141,
        }
    }

    /// The more severe of two outcomes, for commands that act on several ranges.
    pub fn worst(self, other: Exit) -> Exit {
        let rank = |e: Exit| match e {
            Exit::Success => 0,
            Exit::Findings => 1,
            Exit::Error => 2,
            Exit::Usage => 3,
            Exit::BrokenPipe => 4,
            Exit::Interrupted => 5,
        };
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        let all = [
            Exit::Success,
            Exit::Error,
            Exit::Usage,
            Exit::Findings,
            Exit::Interrupted,
            Exit::BrokenPipe,
        ];
        assert_eq!(all.map(Exit::code), [0, 1, 2, 3, 130, 141]);
    }

    #[test]
    fn worst_prefers_interruption_then_errors_then_findings() {
        assert_eq!(Exit::Success.worst(Exit::Findings), Exit::Findings);
        assert_eq!(Exit::Findings.worst(Exit::Error), Exit::Error);
        assert_eq!(Exit::Error.worst(Exit::Findings), Exit::Error);
        assert_eq!(Exit::Interrupted.worst(Exit::Error), Exit::Interrupted);
    }
}
