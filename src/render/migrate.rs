//! The words of `migrate`: the runbook, the per-Service progress, the report and every refusal.

use crate::cluster::rights::Right;
use std::io::{self, Write};
use std::net::IpAddr;
use std::path::Path;

use comfy_table::{Cell, Color};
use serde::Serialize;

use crate::audit::migrate::{Move, Plan, Refusal, SkipReason, Source, Warning};
use crate::audit::migrate::{Moved, Report, RunOutcome};
use crate::model::{DEFAULT_SERVICE_CIDR, ServiceType};
use crate::render::{sanitize, table, write_document};
use crate::settings::DryRun;
use crate::settings::Style;

const PLAN_KIND: &str = "MigrationPlan";
const REPORT_KIND: &str = "MigrationReport";

fn ips(list: &[IpAddr]) -> String {
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn cidrs(list: &[ipnet::IpNet]) -> String {
    list.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn sources(plan: &Plan) -> String {
    plan.sources
        .iter()
        .map(|s| format!("{} ({})", s.name, cidrs(&s.cidrs)))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn refusal(r: &Refusal) -> String {
    match r {
        Refusal::UnknownSource(n) => format!("servicecidr {n:?} not found"),
        Refusal::TwoOfFamily(f) => format!(
            "--to names two {f} CIDRs; a ServiceCIDR holds at most one per family (IPv4, IPv6)"
        ),
        Refusal::Unusable(c) => format!(
            "{c} holds no address the allocator hands out (IPv4 needs a prefix of /30 or shorter, IPv6 one of /64 to /127)"
        ),
        Refusal::NameIsSource(n) => {
            format!(
                "the new range cannot be named {n:?}: that is an old range (choose another with --name)"
            )
        }
        Refusal::NameTaken {
            name,
            cidrs: c,
            terminating,
        } => format!(
            "servicecidr {name:?} exists already{} with {}: pass another --name, or --to {} to resume a migration into it",
            if *terminating {
                " and is being deleted"
            } else {
                ""
            },
            cidrs(c),
            cidrs(c)
        ),
        Refusal::OverlapsSource {
            cidr,
            range,
            range_cidr,
        } => format!(
            "{cidr} shares addresses with {range_cidr} of {range:?}, a range being emptied: choose a target outside the old ranges"
        ),
        Refusal::OverlapsLive {
            cidr,
            range,
            range_cidr,
        } => format!(
            "{cidr} shares addresses with {range_cidr} of servicecidr {range:?}: choose another target, or pass --allow-overlap if that is meant"
        ),
        Refusal::NoTargetFamily {
            family,
            service,
            ip,
        } => format!(
            "service {service} holds {family} ClusterIP {ip} in an old range, but --to has no {family} CIDR: add one"
        ),
        Refusal::TargetFull { cidr, needed, free } => format!(
            "{cidr} has {free} free addresses, and {needed} Services must move into it: choose a larger range"
        ),
        Refusal::NothingToMove { sources: s } => format!(
            "nothing to move: no Service has a ClusterIP in {}; to retire it, run: kubectl servicecidr delete {}",
            s.join(", "),
            s.join(" ")
        ),
        Refusal::UnknownService(k) => format!("--only {k}: no such Service"),
        Refusal::Unfinished(u) => format!(
            "servicecidr {:?} holds an unfinished migration: service {} deleted and not recreated yet; finish it first: kubectl servicecidr migrate run --from {} --to {} --name {}",
            u.range,
            u.services.join(", "),
            u.from.join(","),
            cidrs(&u.to),
            u.range
        ),
    }
}

pub fn not_allowed(missing: &[Right]) -> String {
    let each: Vec<String> = missing
        .iter()
        .map(|r| {
            let object = match &r.name {
                Some(n) => format!("{} {} {n:?}", r.verb, r.resource),
                None => format!("{} {}", r.verb, r.resource),
            };
            match &r.namespace {
                Some(ns) => format!("{object} in {ns:?}"),
                None => object,
            }
        })
        .collect();
    format!(
        "not started: not allowed to {}; the servicecidr-migrator ClusterRole (deploy/rbac) grants what migrate run needs",
        each.join(", ")
    )
}

pub fn server_refused(plan: &Plan, message: &str) -> String {
    format!(
        "the API server refuses servicecidr {:?} ({}): {}",
        plan.name,
        cidrs(&plan.cidrs),
        sanitize(message)
    )
}

pub fn server_check_skipped(error: &str) -> String {
    format!(
        "warning: the API server was not asked whether it accepts the new range (a dry-run create): {}\n",
        sanitize(error)
    )
}

pub fn nodes_unread(error: &str) -> String {
    format!(
        "warning: cannot read Nodes, so their addresses are not checked against the new range: {}\n",
        sanitize(error)
    )
}

pub fn dry_run_note(mode: DryRun) -> String {
    match mode {
        DryRun::Server => "dry run (server): the API server accepted the new range and every Service delete; nothing was changed\n",
        _ => "dry run: nothing was changed\n",
    }
    .into()
}

pub fn needs_yes() -> String {
    "migrate run changes the cluster: stdin is not a terminal to ask on, so pass --yes (see the plan with migrate plan)".into()
}

pub fn not_confirmed() -> String {
    "not confirmed: nothing was changed".into()
}

pub fn question(plan: &Plan) -> String {
    format!(
        "Recreate {} Services with new ClusterIPs and retire {}? [y/N] ",
        plan.moves.len(),
        plan.to_retire()
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

pub fn created(plan: &Plan) -> String {
    format!(
        "created servicecidr {:?} ({})\n",
        plan.name,
        cidrs(&plan.cidrs)
    )
}

pub fn progress(m: &Moved) -> String {
    let key = sanitize(&format!("{}/{}", m.namespace, m.name));
    if let Some(reason) = m.skipped {
        return format!("skipped {key}: {}\n", skip_reason(reason));
    }
    match (&m.error, &m.restored) {
        (None, _) => format!("moved {key}: {} -> {}\n", ips(&m.from), ips(&m.to)),
        (Some(e), Some(r)) => format!(
            "failed {key}: {}; the original is back with {}{}\n",
            sanitize(e),
            ips(r),
            new_ports(m)
        ),
        (Some(e), None) => format!("failed {key}: {}\n", sanitize(e)),
    }
}

/// Loud on purpose: whatever named the old node ports (firewalls, load balancers) must follow.
fn new_ports(m: &Moved) -> String {
    m.new_node_ports
        .as_ref()
        .map(|p| {
            format!(
                " and NEW NODE PORTS {} (its own were taken meanwhile)",
                p.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            )
        })
        .unwrap_or_default()
}

pub fn changed(m: &Move, now: &[IpAddr]) -> String {
    format!(
        "service {} changed since the plan (ClusterIPs {} now, {} planned); not touched, run again to plan it anew",
        m.key(),
        ips(now),
        ips(&m.from)
    )
}

pub fn still_terminating(m: &Move, waited: std::time::Duration, range: &str) -> String {
    format!(
        "service {} is still being deleted after {} (a finalizer holds it); the migration journal on servicecidr {range:?} keeps it, and the same command run again recreates it once it is gone",
        m.key(),
        humantime::format_duration(waited)
    )
}

pub fn held_at_interrupt(m: &Move, range: &str) -> String {
    format!(
        "interrupted while service {} was being deleted (a finalizer holds it); the migration journal on servicecidr {range:?} keeps it, and the same command run again recreates it once it is gone",
        m.key()
    )
}

pub fn not_admitted(m: &Move, error: &str) -> String {
    format!(
        "service {} not touched: the API server would not admit it with {} (a dry-run create): {}",
        m.key(),
        ips(&m.to),
        sanitize(error)
    )
}

pub fn delete_refused(m: &Move, error: &str) -> String {
    format!(
        "service {} not touched: its delete was refused: {}",
        m.key(),
        sanitize(error)
    )
}

pub fn delete_unclear(m: &Move, error: &str, range: &str) -> String {
    format!(
        "no answer to the delete of service {} ({}); the migration journal on servicecidr {range:?} keeps it, and the same command run again finishes it",
        m.key(),
        sanitize(error)
    )
}

pub fn foreign_journal(range: &str, theirs: &str, ours: &str) -> String {
    format!(
        "the migration journal on servicecidr {range:?} was written on another cluster (kube-system UID {}; this one is {}): not acted on; remove its annotation {} by hand if it is stale",
        sanitize(theirs),
        sanitize(ours),
        crate::cluster::journal::JOURNAL_KEY
    )
}

pub fn unreadable_entry(range: &str, service: &str, error: &str) -> String {
    format!(
        "the migration journal on servicecidr {range:?} holds service {} to recreate, but its manifest cannot be read ({}); nothing was changed: recreate it by hand from the annotation {} or the local backup",
        sanitize(service),
        sanitize(error),
        crate::cluster::journal::JOURNAL_KEY
    )
}

pub fn range_gone(range: &str) -> String {
    format!(
        "servicecidr {range:?}, which holds this migration's journal, was deleted during the run; nothing more was deleted"
    )
}

pub fn journal_contended(range: &str) -> String {
    format!(
        "the migration journal on servicecidr {range:?} changed under 20 writes in a row; nothing more was deleted, run again"
    )
}

pub fn range_not_served(plan: &Plan, ip: IpAddr) -> String {
    format!(
        "servicecidr {:?} exists, but the API server still refuses {ip} in it after 5s; run again to resume",
        plan.name
    )
}

pub fn vanished(m: &Move) -> String {
    format!(
        "service {} was deleted by someone else since the plan; not recreated",
        m.key()
    )
}

pub fn recreate_failed(m: &Move, error: &str) -> String {
    format!(
        "cannot recreate service {} with {}: {}",
        m.key(),
        ips(&m.to),
        sanitize(error)
    )
}

pub fn restore_failed(m: &Move, backup: Option<&Path>, range: &str, error: &str) -> String {
    let file = backup.map_or_else(|| "BACKUP.json".into(), |p| p.display().to_string());
    format!(
        "service {} is deleted and could not be created again ({}); the migration journal on servicecidr {range:?} keeps it (the same command run again retries), or create it by hand: kubectl create -f {}",
        m.key(),
        sanitize(error),
        sanitize(&file)
    )
}

fn skip_reason(r: SkipReason) -> &'static str {
    match r {
        SkipReason::Headless => "headless: no ClusterIP",
        SkipReason::ExternalName => "ExternalName: no ClusterIP",
        SkipReason::KubernetesService => {
            "the apiserver owns its ClusterIP: moves with its flags (manual step)"
        }
        SkipReason::NotSelected => "not named by --only",
        SkipReason::Terminating => "its owner is deleting it: not moved, never recreated",
        SkipReason::Vanished => "deleted by someone else since the plan: not recreated",
        SkipReason::InAnotherRun => "another run of this migration has it in hand",
    }
}

/// The plan's warnings as stderr lines, for a run that does not show the plan (`--yes`).
pub fn warnings(plan: &Plan) -> String {
    plan.warnings
        .iter()
        .map(|w| format!("warning: {}\n", sanitize(&warning(w))))
        .collect()
}

fn warning(w: &Warning) -> String {
    match w {
        Warning::NodeAddress { cidr, node, ip } => {
            format!("node {node:?} has InternalIP {ip} inside {cidr}")
        }
        Warning::PodCidr {
            cidr,
            node,
            pod_cidr,
        } => format!("node {node:?} has pod range {pod_cidr}, which overlaps {cidr}"),
        Warning::Overlap {
            cidr,
            range,
            range_cidr,
        } => format!(
            "{cidr} shares addresses with {range_cidr} of servicecidr {range:?} (--allow-overlap)"
        ),
        Warning::Unheld { ip, range } => format!(
            "IPAddress {ip} in {range:?} is held by no Service: nothing moves it, and {range:?} is retired only once it is gone (the apiserver's repair loop deletes managed ones within minutes; else kubectl delete ipaddress {ip})"
        ),
    }
}

/// The notes of one move, in the order an operator should read them.
fn notes(m: &Move) -> Vec<String> {
    let mut n = Vec::new();
    if m.missing {
        n.push("deleted by an earlier run: recreated from the migration journal".into());
    }
    if m.pinned {
        n.push(format!(
            "pinned by its creator: update whatever names {} (kubelet --cluster-dns for DNS)",
            ips(&m.from)
        ));
    }
    if !m.offset_kept {
        n.push("host offset not kept (taken or outside the new range)".into());
    }
    if !m.owners.is_empty() {
        n.push(format!(
            "owned by {}: the owner may recreate or change it",
            m.owners.join(", ")
        ));
    }
    if !m.node_ports.is_empty() {
        n.push(format!(
            "nodePorts kept: {}",
            m.node_ports
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ));
    }
    if m.service_type == ServiceType::LoadBalancer {
        n.push("LoadBalancer: its load balancer is recreated too".into());
    }
    n
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MoveDoc<'a> {
    #[serde(flatten)]
    m: &'a Move,
    notes: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PlanDoc<'a> {
    name: &'a str,
    cidrs: &'a [ipnet::IpNet],
    range_exists: bool,
    sources: &'a [Source],
    moves: Vec<MoveDoc<'a>>,
    skipped: Vec<SkipDoc<'a>>,
    warnings: Vec<String>,
    manual_steps: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SkipDoc<'a> {
    namespace: &'a str,
    name: &'a str,
    reason: SkipReason,
    message: &'static str,
}

fn plan_doc(plan: &Plan) -> PlanDoc<'_> {
    PlanDoc {
        name: &plan.name,
        cidrs: &plan.cidrs,
        range_exists: plan.range_exists,
        sources: &plan.sources,
        moves: plan
            .moves
            .iter()
            .map(|m| MoveDoc { m, notes: notes(m) })
            .collect(),
        skipped: plan
            .skipped
            .iter()
            .map(|s| SkipDoc {
                namespace: &s.namespace,
                name: &s.name,
                reason: s.reason,
                message: skip_reason(s.reason),
            })
            .collect(),
        warnings: plan.warnings.iter().map(warning).collect(),
        manual_steps: manual_steps(plan),
    }
}

/// The default range comes from kube-apiserver's flags; only the operator can move it. The order
/// was probed on 1.37: with the old flags, a deleted `kubernetes` Service comes back at the old
/// IP (or, its range terminating, not at all), and a range the flags no longer name keeps handing
/// out IPs until it is deleted.
fn manual_steps(plan: &Plan) -> Vec<String> {
    if !plan.moves_default() {
        return Vec::new();
    }
    let first = plan.cidrs.first().map(|c| {
        let family = crate::model::Family::of_net(c);
        let b = crate::audit::range::bits(c.network()) + 1;
        crate::audit::range::from_bits(b, family)
    });
    let first = first.map(|ip| ip.to_string()).unwrap_or_default();
    vec![
        format!(
            "kubectl delete servicecidr {DEFAULT_SERVICE_CIDR} --wait=false: it stays Terminating while the kubernetes Service holds its IP, and takes no new IPs from then on (kubectl servicecidr delete refuses it: that IP has no other range)"
        ),
        format!(
            "On every kube-apiserver set --service-cluster-ip-range={} (and kube-controller-manager's, if set), and restart them one by one",
            cidrs(&plan.cidrs)
        ),
        format!(
            "kubectl delete service kubernetes -n default: the old range is released, and within about 10 s an apiserver recreates servicecidr {DEFAULT_SERVICE_CIDR:?} from the new flags and the kubernetes Service at {first}. Never before the restart: with the old flags it comes back at its old IP, or not at all"
        ),
        format!(
            "Once servicecidr {DEFAULT_SERVICE_CIDR:?} holds {}: kubectl servicecidr delete {} retires the range this migration made (the new default covers it)",
            cidrs(&plan.cidrs),
            plan.name
        ),
    ]
}

pub fn write_plan(out: &mut impl Write, style: &Style, plan: &Plan) -> io::Result<()> {
    if !style.output.is_table() {
        return write_document(out, style.output, PLAN_KIND, &plan_doc(plan));
    }
    let step = |n: &mut usize| {
        *n += 1;
        *n
    };
    let mut n = 0;
    writeln!(
        out,
        "Plan: move {} Services from {} to servicecidr {:?} ({})",
        plan.moves.len(),
        sanitize(&sources(plan)),
        plan.name,
        cidrs(&plan.cidrs)
    )?;
    writeln!(
        out,
        "A new ClusterIP breaks clients that use the old IP directly; DNS names follow after their TTL.\n"
    )?;
    writeln!(
        out,
        "{}. Create servicecidr {:?} with {}{}",
        step(&mut n),
        plan.name,
        cidrs(&plan.cidrs),
        if plan.range_exists {
            " (exists already)"
        } else {
            " (the API server accepts it: dry-run create)"
        }
    )?;
    writeln!(
        out,
        "{}. Recreate each Service with its new ClusterIPs, the rest of it unchanged (the original is saved first):",
        step(&mut n)
    )?;
    let mut t = table::new(style, &["SERVICE", "FROM", "TO", "NOTES"]);
    for m in &plan.moves {
        t.add_row(vec![
            Cell::new(sanitize(&m.key())),
            Cell::new(ips(&m.from)),
            table::colored(style, ips(&m.to), Color::Green),
            Cell::new(sanitize(&notes(m).join("; "))),
        ]);
    }
    table::finish(&mut t, &[]);
    let mut body = Vec::new();
    table::write(&mut body, &t)?;
    for line in String::from_utf8_lossy(&body).lines() {
        writeln!(out, "   {line}")?;
    }
    let retire = plan.to_retire();
    if plan.partial {
        writeln!(
            out,
            "{}. The old ranges stay: only the Services named by --only move; a run without --only retires them",
            step(&mut n)
        )?;
    } else if !retire.is_empty() {
        writeln!(
            out,
            "{}. Retire {} with kubectl servicecidr delete --wait: released once no IP is left in it",
            step(&mut n),
            retire
                .iter()
                .map(|s| format!("servicecidr {:?}", s.name))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
    }
    let manual = manual_steps(plan);
    if !manual.is_empty() {
        writeln!(
            out,
            "{}. By hand, last (the default range follows the apiserver's flags; migrate run never does these):",
            step(&mut n)
        )?;
        for (i, m) in manual.iter().enumerate() {
            writeln!(out, "   {}) {m}", i + 1)?;
        }
    }
    writeln!(
        out,
        "{}. Verify: kubectl servicecidr status; kubectl servicecidr orphans (exit 0 when clean)",
        step(&mut n)
    )?;
    if !plan.skipped.is_empty() {
        writeln!(out, "\nSkipped:")?;
        for s in &plan.skipped {
            writeln!(
                out,
                "   {}/{}: {}",
                sanitize(&s.namespace),
                sanitize(&s.name),
                skip_reason(s.reason)
            )?;
        }
    }
    if !plan.warnings.is_empty() {
        writeln!(out, "\nWarnings:")?;
        for w in &plan.warnings {
            writeln!(out, "   {}", sanitize(&warning(w)))?;
        }
    }
    Ok(())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MovedDoc<'a> {
    namespace: &'a str,
    name: &'a str,
    from: &'a [IpAddr],
    to: &'a [IpAddr],
    backup: Option<String>,
    restored: Option<&'a [IpAddr]>,
    new_node_ports: Option<&'a [i32]>,
    skipped: Option<SkipReason>,
    in_journal: bool,
    error: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RetiredDoc<'a> {
    name: &'a str,
    outcome: crate::audit::retire::RangeOutcome,
    message: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReportDoc<'a> {
    outcome: RunOutcome,
    backup_dir: String,
    plan: PlanDoc<'a>,
    moved: Vec<MovedDoc<'a>>,
    retired: Vec<RetiredDoc<'a>>,
    findings: Vec<String>,
    unrelated_findings: usize,
    left_in_old_ranges: &'a [String],
}

fn finding(f: &crate::audit::findings::Finding) -> String {
    format!(
        "{}: {}{}",
        f.kind.name(),
        f.ip,
        f.service
            .as_deref()
            .map(|s| format!(" (service {s})"))
            .unwrap_or_default()
    )
}

/// The closing line: what the run left, and what to do next. A document carries it on stderr.
pub fn summary(r: &Report) -> String {
    let moved = r
        .moved
        .iter()
        .filter(|m| m.error.is_none() && m.skipped.is_none())
        .count();
    let dir = r.backup_dir.display();
    let deleted = r.moved.iter().filter(|m| m.in_journal).count();
    let held = if deleted == 0 {
        "none left deleted".to_owned()
    } else {
        format!(
            "{deleted} deleted and kept in the migration journal on servicecidr {:?}",
            r.plan.name
        )
    };
    let others = if r.unrelated == 0 {
        String::new()
    } else {
        format!(
            "; {} other findings on the cluster, none about this migration (kubectl servicecidr orphans)",
            r.unrelated
        )
    };
    match r.outcome {
        RunOutcome::Interrupted => format!(
            "interrupted: {moved} of {} Services moved, {held}; run the same command again to resume (backups in {dir})",
            r.plan.moves.len()
        ),
        RunOutcome::Failed => format!(
            "stopped: {moved} Services moved before the failure above, {held}; fix it and run the same command again (backups in {dir})"
        ),
        RunOutcome::Done if !r.left.is_empty() => format!(
            "{moved} Services moved; {} still in the old ranges: {}",
            r.left.len(),
            r.left.join(", ")
        ),
        RunOutcome::Done if !r.findings.is_empty() => format!(
            "{moved} Services moved; kubectl servicecidr orphans finds {} inconsistencies in the old and new ranges",
            r.findings.len()
        ),
        RunOutcome::Done => format!(
            "done: {moved} Services moved, nothing amiss in the old and new ranges{others} (backups in {dir})"
        ),
    }
}

pub fn write_report(out: &mut impl Write, style: &Style, r: &Report) -> io::Result<()> {
    if !style.output.is_table() {
        let doc = ReportDoc {
            outcome: r.outcome,
            backup_dir: r.backup_dir.display().to_string(),
            plan: plan_doc(&r.plan),
            moved: r
                .moved
                .iter()
                .map(|m| MovedDoc {
                    namespace: &m.namespace,
                    name: &m.name,
                    from: &m.from,
                    to: &m.to,
                    backup: m.backup.as_ref().map(|p| p.display().to_string()),
                    restored: m.restored.as_deref(),
                    new_node_ports: m.new_node_ports.as_deref(),
                    skipped: m.skipped,
                    in_journal: m.in_journal,
                    error: m.error.as_deref(),
                })
                .collect(),
            retired: r
                .retired
                .iter()
                .map(|d| RetiredDoc {
                    name: &d.name,
                    outcome: d.outcome,
                    message: crate::render::delete::message(d),
                })
                .collect(),
            findings: r.findings.iter().map(finding).collect(),
            unrelated_findings: r.unrelated,
            left_in_old_ranges: &r.left,
        };
        return write_document(out, style.output, REPORT_KIND, &doc);
    }
    let mut t = table::new(style, &["SERVICE", "FROM", "TO", "RESULT"]);
    for m in &r.moved {
        let (text, color) = match (&m.error, &m.restored) {
            _ if m.skipped.is_some() => (
                format!("skipped: {}", skip_reason(m.skipped.expect("checked"))),
                Color::Yellow,
            ),
            (None, _) => ("moved".to_owned(), Color::Green),
            (Some(_), Some(back)) => (
                format!("failed, original back with {}{}", ips(back), new_ports(m)),
                Color::Red,
            ),
            (Some(_), None) if m.in_journal => (
                "failed, deleted: kept in the journal".to_owned(),
                Color::Red,
            ),
            (Some(_), None) => ("failed".to_owned(), Color::Red),
        };
        t.add_row(vec![
            Cell::new(sanitize(&format!("{}/{}", m.namespace, m.name))),
            Cell::new(ips(&m.from)),
            Cell::new(ips(&m.to)),
            table::colored(style, text, color),
        ]);
    }
    table::finish(&mut t, &[]);
    if !r.moved.is_empty() {
        table::write(out, &t)?;
    }
    if !r.retired.is_empty() {
        writeln!(out)?;
        crate::render::delete::write(out, style, &r.retired)?;
    }
    for f in &r.findings {
        writeln!(out, "finding: {}", sanitize(&finding(f)))?;
    }
    writeln!(out, "\n{}", sanitize(&summary(r)))
}
