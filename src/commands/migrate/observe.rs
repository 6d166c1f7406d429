//! What a migration is decided from: the ranges, IPs, Services, Nodes and journals, read once,
//! with the journal entries of this migration resolved against the Services as they are now.

use std::time::{Duration, SystemTime};

use anyhow::Result;

use crate::audit::journal::{self, Entry, IN_FLIGHT, Now, Record, Verdict};
use crate::audit::migrate::{Plan, Refusal, Request, plan};
use crate::cluster::journal::Journal;
use crate::cluster::{self, Cluster, ServiceObject};
use crate::model::{IpAllocation, NodeNets, ServiceCidr, ServiceFacts};
use crate::render;
use crate::render::migrate as words;

/// A Service this tool deleted and has not recreated: known from the journal only.
pub(super) struct Pending {
    pub(super) entry: Entry,
    /// Read from the journal's manifest, with the ClusterIPs it had.
    pub(super) facts: ServiceFacts,
    /// Still there, held by finalizers: wait for it to go first.
    pub(super) await_gone: bool,
}

/// Everything a plan is made from.
pub(super) struct Seen {
    pub(super) ranges: Vec<ServiceCidr>,
    pub(super) ips: Vec<IpAllocation>,
    pub(super) services: Vec<ServiceObject>,
    pub(super) nodes: Vec<NodeNets>,
    pub(super) journals: Vec<Journal>,
    /// This migration's entries, resolved: to recreate, or to forget (another run's entries in
    /// flight are left alone).
    pub(super) pending: Vec<Pending>,
    pub(super) settled: Vec<String>,
}

impl Seen {
    pub(super) fn plan(&self, req: &Request) -> Result<Plan, Refusal> {
        // A Service held by finalizers after this tool's delete is planned from the journal.
        let claimed = |s: &&ServiceObject| self.pending.iter().any(|p| p.entry.uid == s.uid);
        let mut facts: Vec<ServiceFacts> = self
            .services
            .iter()
            .filter(|s| !claimed(s))
            .map(|s| s.facts.clone())
            .collect();
        facts.extend(self.pending.iter().map(|p| p.facts.clone()));
        let journals: Vec<(String, Record)> = self
            .journals
            .iter()
            .map(|j| (j.range.clone(), j.record.clone()))
            .collect();
        plan(req, &self.ranges, &self.ips, &facts, &self.nodes, &journals)
    }

    pub(super) fn own_journal(&self, name: &str) -> Option<&Journal> {
        self.journals.iter().find(|j| j.range == name)
    }
}

/// Reads everything a plan needs, and resolves this migration's journal entries against the
/// Services now. `run`: this process's id (its own entries are never another run's in flight).
pub(super) async fn observe(
    cluster: &Cluster,
    req: &Request,
    run: &str,
    warn: bool,
) -> Result<Seen> {
    let (ranges, ips, services, nodes, journals) = tokio::join!(
        cluster.list_service_cidrs(),
        cluster.list_ip_addresses(),
        cluster.list_service_objects(),
        cluster.list_nodes(),
        cluster.journals(),
    );
    let (services, journals) = (services?, journals?);
    // Nodes only feed warnings: a user who may not list them still gets a plan.
    let nodes = nodes.unwrap_or_else(|e| {
        if warn {
            render::to_stderr(&words::nodes_unread(&e.to_string()));
        }
        Vec::new()
    });
    let mut seen = Seen {
        ranges: ranges?.items,
        ips: ips?.items,
        services,
        nodes,
        journals,
        pending: Vec::new(),
        settled: Vec::new(),
    };
    let entries: Vec<Entry> = seen
        .own_journal(&req.name)
        .map(|j| j.record.moves.values().cloned().collect())
        .unwrap_or_default();
    for entry in entries {
        let now = match seen.services.iter().find(|s| s.facts.key() == entry.key()) {
            None => Now::Absent,
            Some(s) if s.uid == entry.uid => Now::Same {
                terminating: s.facts.terminating,
            },
            Some(_) => Now::Other,
        };
        let fresh = entry.run != run && written_within(&entry.at, IN_FLIGHT);
        let await_gone = match journal::resolve(now, fresh) {
            Verdict::Busy => continue,
            Verdict::NotDeleted | Verdict::Replaced => {
                seen.settled.push(entry.key());
                continue;
            }
            Verdict::AwaitGone => true,
            Verdict::Recreate => false,
        };
        // A Service to recreate that cannot be read from the journal stops the run: left out of
        // the plan, it would be lost without a word.
        let mut facts = cluster::wire::service_facts(&entry.manifest).map_err(|e| {
            anyhow::anyhow!(
                "{}",
                words::unreadable_entry(&req.name, &entry.key(), &e.to_string())
            )
        })?;
        facts.cluster_ips = entry.from.clone();
        facts.missing = true;
        seen.pending.push(Pending {
            entry,
            facts,
            await_gone,
        });
    }
    Ok(seen)
}

/// Whether an RFC 3339 time is less than `within` ago (or in the future) by this clock.
fn written_within(at: &str, within: Duration) -> bool {
    humantime::parse_rfc3339(at).is_ok_and(|t| {
        SystemTime::now()
            .duration_since(t)
            .is_ok_and(|age| age < within)
            || t > SystemTime::now()
    })
}
