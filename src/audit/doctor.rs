//! `doctor`: what surrounds the ServiceCIDR objects (the apiservers' flags, the controller, nodes,
//! versions, events) judged against what the objects say. Each check turns what was read into a
//! status and the facts behind it; `render::doctor` words them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;
use serde::Serialize;

use crate::audit::findings::{FindingKind, counts};
use crate::audit::index::RangeIndex;
use crate::audit::range::{bits, capacity};
use crate::audit::usage::{CRITICAL_PERCENT, StatusReport, WARNING_PERCENT};
use crate::model::{ConditionStatus, DEFAULT_SERVICE_CIDR, Right, ServiceCidr, Snapshot};

/// A range without the controller's Ready condition this long after its creation means no
/// controller is acting on it.
pub const CONTROLLER_SILENCE: Duration = Duration::from_secs(30);
/// The alert rules' horizon for "full soon".
pub const FULL_SOON: Duration = Duration::from_secs(7 * 24 * 3600);
/// The window over which the allocation rate is measured.
pub const RATE_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// The default ServiceCIDR controller's events.
pub const DEFAULT_RANGE_EVENTS: [&str; 2] = [
    "KubernetesDefaultServiceCIDRInconsistent",
    "KubernetesDefaultServiceCIDRError",
];
/// The repair loop's events.
pub const REPAIR_EVENTS: [&str; 6] = [
    "ClusterIPOutOfRange",
    "ClusterIPNotAllocated",
    "ClusterIPAlreadyAllocated",
    "ClusterIPNotValid",
    "IPAddressNotAllocated",
    "IPAddressWrongReference",
];

/// One read of the surroundings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read<T> {
    Got(T),
    /// RBAC refused it.
    Denied(Right),
    /// Failed otherwise (the error's one line).
    Failed(String),
}

impl<T> Read<T> {
    fn got(&self) -> Option<&T> {
        match self {
            Read::Got(t) => Some(t),
            _ => None,
        }
    }

    fn denied(&self) -> Option<&Right> {
        match self {
            Read::Denied(r) => Some(r),
            _ => None,
        }
    }
}

/// A Warning or Normal event, as far as the checks need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSeen {
    pub reason: String,
    /// `Kind namespace/name` or `Kind name`.
    pub object: String,
    pub count: u64,
    pub last: Option<SystemTime>,
    pub message: String,
}

/// A kube-apiserver Pod (kubeadm's static Pods, mirrored in kube-system) and its Service range
/// flag; None when the flag is absent or not a list of CIDRs (the raw text is kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiserverPod {
    pub name: String,
    pub flag: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeNet {
    pub name: String,
    pub pod_cidrs: Vec<IpNet>,
    pub addresses: Vec<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerVersion {
    pub major: u32,
    pub minor: u32,
    pub git: String,
}

/// Everything read besides the ServiceCIDRs, IPAddresses and Services.
#[derive(Debug, Clone)]
pub struct Surroundings {
    /// The events whose reasons [`DEFAULT_RANGE_EVENTS`] and [`REPAIR_EVENTS`] name.
    pub events: Read<Vec<EventSeen>>,
    pub apiservers: Read<Vec<ApiserverPod>>,
    /// `networking.serviceSubnet` of the `kubeadm-config` ConfigMap; None without one.
    pub kubeadm_subnet: Read<Option<String>>,
    pub nodes: Read<Vec<NodeNet>>,
    pub version: Read<ServerVersion>,
    /// The networking.k8s.io version serving ServiceCIDRs (`v1`, `v1beta1`).
    pub served: &'static str,
    /// Calico's Service advertisement and pools; None when the cluster does not serve its API.
    pub calico: Read<Option<Calico>>,
    /// The allocator's feature gates from kube-apiserver's `/metrics`: name, enabled.
    pub gates: Read<Vec<(String, bool)>>,
}

/// The feature gates that decide how ClusterIPs are allocated.
pub const GATES: [&str; 2] = ["MultiCIDRServiceAllocator", "DisableAllocatorDualWrite"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calico {
    /// `spec.serviceClusterIPs` of the `default` BGPConfiguration; None when it has none (Calico
    /// then advertises no Service range, which is a choice, not a fault).
    pub advertised: Option<Vec<IpNet>>,
    /// IPPools: name, CIDR.
    pub pools: Vec<(String, IpNet)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Fail,
    Warn,
    Skipped,
    Ok,
}

/// The checks, in the order they run; their ids are part of the interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckId {
    DefaultRangeFlags,
    Controller,
    KubernetesService,
    UnusableRanges,
    NodeOverlap,
    CniAdvertisement,
    VersionHazards,
    RepairEvents,
    Capacity,
    Orphans,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub id: CheckId,
    pub status: Status,
    pub facts: Facts,
}

/// What a check saw, for its summary, evidence and remedy.
#[derive(Debug, Clone, PartialEq)]
pub enum Facts {
    /// Nothing to judge with: these reads were refused.
    Unreadable(Vec<Right>),
    /// Nothing to judge with: the read failed (its error).
    Failed(String),
    DefaultRange {
        range: Option<Vec<IpNet>>,
        ready: Option<ConditionStatus>,
        /// Each apiserver Pod's flag, parsed.
        flags: Vec<(String, Result<Vec<IpNet>, String>)>,
        /// The apiservers disagree with each other.
        split: bool,
        /// Apiservers whose flag differs from the default range.
        differ: Vec<String>,
        kubeadm: Option<(String, bool)>,
        events: Vec<EventSeen>,
        unread: Vec<Right>,
    },
    Controller {
        /// Ranges with no Ready condition, and how old.
        silent: Vec<(String, Duration)>,
        /// Terminating ranges the controller never held (no finalizer of its).
        unheld: Vec<String>,
        ranges: usize,
    },
    KubernetesService {
        ip: Option<IpAddr>,
        expected: Vec<IpAddr>,
    },
    Unusable {
        /// CIDRs the allocator hands nothing out of, or only a handful.
        small: Vec<(String, IpNet, u128)>,
        twins: Vec<(IpNet, Vec<String>)>,
    },
    NodeOverlap {
        nodes: usize,
        pod_cidrs: Vec<(String, IpNet, String, IpNet)>,
        addresses: Vec<(String, IpAddr, String, IpNet)>,
        /// Calico IPPools overlapping a range, when Calico is there.
        pools: Vec<(String, IpNet, String, IpNet)>,
    },
    /// The cluster does not serve Calico's API.
    NoCalico,
    Advertisement {
        advertised: Option<Vec<IpNet>>,
        /// Range CIDRs no advertised CIDR holds.
        missing: Vec<(String, IpNet)>,
    },
    Version {
        version: ServerVersion,
        served: &'static str,
        hazards: Vec<Hazard>,
        /// [`GATES`] as read; None when /metrics could not be read.
        gates: Option<Vec<(String, bool)>>,
    },
    RepairEvents {
        /// Per reason: count, last seen, one object.
        reasons: Vec<(String, u64, Option<SystemTime>, String)>,
        orphans: usize,
    },
    Capacity {
        /// Per CIDR at or past the warning threshold or full soon.
        tight: Vec<CidrOutlook>,
        cidrs: usize,
    },
    Orphans(Vec<(FindingKind, usize)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct CidrOutlook {
    pub range: String,
    pub cidr: IpNet,
    pub percent: f64,
    /// IPAddresses made per hour over the last day, and the time until full at that rate.
    pub per_hour: f64,
    pub full_in: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hazard {
    /// kubernetes#138374: IPv6 ranges of /64 hand out IPs outside themselves (fixed in 1.35 by
    /// PR #134193; in 1.34 only from the patch release carrying PR #138385).
    Ipv6Slash64,
    /// The v1beta1 API serves ServiceCIDRs: Kubernetes 1.31-1.32, deprecated, gone in v1.
    Beta,
    /// MultiCIDRServiceAllocator is off: the allocator ignores every ServiceCIDR but the flag's.
    GateOff,
}

/// Runs every check.
pub fn diagnose(
    snapshot: &Snapshot,
    report: &StatusReport,
    findings: &[crate::audit::findings::Finding],
    s: &Surroundings,
    now: SystemTime,
) -> Vec<Check> {
    let orphan_count = findings
        .iter()
        .filter(|f| f.kind == FindingKind::Orphaned)
        .count();
    vec![
        default_range_flags(&snapshot.ranges, s),
        controller(&snapshot.ranges, now),
        kubernetes_service(snapshot),
        unusable_ranges(&snapshot.ranges),
        node_overlap(&snapshot.ranges, &s.nodes, &s.calico),
        cni_advertisement(&snapshot.ranges, &s.calico),
        version_hazards(&snapshot.ranges, s),
        repair_events(&s.events, orphan_count),
        capacity_outlook(snapshot, report, now),
        orphans(findings),
    ]
}

fn check(id: CheckId, status: Status, facts: Facts) -> Check {
    Check { id, status, facts }
}

/// A check skipped for want of what it reads.
fn skipped<T>(id: CheckId, read: &Read<T>) -> Check {
    let facts = match read {
        Read::Denied(right) => Facts::Unreadable(vec![right.clone()]),
        Read::Failed(e) => Facts::Failed(e.clone()),
        Read::Got(_) => Facts::Unreadable(vec![]),
    };
    check(id, Status::Skipped, facts)
}

fn parse_cidrs(flag: &str) -> Result<Vec<IpNet>, String> {
    let mut nets: Vec<IpNet> = flag
        .split(',')
        .map(|c| c.trim().parse::<IpNet>().map_err(|_| flag.to_owned()))
        .collect::<Result<_, _>>()?;
    nets.sort();
    Ok(nets)
}

fn default_range_flags(ranges: &[ServiceCidr], s: &Surroundings) -> Check {
    let default = ranges.iter().find(|r| r.name == DEFAULT_SERVICE_CIDR);
    let range = default.map(|r| {
        let mut c = r.cidrs.clone();
        c.sort();
        c
    });
    let unread: Vec<Right> = [
        s.apiservers.denied(),
        s.kubeadm_subnet.denied(),
        s.events.denied(),
    ]
    .into_iter()
    .flatten()
    .cloned()
    .collect();
    let flags: Vec<(String, Result<Vec<IpNet>, String>)> = s
        .apiservers
        .got()
        .map(|pods| {
            pods.iter()
                .filter_map(|p| Some((p.name.clone(), parse_cidrs(p.flag.as_deref()?))))
                .collect()
        })
        .unwrap_or_default();
    let parsed: Vec<&Vec<IpNet>> = flags.iter().filter_map(|(_, f)| f.as_ref().ok()).collect();
    let split = parsed.windows(2).any(|w| w[0] != w[1]) || flags.iter().any(|(_, f)| f.is_err());
    let differ: Vec<String> = flags
        .iter()
        .filter(|(_, f)| range.as_ref().is_some_and(|r| f.as_ref().ok() != Some(r)))
        .map(|(n, _)| n.clone())
        .collect();
    let kubeadm = s
        .kubeadm_subnet
        .got()
        .and_then(|k| k.clone())
        .map(|subnet| {
            let agrees = parse_cidrs(&subnet).ok() == range;
            (subnet, agrees)
        });
    let events: Vec<EventSeen> = s
        .events
        .got()
        .map(|e| {
            e.iter()
                .filter(|e| DEFAULT_RANGE_EVENTS.contains(&e.reason.as_str()))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let ready = default.and_then(|r| r.ready.as_ref().map(|c| c.status));
    let status = if split || !differ.is_empty() {
        Status::Fail
    } else if range.is_none()
        || !events.is_empty()
        || kubeadm.as_ref().is_some_and(|(_, agrees)| !agrees)
        || ready.is_some_and(|r| r != ConditionStatus::True)
    {
        Status::Warn
    } else if unread.len() == 3 {
        return check(
            CheckId::DefaultRangeFlags,
            Status::Skipped,
            Facts::Unreadable(unread),
        );
    } else {
        Status::Ok
    };
    check(
        CheckId::DefaultRangeFlags,
        status,
        Facts::DefaultRange {
            range,
            ready,
            flags,
            split,
            differ,
            kubeadm,
            events,
            unread,
        },
    )
}

fn controller(ranges: &[ServiceCidr], now: SystemTime) -> Check {
    let silent: Vec<(String, Duration)> = ranges
        .iter()
        .filter(|r| r.ready.is_none())
        .filter_map(|r| {
            let age = now.duration_since(r.created?).ok()?;
            (age >= CONTROLLER_SILENCE).then(|| (r.name.clone(), age))
        })
        .collect();
    let unheld: Vec<String> = ranges
        .iter()
        .filter(|r| {
            r.is_terminating()
                && !r.has_controller_finalizer()
                && r.ready.is_none()
                && r.deleting
                    .and_then(|d| now.duration_since(d).ok())
                    .is_some_and(|age| age >= CONTROLLER_SILENCE)
        })
        .map(|r| r.name.clone())
        .collect();
    let status = if silent.is_empty() && unheld.is_empty() {
        Status::Ok
    } else {
        Status::Warn
    };
    check(
        CheckId::Controller,
        status,
        Facts::Controller {
            silent,
            unheld,
            ranges: ranges.len(),
        },
    )
}

/// The first address of a CIDR: what kube-apiserver gives the `kubernetes` Service.
fn first_address(net: &IpNet) -> Option<IpAddr> {
    let first = bits(net.network()).checked_add(1)?;
    Some(match net {
        IpNet::V4(_) => IpAddr::V4(std::net::Ipv4Addr::from(u32::try_from(first).ok()?)),
        IpNet::V6(_) => IpAddr::V6(std::net::Ipv6Addr::from(first)),
    })
}

fn kubernetes_service(snapshot: &Snapshot) -> Check {
    let expected: Vec<IpAddr> = snapshot
        .ranges
        .iter()
        .find(|r| r.name == DEFAULT_SERVICE_CIDR)
        .map(|r| r.cidrs.iter().filter_map(first_address).collect())
        .unwrap_or_default();
    let ip = snapshot
        .services
        .iter()
        .find(|s| s.namespace == "default" && s.name == "kubernetes")
        .and_then(|s| s.cluster_ips.first().copied());
    let status = match ip {
        Some(ip) if expected.contains(&ip) => Status::Ok,
        Some(_) => Status::Fail,
        None => Status::Warn,
    };
    check(
        CheckId::KubernetesService,
        status,
        Facts::KubernetesService { ip, expected },
    )
}

/// Fewer addresses than this in a range is a mistake more often than a plan.
const FEW: u128 = 4;

fn unusable_ranges(ranges: &[ServiceCidr]) -> Check {
    let small: Vec<(String, IpNet, u128)> = ranges
        .iter()
        .flat_map(|r| r.cidrs.iter().map(move |c| (r, c)))
        .filter(|(_, c)| capacity(c) < FEW)
        .map(|(r, c)| (r.name.clone(), *c, capacity(c)))
        .collect();
    let mut by_cidr: BTreeMap<IpNet, Vec<String>> = BTreeMap::new();
    for r in ranges {
        for c in &r.cidrs {
            by_cidr.entry(*c).or_default().push(r.name.clone());
        }
    }
    let twins: Vec<(IpNet, Vec<String>)> =
        by_cidr.into_iter().filter(|(_, n)| n.len() > 1).collect();
    let status = if small.iter().any(|(_, _, n)| *n == 0) {
        Status::Fail
    } else if small.is_empty() && twins.is_empty() {
        Status::Ok
    } else {
        Status::Warn
    };
    check(
        CheckId::UnusableRanges,
        status,
        Facts::Unusable { small, twins },
    )
}

fn node_overlap(
    ranges: &[ServiceCidr],
    nodes: &Read<Vec<NodeNet>>,
    calico: &Read<Option<Calico>>,
) -> Check {
    let Some(nodes) = nodes.got() else {
        return skipped(CheckId::NodeOverlap, nodes);
    };
    let cidrs: Vec<(&str, &IpNet)> = ranges
        .iter()
        .flat_map(|r| r.cidrs.iter().map(move |c| (r.name.as_str(), c)))
        .collect();
    let mut pod_cidrs = Vec::new();
    let mut addresses = Vec::new();
    for node in nodes {
        for pod in &node.pod_cidrs {
            for (name, c) in &cidrs {
                if c.contains(pod) || pod.contains(*c) {
                    pod_cidrs.push((node.name.clone(), *pod, (*name).to_owned(), **c));
                }
            }
        }
        for ip in &node.addresses {
            for (name, c) in &cidrs {
                if c.contains(ip) {
                    addresses.push((node.name.clone(), *ip, (*name).to_owned(), **c));
                }
            }
        }
    }
    let mut pools = Vec::new();
    for (pool, net) in calico
        .got()
        .and_then(Option::as_ref)
        .map_or(&[][..], |c| &c.pools)
    {
        for (name, c) in &cidrs {
            if c.contains(net) || net.contains(*c) {
                pools.push((pool.clone(), *net, (*name).to_owned(), **c));
            }
        }
    }
    let status = if pod_cidrs.is_empty() && addresses.is_empty() && pools.is_empty() {
        Status::Ok
    } else {
        Status::Fail
    };
    check(
        CheckId::NodeOverlap,
        status,
        Facts::NodeOverlap {
            nodes: nodes.len(),
            pod_cidrs,
            addresses,
            pools,
        },
    )
}

fn cni_advertisement(ranges: &[ServiceCidr], calico: &Read<Option<Calico>>) -> Check {
    let Some(found) = calico.got() else {
        return skipped(CheckId::CniAdvertisement, calico);
    };
    let Some(calico) = found else {
        return check(CheckId::CniAdvertisement, Status::Skipped, Facts::NoCalico);
    };
    let missing: Vec<(String, IpNet)> = match &calico.advertised {
        None => vec![],
        Some(advertised) => ranges
            .iter()
            .filter(|r| !r.is_terminating())
            .flat_map(|r| r.cidrs.iter().map(move |c| (r.name.clone(), *c)))
            .filter(|(_, c)| !advertised.iter().any(|a| a.contains(c)))
            .collect(),
    };
    let status = if missing.is_empty() {
        Status::Ok
    } else {
        Status::Warn
    };
    check(
        CheckId::CniAdvertisement,
        status,
        Facts::Advertisement {
            advertised: calico.advertised.clone(),
            missing,
        },
    )
}

fn version_hazards(ranges: &[ServiceCidr], s: &Surroundings) -> Check {
    let Some(version) = s.version.got().cloned() else {
        return skipped(CheckId::VersionHazards, &s.version);
    };
    let mut hazards = Vec::new();
    let slash64 = ranges
        .iter()
        .flat_map(|r| &r.cidrs)
        .any(|c| matches!(c, IpNet::V6(_)) && c.prefix_len() == 64);
    if slash64 && version.major == 1 && version.minor <= 34 {
        hazards.push(Hazard::Ipv6Slash64);
    }
    if s.served == "v1beta1" {
        hazards.push(Hazard::Beta);
    }
    let gates = s.gates.got().cloned();
    if gates
        .as_ref()
        .is_some_and(|g| g.iter().any(|(name, on)| name == GATES[0] && !on))
    {
        hazards.push(Hazard::GateOff);
    }
    let status = if hazards.is_empty() {
        Status::Ok
    } else {
        Status::Warn
    };
    check(
        CheckId::VersionHazards,
        status,
        Facts::Version {
            version,
            served: s.served,
            hazards,
            gates,
        },
    )
}

fn repair_events(events: &Read<Vec<EventSeen>>, orphans: usize) -> Check {
    let Some(events) = events.got() else {
        return skipped(CheckId::RepairEvents, events);
    };
    let mut reasons: Vec<(String, u64, Option<SystemTime>, String)> = Vec::new();
    for reason in REPAIR_EVENTS {
        let of: Vec<&EventSeen> = events.iter().filter(|e| e.reason == reason).collect();
        let Some(latest) = of.iter().max_by_key(|e| e.last) else {
            continue;
        };
        let count = of.iter().map(|e| e.count.max(1)).sum();
        reasons.push((reason.to_owned(), count, latest.last, latest.object.clone()));
    }
    let status = if reasons.is_empty() {
        Status::Ok
    } else {
        Status::Warn
    };
    check(
        CheckId::RepairEvents,
        status,
        Facts::RepairEvents { reasons, orphans },
    )
}

/// IPAddresses created at or after `since`, per range and CIDR holding them: the recent ones
/// through the range index, so the cost follows the new IPs, not IPs times CIDRs.
fn made_since(snapshot: &Snapshot, since: SystemTime) -> HashMap<(&str, IpNet), usize> {
    let index = RangeIndex::new(&snapshot.ranges);
    let mut made: HashMap<(&str, IpNet), usize> = HashMap::new();
    let recent = snapshot
        .ips
        .iter()
        .filter(|a| a.created.is_some_and(|t| t >= since));
    for a in recent {
        // A range naming one CIDR twice holds the IP once.
        let holding: BTreeSet<(&str, IpNet)> = index
            .containing(a.ip)
            .map(|e| {
                let r = &snapshot.ranges[e.range];
                (r.name.as_str(), r.cidrs[e.cidr])
            })
            .collect();
        for key in holding {
            *made.entry(key).or_default() += 1;
        }
    }
    made
}

fn capacity_outlook(snapshot: &Snapshot, report: &StatusReport, now: SystemTime) -> Check {
    let since = now
        .checked_sub(RATE_WINDOW)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let recent = made_since(snapshot, since);
    let mut tight = Vec::new();
    let mut cidrs = 0;
    for r in &report.ranges {
        for c in &r.cidrs {
            cidrs += 1;
            let made = recent
                .get(&(r.name.as_str(), c.cidr))
                .copied()
                .unwrap_or_default();
            let per_hour = made as f64 / (RATE_WINDOW.as_secs_f64() / 3600.0);
            let full_in = (per_hour > 0.0)
                .then(|| Duration::from_secs_f64((c.free() as f64 / per_hour * 3600.0).min(1e12)));
            let percent = c.percent();
            if percent >= WARNING_PERCENT || full_in.is_some_and(|d| d <= FULL_SOON) {
                tight.push(CidrOutlook {
                    range: r.name.clone(),
                    cidr: c.cidr,
                    percent,
                    per_hour,
                    full_in,
                });
            }
        }
    }
    let status = if tight.iter().any(|t| t.percent >= CRITICAL_PERCENT) {
        Status::Fail
    } else if tight.is_empty() {
        Status::Ok
    } else {
        Status::Warn
    };
    check(CheckId::Capacity, status, Facts::Capacity { tight, cidrs })
}

fn orphans(findings: &[crate::audit::findings::Finding]) -> Check {
    let counted = counts(findings);
    let status = if counted.is_empty() {
        Status::Ok
    } else {
        Status::Warn
    };
    check(CheckId::Orphans, status, Facts::Orphans(counted))
}

/// The exit status of a set of checks: findings when anything warns or fails.
pub fn healthy(checks: &[Check]) -> bool {
    checks
        .iter()
        .all(|c| matches!(c.status, Status::Ok | Status::Skipped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::index::tests::{alloc, finding, range};
    use crate::audit::range::contains_ip;
    use crate::audit::usage::status_report;
    use crate::model::ServiceIps;
    use proptest::prelude::*;

    const NOW: Duration = Duration::from_secs(1_000_000);

    proptest! {
        // The recent IPs per range and CIDR, counted through the index, are what a scan of every
        // CIDR against every IP counts (nested, overlapping and repeated CIDRs, old and new IPs).
        #[test]
        fn recent_ips_per_cidr_match_a_scan(
            hosts in prop::collection::vec((0u8..64, 0u64..172_800), 0..40),
        ) {
            let ranges = vec![
                range("a", &["10.0.0.0/26", "10.0.0.0/26"]),
                range("b", &["10.0.0.0/28", "10.0.0.32/27"]),
                range("c", &["10.0.0.16/28"]),
            ];
            let ips = hosts.iter().map(|(h, age)| {
                let mut a = alloc(&format!("10.0.0.{h}"));
                a.created = Some(now() - Duration::from_secs(*age));
                a
            }).collect();
            let snapshot = Snapshot { ranges, ips, services: vec![] };
            let since = now() - RATE_WINDOW;
            let made = made_since(&snapshot, since);
            for r in &snapshot.ranges {
                for c in &r.cidrs {
                    let scanned = snapshot.ips.iter()
                        .filter(|a| a.created.is_some_and(|t| t >= since) && contains_ip(c, a.ip))
                        .count();
                    prop_assert_eq!(made.get(&(r.name.as_str(), *c)).copied().unwrap_or_default(), scanned);
                }
            }
        }
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + NOW
    }

    fn surroundings() -> Surroundings {
        Surroundings {
            events: Read::Got(vec![]),
            apiservers: Read::Got(vec![]),
            kubeadm_subnet: Read::Got(None),
            nodes: Read::Got(vec![]),
            version: Read::Got(ServerVersion {
                major: 1,
                minor: 37,
                git: "v1.37.2".into(),
            }),
            served: "v1",
            calico: Read::Got(None),
            gates: Read::Got(vec![]),
        }
    }

    fn default_range() -> ServiceCidr {
        range(DEFAULT_SERVICE_CIDR, &["10.96.0.0/16", "fd00:10:96::/112"])
    }

    fn pod(name: &str, flag: &str) -> ApiserverPod {
        ApiserverPod {
            name: name.into(),
            flag: Some(flag.into()),
        }
    }

    fn status_of(c: Check) -> Status {
        c.status
    }

    #[test]
    fn the_default_range_against_flags_kubeadm_events_and_rights() {
        let ranges = [default_range()];
        let with = |f: &dyn Fn(&mut Surroundings)| {
            let mut s = surroundings();
            f(&mut s);
            status_of(default_range_flags(&ranges, &s))
        };
        let same = "fd00:10:96::/112,10.96.0.0/16";
        assert_eq!(with(&|_| {}), Status::Ok);
        // Order inside the flag does not matter.
        assert_eq!(
            with(&|s| s.apiservers = Read::Got(vec![pod("a", same)])),
            Status::Ok
        );
        assert_eq!(
            with(&|s| s.apiservers = Read::Got(vec![pod("a", "10.97.0.0/16")])),
            Status::Fail
        );
        assert_eq!(
            with(&|s| s.apiservers = Read::Got(vec![pod("a", same), pod("b", "banana")])),
            Status::Fail
        );
        assert_eq!(
            with(&|s| s.kubeadm_subnet = Read::Got(Some("10.96.0.0/12".into()))),
            Status::Warn
        );
        assert_eq!(
            with(&|s| {
                s.events = Read::Got(vec![EventSeen {
                    reason: DEFAULT_RANGE_EVENTS[0].into(),
                    object: "ServiceCIDR kubernetes".into(),
                    count: 1,
                    last: None,
                    message: String::new(),
                }])
            }),
            Status::Warn
        );
        fn denied<T>(resource: &'static str) -> Read<T> {
            Read::Denied(Right::new("list", "", resource))
        }
        assert_eq!(
            with(&|s| {
                s.events = denied("events");
                s.apiservers = denied("pods");
                s.kubeadm_subnet = denied("configmaps");
            }),
            Status::Skipped
        );
        assert_eq!(
            status_of(default_range_flags(&[], &surroundings())),
            Status::Warn
        );
    }

    #[test]
    fn a_range_without_the_controllers_condition_is_silence_only_once_old() {
        let mut young = range("young", &["10.1.0.0/24"]);
        young.ready = None;
        young.created = Some(now() - CONTROLLER_SILENCE + Duration::from_secs(1));
        let mut old = young.clone();
        old.name = "old".into();
        old.created = Some(now() - CONTROLLER_SILENCE);
        assert_eq!(
            controller(std::slice::from_ref(&young), now()).status,
            Status::Ok
        );
        let c = controller(&[young, old], now());
        assert_eq!(c.status, Status::Warn);
        let Facts::Controller { silent, .. } = c.facts else {
            panic!()
        };
        assert_eq!(silent, [("old".to_owned(), CONTROLLER_SILENCE)]);
    }

    /// A range being deleted with neither the controller's finalizer nor its condition, 30 s
    /// after the delete: no controller holds it.
    #[test]
    fn a_terminating_range_no_controller_holds_is_told_once_30_seconds_pass() {
        let gone = |deleted_ago: Duration, finalizer: bool, ready: bool| {
            let mut r = range("gone", &["10.1.0.0/24"]);
            if !finalizer {
                r.finalizers.clear();
            }
            if !ready {
                r.ready = None;
            }
            r.created = None;
            r.deleting = Some(now() - deleted_ago);
            controller(&[r], now())
        };
        let c = gone(CONTROLLER_SILENCE, false, false);
        assert_eq!(c.status, Status::Warn);
        let Facts::Controller { unheld, silent, .. } = c.facts else {
            panic!()
        };
        assert_eq!((unheld, silent), (vec!["gone".to_owned()], vec![]));
        let just_now = CONTROLLER_SILENCE - Duration::from_secs(1);
        assert_eq!(gone(just_now, false, false).status, Status::Ok);
        assert_eq!(gone(CONTROLLER_SILENCE, true, false).status, Status::Ok);
        assert_eq!(gone(CONTROLLER_SILENCE, false, true).status, Status::Ok);
    }

    /// Apiservers whose flags disagree fail even where no default range is there to compare.
    #[test]
    fn apiservers_that_disagree_fail_without_a_default_range() {
        let flags = |a: &str, b: &str| {
            let mut s = surroundings();
            s.apiservers = Read::Got(vec![pod("a", a), pod("b", b)]);
            default_range_flags(&[], &s).status
        };
        assert_eq!(flags("10.96.0.0/16", "10.97.0.0/16"), Status::Fail);
        assert_eq!(flags("10.96.0.0/16", "10.96.0.0/16"), Status::Warn);
    }

    /// Every check runs, in the order the report prints them, and the repair events are told
    /// with the number of orphans.
    #[test]
    fn diagnose_runs_every_check_and_counts_the_orphans() {
        let findings = [
            finding(FindingKind::Orphaned, "10.1.0.5"),
            finding(FindingKind::Orphaned, "10.1.0.6"),
            finding(FindingKind::DanglingParent, "10.96.0.5"),
        ];
        let snapshot = Snapshot {
            ranges: vec![default_range()],
            ips: vec![],
            services: vec![],
        };
        let report = status_report(&snapshot.ranges, &snapshot.ips, now(), false);
        let checks = diagnose(&snapshot, &report, &findings, &surroundings(), now());
        let ids: Vec<String> = checks.iter().map(|c| format!("{:?}", c.id)).collect();
        assert_eq!(
            ids.join(" "),
            "DefaultRangeFlags Controller KubernetesService UnusableRanges NodeOverlap \
             CniAdvertisement VersionHazards RepairEvents Capacity Orphans"
        );
        assert!(matches!(
            checks[7].facts,
            Facts::RepairEvents { orphans: 2, .. }
        ));
    }

    /// The allocation rate is measured over the last day, and a CIDR that fills within a week at
    /// that rate is tight: 32 of a /24's 254 addresses made in a day fill the other 222 in
    /// 166.5 hours, 31 fill the other 223 in 172.6.
    #[test]
    fn a_day_of_allocations_and_a_week_to_full() {
        let outlook = |n: u8, ago: Duration| {
            let snapshot = Snapshot {
                ranges: vec![range("r", &["10.1.0.0/24"])],
                ips: (1..=n)
                    .map(|h| crate::model::IpAllocation {
                        created: Some(now() - ago),
                        ..alloc(&format!("10.1.0.{h}"))
                    })
                    .collect(),
                services: vec![],
            };
            let report = status_report(&snapshot.ranges, &snapshot.ips, now(), false);
            capacity_outlook(&snapshot, &report, now())
        };
        let hours = |h: u64| Duration::from_secs(h * 3600);
        let tight = outlook(32, hours(23));
        assert_eq!(tight.status, Status::Warn);
        let Facts::Capacity { tight, cidrs } = tight.facts else {
            panic!()
        };
        assert_eq!((tight[0].per_hour, cidrs), (32.0 / 24.0, 1));
        assert_eq!(outlook(31, hours(23)).status, Status::Ok);
        assert_eq!(outlook(32, hours(25)).status, Status::Ok);
        // 80% full but nothing made in the day: tight, and no date to be full by.
        let Facts::Capacity { tight, .. } = outlook(204, hours(25)).facts else {
            panic!()
        };
        assert_eq!((tight[0].per_hour, tight[0].full_in), (0.0, None));
    }

    #[test]
    fn the_kubernetes_service_holds_the_first_address_of_the_default_range() {
        let svc = |ip: &str| ServiceIps {
            namespace: "default".into(),
            name: "kubernetes".into(),
            cluster_ips: vec![ip.parse().unwrap()],
            created: None,
        };
        let snap = |ip: &str| Snapshot {
            ranges: vec![default_range()],
            ips: vec![],
            services: vec![svc(ip)],
        };
        assert_eq!(kubernetes_service(&snap("10.96.0.1")).status, Status::Ok);
        assert_eq!(
            kubernetes_service(&snap("fd00:10:96::1")).status,
            Status::Ok
        );
        assert_eq!(kubernetes_service(&snap("10.96.0.2")).status, Status::Fail);
        assert_eq!(kubernetes_service(&snap("10.0.0.1")).status, Status::Fail);
        // Only default/kubernetes is that Service.
        let others = |namespace: &str, name: &str, ip: &str| ServiceIps {
            namespace: namespace.into(),
            name: name.into(),
            ..svc(ip)
        };
        let mut crowded = snap("10.96.0.1");
        crowded
            .services
            .insert(0, others("default", "web", "10.96.0.9"));
        crowded
            .services
            .insert(1, others("other", "kubernetes", "10.96.0.10"));
        assert_eq!(kubernetes_service(&crowded).status, Status::Ok);
    }

    #[test]
    fn calico_must_advertise_every_live_range_when_it_advertises_any() {
        let mut old = range("old", &["10.9.0.0/24"]);
        old.deleting = Some(now());
        let ranges = [default_range(), range("blue", &["10.100.0.0/24"]), old];
        let calico = |advertised: Option<&[&str]>| {
            Read::Got(Some(Calico {
                advertised: advertised.map(|a| a.iter().map(|c| c.parse().unwrap()).collect()),
                pools: vec![],
            }))
        };
        let status = |r: Read<Option<Calico>>| cni_advertisement(&ranges, &r).status;
        assert_eq!(status(Read::Got(None)), Status::Skipped);
        assert_eq!(status(calico(None)), Status::Ok);
        assert_eq!(
            status(calico(Some(&["10.96.0.0/12", "fd00:10:96::/112"]))),
            Status::Ok
        );
        assert_eq!(status(calico(Some(&["10.96.0.0/16"]))), Status::Warn);
    }

    /// kubernetes#138374: an IPv6 /64 range hands out IPs outside itself up to 1.34.
    #[test]
    fn an_ipv6_slash_64_is_a_hazard_up_to_1_34() {
        let hazard = |minor, cidr: &str| {
            let mut s = surroundings();
            s.version = Read::Got(ServerVersion {
                major: 1,
                minor,
                git: format!("v1.{minor}.0"),
            });
            version_hazards(&[range("r", &[cidr])], &s).status
        };
        assert_eq!(hazard(34, "fd00::/64"), Status::Warn);
        assert_eq!(hazard(35, "fd00::/64"), Status::Ok);
        assert_eq!(hazard(34, "fd00::/65"), Status::Ok);
        assert_eq!(hazard(34, "10.96.0.0/16"), Status::Ok);
    }

    /// A Calico IP pool overlapping a range, inside it or around it, fails.
    #[test]
    fn an_ip_pool_overlapping_a_range_either_way_fails() {
        let ranges = [range("r", &["10.96.0.0/16"])];
        let pool = |cidr: &str| {
            let calico = Read::Got(Some(Calico {
                advertised: None,
                pools: vec![("pool".into(), cidr.parse().unwrap())],
            }));
            node_overlap(&ranges, &Read::Got(vec![]), &calico).status
        };
        assert_eq!(pool("10.0.0.0/8"), Status::Fail);
        assert_eq!(pool("10.96.1.0/24"), Status::Fail);
        assert_eq!(pool("10.97.0.0/16"), Status::Ok);
    }

    /// The repair loop's events per reason: counted (an event without a count is one), the
    /// latest object named; other reasons are not its.
    #[test]
    fn repair_events_are_counted_per_reason_with_the_latest_object() {
        let event = |reason: &str, object: &str, count, secs| EventSeen {
            reason: reason.into(),
            object: object.into(),
            count,
            last: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)),
            message: String::new(),
        };
        let events = Read::Got(vec![
            event("ClusterIPOutOfRange", "Service a/b", 2, 10),
            event("ClusterIPOutOfRange", "Service a/c", 0, 20),
            event("Scheduled", "Pod a/p", 5, 30),
        ]);
        let c = repair_events(&events, 0);
        assert_eq!(c.status, Status::Warn);
        let Facts::RepairEvents { reasons, .. } = c.facts else {
            panic!()
        };
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(20);
        assert_eq!(
            reasons,
            [(
                "ClusterIPOutOfRange".to_owned(),
                3,
                Some(at),
                "Service a/c".to_owned()
            )]
        );
        let unrelated = Read::Got(vec![event("Scheduled", "Pod a/p", 5, 30)]);
        assert_eq!(repair_events(&unrelated, 0).status, Status::Ok);
    }

    /// doctor exits with findings when any check warns or fails; skipped checks are not findings.
    #[test]
    fn healthy_is_every_check_ok_or_skipped() {
        let of = |statuses: &[Status]| {
            let checks: Vec<Check> = statuses
                .iter()
                .map(|&s| check(CheckId::CniAdvertisement, s, Facts::NoCalico))
                .collect();
            healthy(&checks)
        };
        assert!(of(&[Status::Ok, Status::Skipped]));
        assert!(!of(&[Status::Ok, Status::Warn]));
        assert!(!of(&[Status::Fail, Status::Skipped]));
    }

    #[test]
    fn the_allocator_gate_off_is_a_hazard() {
        let mut s = surroundings();
        s.gates = Read::Got(vec![(GATES[0].into(), false)]);
        assert_eq!(version_hazards(&[], &s).status, Status::Warn);
        s.gates = Read::Got(vec![(GATES[0].into(), true), (GATES[1].into(), false)]);
        assert_eq!(version_hazards(&[], &s).status, Status::Ok);
    }

    #[test]
    fn tiny_empty_and_twin_ranges() {
        let s = |cidrs: &[&str]| unusable_ranges(&[range("a", cidrs)]).status;
        assert_eq!(s(&["10.1.0.0/29"]), Status::Ok);
        assert_eq!(s(&["10.1.0.0/30"]), Status::Warn);
        assert_eq!(s(&["10.1.0.0/31"]), Status::Fail);
        assert_eq!(s(&["fd00::/48"]), Status::Fail);
        assert_eq!(s(&["fd00::/126"]), Status::Warn);
        let twins = unusable_ranges(&[range("a", &["10.1.0.0/24"]), range("b", &["10.1.0.0/24"])]);
        assert_eq!(twins.status, Status::Warn);
    }

    #[test]
    fn capacity_by_usage_and_by_the_days_allocation_rate() {
        let r = range("small", &["10.1.0.0/28"]);
        let made = |n: u8, ago: Duration| -> Vec<crate::model::IpAllocation> {
            (1..=n)
                .map(|h| crate::model::IpAllocation {
                    created: Some(now() - ago),
                    ..alloc(&format!("10.1.0.{h}"))
                })
                .collect()
        };
        let status = |ips: Vec<crate::model::IpAllocation>| {
            let snapshot = Snapshot {
                ranges: vec![r.clone()],
                ips,
                services: vec![],
            };
            let report = status_report(&snapshot.ranges, &snapshot.ips, now(), false);
            capacity_outlook(&snapshot, &report, now()).status
        };
        // 14 addresses: 2 made long ago is calm; 11 (79%) made within the day fill it in hours.
        assert_eq!(status(made(2, RATE_WINDOW * 2)), Status::Ok);
        assert_eq!(status(made(11, RATE_WINDOW * 2)), Status::Ok);
        assert_eq!(status(made(11, Duration::from_secs(60))), Status::Warn);
        assert_eq!(status(made(12, RATE_WINDOW * 2)), Status::Warn);
        assert_eq!(status(made(14, RATE_WINDOW * 2)), Status::Fail);
    }

    fn net() -> impl Strategy<Value = IpNet> {
        (0u32..256, 20u8..=32).prop_map(|(b, len)| {
            IpNet::new(std::net::Ipv4Addr::new(10, 0, b as u8, 0).into(), len)
                .unwrap()
                .trunc()
        })
    }

    proptest! {
        // Node overlap against a brute force over every address of 10.0.0.0/16: two prefixes
        // overlap when they share an address; an address is inside when the prefix holds it.
        #[test]
        fn node_overlap_matches_a_scan_of_every_address(
            service in prop::collection::vec(net(), 1..4),
            pods in prop::collection::vec(net(), 0..3),
            addr in prop::collection::vec(0u32..65_536, 0..3),
        ) {
            let ranges: Vec<ServiceCidr> = service.iter().enumerate().map(|(i, n)| {
                let mut r = range(&format!("r{i}"), &[]);
                r.cidrs = vec![*n];
                r
            }).collect();
            let addresses: Vec<IpAddr> = addr.iter().map(|a| IpAddr::V4((0x0a00_0000 | a).into())).collect();
            let node = NodeNet { name: "n".into(), pod_cidrs: pods.clone(), addresses: addresses.clone() };
            let c = node_overlap(&ranges, &Read::Got(vec![node]), &Read::Got(None));
            let Facts::NodeOverlap { pod_cidrs, addresses: inside, .. } = c.facts else { panic!() };
            let holds = |n: &IpNet, a: u32| n.contains(&IpAddr::V4((0x0a00_0000 | a).into()));
            let mut expected_pods = 0;
            for p in &pods {
                for s in &service {
                    if (0..65_536u32).any(|a| holds(p, a) && holds(s, a)) {
                        expected_pods += 1;
                    }
                }
            }
            let expected_addrs = addr.iter().map(|a| service.iter().filter(|s| holds(s, *a)).count()).sum::<usize>();
            prop_assert_eq!(pod_cidrs.len(), expected_pods);
            prop_assert_eq!(inside.len(), expected_addrs);
            prop_assert_eq!(c.status == Status::Fail, expected_pods + expected_addrs > 0);
        }
    }
}
