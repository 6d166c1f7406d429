//! The orphan audit: every inconsistency between Services, IPAddresses and ServiceCIDRs, each with
//! the safe remedy (worded by `render::orphans`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::audit::index::RangeIndex;
use crate::model::{IpAllocation, ParentRef, ServiceIps, Snapshot};
use foldhash::{HashMap, HashSet};

/// The apiserver's repair loop leaves IPAddresses younger than this alone.
pub const REPAIR_GRACE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum FindingKind {
    /// An IP in use, recorded or only held by a Service, inside no existing ServiceCIDR.
    Orphaned,
    /// Inside terminating ranges only: an orphan once they go.
    AtRisk,
    /// The parentRef names a Service that no longer exists.
    DanglingParent,
    /// The Service exists but does not hold that IP.
    WrongParent,
    /// A Service ClusterIP inside a range with no IPAddress object (the repair loop records it).
    Unrecorded,
    /// An IPAddress the apiserver's allocator did not make.
    Unmanaged,
}

impl FindingKind {
    pub const ALL: [FindingKind; 6] = [
        FindingKind::Orphaned,
        FindingKind::AtRisk,
        FindingKind::DanglingParent,
        FindingKind::WrongParent,
        FindingKind::Unrecorded,
        FindingKind::Unmanaged,
    ];

    /// The name in documents and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            FindingKind::Orphaned => "Orphaned",
            FindingKind::AtRisk => "AtRisk",
            FindingKind::DanglingParent => "DanglingParent",
            FindingKind::WrongParent => "WrongParent",
            FindingKind::Unrecorded => "Unrecorded",
            FindingKind::Unmanaged => "Unmanaged",
        }
    }
}

/// The safe thing to do about a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Remedy {
    /// Create a range covering the IP, or recreate the Service holding it.
    Cover,
    /// The repair loop replaces this IPAddress with its own when it next syncs the holder.
    RepairReplaces,
    /// Nothing in Kubernetes will touch it: whoever created it must decide.
    AskCreator,
    /// A Service holds the IP: keep the IPAddress.
    Keep,
    /// The repair loop deletes it; delete it by hand only if it stays.
    RepairDeletes,
    /// No Service holds the IP and nothing cleans it up: delete the IPAddress.
    Delete,
    /// The repair loop records it; recreate the Service if it does not.
    RepairRecords,
}

impl Remedy {
    /// Whether the advice ends with deleting the IPAddress.
    pub fn deletes_ipaddress(self) -> bool {
        matches!(self, Remedy::RepairDeletes | Remedy::Delete)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub kind: FindingKind,
    pub ip: IpAddr,
    /// The Service concerned, `namespace/name`: the holder of the IP, else the one named by
    /// the IPAddress. The names are shared (`Arc`) by the findings of one IP: an audit of
    /// 200,000 findings holds each name once.
    pub service: Option<Arc<str>>,
    /// The Service holding the IP, if any.
    pub holder: Option<Arc<str>>,
    /// The Service the IPAddress's parentRef names, if any.
    pub parent: Option<Arc<str>>,
    /// For AtRisk: the terminating ranges that still hold it.
    pub ranges: Vec<String>,
    pub age: Option<Duration>,
    /// The apiserver's repair loop fixes this by itself.
    pub self_healing: bool,
    pub remedy: Remedy,
}

#[derive(Debug, Clone)]
pub struct AuditOptions {
    pub now: SystemTime,
    pub include_recent: bool,
}

/// The first Service holding each ClusterIP.
fn holders(services: &[ServiceIps]) -> HashMap<IpAddr, &ServiceIps> {
    let mut map = HashMap::with_capacity_and_hasher(services.len(), Default::default());
    for svc in services {
        for ip in &svc.cluster_ips {
            map.entry(*ip).or_insert(svc);
        }
    }
    map
}

fn key(svc: &ServiceIps) -> Arc<str> {
    format!("{}/{}", svc.namespace, svc.name).into()
}

fn parent_key(p: &ParentRef) -> Arc<str> {
    format!("{}/{}", p.namespace, p.name).into()
}

/// The names a finding about one IPAddress carries: built only for IPs that have a finding, since
/// most have none.
struct Names {
    service: Option<Arc<str>>,
    holder: Option<Arc<str>>,
    parent: Option<Arc<str>>,
}

impl Names {
    fn of(alloc: &IpAllocation, holder: Option<&ServiceIps>) -> Names {
        let holder = holder.map(key);
        let parent = alloc
            .parent
            .as_ref()
            .filter(|p| p.is_service())
            .map(parent_key);
        // Without a holder the parent names the Service (reusing `parent`'s string); any kind is named.
        let service = (holder.clone())
            .or_else(|| parent.clone())
            .or_else(|| alloc.parent.as_ref().map(parent_key));
        Names {
            service,
            holder,
            parent,
        }
    }
}

/// Every finding, sorted by kind and IP.
pub fn audit(snapshot: &Snapshot, opts: &AuditOptions) -> Vec<Finding> {
    let mut findings = Vec::new();
    each_finding(snapshot, opts, |f| findings.push(f));
    findings.sort_by_key(|f| (f.kind, f.ip));
    findings
}

/// The number of findings per kind, as `counts(&audit(..))` gives it, without holding the
/// findings: the exporter's 200,000 findings at 100,000 IPs never sit in memory at once.
pub fn tally(snapshot: &Snapshot, opts: &AuditOptions) -> Vec<(FindingKind, usize)> {
    let mut per_kind = [0usize; FindingKind::ALL.len()];
    each_finding(snapshot, opts, |f| per_kind[f.kind as usize] += 1);
    FindingKind::ALL
        .into_iter()
        .zip(per_kind)
        .filter(|&(_, n)| n > 0)
        .collect()
}

/// Hands each finding to `sink` as it is found, in no particular order.
fn each_finding(snapshot: &Snapshot, opts: &AuditOptions, mut sink: impl FnMut(Finding)) {
    let index = RangeIndex::new(&snapshot.ranges);
    let holders = holders(&snapshot.services);
    let services: HashMap<(&str, &str), &ServiceIps> = snapshot
        .services
        .iter()
        .map(|s| ((s.namespace.as_str(), s.name.as_str()), s))
        .collect();
    let age = |t: Option<SystemTime>| t.map(|t| opts.now.duration_since(t).unwrap_or_default());

    for alloc in &snapshot.ips {
        let holder = holders.get(&alloc.ip).copied();
        let mut names: Option<Names> = None;
        let mut push = |kind: FindingKind, ranges: Vec<String>, self_healing: bool, remedy| {
            let names = names.get_or_insert_with(|| Names::of(alloc, holder));
            sink(Finding {
                kind,
                ip: alloc.ip,
                service: names.service.clone(),
                holder: names.holder.clone(),
                parent: names.parent.clone(),
                ranges,
                age: age(alloc.created),
                self_healing,
                remedy,
            })
        };

        let mut containing = index.containing(alloc.ip).peekable();
        let in_a_range = containing.peek().is_some();
        if !in_a_range {
            push(FindingKind::Orphaned, vec![], false, Remedy::Cover);
        } else if containing.all(|e| snapshot.ranges[e.range].is_terminating()) {
            let mut names: Vec<String> = index
                .containing(alloc.ip)
                .map(|e| snapshot.ranges[e.range].name.clone())
                .collect();
            names.dedup();
            push(FindingKind::AtRisk, names, false, Remedy::Cover);
        }

        if !alloc.managed {
            // The repair loop skips IPAddresses without its label, except that a Service's sync
            // replaces the one it holds with a labelled one (repairip.go, verifyIPAddressLabels),
            // and only inside a range: outside every range nothing touches it.
            let (healing, remedy) = match holder {
                Some(_) if in_a_range => (true, Remedy::RepairReplaces),
                Some(_) => (false, Remedy::Cover),
                None => (false, Remedy::AskCreator),
            };
            push(FindingKind::Unmanaged, vec![], healing, remedy);
        }

        let Some(parent) = alloc.parent.as_ref().filter(|p| p.is_service()) else {
            continue;
        };
        let parent_svc = services.get(&(parent.namespace.as_str(), parent.name.as_str()));
        let kind = match parent_svc {
            None => FindingKind::DanglingParent,
            Some(svc) if !svc.cluster_ips.contains(&alloc.ip) => FindingKind::WrongParent,
            Some(_) => continue,
        };
        if alloc.managed
            && !opts.include_recent
            && age(alloc.created).is_some_and(|a| a < REPAIR_GRACE)
        {
            continue;
        }
        // Never advise deleting an IPAddress a live Service still uses.
        let remedy = match holder {
            Some(_) => Remedy::Keep,
            None if alloc.managed => Remedy::RepairDeletes,
            None => Remedy::Delete,
        };
        push(kind, vec![], alloc.managed, remedy);
    }

    let recorded: HashSet<IpAddr> = snapshot.ips.iter().map(|a| a.ip).collect();
    for svc in &snapshot.services {
        let svc_age = age(svc.created);
        let mut name = None;
        for ip in svc.cluster_ips.iter().filter(|ip| !recorded.contains(ip)) {
            let name: Arc<str> = name.get_or_insert_with(|| key(svc)).clone();
            // Outside every range the repair loop never records it (isIPOutOfRange comes first
            // in syncService): an orphan, never hidden.
            if index.containing(*ip).next().is_none() {
                sink(Finding {
                    kind: FindingKind::Orphaned,
                    ip: *ip,
                    service: Some(name.clone()),
                    holder: Some(name),
                    parent: None,
                    ranges: vec![],
                    age: svc_age,
                    self_healing: false,
                    remedy: Remedy::Cover,
                });
                continue;
            }
            if !opts.include_recent && svc_age.is_some_and(|a| a < REPAIR_GRACE) {
                continue;
            }
            sink(Finding {
                kind: FindingKind::Unrecorded,
                ip: *ip,
                service: Some(name.clone()),
                holder: Some(name),
                parent: None,
                ranges: vec![],
                age: svc_age,
                self_healing: true,
                remedy: Remedy::RepairRecords,
            });
        }
    }
}

/// IPs that need a covering range: orphans, and those at risk of becoming one.
pub fn uncovered_ips(findings: &[Finding]) -> Vec<IpAddr> {
    findings
        .iter()
        .filter(|f| matches!(f.kind, FindingKind::Orphaned | FindingKind::AtRisk))
        .map(|f| f.ip)
        .collect()
}

/// The findings of `kinds` (none: all), and how many of other kinds were left out (counted, so
/// that "nothing found" is never said of them).
pub fn selected(
    snapshot: &Snapshot,
    kinds: &[FindingKind],
    include_recent: bool,
    now: SystemTime,
) -> (Vec<Finding>, usize) {
    let mut findings = audit(
        snapshot,
        &AuditOptions {
            now,
            include_recent,
        },
    );
    let all = findings.len();
    if !kinds.is_empty() {
        findings.retain(|f| kinds.contains(&f.kind));
    }
    let left_out = all - findings.len();
    (findings, left_out)
}

/// Count per kind, in kind order, only kinds that occur.
pub fn counts(findings: &[Finding]) -> Vec<(FindingKind, usize)> {
    let mut out: Vec<(FindingKind, usize)> = Vec::new();
    for f in findings {
        match out.last_mut() {
            Some((k, n)) if *k == f.kind => *n += 1,
            _ => out.push((f.kind, 1)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::index::tests::range;
    use proptest::prelude::*;

    const NOW: Duration = Duration::from_secs(10_000);

    fn at(secs_ago: u64) -> Option<SystemTime> {
        Some(SystemTime::UNIX_EPOCH + NOW - Duration::from_secs(secs_ago))
    }

    fn ip(addr: &str, svc: &str) -> IpAllocation {
        let (ns, name) = svc.split_once('/').unwrap();
        IpAllocation {
            ip: addr.parse().unwrap(),
            parent: Some(ParentRef {
                group: String::new(),
                resource: "services".into(),
                namespace: ns.into(),
                name: name.into(),
            }),
            managed: true,
            created: at(600),
        }
    }

    fn svc(key: &str, ips: &[&str]) -> ServiceIps {
        let (ns, name) = key.split_once('/').unwrap();
        ServiceIps {
            namespace: ns.into(),
            name: name.into(),
            cluster_ips: ips.iter().map(|s| s.parse().unwrap()).collect(),
            created: at(600),
        }
    }

    fn opts() -> AuditOptions {
        AuditOptions {
            now: SystemTime::UNIX_EPOCH + NOW,
            include_recent: false,
        }
    }

    fn kinds(f: &[Finding]) -> Vec<(FindingKind, String)> {
        f.iter().map(|f| (f.kind, f.ip.to_string())).collect()
    }

    #[test]
    fn a_consistent_cluster_has_no_findings() {
        let snap = Snapshot {
            ranges: vec![range("kubernetes", &["10.96.0.0/16"])],
            ips: vec![ip("10.96.0.1", "default/kubernetes")],
            services: vec![svc("default/kubernetes", &["10.96.0.1"])],
        };
        assert!(audit(&snap, &opts()).is_empty());
    }

    #[test]
    fn finds_each_kind() {
        let mut dying = range("dying", &["10.2.0.0/24"]);
        dying.deleting = at(30);
        let mut unmanaged = ip("10.96.0.9", "a/manual");
        unmanaged.managed = false;
        let snap = Snapshot {
            ranges: vec![range("kubernetes", &["10.96.0.0/16"]), dying],
            ips: vec![
                ip("10.1.0.5", "a/orphan"),
                ip("10.2.0.5", "a/risky"),
                ip("10.96.0.5", "a/gone"),
                ip("10.96.0.6", "a/moved"),
                unmanaged,
            ],
            services: vec![
                svc("a/orphan", &["10.1.0.5"]),
                svc("a/risky", &["10.2.0.5"]),
                svc("a/moved", &["10.96.0.7"]),
                svc("a/manual", &["10.96.0.9"]),
            ],
        };
        let found = audit(&snap, &opts());
        use FindingKind::*;
        assert_eq!(
            kinds(&found),
            [
                (Orphaned, "10.1.0.5".into()),
                (AtRisk, "10.2.0.5".into()),
                (DanglingParent, "10.96.0.5".into()),
                (WrongParent, "10.96.0.6".into()),
                (Unrecorded, "10.96.0.7".into()),
                (Unmanaged, "10.96.0.9".into()),
            ]
        );
        assert_eq!(found[1].ranges, ["dying"]);
        assert!(found[2].self_healing && !found[0].self_healing);
        assert_eq!(
            counts(&found),
            [
                (Orphaned, 1),
                (AtRisk, 1),
                (DanglingParent, 1),
                (WrongParent, 1),
                (Unrecorded, 1),
                (Unmanaged, 1)
            ]
        );
        assert_eq!(
            uncovered_ips(&found),
            [
                "10.1.0.5".parse::<IpAddr>().unwrap(),
                "10.2.0.5".parse().unwrap()
            ]
        );
    }

    #[test]
    fn a_service_ip_outside_every_range_without_an_ipaddress_is_an_orphan_at_once() {
        let mut young = svc("a/lost", &["10.79.0.5"]);
        young.created = at(1);
        let snap = Snapshot {
            ranges: vec![range("kubernetes", &["10.96.0.0/16"])],
            ips: vec![],
            services: vec![young],
        };
        let found = audit(&snap, &opts());
        assert_eq!(kinds(&found), [(FindingKind::Orphaned, "10.79.0.5".into())]);
        assert!(!found[0].self_healing);
        assert_eq!(
            uncovered_ips(&found),
            ["10.79.0.5".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn an_unmanaged_ip_a_service_holds_is_replaced_one_nobody_holds_is_not() {
        let mut held = ip("10.96.0.9", "a/manual");
        held.managed = false;
        let mut loose = ip("10.96.0.10", "a/none");
        loose.managed = false;
        let snap = Snapshot {
            ranges: vec![range("kubernetes", &["10.96.0.0/16"])],
            ips: vec![held, loose],
            services: vec![svc("a/manual", &["10.96.0.9"])],
        };
        let found: Vec<Finding> = audit(&snap, &opts())
            .into_iter()
            .filter(|f| f.kind == FindingKind::Unmanaged)
            .collect();
        assert!(found[0].self_healing && found[0].remedy == Remedy::RepairReplaces);
        assert!(!found[1].self_healing && found[1].remedy == Remedy::AskCreator);
    }

    #[test]
    fn an_unmanaged_ip_held_outside_every_range_is_not_repaired() {
        let mut held = ip("10.50.0.9", "a/manual");
        held.managed = false;
        let snap = Snapshot {
            ranges: vec![range("kubernetes", &["10.96.0.0/16"])],
            ips: vec![held],
            services: vec![svc("a/manual", &["10.50.0.9"])],
        };
        let found = audit(&snap, &opts());
        let unmanaged = found
            .iter()
            .find(|f| f.kind == FindingKind::Unmanaged)
            .unwrap();
        assert!(!unmanaged.self_healing && unmanaged.remedy == Remedy::Cover);
    }

    #[test]
    fn recent_self_healing_findings_wait_for_the_repair_loop() {
        let mut young = ip("10.96.0.5", "a/gone");
        young.created = at(10);
        let mut new_svc = svc("a/new", &["10.96.0.8"]);
        new_svc.created = at(10);
        let snap = Snapshot {
            ranges: vec![range("kubernetes", &["10.96.0.0/16"])],
            ips: vec![young],
            services: vec![new_svc],
        };
        assert!(audit(&snap, &opts()).is_empty());
        let all = AuditOptions {
            include_recent: true,
            ..opts()
        };
        assert_eq!(audit(&snap, &all).len(), 2);
    }

    /// The repair loop's grace ends at exactly 60 s: a dangling IPAddress of 59 s is left to it,
    /// one of 60 s is reported. Without a Service holding the IP, the repair loop deletes a managed
    /// one and an unmanaged one is for the operator to delete.
    #[test]
    fn the_grace_ends_at_60_seconds_and_who_deletes_follows_the_label() {
        let mut young = ip("10.96.0.1", "ns/gone");
        young.created = at(59);
        let mut due = ip("10.96.0.2", "ns/gone");
        due.created = at(60);
        let mut unmanaged = ip("10.96.0.3", "ns/gone");
        unmanaged.managed = false;
        let snap = Snapshot {
            ranges: vec![range("kubernetes", &["10.96.0.0/24"])],
            ips: vec![young, due, unmanaged],
            services: vec![],
        };
        let dangling: Vec<(String, Remedy)> = audit(&snap, &opts())
            .into_iter()
            .filter(|f| f.kind == FindingKind::DanglingParent)
            .map(|f| (f.ip.to_string(), f.remedy))
            .collect();
        assert_eq!(
            dangling,
            [
                ("10.96.0.2".to_owned(), Remedy::RepairDeletes),
                ("10.96.0.3".to_owned(), Remedy::Delete),
            ]
        );
    }

    /// A Service's IP without an IPAddress is the repair loop's for its first 60 s: reported
    /// from 60 s on, or at once with `--include-recent`.
    #[test]
    fn an_unrecorded_ip_is_reported_from_60_seconds() {
        let mut young = svc("a/young", &["10.96.0.1"]);
        young.created = at(59);
        let mut due = svc("a/due", &["10.96.0.2"]);
        due.created = at(60);
        let snap = Snapshot {
            ranges: vec![range("kubernetes", &["10.96.0.0/24"])],
            ips: vec![],
            services: vec![young, due],
        };
        let unrecorded = |include_recent| {
            let opts = AuditOptions {
                include_recent,
                ..opts()
            };
            kinds(&audit(&snap, &opts))
        };
        use FindingKind::Unrecorded;
        assert_eq!(unrecorded(false), [(Unrecorded, "10.96.0.2".to_owned())]);
        assert_eq!(unrecorded(true).len(), 2);
    }

    /// `orphans --kind` keeps the findings of those kinds and counts the rest as left out.
    #[test]
    fn selected_keeps_the_kinds_asked_for_and_counts_the_others() {
        let snap = Snapshot {
            ranges: vec![range("kubernetes", &["10.96.0.0/24"])],
            ips: vec![ip("10.1.0.5", "a/orphan"), ip("10.96.0.5", "a/gone")],
            services: vec![svc("a/orphan", &["10.1.0.5"])],
        };
        let now = opts().now;
        use FindingKind::*;
        let (all, left_out) = selected(&snap, &[], false, now);
        assert_eq!((all.len(), left_out), (2, 0));
        let (orphans, left_out) = selected(&snap, &[Orphaned], false, now);
        assert_eq!(
            (kinds(&orphans), left_out),
            (vec![(Orphaned, "10.1.0.5".to_owned())], 1)
        );
        let (none, left_out) = selected(&snap, &[AtRisk], false, now);
        assert_eq!((none.len(), left_out), (0, 2));
    }

    proptest! {
        // The exporter's count per kind is exactly the count of the findings `orphans` lists,
        // whatever the ranges (live, terminating, missing), parents, labels and ages.
        #[test]
        fn tally_counts_what_audit_finds(
            entries in prop::collection::vec((0u8..12, 0u8..4, any::<bool>(), 0u64..120), 0..24),
            held in prop::collection::vec((0u8..4, 0u8..12, 0u64..120), 0..12),
            terminating in prop::collection::vec(any::<bool>(), 3),
            include_recent in any::<bool>(),
        ) {
            let ips: Vec<IpAllocation> = entries.iter().map(|(h, p, managed, age)| {
                let mut a = ip(&format!("10.96.0.{h}"), &format!("ns/s{p}"));
                a.managed = *managed;
                a.created = at(*age);
                a
            }).collect();
            let services: Vec<ServiceIps> = held.iter().map(|(s, h, age)| {
                let mut v = svc(&format!("ns/s{s}"), &[&format!("10.96.0.{h}")]);
                v.created = at(*age);
                v
            }).collect();
            let ranges = ["10.96.0.0/30", "10.96.0.4/30", "10.96.0.0/29"].iter().zip(&terminating)
                .enumerate()
                .map(|(i, (cidr, t))| {
                    let mut r = range(&format!("r{i}"), &[cidr]);
                    if *t { r.deleting = Some(SystemTime::UNIX_EPOCH); }
                    r
                }).collect();
            let snap = Snapshot { ranges, ips, services };
            let opts = AuditOptions { include_recent, ..opts() };
            prop_assert_eq!(tally(&snap, &opts), counts(&audit(&snap, &opts)));
        }

        // Never suggest deleting an IPAddress that a live Service still holds.
        #[test]
        fn never_suggests_deleting_a_held_ip(
            entries in prop::collection::vec((0u8..6, 0u8..4, 0u8..4, any::<bool>()), 0..20),
            held in prop::collection::vec((0u8..4, 0u8..6), 0..12),
        ) {
            let ips: Vec<IpAllocation> = entries.iter().map(|(h, p, _, managed)| {
                let mut a = ip(&format!("10.96.0.{h}"), &format!("ns/s{p}"));
                a.managed = *managed;
                a
            }).collect();
            let services: Vec<ServiceIps> = held.iter().map(|(s, h)| svc(&format!("ns/s{s}"), &[&format!("10.96.0.{h}")])).collect();
            let snap = Snapshot { ranges: vec![range("kubernetes", &["10.96.0.0/29"])], ips, services };
            for f in audit(&snap, &AuditOptions { include_recent: true, ..opts() }) {
                if f.remedy.deletes_ipaddress() {
                    prop_assert!(!snap.services.iter().any(|s| s.cluster_ips.contains(&f.ip)), "{:?}", f);
                }
            }
        }
    }
}
