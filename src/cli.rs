//! The command line as declared: kubectl's global flags (kubectl passes plugins none),
//! subcommands, formats. Parsing only: `settings` resolves what the flags leave open.

use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{ArgAction, Args, Parser, Subcommand};

use crate::audit::findings::FindingKind;
use crate::model::{DryRun, Subject};

#[derive(Debug, Parser)]
#[command(
    name = "kubectl-servicecidr",
    bin_name = "kubectl servicecidr",
    version,
    about = "Status, orphan audit and safe deletion of Kubernetes Service CIDRs",
    after_help = "Examples:\n  kubectl servicecidr status\n  kubectl servicecidr orphans --suggest-range\n  kubectl servicecidr delete blue --wait"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// kubectl's own flags, accepted before or after the subcommand as kubectl accepts them.
#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct Global {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The kubeconfig cluster to use
    #[arg(long, global = true, value_name = "NAME")]
    pub cluster: Option<String>,
    /// The kubeconfig user to use
    #[arg(long, global = true, value_name = "NAME")]
    pub user: Option<String>,
    /// How long to wait for each request before giving up (30s, 1m, or a number of seconds; 0: no limit)
    #[arg(long, global = true, value_name = "DURATION", default_value = "0", value_parser = parse_request_timeout)]
    pub request_timeout: Duration,
    /// Log requests to stderr (-v: requests, -vv: more); credentials are never logged
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,
    /// Objects per list request (page size); pages are read as they arrive, so memory does not grow with it
    #[arg(long, global = true, default_value_t = crate::cluster::DEFAULT_CHUNK_SIZE, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub chunk_size: u32,
}

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

/// `delete`'s defaults, also what `migrate run` retires the old ranges with: the controller's own
/// grace period, and how long it gets after it before the plugin takes its part.
pub const GRACE_PERIOD: &str = "10s";
pub const CONTROLLER_TIMEOUT: &str = "30s";

/// A value parser offering `values` by name, with help, and giving the plain value back.
fn choices<T: Copy + PartialEq + Send + Sync + 'static>(
    values: &'static [T],
    name: fn(T) -> &'static str,
    help: fn(T) -> &'static str,
) -> impl TypedValueParser<Value = T> {
    PossibleValuesParser::new(
        values
            .iter()
            .map(move |&v| PossibleValue::new(name(v)).help(help(v))),
    )
    .try_map(move |s| {
        values
            .iter()
            .copied()
            .find(|&v| name(v) == s)
            .ok_or("not one of the choices")
    })
}

fn output_help(o: Output) -> &'static str {
    match o {
        Output::Table => "A table for people",
        Output::Wide => "The table with finalizers, conditions and blocking counts",
        Output::Json => "A JSON document with stable field names",
        Output::Yaml => "The same document as YAML",
        Output::Prometheus => {
            "Prometheus metrics (text exposition), e.g. for node-exporter's textfile collector"
        }
    }
}

fn statuses() -> impl TypedValueParser<Value = Output> {
    choices(&Output::ALL, Output::name, output_help)
}

/// `orphans`: tables and documents, no metrics.
fn tables() -> impl TypedValueParser<Value = Output> {
    choices(
        &[Output::Table, Output::Wide, Output::Json, Output::Yaml],
        Output::name,
        output_help,
    )
}

/// `delete` prints one row per range: there is nothing wider to show, and no metrics.
fn reports() -> impl TypedValueParser<Value = Output> {
    choices(
        &[Output::Table, Output::Json, Output::Yaml],
        Output::name,
        output_help,
    )
}

fn kinds() -> impl TypedValueParser<Value = FindingKind> {
    choices(&FindingKind::ALL, FindingKind::name, |k| match k {
        FindingKind::Orphaned => "An IP in use inside no existing ServiceCIDR",
        FindingKind::AtRisk => "Inside terminating ranges only: an orphan once they go",
        FindingKind::DanglingParent => "The IPAddress names a Service that no longer exists",
        FindingKind::WrongParent => "The Service named exists but does not hold that IP",
        FindingKind::Unrecorded => "A Service ClusterIP with no IPAddress object",
        FindingKind::Unmanaged => "An IPAddress the apiserver's allocator did not make",
    })
}

fn dry_runs() -> impl TypedValueParser<Value = DryRun> {
    choices(&DryRun::ALL, DryRun::name, |d| match d {
        DryRun::None => "Change the cluster",
        DryRun::Client => "Only run the checks, send nothing that changes the cluster",
        DryRun::Server => "Also send each write as a server-side dry run",
    })
}

fn colors() -> impl TypedValueParser<Value = ColorChoice> {
    choices(&ColorChoice::ALL, ColorChoice::name, |c| match c {
        ColorChoice::Auto => "Colour when stdout is a terminal and NO_COLOR is unset",
        ColorChoice::Always => "Always colour tables",
        ColorChoice::Never => "Never colour",
    })
}

/// Many clusters: `status` and `orphans` across kubeconfig contexts.
#[derive(Debug, Args)]
#[command(next_help_heading = "Many clusters")]
pub struct FleetArgs {
    /// Every context of the kubeconfig, read concurrently; one failing does not stop the others
    #[arg(long, conflicts_with_all = ["contexts", "context", "cluster", "user"])]
    pub all_contexts: bool,
    /// These contexts (comma-separated), read concurrently
    #[arg(long, value_delimiter = ',', value_name = "NAME", conflicts_with_all = ["context", "cluster", "user"])]
    pub contexts: Vec<String>,
    /// How many contexts to read at the same time
    #[arg(long, default_value_t = 8, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub concurrency: u32,
}

/// How a command prints. `status` takes every format; the others narrow `-o` to theirs.
#[derive(Debug, Args)]
#[command(next_help_heading = "Output options")]
pub struct OutputArgs {
    /// Output format
    #[arg(short, long, default_value = "table", value_parser = statuses(), value_name = "FORMAT")]
    pub output: Output,
    /// Leave out table headers
    #[arg(long)]
    pub no_headers: bool,
    /// When to colour the table
    #[arg(long, default_value = "auto", value_parser = colors(), value_name = "WHEN")]
    pub color: ColorChoice,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every ServiceCIDR with its ranges, state and usage (allocated, free, percent)
    #[command(
        after_help = "Examples:\n  kubectl servicecidr status\n  kubectl servicecidr status kubernetes blue -o wide\n  kubectl servicecidr status -o json | jq '.serviceCIDRs[].cidrs[].usagePercent'\n  kubectl servicecidr status --watch"
    )]
    Status(StatusArgs),
    /// IPAddresses whose range is gone, and every other inconsistency between Services,
    /// IPAddresses and ServiceCIDRs, with what to do about each
    #[command(
        mut_arg("output", |a| a.value_parser(tables())),
        after_help = "Exit status: 0 when clean, 3 when anything was found.\n\nExamples:\n  kubectl servicecidr orphans\n  kubectl servicecidr orphans --kind Orphaned,AtRisk -o json\n  kubectl servicecidr orphans --suggest-range | kubectl apply -f -"
    )]
    Orphans(OrphansArgs),
    /// Check what surrounds the ServiceCIDRs: the apiservers' flags, the controller, nodes,
    /// versions and events, each check with its evidence and remedy (read only)
    #[command(
        mut_arg("output", |a| a.value_parser(reports())),
        after_help = "Exit status: 0 when every check is ok or skipped, 3 when one warns or fails.\n\nExamples:\n  kubectl servicecidr doctor\n  kubectl servicecidr doctor -o json | jq '.checks[] | select(.status != \"ok\")'\n  kubectl servicecidr doctor --all-contexts"
    )]
    Doctor(DoctorArgs),
    /// One IP or one ServiceCIDR as the allocator sees it: the ranges holding an IP, its
    /// IPAddress, Service and findings; why a range does or does not hand out IPs, and where a
    /// new ClusterIP comes from
    #[command(
        mut_arg("output", |a| a.value_parser(reports())),
        after_help = "Examples:\n  kubectl servicecidr explain 10.96.0.10\n  kubectl servicecidr explain blue\n  kubectl servicecidr explain blue -o json"
    )]
    Explain(ExplainArgs),
    /// Retire ServiceCIDRs safely: check, delete, wait out the grace period, release
    #[command(
        mut_arg("output", |a| a.value_parser(reports())),
        after_help = "Exit status: 0 when deleted, 3 when refused as unsafe or an IP appeared during the grace period.\n\nExamples:\n  kubectl servicecidr delete blue --dry-run\n  kubectl servicecidr delete blue --wait\n  kubectl servicecidr delete blue green --wait --remove-finalizer"
    )]
    Delete(DeleteArgs),
    /// Renumber: move every Service out of old ranges into a new one, then retire the old ones
    #[command(disable_help_subcommand = true)]
    Migrate(MigrateArgs),
    /// Export Prometheus metrics over HTTP: list once, then follow watches (/metrics, /healthz,
    /// /readyz); ends on SIGTERM or Ctrl-C
    #[command(
        after_help = "Examples:\n  kubectl servicecidr serve --listen 127.0.0.1:9800\n  curl -s localhost:9800/metrics | grep servicecidr_range_free"
    )]
    Serve(ServeArgs),
    /// Print a shell completion script
    #[command(
        after_help = "Examples:\n  kubectl servicecidr completion bash > /etc/bash_completion.d/kubectl-servicecidr"
    )]
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Only these ServiceCIDRs
    #[arg(value_parser = parse_name)]
    pub names: Vec<String>,
    /// Redraw as ServiceCIDRs and IPAddresses change, until Ctrl-C (tables only)
    #[arg(short, long)]
    pub watch: bool,
    /// With several contexts: leave out the ranges that overlap between clusters
    #[arg(long)]
    pub no_cross_cluster: bool,
    #[command(flatten)]
    pub fleet: FleetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct OrphansArgs {
    /// Only findings of these kinds (comma-separated)
    #[arg(long, value_parser = kinds(), value_delimiter = ',', value_name = "KIND")]
    pub kind: Vec<FindingKind>,
    /// Also report findings younger than the repair loop's 60 s grace
    #[arg(long)]
    pub include_recent: bool,
    /// Print a ServiceCIDR manifest covering the orphaned and at-risk IPs, ready for kubectl apply
    #[arg(long, conflicts_with_all = ["output", "no_headers", "all_contexts", "contexts"])]
    pub suggest_range: bool,
    #[command(flatten)]
    pub fleet: FleetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub fleet: FleetArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// An IP address, or the name of a ServiceCIDR
    #[arg(value_parser = parse_subject, value_name = "IP|NAME")]
    pub subject: Subject,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// An IP when it parses as one, else a ServiceCIDR name.
fn parse_subject(s: &str) -> Result<Subject, String> {
    match s.parse() {
        Ok(ip) => Ok(Subject::Ip(ip)),
        Err(_) => parse_name(s).map(Subject::Range),
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to serve on (HOST:PORT; port 0 picks a free one)
    #[arg(long, default_value = "127.0.0.1:9800", value_parser = parse_listen, value_name = "ADDR")]
    pub listen: std::net::SocketAddr,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// ServiceCIDRs to delete, judged together as one set
    #[arg(required = true, value_name = "NAME", value_parser = parse_name)]
    pub names: Vec<String>,
    /// Wait until each range is gone, releasing it only when provably safe (as kubectl delete,
    /// on by default); with --wait=false the range stays guarded until a later run finishes it
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1,
          default_missing_value = "true", require_equals = true, value_name = "BOOL")]
    pub wait: bool,
    /// Change nothing on the cluster. A bare --dry-run is --dry-run=client: the same checks and
    /// verdict as a real run, with no request that writes
    #[arg(long, value_parser = dry_runs(), num_args = 0..=1, require_equals = true, default_missing_value = "client", default_value = "none", value_name = "MODE")]
    pub dry_run: DryRun,
    /// Take over the controller's release as soon as the grace period has passed and it is
    /// provably safe, instead of waiting --controller-timeout for it
    #[arg(long)]
    pub remove_finalizer: bool,
    /// How long after the deletionTimestamp an apiserver may still allocate from the range
    #[arg(long, default_value = GRACE_PERIOD, value_parser = parse_duration, value_name = "DURATION")]
    pub grace_period: Duration,
    /// How long to wait for the service-cidr controller after the grace period before releasing
    /// the range ourselves (never while the controller says IPs would be orphaned)
    #[arg(long, default_value = CONTROLLER_TIMEOUT, value_parser = parse_duration, value_name = "DURATION")]
    pub controller_timeout: Duration,
    /// Upper bound for the whole command, whatever the server does
    #[arg(long, default_value = "5m", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(subcommand)]
    pub step: MigrateStep,
}

#[derive(Debug, Subcommand)]
pub enum MigrateStep {
    /// Print the runbook: the new range, each Service's new ClusterIPs, what is skipped and why,
    /// and the manual steps; changes nothing
    #[command(
        mut_arg("output", |a| a.value_parser(reports())),
        after_help = "Exit status: 0 with a plan, 3 when it is refused (overlap, no room, nothing to move).\n\nExamples:\n  kubectl servicecidr migrate plan --from blue --to 10.200.0.0/16\n  kubectl servicecidr migrate plan --from kubernetes --to 10.200.0.0/16,fd00:200::/112 --name next -o yaml"
    )]
    Plan(MigratePlanArgs),
    /// Carry out the plan: create the new range, recreate each Service in it (original saved
    /// first), retire the old ranges, verify. A rerun resumes
    #[command(
        mut_arg("output", |a| a.value_parser(reports())),
        after_help = "Exit status: 0 when every Service moved and the old ranges are gone, 1 when a Service could not be moved (its original put back), 3 when refused or something is left, 130 on Ctrl-C (rerun to resume).\n\nExamples:\n  kubectl servicecidr migrate run --from blue --to 10.200.0.0/16 --yes\n  kubectl servicecidr migrate run --from blue --to 10.200.0.0/16 --only default/web --dry-run"
    )]
    Run(MigrateRunArgs),
}

#[derive(Debug, Args)]
pub struct MigratePlanArgs {
    #[command(flatten)]
    pub target: MigrateTarget,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct MigrateTarget {
    /// The ServiceCIDRs to empty and retire (comma-separated)
    #[arg(long, required = true, value_delimiter = ',', value_parser = parse_name, value_name = "NAME")]
    pub from: Vec<String>,
    /// The new range: one CIDR, or one per family (comma-separated)
    #[arg(long, required = true, value_delimiter = ',', value_parser = parse_cidr, value_name = "CIDR")]
    pub to: Vec<ipnet::IpNet>,
    /// Name of the new ServiceCIDR [default: from the first CIDR, e.g. range-10-200-0-0-16]
    #[arg(long, value_parser = parse_name, value_name = "NAME")]
    pub name: Option<String>,
    /// Let the new range share addresses with live ranges other than the old ones
    #[arg(long)]
    pub allow_overlap: bool,
    /// Move only these Services (NAMESPACE/NAME, comma-separated)
    #[arg(long, value_delimiter = ',', value_parser = parse_service, value_name = "NAMESPACE/NAME")]
    pub only: Vec<String>,
}

#[derive(Debug, Args)]
pub struct MigrateRunArgs {
    #[command(flatten)]
    pub target: MigrateTarget,
    /// Go ahead without asking (needed when stdin is not a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Where each Service's original manifest is saved before it is deleted; a rerun reads it
    /// to resume [default: ./servicecidr-migrate-NAME]
    #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
    pub backup_dir: Option<std::path::PathBuf>,
    /// Change nothing on the cluster. A bare --dry-run is --dry-run=client: the plan and its
    /// checks, with no request that writes
    #[arg(long, value_parser = dry_runs(), num_args = 0..=1, require_equals = true, default_missing_value = "client", default_value = "none", value_name = "MODE")]
    pub dry_run: DryRun,
    /// Upper bound for retiring the old ranges once the Services have moved
    #[arg(long, default_value = "5m", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Duration,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `--listen`: an address and port, checked before anything runs.
pub fn parse_listen(s: &str) -> Result<std::net::SocketAddr, String> {
    s.parse()
        .map_err(|e| format!("{e} (expected HOST:PORT, e.g. 127.0.0.1:9800 or 0.0.0.0:9800)"))
}

/// A CIDR as the ServiceCIDR API takes it.
fn parse_cidr(s: &str) -> Result<ipnet::IpNet, String> {
    crate::model::parse_cidr(s).map_err(|e| e.to_string())
}

/// NAMESPACE/NAME of a Service.
fn parse_service(s: &str) -> Result<String, String> {
    let Some((ns, name)) = s.split_once('/') else {
        return Err("expected NAMESPACE/NAME".into());
    };
    for part in [ns, name] {
        if let Some(why) = crate::model::invalid_label(part) {
            return Err(format!(
                "{why} (namespaces and Service names are DNS labels)"
            ));
        }
    }
    Ok(s.to_owned())
}

/// The longest duration any option takes; longer ones are mistakes, and would overflow clocks.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// A humantime duration of at most `MAX_DURATION`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d =
        humantime::parse_duration(s).map_err(|e| format!("{e} (expected e.g. 10s, 5m or 1h)"))?;
    if d > MAX_DURATION {
        return Err(format!(
            "{s} is longer than the most this option takes ({})",
            humantime::format_duration(MAX_DURATION)
        ));
    }
    Ok(d)
}

/// A ServiceCIDR name, checked before any request.
pub fn parse_name(s: &str) -> Result<String, String> {
    match crate::model::invalid_name(s) {
        None => Ok(s.to_owned()),
        Some(why) => Err(format!("{why} (ServiceCIDR names are DNS subdomains)")),
    }
}

/// kubectl accepts `30s`, `1m` and a bare number of seconds.
pub fn parse_request_timeout(s: &str) -> Result<Duration, String> {
    let d = match s.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(s)
            .map_err(|e| format!("{e} (expected e.g. 30s, 1m or a number of seconds)"))?,
    };
    if d > MAX_DURATION {
        return Err(format!(
            "{s} is longer than the most this option takes ({})",
            humantime::format_duration(MAX_DURATION)
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn request_timeout_takes_kubectl_forms() {
        assert_eq!(parse_request_timeout("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_request_timeout("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_request_timeout("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_request_timeout("0"), Ok(Duration::ZERO));
        assert!(parse_request_timeout("soon").is_err());
        assert!(parse_request_timeout("500000000000y").is_err());
        assert!(parse_request_timeout("99999999999999").is_err());
    }

    /// The command's own options come first; kubectl's flags follow under their own heading.
    #[test]
    fn help_puts_the_commands_options_before_the_global_flags() {
        let mut cmd = Cli::command();
        cmd.build();
        let help = cmd
            .find_subcommand_mut("delete")
            .unwrap()
            .render_long_help()
            .to_string();
        let at = |s: &str| help.find(s).unwrap_or_else(|| panic!("{s} not in {help}"));
        assert!(at("--grace-period") < at("Output options:"), "{help}");
        assert!(at("Output options:") < at("Global options:"), "{help}");
        assert!(at("Global options:") < at("--kubeconfig"), "{help}");
        assert!(at("--dry-run") < at("Global options:"), "{help}");
        assert!(
            help.contains("A bare --dry-run is --dry-run=client"),
            "{help}"
        );
        assert!(!help.contains("wide"), "{help}");
    }

    use proptest::prelude::*;

    proptest! {
        // Any command line is parsed or explained (exit 2), never a panic: flags and values
        // drawn from the real ones, mixed with arbitrary text.
        #[test]
        fn any_command_line_parses_or_is_explained(args in proptest::collection::vec(prop_oneof![
            proptest::sample::select(vec![
                "status", "orphans", "delete", "completion", "-o", "--output", "json", "yaml", "wide",
                "--no-headers", "--watch", "--wait", "--remove-finalizer", "--dry-run", "--dry-run=server",
                "--request-timeout", "--grace-period", "--timeout", "--kind", "--context", "--kubeconfig",
                "--chunk-size", "-v", "--suggest-range", "bash", "0", "5s", "1m", "10.96.0.0/16",
            ]).prop_map(str::to_owned),
            "\\PC{0,12}",
        ], 0..8)) {
            let argv = std::iter::once("kubectl-servicecidr".to_owned()).chain(args);
            if let Err(e) = Cli::try_parse_from(argv) {
                let _ = e.render().to_string();
            }
        }
    }
}
