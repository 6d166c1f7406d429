//! `migrate`: observe everything the plan needs, decide through `audit::migrate`, then act one
//! Service at a time, so that after any step (or a kill) a rerun finds exactly what is left.

mod backup;

use std::io::{BufRead, IsTerminal};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::{Result, bail};

use crate::audit::findings::{AuditOptions, audit};
use crate::audit::migrate::{Move, Plan, Refusal, Request, plan};
use crate::cluster::{self, ApiError, Cluster, ServiceObject};
use crate::commands::{delete, print};
use crate::exit::Exit;
use crate::model::{IpAllocation, NodeNets, ServiceCidr, ServiceFacts};
use crate::render::migrate::{self as words, Moved, Outcome, Report};
use crate::render::{self, Style};
use crate::settings::{DeleteTask, DryRun, Environment, MigrateRun, MigrateTask};
use backup::Backups;

/// Everything a plan is made from.
struct Observed {
    ranges: Vec<ServiceCidr>,
    ips: Vec<IpAllocation>,
    services: Vec<ServiceObject>,
    nodes: Vec<NodeNets>,
    /// Services an interrupted run deleted and did not recreate, from their backups.
    pending: Vec<backup::Pending>,
}

impl Observed {
    fn plan(&self, req: &Request, backups: Option<&Backups>) -> Result<Plan, Refusal> {
        let mut facts: Vec<ServiceFacts> = self.services.iter().map(|s| s.facts.clone()).collect();
        facts.extend(self.pending.iter().map(|p| p.facts.clone()));
        let journal = backups.map(Backups::sources).unwrap_or_default();
        plan(req, &self.ranges, &self.ips, &facts, &self.nodes, &journal)
    }
}

/// Reads everything a plan needs. `warn`: say (once a run) that Nodes could not be read.
async fn observe(cluster: &Cluster, backups: Option<&Backups>, warn: bool) -> Result<Observed> {
    let (ranges, ips, services, nodes) = tokio::join!(
        cluster.list_service_cidrs(),
        cluster.list_ip_addresses(),
        cluster.list_service_objects(),
        cluster.list_nodes(),
    );
    let services = services?;
    // Nodes only feed warnings: a user who may not list them still gets a plan.
    let nodes = nodes.unwrap_or_else(|e| {
        if warn {
            render::to_stderr(&words::nodes_unread(&e.to_string()));
        }
        Vec::new()
    });
    let pending = match backups {
        Some(b) => b
            .pending()?
            .into_iter()
            .filter(|p| {
                !services
                    .iter()
                    .any(|s| s.facts.namespace == p.facts.namespace && s.facts.name == p.facts.name)
            })
            .collect(),
        None => Vec::new(),
    };
    Ok(Observed {
        ranges: ranges?.items,
        ips: ips?.items,
        services,
        nodes,
        pending,
    })
}

pub async fn run(
    cluster: &Cluster,
    style: &Style,
    env: &Environment,
    task: MigrateTask,
) -> Result<Exit> {
    let MigrateTask { request, run } = task;
    let mut backups = match &run {
        Some(r) => {
            let b = Backups::open(&r.backup_dir)?;
            b.check(&request.name, &request.to)?;
            Some(b)
        }
        None => None,
    };
    // A range of that name created meanwhile (by another run) is a resume: look again, once.
    let mut attempts = 0;
    let (seen, plan) = loop {
        attempts += 1;
        let seen = observe(cluster, backups.as_ref(), attempts == 1).await?;
        let plan = match seen.plan(&request, backups.as_ref()) {
            Ok(p) => p,
            Err(r) => return refused(&words::refusal(&r)),
        };
        if run.is_some() {
            let missing = missing_rights(cluster, &plan).await;
            if !missing.is_empty() {
                bail!("{}", words::not_allowed(&missing));
            }
        }
        if plan.range_exists {
            break (seen, plan);
        }
        // The server judges the new range as the allocator will: a dry-run create. A plan by a
        // user who may only read goes on without it.
        match cluster
            .create_service_cidr(&plan.name, &plan.cidrs, true)
            .await
        {
            Ok(_) => break (seen, plan),
            Err(e) => match e.api_error().and_then(ApiError::code) {
                Some(409) if attempts == 1 => continue,
                Some(400 | 409 | 422) => {
                    return refused(&words::server_refused(&plan, &e.to_string()));
                }
                Some(403) if run.is_none() => {
                    render::to_stderr(&words::server_check_skipped(&e.to_string()));
                    break (seen, plan);
                }
                _ => return Err(e.into()),
            },
        }
    };
    let Some(run) = run else {
        print(|out| words::write_plan(out, style, &plan))?;
        return Ok(Exit::Success);
    };
    match run.dry_run {
        DryRun::None => {}
        DryRun::Client => {
            print(|out| words::write_plan(out, style, &plan))?;
            render::to_stderr(&words::dry_run_note(DryRun::Client));
            return Ok(Exit::Success);
        }
        DryRun::Server => return server_dry_run(cluster, style, &seen, &plan).await,
    }
    if !confirm(&run, style, &plan)? {
        bail!("{}", words::not_confirmed());
    }
    let backups = backups.as_mut().expect("a run has a backup directory");
    backups.begin(&plan.name, &plan.cidrs, &plan.sources)?;
    let job = Job {
        cluster,
        backups,
        seen,
        interrupted: interrupt_flag(),
        timeout: run.timeout,
    };
    let report = job.carry_out(&request, plan, env, &run).await?;
    print(|out| words::write_report(out, style, &report))?;
    if !style.output.is_table() {
        render::to_stderr(&format!("{}\n", words::summary(&report)));
    }
    Ok(report.exit())
}

/// What the run would do that RBAC denies, asked before the first write: a Service deleted by a
/// user who may not create it would stay deleted.
async fn missing_rights(cluster: &Cluster, plan: &Plan) -> Vec<words::Right> {
    let mut needed: Vec<words::Right> = Vec::new();
    let retire = !plan.to_retire().is_empty();
    for (verb, wanted) in [
        ("create", !plan.range_exists),
        ("delete", retire),
        ("patch", retire),
        ("watch", retire),
    ] {
        if wanted {
            needed.push(words::Right {
                verb,
                resource: "servicecidrs",
                namespace: None,
            });
        }
    }
    let mut namespaces: Vec<&str> = plan.moves.iter().map(|m| m.namespace.as_str()).collect();
    namespaces.dedup();
    for ns in namespaces {
        for verb in ["get", "delete", "create", "watch"] {
            needed.push(words::Right {
                verb,
                resource: "services",
                namespace: Some(ns.to_owned()),
            });
        }
    }
    let mut missing = Vec::new();
    for right in needed {
        let group = if right.resource == "services" {
            ""
        } else {
            cluster::GROUP
        };
        if cluster
            .may_on(
                group,
                right.resource,
                right.namespace.as_deref(),
                right.verb,
                None,
            )
            .await
            == Some(false)
        {
            missing.push(right);
        }
    }
    missing
}

fn refused(line: &str) -> Result<Exit> {
    render::to_stderr(&format!("error: {line}\n"));
    Ok(Exit::Findings)
}

/// Asks on a terminal; refuses without one unless --yes.
fn confirm(run: &MigrateRun, style: &Style, plan: &Plan) -> Result<bool> {
    if run.yes {
        return Ok(true);
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!("{}", words::needs_yes());
    }
    let mut text = Vec::new();
    words::write_plan(&mut text, style, plan)?;
    render::to_stderr(&String::from_utf8_lossy(&text));
    render::to_stderr(&words::question(plan));
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "yes"))
}

/// Ctrl-C sets a flag that is read between Services: the Service being moved is finished first,
/// so none is ever left deleted.
fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            set.store(true, Ordering::SeqCst);
        }
    });
    flag
}

/// `--dry-run=server`: the range and every Service delete go to the server with dryRun=All. The
/// creates cannot: the Service still exists, and the new range does not.
async fn server_dry_run(
    cluster: &Cluster,
    style: &Style,
    seen: &Observed,
    plan: &Plan,
) -> Result<Exit> {
    for m in plan.moves.iter().filter(|m| !m.missing) {
        let object = seen
            .services
            .iter()
            .find(|s| s.facts.namespace == m.namespace && s.facts.name == m.name)
            .expect("every move that is not missing comes from a listed Service");
        cluster.delete_service(object, true).await?;
    }
    print(|out| words::write_plan(out, style, plan))?;
    render::to_stderr(&words::dry_run_note(DryRun::Server));
    Ok(Exit::Success)
}

struct Job<'a> {
    cluster: &'a Cluster,
    backups: &'a mut Backups,
    seen: Observed,
    interrupted: Arc<AtomicBool>,
    /// Bounds each wait: a Service held by finalizers, the old ranges' retirement.
    timeout: Duration,
}

impl Job<'_> {
    async fn carry_out(
        mut self,
        req: &Request,
        mut plan: Plan,
        env: &Environment,
        run: &MigrateRun,
    ) -> Result<Report> {
        let mut report = Report::new(&plan, self.backups.dir());
        self.file_finished_backups(&plan)?;
        if !plan.range_exists {
            match self
                .cluster
                .create_service_cidr(&plan.name, &plan.cidrs, false)
                .await
            {
                Ok(_) => render::to_stderr(&words::created(&plan)),
                // Another run made it a moment ago: the same range is as good.
                Err(e) if e.api_error().and_then(ApiError::code) == Some(409) => {
                    match self.cluster.get_service_cidr(&plan.name).await? {
                        Some((r, _)) if r.cidrs == plan.cidrs && !r.is_terminating() => {}
                        _ => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e.into()),
            }
            self.until_allocatable(&plan).await?;
        }
        // Services that got an IP in an old range while the others moved are moved in a
        // second round.
        for round in 0..2 {
            if round > 0 {
                self.seen = observe(self.cluster, Some(self.backups), false).await?;
                plan = match self.seen.plan(req, Some(self.backups)) {
                    Ok(p) => p,
                    Err(r) => bail!("{}", words::refusal(&r)),
                };
            }
            for m in &plan.moves {
                if self.interrupted.load(Ordering::SeqCst) {
                    report.outcome = Outcome::Interrupted;
                    return Ok(report);
                }
                let moved = self.move_one(m).await;
                render::to_stderr(&words::progress(&moved));
                let failed = moved.error.is_some();
                report.moved.push(moved);
                if failed {
                    report.outcome = Outcome::Failed;
                    return Ok(report);
                }
            }
        }
        let names: Vec<String> = plan.to_retire().iter().map(|s| s.name.clone()).collect();
        if !names.is_empty() {
            let task = DeleteTask {
                names,
                wait: true,
                dry_run: DryRun::None,
                remove_finalizer: false,
                grace_period: Duration::from_secs(10),
                controller_timeout: Duration::from_secs(30),
                timeout: run.timeout,
            };
            report.retired = delete::retire(self.cluster, env, &task).await;
        }
        let (snapshot, _) = self.cluster.snapshot(true).await?;
        report.findings = audit(
            &snapshot,
            &AuditOptions {
                now: SystemTime::now(),
                include_recent: false,
            },
        );
        // What is left is what a plan made now would still move.
        self.seen = observe(self.cluster, Some(self.backups), false).await?;
        report.left = match self.seen.plan(req, Some(self.backups)) {
            Ok(p) => p.moves.iter().map(Move::key).collect(),
            Err(r) => bail!("{}", words::refusal(&r)),
        };
        Ok(report)
    }

    /// A run killed after a create but before it filed the backup leaves it under `pending/`,
    /// though the Service exists and has moved: file it, so no later run recreates it.
    fn file_finished_backups(&self, plan: &Plan) -> Result<()> {
        let settled = |key: &str| {
            !plan.moves.iter().any(|m| m.key() == key)
                && !plan
                    .skipped
                    .iter()
                    .any(|s| format!("{}/{}", s.namespace, s.name) == key)
        };
        for p in self.backups.pending()? {
            let key = p.facts.key();
            if self.seen.services.iter().any(|s| s.facts.key() == key) && settled(&key) {
                self.backups.done(&p.facts.namespace, &p.facts.name)?;
            }
        }
        Ok(())
    }

    /// Moves one Service: save it, delete exactly the object read, create it with its new IPs;
    /// if that fails, put the original back.
    async fn move_one(&self, m: &Move) -> Moved {
        let mut moved = Moved::new(m);
        if let Err(e) = self.try_move(m, &mut moved).await {
            moved.error = Some(e.to_string());
        }
        moved
    }

    async fn try_move(&self, m: &Move, moved: &mut Moved) -> Result<()> {
        let (ns, name) = (m.namespace.as_str(), m.name.as_str());
        let original = match self.cluster.get_service(ns, name).await? {
            Some(current) => {
                if current.facts.cluster_ips != m.from {
                    bail!("{}", words::changed(m, &current.facts.cluster_ips));
                }
                let original = backup::manifest(&current.object);
                moved.backup = Some(self.backups.save(ns, name, &original)?);
                self.cluster.delete_service(&current, false).await?;
                tokio::time::timeout(
                    self.timeout,
                    self.cluster.service_gone(ns, name, &current.uid),
                )
                .await
                .map_err(|_| anyhow::anyhow!("{}", words::still_terminating(m, self.timeout)))??;
                original
            }
            None if m.missing => self
                .seen
                .pending
                .iter()
                .find(|p| p.facts.namespace == ns && p.facts.name == name)
                .map(|p| p.manifest.clone())
                .expect("a missing Service comes from its backup"),
            None => bail!("{}", words::vanished(m)),
        };
        let manager = m.pinned_by.as_deref().unwrap_or(cluster::FIELD_MANAGER);
        match self
            .create(&backup::with_cluster_ips(&original, &m.to), manager)
            .await
        {
            Ok(_) => {
                moved.backup = Some(self.backups.done(ns, name)?);
                Ok(())
            }
            // Whatever the error, the Service may exist now: another run created it from the
            // backup this one wrote, or the create went through and its answer was lost.
            Err(create) => match self.cluster.get_service(ns, name).await? {
                Some(s) => {
                    moved.backup = Some(self.backups.done(ns, name)?);
                    if s.facts.cluster_ips == m.to {
                        Ok(())
                    } else {
                        bail!("{}", words::changed(m, &s.facts.cluster_ips))
                    }
                }
                None => {
                    moved.restored = Some(self.restore(&original, m).await?);
                    self.backups.done(ns, name)?;
                    bail!("{}", words::recreate_failed(m, &create.to_string()))
                }
            },
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

    /// Creates the original again: with its old IPs, or, when its old range no longer takes
    /// them, with IPs the allocator picks. Returns the IPs it got.
    async fn restore(&self, original: &serde_json::Value, m: &Move) -> Result<Vec<IpAddr>> {
        let manager = m.pinned_by.as_deref().unwrap_or(cluster::FIELD_MANAGER);
        let created = match self.cluster.create_service(original, manager).await {
            Ok(s) => s,
            Err(e) if e.api_error().and_then(ApiError::code) == Some(422) => self
                .cluster
                .create_service(
                    &backup::with_cluster_ips(original, &[]),
                    cluster::FIELD_MANAGER,
                )
                .await
                .map_err(|e| restore_failed(m, self.backups.dir(), e))?,
            Err(e) => return Err(restore_failed(m, self.backups.dir(), e)),
        };
        Ok(created.facts.cluster_ips)
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

fn restore_failed(m: &Move, dir: &std::path::Path, e: cluster::Error) -> anyhow::Error {
    anyhow::anyhow!("{}", words::restore_failed(m, dir, &e.to_string()))
}
