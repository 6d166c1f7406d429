//! Settings, resolved once from the command line and the environment (NO_COLOR, TERM, terminals).
//!
//! `cli` only parses; everything after it reads these plain types, so no command, renderer or
//! decision knows about clap or asks the environment again.

use std::io::IsTerminal;
use std::time::Duration;

use crate::audit::findings::FindingKind;
use crate::cluster::Connection;
use crate::render::Style;

/// How a result is printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Table,
    Wide,
    Json,
    Yaml,
    /// The Prometheus text exposition (`status` only).
    Prometheus,
}

impl Output {
    pub const ALL: [Output; 5] = [
        Output::Table,
        Output::Wide,
        Output::Json,
        Output::Yaml,
        Output::Prometheus,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Output::Table => "table",
            Output::Wide => "wide",
            Output::Json => "json",
            Output::Yaml => "yaml",
            Output::Prometheus => "prometheus",
        }
    }

    pub fn is_table(self) -> bool {
        matches!(self, Output::Table | Output::Wide)
    }
}

pub use crate::model::DryRun;

/// Each request of a fleet read is bounded even without --request-timeout: a cluster that never
/// answers costs its slot this long and no more, and the other contexts still get their answer.
pub const FLEET_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Completion runs while a person waits at a prompt: a slow cluster must not hang the shell.
pub const COMPLETION_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The bound on each request, decided once: --request-timeout as kubectl means it (0 is none), and
/// for a fleet read, our default when none is given.
pub fn request_timeout(flag: Duration, fleet: bool) -> Option<Duration> {
    match (flag.is_zero(), fleet) {
        (false, _) => Some(flag),
        (true, true) => Some(FLEET_REQUEST_TIMEOUT),
        (true, false) => None,
    }
}

/// What the process was started with besides its arguments, read once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Environment {
    /// NO_COLOR set and not empty (no-color.org).
    pub no_color: bool,
    /// stdout is a terminal that takes escape sequences (not `TERM=dumb`).
    pub stdout_terminal: bool,
    /// stderr is such a terminal.
    pub stderr_terminal: bool,
}

impl Environment {
    pub fn read() -> Environment {
        let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        Environment {
            no_color: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
            stdout_terminal: std::io::stdout().is_terminal() && !dumb,
            stderr_terminal: std::io::stderr().is_terminal() && !dumb,
        }
    }
}

/// When to colour, as the user asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

impl ColorChoice {
    pub const ALL: [ColorChoice; 3] = [ColorChoice::Auto, ColorChoice::Always, ColorChoice::Never];

    pub fn name(self) -> &'static str {
        match self {
            ColorChoice::Auto => "auto",
            ColorChoice::Always => "always",
            ColorChoice::Never => "never",
        }
    }
}

/// Everything a run needs, decided.
#[derive(Debug)]
pub struct Settings {
    pub connection: Connection,
    /// Objects per list request.
    pub chunk_size: u32,
    /// -v: requests, -vv: more.
    pub verbose: u8,
    pub style: Style,
    pub env: Environment,
    pub task: Task,
}

impl Task {
    /// Whether the task reads many contexts.
    pub fn fleet(&self) -> bool {
        match self {
            Task::Status(t) => t.fleet.is_some(),
            Task::Orphans(t) => t.fleet.is_some(),
            Task::Doctor(t) => t.fleet.is_some(),
            _ => false,
        }
    }
}

#[derive(Debug)]
pub enum Task {
    Status(StatusTask),
    Orphans(OrphansTask),
    Doctor(DoctorTask),
    Explain(Subject),
    Delete(DeleteTask),
    Serve(ServeTask),
    Migrate(MigrateTask),
    Completion(clap_complete::Shell),
}

#[derive(Debug)]
pub struct MigrateTask {
    pub request: crate::audit::migrate::Request,
    /// None for `plan`.
    pub run: Option<MigrateRun>,
}

#[derive(Debug)]
pub struct MigrateRun {
    pub yes: bool,
    pub backup_dir: std::path::PathBuf,
    pub dry_run: DryRun,
    pub timeout: Duration,
}

#[derive(Debug)]
pub struct ServeTask {
    pub listen: std::net::SocketAddr,
}

/// Many clusters at once: the contexts of the merged kubeconfig.
#[derive(Debug, Clone)]
pub struct Fleet {
    /// None: every context.
    pub contexts: Option<Vec<String>>,
    /// Contexts read at the same time.
    pub concurrency: usize,
}

#[derive(Debug)]
pub struct StatusTask {
    pub names: Vec<String>,
    pub watch: bool,
    pub fleet: Option<Fleet>,
    /// With a fleet: report ranges that overlap between clusters.
    pub cross_cluster: bool,
}

#[derive(Debug)]
pub struct OrphansTask {
    /// Empty: every kind.
    pub kinds: Vec<FindingKind>,
    pub include_recent: bool,
    pub suggest_range: bool,
    pub fleet: Option<Fleet>,
}

/// What `explain` explains.
#[derive(Debug, Clone)]
pub enum Subject {
    Ip(std::net::IpAddr),
    Range(String),
}

#[derive(Debug)]
pub struct DoctorTask {
    pub fleet: Option<Fleet>,
}

#[derive(Debug)]
pub struct DeleteTask {
    pub names: Vec<String>,
    pub wait: bool,
    pub dry_run: DryRun,
    pub remove_finalizer: bool,
    pub grace_period: Duration,
    pub controller_timeout: Duration,
    pub timeout: Duration,
}

/// `delete`'s defaults, also what `migrate run` retires the old ranges with: the controller's own
/// grace period, and how long it gets after it before the plugin takes its part.
pub const GRACE_PERIOD: &str = "10s";
pub const CONTROLLER_TIMEOUT: &str = "30s";

impl DeleteTask {
    /// Retiring `names` as `delete NAME... --wait` does by default, within `timeout`.
    pub fn retiring(names: Vec<String>, timeout: Duration) -> DeleteTask {
        let default = |d: &str| humantime::parse_duration(d).expect("the defaults are durations");
        DeleteTask {
            names,
            wait: true,
            dry_run: DryRun::None,
            remove_finalizer: false,
            grace_period: default(GRACE_PERIOD),
            controller_timeout: default(CONTROLLER_TIMEOUT),
            timeout,
        }
    }

    /// The options of each range's retirement.
    pub fn retire_options(&self) -> crate::audit::retire::RetireOptions {
        crate::audit::retire::RetireOptions {
            grace: self.grace_period,
            controller_timeout: self.controller_timeout,
            remove_finalizer: self.remove_finalizer,
        }
    }
}

/// A spinner while lists are read: for a person at a terminal reading a table, never in a
/// document, and never for a script reading a headerless table from a pipe.
pub fn read_progress(style: &Style, env: &Environment) -> bool {
    env.stderr_terminal && style.output.is_table() && (style.headers || env.stdout_terminal)
}

/// Colour only for tables, and on `auto` only on a terminal without NO_COLOR.
pub fn style(output: Output, color: ColorChoice, no_headers: bool, env: &Environment) -> Style {
    let color = output.is_table()
        && match color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => env.stdout_terminal && !env.no_color,
        };
    Style {
        output,
        color,
        headers: !no_headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrate_retires_with_deletes_own_defaults() {
        let t = DeleteTask::retiring(vec!["old".into()], Duration::from_secs(60));
        assert_eq!(
            (t.grace_period, t.controller_timeout, t.wait, t.dry_run),
            (
                Duration::from_secs(10),
                Duration::from_secs(30),
                true,
                DryRun::None
            )
        );
    }

    #[test]
    fn the_request_timeout_is_decided_once_as_kubectl_means_it() {
        let s = Duration::from_secs;
        assert_eq!(request_timeout(s(0), false), None);
        assert_eq!(request_timeout(s(3), false), Some(s(3)));
        assert_eq!(request_timeout(s(0), true), Some(FLEET_REQUEST_TIMEOUT));
        assert_eq!(request_timeout(s(3), true), Some(s(3)));
    }

    #[test]
    fn colour_follows_the_flag_then_no_color_then_the_terminal() {
        let env = |no_color, stdout_terminal| Environment {
            no_color,
            stdout_terminal,
            stderr_terminal: false,
        };
        for (no_color, tty, want) in [
            (false, true, true),
            (true, true, false),
            (false, false, false),
        ] {
            let style = style(Output::Table, ColorChoice::Auto, false, &env(no_color, tty));
            assert_eq!(style.color, want, "NO_COLOR={no_color} tty={tty}");
        }
        let always = style(Output::Table, ColorChoice::Always, false, &env(true, false));
        assert!(always.color);
        let json = style(Output::Json, ColorChoice::Always, false, &env(false, true));
        assert!(!json.color);
        let never = style(Output::Wide, ColorChoice::Never, true, &env(false, true));
        assert!(!never.color && !never.headers);
    }

    #[test]
    fn read_progress_only_for_a_person_at_a_terminal() {
        let env = |stdout_terminal, stderr_terminal| Environment {
            no_color: false,
            stdout_terminal,
            stderr_terminal,
        };
        let table = |no_headers| {
            style(
                Output::Table,
                ColorChoice::Auto,
                no_headers,
                &env(false, true),
            )
        };
        let json = style(Output::Json, ColorChoice::Auto, false, &env(true, true));
        assert!(read_progress(&table(false), &env(true, true)));
        assert!(read_progress(&table(false), &env(false, true)));
        assert!(!read_progress(&table(false), &env(true, false)));
        assert!(!read_progress(&json, &env(true, true)));
        assert!(!read_progress(&table(true), &env(false, true)));
        assert!(read_progress(&table(true), &env(true, true)));
    }
}
