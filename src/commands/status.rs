//! `status`: every range, its state and how full it is; `--watch` redraws on change.

use std::io::Write;
use std::time::{Duration, SystemTime};

use anyhow::Result;
use futures::{StreamExt, stream};
use kube::api::WatchEvent;

use crate::audit::findings::{AuditOptions, audit, counts};
use crate::audit::usage::{StatusReport, status_report};
use crate::cluster::{self, Cluster};
use crate::commands::print;
use crate::exit::Exit;
use crate::model::Snapshot;
use crate::render::progress::ReadProgress;
use crate::render::{self, Style};
use crate::settings::{Environment, Output, StatusTask};

/// Builds the report over every range (coverage and overlaps need them all), then keeps the
/// named ones; an unknown name is an error naming it.
pub fn report(
    snapshot: &Snapshot,
    names: &[String],
    now: SystemTime,
    attribute: bool,
) -> Result<StatusReport, cluster::Error> {
    if let Some(missing) = names
        .iter()
        .find(|n| !snapshot.ranges.iter().any(|r| &r.name == *n))
    {
        return Err(cluster::Error::NotFound(missing.clone()));
    }
    let mut report = status_report(&snapshot.ranges, &snapshot.ips, now, attribute);
    if !names.is_empty() {
        // Totals and the orphan count speak for the whole cluster, not for a selection.
        report.totals.clear();
        report.orphaned = 0;
        report.ranges.retain(|r| names.contains(&r.name));
        report
            .attribution
            .retain(|a| a.range.as_ref().is_some_and(|(n, _)| names.contains(n)));
    }
    Ok(report)
}

pub async fn run(
    cluster: &Cluster,
    style: &Style,
    env: &Environment,
    reading: &ReadProgress,
    args: StatusTask,
) -> Result<Exit> {
    if args.watch {
        return watch(cluster, style, env.stdout_terminal, &args.names).await;
    }
    if style.output == Output::Prometheus {
        return metrics(cluster, &args.names).await;
    }
    let (snapshot, _) = cluster.snapshot(false).await?;
    reading.finish();
    let report = report(
        &snapshot,
        &args.names,
        SystemTime::now(),
        !style.output.is_table(),
    )?;
    print(|out| render::status::write(out, style, &report))?;
    Ok(Exit::Success)
}

/// The metrics of every range (or the named ones) and the findings counted by kind: for a cron
/// job feeding node-exporter's textfile collector.
async fn metrics(cluster: &Cluster, names: &[String]) -> Result<Exit> {
    let (snapshot, _) = cluster.snapshot(true).await?;
    let now = SystemTime::now();
    let report = report(&snapshot, names, now, false)?;
    let opts = AuditOptions {
        now,
        include_recent: false,
    };
    let found = counts(&audit(&snapshot, &opts));
    print(|out| render::prometheus::write(out, &report, &found, None))?;
    Ok(Exit::Success)
}

/// Redraws after every change: watches from each list's resourceVersion tell when, a fresh
/// list tells what (so the view is always one consistent read, never an event-patched copy).
/// A lost API server is waited for, said on stderr; Ctrl-C ends it at once, whatever is pending.
async fn watch(cluster: &Cluster, style: &Style, tty: bool, names: &[String]) -> Result<Exit> {
    let follow = async {
        loop {
            if let Err(e) = redraw_and_wait(cluster, style, names, tty).await {
                let transient = e
                    .downcast_ref::<cluster::Error>()
                    .and_then(cluster::Error::api_error)
                    .is_some_and(|a| a.is_transient());
                if !transient {
                    return Err(e);
                }
                render::to_stderr(&format!("lost the API server ({e}); reconnecting\n"));
                // The retry policy already paced the failed request; this only keeps a server that
                // refuses at once from being asked in a tight loop.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    tokio::select! {
        r = follow => r,
        _ = tokio::signal::ctrl_c() => Ok(Exit::Interrupted),
    }
}

/// One redraw, then the wait for the next change (or the end of a watch).
async fn redraw_and_wait(
    cluster: &Cluster,
    style: &Style,
    names: &[String],
    tty: bool,
) -> Result<()> {
    let (snapshot, [ranges_rv, ips_rv]) = cluster.snapshot(false).await?;
    // A watched range that finished deleting is shown as gone, not an error.
    let (present, gone): (Vec<String>, Vec<String>) = names
        .iter()
        .cloned()
        .partition(|n| snapshot.ranges.iter().any(|r| &r.name == n));
    let report = report(&snapshot, &present, SystemTime::now(), false)?;
    print(|out| {
        if tty {
            write!(out, "\x1b[2J\x1b[H")?;
        } else {
            writeln!(out, "--- {}", render::rfc3339(SystemTime::now()))?;
        }
        if present.is_empty() && !gone.is_empty() {
            writeln!(out, "(none of the ranges watched exists now)")?;
        } else {
            render::status::write(out, style, &report)?;
        }
        for name in &gone {
            writeln!(out, "servicecidr {:?}: gone", render::sanitize(name))?;
        }
        Ok(())
    })?;
    let ranges = cluster
        .watch_service_cidrs(None, &ranges_rv)
        .await?
        .map(|e| e.map(|e| is_change(&e)));
    let ips = cluster
        .watch_ip_addresses(&ips_rv)
        .await?
        .map(|e| e.map(|e| is_change(&e)));
    let mut changes = std::pin::pin!(stream::select(ranges, ips));
    // A change, an error or a closed watch: any of them means read again.
    while let Some(Ok(false)) = changes.next().await {}
    // Let a burst of changes settle into one redraw.
    let _ = tokio::time::timeout(Duration::from_millis(200), async {
        while changes.next().await.is_some() {}
    })
    .await;
    Ok(())
}

fn is_change<T>(e: &WatchEvent<T>) -> bool {
    !matches!(e, WatchEvent::Bookmark(_))
}
