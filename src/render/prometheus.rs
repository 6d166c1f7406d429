//! `status -o prometheus` and the exporter's `/metrics`: the Prometheus text exposition, written by
//! prometheus-client. Series per range and CIDR, findings per kind, never per IP, so cardinality
//! stays bounded by the number of ranges.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::atomic::AtomicU64;
use std::time::SystemTime;

use prometheus_client::encoding::text::encode_registry;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::audit::findings::FindingKind;
use crate::audit::usage::{CidrUsage, State, StatusReport};

/// The classic text format, which Prometheus, promtool and node-exporter's textfile collector all
/// read (OpenMetrics' `# UNIT` lines are comments to them; no `# EOF` is written).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What the exporter counts about itself.
#[derive(Debug, Clone, Default)]
pub struct ExporterStats {
    /// Failed requests, by what was being done (list, watch).
    pub errors: BTreeMap<&'static str, u64>,
    /// Full re-reads after the first (a watch expired or failed).
    pub relists: u64,
    pub last_sync: Option<SystemTime>,
}

type Labels = Vec<(&'static str, String)>;
type Gauges = Family<Labels, Gauge<f64, AtomicU64>>;
/// Name, help, and the value of one CIDR.
type PerCidr = (&'static str, &'static str, fn(&CidrUsage) -> f64);

fn state_name(s: State) -> &'static str {
    match s {
        State::Ready => "Ready",
        State::Pending => "Pending",
        State::NotReady => "NotReady",
        State::Terminating => "Terminating",
    }
}

/// A gauge family registered under `name` (+ `_unit`), filled by `fill`.
fn gauges(
    registry: &mut Registry,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    fill: impl FnOnce(&Gauges),
) {
    let family = Gauges::default();
    fill(&family);
    match unit {
        Some(unit) => registry.register_with_unit(name, help, unit, family),
        None => registry.register(name, help, family),
    }
}

/// The whole exposition: `report` over every range, `findings` counted by kind, and the
/// exporter's own counters when it is the exporter speaking.
pub fn write(
    out: &mut impl Write,
    report: &StatusReport,
    findings: &[(FindingKind, usize)],
    exporter: Option<&ExporterStats>,
) -> io::Result<()> {
    let mut registry = Registry::with_prefix("servicecidr");
    let per_cidr: [PerCidr; 3] = [
        (
            "range_capacity",
            "Addresses the allocator can hand out in this CIDR of the ServiceCIDR",
            |c| c.capacity as f64,
        ),
        (
            "range_allocated",
            "IPAddresses inside this CIDR of the ServiceCIDR",
            |c| c.allocated as f64,
        ),
        (
            "range_free",
            "Addresses of this CIDR still free: capacity minus allocated",
            // Subtracted as integers first: IPv6 capacities do not fit a float exactly.
            |c| c.free() as f64,
        ),
    ];
    for (name, help, value) in per_cidr {
        gauges(
            &mut registry,
            name,
            help,
            Some(Unit::Other("addresses".into())),
            |g| {
                for r in &report.ranges {
                    for c in &r.cidrs {
                        let labels = vec![
                            ("servicecidr", r.name.clone()),
                            ("cidr", c.cidr.to_string()),
                            ("family", c.family.to_string()),
                        ];
                        g.get_or_create(&labels).set(value(c));
                    }
                }
            },
        );
    }
    let range_label = |name: &str| -> Labels { vec![("servicecidr", name.to_owned())] };
    gauges(
        &mut registry,
        "range_ready",
        "1 when the allocator may hand out addresses from the range (Ready, or not marked yet)",
        None,
        |g| {
            for r in &report.ranges {
                let usable = matches!(r.state, State::Ready | State::Pending);
                g.get_or_create(&range_label(&r.name))
                    .set(if usable { 1.0 } else { 0.0 });
            }
        },
    );
    gauges(
        &mut registry,
        "range_terminating",
        "Time since the range's deletionTimestamp; only for terminating ranges",
        Some(Unit::Seconds),
        |g| {
            for r in &report.ranges {
                if let Some(d) = r.terminating_for {
                    g.get_or_create(&range_label(&r.name)).set(d.as_secs_f64());
                }
            }
        },
    );
    gauges(
        &mut registry,
        "range_blocking_ipaddresses",
        "IPAddresses that keep a terminating range from going (0 otherwise)",
        None,
        |g| {
            for r in &report.ranges {
                g.get_or_create(&range_label(&r.name))
                    .set(r.blocking.unwrap_or(0) as f64);
            }
        },
    );
    gauges(
        &mut registry,
        "range_info",
        "Always 1: the range's CIDRs and state as labels",
        None,
        |g| {
            for r in &report.ranges {
                let cidrs: Vec<String> = r.cidrs.iter().map(|c| c.cidr.to_string()).collect();
                g.get_or_create(&vec![
                    ("servicecidr", r.name.clone()),
                    ("cidrs", cidrs.join(",")),
                    ("state", state_name(r.state).to_owned()),
                ])
                .set(1.0);
            }
        },
    );
    gauges(
        &mut registry,
        "findings",
        "Inconsistencies between Services, IPAddresses and ServiceCIDRs, by kind",
        None,
        |g| {
            for kind in FindingKind::ALL {
                let n = findings
                    .iter()
                    .find(|(k, _)| *k == kind)
                    .map_or(0, |(_, n)| *n);
                g.get_or_create(&vec![("kind", kind.name().to_owned())])
                    .set(n as f64);
            }
        },
    );
    if let Some(stats) = exporter {
        let errors = Family::<Labels, Counter>::default();
        for operation in ["list", "watch"] {
            errors
                .get_or_create(&vec![("operation", operation.to_owned())])
                .inc_by(stats.errors.get(operation).copied().unwrap_or(0));
        }
        registry.register(
            "exporter_errors",
            "Requests to the API server that failed, by operation",
            errors,
        );
        let relists = Counter::<u64>::default();
        relists.inc_by(stats.relists);
        registry.register(
            "exporter_relists",
            "Full re-reads after the first, when a watch expired or failed",
            relists,
        );
        gauges(
            &mut registry,
            "exporter_last_sync_timestamp",
            "When the exporter's picture was last complete (Unix time)",
            Some(Unit::Seconds),
            |g| {
                if let Some(t) = stats.last_sync {
                    let secs = t
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .map_or(0.0, |d| d.as_secs_f64());
                    g.get_or_create(&vec![]).set(secs);
                }
            },
        );
    }
    let mut text = String::new();
    encode_registry(&mut text, &registry).map_err(io::Error::other)?;
    out.write_all(classic_counters(&text).as_bytes())
}

/// prometheus-client writes counters the OpenMetrics way: `# TYPE x counter` over samples named
/// `x_total`. The classic text format (what promtool and the textfile collector parse) names the
/// family after its samples, so the HELP and TYPE lines of counters get the `_total` too.
fn classic_counters(text: &str) -> String {
    let counters: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    text.lines()
        .map(|line| {
            for name in &counters {
                for kind in ["# HELP ", "# TYPE "] {
                    if let Some(rest) = line.strip_prefix(kind).and_then(|r| r.strip_prefix(name))
                        && rest.starts_with(' ')
                    {
                        return format!("{kind}{name}_total{rest}\n");
                    }
                }
            }
            format!("{line}\n")
        })
        .collect()
}
