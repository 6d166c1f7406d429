//! `migrate`: observe everything the plan needs, decide through `audit::migrate`, then act one
//! Service at a time. Before a Service is deleted, its manifest goes into the migration's journal
//! on the cluster (`audit::journal`, kept on the new range), so that any rerun, from any machine,
//! finishes what a killed run left, and only what this tool deleted is ever recreated.

mod backup;
mod ledger;
mod mover;
mod observe;

use std::io::{BufRead, IsTerminal};
use std::time::SystemTime;

use anyhow::{Result, bail};
use tokio::sync::watch;

use crate::audit::migrate::Plan;
use crate::cluster::rights::Right;
use crate::cluster::{ApiError, Cluster, GROUP};
use crate::commands::retirement;
use crate::exit::Exit;
use crate::render;
use crate::render::migrate as words;
use crate::render::print;
use crate::settings::Style;
use crate::settings::{DryRun, MigrateRun, MigrateTask};

use backup::Backups;
use ledger::Ledger;
use mover::Mover;
use observe::{Seen, observe};

pub async fn run(
    cluster: &Cluster,
    style: &Style,
    countdown: bool,
    task: MigrateTask,
) -> Result<Exit> {
    let MigrateTask { request, run } = task;
    let id = run_id();
    // A range of that name created meanwhile (by another run) is a resume: look again, once.
    let mut attempts = 0;
    let (seen, plan) = loop {
        attempts += 1;
        let seen = observe(cluster, &request, &id, attempts == 1).await?;
        let plan = match seen.plan(&request) {
            Ok(p) => p,
            Err(r) => return refused(&words::refusal(&r)),
        };
        if run.is_some() {
            let missing = cluster.missing(&requests(&plan)).await?;
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
            .create_service_cidr(&plan.name, &plan.cidrs, None, true)
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
    let cluster = &cluster.declaring(requests(&plan));
    let cluster_id = cluster.identity().await?;
    let mut backups = Backups::open(&run.backup_dir)?;
    backups.check(&cluster_id, &request.name, &request.to)?;
    if let Some(j) = seen.own_journal(&plan.name)
        && j.record.cluster != cluster_id
    {
        bail!(
            "{}",
            words::foreign_journal(&j.range, &j.record.cluster, &cluster_id)
        );
    }
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
    backups.begin(&cluster_id, &plan.name, &plan.cidrs)?;
    let ledger = Ledger::open(cluster, &plan, &cluster_id, &seen.settled).await?;
    let job = Mover {
        cluster,
        backups,
        ledger,
        seen,
        run_id: id,
        interrupted: interrupt_flag(),
        timeout: run.timeout,
    };
    let report = job.carry_out(&request, plan, countdown, &run).await?;
    print(|out| words::write_report(out, style, &report))?;
    if !style.output.is_table() {
        render::to_stderr(&format!("{}\n", words::summary(&report)));
    }
    Ok(report.exit())
}

/// One id per process: tells this run's journal entries from another's.
fn run_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}-{nanos:x}", std::process::id())
}

/// Every request a run makes once its plan is made: asked of RBAC before the first write (a
/// Service deleted by a user who may not create it would stay deleted), and the only requests
/// its client may send from then on (`cluster::rights`).
fn requests(plan: &Plan) -> Vec<Right> {
    let range = |verb| Right::new(verb, GROUP, "servicecidrs");
    let mut rights = vec![
        Right::new("get", "", "namespaces").named("kube-system"),
        // Journals, audits and the look after the run.
        range("list"),
        Right::new("list", GROUP, "ipaddresses"),
        Right::new("list", "", "services"),
        Right::new("list", "", "nodes").optional(),
        // The journal lives on the new range: read back, patched.
        range("get").named(&plan.name),
        range("patch").named(&plan.name),
    ];
    if !plan.range_exists {
        rights.push(range("create"));
    }
    let mut namespaces: Vec<&str> = plan.moves.iter().map(|m| m.namespace.as_str()).collect();
    namespaces.sort();
    namespaces.dedup();
    for ns in namespaces {
        for verb in ["get", "delete", "create", "watch"] {
            rights.push(Right::new(verb, "", "services").in_namespace(ns));
        }
    }
    let retired: Vec<String> = plan.to_retire().iter().map(|s| s.name.clone()).collect();
    rights.extend(retirement::requests(&retired, true));
    rights
}

fn refused(line: &str) -> Result<Exit> {
    render::to_stderr(&format!("error: {line}\n"));
    Ok(Exit::Findings)
}

/// Asks on a terminal; refuses without one unless --yes, which still says the plan's warnings.
fn confirm(run: &MigrateRun, style: &Style, plan: &Plan) -> Result<bool> {
    if run.yes {
        render::to_stderr(&words::warnings(plan));
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

/// Ctrl-C sets a flag: read between Services, and it ends a wait for a Service held by
/// finalizers (whose manifest the journal keeps), so no wait outlasts it by more than a moment.
fn interrupt_flag() -> watch::Receiver<bool> {
    let (set, flag) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = set.send(true);
        }
    });
    flag
}

/// `--dry-run=server`: the range and every Service delete go to the server with dryRun=All. The
/// creates cannot: the Service still exists, and the new range does not.
async fn server_dry_run(
    cluster: &Cluster,
    style: &Style,
    seen: &Seen,
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
