//! `explain IP|NAME`: one consistent read, then the facts of `audit::explain` for one subject.

use std::time::SystemTime;

use anyhow::Result;

use crate::audit::explain::{explain_ip, explain_range};
use crate::audit::findings::{AuditOptions, audit};
use crate::audit::usage::status_report;
use crate::cluster::{self, Cluster};
use crate::exit::Exit;
use crate::render;
use crate::render::print;
use crate::settings::Style;
use crate::settings::Subject;

pub async fn run(cluster: &Cluster, style: &Style, subject: Subject) -> Result<Exit> {
    let (snapshot, _) = cluster.snapshot(true).await?;
    let now = SystemTime::now();
    let report = status_report(&snapshot.ranges, &snapshot.ips, now, false);
    match subject {
        Subject::Ip(ip) => {
            let findings = audit(
                &snapshot,
                &AuditOptions {
                    now,
                    include_recent: true,
                },
            );
            let facts = explain_ip(&snapshot, &report, &findings, ip);
            print(|out| render::explain::write_ip(out, style, &facts))?;
        }
        Subject::Range(name) => {
            let facts =
                explain_range(&snapshot, &report, &name).ok_or(cluster::Error::NotFound(name))?;
            print(|out| render::explain::write_range(out, style, &facts))?;
        }
    }
    Ok(Exit::Success)
}
