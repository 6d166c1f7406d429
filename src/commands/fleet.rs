//! `status` and `orphans` over many contexts at once: read concurrently, each bounded by its own
//! request timeout, one failing context reported in its own row while the others are complete.

use std::future::Future;
use std::time::SystemTime;

use anyhow::Result;
use futures::{StreamExt, stream};

use crate::audit::doctor::healthy;
use crate::audit::findings::{Finding, selected};
use crate::audit::fleet::{ClusterRanges, cross_cluster_overlaps, server_key};
use crate::audit::usage::{self, StatusReport};
use crate::cluster::{self, Cluster, Connection};
use crate::exit::Exit;
use crate::model::ServiceCidr;
use crate::render::fleet::{self as render, Member};
use crate::render::print;
use crate::settings::Style;
use crate::settings::{Fleet, OrphansTask, StatusTask};

/// Reads every context of the fleet with `read`, at most `concurrency` at a time, in the
/// kubeconfig's (or the given) order.
async fn each<T, F, Fut>(
    base: &Connection,
    chunk_size: u32,
    fleet: &Fleet,
    read: F,
) -> Result<Vec<Member<T>>>
where
    F: Fn(Cluster) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let known = base.context_names()?;
    let contexts = match &fleet.contexts {
        None => known,
        Some(named) => {
            // Every name is checked before any cluster is asked.
            if let Some(unknown) = named.iter().find(|n| !known.contains(n)) {
                // --contexts splits on commas: a name holding one is out of its reach.
                let comma = if known.iter().any(|k| k.contains(',')) {
                    "; a context whose name holds a comma cannot be named in --contexts: use --context NAME or --all-contexts"
                } else {
                    ""
                };
                anyhow::bail!(
                    "context {unknown:?} not found in kubeconfig (known: {}){comma}",
                    known.join(", ")
                );
            }
            named.clone()
        }
    };
    if contexts.is_empty() {
        anyhow::bail!("the kubeconfig has no contexts");
    }
    let read = &read;
    let members = stream::iter(contexts.into_iter().map(|context| async move {
        let conn = Connection {
            context: Some(context.clone()),
            ..base.clone()
        };
        let (server, result) = match Cluster::connect(&conn, chunk_size).await {
            Ok(cluster) => {
                let server = cluster.server().to_owned();
                (server, read(cluster).await.map_err(|e| one_line(&e)))
            }
            // Which server could not be reached, when the kubeconfig entry says.
            Err(e) => {
                let server = conn.config().await.map(|c| c.cluster_url.to_string());
                (server.unwrap_or_default(), Err(one_line(&e.into())))
            }
        };
        Member {
            context,
            server,
            result,
        }
    }))
    .buffered(fleet.concurrency)
    .collect()
    .await;
    Ok(members)
}

fn one_line(e: &anyhow::Error) -> String {
    e.to_string()
        .chars()
        .map(|c| if crate::render::is_unsafe(c) { ' ' } else { c })
        .collect()
}

/// 1 when a context failed (said on stderr too), else 3 when anything was found, else 0.
fn exit<T>(members: &[Member<T>], found: impl Fn(&T) -> bool) -> Exit {
    let failed: Vec<&str> = members
        .iter()
        .filter(|m| m.result.is_err())
        .map(|m| m.context.as_str())
        .collect();
    if !failed.is_empty() {
        render::failed_contexts(&failed, members.len());
        return Exit::Error;
    }
    if members.iter().any(|m| m.result.as_ref().is_ok_and(&found)) {
        Exit::Findings
    } else {
        Exit::Success
    }
}

pub async fn status(
    base: &Connection,
    chunk_size: u32,
    style: &Style,
    fleet: &Fleet,
    args: &StatusTask,
) -> Result<Exit> {
    let members = each(base, chunk_size, fleet, |cluster| async move {
        // The cluster's own UID tells two names of one server apart from two clusters; a user
        // who may not read kube-system falls back to the server's URL.
        let (snapshot, identity) = tokio::join!(cluster.snapshot(false), cluster.identity());
        let (snapshot, _) = snapshot?;
        let key = identity.unwrap_or_else(|_| server_key(cluster.server()));
        let r = usage::selected(
            &snapshot,
            &args.names,
            SystemTime::now(),
            !style.output.is_table(),
        )
        .map_err(cluster::Error::NotFound)?;
        Ok::<(StatusReport, Vec<ServiceCidr>, String), anyhow::Error>((r, snapshot.ranges, key))
    })
    .await?;
    let overlaps = args.cross_cluster.then(|| {
        let clusters: Vec<ClusterRanges> = members
            .iter()
            .filter_map(|m| {
                let (_, ranges, key) = m.result.as_ref().ok()?;
                Some(ClusterRanges {
                    context: &m.context,
                    cluster: key,
                    ranges,
                })
            })
            .collect();
        cross_cluster_overlaps(&clusters)
    });
    print(|out| render::write_status(out, style, &members, overlaps.as_deref()))?;
    Ok(exit(&members, |_| false))
}

pub async fn orphans(
    base: &Connection,
    chunk_size: u32,
    style: &Style,
    fleet: &Fleet,
    args: &OrphansTask,
) -> Result<Exit> {
    let members = each(base, chunk_size, fleet, |cluster| async move {
        let (snapshot, _) = cluster.snapshot(true).await?;
        Ok::<(Vec<Finding>, usize), anyhow::Error>(selected(
            &snapshot,
            &args.kinds,
            args.include_recent,
            SystemTime::now(),
        ))
    })
    .await?;
    print(|out| render::write_orphans(out, style, &members))?;
    Ok(exit(&members, |(findings, _)| !findings.is_empty()))
}

/// `doctor` on every context; `checks` is what doctor does on one cluster.
pub async fn doctor<F, Fut>(
    base: &Connection,
    chunk_size: u32,
    style: &Style,
    fleet: &Fleet,
    checks: F,
) -> Result<Exit>
where
    F: Fn(Cluster) -> Fut,
    Fut: Future<Output = Result<Vec<crate::audit::doctor::Check>>>,
{
    let members = each(base, chunk_size, fleet, checks).await?;
    print(|out| render::write_doctor(out, style, &members, SystemTime::now()))?;
    Ok(exit(&members, |checks| !healthy(checks)))
}
