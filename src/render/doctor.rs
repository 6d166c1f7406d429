//! `doctor`: a row per check grouped by status, the evidence and remedy of each that is not ok,
//! and the documented JSON/YAML shape. All wording of `audit::doctor`'s facts lives here.

use std::io::{self, Write};
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use comfy_table::{Cell, Color};
use ipnet::IpNet;
use serde::Serialize;

use crate::audit::doctor::{Check, CheckId, Facts, Hazard, Status};
use crate::model::{DEFAULT_SERVICE_CIDR, Right};
use crate::render::{age, sanitize, table, write_document};
use crate::settings::Style;

pub const KIND: &str = "ServiceCIDRDoctor";

/// A check in words.
#[derive(Debug, Serialize)]
pub struct Words {
    pub summary: String,
    pub evidence: Vec<String>,
    pub remedy: Option<String>,
}

pub fn id(id: CheckId) -> &'static str {
    match id {
        CheckId::DefaultRangeFlags => "default-range-flags",
        CheckId::Controller => "controller",
        CheckId::KubernetesService => "kubernetes-service",
        CheckId::UnusableRanges => "unusable-ranges",
        CheckId::NodeOverlap => "node-overlap",
        CheckId::CniAdvertisement => "cni-advertisement",
        CheckId::VersionHazards => "version-hazards",
        CheckId::RepairEvents => "repair-events",
        CheckId::Capacity => "capacity",
        CheckId::Orphans => "orphans",
    }
}

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Ok => "ok",
        Status::Warn => "warn",
        Status::Fail => "fail",
        Status::Skipped => "skipped",
    }
}

fn right(r: &Right) -> String {
    match &r.namespace {
        Some(ns) => format!("{} {} in {ns}", r.verb, r.resource),
        None => format!("{} {}", r.verb, r.resource),
    }
}

fn nets(n: &[IpNet]) -> String {
    n.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn ips(n: &[IpAddr]) -> String {
    n.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn names(n: &[String]) -> String {
    n.iter().map(|n| sanitize(n)).collect::<Vec<_>>().join(", ")
}

fn ago(now: SystemTime, t: Option<SystemTime>) -> String {
    t.and_then(|t| now.duration_since(t).ok()).map_or_else(
        || "at an unknown time".into(),
        |d| format!("{} ago", age(d)),
    )
}

fn unread_evidence(unread: &[Right]) -> Vec<String> {
    unread
        .iter()
        .map(|r| format!("not read: not allowed to {}", right(r)))
        .collect()
}

/// The words of one check.
pub fn words(c: &Check, now: SystemTime) -> Words {
    let w = |summary: String, evidence: Vec<String>, remedy: Option<&str>| Words {
        summary,
        evidence,
        remedy: remedy.map(Into::into),
    };
    match &c.facts {
        Facts::Unreadable(rights) if rights.is_empty() => w(
            "skipped: what it reads could not be read".into(),
            vec![],
            None,
        ),
        Facts::Unreadable(rights) => w(
            format!(
                "skipped: not allowed to {}",
                rights.iter().map(right).collect::<Vec<_>>().join(", ")
            ),
            vec![],
            Some("the servicecidr-viewer ClusterRole (deploy/rbac) grants every read doctor makes"),
        ),
        Facts::Failed(e) => w(format!("skipped: {}", sanitize(e)), vec![], None),
        Facts::DefaultRange {
            range,
            ready,
            flags,
            split,
            differ,
            kubeadm,
            events,
            unread,
        } => {
            let mut evidence = vec![match range {
                Some(r) => format!(
                    "servicecidr {DEFAULT_SERVICE_CIDR:?}: {} (Ready {})",
                    nets(r),
                    ready.map_or("not set".into(), |s| format!("{s:?}"))
                ),
                None => format!("no servicecidr {DEFAULT_SERVICE_CIDR:?}"),
            }];
            for (pod, flag) in flags {
                evidence.push(match flag {
                    Ok(n) => format!(
                        "pod kube-system/{}: --service-cluster-ip-range={}",
                        sanitize(pod),
                        nets(n)
                    ),
                    Err(raw) => format!(
                        "pod kube-system/{}: --service-cluster-ip-range={} (not a list of CIDRs)",
                        sanitize(pod),
                        sanitize(raw)
                    ),
                });
            }
            if flags.is_empty() && !unread.iter().any(|r| r.resource == "pods") {
                evidence.push(
                    "no kube-apiserver Pod in kube-system (not kubeadm-like, or a managed control plane)".into(),
                );
            }
            if let Some((subnet, _)) = kubeadm {
                evidence.push(format!(
                    "configmap kube-system/kubeadm-config: serviceSubnet {}",
                    sanitize(subnet)
                ));
            }
            for e in events {
                evidence.push(format!(
                    "event {} on {} ({}x, last {}): {}",
                    e.reason,
                    sanitize(&e.object),
                    e.count,
                    ago(now, e.last),
                    sanitize(&e.message)
                ));
            }
            evidence.extend(unread_evidence(unread));
            let (summary, remedy) = if *split {
                (
                    "the kube-apiservers disagree about --service-cluster-ip-range".to_owned(),
                    Some(
                        "give every kube-apiserver the same --service-cluster-ip-range: each one judges the default ServiceCIDR against its own flag, and they fight over it",
                    ),
                )
            } else if !differ.is_empty() {
                (
                    format!(
                        "the default ServiceCIDR differs from --service-cluster-ip-range of {}",
                        names(differ)
                    ),
                    Some(
                        "kube-apiserver never rewrites an existing default ServiceCIDR (kubernetes#133031): to renumber, add a ServiceCIDR for the new range and move Services (kubectl servicecidr migrate), and set the flag to match what the objects say",
                    ),
                )
            } else if range.is_none() {
                (
                    format!("there is no default ServiceCIDR {DEFAULT_SERVICE_CIDR:?}"),
                    Some(
                        "kube-apiserver recreates it from --service-cluster-ip-range within seconds; if it does not, its events and logs say why",
                    ),
                )
            } else if !events.is_empty() {
                (
                    "kube-apiserver reports the default ServiceCIDR inconsistent with its flags"
                        .into(),
                    Some(
                        "compare the flag of every kube-apiserver with the object; the apiserver only warns, it repairs nothing (kubernetes#133031)",
                    ),
                )
            } else if kubeadm.as_ref().is_some_and(|(_, agrees)| !agrees) {
                (
                    "kubeadm-config's serviceSubnet differs from the default ServiceCIDR".into(),
                    Some(
                        "the next kubeadm upgrade or join writes serviceSubnet back into the apiserver flags: update kubeadm-config to the range in use",
                    ),
                )
            } else if ready.is_some_and(|r| r != crate::model::ConditionStatus::True) {
                (
                    "the default ServiceCIDR is not Ready".into(),
                    Some(
                        "kube-apiserver sets it Ready only when it matches the flags: read its events",
                    ),
                )
            } else {
                (
                    "the default ServiceCIDR matches every flag and record seen".into(),
                    None,
                )
            };
            w(summary, evidence, remedy)
        }
        Facts::Controller {
            silent,
            unheld,
            ranges,
        } => {
            let mut evidence: Vec<String> = silent
                .iter()
                .map(|(n, a)| {
                    format!(
                        "servicecidr {:?}: no Ready condition {} after its creation",
                        sanitize(n),
                        age(*a)
                    )
                })
                .collect();
            evidence.extend(unheld.iter().map(|n| {
                format!(
                    "servicecidr {:?}: terminating, never held by the controller",
                    sanitize(n)
                )
            }));
            if silent.is_empty() && unheld.is_empty() {
                w(
                    format!(
                        "all {ranges} range(s) carry the service-cidr controller's Ready condition"
                    ),
                    evidence,
                    None,
                )
            } else {
                w(
                    "the service-cidr controller (kube-controller-manager) is not acting on every range".into(),
                    evidence,
                    Some("start kube-controller-manager with its service-cidr controller (on by default). Meanwhile the allocator still hands out IPs from ranges without a Ready condition, but nothing finishes a deletion safely: use kubectl servicecidr delete NAME --wait, which takes the controller's part after --controller-timeout"),
                )
            }
        }
        Facts::KubernetesService { ip, expected } => match ip {
            Some(ip) if expected.contains(ip) => w(
                format!("the kubernetes Service has {ip}, the first address of the default range"),
                vec![],
                None,
            ),
            Some(ip) => w(
                format!(
                    "the kubernetes Service has {ip}, not the first address of the default range ({})",
                    self::ips(expected)
                ),
                vec![format!("service default/kubernetes: clusterIP {ip}")],
                Some(
                    "the Service range moved under it: clients reach the API at the old address (certificates, kubelet's KUBERNETES_SERVICE_HOST); recreate the kubernetes Service once the default range is right, as kube-apiserver recreates it",
                ),
            ),
            None => w(
                "there is no kubernetes Service in default".into(),
                vec![],
                Some("kube-apiserver recreates it; if it does not, its logs say why"),
            ),
        },
        Facts::Unusable { small, twins } => {
            let mut evidence: Vec<String> = small
                .iter()
                .map(|(n, c, cap)| {
                    format!(
                        "servicecidr {:?}: {c} holds {cap} address(es) the allocator hands out",
                        sanitize(n)
                    )
                })
                .collect();
            evidence.extend(twins.iter().map(|(c, n)| {
                format!(
                    "{c} is named by {}: one allocator serves them all",
                    names(n)
                )
            }));
            if evidence.is_empty() {
                w(
                    "every range can hand out addresses, and no two name the same CIDR".into(),
                    evidence,
                    None,
                )
            } else {
                w(
                    "some ranges hand out nothing or next to nothing, or share one allocator"
                        .into(),
                    evidence,
                    Some(
                        "the allocator never hands out a range's network address, nor an IPv4 broadcast address, nor anything from an IPv6 range shorter than /64: use /29 or larger (IPv4), /64 to /120 (IPv6). Twins share one allocator whose readiness follows neither alone (a terminating twin keeps getting IPs): delete one",
                    ),
                )
            }
        }
        Facts::NodeOverlap {
            nodes,
            pod_cidrs,
            addresses,
            pools,
        } => {
            let mut evidence: Vec<String> = pod_cidrs
                .iter()
                .map(|(node, pod, range, c)| {
                    format!(
                        "node {}: podCIDR {pod} overlaps {c} of servicecidr {:?}",
                        sanitize(node),
                        sanitize(range)
                    )
                })
                .collect();
            evidence.extend(pools.iter().map(|(pool, net, range, c)| {
                format!(
                    "Calico ippool {}: {net} overlaps {c} of servicecidr {:?}",
                    sanitize(pool),
                    sanitize(range)
                )
            }));
            evidence.extend(addresses.iter().map(|(node, ip, range, c)| {
                format!(
                    "node {}: address {ip} is inside {c} of servicecidr {:?}",
                    sanitize(node),
                    sanitize(range)
                )
            }));
            if evidence.is_empty() {
                w(
                    format!(
                        "no Service range overlaps the pod ranges or addresses of {nodes} node(s)"
                    ),
                    evidence,
                    None,
                )
            } else {
                w(
                    "Service ranges overlap node pod ranges or node addresses".into(),
                    evidence,
                    Some(
                        "traffic to a Service IP that is also a Pod or node address goes to one of them, unpredictably: move the Services to a range that overlaps nothing (kubectl servicecidr migrate) and delete the overlapping one",
                    ),
                )
            }
        }
        Facts::Version {
            version,
            served,
            hazards,
            gates,
        } => {
            let mut evidence = vec![format!(
                "server {} serves ServiceCIDRs at networking.k8s.io/{served}",
                sanitize(&version.git)
            )];
            evidence.push(match gates {
                Some(g) if !g.is_empty() => format!(
                    "feature gates (kube-apiserver /metrics): {}",
                    g.iter()
                        .map(|(n, on)| format!("{n}={on}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                Some(_) => "feature gates: not in kube-apiserver's /metrics".into(),
                None => "feature gates: not read (kube-apiserver's /metrics needs get on that URL)".into(),
            });
            if hazards.is_empty() {
                return w(
                    format!(
                        "no known hazard for {} with these ranges",
                        sanitize(&version.git)
                    ),
                    evidence,
                    None,
                );
            }
            evidence.extend(hazards.iter().map(|h| match h {
                Hazard::Ipv6Slash64 => "kubernetes#138374: an IPv6 /64 ServiceCIDR hands out IPs outside itself before 1.35.0 (PR #134193); 1.34 only from the patch release that carries PR #138385".to_owned(),
                Hazard::Beta => "networking.k8s.io/v1beta1 only (Kubernetes 1.31-1.32): deprecated, removed in a later release".to_owned(),
                Hazard::GateOff => "MultiCIDRServiceAllocator is off: the allocator hands out IPs from --service-cluster-ip-range only and ignores every other ServiceCIDR".to_owned(),
            }));
            w(
                format!(
                    "{} known hazard(s) for {}",
                    hazards.len(),
                    sanitize(&version.git)
                ),
                evidence,
                Some(
                    "upgrade kube-apiserver past the fixing release; until then, prefer IPv6 ranges longer than /64 (/108 to /120) and check where new ClusterIPs land (kubectl servicecidr orphans)",
                ),
            )
        }
        Facts::NoCalico => w(
            "skipped: the cluster does not serve Calico's API (crd.projectcalico.org)".into(),
            vec![],
            None,
        ),
        Facts::Advertisement { advertised, missing } => match advertised {
            None => w(
                "Calico advertises no Service range (no serviceClusterIPs in the default BGPConfiguration)".into(),
                vec![],
                None,
            ),
            Some(list) => {
                let mut evidence = vec![format!(
                    "bgpconfiguration default: serviceClusterIPs {}",
                    nets(list)
                )];
                evidence.extend(missing.iter().map(|(n, c)| {
                    format!("servicecidr {:?}: {c} is not advertised", sanitize(n))
                }));
                if missing.is_empty() {
                    w("Calico advertises every Service range".into(), evidence, None)
                } else {
                    w(
                        "Calico does not advertise every Service range: their IPs are not routed from outside the cluster".into(),
                        evidence,
                        Some("add each missing CIDR to spec.serviceClusterIPs of the default BGPConfiguration (calicoctl patch bgpconfiguration default)"),
                    )
                }
            }
        },
        Facts::RepairEvents { reasons, orphans } => {
            let evidence: Vec<String> = reasons
                .iter()
                .map(|(reason, count, last, example)| {
                    format!(
                        "{reason}: {count}x, last {} (e.g. {})",
                        ago(now, *last),
                        sanitize(example)
                    )
                })
                .collect();
            if evidence.is_empty() {
                w(
                    "the apiserver's repair loop reports nothing".into(),
                    evidence,
                    None,
                )
            } else {
                w(
                    format!(
                        "the apiserver's repair loop reports inconsistencies; orphans finds {orphans} IP(s) outside every range"
                    ),
                    evidence,
                    Some(
                        "kubectl servicecidr orphans lists each one with its action; ClusterIPOutOfRange is an orphan the repair loop cannot fix",
                    ),
                )
            }
        }
        Facts::Capacity { tight, cidrs } => {
            let evidence: Vec<String> = tight
                .iter()
                .map(|t| {
                    let pace = match t.full_in {
                        Some(d) => format!(
                            ", {:.1} new IPs an hour over the last day: full in about {}",
                            t.per_hour,
                            age(d.min(Duration::from_secs(100 * 365 * 24 * 3600)))
                        ),
                        None => ", no new IPs over the last day".into(),
                    };
                    format!(
                        "servicecidr {:?} {}: {:.1}% used{pace}",
                        sanitize(&t.range),
                        t.cidr,
                        t.percent
                    )
                })
                .collect();
            if evidence.is_empty() {
                w(
                    format!("all {cidrs} CIDR(s) are under 80% and not filling within 7 days"),
                    evidence,
                    None,
                )
            } else {
                w(
                    "some ranges are nearly full or filling within 7 days".into(),
                    evidence,
                    Some(
                        "add a ServiceCIDR (the allocator takes new IPs from any usable range once this one is full), or renumber into a larger one with kubectl servicecidr migrate",
                    ),
                )
            }
        }
        Facts::Orphans(counts) => {
            if counts.is_empty() {
                w("orphans finds nothing".into(), vec![], None)
            } else {
                w(
                    format!(
                        "orphans finds {}",
                        counts
                            .iter()
                            .map(|(k, n)| format!("{n} {}", k.name()))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    vec![],
                    Some("kubectl servicecidr orphans shows each finding with a safe action"),
                )
            }
        }
    }
}

#[derive(Serialize)]
pub struct CheckDoc {
    id: &'static str,
    status: &'static str,
    #[serde(flatten)]
    words: Words,
}

#[derive(Serialize)]
pub struct DoctorDoc {
    checks: Vec<CheckDoc>,
}

/// Checks grouped by status, worst first, in check order within a status.
fn ordered(checks: &[Check]) -> Vec<&Check> {
    let mut sorted: Vec<&Check> = checks.iter().collect();
    sorted.sort_by_key(|c| c.status);
    sorted
}

pub fn document(checks: &[Check], now: SystemTime) -> DoctorDoc {
    DoctorDoc {
        checks: ordered(checks)
            .into_iter()
            .map(|c| CheckDoc {
                id: id(c.id),
                status: status_name(c.status),
                words: words(c, now),
            })
            .collect(),
    }
}

fn status_cell(style: &Style, s: Status) -> Cell {
    let color = match s {
        Status::Ok => Color::Green,
        Status::Warn | Status::Skipped => Color::Yellow,
        Status::Fail => Color::Red,
    };
    table::colored(style, status_name(s).to_owned(), color)
}

/// The table's rows, each prefixed by `lead`, and the details of every check not ok.
pub fn rows(
    style: &Style,
    checks: &[Check],
    now: SystemTime,
    lead: &[String],
) -> (Vec<Vec<Cell>>, Vec<String>) {
    let mut rows = Vec::new();
    let mut details = Vec::new();
    for c in ordered(checks) {
        let w = words(c, now);
        let mut row: Vec<Cell> = lead.iter().map(Cell::new).collect();
        row.extend([
            status_cell(style, c.status),
            Cell::new(id(c.id)),
            Cell::new(&w.summary),
        ]);
        rows.push(row);
        if c.status != Status::Ok && (!w.evidence.is_empty() || w.remedy.is_some()) {
            let mut text = String::new();
            let head: Vec<&str> = lead.iter().map(String::as_str).chain([id(c.id)]).collect();
            text.push_str(&format!(
                "{} ({}):\n",
                head.join(" "),
                status_name(c.status)
            ));
            for e in &w.evidence {
                text.push_str(&format!("  - {e}\n"));
            }
            if let Some(r) = &w.remedy {
                text.push_str(&format!("  remedy: {r}\n"));
            }
            details.push(text);
        }
    }
    (rows, details)
}

pub fn headers() -> [&'static str; 3] {
    ["STATUS", "CHECK", "SUMMARY"]
}

pub fn write(
    out: &mut impl Write,
    style: &Style,
    checks: &[Check],
    now: SystemTime,
) -> io::Result<()> {
    if !style.output.is_table() {
        return write_document(out, style.output, KIND, &document(checks, now));
    }
    let mut t = table::new(style, &headers());
    let (rows, details) = rows(style, checks, now, &[]);
    for r in rows {
        t.add_row(r);
    }
    table::finish(&mut t, &[]);
    table::write(out, &t)?;
    if style.headers {
        for d in details {
            write!(out, "\n{d}")?;
        }
    }
    Ok(())
}
