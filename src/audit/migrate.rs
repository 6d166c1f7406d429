//! Renumbering: which Services move from the old ranges to the new one, and to which ClusterIPs.
//!
//! The plan is worked out from what the cluster holds now (and, for a run that was interrupted,
//! from its backups), so computing it again after any step gives what is left to do.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::audit::fleet::share_an_address;
use crate::audit::journal::{Record, Unfinished, unfinished};
use crate::audit::range::{bits, capacity, contains_ip, from_bits};
use crate::model::{
    DEFAULT_SERVICE_CIDR, Family, IpAllocation, NodeNets, ServiceCidr, ServiceFacts, ServiceType,
};

/// The `kubernetes` Service in `default`: the apiserver owns its ClusterIP (the first of its
/// `--service-cluster-ip-range`), so it moves only with the apiserver's flags.
pub const KUBERNETES_SERVICE: (&str, &str) = ("default", "kubernetes");

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The ranges to empty and retire.
    pub from: Vec<String>,
    /// The new range's CIDRs, at most one per family.
    pub to: Vec<IpNet>,
    /// The new range's name.
    pub name: String,
    /// Let the new range overlap live ranges other than the old ones.
    pub allow_overlap: bool,
    /// Move only these Services (`namespace/name`); empty moves all.
    pub only: Vec<String>,
}

/// An old range: read from the cluster, or from the journal of an earlier run once it is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    pub name: String,
    pub cidrs: Vec<IpNet>,
    pub terminating: bool,
    pub gone: bool,
}

impl Source {
    /// The default range comes from the apiserver's flags: retiring it is a manual step.
    pub fn is_default(&self) -> bool {
        self.name == DEFAULT_SERVICE_CIDR
    }

    fn holds(&self, ip: IpAddr) -> Option<&IpNet> {
        self.cidrs.iter().find(|c| contains_ip(c, ip))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Move {
    pub namespace: String,
    pub name: String,
    /// The ClusterIPs now, in `spec.clusterIPs` order.
    pub from: Vec<IpAddr>,
    /// The ClusterIPs after, same order: a new one for each IP in an old range, the rest kept.
    pub to: Vec<IpAddr>,
    /// The creator chose the ClusterIP: whatever refers to it (kubelet's --cluster-dns for
    /// kube-dns) must follow.
    pub pinned: bool,
    /// Who set it: the recreated Service names the same manager, so it stays pinned.
    pub pinned_by: Option<String>,
    /// Every new IP sits at the same host offset as the old one.
    pub offset_kept: bool,
    pub owners: Vec<String>,
    pub node_ports: Vec<i32>,
    pub service_type: ServiceType,
    /// Deleted by an interrupted run and not recreated: only its backup is left.
    pub missing: bool,
}

impl Move {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SkipReason {
    /// `clusterIP: None`: nothing to renumber.
    Headless,
    /// No ClusterIP at all.
    ExternalName,
    /// Its IP follows the apiserver's flags (a manual step).
    KubernetesService,
    /// In an old range but not named by `--only`.
    NotSelected,
    /// Deleted by someone else since the plan: not recreated.
    Vanished,
    /// Another run of the same migration has it in hand.
    InAnotherRun,
    /// Its owner is deleting it (a deletionTimestamp): never moved, so never recreated.
    Terminating,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Skip {
    pub namespace: String,
    pub name: String,
    pub reason: SkipReason,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Warning {
    /// A Node's InternalIP lies in the new range.
    NodeAddress {
        cidr: IpNet,
        node: String,
        ip: IpAddr,
    },
    /// A Node's pod range shares addresses with the new range.
    PodCidr {
        cidr: IpNet,
        node: String,
        pod_cidr: IpNet,
    },
    /// Allowed by `--allow-overlap`: the new range shares addresses with a live one.
    Overlap {
        cidr: IpNet,
        range: String,
        range_cidr: IpNet,
    },
    /// An IPAddress in an old range that no Service holds: nothing moves it, and the old range is
    /// retired only once it is gone.
    Unheld { ip: IpAddr, range: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Plan {
    pub name: String,
    pub cidrs: Vec<IpNet>,
    /// The new range exists already (made by an earlier run).
    pub range_exists: bool,
    /// Only some Services move (`--only`): the old ranges stay for a later run to retire.
    pub partial: bool,
    pub sources: Vec<Source>,
    pub moves: Vec<Move>,
    pub skipped: Vec<Skip>,
    pub warnings: Vec<Warning>,
}

impl Plan {
    /// The old ranges `run` deletes: not the default one, not those already gone, and none when
    /// only some Services move.
    pub fn to_retire(&self) -> Vec<&Source> {
        self.sources
            .iter()
            .filter(|s| !self.partial && !s.is_default() && !s.gone)
            .collect()
    }

    /// The default range is among the old ones: its retirement is left to the operator.
    pub fn moves_default(&self) -> bool {
        self.sources.iter().any(Source::is_default)
    }
}

/// Why there is no plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    UnknownSource(String),
    TwoOfFamily(Family),
    /// The allocator would hand out no address from it.
    Unusable(IpNet),
    NameIsSource(String),
    /// A range of that name exists with other CIDRs, or is being deleted.
    NameTaken {
        name: String,
        cidrs: Vec<IpNet>,
        terminating: bool,
    },
    /// The new range would share addresses with an old one.
    OverlapsSource {
        cidr: IpNet,
        range: String,
        range_cidr: IpNet,
    },
    /// The new range would share addresses with another live range (`--allow-overlap` permits it).
    OverlapsLive {
        cidr: IpNet,
        range: String,
        range_cidr: IpNet,
    },
    /// A Service holds an IP of a family the new range has no CIDR for.
    NoTargetFamily {
        family: Family,
        service: String,
        ip: IpAddr,
    },
    /// Not enough free addresses in the new range.
    TargetFull {
        cidr: IpNet,
        needed: usize,
        free: u128,
    },
    /// No Service to move, no new range made by an earlier run, and not the default range.
    NothingToMove {
        sources: Vec<String>,
    },
    /// `--only` names a Service that does not exist.
    UnknownService(String),
    /// Another migration has Services deleted and not recreated that this run would not finish.
    Unfinished(Unfinished),
}

/// What happened to one Service of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub namespace: String,
    pub name: String,
    pub from: Vec<IpAddr>,
    pub to: Vec<IpAddr>,
    /// The local copy of the original, written before its delete.
    pub backup: Option<std::path::PathBuf>,
    /// The recreate failed and the original was created again, with these IPs.
    pub restored: Option<Vec<IpAddr>>,
    /// The original came back with these nodePorts: its own were taken meanwhile.
    pub new_node_ports: Option<Vec<i32>>,
    /// Not touched after all: deleted or being deleted by someone else since the plan.
    pub skipped: Option<SkipReason>,
    /// Deleted and not recreated: the journal keeps it for the next run.
    pub in_journal: bool,
    pub error: Option<String>,
}

impl Moved {
    pub fn new(m: &Move) -> Moved {
        Moved {
            namespace: m.namespace.clone(),
            name: m.name.clone(),
            from: m.from.clone(),
            to: m.to.clone(),
            backup: None,
            restored: None,
            new_node_ports: None,
            skipped: None,
            in_journal: false,
            error: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RunOutcome {
    /// Every step ran.
    Done,
    /// A Service could not be moved; the run stopped there.
    Failed,
    /// Ctrl-C between two Services.
    Interrupted,
}

/// What a run did, and what the cluster looks like after it.
#[derive(Debug, Clone)]
pub struct Report {
    pub plan: Plan,
    pub backup_dir: std::path::PathBuf,
    pub outcome: RunOutcome,
    pub moved: Vec<Moved>,
    pub retired: Vec<crate::audit::retire::DeleteResult>,
    /// The audit's findings at the end about this migration: its ranges and its Services.
    pub findings: Vec<crate::audit::findings::Finding>,
    /// The audit's other findings at the end: the cluster's, not this run's.
    pub unrelated: usize,
    /// Services still holding an IP in an old range at the end.
    pub left: Vec<String>,
}

impl Report {
    pub fn new(plan: &Plan, backup_dir: &std::path::Path) -> Report {
        Report {
            plan: plan.clone(),
            backup_dir: backup_dir.to_owned(),
            outcome: RunOutcome::Done,
            moved: Vec::new(),
            retired: Vec::new(),
            findings: Vec::new(),
            unrelated: 0,
            left: Vec::new(),
        }
    }

    /// Keeps the findings about this migration (an IP in an old or the new range, or a Service
    /// of the plan) and counts the rest.
    pub fn set_findings(&mut self, all: Vec<crate::audit::findings::Finding>) {
        let nets: Vec<&IpNet> = self
            .plan
            .sources
            .iter()
            .flat_map(|s| &s.cidrs)
            .chain(&self.plan.cidrs)
            .collect();
        let keys: HashSet<String> = self.plan.moves.iter().map(Move::key).collect();
        let (ours, theirs): (Vec<_>, Vec<_>) = all.into_iter().partition(|f| {
            nets.iter().any(|n| n.contains(&f.ip))
                || [&f.service, &f.holder, &f.parent]
                    .into_iter()
                    .flatten()
                    .any(|s| keys.contains(&**s))
        });
        self.findings = ours;
        self.unrelated = theirs.len();
    }

    /// 130 when interrupted, 1 when a Service failed, else the worst retirement, and 3 when an
    /// old range still holds a Service or the audit finds anything about this migration.
    pub fn exit(&self) -> crate::exit::Exit {
        use crate::exit::Exit;
        match self.outcome {
            RunOutcome::Interrupted => Exit::Interrupted,
            RunOutcome::Failed => Exit::Error,
            RunOutcome::Done => {
                let retired = crate::audit::retire::worst(&self.retired);
                if self.findings.is_empty() && self.left.is_empty() {
                    retired
                } else {
                    retired.worst(Exit::Findings)
                }
            }
        }
    }
}

/// Works out the plan, or why there is none.
///
/// `journals` are the migration journals found on the cluster, by the range holding each: this
/// migration's own one gives the old ranges since gone; another one with Services in flight
/// that this run would not finish refuses the run. `services` include those known only from
/// this migration's journal (`missing`).
pub fn plan(
    req: &Request,
    ranges: &[ServiceCidr],
    ips: &[IpAllocation],
    services: &[ServiceFacts],
    nodes: &[NodeNets],
    journals: &[(String, Record)],
) -> Result<Plan, Refusal> {
    let targets = targets_by_family(&req.to)?;
    let own = journals
        .iter()
        .find(|(range, _)| *range == req.name)
        .map(|(_, r)| r);
    let sources = sources(req, ranges, own)?;
    let others = journals.iter().map(|(range, r)| (range.as_str(), r));
    if let Some(u) = unfinished(others, &req.name, &req.to, |ip| in_sources(&sources, ip)) {
        return Err(Refusal::Unfinished(u));
    }
    let range_exists = check_name(req, ranges)?;
    let mut warnings = overlaps(req, ranges, &sources)?;
    warnings.extend(node_warnings(&req.to, nodes));

    let mut sorted: Vec<&ServiceFacts> = services.iter().collect();
    sorted.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    let mut skipped = Vec::new();
    let mut chosen = Vec::new();
    for s in sorted {
        let skip = |reason| Skip {
            namespace: s.namespace.clone(),
            name: s.name.clone(),
            reason,
        };
        if s.headless {
            skipped.push(skip(SkipReason::Headless));
            continue;
        }
        if s.terminating && !s.missing {
            skipped.push(skip(SkipReason::Terminating));
            continue;
        }
        if s.cluster_ips.is_empty() {
            skipped.push(skip(SkipReason::ExternalName));
            continue;
        }
        if !s.cluster_ips.iter().any(|ip| in_sources(&sources, *ip)) {
            continue;
        }
        if (s.namespace.as_str(), s.name.as_str()) == KUBERNETES_SERVICE {
            skipped.push(skip(SkipReason::KubernetesService));
        } else if !req.only.is_empty() && !req.only.contains(&s.key()) {
            skipped.push(skip(SkipReason::NotSelected));
        } else {
            chosen.push(s);
        }
    }
    // One named by --only that has moved already is done, not a mistake.
    if let Some(name) = req
        .only
        .iter()
        .find(|k| !services.iter().any(|s| &s.key() == *k))
    {
        return Err(Refusal::UnknownService(name.clone()));
    }
    // The default range always leaves work: the manual steps that move it.
    if chosen.is_empty() && !range_exists && !sources.iter().any(Source::is_default) {
        return Err(Refusal::NothingToMove {
            sources: sources.iter().map(|s| s.name.clone()).collect(),
        });
    }
    let mut taken = held_ips(services);
    for a in ips.iter().filter(|a| !taken.contains(&a.ip)) {
        if let Some(s) = sources.iter().find(|s| s.holds(a.ip).is_some()) {
            warnings.push(Warning::Unheld {
                ip: a.ip,
                range: s.name.clone(),
            });
        }
    }
    // Moving the default range ends with the apiserver's flags naming the new one, and the
    // kubernetes Service taking its first address: keep that free.
    if sources.iter().any(Source::is_default)
        && let Some(primary) = req.to.first()
    {
        taken.insert(from_bits(
            bits(primary.network()) + 1,
            Family::of_net(primary),
        ));
    }
    let moves = assign(&targets, &sources, ips, &chosen, taken)?;
    Ok(Plan {
        name: req.name.clone(),
        cidrs: req.to.clone(),
        range_exists,
        partial: !req.only.is_empty(),
        sources,
        moves,
        skipped,
        warnings,
    })
}

fn targets_by_family(to: &[IpNet]) -> Result<BTreeMap<Family, IpNet>, Refusal> {
    let mut targets = BTreeMap::new();
    for cidr in to {
        // The API accepts a /32, a /128 or an IPv6 prefix shorter than /64; the allocator
        // hands out nothing from them.
        if capacity(cidr) == 0 {
            return Err(Refusal::Unusable(*cidr));
        }
        if targets.insert(Family::of_net(cidr), *cidr).is_some() {
            return Err(Refusal::TwoOfFamily(Family::of_net(cidr)));
        }
    }
    Ok(targets)
}

fn sources(
    req: &Request,
    ranges: &[ServiceCidr],
    journal: Option<&Record>,
) -> Result<Vec<Source>, Refusal> {
    let mut names = req.from.clone();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            if let Some(r) = ranges.iter().find(|r| r.name == name) {
                Ok(Source {
                    name,
                    cidrs: r.cidrs.clone(),
                    terminating: r.is_terminating(),
                    gone: false,
                })
            } else if let Some(j) = journal
                .into_iter()
                .flat_map(|j| &j.from)
                .find(|j| j.name == name)
            {
                Ok(Source {
                    name,
                    cidrs: j.cidrs.clone(),
                    terminating: true,
                    gone: true,
                })
            } else {
                Err(Refusal::UnknownSource(name))
            }
        })
        .collect()
}

/// Whether the new range exists already with exactly the planned CIDRs.
fn check_name(req: &Request, ranges: &[ServiceCidr]) -> Result<bool, Refusal> {
    if req.from.contains(&req.name) {
        return Err(Refusal::NameIsSource(req.name.clone()));
    }
    let Some(r) = ranges.iter().find(|r| r.name == req.name) else {
        return Ok(false);
    };
    let same = r.cidrs.len() == req.to.len() && req.to.iter().all(|c| r.cidrs.contains(c));
    if same && !r.is_terminating() {
        Ok(true)
    } else {
        Err(Refusal::NameTaken {
            name: r.name.clone(),
            cidrs: r.cidrs.clone(),
            terminating: r.is_terminating(),
        })
    }
}

fn overlaps(
    req: &Request,
    ranges: &[ServiceCidr],
    sources: &[Source],
) -> Result<Vec<Warning>, Refusal> {
    let mut warnings = Vec::new();
    let known = ranges.iter().map(|r| (&r.name, &r.cidrs));
    let gone = sources
        .iter()
        .filter(|s| s.gone)
        .map(|s| (&s.name, &s.cidrs));
    for (name, cidrs) in known.chain(gone) {
        if *name == req.name {
            continue;
        }
        let is_source = sources.iter().any(|s| &s.name == name);
        for cidr in &req.to {
            for range_cidr in cidrs.iter().filter(|c| share_an_address(cidr, c)) {
                let (cidr, range, range_cidr) = (*cidr, name.clone(), *range_cidr);
                if is_source {
                    return Err(Refusal::OverlapsSource {
                        cidr,
                        range,
                        range_cidr,
                    });
                } else if !req.allow_overlap {
                    return Err(Refusal::OverlapsLive {
                        cidr,
                        range,
                        range_cidr,
                    });
                }
                warnings.push(Warning::Overlap {
                    cidr,
                    range,
                    range_cidr,
                });
            }
        }
    }
    Ok(warnings)
}

fn node_warnings(to: &[IpNet], nodes: &[NodeNets]) -> Vec<Warning> {
    let mut warnings = Vec::new();
    for cidr in to {
        for node in nodes {
            for ip in node.internal_ips.iter().filter(|ip| cidr.contains(*ip)) {
                warnings.push(Warning::NodeAddress {
                    cidr: *cidr,
                    node: node.name.clone(),
                    ip: *ip,
                });
            }
            for pod_cidr in node.pod_cidrs.iter() {
                if cidr.contains(pod_cidr) || pod_cidr.contains(cidr) {
                    warnings.push(Warning::PodCidr {
                        cidr: *cidr,
                        node: node.name.clone(),
                        pod_cidr: *pod_cidr,
                    });
                }
            }
        }
    }
    warnings
}

fn in_sources(sources: &[Source], ip: IpAddr) -> bool {
    sources.iter().any(|s| s.holds(ip).is_some())
}

/// Every ClusterIP a Service holds (or held, for those known from backups), with or without an
/// IPAddress object: none is handed to another Service.
fn held_ips(services: &[ServiceFacts]) -> HashSet<IpAddr> {
    services
        .iter()
        .flat_map(|s| s.cluster_ips.iter().copied())
        .collect()
}

/// Picks the new IPs in two passes. First every IP keeps its host offset in the new range where
/// that address is allocatable and free, pinned Services first; then each IP left over gets the
/// lowest free address. So no fallback ever takes the offset another Service could keep.
fn assign(
    targets: &BTreeMap<Family, IpNet>,
    sources: &[Source],
    ips: &[IpAllocation],
    chosen: &[&ServiceFacts],
    mut taken: HashSet<IpAddr>,
) -> Result<Vec<Move>, Refusal> {
    // Taken as well: every IPAddress object, which may have no Service.
    taken.extend(ips.iter().map(|a| a.ip));
    // What a refusal reports: the free addresses before anything moves in.
    let free_before: BTreeMap<Family, u128> = targets
        .iter()
        .map(|(f, net)| (*f, free_in(net, &taken)))
        .collect();
    let mut order: Vec<&&ServiceFacts> = chosen.iter().collect();
    order.sort_by_key(|s| !s.pinned());
    // Per Service, per ClusterIP: kept as is (outside the old ranges), moved, or still to place.
    let mut slots: Vec<Vec<Slot>> = Vec::with_capacity(order.len());
    for s in &order {
        let mut row = Vec::new();
        for ip in &s.cluster_ips {
            let Some(old) = sources.iter().find_map(|src| src.holds(*ip)) else {
                row.push(Slot::Kept(*ip));
                continue;
            };
            let family = Family::of(*ip);
            let Some(target) = targets.get(&family) else {
                return Err(Refusal::NoTargetFamily {
                    family,
                    service: s.key(),
                    ip: *ip,
                });
            };
            let offset = bits(*ip) - bits(old.network());
            let same = bits(target.network())
                .checked_add(offset)
                .map(|b| from_bits(b, family))
                .filter(|c| contains_ip(target, *c) && !taken.contains(c));
            row.push(match same {
                Some(c) => {
                    taken.insert(c);
                    Slot::Offset(c)
                }
                None => Slot::Open(target),
            });
        }
        slots.push(row);
    }
    let mut lowest: BTreeMap<Family, u128> = targets
        .iter()
        .map(|(f, net)| (*f, bits(net.network())))
        .collect();
    let mut moves = Vec::new();
    for (s, row) in order.iter().zip(slots) {
        let mut to = Vec::new();
        let mut offset_kept = true;
        for slot in row {
            to.push(match slot {
                Slot::Kept(ip) | Slot::Offset(ip) => ip,
                Slot::Open(target) => {
                    offset_kept = false;
                    let cursor = lowest
                        .get_mut(&Family::of_net(target))
                        .expect("a cursor per target family");
                    let ip =
                        lowest_free(target, &taken, cursor).ok_or_else(|| Refusal::TargetFull {
                            cidr: *target,
                            needed: chosen.len(),
                            free: free_before[&Family::of_net(target)],
                        })?;
                    taken.insert(ip);
                    ip
                }
            });
        }
        moves.push(Move {
            namespace: s.namespace.clone(),
            name: s.name.clone(),
            from: s.cluster_ips.clone(),
            to,
            pinned: s.pinned(),
            pinned_by: s.pinned_by.clone(),
            offset_kept,
            owners: s.owners.clone(),
            node_ports: s.node_ports.clone(),
            service_type: s.service_type,
            missing: s.missing,
        });
    }
    moves.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(moves)
}

/// Where one ClusterIP of a moving Service goes.
enum Slot<'t> {
    /// Outside the old ranges: stays.
    Kept(IpAddr),
    /// The same host offset in the new range.
    Offset(IpAddr),
    /// A free address of this target, chosen in the second pass.
    Open(&'t IpNet),
}

/// The lowest address of `net` the allocator may hand out that is not taken, searching upwards
/// from `cursor` (which only moves up, as `taken` only grows).
fn lowest_free(net: &IpNet, taken: &HashSet<IpAddr>, cursor: &mut u128) -> Option<IpAddr> {
    let family = Family::of_net(net);
    let last = bits(net.broadcast());
    while *cursor <= last {
        let ip = from_bits(*cursor, family);
        if contains_ip(net, ip) && !taken.contains(&ip) {
            return Some(ip);
        }
        *cursor = cursor.checked_add(1)?;
    }
    None
}

fn free_in(net: &IpNet, taken: &HashSet<IpAddr>) -> u128 {
    let used = taken.iter().filter(|ip| contains_ip(net, **ip)).count() as u128;
    capacity(net).saturating_sub(used)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::index::tests::{alloc, range};
    use crate::audit::journal::RecordedRange;
    use proptest::prelude::*;

    fn svc(ns: &str, name: &str, ips: &[&str], pinned: bool) -> ServiceFacts {
        ServiceFacts {
            namespace: ns.into(),
            name: name.into(),
            service_type: ServiceType::ClusterIP,
            headless: false,
            cluster_ips: ips.iter().map(|i| i.parse().unwrap()).collect(),
            pinned_by: pinned.then(|| "kubectl-create".into()),
            owners: vec![],
            node_ports: vec![],
            terminating: false,
            missing: false,
        }
    }

    fn req(from: &[&str], to: &[&str]) -> Request {
        Request {
            from: from.iter().map(|s| s.to_string()).collect(),
            to: to.iter().map(|s| s.parse().unwrap()).collect(),
            name: "new".into(),
            allow_overlap: false,
            only: vec![],
        }
    }

    /// A plan with no IPAddress objects, Nodes or journal.
    fn simple(
        r: &Request,
        ranges: &[ServiceCidr],
        services: &[ServiceFacts],
    ) -> Result<Plan, Refusal> {
        plan(r, ranges, &[], services, &[], &[])
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Two old ranges give two Services the same offset: the pinned one keeps it, whatever the
    /// order of their names.
    #[test]
    fn a_pinned_service_wins_an_offset_both_want() {
        let ranges = [range("a", &["10.96.0.0/16"]), range("b", &["10.97.0.0/16"])];
        let services = [
            svc("a", "first", &["10.96.0.10"], false),
            svc("z", "dns", &["10.97.0.10"], true),
        ];
        let p = simple(&req(&["a", "b"], &["10.200.0.0/16"]), &ranges, &services).unwrap();
        assert_eq!(
            destinations(&p),
            [
                ("a/first".into(), vec![ip("10.200.0.1")], false),
                ("z/dns".into(), vec![ip("10.200.0.10")], true),
            ]
        );
    }

    /// Each move: the Service, its new IPs, and whether it kept its offset.
    fn destinations(p: &Plan) -> Vec<(String, Vec<IpAddr>, bool)> {
        p.moves
            .iter()
            .map(|m| (m.key(), m.to.clone(), m.offset_kept))
            .collect()
    }

    #[test]
    fn pinned_keep_their_offset_and_dynamic_ones_take_it_when_free() {
        let ranges = [range("old", &["10.96.0.0/16"])];
        let services = [
            svc("kube-system", "kube-dns", &["10.96.0.10"], true),
            svc("a", "web", &["10.96.200.7"], false),
            // Its offset is taken in the new range by an IPAddress: the lowest free one instead.
            svc("a", "api", &["10.96.0.1"], false),
        ];
        let ips = [alloc("10.200.0.1")];
        let p = plan(
            &req(&["old"], &["10.200.0.0/16"]),
            &ranges,
            &ips,
            &services,
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(
            destinations(&p),
            [
                ("a/api".into(), vec![ip("10.200.0.2")], false),
                ("a/web".into(), vec![ip("10.200.200.7")], true),
                ("kube-system/kube-dns".into(), vec![ip("10.200.0.10")], true),
            ]
        );
    }

    #[test]
    fn dual_stack_moves_each_family_in_an_old_range_and_keeps_the_other() {
        let ranges = [
            range("old", &["10.96.0.0/16"]),
            range("v6", &["fd00:10:96::/112"]),
        ];
        let services = [svc("a", "dual", &["10.96.0.20", "fd00:10:96::20"], false)];
        let p = simple(&req(&["old"], &["10.200.0.0/16"]), &ranges, &services).unwrap();
        assert_eq!(p.moves[0].to, [ip("10.200.0.20"), ip("fd00:10:96::20")]);

        let both = [range("old", &["10.96.0.0/16", "fd00:10:96::/112"])];
        let err = simple(&req(&["old"], &["10.200.0.0/16"]), &both, &services);
        assert_eq!(
            err,
            Err(Refusal::NoTargetFamily {
                family: Family::IPv6,
                service: "a/dual".into(),
                ip: ip("fd00:10:96::20")
            })
        );
        let p = simple(
            &req(&["old"], &["10.200.0.0/16", "fd00:200::/112"]),
            &both,
            &services,
        )
        .unwrap();
        assert_eq!(p.moves[0].to, [ip("10.200.0.20"), ip("fd00:200::20")]);
    }

    #[test]
    fn edge_addresses_are_not_in_a_range_so_nothing_lands_on_them() {
        // A /24 target: offset 255 of the old /16 would be the broadcast address, offset 0 the
        // network address; neither is ever allocatable (PrefixContainsIP).
        let ranges = [range("old", &["10.96.0.0/16"])];
        let services = [svc("a", "x", &["10.96.0.255"], true)];
        let p = simple(&req(&["old"], &["10.200.0.0/24"]), &ranges, &services).unwrap();
        assert_eq!(p.moves[0].to, [ip("10.200.0.1")]);
        assert!(!p.moves[0].offset_kept);
        // An IP on the old range's network address is not in that range: not moved.
        let services = [svc("a", "edge", &["10.96.0.0"], false)];
        assert!(matches!(
            simple(&req(&["old"], &["10.200.0.0/24"]), &ranges, &services),
            Err(Refusal::NothingToMove { .. })
        ));
    }

    #[test]
    fn refusals() {
        let ranges = [
            range("old", &["10.96.0.0/16"]),
            range("other", &["10.150.0.0/24"]),
            range("new", &["10.201.0.0/16"]),
        ];
        let services = [svc("a", "x", &["10.96.0.5"], false)];
        let p = |r: &Request| plan(r, &ranges, &[], &services, &[], &[]);
        assert_eq!(
            p(&req(&["gone"], &["10.200.0.0/16"])),
            Err(Refusal::UnknownSource("gone".into()))
        );
        assert_eq!(
            p(&req(&["old"], &["10.200.0.0/16", "10.201.0.0/16"])),
            Err(Refusal::TwoOfFamily(Family::IPv4))
        );
        for unusable in ["10.200.0.0/32", "10.200.0.0/31", "fd00::/48", "fd00::1/128"] {
            assert_eq!(
                p(&req(&["old"], &[unusable])),
                Err(Refusal::Unusable(unusable.parse().unwrap())),
                "{unusable}"
            );
        }
        assert!(matches!(
            p(&req(&["old"], &["10.200.0.0/16"])),
            Err(Refusal::NameTaken { .. })
        ));
        let mut r = req(&["old"], &["10.96.128.0/17"]);
        r.name = "fresh".into();
        assert!(matches!(p(&r), Err(Refusal::OverlapsSource { .. })));
        r.to = vec!["10.150.0.0/16".parse().unwrap()];
        assert!(matches!(p(&r), Err(Refusal::OverlapsLive { .. })));
        r.allow_overlap = true;
        assert!(matches!(
            p(&r).unwrap().warnings[0],
            Warning::Overlap { .. }
        ));
        r.to = vec!["10.202.0.0/30".parse().unwrap()];
        let two = [
            svc("a", "x", &["10.96.0.5"], false),
            svc("a", "y", &["10.96.0.6"], false),
            svc("a", "z", &["10.96.0.7"], false),
        ];
        // Counted before anything moves in: a /30 has two addresses.
        assert!(matches!(
            plan(&r, &ranges, &[], &two, &[], &[]),
            Err(Refusal::TargetFull {
                free: 2,
                needed: 3,
                ..
            })
        ));
        r.to = vec!["10.202.0.0/16".parse().unwrap()];
        r.only = vec!["a/nope".into()];
        assert_eq!(p(&r), Err(Refusal::UnknownService("a/nope".into())));
        r.from = vec!["other".into()];
        r.only.clear();
        assert_eq!(
            p(&r),
            Err(Refusal::NothingToMove {
                sources: vec!["other".into()]
            })
        );
    }

    #[test]
    fn a_rerun_finds_what_is_left_and_the_backed_up_services() {
        // The first run made the range and moved x; y was deleted and not recreated (its backup
        // says so); the old range has since gone and is known from the journal.
        let mut record = Record::new("c", &["10.200.0.0/16".parse().unwrap()]);
        record.remember([RecordedRange {
            name: "old".into(),
            cidrs: vec!["10.96.0.0/16".parse().unwrap()],
        }]);
        let journal = [("new".to_owned(), record)];
        let ranges = [range("new", &["10.200.0.0/16"])];
        let mut y = svc("a", "y", &["10.96.0.6"], false);
        y.missing = true;
        let services = [svc("a", "x", &["10.200.0.5"], false), y];
        let p = plan(
            &req(&["old"], &["10.200.0.0/16"]),
            &ranges,
            &[alloc("10.200.0.5")],
            &services,
            &[],
            &journal,
        )
        .unwrap();
        assert!(p.range_exists);
        assert!(p.sources[0].gone);
        assert!(p.to_retire().is_empty());
        assert_eq!(p.moves.len(), 1);
        assert!(p.moves[0].missing);
        assert_eq!(p.moves[0].to, [ip("10.200.0.6")]);
    }

    /// A full run retires every old range it empties, except the default one (the apiserver's
    /// flags make it) and those already gone.
    #[test]
    fn a_full_run_retires_the_old_ranges_but_the_default() {
        let ranges = [
            range("kubernetes", &["10.96.0.0/16"]),
            range("blue", &["10.97.0.0/16"]),
            range("green", &["10.98.0.0/16"]),
        ];
        let services = [
            svc("a", "x", &["10.96.0.5"], false),
            svc("a", "y", &["10.97.0.6"], false),
        ];
        let p = simple(
            &req(&["kubernetes", "blue", "green"], &["10.200.0.0/16"]),
            &ranges,
            &services,
        )
        .unwrap();
        assert!(!p.partial && p.moves_default());
        let retired: Vec<&str> = p.to_retire().iter().map(|s| s.name.as_str()).collect();
        assert_eq!(retired, ["blue", "green"]);
        let q = simple(&req(&["blue"], &["10.200.0.0/16"]), &ranges, &services).unwrap();
        assert!(!q.moves_default());
    }

    #[test]
    fn the_kubernetes_service_and_unselected_ones_are_skipped() {
        let ranges = [range("kubernetes", &["10.96.0.0/16"])];
        let mut headless = svc("a", "h", &[], false);
        headless.headless = true;
        let services = [
            svc("default", "kubernetes", &["10.96.0.1"], false),
            svc("a", "x", &["10.96.0.5"], false),
            svc("a", "y", &["10.96.0.6"], false),
            svc("a", "ext", &[], false),
            headless,
        ];
        // Only the kubernetes Service in the default range: still a plan (its manual steps).
        let p = simple(
            &req(&["kubernetes"], &["10.200.0.0/16"]),
            &ranges,
            &services[..1],
        )
        .unwrap();
        assert!(p.moves.is_empty() && p.moves_default());
        let mut r = req(&["kubernetes"], &["10.200.0.0/16"]);
        r.only = vec!["a/y".into()];
        let p = plan(&r, &ranges, &[], &services, &[], &[]).unwrap();
        assert!(p.moves_default());
        assert!(p.to_retire().is_empty());
        let only = Request {
            only: vec!["a/x".into()],
            ..req(&["old"], &["10.200.0.0/16"])
        };
        let old = [range("old", &["10.96.0.0/16"])];
        let q = plan(&only, &old, &[], &services, &[], &[]).unwrap();
        assert!(
            q.partial && q.to_retire().is_empty(),
            "--only leaves the old range"
        );
        assert_eq!(p.moves.iter().map(Move::key).collect::<Vec<_>>(), ["a/y"]);
        let reasons: Vec<(String, SkipReason)> = p
            .skipped
            .iter()
            .map(|s| (format!("{}/{}", s.namespace, s.name), s.reason))
            .collect();
        assert_eq!(
            reasons,
            [
                ("a/ext".into(), SkipReason::ExternalName),
                ("a/h".into(), SkipReason::Headless),
                ("a/x".into(), SkipReason::NotSelected),
                ("default/kubernetes".into(), SkipReason::KubernetesService),
            ]
        );
    }

    #[test]
    fn a_service_its_owner_is_deleting_is_skipped_unless_the_journal_holds_it() {
        let ranges = [range("old", &["10.96.0.0/16"])];
        let mut going = svc("a", "going", &["10.96.0.7"], false);
        going.terminating = true;
        let mut ours = svc("a", "ours", &["10.96.0.8"], false);
        ours.terminating = true;
        ours.missing = true;
        let services = [going, ours, svc("a", "x", &["10.96.0.5"], false)];
        let p = simple(&req(&["old"], &["10.200.0.0/16"]), &ranges, &services).unwrap();
        assert_eq!(
            p.moves.iter().map(Move::key).collect::<Vec<_>>(),
            ["a/ours", "a/x"]
        );
        assert_eq!(p.skipped[0].reason, SkipReason::Terminating);
    }

    #[test]
    fn another_migrations_services_in_flight_refuse_the_run() {
        let ranges = [
            range("old", &["10.96.0.0/16"]),
            range("elsewhere", &["10.201.0.0/16"]),
        ];
        let services = [svc("a", "x", &["10.96.0.5"], false)];
        let mut record = Record::new("c", &["10.201.0.0/16".parse().unwrap()]);
        record.moves.insert(
            "b/y".into(),
            crate::audit::journal::Entry {
                namespace: "b".into(),
                name: "y".into(),
                uid: "u".into(),
                run: "r".into(),
                at: "2026-12-05T20:00:00Z".into(),
                from: vec![ip("10.96.0.9")],
                to: vec![ip("10.201.0.9")],
                manifest: serde_json::json!({}),
            },
        );
        let journals = [("elsewhere".to_owned(), record)];
        let r = req(&["old"], &["10.200.0.0/16"]);
        let refused = plan(&r, &ranges, &[], &services, &[], &journals);
        assert!(
            matches!(&refused, Err(Refusal::Unfinished(u)) if u.range == "elsewhere" && u.services == ["b/y"]),
            "{refused:?}"
        );
        let mut idle = journals.clone();
        idle[0].1.moves.clear();
        assert!(plan(&r, &ranges, &[], &services, &[], &idle).is_ok());
    }

    #[test]
    fn the_exit_counts_only_findings_about_the_migration() {
        use crate::audit::findings::{Finding, FindingKind, Remedy};
        let ranges = [range("old", &["10.96.0.0/16"])];
        let services = [svc("a", "x", &["10.96.0.5"], false)];
        let p = simple(&req(&["old"], &["10.200.0.0/16"]), &ranges, &services).unwrap();
        let finding = |ip: &str, service: Option<&str>| Finding {
            kind: FindingKind::DanglingParent,
            ip: ip.parse().unwrap(),
            service: service.map(Into::into),
            holder: None,
            parent: service.map(Into::into),
            ranges: vec![],
            age: None,
            self_healing: false,
            remedy: Remedy::Delete,
        };
        let mut report = Report::new(&p, std::path::Path::new("b"));
        report.set_findings(vec![finding("10.150.0.9", Some("z/other"))]);
        assert_eq!((report.findings.len(), report.unrelated), (0, 1));
        assert_eq!(report.exit(), crate::exit::Exit::Success);
        for (ip, svc) in [
            ("10.96.0.200", None),
            ("10.200.0.9", None),
            ("10.150.0.9", Some("a/x")),
        ] {
            report.set_findings(vec![finding(ip, svc)]);
            assert_eq!(report.findings.len(), 1, "{ip}");
            assert_eq!(report.exit(), crate::exit::Exit::Findings, "{ip}");
        }
    }

    #[test]
    fn moving_the_default_range_keeps_the_first_address_for_the_kubernetes_service() {
        let ranges = [range("kubernetes", &["10.96.0.0/16"])];
        // Its offset (0.255 of a /24 target) is the broadcast address: it falls back.
        let services = [
            svc("default", "kubernetes", &["10.96.0.1"], false),
            svc("a", "x", &["10.96.0.255"], false),
        ];
        let p = simple(
            &req(&["kubernetes"], &["10.200.0.0/24"]),
            &ranges,
            &services,
        )
        .unwrap();
        assert_eq!(p.moves[0].to, [ip("10.200.0.2")]);
    }

    #[test]
    fn nodes_in_the_new_range_are_warned_about() {
        let ranges = [range("old", &["10.96.0.0/16"])];
        let services = [svc("a", "x", &["10.96.0.5"], false)];
        let nodes = [NodeNets {
            name: "n1".into(),
            internal_ips: vec![ip("10.200.3.4"), ip("192.168.0.4")],
            pod_cidrs: vec![
                "10.200.64.0/24".parse().unwrap(),
                "10.244.0.0/24".parse().unwrap(),
            ],
        }];
        let p = plan(
            &req(&["old"], &["10.200.0.0/16"]),
            &ranges,
            &[],
            &services,
            &nodes,
            &[],
        )
        .unwrap();
        assert_eq!(p.warnings.len(), 2);
    }

    #[test]
    fn an_ipaddress_no_service_holds_in_an_old_range_is_warned_about() {
        let ranges = [range("old", &["10.96.0.0/16"])];
        let services = [svc("a", "x", &["10.96.0.5"], false)];
        let ips = [alloc("10.96.0.5"), alloc("10.96.0.66"), alloc("10.150.0.1")];
        let p = plan(
            &req(&["old"], &["10.200.0.0/16"]),
            &ranges,
            &ips,
            &services,
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(
            p.warnings,
            [Warning::Unheld {
                ip: ip("10.96.0.66"),
                range: "old".into()
            }]
        );
    }

    proptest! {
        // Against brute force over every address of a small IPv4 space: each new IP is
        // allocatable in the new range by PrefixContainsIP (never its network or broadcast
        // address), no two Services get the same one, none is an existing IPAddress or a ClusterIP
        // some other Service holds without one, `offset_kept` is true exactly when the offset was
        // kept, and a pinned Service keeps its offset whenever that address was free.
        #[test]
        fn new_ips_are_allocatable_distinct_and_free(
            old_len in 24u8..=29,
            new_len in 25u8..=30,
            used in proptest::collection::btree_set(0u32..256, 0..40),
            existing in proptest::collection::btree_set(0u32..64, 0..20),
            squatters in proptest::collection::btree_set(0u32..64, 0..10),
            pinned in proptest::collection::vec(any::<bool>(), 40),
        ) {
            let old: IpNet = format!("10.96.0.0/{old_len}").parse().unwrap();
            let new: IpNet = format!("10.200.0.0/{new_len}").parse().unwrap();
            let ranges = [range("old", &[&old.to_string()])];
            let at = |base: [u8; 3], off: u32| IpAddr::from([base[0], base[1], base[2], off as u8]);
            let off_of = |ip: IpAddr| match ip {
                IpAddr::V4(v) => u32::from(v.octets()[3]),
                IpAddr::V6(_) => unreachable!(),
            };
            let mut services: Vec<ServiceFacts> = used
                .iter()
                .enumerate()
                .map(|(i, off)| svc("a", &format!("s{i}"), &[&at([10, 96, 0], *off).to_string()], pinned[i]))
                .collect();
            // Services already in the new range's space whose IPAddress objects do not exist.
            services.extend(squatters.iter().map(|off| {
                svc("b", &format!("q{off}"), &[&at([10, 200, 0], *off).to_string()], false)
            }));
            let ips: Vec<IpAllocation> = existing
                .iter()
                .map(|off| alloc(&at([10, 200, 0], *off).to_string()))
                .collect();
            // Brute force, from the definition: the old range holds an IP when it is inside and
            // neither the first nor the last address of it.
            let inside = |len: u8, off: u32| {
                let size = 1u32 << (32 - len);
                off < size && off != 0 && off != size - 1
            };
            let taken = |ip: IpAddr| {
                ips.iter().any(|a| a.ip == ip) || squatters.iter().any(|o| at([10, 200, 0], *o) == ip)
            };
            let movable = used.iter().filter(|o| inside(old_len, **o)).count();
            let allocatable: Vec<IpAddr> = (0u32..256)
                .filter(|o| inside(new_len, *o))
                .map(|o| at([10, 200, 0], o))
                .collect();
            let free = allocatable.iter().filter(|ip| !taken(**ip)).count();
            let result = plan(&req(&["old"], &[&new.to_string()]), &ranges, &ips, &services, &[], &[]);
            if movable == 0 {
                let nothing = matches!(result, Err(Refusal::NothingToMove { .. }));
                prop_assert!(nothing);
                return Ok(());
            }
            if movable > free {
                let full = matches!(result, Err(Refusal::TargetFull { .. }));
                prop_assert!(full, "{:?}", result);
                return Ok(());
            }
            let p = result.unwrap();
            prop_assert_eq!(p.moves.len(), movable);
            let mut seen = HashSet::new();
            for m in &p.moves {
                let n = m.to[0];
                prop_assert!(allocatable.contains(&n), "{} not allocatable in {}", n, new);
                prop_assert!(seen.insert(n), "{} twice", n);
                prop_assert!(!taken(n), "{} is taken", n);
                let same_offset = off_of(m.from[0]) == off_of(n);
                prop_assert_eq!(same_offset, m.offset_kept);
                let offset_free = allocatable.contains(&at([10, 200, 0], off_of(m.from[0])))
                    && !taken(at([10, 200, 0], off_of(m.from[0])));
                if m.pinned && offset_free {
                    prop_assert!(m.offset_kept, "{} lost its offset", m.key());
                }
            }
        }
    }
}
