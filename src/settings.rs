//! Settings, resolved once from the command line and the environment (NO_COLOR, TERM, terminals),
//! as kubectl's `Complete`/`Validate` and ripgrep's `HiArgs` do.
//!
//! `cli` only declares and parses; `check` refuses the combinations clap cannot state, and
//! `Settings::resolve` fills every default. Everything after it reads these plain types, so no
//! command, renderer or decision knows about clap or asks the environment again.

use std::ffi::OsStr;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use crate::audit::findings::FindingKind;
use crate::cli::{Cli, Command, FleetArgs, MigrateArgs, MigrateStep, MigrateTarget, OutputArgs};
pub use crate::cli::{ColorChoice, Output};
use crate::cluster::Connection;
pub use crate::model::Subject;

/// Decided once from flags, environment and terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    pub output: Output,
    pub color: bool,
    pub headers: bool,
}

impl Style {
    /// An uncoloured table with headers.
    pub fn plain() -> Style {
        Style {
            output: Output::Table,
            color: false,
            headers: true,
        }
    }

    pub fn wide(&self) -> bool {
        self.output == Output::Wide
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
        Environment::of(
            std::env::var_os("NO_COLOR").as_deref(),
            std::env::var_os("TERM").as_deref(),
            std::io::stdout().is_terminal(),
            std::io::stderr().is_terminal(),
        )
    }

    /// From NO_COLOR, TERM, and whether stdout and stderr are terminals.
    fn of(no_color: Option<&OsStr>, term: Option<&OsStr>, stdout: bool, stderr: bool) -> Self {
        let dumb = term.is_some_and(|t| t == "dumb");
        Environment {
            no_color: no_color.is_some_and(|v| !v.is_empty()),
            stdout_terminal: stdout && !dumb,
            stderr_terminal: stderr && !dumb,
        }
    }
}

/// What is drawn live on the terminals, decided once from them and the task: nothing below
/// asks the environment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Live {
    /// A spinner on stderr while lists are read.
    pub reading: bool,
    /// Waits counted down on one stderr line (delete, migrate's retirement).
    pub countdown: bool,
    /// `status --watch` redraws its table in place instead of printing each one below the last.
    pub redraw: bool,
    /// Log lines in colour.
    pub log_colour: bool,
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
    pub live: Live,
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

impl DeleteTask {
    /// Retiring `names` as `delete NAME... --wait` does by default, within `timeout`.
    pub fn retiring(names: Vec<String>, timeout: Duration) -> DeleteTask {
        let default = |d: &str| humantime::parse_duration(d).expect("the defaults are durations");
        DeleteTask {
            names,
            wait: true,
            dry_run: DryRun::None,
            remove_finalizer: false,
            grace_period: default(crate::cli::GRACE_PERIOD),
            controller_timeout: default(crate::cli::CONTROLLER_TIMEOUT),
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

/// Rules between options that clap's declarations cannot state, refused as usage errors.
pub fn check(cli: &Cli) -> Result<(), clap::Error> {
    use clap::CommandFactory;
    let conflict =
        |msg: &str| Err(Cli::command().error(clap::error::ErrorKind::ArgumentConflict, msg));
    match &cli.command {
        Command::Delete(d) if d.remove_finalizer && !d.wait => conflict(
            "--remove-finalizer needs the wait (it acts after the grace period); drop --wait=false",
        ),
        Command::Status(s) if s.watch && !s.output.output.is_table() => conflict(
            "--watch redraws a table: use it with -o table or -o wide, or drop it for a document",
        ),
        Command::Status(s) if fleet(&s.fleet).is_some() && s.watch => {
            conflict("--watch follows one cluster: drop --all-contexts or --contexts")
        }
        Command::Status(s)
            if fleet(&s.fleet).is_some() && s.output.output == Output::Prometheus =>
        {
            conflict(
                "-o prometheus describes one cluster: run it per context, or use serve per cluster",
            )
        }
        _ => Ok(()),
    }
}

impl Settings {
    /// The settings of this run: flags, with the environment where the flags leave it open.
    pub fn resolve(cli: Cli, env: Environment) -> Settings {
        let g = cli.global;
        let style = |o: &OutputArgs| style(o.output, o.color, o.no_headers, &env);
        let (style, task) = match cli.command {
            Command::Status(a) => (
                style(&a.output),
                Task::Status(StatusTask {
                    names: a.names,
                    watch: a.watch,
                    fleet: fleet(&a.fleet),
                    cross_cluster: !a.no_cross_cluster,
                }),
            ),
            Command::Orphans(a) => (
                style(&a.output),
                Task::Orphans(OrphansTask {
                    kinds: a.kind,
                    include_recent: a.include_recent,
                    suggest_range: a.suggest_range,
                    fleet: fleet(&a.fleet),
                }),
            ),
            Command::Doctor(a) => (
                style(&a.output),
                Task::Doctor(DoctorTask {
                    fleet: fleet(&a.fleet),
                }),
            ),
            Command::Explain(a) => (style(&a.output), Task::Explain(a.subject)),
            Command::Delete(a) => (
                style(&a.output),
                Task::Delete(DeleteTask {
                    names: a.names,
                    wait: a.wait,
                    dry_run: a.dry_run,
                    remove_finalizer: a.remove_finalizer,
                    grace_period: a.grace_period,
                    controller_timeout: a.controller_timeout,
                    timeout: a.timeout,
                }),
            ),
            Command::Migrate(MigrateArgs {
                step: MigrateStep::Plan(a),
            }) => (
                style(&a.output),
                Task::Migrate(MigrateTask {
                    request: migrate_request(a.target),
                    run: None,
                }),
            ),
            Command::Migrate(MigrateArgs {
                step: MigrateStep::Run(a),
            }) => {
                let request = migrate_request(a.target);
                let backup_dir = a.backup_dir.unwrap_or_else(|| {
                    PathBuf::from(format!("servicecidr-migrate-{}", request.name))
                });
                (
                    style(&a.output),
                    Task::Migrate(MigrateTask {
                        request,
                        run: Some(MigrateRun {
                            yes: a.yes,
                            backup_dir,
                            dry_run: a.dry_run,
                            timeout: a.timeout,
                        }),
                    }),
                )
            }
            Command::Serve(a) => (Style::plain(), Task::Serve(ServeTask { listen: a.listen })),
            Command::Completion { shell } => (Style::plain(), Task::Completion(shell)),
        };
        Settings {
            connection: Connection {
                kubeconfig: g.kubeconfig,
                context: g.context,
                cluster: g.cluster,
                user: g.user,
                request_timeout: request_timeout(g.request_timeout, task.fleet()),
            },
            chunk_size: g.chunk_size,
            verbose: g.verbose,
            style,
            live: Live {
                reading: match &task {
                    Task::Status(t) => !t.watch && read_progress(&style, &env),
                    Task::Orphans(t) => !t.suggest_range && read_progress(&style, &env),
                    Task::Doctor(t) => t.fleet.is_none() && read_progress(&style, &env),
                    _ => false,
                },
                countdown: env.stderr_terminal,
                redraw: env.stdout_terminal,
                log_colour: env.stderr_terminal,
            },
            task,
        }
    }
}

/// The contexts to read, each named once in the order first named; None for one cluster.
fn fleet(args: &FleetArgs) -> Option<Fleet> {
    let contexts = if args.all_contexts {
        None
    } else if !args.contexts.is_empty() {
        // Each named once, in the order first named.
        let mut names: Vec<String> = Vec::new();
        for n in &args.contexts {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
        Some(names)
    } else {
        return None;
    };
    Some(Fleet {
        contexts,
        concurrency: args.concurrency as usize,
    })
}

/// The migration asked for; the new range is named after its first CIDR unless --name says.
fn migrate_request(t: MigrateTarget) -> crate::audit::migrate::Request {
    let name = t.name.unwrap_or_else(|| {
        format!(
            "range-{}",
            t.to[0].to_string().replace(['.', ':', '/'], "-")
        )
    });
    crate::audit::migrate::Request {
        from: t.from,
        to: t.to,
        name,
        allow_overlap: t.allow_overlap,
        only: t.only,
    }
}

/// A spinner while lists are read: for a person at a terminal reading a table, never in a
/// document, and never for a script reading a headerless table from a pipe.
fn read_progress(style: &Style, env: &Environment) -> bool {
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
    use clap::Parser;

    #[test]
    fn durations_and_names_are_checked_before_anything_runs() {
        for bad in [
            &["delete", "blue", "--timeout", "500000000000y"][..],
            &["delete", "blue", "--grace-period", "400d"],
            &["delete", "blue", "--controller-timeout", "500000000000y"],
            &["delete", "blue/status"],
            &["delete", "Blue"],
            &["status", "a_b"],
        ] {
            let argv = std::iter::once("kubectl-servicecidr").chain(bad.iter().copied());
            assert!(Cli::try_parse_from(argv).is_err(), "{bad:?}");
        }
        let cli =
            Cli::try_parse_from(["kubectl-servicecidr", "delete", "blue", "--timeout", "365d"])
                .unwrap();
        assert!(check(&cli).is_ok());
    }

    #[test]
    fn wait_is_on_by_default_and_remove_finalizer_needs_it() {
        let parse = |args: &[&str]| {
            let cli = Cli::try_parse_from(
                std::iter::once("kubectl-servicecidr").chain(args.iter().copied()),
            )
            .unwrap();
            let ok = check(&cli).is_ok();
            let Command::Delete(d) = cli.command else {
                panic!("expected delete")
            };
            (d.wait, ok)
        };
        assert_eq!(parse(&["delete", "blue"]), (true, true));
        assert_eq!(parse(&["delete", "--wait", "blue"]), (true, true));
        assert_eq!(parse(&["delete", "blue", "--wait=false"]), (false, true));
        assert_eq!(
            parse(&["delete", "blue", "--wait=false", "--remove-finalizer"]),
            (false, false)
        );
    }

    #[test]
    fn global_flags_go_anywhere_and_dry_run_defaults_to_client() {
        let cli = Cli::try_parse_from([
            "kubectl-servicecidr",
            "delete",
            "blue",
            "--context",
            "x",
            "-o",
            "json",
            "--dry-run",
        ])
        .unwrap();
        assert_eq!(cli.global.context.as_deref(), Some("x"));
        let Command::Delete(d) = &cli.command else {
            panic!("expected delete")
        };
        assert_eq!(d.dry_run, DryRun::Client);
        assert_eq!(d.output.output, Output::Json);
        assert!(Cli::try_parse_from(["kubectl-servicecidr", "delete"]).is_err());
        let settings = Settings::resolve(cli, Environment::default());
        assert_eq!(settings.connection.context.as_deref(), Some("x"));
        assert_eq!(settings.style.output, Output::Json);
        assert!(matches!(
            settings.task,
            Task::Delete(DeleteTask {
                dry_run: DryRun::Client,
                ..
            })
        ));
    }

    /// Options that would do nothing are not offered, and the combinations that make no sense
    /// are refused as usage errors before anything runs.
    #[test]
    fn only_options_that_do_something_are_taken() {
        let refused = |args: &[&str]| {
            let argv = std::iter::once("kubectl-servicecidr").chain(args.iter().copied());
            match Cli::try_parse_from(argv) {
                Err(e) => e.kind() != clap::error::ErrorKind::DisplayHelp,
                Ok(cli) => check(&cli).is_err(),
            }
        };
        for bad in [
            &["delete", "blue", "-o", "wide"][..],
            &["completion", "bash", "-o", "json"],
            &["completion", "bash", "--no-headers"],
            &["status", "--watch", "-o", "json"],
            &["status", "-w", "-o", "yaml"],
            &["orphans", "--suggest-range", "-o", "json"],
            &["orphans", "--suggest-range", "--no-headers"],
            &["orphans", "--kind", "orphaned"],
            &["status", "--all-contexts", "--watch"],
            &["status", "--contexts", "a", "-o", "prometheus"],
        ] {
            assert!(refused(bad), "{bad:?} was taken");
        }
        for good in [
            &["delete", "blue", "-o", "yaml", "--no-headers"][..],
            &["status", "--watch", "-o", "wide"],
            &["orphans", "--kind", "Orphaned,AtRisk", "-o", "json"],
            &["orphans", "--suggest-range"],
            &["--context", "x", "status"],
            &["status", "-o", "prometheus"],
            &["status", "--all-contexts", "-o", "json"],
        ] {
            assert!(!refused(good), "{good:?} was refused");
        }
    }

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

    #[test]
    fn no_color_counts_when_not_empty_and_term_dumb_is_no_terminal() {
        let os = |s| Some(OsStr::new(s));
        let env = Environment::of;
        assert_eq!(
            env(None, None, true, true),
            Environment {
                no_color: false,
                stdout_terminal: true,
                stderr_terminal: true
            }
        );
        assert!(!env(os(""), None, true, true).no_color);
        assert!(env(os("1"), None, true, true).no_color);
        let dumb = env(None, os("dumb"), true, true);
        assert!(!dumb.stdout_terminal && !dumb.stderr_terminal);
        let stdout_only = env(None, os("xterm"), true, false);
        assert!(stdout_only.stdout_terminal && !stdout_only.stderr_terminal);
        let stderr_only = env(None, os("xterm"), false, true);
        assert!(!stderr_only.stdout_terminal && stderr_only.stderr_terminal);
    }

    fn resolve(args: &[&str], env: Environment) -> Settings {
        let argv = std::iter::once("kubectl-servicecidr").chain(args.iter().copied());
        let cli = Cli::try_parse_from(argv).unwrap();
        check(&cli).unwrap();
        Settings::resolve(cli, env)
    }

    /// Which contexts a fleet reads, each once in the order first named, and that a fleet's
    /// requests get the fleet's bound; a single cluster's get none unless asked.
    #[test]
    fn a_fleet_is_decided_once_for_every_command_that_reads_one() {
        let fleet_of = |args: &[&str]| {
            let s = resolve(args, Environment::default());
            let fleet = match &s.task {
                Task::Status(t) => t.fleet.as_ref(),
                Task::Orphans(t) => t.fleet.as_ref(),
                Task::Doctor(t) => t.fleet.as_ref(),
                _ => None,
            };
            assert_eq!(s.task.fleet(), fleet.is_some(), "{args:?}");
            let timeout = s.connection.request_timeout;
            assert_eq!(timeout.is_some(), fleet.is_some(), "{args:?}");
            fleet.map(|f| (f.contexts.clone(), f.concurrency))
        };
        let ab = Some(vec!["a".to_owned(), "b".to_owned()]);
        assert_eq!(
            fleet_of(&["status", "--contexts", "a,b,a"]),
            Some((ab.clone(), 8))
        );
        assert_eq!(fleet_of(&["status", "--all-contexts"]), Some((None, 8)));
        assert_eq!(fleet_of(&["status"]), None);
        assert_eq!(
            fleet_of(&[
                "orphans",
                "--contexts",
                "b",
                "--contexts",
                "a,b",
                "--concurrency",
                "2"
            ]),
            Some((Some(vec!["b".to_owned(), "a".to_owned()]), 2))
        );
        assert_eq!(fleet_of(&["orphans"]), None);
        assert_eq!(fleet_of(&["doctor", "--all-contexts"]), Some((None, 8)));
        assert_eq!(fleet_of(&["doctor"]), None);
        assert_eq!(fleet_of(&["delete", "blue"]), None);
        let cross = |args: &[&str]| match resolve(args, Environment::default()).task {
            Task::Status(t) => t.cross_cluster,
            _ => unreachable!(),
        };
        assert!(cross(&["status", "--all-contexts"]));
        assert!(!cross(&["status", "--all-contexts", "--no-cross-cluster"]));
    }

    /// A spinner while lists are read, for a person at a terminal, only where a command reads
    /// lists once: not under `--watch`, `--suggest-range` or a fleet's own progress.
    #[test]
    fn the_reading_spinner_is_decided_per_command() {
        let at_terminal = Environment {
            no_color: false,
            stdout_terminal: true,
            stderr_terminal: true,
        };
        let reading = |args: &[&str], env| resolve(args, env).live.reading;
        for (args, want) in [
            (&["status"][..], true),
            (&["status", "--watch"], false),
            (&["orphans"], true),
            (&["orphans", "--suggest-range"], false),
            (&["doctor"], true),
            (&["doctor", "--all-contexts"], false),
            (&["delete", "blue"], false),
        ] {
            assert_eq!(reading(args, at_terminal), want, "{args:?}");
            assert!(!reading(args, Environment::default()), "{args:?} in a pipe");
        }
    }
}
