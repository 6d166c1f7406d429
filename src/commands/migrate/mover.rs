//! Carrying out a plan, one Service at a time: each replacement put to admission before the
//! first delete, each original kept in the journal before its delete, recreated or restored.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use anyhow::{Result, bail};
use tokio::sync::watch;

use crate::audit::findings::{AuditOptions, audit};
use crate::audit::journal::Entry;
use crate::audit::migrate::{Move, Plan, Request, SkipReason};
use crate::audit::migrate::{Moved, Report, RunOutcome};
use crate::cluster::{self, ApiError, Cluster, ServiceObject};
use crate::commands::retirement;
use crate::render;
use crate::render::migrate as words;
use crate::settings::{DeleteTask, MigrateRun};

use super::backup::{self, Backups};
use super::ledger::Ledger;
use super::observe::{Pending, Seen, observe};

pub(super) struct Mover<'a> {
    pub(super) cluster: &'a Cluster,
    pub(super) backups: Backups,
    pub(super) ledger: Ledger<'a>,
    pub(super) seen: Seen,
    pub(super) run_id: String,
    pub(super) interrupted: watch::Receiver<bool>,
    /// Bounds each wait: a Service held by finalizers, the old ranges' retirement.
    pub(super) timeout: Duration,
}

/// The Service in hand: the original as read (or as the journal kept it), and where it goes.
struct InHand {
    original: serde_json::Value,
    replacement: serde_json::Value,
    manager: String,
}

impl InHand {
    fn new(original: serde_json::Value, m: &Move) -> InHand {
        InHand {
            replacement: backup::with_cluster_ips(&original, &m.to),
            original,
            manager: m
                .pinned_by
                .clone()
                .unwrap_or_else(|| cluster::FIELD_MANAGER.into()),
        }
    }
}

impl Mover<'_> {
    fn interrupted(&self) -> bool {
        *self.interrupted.borrow()
    }

    pub(super) async fn carry_out(
        mut self,
        req: &Request,
        mut plan: Plan,
        countdown: bool,
        run: &MigrateRun,
    ) -> Result<Report> {
        let mut report = Report::new(&plan, self.backups.dir());
        if !plan.range_exists {
            self.until_allocatable(&plan).await?;
        }
        // Every replacement is put to admission before the first delete: a refusal stops the
        // run with nothing deleted.
        for m in &plan.moves {
            let original = match self.original_of(m) {
                Some(o) => o,
                None => continue,
            };
            if let Err(e) = self.admitted(m, &InHand::new(original, m)).await {
                let mut moved = Moved::new(m);
                moved.error = Some(e.to_string());
                render::to_stderr(&words::progress(&moved));
                report.moved.push(moved);
                report.outcome = RunOutcome::Failed;
                return Ok(report);
            }
        }
        // Services that got an IP in an old range while the others moved are moved in a
        // second round.
        for round in 0..2 {
            if round > 0 {
                self.seen = observe(self.cluster, req, &self.run_id, false).await?;
                plan = match self.seen.plan(req) {
                    Ok(p) => p,
                    Err(r) => bail!("{}", words::refusal(&r)),
                };
            }
            for m in &plan.moves {
                if self.interrupted() {
                    report.outcome = RunOutcome::Interrupted;
                    return Ok(report);
                }
                let moved = self.move_one(m).await;
                render::to_stderr(&words::progress(&moved));
                let failed = moved.error.is_some();
                report.moved.push(moved);
                if failed {
                    report.outcome = if self.interrupted() {
                        RunOutcome::Interrupted
                    } else {
                        RunOutcome::Failed
                    };
                    return Ok(report);
                }
            }
        }
        let names: Vec<String> = plan.to_retire().iter().map(|s| s.name.clone()).collect();
        if !names.is_empty() {
            let task = DeleteTask::retiring(names, run.timeout);
            report.retired = retirement::retire(self.cluster, countdown, &task).await;
        }
        let (snapshot, _) = self.cluster.snapshot(true).await?;
        report.set_findings(audit(
            &snapshot,
            &AuditOptions {
                now: SystemTime::now(),
                include_recent: false,
            },
        ));
        // What is left is what a plan made now would still move.
        self.seen = observe(self.cluster, req, &self.run_id, false).await?;
        report.left = match self.seen.plan(req) {
            Ok(p) => p.moves.iter().map(Move::key).collect(),
            Err(r) => bail!("{}", words::refusal(&r)),
        };
        if report.left.is_empty() {
            self.ledger.close().await?;
        }
        Ok(report)
    }

    /// The original of a planned move: the listed Service, or the journal's copy.
    fn original_of(&self, m: &Move) -> Option<serde_json::Value> {
        if m.missing {
            self.pending(m).map(|p| p.entry.manifest.clone())
        } else {
            self.seen
                .services
                .iter()
                .find(|s| s.facts.key() == m.key())
                .map(|s| backup::manifest(&s.object))
        }
    }

    fn pending(&self, m: &Move) -> Option<&Pending> {
        self.seen.pending.iter().find(|p| p.entry.key() == m.key())
    }

    /// Moves one Service, or finishes one the journal holds.
    async fn move_one(&mut self, m: &Move) -> Moved {
        let mut moved = Moved::new(m);
        let done = if m.missing {
            self.finish_pending(m, &mut moved).await
        } else {
            self.try_move(m, &mut moved).await
        };
        if let Err(e) = done {
            moved.error = Some(e.to_string());
        }
        moved
    }

    async fn finish_pending(&mut self, m: &Move, moved: &mut Moved) -> Result<()> {
        let Some(p) = self.pending(m) else {
            bail!("{}", words::vanished(m));
        };
        let (entry, await_gone) = (p.entry.clone(), p.await_gone);
        let hand = InHand::new(entry.manifest.clone(), m);
        moved.backup =
            Some(
                self.backups
                    .save(&m.namespace, &m.name, &entry.uid, &hand.original)?,
            );
        moved.in_journal = true;
        if await_gone {
            self.await_gone(m, &entry.uid).await?;
        }
        self.recreate(m, &hand, moved).await
    }

    /// Save it (journal, then the local copy), delete exactly the object read, create it with its
    /// new IPs; if that fails, put the original back.
    async fn try_move(&mut self, m: &Move, moved: &mut Moved) -> Result<()> {
        let (ns, name) = (m.namespace.as_str(), m.name.as_str());
        let Some(current) = self.cluster.get_service(ns, name).await? else {
            moved.skipped = Some(SkipReason::Vanished);
            return Ok(());
        };
        if current.facts.terminating {
            moved.skipped = Some(SkipReason::Terminating);
            return Ok(());
        }
        if current.facts.cluster_ips != m.from {
            bail!("{}", words::changed(m, &current.facts.cluster_ips));
        }
        let hand = InHand::new(backup::manifest(&current.object), m);
        self.admitted(m, &hand).await?;
        moved.backup = Some(self.backups.save(ns, name, &current.uid, &hand.original)?);
        let entry = Entry {
            namespace: ns.to_owned(),
            name: name.to_owned(),
            uid: current.uid.clone(),
            run: self.run_id.clone(),
            at: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            from: m.from.clone(),
            to: m.to.clone(),
            manifest: hand.original.clone(),
        };
        if !self.ledger.claim(entry).await? {
            moved.skipped = Some(SkipReason::InAnotherRun);
            return Ok(());
        }
        if let Err(e) = self.cluster.delete_service(&current, false).await {
            return self.delete_failed(m, &current, e, moved).await;
        }
        moved.in_journal = true;
        self.await_gone(m, &current.uid).await?;
        self.recreate(m, &hand, moved).await
    }

    /// A delete the server refused (a 4xx answer: a precondition, a webhook, RBAC) did not take
    /// effect: the entry goes at once, and someone else's delete meanwhile is theirs. Without
    /// such an answer the delete may have happened: the entry stays for the next run.
    async fn delete_failed(
        &mut self,
        m: &Move,
        read: &ServiceObject,
        e: cluster::Error,
        moved: &mut Moved,
    ) -> Result<()> {
        let refused = e
            .api_error()
            .and_then(ApiError::code)
            .is_some_and(|c| (400..500).contains(&c));
        if !refused {
            moved.in_journal = true;
            bail!(
                "{}",
                words::delete_unclear(m, &e.to_string(), &self.ledger.range)
            );
        }
        self.ledger.forget(&m.key()).await?;
        match self.cluster.get_service(&m.namespace, &m.name).await? {
            Some(s) if s.uid == read.uid && s.facts.terminating => {
                moved.skipped = Some(SkipReason::Terminating);
                Ok(())
            }
            Some(s) if s.uid == read.uid => {
                if e.api_error().is_some_and(ApiError::is_conflict) {
                    bail!("{}", words::changed(m, &s.facts.cluster_ips));
                }
                bail!("{}", words::delete_refused(m, &e.to_string()))
            }
            _ => {
                moved.skipped = Some(SkipReason::Vanished);
                Ok(())
            }
        }
    }

    /// Waits until the object with this uid is gone: bounded by --timeout, and by Ctrl-C. Either
    /// leaves the journal's entry for the next run.
    async fn await_gone(&self, m: &Move, uid: &str) -> Result<()> {
        let mut interrupted = self.interrupted.clone();
        tokio::select! {
            gone = tokio::time::timeout(
                self.timeout,
                self.cluster.service_gone(&m.namespace, &m.name, uid),
            ) => match gone {
                Ok(r) => Ok(r?),
                Err(_) => bail!("{}", words::still_terminating(m, self.timeout, &self.ledger.range)),
            },
            _ = interrupted.wait_for(|set| *set) => {
                bail!("{}", words::held_at_interrupt(m, &self.ledger.range))
            }
        }
    }

    /// Creates the replacement; if that fails and no Service of that name exists, restores the
    /// original. The entry goes once a Service of that name exists.
    async fn recreate(&mut self, m: &Move, hand: &InHand, moved: &mut Moved) -> Result<()> {
        let key = m.key();
        match self.create(&hand.replacement, &hand.manager).await {
            Ok(_) => {
                self.ledger.forget(&key).await?;
                moved.in_journal = false;
                Ok(())
            }
            // Whatever the error, the Service may exist now: another run created it, or the
            // create went through and its answer was lost.
            Err(create) => match self.cluster.get_service(&m.namespace, &m.name).await? {
                Some(s) => {
                    self.ledger.forget(&key).await?;
                    moved.in_journal = false;
                    if s.facts.cluster_ips == m.to {
                        Ok(())
                    } else {
                        bail!("{}", words::changed(m, &s.facts.cluster_ips))
                    }
                }
                None => {
                    let (ips, ports) = self.restore(hand, m, moved).await?;
                    self.ledger.forget(&key).await?;
                    moved.in_journal = false;
                    moved.restored = Some(ips);
                    moved.new_node_ports = ports;
                    bail!("{}", words::recreate_failed(m, &create.to_string()))
                }
            },
        }
    }

    /// Proves the replacement would be admitted (mutating and validating admission, quota,
    /// validation) with a server-side dry-run create under its own name: while the original
    /// exists, the answer "already exists" comes after every admission check. Node ports and
    /// ClusterIPs are left to the allocator: the original still holds its ports (and a kept IP),
    /// and a dry run is refused any IP outside the default ServiceCIDR (seen on 1.37.2). The
    /// allocation comes before admission, so a dry run that cannot allocate proves nothing
    /// either way: the create and its restore decide then.
    async fn admitted(&self, m: &Move, hand: &InHand) -> Result<()> {
        let probe = backup::without_node_ports(&backup::with_cluster_ips(&hand.replacement, &[]));
        match self.cluster.create_service_dry_run(&probe).await {
            Ok(()) => Ok(()),
            Err(e) if e.api_error().and_then(ApiError::reason) == Some("AlreadyExists") => Ok(()),
            Err(e) if e.to_string().contains("failed to allocate") => Ok(()),
            Err(e) => bail!("{}", words::not_admitted(m, &e.to_string())),
        }
    }

    /// An apiserver learns of a new range through its informer, a few milliseconds after the
    /// create: until then it refuses IPs in it exactly as IPs in no range. So a server-side dry
    /// run of a Service with the first planned IP of each family is sent until it is accepted
    /// (or refused only because the IP is taken), which leaves nothing behind. A real create
    /// refused on the second family would leave the first family's IPAddress for a minute.
    async fn until_allocatable(&self, plan: &Plan) -> Result<()> {
        let mut firsts: Vec<IpAddr> = Vec::new();
        for ip in plan.moves.iter().flat_map(|m| &m.to) {
            if !firsts.iter().any(|f| f.is_ipv4() == ip.is_ipv4())
                && plan.cidrs.iter().any(|c| c.contains(ip))
            {
                firsts.push(*ip);
            }
        }
        for ip in firsts {
            let probe = serde_json::json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "servicecidr-migrate-probe", "namespace": "default"},
                "spec": {"clusterIP": ip.to_string(), "clusterIPs": [ip.to_string()], "ports": [{"port": 80}]},
            });
            let deadline = tokio::time::Instant::now() + ALLOCATOR_WAIT;
            loop {
                match self.cluster.create_service_dry_run(&probe).await {
                    Ok(()) => break,
                    Err(e) if not_in_range(&e) && tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) if not_in_range(&e) => bail!("{}", words::range_not_served(plan, ip)),
                    // Taken, or anything else: the range is known; the create will tell.
                    Err(_) => break,
                }
            }
        }
        Ok(())
    }

    /// A create, sent again while an apiserver behind a load balancer has not yet learnt of the
    /// new range.
    async fn create(
        &self,
        manifest: &serde_json::Value,
        manager: &str,
    ) -> Result<ServiceObject, cluster::Error> {
        let deadline = tokio::time::Instant::now() + ALLOCATOR_WAIT;
        loop {
            match self.cluster.create_service(manifest, manager).await {
                Err(e) if not_in_range(&e) && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => return other,
            }
        }
    }

    /// Creates the original again: as it was; with new node ports when its own were taken
    /// meanwhile; with IPs the allocator picks when its old range no longer takes them. Returns
    /// the IPs it got, and the node ports when they changed. A restore that fails keeps the
    /// journal's entry, and the error names the file that recreates it.
    async fn restore(
        &self,
        hand: &InHand,
        m: &Move,
        moved: &Moved,
    ) -> Result<(Vec<IpAddr>, Option<Vec<i32>>)> {
        let mut attempt = hand.original.clone();
        let mut manager = hand.manager.as_str();
        let (mut ports_freed, mut ips_freed) = (false, false);
        loop {
            match self.cluster.create_service(&attempt, manager).await {
                Ok(s) => {
                    return Ok((
                        s.facts.cluster_ips,
                        ports_freed.then_some(s.facts.node_ports),
                    ));
                }
                Err(e) if e.api_error().and_then(ApiError::code) == Some(422) => {
                    let text = e.to_string();
                    if !ports_freed && text.contains("odePort") {
                        attempt = backup::without_node_ports(&attempt);
                        ports_freed = true;
                    } else if !ips_freed {
                        attempt = backup::with_cluster_ips(&attempt, &[]);
                        manager = cluster::FIELD_MANAGER;
                        ips_freed = true;
                    } else {
                        return Err(self.restore_failed(m, moved, e));
                    }
                }
                Err(e) => return Err(self.restore_failed(m, moved, e)),
            }
        }
    }

    fn restore_failed(&self, m: &Move, moved: &Moved, e: cluster::Error) -> anyhow::Error {
        anyhow::anyhow!(
            "{}",
            words::restore_failed(
                m,
                moved.backup.as_deref(),
                &self.ledger.range,
                &e.to_string()
            )
        )
    }
}

/// How long an apiserver may take to learn of a new range.
const ALLOCATOR_WAIT: Duration = Duration::from_secs(5);

/// The allocator's refusal of an IP outside every range it knows.
fn not_in_range(e: &cluster::Error) -> bool {
    e.api_error().and_then(ApiError::code) == Some(422)
        && e.to_string()
            .contains("the provided network does not match the current range")
}
