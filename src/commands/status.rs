//! `status`: every range, its state and how full it is; `--watch` redraws on change.

use std::io::{IsTerminal, Write};
use std::time::{Duration, SystemTime};

use anyhow::Result;
use futures::{StreamExt, stream};
use kube::api::WatchEvent;

use crate::audit::usage::{StatusReport, status_report};
use crate::cli::StatusArgs;
use crate::cluster::{self, Cluster};
use crate::commands::print;
use crate::exit::Exit;
use crate::model::Snapshot;
use crate::render::{self, Style};

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

pub async fn run(cluster: &Cluster, style: &Style, args: StatusArgs) -> Result<Exit> {
    if args.watch {
        if !style.output.is_table() {
            eprintln!("error: --watch works with -o table or -o wide");
            return Ok(Exit::Usage);
        }
        return watch(cluster, style, &args.names).await;
    }
    let (snapshot, _) = cluster.snapshot(false).await?;
    let report = report(
        &snapshot,
        &args.names,
        SystemTime::now(),
        !style.output.is_table(),
    )?;
    print(|out| render::status::write(out, style, &report))?;
    Ok(Exit::Success)
}

/// Redraws after every change: watches from each list's resourceVersion tell when, a fresh
/// list tells what (so the view is always one consistent read, never an event-patched copy).
async fn watch(cluster: &Cluster, style: &Style, names: &[String]) -> Result<Exit> {
    let tty = std::io::stdout().is_terminal();
    loop {
        let (snapshot, [ranges_rv, ips_rv]) = cluster.snapshot(false).await?;
        let report = report(&snapshot, names, SystemTime::now(), false)?;
        print(|out| {
            if tty {
                write!(out, "\x1b[2J\x1b[H")?;
            } else {
                writeln!(out, "--- {}", render::rfc3339(SystemTime::now()))?;
            }
            render::status::write(out, style, &report)
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
        tokio::select! {
            // A change, an error or a closed watch: any of them means read again.
            _ = async { while let Some(Ok(false)) = changes.next().await {} } => {}
            _ = tokio::signal::ctrl_c() => return Ok(Exit::Interrupted),
        }
        // Let a burst of changes settle into one redraw.
        let _ = tokio::time::timeout(Duration::from_millis(200), async {
            while changes.next().await.is_some() {}
        })
        .await;
    }
}

fn is_change<T>(e: &WatchEvent<T>) -> bool {
    !matches!(e, WatchEvent::Bookmark(_))
}
