//! `doctor`: one consistent read of the ranges, IPAddresses and Services, the surroundings beside
//! it, every check of `audit::doctor`; exit 3 when one warns or fails.

use std::time::SystemTime;

use anyhow::Result;

use crate::audit::doctor::{Check, diagnose, healthy};
use crate::audit::findings::{AuditOptions, audit};
use crate::audit::usage::status_report;
use crate::cluster::Cluster;
use crate::exit::Exit;
use crate::render;
use crate::render::print;
use crate::render::progress::ReadProgress;
use crate::settings::Style;

/// Every check on one cluster.
pub async fn checks(cluster: &Cluster) -> Result<Vec<Check>> {
    let (snapshot, surroundings) = tokio::join!(cluster.snapshot(true), cluster.surroundings());
    let (snapshot, _) = snapshot?;
    let surroundings = surroundings?;
    let now = SystemTime::now();
    let report = status_report(&snapshot.ranges, &snapshot.ips, now, false);
    let findings = audit(
        &snapshot,
        &AuditOptions {
            now,
            include_recent: false,
        },
    );
    Ok(diagnose(&snapshot, &report, &findings, &surroundings, now))
}

pub async fn run(cluster: &Cluster, style: &Style, reading: &ReadProgress) -> Result<Exit> {
    let checks = checks(cluster).await?;
    reading.finish();
    print(|out| render::doctor::write(out, style, &checks, SystemTime::now()))?;
    Ok(if healthy(&checks) {
        Exit::Success
    } else {
        Exit::Findings
    })
}
