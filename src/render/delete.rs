//! `delete`: one verdict per range, the IPs that block a refusal, and the JSON shape.

use std::io::{self, Write};
use std::time::Duration;

use comfy_table::{Cell, Color};
use serde::Serialize;

use crate::audit::safety::Blocker;
use crate::exit::Exit;
use crate::render::{Style, sanitize, table, write_document};

pub const KIND: &str = "ServiceCIDRDeletion";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Outcome {
    /// Gone from the cluster.
    Deleted,
    /// Deleted and terminating; not waited for.
    Terminating,
    /// Checked (client) or validated by the server; nothing changed.
    DryRun,
    /// Not deleted: IPAddresses inside have no other usable range.
    Refused,
    /// Deleted, but IPs appeared that only it holds: the finalizer stays.
    AtRisk,
    TimedOut,
    Interrupted,
    Failed,
}

impl Outcome {
    pub fn exit(self) -> Exit {
        match self {
            Outcome::Deleted | Outcome::Terminating | Outcome::DryRun => Exit::Success,
            Outcome::Refused | Outcome::AtRisk => Exit::Findings,
            Outcome::TimedOut | Outcome::Failed => Exit::Error,
            Outcome::Interrupted => Exit::Interrupted,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleasedBy {
    Controller,
    Plugin,
}

#[derive(Debug, Clone)]
pub struct DeleteResult {
    pub name: String,
    pub outcome: Outcome,
    pub released_by: Option<ReleasedBy>,
    pub blockers: Vec<Blocker>,
    pub message: String,
    pub elapsed: Duration,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResultDoc<'a> {
    name: &'a str,
    outcome: Outcome,
    released_by: Option<ReleasedBy>,
    #[serde(rename = "blockingIPAddresses")]
    blocking_ip_addresses: Vec<BlockerDoc>,
    message: &'a str,
    elapsed_seconds: f64,
}

#[derive(Serialize)]
struct BlockerDoc {
    ip: String,
    cidr: String,
    service: Option<String>,
}

fn blocker_doc(b: &Blocker) -> BlockerDoc {
    BlockerDoc {
        ip: b.ip.to_string(),
        cidr: b.cidr.to_string(),
        service: b
            .parent
            .as_ref()
            .map(|p| format!("{}/{}", p.namespace, p.name)),
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
                    message: &r.message,
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
            Cell::new(sanitize(&r.message)),
        ]);
    }
    table::finish(&mut t, &[]);
    table::write(out, &t)?;
    for r in results.iter().filter(|r| !r.blockers.is_empty()) {
        writeln!(
            out,
            "\n{} IPAddress(es) only {:?} holds:",
            r.blockers.len(),
            sanitize(&r.name)
        )?;
        let mut t = table::new(style, &["IP", "CIDR", "SERVICE"]);
        for b in &r.blockers {
            let d = blocker_doc(b);
            t.add_row(vec![
                d.ip,
                d.cidr,
                d.service
                    .map(|s| sanitize(&s))
                    .unwrap_or_else(|| "<none>".into()),
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
    use crate::cli::Output;
    use crate::model::ParentRef;

    fn refused() -> DeleteResult {
        DeleteResult {
            name: "blue".into(),
            outcome: Outcome::Refused,
            released_by: None,
            blockers: vec![Blocker {
                ip: "10.1.0.5".parse().unwrap(),
                cidr: "10.1.0.0/24".parse().unwrap(),
                parent: Some(ParentRef {
                    group: String::new(),
                    resource: "services".into(),
                    namespace: "a".into(),
                    name: "web".into(),
                }),
            }],
            message: "not deleted".into(),
            elapsed: Duration::from_millis(120),
        }
    }

    #[test]
    fn a_refusal_lists_what_blocks_it() {
        let mut out = Vec::new();
        write(
            &mut out,
            &Style {
                output: Output::Table,
                color: false,
                headers: true,
            },
            &[refused()],
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("blue   Refused   -"), "{text}");
        assert!(text.contains("10.1.0.5   10.1.0.0/24   a/web"), "{text}");
    }

    #[test]
    fn json_reports_each_outcome() {
        let mut out = Vec::new();
        write(
            &mut out,
            &Style {
                output: Output::Json,
                color: false,
                headers: true,
            },
            &[refused()],
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["results"][0]["outcome"], "Refused");
        assert_eq!(
            v["results"][0]["blockingIPAddresses"][0]["service"],
            "a/web"
        );
        assert_eq!(v["results"][0]["elapsedSeconds"], 0.1);
        assert_eq!(Outcome::Refused.exit(), Exit::Findings);
    }
}
