//! `delete`: one line per range, the IPs that block a refusal, and the JSON shape. All wording of
//! the retirement's facts (`audit::retire`) lives here.

use std::io::{self, Write};

use comfy_table::{Cell, Color};
use serde::Serialize;

use crate::audit::retire::{DeleteResult, Phase, RangeOutcome, ReleasedBy};
use crate::audit::safety::{Blocker, InUse};
use crate::audit::suggest::covering_cidrs;
use crate::exit::Exit;
use crate::model::{DryRun, Right};
use crate::render::progress::phase_text;
use crate::render::{sanitize, table, write_document};
use crate::settings::Style;

pub const KIND: &str = "ServiceCIDRDeletion";

pub const DEFAULT_RANGE_WARNING: &str = "warning: kube-apiserver recreates the default ServiceCIDR \"kubernetes\" from --service-cluster-ip-range; it comes back unless that flag changes";

pub const NO_GRACE_WARNING: &str = "warning: --grace-period 0s with --remove-finalizer releases a range as soon as its check passes: an API server that has not yet seen the deletion can still hand out an IP in it, which is then orphaned (kube-controller-manager waits 10 s for this)\n";

/// Said on stderr the moment the guard is seen gone.
pub fn guard_lost_note(name: &str) -> String {
    format!(
        "warning: servicecidr {:?}: another client removed the plugin's guard finalizer; whatever releases it now does so without the plugin's final check (a finalizer cannot be added back to a terminating object)",
        sanitize(name)
    )
}

/// The rights delete lacks for `name`, each with what needs it.
pub fn not_allowed(name: &str, missing: &[Right]) -> String {
    let each: Vec<String> = missing
        .iter()
        .map(|r| match (r.verb, r.name.is_some()) {
            ("get", true) => "get (to read it again at each step)".to_owned(),
            ("patch", true) => "patch (to guard and release it)".to_owned(),
            ("watch", true) => "watch (to wait)".to_owned(),
            (verb, true) => verb.to_owned(),
            (verb, false) => format!("{verb} {}", r.resource),
        })
        .collect();
    format!(
        "not deleted: not allowed to {} servicecidr {:?}; the servicecidr-operator ClusterRole (deploy/rbac) grants what delete needs",
        each.join(", "),
        sanitize(name)
    )
}

fn resume(name: &str) -> String {
    format!("resume with: kubectl servicecidr delete {name} --wait")
}

/// What to create, recreate or delete so that these IPs have a range again, or are gone: an
/// IPAddress no Service holds is deleted, never "recreated".
fn unblock<'a>(ips: impl Iterator<Item = (std::net::IpAddr, &'a [String])>) -> String {
    let (ips, services): (Vec<_>, Vec<_>) = ips.unzip();
    let cover: Vec<String> = covering_cidrs(&ips)
        .iter()
        .map(ToString::to_string)
        .collect();
    let unheld: Vec<String> = ips
        .iter()
        .zip(&services)
        .filter(|(_, s)| s.is_empty())
        .map(|(ip, _)| ip.to_string())
        .collect();
    let mut services: Vec<&String> = services.into_iter().flatten().collect();
    services.sort();
    services.dedup();
    let mut text = format!("create a ServiceCIDR covering {}", cover.join(", "));
    if !services.is_empty() {
        let list: Vec<&str> = services.iter().map(|s| s.as_str()).collect();
        text.push_str(&format!(", or recreate Service(s) {}", list.join(", ")));
    }
    if !unheld.is_empty() {
        text.push_str(&format!(
            ", or delete IPAddress(es) {} (no Service holds them; the apiserver's repair loop deletes managed ones within minutes)",
            unheld.join(", ")
        ));
    }
    text
}

fn blockers_unblock(b: &[Blocker]) -> String {
    unblock(b.iter().map(|b| (b.ip, b.services.as_slice())))
}

fn left_unblock(u: &[InUse]) -> String {
    unblock(u.iter().map(|u| (u.ip, u.services.as_slice())))
}

/// The one line that says how a range's retirement ended and what to do next.
pub fn message(r: &DeleteResult) -> String {
    let name = r.name.as_str();
    let n = r.blockers.len();
    match r.outcome {
        RangeOutcome::Deleted => "gone".into(),
        RangeOutcome::Terminating => format!(
            "deleted and guarded: it stays terminating until a run that waits releases it ({})",
            resume(name)
        ),
        RangeOutcome::DryRun if r.phase != Phase::Terminating && r.dry_run == DryRun::Server => {
            "safe to delete; the server accepted the delete (dry run), nothing changed".into()
        }
        RangeOutcome::DryRun if n > 0 && r.phase == Phase::Terminating => format!(
            "already terminating; {n} IP(s) inside have no usable range, so a real run would keep it (dry run, nothing changed)"
        ),
        RangeOutcome::DryRun if r.phase == Phase::Terminating => {
            "already terminating; a real run would wait and release it when safe (dry run, nothing changed)".into()
        }
        RangeOutcome::DryRun => "safe to delete; not deleted (dry run)".into(),
        RangeOutcome::Refused => format!(
            "not deleted: {n} IP(s) inside would be left without a usable range outside the ranges named; to unblock, {}",
            blockers_unblock(&r.blockers)
        ),
        RangeOutcome::AtRisk => format!(
            "{n} IP(s) inside have no usable range left, so its finalizers stay; {}, then {}",
            blockers_unblock(&r.blockers),
            resume(name)
        ),
        RangeOutcome::Orphaned => format!(
            "gone, but {} IP(s) that appeared inside while it was released are now outside every range{}; {}",
            r.left_outside.len(),
            if r.guard_lost {
                " (another client had removed the plugin's guard, so the release was not held for its check)"
            } else {
                ""
            },
            left_unblock(&r.left_outside)
        ),
        RangeOutcome::Unguarded => "gone, but another client removed the plugin's guard while it waited, so it was released without the plugin's final check; no IP was found outside every range (kubectl servicecidr orphans checks again)".into(),
        RangeOutcome::Blocked => {
            let ips: Vec<String> = r.controller_blockers.iter().map(ToString::to_string).collect();
            format!(
                "the service-cidr controller keeps it: {} IPAddress(es) inside have no other range ({}); it stays terminating, and the plugin never overrides that; {}, then {}",
                ips.len(),
                ips.join(", "),
                unblock(r.controller_blockers.iter().map(|ip| (*ip, &[][..]))),
                resume(name)
            )
        }
        RangeOutcome::TimedOut => format!("timed out while {}; {}", phase_text(&r.phase), resume(name)),
        RangeOutcome::Interrupted => format!("{}; {}", phase_text(&r.phase), resume(name)),
        RangeOutcome::Failed => r.error.clone().unwrap_or_else(|| "failed".into()),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResultDoc<'a> {
    name: &'a str,
    outcome: RangeOutcome,
    released_by: Option<ReleasedBy>,
    #[serde(rename = "blockingIPAddresses")]
    blocking_ip_addresses: Vec<BlockerDoc>,
    #[serde(rename = "orphanedIPs", skip_serializing_if = "Vec::is_empty")]
    orphaned_ips: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    guard_removed_by_another_client: bool,
    message: String,
    elapsed_seconds: f64,
}

#[derive(Serialize)]
struct RangeRef {
    name: String,
    cidr: String,
}

#[derive(Serialize)]
struct BlockerDoc {
    ip: String,
    cidr: String,
    /// The first Service, kept for scripts that read one.
    service: Option<String>,
    services: Vec<String>,
    /// The ranges named in the call that hold it.
    ranges: Vec<RangeRef>,
    /// Whether an IPAddress object records it.
    recorded: bool,
}

fn blocker_doc(b: &Blocker) -> BlockerDoc {
    BlockerDoc {
        ip: b.ip.to_string(),
        cidr: b
            .ranges
            .first()
            .map(|(_, c)| c.to_string())
            .unwrap_or_default(),
        service: b.services.first().cloned(),
        services: b.services.clone(),
        ranges: b
            .ranges
            .iter()
            .map(|(name, cidr)| RangeRef {
                name: name.clone(),
                cidr: cidr.to_string(),
            })
            .collect(),
        recorded: b.recorded,
    }
}

#[derive(Serialize)]
struct DeletionDoc<'a> {
    results: Vec<ResultDoc<'a>>,
}

pub fn write(out: &mut impl Write, style: &Style, results: &[DeleteResult]) -> io::Result<()> {
    if !style.output.is_table() {
        let doc = DeletionDoc {
            results: results
                .iter()
                .map(|r| ResultDoc {
                    name: &r.name,
                    outcome: r.outcome,
                    released_by: r.released_by,
                    blocking_ip_addresses: r.blockers.iter().map(blocker_doc).collect(),
                    orphaned_ips: r.left_outside.iter().map(|u| u.ip.to_string()).collect(),
                    guard_removed_by_another_client: r.guard_lost,
                    message: message(r),
                    elapsed_seconds: (r.elapsed.as_secs_f64() * 10.0).round() / 10.0,
                })
                .collect(),
        };
        return write_document(out, style.output, KIND, &doc);
    }
    let mut t = table::new(
        style,
        &["NAME", "OUTCOME", "RELEASED BY", "ELAPSED", "MESSAGE"],
    );
    for r in results {
        let color = match r.outcome.exit() {
            Exit::Success => Color::Green,
            Exit::Findings => Color::Yellow,
            _ => Color::Red,
        };
        t.add_row(vec![
            Cell::new(sanitize(&r.name)),
            table::colored(style, format!("{:?}", r.outcome), color),
            Cell::new(match r.released_by {
                Some(ReleasedBy::Controller) => "controller",
                Some(ReleasedBy::Plugin) => "plugin",
                None => "-",
            }),
            Cell::new(format!("{:.1}s", r.elapsed.as_secs_f64())),
            Cell::new(sanitize(&message(r))),
        ]);
    }
    table::finish(&mut t, &[]);
    table::write(out, &t)?;
    for r in results.iter().filter(|r| !r.blockers.is_empty()) {
        writeln!(
            out,
            "\n{} IP(s) that only ranges being deleted hold ({:?}):",
            r.blockers.len(),
            sanitize(&r.name)
        )?;
        let mut t = table::new(style, &["IP", "RANGES", "SERVICES", "IPADDRESS"]);
        for b in &r.blockers {
            let ranges: Vec<String> = b
                .ranges
                .iter()
                .map(|(n, c)| format!("{} ({c})", sanitize(n)))
                .collect();
            let services: Vec<String> = b.services.iter().map(|s| sanitize(s)).collect();
            t.add_row(vec![
                b.ip.to_string(),
                ranges.join(", "),
                if services.is_empty() {
                    "<none>".into()
                } else {
                    services.join(", ")
                },
                if b.recorded {
                    "yes".into()
                } else {
                    "none".to_owned()
                },
            ]);
        }
        table::finish(&mut t, &[]);
        table::write(out, &t)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Output;
    use std::time::Duration;

    fn refused() -> DeleteResult {
        DeleteResult {
            blockers: vec![Blocker {
                ip: "10.1.0.5".parse().unwrap(),
                ranges: vec![("blue".into(), "10.1.0.0/24".parse().unwrap())],
                services: vec!["a/web".into()],
                recorded: true,
            }],
            ..DeleteResult::new(
                "blue",
                RangeOutcome::Refused,
                Phase::Checking,
                Duration::from_millis(120),
                DryRun::None,
            )
        }
    }

    fn style(output: Output) -> Style {
        Style {
            output,
            color: false,
            headers: true,
        }
    }

    #[test]
    fn a_refusal_lists_what_blocks_it_and_how_to_unblock() {
        let mut out = Vec::new();
        write(&mut out, &style(Output::Table), &[refused()]).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("blue   Refused   -"), "{text}");
        assert!(
            text.contains("10.1.0.5   blue (10.1.0.0/24)   a/web      yes"),
            "{text}"
        );
        assert!(
            message(&refused()).ends_with(
                "to unblock, create a ServiceCIDR covering 10.1.0.0/28, or recreate Service(s) a/web"
            ),
            "{}",
            message(&refused())
        );
        // An IPAddress no Service holds (its parentRef names one that is gone) is to be deleted.
        let mut unheld = refused();
        unheld.blockers[0].services.clear();
        assert!(
            message(&unheld).ends_with(
                "to unblock, create a ServiceCIDR covering 10.1.0.0/28, or delete IPAddress(es) 10.1.0.5 (no Service holds them; the apiserver's repair loop deletes managed ones within minutes)"
            ),
            "{}",
            message(&unheld)
        );
    }

    #[test]
    fn json_reports_each_outcome() {
        let mut out = Vec::new();
        write(&mut out, &style(Output::Json), &[refused()]).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        let r = &v["results"][0];
        assert_eq!(r["outcome"], "Refused");
        assert_eq!(r["blockingIPAddresses"][0]["service"], "a/web");
        assert_eq!(r["blockingIPAddresses"][0]["ranges"][0]["name"], "blue");
        assert_eq!(r["elapsedSeconds"], 0.1);
        assert_eq!(RangeOutcome::Refused.exit(), Exit::Findings);
    }

    #[test]
    fn an_interrupted_or_timed_out_result_says_where_it_stood_and_how_to_resume() {
        let r = DeleteResult::new(
            "blue",
            RangeOutcome::Interrupted,
            Phase::Waiting(crate::audit::retire::Waiting::Grace),
            Duration::ZERO,
            DryRun::None,
        );
        assert_eq!(
            message(&r),
            "grace period; resume with: kubectl servicecidr delete blue --wait"
        );
    }
}
