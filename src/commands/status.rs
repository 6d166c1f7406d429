//! `status`: every range, its state and how full it is; `--watch` redraws on change.

use std::io::Write;
use std::time::SystemTime;

use anyhow::Result;

use crate::audit::findings::{AuditOptions, audit, counts};
use crate::audit::usage::{StatusReport, selected};
use crate::cluster::{self, Change, Cluster, Inventory};
use crate::commands::follow::{Ended, Held, Pace, follow};
use crate::exit::Exit;
use crate::model::Snapshot;
use crate::render;
use crate::render::print;
use crate::render::progress::ReadProgress;
use crate::settings::Style;
use crate::settings::{Output, StatusTask};

/// The report over every range, then the named ones; an unknown name is an error naming it.
pub fn report(
    snapshot: &Snapshot,
    names: &[String],
    now: SystemTime,
    attribute: bool,
) -> Result<StatusReport, cluster::Error> {
    selected(snapshot, names, now, attribute).map_err(cluster::Error::NotFound)
}

pub async fn run(
    cluster: &Cluster,
    style: &Style,
    redraw: bool,
    reading: &ReadProgress,
    args: StatusTask,
) -> Result<Exit> {
    if args.watch {
        return watch(cluster, style, redraw, &args.names).await;
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

/// Redraws after every change: one list, then the watches' events applied to the copy it holds
/// (`commands::follow`), so a change costs a redraw, not a list; a list again only when a watch
/// cannot resume. A lost API server is waited for, said on stderr; Ctrl-C ends it at once,
/// whatever is pending.
async fn watch(cluster: &Cluster, style: &Style, tty: bool, names: &[String]) -> Result<Exit> {
    let follow = async {
        let mut pace = Pace::default();
        loop {
            let watching = tokio::time::Instant::now();
            let ended = list_and_follow(cluster, style, names, tty).await;
            pace.watched(watching.elapsed());
            if let Err(e) = ended {
                let transient = e
                    .downcast_ref::<cluster::Error>()
                    .and_then(cluster::Error::api_error)
                    .is_some_and(|a| a.is_transient());
                if !transient {
                    return Err(e);
                }
                render::to_stderr(&format!("lost the API server ({e}); reconnecting\n"));
            }
            // After a watch that could not resume too: a server or proxy that answers every
            // watch with 410 must not be listed in a tight loop.
            tokio::time::sleep(pace.failed()).await;
        }
    };
    tokio::select! {
        r = follow => r,
        _ = tokio::signal::ctrl_c() => Ok(Exit::Interrupted),
    }
}

/// One list and a redraw, then a redraw for every batch of changes the watches bring, until a
/// watch cannot resume (Ok: list again) or fails.
async fn list_and_follow(
    cluster: &Cluster,
    style: &Style,
    names: &[String],
    tty: bool,
) -> Result<()> {
    let (snapshot, mut rvs) = cluster.snapshot(false).await?;
    draw(&snapshot, style, names, tty)?;
    let mut held = Held::new(snapshot);
    let lists = [Inventory::Ranges, Inventory::Ips];
    loop {
        let ended = follow(cluster, &lists, &mut rvs, |changes| {
            let moved_on_only = changes.iter().all(|c| matches!(c, Change::Progress));
            changes.into_iter().for_each(|c| held.apply(c));
            if moved_on_only {
                return Ok(());
            }
            draw(held.snapshot(), style, names, tty)
        })
        .await?;
        if ended == Ended::Relist {
            return Ok(());
        }
    }
}

/// One picture. A watched range that finished deleting is shown as gone, not an error.
fn draw(snapshot: &Snapshot, style: &Style, names: &[String], tty: bool) -> Result<()> {
    let (present, gone): (Vec<String>, Vec<String>) = names
        .iter()
        .cloned()
        .partition(|n| snapshot.ranges.iter().any(|r| &r.name == n));
    let report = report(snapshot, &present, SystemTime::now(), false)?;
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
    Ok(())
}
