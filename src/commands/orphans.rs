//! `orphans`: the audit over ServiceCIDRs, IPAddresses and Services; exit 3 when anything is found.

use std::time::SystemTime;

use anyhow::Result;

use crate::audit::findings::{selected, uncovered_ips};
use crate::audit::suggest::covering_cidrs;
use crate::cluster::Cluster;
use crate::exit::Exit;
use crate::render;
use crate::render::progress::ReadProgress;
use crate::render::{print, print_streamed};
use crate::settings::OrphansTask;
use crate::settings::Style;

pub async fn run(
    cluster: &Cluster,
    style: &Style,
    reading: &ReadProgress,
    args: OrphansTask,
) -> Result<Exit> {
    let (snapshot, _) = cluster.snapshot(true).await?;
    reading.finish();
    let (findings, left_out) = selected(
        &snapshot,
        &args.kinds,
        args.include_recent,
        SystemTime::now(),
    );
    let suggested = covering_cidrs(&uncovered_ips(&findings));
    if args.suggest_range {
        if suggested.is_empty() {
            render::to_stderr("nothing to cover: no orphaned or at-risk IPAddresses\n");
        } else {
            let version = cluster.version().await?;
            print(|out| render::orphans::write_manifest(out, version, &suggested))?;
        }
    } else {
        print_streamed(|out| render::orphans::write(out, style, &findings, left_out, &suggested))?;
    }
    Ok(if findings.is_empty() {
        Exit::Success
    } else {
        Exit::Findings
    })
}
