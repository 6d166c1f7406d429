//! Many contexts in one answer: a CONTEXT column in tables, one entry per context in documents,
//! a context that failed as its own row with its one-line error.

use std::io::{self, Write};

use comfy_table::{Cell, Color};
use serde::Serialize;

use std::time::SystemTime;

use crate::audit::doctor::Check;
use crate::audit::findings::Finding;
use crate::audit::fleet::{CrossOverlap, Side};
use crate::audit::usage::StatusReport;
use crate::model::ServiceCidr;
use crate::render::{doctor, orphans, sanitize, status, table, to_stderr, write_document};
use crate::settings::Style;

pub const STATUS_KIND: &str = "ServiceCIDRFleetStatus";
pub const AUDIT_KIND: &str = "ServiceCIDRFleetAudit";
pub const DOCTOR_KIND: &str = "ServiceCIDRFleetDoctor";

/// What one context gave.
#[derive(Debug)]
pub struct Member<T> {
    pub context: String,
    /// The API server URL (empty when the kubeconfig entry itself is broken).
    pub server: String,
    pub result: Result<T, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ContextDoc<'a, T: Serialize> {
    context: &'a str,
    server: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    body: Option<T>,
}

fn context_doc<'a, T, B: Serialize>(
    m: &'a Member<T>,
    body: impl FnOnce(&'a T) -> B,
) -> ContextDoc<'a, B> {
    ContextDoc {
        context: &m.context,
        server: &m.server,
        error: m.result.as_ref().err().map(String::as_str),
        body: m.result.as_ref().ok().map(body),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SideDoc<'a> {
    context: &'a str,
    #[serde(rename = "serviceCIDR")]
    service_cidr: &'a str,
    cidr: String,
}

fn side_doc(s: &Side) -> SideDoc<'_> {
    SideDoc {
        context: &s.context,
        service_cidr: &s.range,
        cidr: s.cidr.to_string(),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FleetStatusDoc<'a, T: Serialize> {
    contexts: Vec<ContextDoc<'a, T>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cross_cluster_overlaps: Option<Vec<[SideDoc<'a>; 2]>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusBody<'a> {
    status: status::StatusDoc<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AuditBody<'a> {
    audit: orphans::AuditDoc<'a>,
}

/// The one line on stderr that says which contexts failed (the rows say why).
pub fn failed_contexts(failed: &[&str], of: usize) {
    let names: Vec<String> = failed.iter().map(|c| sanitize(c)).collect();
    to_stderr(&format!(
        "error: {} of {of} contexts could not be read: {}\n",
        failed.len(),
        names.join(", ")
    ));
}

/// A row for a context that failed: its name, then the error in the last column (so a long
/// message widens nothing else).
fn error_row(style: &Style, context: &str, columns: usize, error: &str) -> Vec<Cell> {
    let mut row = vec![Cell::new(sanitize(context))];
    row.extend((2..columns).map(|_| Cell::new("")));
    row.push(table::colored(
        style,
        format!("error: {}", sanitize(error)),
        Color::Red,
    ));
    row
}

pub fn write_status(
    out: &mut impl Write,
    style: &Style,
    members: &[Member<(StatusReport, Vec<ServiceCidr>, String)>],
    overlaps: Option<&[CrossOverlap]>,
) -> io::Result<()> {
    if !style.output.is_table() {
        let doc = FleetStatusDoc {
            contexts: members
                .iter()
                .map(|m| {
                    context_doc(m, |(r, _, _)| StatusBody {
                        status: status::document(r),
                    })
                })
                .collect(),
            cross_cluster_overlaps: overlaps
                .map(|o| o.iter().map(|o| [side_doc(&o.a), side_doc(&o.b)]).collect()),
        };
        return write_document(out, style.output, STATUS_KIND, &doc);
    }
    let mut headers = vec!["CONTEXT"];
    headers.extend(status::headers(style));
    let mut t = table::new(style, &headers);
    let mut notes = Vec::new();
    for m in members {
        match &m.result {
            Ok((report, _, _)) => {
                let (rows, footnotes) = status::rows(style, report);
                for row in rows {
                    let mut r = vec![Cell::new(sanitize(&m.context))];
                    r.extend(row);
                    t.add_row(r);
                }
                notes.extend(
                    footnotes
                        .into_iter()
                        .map(|f| format!("{}: {f}", sanitize(&m.context))),
                );
            }
            Err(e) => {
                t.add_row(error_row(style, &m.context, headers.len(), e));
            }
        }
    }
    let numeric: Vec<usize> = status::NUMERIC.iter().map(|i| i + 1).collect();
    table::finish(&mut t, &numeric);
    table::write(out, &t)?;
    if !style.headers {
        return Ok(());
    }
    for n in notes {
        writeln!(out, "{n}")?;
    }
    let Some(overlaps) = overlaps else {
        return Ok(());
    };
    if overlaps.is_empty() {
        writeln!(out, "\nNo Service range overlaps one of another cluster.")?;
        return Ok(());
    }
    writeln!(
        out,
        "\nService ranges that overlap between clusters (a Service IP of one may be a Service IP of the other):"
    )?;
    let mut t = table::new(
        style,
        &[
            "CONTEXT",
            "SERVICECIDR",
            "CIDR",
            "CONTEXT",
            "SERVICECIDR",
            "CIDR",
        ],
    );
    for o in overlaps {
        let mut row = Vec::new();
        for s in [&o.a, &o.b] {
            row.extend([
                Cell::new(sanitize(&s.context)),
                Cell::new(sanitize(&s.range)),
                Cell::new(s.cidr),
            ]);
        }
        t.add_row(row);
    }
    table::finish(&mut t, &[]);
    table::write(out, &t)
}

pub fn write_orphans(
    out: &mut impl Write,
    style: &Style,
    members: &[Member<(Vec<Finding>, usize)>],
) -> io::Result<()> {
    if !style.output.is_table() {
        let doc = FleetStatusDoc {
            contexts: members
                .iter()
                .map(|m| {
                    context_doc(m, |(findings, left_out)| AuditBody {
                        audit: orphans::document(findings, *left_out, &[]),
                    })
                })
                .collect(),
            cross_cluster_overlaps: None,
        };
        return write_document(out, style.output, AUDIT_KIND, &doc);
    }
    let mut headers = vec!["CONTEXT"];
    headers.extend(orphans::finding_headers(style));
    let mut t = table::new(style, &headers);
    let mut clean = Vec::new();
    for m in members {
        match &m.result {
            Ok((findings, _)) if findings.is_empty() => clean.push(sanitize(&m.context)),
            Ok((findings, _)) => {
                for f in findings {
                    let mut row = vec![Cell::new(sanitize(&m.context))];
                    row.extend(orphans::finding_row(style, f).into_iter().map(Cell::new));
                    t.add_row(row);
                }
            }
            Err(e) => {
                t.add_row(error_row(style, &m.context, headers.len(), e));
            }
        }
    }
    table::finish(&mut t, &[]);
    if t.row_count() > 0 {
        table::write(out, &t)?;
    }
    if style.headers && !clean.is_empty() {
        writeln!(out, "No inconsistencies found in: {}", clean.join(", "))?;
    }
    Ok(())
}

#[derive(Serialize)]
struct DoctorBody {
    doctor: doctor::DoctorDoc,
}

pub fn write_doctor(
    out: &mut impl Write,
    style: &Style,
    members: &[Member<Vec<Check>>],
    now: SystemTime,
) -> io::Result<()> {
    if !style.output.is_table() {
        let doc = FleetStatusDoc {
            contexts: members
                .iter()
                .map(|m| {
                    context_doc(m, |checks| DoctorBody {
                        doctor: doctor::document(checks, now),
                    })
                })
                .collect(),
            cross_cluster_overlaps: None,
        };
        return write_document(out, style.output, DOCTOR_KIND, &doc);
    }
    let mut headers = vec!["CONTEXT"];
    headers.extend(doctor::headers());
    let mut t = table::new(style, &headers);
    let mut all_details = Vec::new();
    for m in members {
        match &m.result {
            Ok(checks) => {
                let (rows, details) = doctor::rows(style, checks, now, &[sanitize(&m.context)]);
                rows.into_iter().for_each(|r| {
                    t.add_row(r);
                });
                all_details.extend(details);
            }
            Err(e) => {
                t.add_row(error_row(style, &m.context, headers.len(), e));
            }
        }
    }
    table::finish(&mut t, &[]);
    table::write(out, &t)?;
    if style.headers {
        for d in all_details {
            write!(out, "\n{d}")?;
        }
    }
    Ok(())
}
