//! `explain`: one IP or one range, as kube-apiserver's allocator, its repair loop and the
//! service-cidr controller see it. Facts only; `render::explain` words them.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::audit::findings::Finding;
use crate::audit::range::{capacity, contains_ip};
use crate::audit::usage::{Allocating, StatusReport};
use crate::model::{ConditionStatus, Family, IpAllocation, ServiceCidr, Snapshot};

/// Why an allocator does not hand out IPs from a range now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Idle {
    Terminating,
    /// Ready is False or Unknown.
    NotReady(ConditionStatus, String),
    /// No address the allocator hands out (IPv4 /31 and /32, IPv6 shorter than /64 or /128).
    Empty,
    Full,
}

/// One CIDR of a range that holds the IP (by prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub range: String,
    pub cidr: IpNet,
    /// Inside as Kubernetes counts it (not the network address, nor an IPv4 broadcast address).
    pub inside: bool,
    pub usable: bool,
    pub why_not: Option<Idle>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IpFacts {
    pub ip: IpAddr,
    pub holders: Vec<Holder>,
    pub record: Option<IpAllocation>,
    /// Services holding it as a ClusterIP, `namespace/name`.
    pub services: Vec<String>,
    pub findings: Vec<Finding>,
    /// Whether a Service asking for it as its ClusterIP would get it now: inside a usable range
    /// (its shared allocator ready) and not taken.
    pub assignable: Assignable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignable {
    Yes,
    /// Recorded already (by an IPAddress, or held by a Service).
    Taken,
    /// Inside no range whose allocator is ready.
    NoRange,
}

/// One CIDR of the range explained, and where new ClusterIPs of its family come from.
#[derive(Debug, Clone, PartialEq)]
pub struct CidrFacts {
    pub cidr: IpNet,
    pub allocating: Allocating,
    pub why_not: Option<Idle>,
    pub twins: Vec<String>,
    pub free: u128,
    /// Every CIDR of this family whose allocator hands out IPs now and has room: a new Service
    /// gets its ClusterIP from one of them.
    pub candidates: Vec<(String, IpNet, u128)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RangeFacts {
    pub name: String,
    pub cidrs: Vec<CidrFacts>,
}

fn idle(range: &ServiceCidr, cidr: &IpNet, free: u128) -> Option<Idle> {
    if range.is_terminating() {
        Some(Idle::Terminating)
    } else if let Some(c) = range
        .ready
        .as_ref()
        .filter(|c| c.status != ConditionStatus::True)
    {
        Some(Idle::NotReady(c.status, c.reason.clone()))
    } else if capacity(cidr) == 0 {
        Some(Idle::Empty)
    } else if free == 0 {
        Some(Idle::Full)
    } else {
        None
    }
}

/// Every (range, CIDR) with its allocator state and free addresses, from the status report.
fn cidrs(report: &StatusReport) -> Vec<(&str, &crate::audit::usage::CidrUsage)> {
    report
        .ranges
        .iter()
        .flat_map(|r| r.cidrs.iter().map(move |c| (r.name.as_str(), c)))
        .collect()
}

pub fn explain_ip(
    snapshot: &Snapshot,
    report: &StatusReport,
    findings: &[Finding],
    ip: IpAddr,
) -> IpFacts {
    let allocating: BTreeMap<(&str, IpNet), (Allocating, u128)> = cidrs(report)
        .into_iter()
        .map(|(n, c)| ((n, c.cidr), (c.allocating, c.free())))
        .collect();
    let holders: Vec<Holder> = snapshot
        .ranges
        .iter()
        .flat_map(|r| r.cidrs.iter().map(move |c| (r, c)))
        .filter(|(_, c)| c.contains(&ip))
        .map(|(r, c)| {
            let (state, free) = allocating
                .get(&(r.name.as_str(), *c))
                .copied()
                .unwrap_or((Allocating::No, 0));
            Holder {
                range: r.name.clone(),
                cidr: *c,
                inside: contains_ip(c, ip),
                usable: state == Allocating::Yes,
                why_not: idle(r, c, free),
            }
        })
        .collect();
    let record = snapshot.ips.iter().find(|a| a.ip == ip).cloned();
    let services: Vec<String> = snapshot
        .services
        .iter()
        .filter(|s| s.cluster_ips.contains(&ip))
        .map(|s| format!("{}/{}", s.namespace, s.name))
        .collect();
    let assignable = if record.is_some() || !services.is_empty() {
        Assignable::Taken
    } else if holders.iter().any(|h| h.inside && h.usable) {
        Assignable::Yes
    } else {
        Assignable::NoRange
    };
    IpFacts {
        ip,
        holders,
        record,
        services,
        findings: findings.iter().filter(|f| f.ip == ip).cloned().collect(),
        assignable,
    }
}

/// The range's CIDRs, each with why its allocator does or does not hand out IPs, and the CIDRs a
/// new ClusterIP of that family can come from. kube-apiserver keeps one allocator per CIDR string
/// and, for a dynamic ClusterIP, walks them in Go map order (random on every walk), taking the
/// first ready one with room (`AllocateNextService` in cidrallocator.go): every usable range with
/// room gets new IPs, none is preferred, not even the default one.
pub fn explain_range(snapshot: &Snapshot, report: &StatusReport, name: &str) -> Option<RangeFacts> {
    let range = snapshot.ranges.iter().find(|r| r.name == name)?;
    let status = report.ranges.iter().find(|r| r.name == name)?;
    let all = cidrs(report);
    let candidates = |family: Family| -> Vec<(String, IpNet, u128)> {
        let mut seen: BTreeMap<IpNet, (String, u128)> = BTreeMap::new();
        for (n, c) in &all {
            // One allocator per CIDR: twins are one candidate.
            if c.family == family && c.allocating == Allocating::Yes && c.free() > 0 {
                seen.entry(c.cidr).or_insert(((*n).to_owned(), c.free()));
            }
        }
        seen.into_iter().map(|(c, (n, f))| (n, c, f)).collect()
    };
    Some(RangeFacts {
        name: name.to_owned(),
        cidrs: status
            .cidrs
            .iter()
            .map(|c| CidrFacts {
                cidr: c.cidr,
                allocating: c.allocating,
                why_not: idle(range, &c.cidr, c.free()),
                twins: c.twins.clone(),
                free: c.free(),
                candidates: candidates(c.family),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::index::tests::{alloc, finding, range};
    use crate::audit::usage::status_report;
    use std::time::SystemTime;

    fn facts(ranges: Vec<ServiceCidr>, ips: &[&str]) -> (Snapshot, StatusReport) {
        let snapshot = Snapshot {
            ranges,
            ips: ips.iter().map(|i| alloc(i)).collect(),
            services: vec![],
        };
        let report = status_report(
            &snapshot.ranges,
            &snapshot.ips,
            SystemTime::UNIX_EPOCH,
            false,
        );
        (snapshot, report)
    }

    #[test]
    fn an_ip_is_assignable_only_inside_a_ready_allocator_and_free() {
        let mut old = range("old", &["10.2.0.0/24"]);
        old.deleting = Some(SystemTime::UNIX_EPOCH);
        let (s, r) = facts(vec![range("blue", &["10.1.0.0/24"]), old], &["10.1.0.5"]);
        let ip = |i: &str| explain_ip(&s, &r, &[], i.parse().unwrap());
        assert_eq!(ip("10.1.0.6").assignable, Assignable::Yes);
        assert_eq!(ip("10.1.0.5").assignable, Assignable::Taken);
        assert_eq!(ip("10.1.0.0").assignable, Assignable::NoRange);
        assert!(!ip("10.1.0.255").holders[0].inside);
        let gone = ip("10.2.0.9");
        assert_eq!(gone.assignable, Assignable::NoRange);
        assert_eq!(gone.holders[0].why_not, Some(Idle::Terminating));
        assert!(ip("10.3.0.1").holders.is_empty());
    }

    #[test]
    fn an_ip_carries_only_its_own_findings() {
        use crate::audit::findings::FindingKind::Orphaned;
        let (s, r) = facts(vec![range("blue", &["10.1.0.0/24"])], &[]);
        let found = [finding(Orphaned, "10.9.0.1"), finding(Orphaned, "10.9.0.2")];
        let ip: IpAddr = "10.9.0.2".parse().unwrap();
        let own: Vec<IpAddr> = explain_ip(&s, &r, &found, ip)
            .findings
            .iter()
            .map(|f| f.ip)
            .collect();
        assert_eq!(own, [ip]);
    }

    #[test]
    fn new_ips_come_from_every_ready_cidr_with_room_twins_once() {
        let mut old = range("old", &["10.2.0.0/24"]);
        old.deleting = Some(SystemTime::UNIX_EPOCH);
        let full = range("full", &["10.4.0.0/30"]);
        let (s, r) = facts(
            vec![
                range("a", &["10.1.0.0/24", "fd00::/120"]),
                range("twin", &["10.1.0.0/24"]),
                old,
                full,
            ],
            &["10.4.0.1", "10.4.0.2"],
        );
        let f = explain_range(&s, &r, "old").unwrap();
        assert_eq!(f.cidrs[0].why_not, Some(Idle::Terminating));
        let from: Vec<&str> = f.cidrs[0]
            .candidates
            .iter()
            .map(|(n, _, _)| n.as_str())
            .collect();
        assert_eq!(from, ["a"]);
        let f = explain_range(&s, &r, "full").unwrap();
        assert_eq!(f.cidrs[0].why_not, Some(Idle::Full));
        let f = explain_range(&s, &r, "a").unwrap();
        let of_family = |c: &CidrFacts| -> Vec<String> {
            c.candidates.iter().map(|(_, n, _)| n.to_string()).collect()
        };
        assert_eq!(of_family(&f.cidrs[0]), ["10.1.0.0/24"]);
        assert_eq!(of_family(&f.cidrs[1]), ["fd00::/120"]);
        assert_eq!(f.cidrs[0].twins, ["twin"]);
        assert!(explain_range(&s, &r, "nope").is_none());
    }
}
