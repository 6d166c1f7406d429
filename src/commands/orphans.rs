//! `orphans`: the audit over ServiceCIDRs, IPAddresses and Services; exit 3 when anything is found.

use std::time::SystemTime;

use anyhow::Result;

use crate::audit::findings::{AuditOptions, audit, uncovered_ips};
use crate::audit::suggest::covering_cidrs;
use crate::cli::OrphansArgs;
use crate::cluster::Cluster;
use crate::commands::print;
use crate::exit::Exit;
use crate::render::{self, Style};

pub async fn run(cluster: &Cluster, style: &Style, args: OrphansArgs) -> Result<Exit> {
    let (snapshot, _) = cluster.snapshot(true).await?;
    let opts = AuditOptions {
        now: SystemTime::now(),
        include_recent: args.include_recent,
        kinds: args.kind,
    };
    let findings = audit(&snapshot, &opts);
    let suggested = covering_cidrs(&uncovered_ips(&findings));
    if args.suggest_range {
        if suggested.is_empty() {
            eprintln!("nothing to cover: no orphaned or at-risk IPAddresses");
        } else {
            print(|out| render::orphans::write_manifest(out, cluster.version(), &suggested))?;
        }
    } else {
        print(|out| render::orphans::write(out, style, &findings, &suggested))?;
    }
    Ok(if findings.is_empty() {
        Exit::Success
    } else {
        Exit::Findings
    })
}
